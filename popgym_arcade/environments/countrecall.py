"""CountRecall: count how many cards of a suit have been dealt; the POMDP hides the dealt cards."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from popgym_arcade.environments import cards, draw_utils
from popgym_arcade.environments.cards import BLANK, CARD_HEIGHT, CARD_WIDTH, CardGame
from popgym_arcade.environments.struct import pytree
from popgym_arcade.environments.randomness import random_bits

UP, DOWN, FIRE = 0, 1, 4

MIN_ANSWER, MAX_ANSWER = -99, 999
"""The answer is kept within what its three-character counter can show."""

# Panel positions (board coordinates at 128 pixels).
VALUE_CARD_X = 4
QUERY_CARD_X = 34
CARD_Y = 1
ANSWER_BOX = (54, 3, 40, 18)
"""x, y, width, height of the answer counter."""

ANSWER_BOX_COLOR = (30, 40, 60)
ANSWER_COLOR = (143, 237, 143)
QUERY_CARD_FACE = (255, 226, 120)


@dataclasses.dataclass(frozen=True)
class CountRecallDifficulty:
    """One CountRecall level.

    Attributes:
        num_decks: decks of 26 cards; ``N = 26 * num_decks`` rounds.
        num_types: card types ``T`` (suits 0 heart, 1 spade, 2 club, 3 diamond; 1..4).
        max_steps: step limit (truncation), ``100 + N``.
    """

    num_decks: int
    num_types: int
    max_steps: int

    @property
    def num_cards(self) -> int:
        """Cards in each of the value and query decks (``N``), one per round."""
        return 26 * self.num_decks


@pytree
class CountRecallState:
    """A CountRecall state.

    Attributes:
        value_cards: ``int32[N]``, the value deck in dealing order.
        query_cards: ``int32[N]``, the query deck; ``query_cards[i]`` asks the question of round ``i``.
        dealt: rounds confirmed so far: the value cards ``value_cards[:dealt]`` are dealt
            (int32); the current round is ``dealt``.
        answer: the agent's current answer (int32, in ``[-99, 999]``).
        score: correct answers so far (int32).
        timestep: steps since reset (int32).
    """

    value_cards: jax.Array
    query_cards: jax.Array
    dealt: jax.Array
    answer: jax.Array
    score: jax.Array
    timestep: jax.Array


def count_dealt(value_cards: jax.Array, dealt: jax.Array, suit: jax.Array) -> jax.Array:
    """How many of the first ``dealt`` value cards are of type ``suit`` (int32)."""
    before = jnp.arange(value_cards.shape[0]) < dealt
    return jnp.sum(before & (value_cards == suit), dtype=jnp.int32)


class CountRecall(CardGame):
    """Count the cards dealt so far: each round asks how many cards of one suit came before.

    - rules:
        - two decks of ``N`` cards are shuffled at reset: a value deck and a query deck, each
          holding ``N / T`` cards of each of ``T`` types (suits heart, spade, club, diamond,
          in that order; ``T = 2`` uses hearts and spades only).
        - round ``i`` shows value card ``i`` and query card ``i``. The agent sets its answer
          with up/down and confirms it with fire. A confirmed answer is correct when it equals
          the number of value cards of the query's suit dealt in the rounds *before* round
          ``i`` (the current value card does not count). Confirming deals the value card (it
          joins the history) and starts the next round.
        - the answer starts at 0, changes by 1 per press, is not reset by a confirm, and is
          kept within ``[-99, 999]`` (the counter's range).

    - action: int, 0 up (answer + 1), 1 down (answer - 1), 4 fire (confirm the answer).
      2, 3 and any other value are no-ops that still spend a step.

    - reward: ``1/N`` for each correct confirmed answer, else 0.

    - return bounds: ``[0, 1]`` by construction: at most ``N`` answers are confirmed, each
      paying at most ``1/N``. The return is the share of rounds answered correctly.

    - episode termination:
        - terminated: the ``N``-th answer is confirmed (every card dealt), decided from the
          state after the step.
        - truncated: ``100 + N`` steps.

    - difficulty:

        | level  | decks | N  | T | max steps | reward per correct answer |
        |--------|-------|----|---|-----------|---------------------------|
        | Easy   | 1     | 26 | 2 | 126       | 1/26                      |
        | Medium | 2     | 52 | 2 | 152       | 1/52                      |
        | Hard   | 3     | 78 | 4 | 178       | 1/78                      |

    - observation: ``uint8[S, S, 3]``. The score (correct answers) at the top, the title at
      the bottom, and in the board, in a row: the current value card (white), the current
      query card (yellow) and the answer counter (green digits, with a minus sign below 0).
        - MDP: below that row, the history: every dealt value card in dealing order, row by
          row (10, 9 or 6 per row on Hard, Medium, Easy), so the count can be read off.
        - POMDP: the history area stays empty; the counts must be remembered.
        - t = 0: the twins show the same frame (nothing has been dealt yet).

    - state: :class:`CountRecallState`.
    """

    difficulties: ClassVar[dict[str, CountRecallDifficulty]] = {
        "Easy": CountRecallDifficulty(num_decks=1, num_types=2, max_steps=126),
        "Medium": CountRecallDifficulty(num_decks=2, num_types=2, max_steps=152),
        "Hard": CountRecallDifficulty(num_decks=3, num_types=4, max_steps=178),
    }
    return_range = (0.0, 1.0)
    title = "COUNTRECALL"
    independent_step_key = False
    background_color = (245, 245, 245)
    title_color = (74, 191, 240)
    score_color = (191, 26, 26)
    board_color = (153, 179, 204)
    history_colors = ((214, 225, 236),)

    def __init__(self, difficulty="Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        s = self.scale
        width, height = CARD_WIDTH * s, CARD_HEIGHT * s
        self.value_sprites = cards.card_sprites(width, height, self.board_color, scale=s)
        self.query_sprites = cards.card_sprites(width, height, self.board_color, QUERY_CARD_FACE, scale=s)
        _, _, w, h = ANSWER_BOX
        self.answer_box = draw_utils.new_canvas(h * s, w * s, ANSWER_BOX_COLOR)

    # ------------------------------------------------------------------------------- rules
    def reset_state(self, key: jax.Array, params=None) -> CountRecallState:
        """Shuffle the value and query decks (independently); everything else starts at 0."""
        d = self.difficulty
        value_cards, query_cards = cards.deck_from_words(random_bits(key, (2, d.num_cards)), d.num_types)
        zero = jnp.zeros((), jnp.int32)
        return CountRecallState(
            value_cards=value_cards,
            query_cards=query_cards,
            dealt=zero,
            answer=zero,
            score=zero,
            timestep=zero,
        )

    def step_state(self, key: jax.Array, state: CountRecallState, action: jax.Array, params=None):
        """Adjust the answer, or confirm it (fire); see the class docstring."""
        n = self.difficulty.num_cards
        change = (action == UP).astype(jnp.int32) - (action == DOWN).astype(jnp.int32)
        answer = jnp.clip(state.answer + change, MIN_ANSWER, MAX_ANSWER)
        confirm = (action == FIRE) & (state.dealt < n)
        query = state.query_cards[jnp.minimum(state.dealt, n - 1)]
        correct = confirm & (answer == count_dealt(state.value_cards, state.dealt, query))
        dealt = state.dealt + confirm.astype(jnp.int32)
        next_state = CountRecallState(
            value_cards=state.value_cards,
            query_cards=state.query_cards,
            dealt=dealt,
            answer=answer,
            score=state.score + correct.astype(jnp.int32),
            timestep=state.timestep + 1,
        )
        reward = correct.astype(jnp.float32) / n
        terminated = dealt >= n
        truncated = next_state.timestep >= self.difficulty.max_steps
        return next_state, reward, terminated, truncated, {}

    # ----------------------------------------------------------------------------- drawing
    def _draw(self, state: CountRecallState, show_history: jax.Array | bool) -> jax.Array:
        n = self.difficulty.num_cards
        s = self.scale
        live = state.dealt < n
        current = jnp.minimum(state.dealt, n - 1)
        canvas = self.frame()
        value = jnp.where(live, state.value_cards[current], BLANK)
        query = jnp.where(live, state.query_cards[current], BLANK)
        canvas = self.put(canvas, jnp.asarray(self.value_sprites)[value], VALUE_CARD_X, CARD_Y)
        canvas = self.put(canvas, jnp.asarray(self.query_sprites)[query], QUERY_CARD_X, CARD_Y)
        x, y, w, h = ANSWER_BOX
        counter = draw_utils.draw_number(
            self.answer_box, (0, 0), (w * s, h * s), state.answer, ANSWER_COLOR, 2 * s, 3
        )
        canvas = self.put(canvas, counter, x, y)
        shown = (jnp.arange(n) < state.dealt) & show_history
        canvas = self.draw_history(canvas, state.value_cards, shown)
        return self.draw_score(canvas, state.score)

    def render_mdp(self, state: CountRecallState) -> jax.Array:
        """Current cards, answer, score and the history of dealt value cards."""
        return self._draw(state, True)

    def render_pomdp(self, state: CountRecallState) -> jax.Array:
        """As the MDP without the history, except at t = 0."""
        return self._draw(state, state.timestep == 0)
