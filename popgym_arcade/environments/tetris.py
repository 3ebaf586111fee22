"""Tetris: stack falling tetrominoes and clear 10 lines; the POMDP twin hides the stack.

The rules are small pure functions of the board (:func:`collides`, :func:`drop`, :func:`place`,
:func:`clear_full_rows`); :class:`Tetris` strings them into one step and draws the board at
cell resolution through a tile gather.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import draw_utils
from popgym_arcade.environments.game import PixelGame
from popgym_arcade.environments.randomness import random_bits
from popgym_arcade.environments.struct import pytree, replace

ROWS, COLS = 20, 10
"""Board size in cells."""

SPAWN_X, SPAWN_Y = 3, 0
"""Board position (column, row) of the top-left corner of a new piece's 4x4 box."""

NUM_PIECES = 7
BAG_SIZE = NUM_PIECES

GAME_OVER_PENALTY = 1.0
"""Subtracted from the reward when a new piece cannot spawn."""

PIECE_NAMES = "IOTSZJL"
"""Piece ``k`` is ``PIECE_NAMES[k]``; on the board it is stored as ``k + 1`` (0 is empty)."""

PIECE_COLORS = (
    (0, 203, 225),  # I
    (225, 206, 0),  # O
    (187, 0, 222),  # T
    (0, 226, 64),  # S
    (208, 0, 0),  # Z
    (0, 119, 220),  # J
    (215, 144, 0),  # L
)

# Occupied (row, col) cells of each piece in its 4x4 box, for rotations 0..3 (clockwise).
SHAPES = np.array(
    [
        [  # I
            [(1, 0), (1, 1), (1, 2), (1, 3)],
            [(0, 2), (1, 2), (2, 2), (3, 2)],
            [(2, 0), (2, 1), (2, 2), (2, 3)],
            [(0, 1), (1, 1), (2, 1), (3, 1)],
        ],
        [[(1, 1), (1, 2), (2, 1), (2, 2)]] * 4,  # O
        [  # T
            [(1, 1), (2, 0), (2, 1), (2, 2)],
            [(1, 1), (2, 1), (2, 2), (3, 1)],
            [(2, 0), (2, 1), (2, 2), (3, 1)],
            [(1, 1), (2, 0), (2, 1), (3, 1)],
        ],
        [  # S
            [(1, 1), (1, 2), (2, 0), (2, 1)],
            [(1, 1), (2, 1), (2, 2), (3, 2)],
            [(2, 1), (2, 2), (3, 0), (3, 1)],
            [(1, 0), (2, 0), (2, 1), (3, 1)],
        ],
        [  # Z
            [(1, 0), (1, 1), (2, 1), (2, 2)],
            [(1, 2), (2, 1), (2, 2), (3, 1)],
            [(2, 0), (2, 1), (3, 1), (3, 2)],
            [(1, 1), (2, 0), (2, 1), (3, 0)],
        ],
        [  # J
            [(1, 0), (2, 0), (2, 1), (2, 2)],
            [(1, 1), (1, 2), (2, 1), (3, 1)],
            [(2, 0), (2, 1), (2, 2), (3, 2)],
            [(1, 1), (2, 1), (3, 0), (3, 1)],
        ],
        [  # L
            [(1, 2), (2, 0), (2, 1), (2, 2)],
            [(1, 1), (2, 1), (3, 1), (3, 2)],
            [(2, 0), (2, 1), (2, 2), (3, 0)],
            [(1, 0), (1, 1), (2, 1), (3, 1)],
        ],
    ],
    dtype=np.int32,
)
"""``int32[7, 4, 4, 2]``: piece, rotation, cell, (row, col) inside the piece's 4x4 box."""

# Tile kinds of the rendered board: 0 empty, 1..7 the pieces, then the line-clear flash.
FLASH_TILE = NUM_PIECES + 1

# Layout at 128 pixels (everything doubles at 256): cells of CELL px, the well centred
# horizontally in the 96 px board area, the preview column to its right.
CELL = 4
WELL_LEFT = 64 - COLS * CELL // 2
WELL_TOP = 24
PREVIEW_LEFT = WELL_LEFT + COLS * CELL + 6
PREVIEW_GAP = 4
WALL_COLOR = (255, 255, 255)
PANEL_COLOR = (0, 0, 0)


