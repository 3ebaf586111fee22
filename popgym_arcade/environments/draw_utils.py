"""The draw toolkit: primitives for making pixel twins.

Every function takes the canvas first and returns a new canvas: ``uint8[H, W, 3]`` of any size.
Boxes are ``top_left=(x0, y0)`` and ``bottom_right=(x1, y1)`` in pixels, half-open
(``x0 <= x < x1``), with ``x`` the column and ``y`` the row; shapes fill their box and are
clipped to the canvas. Positions may be traced JAX values, so the functions work under ``jit``
and ``vmap``; colours are ``(r, g, b)`` in 0..255 and overwrite (never add to) the canvas.

A primitive costs one pass over the canvas it is given. Given only host data (numpy arrays,
Python numbers) a primitive computes with numpy and returns a numpy array, so static parts drawn
at construction cost no JAX dispatch or compilation; given any JAX array (a traced position, a
device canvas) it computes with ``jax.numpy``. For fast twins, draw static parts once at
construction and draw dynamic parts on small canvases
(a slice around the object, a sprite, a board at cell resolution) that are then scaled up with
:func:`upscale` or placed with :func:`paste`.

Example::

    canvas = jnp.zeros((128, 128, 3), jnp.uint8)
    canvas = draw_rectangle(canvas, (10, 10), (30, 20), (255, 0, 0))
    canvas = draw_number(canvas, (40, 0), (88, 14), jnp.int32(-42), (255, 255, 255))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import font

Color = Sequence[int] | jax.Array
Point = Sequence[Any] | jax.Array

__all__ = [
    "new_canvas",
    "paint",
    "draw_rectangle",
    "draw_circle",
    "draw_ring",
    "draw_triangle",
    "draw_hexagon",
    "draw_cross",
    "draw_line",
    "draw_heart",
    "draw_diamond",
    "draw_club",
    "draw_spade",
    "draw_suit",
    "draw_grid",
    "draw_text",
    "text_width",
    "text_bitmap",
    "draw_number",
    "draw_sub_canvas",
    "paste",
    "upscale",
    "grid_image",
]


# ------------------------------------------------------------------------------------- basics
def new_canvas(height: int, width: int, color: Color = (0, 0, 0)) -> np.ndarray:
    """A ``uint8[height, width, 3]`` numpy canvas filled with ``color``."""
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[...] = np.asarray(color, dtype=np.uint8)
    return canvas


def _namespace(*values: Any) -> Any:
    """``numpy`` where every value is host data (static drawing at construction: no JAX
    dispatch or compilation), else ``jax.numpy`` (traced values, device arrays)."""
    for leaf in jax.tree.leaves(values):
        if isinstance(leaf, jax.Array):
            return jnp
    return np


def paint(canvas: Any, mask: jax.Array, color: Color) -> jax.Array:
    """Set the pixels where ``mask`` (``bool[H, W]``) is true to ``color``."""
    xp = _namespace(canvas, mask)
    color = xp.asarray(color, dtype=xp.uint8)
    return xp.where(mask[..., None], color, xp.asarray(canvas, dtype=xp.uint8))


def _centres(canvas: Any, xp: Any) -> tuple[jax.Array, jax.Array]:
    """Pixel-centre coordinates: ``x`` of shape ``(1, W)``, ``y`` of shape ``(H, 1)``."""
    height, width = np.shape(canvas)[:2]
    x = xp.arange(width, dtype=xp.float32)[None, :] + 0.5
    y = xp.arange(height, dtype=xp.float32)[:, None] + 0.5
    return x, y


def _box(top_left: Point, bottom_right: Point, xp: Any) -> tuple[jax.Array, ...]:
    x0, y0 = (xp.asarray(v, dtype=xp.float32) for v in (top_left[0], top_left[1]))
    x1, y1 = (xp.asarray(v, dtype=xp.float32) for v in (bottom_right[0], bottom_right[1]))
    return x0, y0, x1, y1


def _box_mask(canvas: Any, top_left: Point, bottom_right: Point, xp: Any) -> jax.Array:
    x, y = _centres(canvas, xp)
    x0, y0, x1, y1 = _box(top_left, bottom_right, xp)
    return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)


def _unit_coords(canvas: Any, top_left: Point, bottom_right: Point, xp: Any) -> tuple[jax.Array, jax.Array]:
    """Coordinates scaled so the box spans ``[-1, 1]`` on both axes, ``v`` pointing up."""
    x, y = _centres(canvas, xp)
    x0, y0, x1, y1 = _box(top_left, bottom_right, xp)
    u = (x - (x0 + x1) / 2) / xp.maximum((x1 - x0) / 2, 0.5)
    v = ((y0 + y1) / 2 - y) / xp.maximum((y1 - y0) / 2, 0.5)
    return u, v


# ------------------------------------------------------------------------------------- shapes
def draw_rectangle(canvas: Any, top_left: Point, bottom_right: Point, color: Color) -> jax.Array:
    """Fill the box ``[x0, x1) x [y0, y1)``."""
    xp = _namespace(canvas, top_left, bottom_right)
    return paint(canvas, _box_mask(canvas, top_left, bottom_right, xp), color)


def _disc_mask(canvas: Any, top_left: Point, bottom_right: Point, xp: Any) -> jax.Array:
    x, y = _centres(canvas, xp)
    x0, y0, x1, y1 = _box(top_left, bottom_right, xp)
    radius = xp.minimum(x1 - x0, y1 - y0) / 2
    return (x - (x0 + x1) / 2) ** 2 + (y - (y0 + y1) / 2) ** 2 <= radius**2


def draw_circle(canvas: Any, top_left: Point, bottom_right: Point, color: Color) -> jax.Array:
    """Fill the largest disc centred in the box."""
    xp = _namespace(canvas, top_left, bottom_right)
    return paint(canvas, _disc_mask(canvas, top_left, bottom_right, xp), color)


def draw_ring(
    canvas: Any, top_left: Point, bottom_right: Point, color: Color, thickness: float = 1.0
) -> jax.Array:
    """Draw the outline (``thickness`` pixels wide) of the largest circle centred in the box."""
    xp = _namespace(canvas, top_left, bottom_right)
    x, y = _centres(canvas, xp)
    x0, y0, x1, y1 = _box(top_left, bottom_right, xp)
    radius = xp.minimum(x1 - x0, y1 - y0) / 2
    distance = xp.sqrt((x - (x0 + x1) / 2) ** 2 + (y - (y0 + y1) / 2) ** 2)
    return paint(canvas, (distance <= radius) & (distance > radius - thickness), color)


_TRIANGLE_DIRECTIONS = ("up", "down", "left", "right")


def draw_triangle(
    canvas: Any, top_left: Point, bottom_right: Point, color: Color, direction: str = "up"
) -> jax.Array:
    """Fill an isosceles triangle inside the box, its apex pointing ``direction``.

    ``direction`` is one of ``"up"``, ``"down"``, ``"left"``, ``"right"``; the base lies on the
    opposite side of the box.
    """
    xp = _namespace(canvas, top_left, bottom_right)
    if direction not in _TRIANGLE_DIRECTIONS:
        raise ValueError(f"direction must be one of {_TRIANGLE_DIRECTIONS}, got {direction!r}")
    u, v = _unit_coords(canvas, top_left, bottom_right, xp)
    # Rotate so the apex points up: along = distance from the base towards the apex, in [0, 2].
    along, across = {"up": (v + 1, u), "down": (1 - v, u), "left": (1 - u, v), "right": (u + 1, v)}[direction]
    inside = (along >= 0) & (along <= 2) & (xp.abs(across) <= 1 - along / 2)
    return paint(canvas, inside, color)


def draw_hexagon(canvas: Any, top_left: Point, bottom_right: Point, color: Color) -> jax.Array:
    """Fill a regular hexagon (flat top and bottom) centred in the box, as large as fits."""
    xp = _namespace(canvas, top_left, bottom_right)
    x, y = _centres(canvas, xp)
    x0, y0, x1, y1 = _box(top_left, bottom_right, xp)
    radius = xp.minimum((x1 - x0) / 2, (y1 - y0) / math.sqrt(3))
    dx = xp.abs(x - (x0 + x1) / 2) / radius
    dy = xp.abs(y - (y0 + y1) / 2) / radius
    inside = (dy <= math.sqrt(3) / 2) & (math.sqrt(3) * dx + dy <= math.sqrt(3))
    return paint(canvas, inside, color)


def _segment_distance(x: jax.Array, y: jax.Array, start: Point, end: Point, xp: Any) -> jax.Array:
    sx, sy = (xp.asarray(v, dtype=xp.float32) for v in (start[0], start[1]))
    ex, ey = (xp.asarray(v, dtype=xp.float32) for v in (end[0], end[1]))
    dx, dy = ex - sx, ey - sy
    length2 = xp.maximum(dx * dx + dy * dy, 1e-6)
    t = xp.clip(((x - sx) * dx + (y - sy) * dy) / length2, 0.0, 1.0)
    return xp.sqrt((x - sx - t * dx) ** 2 + (y - sy - t * dy) ** 2)


def draw_line(canvas: Any, start: Point, end: Point, color: Color, thickness: float = 1.0) -> jax.Array:
    """Draw a segment from ``start=(x, y)`` to ``end`` with round caps, ``thickness`` wide."""
    xp = _namespace(canvas, start, end)
    x, y = _centres(canvas, xp)
    return paint(canvas, _segment_distance(x, y, start, end, xp) <= thickness / 2, color)


def draw_cross(
    canvas: Any, top_left: Point, bottom_right: Point, color: Color, thickness: float = 1.0
) -> jax.Array:
    """Draw an X: both diagonals of the box, ``thickness`` wide, clipped to the box."""
    xp = _namespace(canvas, top_left, bottom_right)
    x, y = _centres(canvas, xp)
    x0, y0, x1, y1 = _box(top_left, bottom_right, xp)
    near = xp.minimum(
        _segment_distance(x, y, (x0, y0), (x1, y1), xp), _segment_distance(x, y, (x1, y0), (x0, y1), xp)
    )
    return paint(canvas, (near <= thickness / 2) & _box_mask(canvas, top_left, bottom_right, xp), color)


# -------------------------------------------------------------------------------- card suits
def _heart_inside(u: jax.Array, v: jax.Array) -> jax.Array:
    # The classic heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 < 0 spans x in [-1.14, 1.14] and
    # y in [-1, 1.25]; map the box's [-1, 1]^2 onto that extent.
    hx = u * 1.16
    hy = v * 1.14 + 0.12
    return (hx * hx + hy * hy - 1) ** 3 - hx * hx * hy**3 < 0


def draw_heart(canvas: Any, top_left: Point, bottom_right: Point, color: Color) -> jax.Array:
    """Fill a heart that spans the box."""
    xp = _namespace(canvas, top_left, bottom_right)
    u, v = _unit_coords(canvas, top_left, bottom_right, xp)
    return paint(canvas, _heart_inside(u, v), color)


def draw_diamond(canvas: Any, top_left: Point, bottom_right: Point, color: Color) -> jax.Array:
    """Fill a diamond (a rhombus touching the middle of each side of the box)."""
    xp = _namespace(canvas, top_left, bottom_right)
    u, v = _unit_coords(canvas, top_left, bottom_right, xp)
    return paint(canvas, xp.abs(u) + xp.abs(v) <= 1, color)


def _stem(u: jax.Array, v: jax.Array, xp: Any) -> jax.Array:
    """A flared stem in the bottom of the box: narrow at v = -0.35, wide at v = -1."""
    height = xp.clip((-0.35 - v) / 0.65, 0.0, 1.0)
    return (v <= -0.35) & (v >= -1) & (xp.abs(u) <= 0.1 + 0.45 * height)


def draw_spade(canvas: Any, top_left: Point, bottom_right: Point, color: Color) -> jax.Array:
    """Fill a spade: an upside-down heart over a flared stem."""
    xp = _namespace(canvas, top_left, bottom_right)
    u, v = _unit_coords(canvas, top_left, bottom_right, xp)
    # The inverted heart occupies the top three quarters of the box.
    body = _heart_inside(u, -((v - 0.25) / 0.75))
    return paint(canvas, body | _stem(u, v, xp), color)


def draw_club(canvas: Any, top_left: Point, bottom_right: Point, color: Color) -> jax.Array:
    """Fill a club: three discs (top, lower left, lower right) over a flared stem."""
    xp = _namespace(canvas, top_left, bottom_right)
    u, v = _unit_coords(canvas, top_left, bottom_right, xp)
    r = 0.42
    lobes = (
        (u**2 + (v - 0.56) ** 2 <= r**2)
        | ((u + 0.54) ** 2 + (v + 0.02) ** 2 <= r**2)
        | ((u - 0.54) ** 2 + (v + 0.02) ** 2 <= r**2)
        | ((xp.abs(u) <= 0.16) & (xp.abs(v - 0.2) <= 0.3))
    )
    return paint(canvas, lobes | _stem(u, v, xp), color)


SUITS = ("heart", "spade", "club", "diamond")
"""Suit order used by the card games: 0 heart, 1 spade, 2 club, 3 diamond."""

SUIT_COLORS = ((220, 20, 40), (0, 0, 0), (0, 0, 0), (220, 20, 40))
"""Default colour of each suit: red hearts and diamonds, black spades and clubs."""

_SUIT_DRAWERS = {"heart": draw_heart, "spade": draw_spade, "club": draw_club, "diamond": draw_diamond}


def draw_suit(canvas: Any, top_left: Point, bottom_right: Point, suit: str | int, color: Color | None = None) -> jax.Array:
    """Draw the card suit ``suit`` (a name or a static index into :data:`SUITS`).

    ``color`` defaults to the suit's colour in :data:`SUIT_COLORS`.
    """
    index = SUITS.index(suit) if isinstance(suit, str) else int(suit)
    if not 0 <= index < len(SUITS):
        raise ValueError(f"suit must be one of {SUITS} or 0..3, got {suit!r}")
    color = SUIT_COLORS[index] if color is None else color
    return _SUIT_DRAWERS[SUITS[index]](canvas, top_left, bottom_right, color)


# --------------------------------------------------------------------------------------- grids
def draw_grid(
    canvas: Any,
    top_left: Point,
    cell_size: int,
    shape: tuple[int, int],
    color: Color,
    thickness: int = 1,
) -> jax.Array:
    """Draw the lines of a ``rows x cols`` grid of square cells.

    Cells are ``cell_size`` pixels, separated and surrounded by lines ``thickness`` pixels
    wide, so the grid spans ``cols * (cell_size + thickness) + thickness`` pixels across.
    """
    xp = _namespace(canvas, top_left)
    rows, cols = shape
    period = cell_size + thickness
    x, y = _centres(canvas, xp)
    x0, y0 = (xp.asarray(v, dtype=xp.float32) for v in (top_left[0], top_left[1]))
    rx = xp.floor(x - x0)
    ry = xp.floor(y - y0)
    inside = (rx >= 0) & (rx < cols * period + thickness) & (ry >= 0) & (ry < rows * period + thickness)
    on_line = (xp.mod(rx, period) < thickness) | (xp.mod(ry, period) < thickness)
    return paint(canvas, inside & on_line, color)


# ---------------------------------------------------------------------------------------- text
Scale = int | tuple[int, int]


def _scale_pair(scale: Scale) -> tuple[int, int]:
    """``(rows, cols)`` pixels per font cell from an int or a ``(rows, cols)`` pair."""
    return (scale, scale) if isinstance(scale, int) else (int(scale[0]), int(scale[1]))


def text_width(text: str, scale: Scale = 1, spacing: int | None = None) -> int:
    """Width in pixels of ``text`` drawn by :func:`draw_text` with these ``scale`` and ``spacing``."""
    _, scale_x = _scale_pair(scale)
    spacing = scale_x if spacing is None else spacing
    return max(len(text) * (font.GLYPH_SIZE * scale_x + spacing) - spacing, 0)


def text_bitmap(text: str, scale: Scale = 1, spacing: int | None = None) -> np.ndarray:
    """``bool[5 * rows, text_width]``: the lit pixels of ``text`` (a static string)."""
    scale_y, scale_x = _scale_pair(scale)
    spacing = scale_x if spacing is None else spacing
    columns: list[np.ndarray] = []
    for i, char in enumerate(text):
        if i:
            columns.append(np.zeros((font.GLYPH_SIZE * scale_y, spacing), dtype=bool))
        columns.append(np.kron(font.glyph(char), np.ones((scale_y, scale_x), dtype=bool)))
    if not columns:
        return np.zeros((font.GLYPH_SIZE * scale_y, 0), dtype=bool)
    return np.concatenate(columns, axis=1)


def draw_text(
    canvas: Any, top_left: Point, text: str, color: Color, scale: Scale = 1, spacing: int | None = None
) -> jax.Array:
    """Write the static string ``text`` in the 5x5 font, each font cell ``scale`` pixels.

    ``scale`` is an int, or ``(rows, cols)`` for narrow or wide letters. Glyphs are ``spacing``
    pixels apart (default: one font cell). Letters are upper-cased; see
    :data:`popgym_arcade.environments.font.GLYPHS` for the characters available.
    """
    xp = _namespace(canvas, top_left)
    bitmap = xp.asarray(text_bitmap(text, scale, spacing))
    x, y = _centres(canvas, xp)
    cols = xp.floor(x - xp.asarray(top_left[0], xp.float32)).astype(xp.int32)
    rows = xp.floor(y - xp.asarray(top_left[1], xp.float32)).astype(xp.int32)
    h, w = bitmap.shape
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    lit = bitmap[xp.clip(rows, 0, h - 1), xp.clip(cols, 0, w - 1)]
    return paint(canvas, inside & lit, color)


def draw_number(
    canvas: Any,
    top_left: Point,
    bottom_right: Point,
    number: jax.Array | int,
    color: Color,
    scale: int | None = None,
    max_digits: int = 6,
) -> jax.Array:
    """Write the integer ``number`` (traced or not) centred in the box, with a minus sign if negative.

    Font cells are ``scale`` pixels; by default the largest scale whose glyphs fit the box
    height (the box must then be given as Python numbers). Numbers with more than
    ``max_digits`` digits show their last ``max_digits`` digits.
    """
    xp = _namespace(canvas, top_left, bottom_right, number)
    if scale is None:
        try:
            height = int(bottom_right[1]) - int(top_left[1])
        except (TypeError, jax.errors.ConcretizationTypeError) as error:
            raise ValueError("draw_number needs a static scale when the box is traced") from error
        scale = max(height // font.GLYPH_SIZE, 1)
    chars, num_chars = _number_chars(xp.asarray(number, dtype=xp.int32), max_digits, xp)
    if xp is jnp and _namespace(top_left, bottom_right) is np:
        lit = _static_box_number_mask(canvas, top_left, bottom_right, chars, num_chars, scale, max_digits)
    else:
        x, y = _centres(canvas, xp)
        slot, col, row, inside_x, inside_y = _number_layout(
            x, y, top_left, bottom_right, num_chars, scale, max_digits, xp
        )
        lit = xp.asarray(font.digit_table())[chars[slot], row, col] & inside_x & inside_y
    return paint(canvas, lit, color)


def _static_box_number_mask(
    canvas: Any,
    top_left: Point,
    bottom_right: Point,
    chars: jax.Array,
    num_chars: jax.Array,
    scale: int,
    max_digits: int,
) -> jax.Array:
    """:func:`draw_number`'s lit pixels for a box given as host numbers, as two table lookups.

    Each possible length's layout is host data then, so XLA gets a lookup of every column's
    (character, glyph column) and one gather of glyph rows: a few kernels, where the traced
    layout arithmetic costs it about twenty.
    """
    glyph = font.GLYPH_SIZE
    table = font.digit_table()
    x, y = _centres(canvas, np)
    # Column code per length: slot * glyph + glyph column, or -1 off the glyphs. The rows do
    # not depend on the length, so those of the last length serve.
    codes = []
    for n in range(1, max_digits + 2):
        slot, col, row, inside_x, inside_y = _number_layout(
            x, y, top_left, bottom_right, n, scale, max_digits, np
        )
        codes.append(np.where(inside_x, slot * glyph + col, -1)[0])
    # Which rows each (character, glyph column) lights; the last entry lights none.
    lit_rows = np.zeros((len(table) * glyph + 1, np.shape(canvas)[0]), dtype=bool)
    lit_rows[:-1] = (table[:, row[:, 0], :] & inside_y).transpose(0, 2, 1).reshape(-1, len(row))
    code = jnp.asarray(np.stack(codes))[num_chars - 1]
    entry = jnp.where(code >= 0, chars[code // glyph] * glyph + code % glyph, len(lit_rows) - 1)
    return jnp.asarray(lit_rows)[entry].T


def _number_chars(number: Any, max_digits: int, xp: Any) -> tuple[Any, Any]:
    """``(chars, num_chars)``: ``number`` as ``max_digits + 1`` right-aligned character
    indices (:data:`font.DIGIT_INDEX`, blanks on the left), and how many are not blank."""
    magnitude = xp.abs(number)
    powers = xp.asarray([10**i for i in range(max_digits - 1, -1, -1)], dtype=xp.int32)
    digits = (magnitude // powers) % 10
    num_digits = xp.clip(xp.sum(magnitude >= powers), 1, max_digits)
    negative = number < 0
    num_chars = num_digits + negative.astype(xp.int32)
    slot = xp.arange(max_digits + 1)
    first = max_digits + 1 - num_chars
    digit_chars = xp.concatenate([xp.zeros(1, xp.int32), digits])
    chars = xp.where(slot < first, font.DIGIT_INDEX[" "], digit_chars)
    chars = xp.where(negative & (slot == first), font.DIGIT_INDEX["-"], chars)
    return chars, num_chars


def _number_layout(
    x: Any, y: Any, top_left: Point, bottom_right: Point, num_chars: Any, scale: int, max_digits: int, xp: Any
) -> tuple[Any, ...]:
    """Where the glyphs of a ``num_chars``-character number centred in the box fall.

    For pixel-centre columns ``x`` (``(1, W)``) and rows ``y`` (``(H, 1)``): ``(slot, col)`` of
    each column (character slot and glyph column, both clipped to valid indices), ``row`` of
    each row, and the masks of columns and rows that lie on a glyph inside the box.
    """
    pitch = (font.GLYPH_SIZE + 1) * scale
    first = max_digits + 1 - num_chars
    x0, y0, x1, y1 = _box(top_left, bottom_right, xp)
    width = xp.asarray(num_chars).astype(xp.float32) * pitch - scale
    start_x = xp.floor(x0 + (x1 - x0 - width) / 2) - xp.asarray(first).astype(xp.float32) * pitch
    start_y = xp.floor(y0 + (y1 - y0 - font.GLYPH_SIZE * scale) / 2)
    rel_x = xp.floor(x - start_x).astype(xp.int32)
    rel_y = xp.floor(y - start_y).astype(xp.int32)
    slot, col, row = rel_x // pitch, (rel_x % pitch) // scale, rel_y // scale
    inside_x = (slot >= first) & (slot <= max_digits) & (col < font.GLYPH_SIZE) & (x >= x0) & (x < x1)
    inside_y = (row >= 0) & (row < font.GLYPH_SIZE) & (y >= y0) & (y < y1)
    last = font.GLYPH_SIZE - 1
    return xp.clip(slot, 0, max_digits), xp.clip(col, 0, last), xp.clip(row, 0, last), inside_x, inside_y


# ----------------------------------------------------------------------------- composition
def paste(canvas: Any, image: Any, top_left: Point, mask: Any | None = None) -> jax.Array:
    """Place ``image`` (``uint8[h, w, 3]``) with its top-left corner at ``top_left``.

    Where ``mask`` (``bool[h, w]``) is given, only its true pixels are copied (a sprite). The
    position may be traced; the image must fit inside the canvas (positions are clamped so
    that it does, as in ``jax.lax.dynamic_update_slice``).
    """
    canvas = jnp.asarray(canvas, dtype=jnp.uint8)
    image = jnp.asarray(image, dtype=jnp.uint8)
    start = (jnp.asarray(top_left[1], jnp.int32), jnp.asarray(top_left[0], jnp.int32), jnp.int32(0))
    if mask is not None:
        under = jax.lax.dynamic_slice(canvas, start, image.shape)
        image = jnp.where(jnp.asarray(mask)[..., None], image, under)
    return jax.lax.dynamic_update_slice(canvas, image, start)


def draw_sub_canvas(canvas: Any, sub_canvas: Any) -> jax.Array:
    """Paste ``sub_canvas`` centred on ``canvas`` (both sizes must differ by an even number)."""
    height, width = np.shape(canvas)[:2]
    sub_h, sub_w = np.shape(sub_canvas)[:2]
    if (height - sub_h) % 2 or (width - sub_w) % 2 or sub_h > height or sub_w > width:
        raise ValueError(f"cannot centre a {sub_h}x{sub_w} sub-canvas on a {height}x{width} canvas")
    return paste(canvas, sub_canvas, ((width - sub_w) // 2, (height - sub_h) // 2))


def upscale(image: Any, factor: int | tuple[int, int]) -> jax.Array:
    """Nearest-neighbour upscaling of ``image[h, w, ...]`` by an integer ``factor`` (or ``(fy, fx)``)."""
    fy, fx = (factor, factor) if isinstance(factor, int) else factor
    image = jnp.asarray(image)
    return jnp.repeat(jnp.repeat(image, fy, axis=0), fx, axis=1)


def grid_image(tiles: Any, tile_ids: jax.Array) -> jax.Array:
    """Assemble a board from tiles: ``tiles[k]`` is a ``uint8[h, w, 3]`` image of tile kind ``k``.

    ``tile_ids`` (``int[rows, cols]``, traced) picks a tile per cell; the result is
    ``uint8[rows * h, cols * w, 3]``, built with one gather, so a board costs one pass over its
    pixels however many cells it has.
    """
    tiles = jnp.asarray(tiles)
    rows, cols = tile_ids.shape
    _, h, w, c = tiles.shape
    board = tiles[tile_ids]  # (rows, cols, h, w, c)
    return board.transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)
