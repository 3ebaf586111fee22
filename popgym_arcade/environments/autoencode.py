"""AutoEncode: watch a sequence of cards, then play it back in reverse; the POMDP hides the cards."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import cards
from popgym_arcade.environments.cards import BLANK, CARD_HEIGHT, CARD_WIDTH, NUM_SUITS, CardGame
from popgym_arcade.environments.struct import pytree

LEFT, RIGHT, FIRE = 2, 3, 4

# Panel positions (board coordinates at 128 pixels).
CARD_X, CARD_Y = 4, 1
"""The card being shown (watch phase)."""
PALETTE_X, PALETTE_GAP = 27, 1
"""The selector palette: four cards, ``PALETTE_GAP`` pixels apart, from ``PALETTE_X``."""
PALETTE_ORDER = (3, 2, 1, 0)
"""Suits of the palette from left to right, so that "left" (next suit) moves the highlight left."""

SELECTED_FACE = (255, 214, 90)
TARGET_COLOR = (255, 214, 90)


@dataclasses.dataclass(frozen=True)
class AutoEncodeDifficulty:
    """One AutoEncode level.

    Attributes:
        num_decks: decks of 26 cards; ``N = 26 * num_decks`` cards to watch and play back.
        max_steps: step limit (truncation), ``10 N``.
    """

    num_decks: int
    max_steps: int

    @property
    def num_cards(self) -> int:
        """Cards in the sequence (``N``)."""
        return 26 * self.num_decks


@pytree
class AutoEncodeState:
    """An AutoEncode state.

    Attributes:
        cards: ``int32[N]``, the sequence of suits (0 heart, 1 spade, 2 club, 3 diamond).
        selector: the suit the agent would play (int32, 0..3).
        played: cards played back so far (int32); the next one to play is
            ``cards[N - 1 - played]``.
        score: cards played back correctly (int32).
        timestep: steps since reset (int32); card ``timestep`` is shown while ``timestep < N``.
    """

    cards: jax.Array
    selector: jax.Array
    played: jax.Array
    score: jax.Array
    timestep: jax.Array


class AutoEncode(CardGame):
    """Watch ``N`` cards one at a time, then play them back in reverse order.

    - rules:
        - at reset the ``N`` cards are shuffled: card ``i`` of the unshuffled deck has suit
          ``i mod 4`` (suits heart, spade, club, diamond), so hearts and spades appear
          ``ceil(N / 4)`` times, clubs and diamonds ``floor(N / 4)`` times.
        - watch phase (steps ``t < N``): frame ``t`` shows card ``t``. Actions only move the
          selector; nothing can be played.
        - play phase (``t >= N``): the agent plays the cards back last-seen first by turning
          the selector to a suit and firing. Each fire plays the selected suit as the next
          card of the reversed sequence, right or wrong.
        - the selector starts on the heart and keeps its suit between plays.

    - action: int, 2 left (next suit: selector + 1, mod 4), 3 right (previous suit:
      selector - 1, mod 4), 4 fire (play the selected suit; play phase only). 0, 1, fire in
      the watch phase and any other value are no-ops that still spend a step.

    - reward: ``1/N`` for each card played correctly, else 0.

    - return bounds: ``[0, 1]`` by construction: exactly ``N`` cards are played, each paying
      at most ``1/N``. The return is the share of cards played back correctly.

    - episode termination:
        - terminated: the ``N``-th card is played, decided from the state after the step.
        - truncated: ``10 N`` steps.

    - difficulty:

        | level  | decks | N  | suits (heart, spade, club, diamond) | max steps | reward per card |
        |--------|-------|----|-------------------------------------|-----------|-----------------|
        | Easy   | 1     | 26 | 7, 7, 6, 6                          | 260       | 1/26            |
        | Medium | 2     | 52 | 13, 13, 13, 13                      | 520       | 1/52            |
        | Hard   | 3     | 78 | 20, 20, 19, 19                      | 780       | 1/78            |

    - observation: ``uint8[S, S, 3]``. The score (cards played correctly) at the top, the
      title at the bottom, and in the board, in a row: the card shown in the watch phase
      (nothing in the play phase) and the selector palette, the four suits (diamond, club,
      spade, heart from left to right) with the selected one on a yellow card.
        - MDP: below that row, the history: the cards already shown (before the current
          one), row by row (10, 9 or 6 per row on Hard, Medium, Easy); in the play phase all
          ``N`` cards, with the next card to play on a yellow slot.
        - POMDP: the history area stays empty; the sequence must be remembered.
        - t = 0: the twins show the same frame (no card has been shown before).

    - state: :class:`AutoEncodeState`.

    Unlike the published implementation (v0.0.7), the first play step does not play a card
    without a fire, the episode ends on the step that plays the ``N``-th card (so the return
    is at most exactly 1), fire is an action of the action space, and the MDP marks the next
    card to play (so it is fully observable even after a wrong card).
    """

    difficulties: ClassVar[dict[str, AutoEncodeDifficulty]] = {
        "Easy": AutoEncodeDifficulty(num_decks=1, max_steps=260),
        "Medium": AutoEncodeDifficulty(num_decks=2, max_steps=520),
        "Hard": AutoEncodeDifficulty(num_decks=3, max_steps=780),
    }
    return_range = (0.0, 1.0)
    title = "AUTOENCODE"
    independent_step_key = False
    background_color = (173, 217, 230)
    title_color = (255, 105, 186)
    score_color = (255, 48, 71)
    board_color = (130, 184, 206)
    history_colors = ((208, 234, 242), TARGET_COLOR)

    def __init__(self, difficulty="Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        s = self.scale
        width, height = CARD_WIDTH * s, CARD_HEIGHT * s
        self.card_sprites = cards.card_sprites(width, height, self.board_color, scale=s)
        plain = cards.card_sprites(width, height, self.board_color, scale=s)
        selected = cards.card_sprites(width, height, self.board_color, SELECTED_FACE, scale=s)
        gap = PALETTE_GAP * s
        # One image of the whole palette per selector value: drawing it is one gather.
        palettes = []
        for chosen in range(NUM_SUITS):
            row = []
            for i, suit in enumerate(PALETTE_ORDER):
                row.append((selected if suit == chosen else plain)[suit])
                if i < NUM_SUITS - 1:
                    row.append(np.broadcast_to(np.asarray(self.board_color, np.uint8), (height, gap, 3)))
            palettes.append(np.concatenate(row, axis=1))
        self.palettes = np.stack(palettes)

    # ------------------------------------------------------------------------------- rules
    def reset_state(self, key: jax.Array, params=None) -> AutoEncodeState:
        """Shuffle the sequence; the selector starts on the heart, counters at 0."""
        zero = jnp.zeros((), jnp.int32)
        return AutoEncodeState(
            cards=cards.shuffled_deck(key, self.difficulty.num_cards, NUM_SUITS),
            selector=zero,
            played=zero,
            score=zero,
            timestep=zero,
        )

    def step_state(self, key: jax.Array, state: AutoEncodeState, action: jax.Array, params=None):
        """Turn the selector, or play the selected suit (fire, play phase); see the class docstring."""
        n = self.difficulty.num_cards
        turn = (action == LEFT).astype(jnp.int32) - (action == RIGHT).astype(jnp.int32)
        selector = (state.selector + turn) % NUM_SUITS
        play = (action == FIRE) & (state.timestep >= n) & (state.played < n)
        target = state.cards[jnp.clip(n - 1 - state.played, 0, n - 1)]
        correct = play & (selector == target)
        played = state.played + play.astype(jnp.int32)
        next_state = AutoEncodeState(
            cards=state.cards,
            selector=selector,
            played=played,
            score=state.score + correct.astype(jnp.int32),
            timestep=state.timestep + 1,
        )
        reward = correct.astype(jnp.float32) / n
        terminated = played >= n
        truncated = next_state.timestep >= self.difficulty.max_steps
        return next_state, reward, terminated, truncated, {}

    # ----------------------------------------------------------------------------- drawing
    def _draw_panel(self, state: AutoEncodeState) -> jax.Array:
        n = self.difficulty.num_cards
        canvas = self.frame()
        shown = jnp.where(state.timestep < n, state.cards[jnp.clip(state.timestep, 0, n - 1)], BLANK)
        canvas = self.put(canvas, jnp.asarray(self.card_sprites)[shown], CARD_X, CARD_Y)
        canvas = self.put(canvas, jnp.asarray(self.palettes)[state.selector % NUM_SUITS], PALETTE_X, CARD_Y)
        return self.draw_score(canvas, state.score)

    def render_mdp(self, state: AutoEncodeState) -> jax.Array:
        """The panel, the score and the history of cards shown (with the next card to play)."""
        n = self.difficulty.num_cards
        index = jnp.arange(n)
        shown = index < state.timestep
        target = (state.timestep >= n) & (state.played < n) & (index == n - 1 - state.played)
        return self.draw_history(self._draw_panel(state), state.cards, shown, target.astype(jnp.int32))

    def render_pomdp(self, state: AutoEncodeState) -> jax.Array:
        """The panel and the score only.

        The MDP's history holds the cards before card ``timestep``, none at t = 0, so the
        POMDP equals the MDP at t = 0 without drawing a history at all.
        """
        return self._draw_panel(state)