@dataclasses.dataclass(frozen=True)
class TetrisDifficulty:
    """One difficulty level of Tetris.

    Attributes:
        preview: number of upcoming pieces shown.
        gravity: rows the piece falls per step (unless soft-dropping).
        soft_drop: rows the piece falls on a "down" step (instead of gravity).
        lines_to_win: lines to clear to win; each line pays ``1 / lines_to_win``.
    """

    preview: int
    gravity: int
    soft_drop: int
    lines_to_win: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.preview < BAG_SIZE:
            raise ValueError(f"preview must be in 1..{BAG_SIZE - 1}, got {self.preview}")
        if self.gravity < 1 or self.soft_drop < 1 or self.lines_to_win < 1:
            raise ValueError(f"gravity, soft_drop and lines_to_win must be >= 1, got {self}")


@pytree
class TetrisParams:
    """Tunable numbers of Tetris.

    Attributes:
        max_steps_in_episode: the episode is truncated after this many steps.
    """

    max_steps_in_episode: int = 3000


@pytree
class TetrisState:
    """State of a Tetris game.

    Attributes:
        timestep: steps since reset (``int32``).
        board: ``int32[20, 10]`` locked blocks: 0 empty, ``k + 1`` a block of piece ``k``.
        bag: ``int32[14]`` two 7-bags (permutations of 0..6): the piece sequence from the bag
            of the falling piece on.
        bag_index: position of the falling piece in ``bag`` (0..6); the previews follow it.
        x, y: board column and row of the top-left corner of the falling piece's 4x4 box.
        rotation: rotation of the falling piece (0..3).
        locked: the falling piece was written into ``board`` on the last step; the next step
            removes the full rows and spawns the next piece.
        lines: lines cleared so far (the score).
    """

    timestep: jax.Array
    board: jax.Array
    bag: jax.Array
    bag_index: jax.Array
    x: jax.Array
    y: jax.Array
    rotation: jax.Array
    locked: jax.Array
    lines: jax.Array

    @property
    def piece(self) -> jax.Array:
        """Index (0..6) of the falling piece."""
        return self.bag[self.bag_index]


