"""Shared pieces of the cursor-on-a-grid games (BattleShip, MineSweeper).

Both games show a square board of ``B x B`` cells with a cursor that the agent moves with the
arrow actions. :class:`BoardGame` holds what they share:

* the cursor rules (:func:`move_cursor`, :func:`random_cell`);
* the board geometry (:class:`BoardLayout`): cells separated by one-pixel grid lines (two at
  256), centred in the HUD's board area;
* the rendering: one tile image per (cell content, cursor or not), prepared at construction,
  and a frame that is one gather of those tiles (:func:`draw_utils.grid_image`) pasted onto
  the static background, plus the score.

Boards are indexed ``[row, col]`` = ``[y, x]``; the cursor is ``(x, y)`` = (column, row).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import draw_utils
from popgym_arcade.environments.game import PixelGame
from popgym_arcade.environments.randomness import integers_below

Color = tuple[int, int, int]


# ------------------------------------------------------------------------------------ cursor
def move_cursor(x: jax.Array, y: jax.Array, action: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """The cursor after ``action``: 0 up, 1 down, 2 left, 3 right, clamped to the board.

    Any other action (fire, or a value outside 0..4) leaves the cursor where it is.
    """
    dx = (action == 3).astype(jnp.int32) - (action == 2).astype(jnp.int32)
    dy = (action == 1).astype(jnp.int32) - (action == 0).astype(jnp.int32)
    return jnp.clip(x + dx, 0, size - 1), jnp.clip(y + dy, 0, size - 1)


def random_cell(words: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """A uniformly random cell ``(x, y)`` of a ``size x size`` board, edges included.

    ``words`` are two random ``uint32`` words, drawn with the rest of a reset's random numbers
    (see :mod:`popgym_arcade.environments.randomness`).
    """
    x, y = integers_below(words[:2], size)
    return x, y


def cell_mask(x: jax.Array, y: jax.Array, size: int) -> jax.Array:
    """``bool[size, size]``, true only at row ``y``, column ``x``."""
    rows = jnp.arange(size)[:, None]
    cols = jnp.arange(size)[None, :]
    return (rows == y) & (cols == x)


# ------------------------------------------------------------------------------------ layout
@dataclasses.dataclass(frozen=True)
class BoardLayout:
    """Where a ``cells x cells`` board lies in the frame (all numbers in pixels).

    Cell ``(x, y)`` occupies the square ``pitch`` pixels wide whose top-left corner is
    ``(left + x * pitch, top + y * pitch)``; its first ``line`` rows and columns are grid line,
    the rest (``cell`` pixels square) is the cell's interior. One more grid line closes the
    board on the right and at the bottom, so the board is ``side`` pixels square.
    """

    cells: int
    line: int
    pitch: int
    top: int
    left: int

    @property
    def cell(self) -> int:
        """Side of a cell's interior."""
        return self.pitch - self.line

    @property
    def side(self) -> int:
        """Side of the whole board, closing grid lines included."""
        return self.cells * self.pitch + self.line

    def interior(self, x: int, y: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``: the half-open pixel box of cell ``(x, y)``'s interior."""
        x0 = self.left + x * self.pitch + self.line
        y0 = self.top + y * self.pitch + self.line
        return x0, y0, x0 + self.cell, y0 + self.cell


def board_layout(cells: int, obs_size: int) -> BoardLayout:
    """The largest board of ``cells x cells`` square cells that fits the HUD's board area."""
    scale = obs_size // 128
    origin, extent = 16 * scale, 96 * scale  # PixelGame's board area
    line = scale
    pitch = (extent - line) // cells
    side = cells * pitch + line
    # Same centring as PixelGame.paste_board.
    return BoardLayout(cells, line, pitch, origin + (extent - side) // 2, (obs_size - side) // 2)


# ------------------------------------------------------------------------------ fast pixels
def pack_rgb(image: np.ndarray) -> np.ndarray:
    """``uint8[..., 3]`` -> ``uint32[...]``: one word per pixel (the fourth byte zero).

    Gathers move whole words much faster than byte triples; :func:`unpack_rgb` undoes this.
    The packing follows the host's byte order, which is the order XLA's bitcast reads back
    (little-endian on every platform JAX runs on).
    """
    image = np.asarray(image, dtype=np.uint8)
    padded = np.concatenate([image, np.zeros(image.shape[:-1] + (1,), np.uint8)], axis=-1)
    return np.ascontiguousarray(padded).view(np.uint32)[..., 0]


def unpack_rgb(words: jax.Array) -> jax.Array:
    """``uint32[...]`` -> ``uint8[..., 3]``, the inverse of :func:`pack_rgb`."""
    return jax.lax.bitcast_convert_type(words, jnp.uint8)[..., :3]


# -------------------------------------------------------------------------------- base class
class BoardGame(PixelGame):
    """A :class:`PixelGame` drawn as a board of tiles with a cursor.

    A subclass sets the colours below, ``num_kinds`` (the number of things a cell can show,
    kind 0 being an untouched cell), :meth:`draw_mark`, :meth:`cell_kinds`, :meth:`score` and
    :attr:`max_score`; its difficulty has a ``board_size`` and its state has ``cursor_x``,
    ``cursor_y`` and ``timestep``. The twins differ only in which cells show their kind: the
    MDP shows every cell, the POMDP only the cursor cell (every cell at t = 0).

    Rendering is one gather of tile rows and one small gather of a pre-drawn score: the tiles
    (:attr:`tiles`) and the score patches (every score from 0 to :attr:`max_score`, drawn with
    :meth:`draw_score`) are prepared at construction. Same pixels as
    ``draw_utils.grid_image`` and ``draw_score``, about five times faster.
    """

    cell_color: ClassVar[Color] = (0, 0, 0)
    cursor_color: ClassVar[Color] = (255, 255, 255)
    line_color: ClassVar[Color] = (102, 102, 102)
    num_kinds: ClassVar[int] = 1

    def __init__(self, difficulty: Any = "Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        self.tiles = self.make_tiles()
        lay = self.layout
        # Row r of the board image is row r % pitch of the tiles in cell row r // pitch.
        self._tile_rows = pack_rgb(self.tiles).reshape(-1, lay.pitch)
        self._cell_row = np.repeat(np.arange(lay.cells), lay.pitch)
        self._tile_row = np.tile(np.arange(lay.pitch), lay.cells)

    @functools.cached_property
    def layout(self) -> BoardLayout:
        """The board's geometry at this ``obs_size``."""
        return board_layout(self.difficulty.board_size, self.obs_size)

    def draw_background(self) -> np.ndarray:
        """The HUD plus an empty board (its closing grid lines are never redrawn)."""
        canvas = np.array(super().draw_background())
        lay = self.layout
        canvas[lay.top : lay.top + lay.side, lay.left : lay.left + lay.side] = self.line_color
        for y in range(lay.cells):
            for x in range(lay.cells):
                x0, y0, x1, y1 = lay.interior(x, y)
                canvas[y0:y1, x0:x1] = self.cell_color
        return canvas

    def draw_mark(self, cell: np.ndarray, kind: int, on_cursor: bool) -> np.ndarray:
        """Draw what a cell of ``kind`` (1 .. num_kinds-1) shows on ``cell``, its interior."""
        raise NotImplementedError

    def cell_kinds(self, state: Any) -> jax.Array:
        """``int[B, B]``: what each cell of ``state`` shows in the MDP (0 = nothing)."""
        raise NotImplementedError

    def score(self, state: Any) -> jax.Array:
        """The number in the top band (0 .. :attr:`max_score`)."""
        raise NotImplementedError

    def make_tiles(self) -> np.ndarray:
        """``uint8[2 * num_kinds, pitch, pitch, 3]``: tile ``kind + num_kinds * on_cursor``.

        A tile is a cell's interior with the grid lines above it and to its left.
        """
        lay = self.layout
        tiles = []
        for on_cursor in (False, True):
            for kind in range(self.num_kinds):
                tile = draw_utils.new_canvas(lay.pitch, lay.pitch, self.line_color)
                fill = self.cursor_color if on_cursor else self.cell_color
                cell = draw_utils.new_canvas(lay.cell, lay.cell, fill)
                if kind:
                    cell = np.asarray(self.draw_mark(cell, kind, on_cursor), dtype=np.uint8)
                tile[lay.line :, lay.line :] = cell
                tiles.append(tile)
        return np.stack(tiles)

    def board_image(self, kinds: jax.Array, cursor_x: jax.Array, cursor_y: jax.Array) -> jax.Array:
        """``uint8[B * pitch, B * pitch, 3]``: the cells showing ``kinds``, with the cursor.

        Equal to ``draw_utils.grid_image(self.tiles, ids)``, gathered a tile row at a time.
        """
        lay = self.layout
        on_cursor = cell_mask(cursor_x, cursor_y, lay.cells)
        ids = kinds.astype(jnp.int32) + self.num_kinds * on_cursor.astype(jnp.int32)
        rows = jnp.asarray(self._tile_rows)[ids[self._cell_row] * lay.pitch + self._tile_row[:, None]]
        span = lay.cells * lay.pitch
        return unpack_rgb(rows.reshape(span, span))

    def render_board(
        self, kinds: jax.Array, cursor_x: jax.Array, cursor_y: jax.Array, score: jax.Array
    ) -> jax.Array:
        """The frame: the background, the board's cells showing ``kinds`` with the cursor, the score."""
        lay = self.layout
        span = lay.cells * lay.pitch
        frame = self.frame().at[lay.top : lay.top + span, lay.left : lay.left + span].set(
            self.board_image(kinds, cursor_x, cursor_y)
        )
        return self.draw_score(frame, score)

    def render_mdp(self, state: Any) -> jax.Array:
        """Every cell's kind, the cursor and the score."""
        return self.render_board(self.cell_kinds(state), state.cursor_x, state.cursor_y, self.score(state))

    def render_pomdp(self, state: Any) -> jax.Array:
        """Only the cursor cell's kind (every cell's at t = 0), the cursor and the score."""
        visible = (state.timestep == 0) | cell_mask(state.cursor_x, state.cursor_y, self.layout.cells)
        kinds = jnp.where(visible, self.cell_kinds(state), 0)
        return self.render_board(kinds, state.cursor_x, state.cursor_y, self.score(state))
