"""BattleShip: find four hidden ships by firing at a grid; the POMDP forgets where it fired."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments.boards import BoardGame, move_cursor, random_cell
from popgym_arcade.environments.struct import pytree
from popgym_arcade.environments.randomness import random_bits

UNFIRED, MISS, HIT = 0, 1, 2
"""What a cell shows (tile kinds)."""

FIRE = 4


@dataclasses.dataclass(frozen=True)
class BattleShipDifficulty:
    """One BattleShip level.

    Attributes:
        board_size: side ``B`` of the square board.
        ship_sizes: lengths of the ships, placed in this order.
        max_steps: step limit (truncation), ``2 B^2``.
        repeat_limit: firing at an already fired cell this many times ends (terminates) the
            episode; each such shot costs ``1 / repeat_limit``.
    """

    board_size: int
    max_steps: int
    repeat_limit: int
    ship_sizes: tuple[int, ...] = (2, 3, 3, 4)

    @property
    def hits_to_win(self) -> int:
        """Ship cells to hit to win (12)."""
        return sum(self.ship_sizes)

    @property
    def hit_reward(self) -> float:
        """Reward of a new hit, so that sinking every ship pays 1."""
        return 1.0 / self.hits_to_win

    @property
    def repeat_penalty(self) -> float:
        """Cost of firing at an already fired cell, so that the repeats cost at most 1."""
        return 1.0 / self.repeat_limit


@pytree
class BattleShipState:
    """A BattleShip state.

    Attributes:
        cursor_x, cursor_y: the cursor's column and row (int32).
        ships: ``bool[B, B]``, the cells holding a ship (``[row, col]``).
        fired: ``bool[B, B]``, the cells fired at.
        repeats: number of shots at an already fired cell (int32).
        timestep: steps since reset (int32).
    """

    cursor_x: jax.Array
    cursor_y: jax.Array
    ships: jax.Array
    fired: jax.Array
    repeats: jax.Array
    timestep: jax.Array

    @property
    def hits(self) -> jax.Array:
        """Ship cells hit so far (the score)."""
        return jnp.sum(self.ships & self.fired, dtype=jnp.int32)


def place_ships(key: jax.Array, board_size: int, ship_sizes: tuple[int, ...]) -> jax.Array:
    """``bool[B, B]``: ships placed one after the other, each uniformly at random among the
    horizontal and vertical placements that fit on the board and miss the earlier ships
    (ships may touch)."""
    return ships_from_words(random_bits(key, (len(ship_sizes),)), board_size, ship_sizes)


def ships_from_words(words: jax.Array, board_size: int, ship_sizes: tuple[int, ...]) -> jax.Array:
    """The ships of :func:`place_ships` from one random ``uint32`` word per ship."""
    size = board_size
    rows = jnp.arange(size)[:, None]
    cols = jnp.arange(size)[None, :]
    occupied = jnp.zeros((size, size), dtype=bool)
    # Taking a word modulo the number of placements (at most 2 B^2) is uniform up to a bias
    # below 2 B^2 / 2^32.
    for word, length in zip(words, ship_sizes):
        # Padding with occupied cells makes placements that leave the board invalid.
        blocked = jnp.pad(occupied, ((0, length), (0, length)), constant_values=True)
        across = jnp.ones_like(occupied)  # anchor (r, c) covers (r, c .. c+length-1)
        down = jnp.ones_like(occupied)  # anchor (r, c) covers (r .. r+length-1, c)
        for i in range(length):
            across &= ~blocked[:size, i : i + size]
            down &= ~blocked[i : i + size, :size]
        # Lines 0..B-1 are the anchor rows of `across`, lines B..2B-1 those of `down`; the slot
        # is the anchor's column. The k-th valid placement is found by two short searches
        # (line, then slot): a cumulative sum over all 2 B^2 placements is much slower.
        valid = jnp.concatenate([across, down]).astype(jnp.int32)
        per_line = valid.sum(axis=1)
        line_end = jnp.cumsum(per_line)
        k = (word % line_end[-1].astype(jnp.uint32)).astype(jnp.int32)
        line = jnp.sum(line_end <= k)
        slot = jnp.sum(jnp.cumsum(valid[line]) <= k - (line_end[line] - per_line[line]))
        vertical = line >= size
        r = jnp.where(vertical, line - size, line)
        ship = jnp.where(
            vertical,
            (cols == slot) & (rows >= r) & (rows < r + length),
            (rows == r) & (cols >= slot) & (cols < slot + length),
        )
        occupied |= ship
    return occupied


class BattleShip(BoardGame):
    """Find and sink four hidden ships on a ``B x B`` grid by moving a cursor and firing.

    - rules:
        - four ships of lengths 2, 3, 3 and 4 lie hidden on the board, horizontal or vertical;
          each is placed uniformly among the placements that fit and do not overlap the ships
          placed before it (ships may touch). The cursor starts on a uniformly random cell.
        - firing at a cell marks it: a hit if it holds a ship, a miss otherwise. Firing at a
          cell already fired at is a repeat: it changes nothing but costs a penalty.

    - action: int, 0 up, 1 down, 2 left, 3 right (the cursor moves one cell, clamped at the
      edges), 4 fire at the cursor cell. Any other value is a no-op that still spends a step.

    - reward: ``+1/12`` for each new hit, ``0`` for a miss or a move, ``-1/R`` for a repeat,
      where ``R`` is the repeat limit (``B^2 / 2``).

    - return bounds: ``[-1, 1]`` by construction. New hits pay at most ``12 * 1/12 = 1``, and
      the episode terminates on the ``R``-th repeat, so penalties cost at most ``R * 1/R = 1``.
      The return is ``hits/12 - repeats/R``: ``1`` when every ship is sunk without repeats,
      ``-1`` after ``R`` repeats with no hit.

    - episode termination:
        - terminated: all 12 ship cells hit (won), or the ``R``-th repeat (lost); both
          decided from the state after the step.
        - truncated: ``2 B^2`` steps (every action counts, moves and no-ops included).

    - difficulty:

        | level  | B  | ships      | max steps | repeat limit R | repeat reward |
        |--------|----|------------|-----------|----------------|---------------|
        | Easy   | 8  | 2, 3, 3, 4 | 128       | 32             | -1/32         |
        | Medium | 10 | 2, 3, 3, 4 | 200       | 50             | -1/50         |
        | Hard   | 12 | 2, 3, 3, 4 | 288       | 72             | -1/72         |

    - observation: ``uint8[S, S, 3]``: the grid (grey cells), the cursor cell in gold, the
      number of hits at the top and the title at the bottom. Ships are never drawn.
        - MDP: every fired cell shows its mark: a pure red X for a hit, a black O for a miss.
        - POMDP: only the cursor cell's mark is shown; where the agent fired elsewhere (and
          what it found) must be remembered.
        - t = 0: the twins show the same frame (every mark that the state holds; none after
          a reset).

    - state: :class:`BattleShipState`.

    ```python
    env = BattleShip("Easy", partial_obs=True)
    obs, state = env.reset(jax.random.key(0))
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 4)
    ```
    """

    difficulties: ClassVar[dict[str, BattleShipDifficulty]] = {
        "Easy": BattleShipDifficulty(board_size=8, max_steps=128, repeat_limit=32),
        "Medium": BattleShipDifficulty(board_size=10, max_steps=200, repeat_limit=50),
        "Hard": BattleShipDifficulty(board_size=12, max_steps=288, repeat_limit=72),
    }
    title = "BATTLESHIP"
    independent_step_key = False
    return_range = (-1.0, 1.0)
    background_color = (255, 255, 255)
    title_color = (74, 214, 247)
    score_color = (255, 128, 0)
    cell_color = (191, 191, 191)
    cursor_color = (217, 166, 33)
    line_color = (102, 102, 102)
    hit_color = (255, 0, 0)
    miss_color = (0, 0, 0)
    num_kinds = 3

    difficulty: BattleShipDifficulty

    @property
    def max_score(self) -> int:
        """The score shown is the number of hits."""
        return self.difficulty.hits_to_win

    # ------------------------------------------------------------------------------- rules
    def reset_state(self, key: jax.Array, params: Any) -> BattleShipState:
        """Hidden ships and a cursor on a uniformly random cell; nothing fired."""
        size = self.difficulty.board_size
        # One draw: a word per ship, then two for the cursor.
        num_ships = len(self.difficulty.ship_sizes)
        words = random_bits(key, (num_ships + 2,))
        x, y = random_cell(words[num_ships:], size)
        zero = jnp.zeros((), jnp.int32)
        return BattleShipState(
            cursor_x=x,
            cursor_y=y,
            ships=ships_from_words(words[:num_ships], size, self.difficulty.ship_sizes),
            fired=jnp.zeros((size, size), dtype=bool),
            repeats=zero,
            timestep=zero,
        )

    def step_state(
        self, key: jax.Array, state: BattleShipState, action: jax.Array, params: Any
    ) -> tuple[BattleShipState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Move the cursor or fire (see the class docstring)."""
        level = self.difficulty
        x, y = move_cursor(state.cursor_x, state.cursor_y, action, level.board_size)
        fire = action == FIRE
        already = state.fired[y, x]
        repeat = fire & already
        hit = fire & ~already & state.ships[y, x]
        next_state = BattleShipState(
            cursor_x=x,
            cursor_y=y,
            ships=state.ships,
            fired=state.fired.at[y, x].set(already | fire),
            repeats=state.repeats + repeat.astype(jnp.int32),
            timestep=state.timestep + 1,
        )
        reward = jnp.where(hit, level.hit_reward, 0.0) - jnp.where(repeat, level.repeat_penalty, 0.0)
        terminated = (next_state.hits >= level.hits_to_win) | (next_state.repeats >= level.repeat_limit)
        truncated = next_state.timestep >= level.max_steps
        return next_state, reward.astype(jnp.float32), terminated, truncated, {}

    # ------------------------------------------------------------------------------ render
    def draw_mark(self, cell: np.ndarray, kind: int, on_cursor: bool) -> np.ndarray:
        """A red X (hit) or a black O (miss) filling the cell, with a margin on large cells.

        Drawn with numpy: the tiles are made once per env, and eager JAX drawing would compile
        a kernel per cell size.
        """
        n = cell.shape[0]
        margin = n // 8
        # Pixel-centre coordinates relative to the cell's centre, in pixels.
        u = np.arange(n)[None, :] + 0.5 - n / 2
        v = np.arange(n)[:, None] + 0.5 - n / 2
        half = n / 2 - margin
        inside = (np.abs(u) <= half) & (np.abs(v) <= half)
        if kind == HIT:
            # |u - v| = k: the k-th pixel diagonal beside the main one (likewise u + v).
            mask = inside & (np.minimum(np.abs(u - v), np.abs(u + v)) <= n // 10)
            color = self.hit_color
        else:
            radius = np.hypot(u, v)
            mask = (radius <= half) & (radius > half - max(n // 8, 1))
            color = self.miss_color
        cell = cell.copy()
        cell[mask] = color
        return cell

    def cell_kinds(self, state: BattleShipState) -> jax.Array:
        """``int[B, B]``: every cell's mark (UNFIRED, MISS or HIT)."""
        return jnp.where(state.fired, jnp.where(state.ships, HIT, MISS), UNFIRED)

    def score(self, state: BattleShipState) -> jax.Array:
        """The hits."""
        return state.hits
