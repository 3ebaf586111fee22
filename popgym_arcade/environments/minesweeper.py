"""MineSweeper: reveal every safe cell of a mined grid; the POMDP forgets the numbers it saw."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import font
from popgym_arcade.environments.boards import BoardGame, move_cursor, random_cell
from popgym_arcade.environments.struct import pytree
from popgym_arcade.environments.randomness import random_bits

HIDDEN = 0
"""Tile kind of a hidden cell; a revealed cell with count ``n`` has kind ``1 + n``."""

REVEAL = 4


@dataclasses.dataclass(frozen=True)
class MineSweeperDifficulty:
    """One MineSweeper level.

    Attributes:
        board_size: side ``B`` of the square board.
        num_mines: mines on the board.
        max_steps: step limit (truncation), ``2 B^2``.
        repeat_limit: revealing an already revealed cell this many times ends (terminates)
            the episode; each such reveal costs ``1 / repeat_limit``.
    """

    board_size: int
    num_mines: int
    max_steps: int
    repeat_limit: int

    @property
    def num_safe(self) -> int:
        """Cells without a mine: revealing all of them wins."""
        return self.board_size**2 - self.num_mines

    @property
    def safe_reward(self) -> float:
        """Reward of revealing a new safe cell, so that winning pays 1."""
        return 1.0 / self.num_safe

    @property
    def repeat_penalty(self) -> float:
        """Cost of revealing an already revealed cell, so that the repeats cost at most 1."""
        return 1.0 / self.repeat_limit


@pytree
class MineSweeperState:
    """A MineSweeper state.

    Attributes:
        cursor_x, cursor_y: the cursor's column and row (int32).
        mines: ``bool[B, B]``, the mined cells (``[row, col]``).
        revealed: ``bool[B, B]``, the revealed cells.
        repeats: number of reveals of an already revealed cell (int32).
        timestep: steps since reset (int32).
    """

    cursor_x: jax.Array
    cursor_y: jax.Array
    mines: jax.Array
    revealed: jax.Array
    repeats: jax.Array
    timestep: jax.Array

    @property
    def safe_revealed(self) -> jax.Array:
        """Safe cells revealed so far (the score)."""
        return jnp.sum(self.revealed & ~self.mines, dtype=jnp.int32)


def neighbour_counts(mines: jax.Array) -> jax.Array:
    """``int32[B, B]``: mines in each cell's 3 x 3 neighbourhood, the cell itself included."""
    size = mines.shape[0]
    padded = jnp.pad(mines.astype(jnp.int32), 1)
    return sum(padded[i : i + size, j : j + size] for i in range(3) for j in range(3))


def place_mines(key: jax.Array, board_size: int, num_mines: int) -> jax.Array:
    """``bool[B, B]`` with ``num_mines`` mines on a uniformly random set of cells."""
    return mines_from_words(random_bits(key, (board_size * board_size,)), board_size, num_mines)


def mines_from_words(words: jax.Array, board_size: int, num_mines: int) -> jax.Array:
    """The mines of :func:`place_mines` from one random ``uint32`` word per cell."""
    # The cells with the num_mines largest of i.i.d. uniform numbers form a uniform subset
    # (31-bit numbers: a tie, broken by position, has probability below B^4 / 2^32).
    _, cells = jax.lax.top_k((words >> 1).astype(jnp.int32), num_mines)
    return jnp.zeros(board_size * board_size, dtype=bool).at[cells].set(True).reshape(board_size, board_size)


