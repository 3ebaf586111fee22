"""Card sprites and the card-history grid shared by the card games (CountRecall, AutoEncode).

Everything here is prepared once, at construction, as numpy constants: suit sprites, card
sprites and the tiles of a history grid. A history of any length is then drawn per step with
one gather (:func:`history_image`), so compile time does not grow with the number of cards.

Suits are numbered as in :data:`draw_utils.SUITS`: 0 heart, 1 spade, 2 club, 3 diamond
(hearts and diamonds red, spades and clubs black). Index :data:`BLANK` (4) is "no card".
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import draw_utils
from popgym_arcade.environments.game import BOARD_SIZE_AT_128, PixelGame
from popgym_arcade.environments.randomness import random_bits

NUM_SUITS = 4
BLANK = NUM_SUITS
"""Sprite index of an empty slot (the slot's background only)."""

NUM_SUITS_WITH_BLANK = NUM_SUITS + 1
"""Tiles per background style in :func:`suit_tiles`."""

CARD_FACE = (255, 255, 255)
"""Colour of a card's face."""

CARD_EDGE = (40, 40, 48)
"""Colour of a card's one-pixel outline."""

_SUPERSAMPLE = 4


def shuffled_deck(key: jax.Array, num_cards: int, num_types: int) -> jax.Array:
    """A uniformly shuffled deck: a random permutation of ``i mod num_types`` for ``i < num_cards``.

    Each card gets 32 random bits and moves to the rank of its bits among all cards (ties,
    with probability below ``num_cards**2 / 2**33``, broken by position). Counting ranks, and
    placing cards at their ranks, with ``num_cards x num_cards`` comparisons is several times
    faster on CPU than a sort or a scatter, and cheaper to compile; ``reset_state`` runs on
    every step (auto-reset).
    """
    return deck_from_words(random_bits(key, (num_cards,)), num_types)


def deck_from_words(bits: jax.Array, num_types: int) -> jax.Array:
    """The decks of :func:`shuffled_deck` from their random words ``uint32[..., num_cards]``.

    Leading axes are independent decks: a reset that deals several draws all their words at
    once and shuffles them in one go (one PRNG call: see
    :mod:`popgym_arcade.environments.randomness`).
    """
    num_cards = bits.shape[-1]
    position = jnp.arange(num_cards)
    mine, other = bits[..., :, None], bits[..., None, :]
    before = (other < mine) | ((other == mine) & (position[None, :] < position[:, None]))
    rank = jnp.sum(before, axis=-1, dtype=jnp.int32)
    card_type = (position % num_types).astype(jnp.int32)
    # deck[r] is the type of the card of rank r: one-hot placement, no scatter.
    at_rank = rank[..., :, None] == position[None, :]
    return jnp.sum(jnp.where(at_rank, card_type[:, None], 0), axis=-2, dtype=jnp.int32)


def suit_mask(size: int, suit: int) -> np.ndarray:
    """``bool[size, size]``: the pixels of suit ``suit`` drawn to fill a ``size``-pixel square.

    Drawn with the toolkit's suit functions at ``4 x`` resolution and kept where at least half
    of a pixel is covered, so small sprites keep their shape (odd sizes stay symmetric).
    """
    k = _SUPERSAMPLE
    canvas = draw_utils.new_canvas(size * k, size * k, (0, 0, 0))
    with jax.ensure_compile_time_eval():  # a constant, even when first needed inside a trace
        canvas = draw_utils.draw_suit(canvas, (0, 0), (size * k, size * k), int(suit), (255, 255, 255))
        covered = np.asarray(canvas)[..., 0] > 0
    return covered.reshape(size, k, size, k).mean(axis=(1, 3)) >= 0.5


def _odd_at_most(n: int) -> int:
    """The largest odd number <= ``n`` (odd sprites have a centre column: symmetric suits)."""
    return n if n % 2 else n - 1


def _place(tile: np.ndarray, mask: np.ndarray, color: Sequence[int]) -> np.ndarray:
    """Paint ``mask`` centred on ``tile`` in ``color`` (in place) and return ``tile``."""
    h, w = mask.shape
    top, left = (tile.shape[0] - h) // 2, (tile.shape[1] - w) // 2
    tile[top : top + h, left : left + w][mask] = np.asarray(color, dtype=np.uint8)
    return tile


def suit_tiles(slot: int, backgrounds: Sequence[Sequence[int]], margin: int = 1) -> np.ndarray:
    """Tiles of a history grid: ``uint8[len(backgrounds) * 5, slot, slot, 3]``.

    Tile ``style * 5 + suit`` is the suit centred on the background colour ``backgrounds[style]``;
    tile ``style * 5 + BLANK`` is the bare background. Suits are as large as an odd size that
    leaves ``margin`` pixels on each side allows.
    """
    size = _odd_at_most(slot - 2 * margin)
    if size < 5:
        raise ValueError(f"a history slot of {slot} pixels is too small for a legible suit")
    masks = [suit_mask(size, suit) for suit in range(NUM_SUITS)]
    tiles = []
    for background in backgrounds:
        for suit in range(NUM_SUITS + 1):
            tile = draw_utils.new_canvas(slot, slot, background)
            if suit < NUM_SUITS:
                _place(tile, masks[suit], draw_utils.SUIT_COLORS[suit])
            tiles.append(tile)
    return np.stack(tiles)


def card_sprites(
    width: int, height: int, background: Sequence[int], face: Sequence[int] = CARD_FACE, scale: int = 1
) -> np.ndarray:
    """Playing cards: ``uint8[5, height, width, 3]``.

    Sprite ``suit`` is a card (``face`` colour, dark outline ``scale`` pixels wide, clipped
    corners showing ``background``) with the suit in its middle; sprite ``BLANK`` is the bare
    ``background`` (no card).
    """
    card = draw_utils.new_canvas(height, width, CARD_EDGE)
    card[scale:-scale, scale:-scale] = np.asarray(face, dtype=np.uint8)
    for row in (slice(0, scale), slice(height - scale, height)):
        for col in (slice(0, scale), slice(width - scale, width)):
            card[row, col] = np.asarray(background, dtype=np.uint8)
    size = _odd_at_most(min(width, height) - 4 * scale)
    sprites = [
        _place(card.copy(), suit_mask(size, suit), draw_utils.SUIT_COLORS[suit]) for suit in range(NUM_SUITS)
    ]
    sprites.append(draw_utils.new_canvas(height, width, background))
    return np.stack(sprites)


@dataclasses.dataclass(frozen=True)
class HistoryLayout:
    """Where a history of ``num_cards`` cards goes: a ``rows x cols`` grid of square slots.

    Cards fill the grid row by row, card ``i`` in row ``i // cols``, column ``i % cols``.
    ``left``/``top`` place the grid inside the area it was laid out in (centred).
    """

    num_cards: int
    slot: int
    cols: int
    rows: int
    left: int
    top: int

    @property
    def width(self) -> int:
        """Width of the grid in pixels."""
        return self.cols * self.slot

    @property
    def height(self) -> int:
        """Height of the grid in pixels."""
        return self.rows * self.slot


def history_layout(num_cards: int, width: int, height: int, scale: int = 1) -> HistoryLayout:
    """The largest square slots that fit ``num_cards`` cards in a ``width x height`` area.

    ``width``, ``height`` are given at 128 pixels; the layout is computed there and multiplied
    by ``scale``, so a 256-pixel frame is exactly the 128-pixel one at twice the size.
    """
    if num_cards < 1:
        raise ValueError(f"a history needs at least one card, got {num_cards}")
    slot = min(width, height)
    while slot > 1 and (width // slot) * (height // slot) < num_cards:
        slot -= 1
    cols = min(width // slot, num_cards)
    rows = -(-num_cards // cols)
    left, top = (width - cols * slot) // 2, (height - rows * slot) // 2
    return HistoryLayout(num_cards, slot * scale, cols, rows, left * scale, top * scale)


def history_planes(tiles: np.ndarray, layout: HistoryLayout) -> np.ndarray:
    """``uint8[K, height, width, 3]``: plane ``k`` is tile ``k`` repeated over every slot.

    Prepared once; :func:`history_image` then picks each pixel from the plane of its slot's
    tile, which is cheaper on CPU than gathering whole tiles and transposing them into place.
    """
    if tiles.shape[1:3] != (layout.slot, layout.slot):
        raise ValueError(f"tiles of shape {tiles.shape[1:3]} do not fit slots of {layout.slot} pixels")
    return np.tile(np.asarray(tiles, np.uint8), (1, layout.rows, layout.cols, 1))


def history_image(
    planes: np.ndarray | jax.Array,
    layout: HistoryLayout,
    cards: jax.Array,
    shown: jax.Array,
    style: jax.Array | None = None,
) -> jax.Array:
    """Draw a card history as one gather: ``uint8[layout.height, layout.width, 3]``.

    Args:
        planes: from :func:`history_planes` (tiles from :func:`suit_tiles`).
        layout: from :func:`history_layout`.
        cards: ``int[num_cards]`` suits 0..3.
        shown: ``bool[num_cards]``; hidden cards leave their slot blank.
        style: optional ``int[num_cards]`` background style of each slot (index into the
            ``backgrounds`` the tiles were made with); default 0.
    """
    ids = jnp.where(shown, cards, BLANK).astype(jnp.int32)
    if style is not None:
        ids = ids + NUM_SUITS_WITH_BLANK * style.astype(jnp.int32)
    padding = layout.rows * layout.cols - layout.num_cards
    ids = jnp.concatenate([ids, jnp.full((padding,), BLANK, jnp.int32)]).reshape(layout.rows, layout.cols)
    per_pixel = jnp.repeat(jnp.repeat(ids, layout.slot, axis=0), layout.slot, axis=1)
    return jnp.take_along_axis(jnp.asarray(planes), per_pixel[None, :, :, None], axis=0)[0]


# ------------------------------------------------------------------------------ board layout
PANEL_HEIGHT = 24
"""Rows of the board (at 128 pixels) above the history: the current cards and counters."""

CARD_WIDTH, CARD_HEIGHT = 16, 22
"""Size of a panel card at 128 pixels."""


class CardGame(PixelGame):
    """Shared layout of the card games: a panel of current cards on top of a history grid.

    The board area (96 x 96 at 128 pixels) holds a panel (rows ``0 .. PANEL_HEIGHT``) and, below
    it, a grid of history slots laid out for ``difficulty.num_cards`` cards by
    :func:`history_layout`. Positions are given in board coordinates at 128 pixels.
    """

    board_color: ClassVar[tuple[int, int, int]] = (255, 255, 255)
    """Colour of the board area (the panel's background)."""

    history_colors: ClassVar[tuple[tuple[int, int, int], ...]] = ((255, 255, 255),)
    """Slot background of each history style: style 0 is the history area's own colour."""

    @functools.cached_property
    def history(self) -> HistoryLayout:
        """The history grid's layout, below the panel."""
        return history_layout(
            self.difficulty.num_cards, BOARD_SIZE_AT_128, BOARD_SIZE_AT_128 - PANEL_HEIGHT, self.scale
        )

    def __init__(self, difficulty: Any = "Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        tiles = suit_tiles(self.history.slot, self.history_colors, margin=self.scale)
        self.history_planes = history_planes(tiles, self.history)
        """The history grid's tiles, ready for :func:`history_image`."""

    @property
    def max_score(self) -> int:
        """The score counts correct answers: at most one per card."""
        return self.difficulty.num_cards

    def board_point(self, x: int, y: int) -> tuple[int, int]:
        """Frame pixel ``(x, y)`` of the board point ``(x, y)`` given at 128 pixels."""
        return self.board_origin + x * self.scale, self.board_origin + y * self.scale

    def put(self, canvas: Any, image: Any, x: int, y: int) -> Any:
        """Place ``image`` with its top-left corner at board point ``(x, y)`` (a static position).

        A numpy ``canvas`` (at construction) gives a numpy result.
        """
        left, top = self.board_point(x, y)
        h, w = image.shape[:2]
        if isinstance(canvas, np.ndarray):
            canvas = canvas.copy()
            canvas[top : top + h, left : left + w] = np.asarray(image)
            return canvas
        return canvas.at[top : top + h, left : left + w].set(image)

    @property
    def history_origin(self) -> tuple[int, int]:
        """Frame pixel of the history grid's top-left corner."""
        x, y = self.board_point(0, PANEL_HEIGHT)
        return x + self.history.left, y + self.history.top

    def draw_background(self) -> np.ndarray:
        """The HUD, the board and the empty history area."""
        canvas = super().draw_background()
        side = BOARD_SIZE_AT_128 * self.scale
        canvas = self.put(canvas, draw_utils.new_canvas(side, side, self.board_color), 0, 0)
        x, y = self.history_origin
        canvas[y : y + self.history.height, x : x + self.history.width] = np.asarray(
            self.history_colors[0], np.uint8
        )
        return canvas

    def draw_history(
        self, canvas: jax.Array, cards: jax.Array, shown: jax.Array, style: jax.Array | None = None
    ) -> jax.Array:
        """Draw the history grid (one gather, see :func:`history_image`) into its place."""
        image = history_image(self.history_planes, self.history, cards, shown, style)
        x, y = self.history_origin
        return canvas.at[y : y + self.history.height, x : x + self.history.width].set(image)