# ------------------------------------------------------------------------------------- rules
def piece_cells(
    piece: jax.Array, rotation: jax.Array, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Board ``(rows, cols)`` (each ``int32[4]``) of a piece placed with its box at ``(x, y)``."""
    cells = jnp.asarray(SHAPES)[piece, rotation]
    return y + cells[:, 0], x + cells[:, 1]


def collides(
    board: jax.Array, piece: jax.Array, rotation: jax.Array, x: jax.Array, y: jax.Array
) -> jax.Array:
    """Whether the placement leaves the board or overlaps a locked block."""
    rows, cols = piece_cells(piece, rotation, x, y)
    outside = (rows < 0) | (rows >= ROWS) | (cols < 0) | (cols >= COLS)
    taken = board[jnp.clip(rows, 0, ROWS - 1), jnp.clip(cols, 0, COLS - 1)] != 0
    return jnp.any(outside | taken)


def drop(
    board: jax.Array,
    piece: jax.Array,
    rotation: jax.Array,
    x: jax.Array,
    y: jax.Array,
    rows: jax.Array,
    max_rows: int,
) -> jax.Array:
    """The row reached by falling up to ``rows`` (at most the static ``max_rows``) rows.

    The piece moves one row at a time and stops above the first collision, so it never
    passes through a gap.
    """
    falling = jnp.asarray(True)
    for i in range(max_rows):
        falling = falling & (i < rows) & ~collides(board, piece, rotation, x, y + 1)
        y = y + falling.astype(y.dtype)
    return y


def place(board: jax.Array, piece: jax.Array, rotation: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """The board with the piece written into it."""
    rows, cols = piece_cells(piece, rotation, x, y)
    return board.at[rows, cols].set(piece + 1, mode="drop")


def full_rows(board: jax.Array) -> jax.Array:
    """``bool[20]``: the rows with no empty cell."""
    return jnp.all(board != 0, axis=1)


def clear_full_rows(board: jax.Array) -> jax.Array:
    """Remove the full rows; the rows above them fall, keeping their order."""
    full = full_rows(board)
    # Each kept row falls by the number of full rows below it; full rows go out of range.
    below = jnp.cumsum(full[::-1])[::-1] - full
    destination = jnp.where(full, ROWS, jnp.arange(ROWS) + below)
    return jnp.zeros_like(board).at[destination].set(board, mode="drop")


def new_bags(key: jax.Array, count: int = 1) -> jax.Array:
    """``int32[count * 7]``: ``count`` independent, uniformly random permutations of the pieces."""
    # The rank of each of seven random words is a uniform permutation; counting smaller
    # words (ties broken by position) is cheaper than a sort on small batches.
    u = random_bits(key, (count, BAG_SIZE, 1))
    v = jnp.swapaxes(u, 1, 2)
    order = jnp.arange(BAG_SIZE)
    before = (v < u) | ((v == u) & (order[None, :] < order[:, None]))
    return jnp.sum(before, axis=2, dtype=jnp.int32).reshape(-1)


# ----------------------------------------------------------------------------------- sprites
def _cell_tile(color: tuple[int, int, int], size: int, edge: int) -> np.ndarray:
    """A block: the colour with a darker bevel on the right and bottom ``edge`` pixels."""
    tile = draw_utils.new_canvas(size, size, color)
    shade = tuple(int(c * 0.55) for c in color)
    tile[size - edge :, :] = shade
    tile[:, size - edge :] = shade
    return tile


def _preview_sprite(piece: int, cell: int, gap: int) -> np.ndarray:
    """Piece ``piece`` in rotation 0, centred in a 2 x 4 cell box, with ``gap`` blank rows below."""
    cells = SHAPES[piece, 0]
    rows, cols = cells[:, 0] - cells[:, 0].min(), cells[:, 1] - cells[:, 1].min()
    height, width = rows.max() + 1, cols.max() + 1
    top, left = (2 - height) * cell // 2, (4 - width) * cell // 2
    sprite = draw_utils.new_canvas(2 * cell + gap, 4 * cell, PANEL_COLOR)
    tile = _cell_tile(PIECE_COLORS[piece], cell, max(cell // CELL, 1))
    for r, c in zip(rows, cols):
        sprite[top + r * cell : top + (r + 1) * cell, left + c * cell : left + (c + 1) * cell] = tile
    return sprite


class Tetris(PixelGame):
    """Tetris on a 20 x 10 board: clear 10 lines before the stack reaches the top.

    Tetrominoes (I, O, T, S, Z, J, L) fall from the top of the well. The agent moves and
    rotates the falling piece; when it lands it locks into the stack, and every full row
    disappears, the rows above falling into its place. The pieces come from a 7-bag: each
    block of seven consecutive pieces, from the first piece of the episode on, holds each
    tetromino once. The next pieces are shown beside the well.

    - rules, per step:
        1. after a lock (the previous step), the full rows are removed and the next piece
           spawns with its 4x4 box at column 3, row 0, in rotation 0; if it overlaps the stack
           the game is over;
        2. the action moves the piece, if the moved piece fits (no wall kicks);
        3. gravity: the piece falls ``gravity`` rows (``soft_drop`` rows on a "down" step
           instead), one row at a time, stopping on the first obstacle (no tunnelling);
        4. if it cannot fall one more row it locks at once (no lock delay); its frame shows
           it in place, and the full rows it made flash white until the next step clears them.

    - action: ``int32``, ``Discrete(5)``:
        - 0 up: rotate clockwise;
        - 1 down: soft drop (``soft_drop`` rows instead of gravity);
        - 2 left, 3 right: shift one column;
        - 4 fire: no move (the piece just falls);
        - any other value: a no-op like 4; time still passes.

    - reward: ``1 / lines_to_win`` (0.1) per cleared line, paid on the step that completes the
      lines, but never more than the lines still needed to win
      (``min(L, lines_to_win - lines) / lines_to_win``); ``-1`` when a piece cannot spawn.
      An episode's return is ``min(lines, 10) / 10`` minus 1 on game over: within ``[-1, 1]``,
      with 1 for a win and -1 for a game over without any line.

    - episode end:
        - terminated: ``lines_to_win`` lines cleared (win), or a blocked spawn (game over);
        - truncated: ``max_steps_in_episode`` (3000) steps.

    - difficulty:

        ======================  ====  ======  ====
        level                   Easy  Medium  Hard
        ======================  ====  ======  ====
        preview (next pieces)   3     2       1
        gravity (rows/step)     1     1       2
        soft_drop (rows/step)   2     2       3
        lines_to_win            10    10      10
        max_steps_in_episode    3000  3000    3000
        ======================  ====  ======  ====

    - observation: ``uint8[S, S, 3]``. The well (4 px cells at 128, 8 px at 256) between white
      walls, the previews to its right (top = next), the lines cleared at the top, "TETRIS"
      at the bottom. The MDP shows the stack of locked blocks and the falling piece; the
      POMDP hides the stack and shows only the falling piece, the previews, the white
      flash of full rows and the score, so the agent must remember where its pieces landed.
      At t = 0 the POMDP shows the stack too (empty after reset), so the twins' first frames
      are equal.

    - state: :class:`TetrisState`.
    """

    difficulties = {
        "Easy": TetrisDifficulty(preview=3, gravity=1, soft_drop=2),
        "Medium": TetrisDifficulty(preview=2, gravity=1, soft_drop=2),
        "Hard": TetrisDifficulty(preview=1, gravity=2, soft_drop=3),
    }
    title = "TETRIS"
    return_range = (-1.0, 1.0)
    background_color = (128, 128, 128)
    title_color = (255, 255, 0)
    score_color = (255, 48, 71)

    def __init__(self, difficulty: Any = "Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        s = self.scale
        cell = CELL * s
        empty = draw_utils.new_canvas(cell, cell, PANEL_COLOR)
        # A faint dot per empty cell lets a player count columns.
        empty[cell - s :, cell - s :] = 40
        # A full row flashes as a row of white blocks, set apart from the white walls by a bevel.
        flash = _cell_tile((255, 255, 255), cell, s)
        blocks = [_cell_tile(color, cell, s) for color in PIECE_COLORS]
        self.tiles = np.stack([empty, *blocks, flash])
        self.preview_sprites = np.stack(
            [_preview_sprite(k, cell, PREVIEW_GAP * s) for k in range(NUM_PIECES)]
        )

    @property
    def max_score(self) -> int:
        """The most lines a game can reach: a 4-line clear one line short of the win."""
        # A lock adds at most 4 lines to at most lines_to_win - 1.
        return self.difficulty.lines_to_win + 3

    # ----------------------------------------------------------------------------- layout
    @property
    def well_box(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` pixels of the well (the 20 x 10 cells)."""
        s = self.scale
        return WELL_LEFT * s, WELL_TOP * s, (WELL_LEFT + COLS * CELL) * s, (WELL_TOP + ROWS * CELL) * s

    @property
    def preview_box(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` pixels of the preview column (slots of 2 x 4 cells)."""
        s = self.scale
        height = self.difficulty.preview * (2 * CELL + PREVIEW_GAP) * s
        return PREVIEW_LEFT * s, WELL_TOP * s, (PREVIEW_LEFT + 4 * CELL) * s, WELL_TOP * s + height

    def draw_background(self) -> np.ndarray:
        """Grey frame, black board area, white walls and floor around the well."""
        canvas = np.array(super().draw_background())
        s = self.scale
        a, b = self.board_origin, self.board_origin + self.board_extent
        canvas[a:b, a:b] = PANEL_COLOR
        left, top, right, bottom = self.well_box
        canvas[top : bottom + s, left - s : left] = WALL_COLOR
        canvas[top : bottom + s, right : right + s] = WALL_COLOR
        canvas[bottom : bottom + s, left - s : right + s] = WALL_COLOR
        return canvas

    # ------------------------------------------------------------------------------ rules
    @property
    def default_params(self) -> TetrisParams:
        """``TetrisParams(max_steps_in_episode=3000)``."""
        return TetrisParams()

    def reset_state(self, key: jax.Array, params: Any) -> TetrisState:
        """An empty board; the first piece of a fresh 7-bag at the spawn position."""
        zero = jnp.int32(0)
        return TetrisState(
            timestep=zero,
            board=jnp.zeros((ROWS, COLS), jnp.int32),
            bag=new_bags(key, 2),
            bag_index=zero,
            x=jnp.int32(SPAWN_X),
            y=jnp.int32(SPAWN_Y),
            rotation=zero,
            locked=jnp.asarray(False),
            lines=zero,
        )

    def step_state(
        self, key: jax.Array, state: TetrisState, action: jax.Array, params: Any
    ) -> tuple[TetrisState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Spawn after a lock, move, fall, lock and score (see the class docstring)."""
        level = self.difficulty
        locked = state.locked
        action = jnp.asarray(action, jnp.int32)

        # 1. The lock of the previous step is resolved now, so its frame showed the piece
        # in place and the full rows flashing.
        board = jnp.where(locked, clear_full_rows(state.board), state.board)
        bag_index = state.bag_index + locked.astype(jnp.int32)
        wrapped = bag_index == BAG_SIZE
        bag = jnp.where(wrapped, jnp.concatenate([state.bag[BAG_SIZE:], new_bags(key)]), state.bag)
        bag_index = jnp.where(wrapped, 0, bag_index)
        piece = bag[bag_index]
        x = jnp.where(locked, SPAWN_X, state.x)
        y = jnp.where(locked, SPAWN_Y, state.y)
        rotation = jnp.where(locked, 0, state.rotation)
        game_over = locked & collides(board, piece, rotation, x, y)
        alive = ~game_over

        # 2. Move.
        shift = jnp.where(action == 2, -1, 0) + jnp.where(action == 3, 1, 0)
        new_x = x + shift
        new_rotation = (rotation + (action == 0).astype(jnp.int32)) % 4
        fits = alive & ~collides(board, piece, new_rotation, new_x, y)
        x = jnp.where(fits, new_x, x)
        rotation = jnp.where(fits, new_rotation, rotation)

        # 3. Fall.
        rows = jnp.where(action == 1, level.soft_drop, level.gravity) * alive.astype(jnp.int32)
        y = drop(board, piece, rotation, x, y, rows, max(level.soft_drop, level.gravity))

        # 4. Lock and score.
        lands = alive & collides(board, piece, rotation, x, y + 1)
        board = jnp.where(lands, place(board, piece, rotation, x, y), board)
        new_lines = jnp.where(lands, jnp.sum(full_rows(board), dtype=jnp.int32), 0)
        paid = jnp.minimum(new_lines, jnp.maximum(level.lines_to_win - state.lines, 0))
        reward = paid.astype(jnp.float32) / level.lines_to_win - GAME_OVER_PENALTY * game_over
        lines = state.lines + new_lines

        timestep = state.timestep + 1
        next_state = replace(
            state,
            timestep=timestep,
            board=board,
            bag=bag,
            bag_index=bag_index,
            x=x,
            y=y,
            rotation=rotation,
            locked=lands,
            lines=lines,
        )
        terminated = game_over | (lines >= level.lines_to_win)
        truncated = timestep >= params.max_steps_in_episode
        return next_state, reward, terminated, truncated, {}

    # ----------------------------------------------------------------------------- render
    def previews(self, state: TetrisState) -> jax.Array:
        """``int32[preview]``: the next pieces, soonest first."""
        return jax.lax.dynamic_slice(state.bag, (state.bag_index + 1,), (self.difficulty.preview,))

    def _render(self, state: TetrisState, show_stack: jax.Array) -> jax.Array:
        ids = jnp.where(show_stack, state.board, 0)
        rows, cols = piece_cells(state.piece, state.rotation, state.x, state.y)
        ids = ids.at[rows, cols].set(state.piece + 1, mode="drop")
        ids = jnp.where(full_rows(state.board)[:, None], FLASH_TILE, ids)
        canvas = self.frame()
        left, top, right, bottom = self.well_box
        canvas = canvas.at[top:bottom, left:right].set(draw_utils.grid_image(self.tiles, ids))
        left, top, right, bottom = self.preview_box
        panel = jnp.asarray(self.preview_sprites)[self.previews(state)].reshape(bottom - top, right - left, 3)
        canvas = canvas.at[top:bottom, left:right].set(panel)
        return self.draw_score(canvas, state.lines)

    def render_mdp(self, state: TetrisState) -> jax.Array:
        """The stack, the falling piece, the previews and the lines cleared."""
        return self._render(state, jnp.asarray(True))

    def render_pomdp(self, state: TetrisState) -> jax.Array:
        """As the MDP frame without the stack (shown only at t = 0)."""
        return self._render(state, state.timestep == 0)