class MineSweeper(BoardGame):
    """Minesweeper with a cursor: reveal every safe cell of a ``B x B`` grid without a mine.

    - rules:
        - mines lie on a uniformly random set of cells; the cursor starts on a uniformly random
          cell. There is no safe first reveal.
        - revealing a safe cell shows its number: the mines in the 3 x 3 block centred on it,
          the cell itself included (so a revealed safe cell shows 0 to 8). Revealing a mine
          ends the game. Revealing an already revealed cell is a repeat: it changes nothing but
          costs a penalty.

    - action: int, 0 up, 1 down, 2 left, 3 right (the cursor moves one cell, clamped at the
      edges), 4 reveal the cursor cell. Any other value is a no-op that still spends a step.

    - reward: ``+1/(B^2 - m)`` for each newly revealed safe cell (``m`` mines), ``0`` for
      revealing a mine or moving, ``-1/R`` for a repeat, where ``R`` is the repeat limit
      (``B^2 / 2``).

    - return bounds: ``[-1, 1]`` by construction. Safe reveals pay at most
      ``(B^2 - m) * 1/(B^2 - m) = 1``, and the episode terminates on the ``R``-th repeat, so
      penalties cost at most ``R * 1/R = 1``. The return is ``safe/(B^2 - m) - repeats/R``.

    - episode termination:
        - terminated: every safe cell revealed (won), a mine revealed (lost), or the ``R``-th
          repeat (lost); all decided from the state after the step.
        - truncated: ``2 B^2`` steps (every action counts, moves and no-ops included).

    - difficulty:

        | level  | B | mines | max steps | safe reward | repeat limit R | repeat reward |
        |--------|---|-------|-----------|-------------|----------------|---------------|
        | Easy   | 4 | 2     | 32        | 1/14        | 8              | -1/8          |
        | Medium | 6 | 6     | 72        | 1/30        | 18             | -1/18         |
        | Hard   | 8 | 10    | 128       | 1/54        | 32             | -1/32         |

    - observation: ``uint8[S, S, 3]``: the grid (black cells), the cursor cell in orange, the
      number of safe cells revealed at the top and the title at the bottom. Mines are never
      drawn. Numbers are white, black on the cursor cell, in the same glyph in both twins.
        - MDP: every revealed cell shows its number; hidden cells are blank.
        - POMDP: only the cursor cell's number is shown (if revealed); the numbers seen
          elsewhere, and which cells are revealed, must be remembered.
        - t = 0: the twins show the same frame (every number that the state holds; none after
          a reset).

    - state: :class:`MineSweeperState`.

    ```python
    env = MineSweeper("Easy", partial_obs=True)
    obs, state = env.reset(jax.random.key(0))
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 4)
    ```
    """

    difficulties: ClassVar[dict[str, MineSweeperDifficulty]] = {
        "Easy": MineSweeperDifficulty(board_size=4, num_mines=2, max_steps=32, repeat_limit=8),
        "Medium": MineSweeperDifficulty(board_size=6, num_mines=6, max_steps=72, repeat_limit=18),
        "Hard": MineSweeperDifficulty(board_size=8, num_mines=10, max_steps=128, repeat_limit=32),
    }
    title = "MINESWEEPER"
    independent_step_key = False
    return_range = (-1.0, 1.0)
    background_color = (229, 234, 242)
    title_color = (0, 51, 102)
    score_color = (153, 0, 204)
    cell_color = (0, 0, 0)
    cursor_color = (255, 127, 0)
    line_color = (102, 102, 102)
    digit_color = (255, 255, 255)
    cursor_digit_color = (0, 0, 0)
    num_kinds = 11  # hidden, then counts 0..9 (9 only on a revealed mine with 8 mined neighbours)

    difficulty: MineSweeperDifficulty

    @property
    def max_score(self) -> int:
        """The score shown is the number of safe cells revealed."""
        return self.difficulty.num_safe

    # ------------------------------------------------------------------------------- rules
    def reset_state(self, key: jax.Array, params: Any) -> MineSweeperState:
        """Mines on a uniformly random set of cells, a cursor on a uniformly random cell."""
        level = self.difficulty
        # One draw: a word per cell for the mines, then two for the cursor.
        num_cells = level.board_size * level.board_size
        words = random_bits(key, (num_cells + 2,))
        x, y = random_cell(words[num_cells:], level.board_size)
        zero = jnp.zeros((), jnp.int32)
        return MineSweeperState(
            cursor_x=x,
            cursor_y=y,
            mines=mines_from_words(words[:num_cells], level.board_size, level.num_mines),
            revealed=jnp.zeros((level.board_size, level.board_size), dtype=bool),
            repeats=zero,
            timestep=zero,
        )

    def step_state(
        self, key: jax.Array, state: MineSweeperState, action: jax.Array, params: Any
    ) -> tuple[MineSweeperState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Move the cursor or reveal (see the class docstring)."""
        level = self.difficulty
        x, y = move_cursor(state.cursor_x, state.cursor_y, action, level.board_size)
        reveal = action == REVEAL
        already = state.revealed[y, x]
        mine = state.mines[y, x]
        repeat = reveal & already
        safe = reveal & ~already & ~mine
        exploded = reveal & ~already & mine
        next_state = MineSweeperState(
            cursor_x=x,
            cursor_y=y,
            mines=state.mines,
            revealed=state.revealed.at[y, x].set(already | reveal),
            repeats=state.repeats + repeat.astype(jnp.int32),
            timestep=state.timestep + 1,
        )
        reward = jnp.where(safe, level.safe_reward, 0.0) - jnp.where(repeat, level.repeat_penalty, 0.0)
        won = next_state.safe_revealed >= level.num_safe
        terminated = exploded | won | (next_state.repeats >= level.repeat_limit)
        truncated = next_state.timestep >= level.max_steps
        return next_state, reward.astype(jnp.float32), terminated, truncated, {}

    # ------------------------------------------------------------------------------ render
    def draw_mark(self, cell: np.ndarray, kind: int, on_cursor: bool) -> np.ndarray:
        """The number ``kind - 1`` in the 5 x 5 font, the largest whole scale that leaves a margin."""
        n = cell.shape[0]
        scale = max((n - 3 * self.scale) // font.GLYPH_SIZE, 1)
        glyph = np.kron(font.glyph(str(kind - 1)), np.ones((scale, scale), dtype=bool))
        start = (n - glyph.shape[0]) // 2
        cell = cell.copy()
        window = cell[start : start + glyph.shape[0], start : start + glyph.shape[1]]
        window[glyph] = self.cursor_digit_color if on_cursor else self.digit_color
        return cell

    def cell_kinds(self, state: MineSweeperState) -> jax.Array:
        """``int[B, B]``: every cell's tile kind (HIDDEN, or 1 + its count where revealed)."""
        return jnp.where(state.revealed, 1 + neighbour_counts(state.mines), HIDDEN)

    def score(self, state: MineSweeperState) -> jax.Array:
        """The safe cells revealed."""
        return state.safe_revealed
