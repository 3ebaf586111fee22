"""Shared machinery of the built-in games: difficulty as data, twins, and the HUD.

A built-in game subclasses :class:`PixelGame`, lists its difficulty levels as frozen
dataclasses in ``difficulties``, implements its rules in ``reset_state``/``step_state``, and
draws its two twins in ``render_mdp``/``render_pomdp``. ``render`` picks the twin once, at
construction, so a compiled step contains only one twin's drawing code.

Screen layout (at 128 pixels; everything doubles at 256): the score in the top band
(rows 0-15), the board in the centre (at most 96 x 96, from row 16), and the game's name in the
bottom band (rows 112-127). Static parts are drawn once into ``self.background``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import draw_utils
from popgym_arcade.environments.base import Environment, validate_obs_size

BOARD_SIZE_AT_128 = 96
"""Largest board side at 128 pixels; the board area is centred, 16 pixels from each edge."""


class PixelGame(Environment):
    """Base of the built-in games.

    Args:
        difficulty: a level name from ``difficulties`` (``"Easy"``, ``"Medium"``, ``"Hard"``)
            or a difficulty dataclass of the game's own type.
        partial_obs: ``True`` for the POMDP twin.
        obs_size: 128 or 256.
    """

    difficulties: ClassVar[dict[str, Any]] = {}
    title: ClassVar[str] = ""
    background_color: ClassVar[tuple[int, int, int]] = (0, 0, 0)
    title_color: ClassVar[tuple[int, int, int]] = (255, 255, 255)
    score_color: ClassVar[tuple[int, int, int]] = (255, 255, 255)
    return_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    """Bounds of every episode's return: ``(0, 1)``, or ``(-1, 1)`` for games with penalties."""

    def __init__(self, difficulty: Any = "Easy", partial_obs: bool = False, obs_size: int = 128):
        if isinstance(difficulty, str):
            if difficulty not in self.difficulties:
                raise ValueError(
                    f"{type(self).__name__} has difficulties {list(self.difficulties)}, got {difficulty!r}"
                )
            difficulty = self.difficulties[difficulty]
        else:
            expected = type(next(iter(self.difficulties.values()))) if self.difficulties else None
            if expected is not None and not isinstance(difficulty, expected):
                raise TypeError(f"difficulty must be a level name or a {expected.__name__}, got {difficulty!r}")
        self.difficulty = difficulty
        self.partial_obs = bool(partial_obs)
        self.obs_size = validate_obs_size(obs_size)
        self.scale = self.obs_size // 128
        self.background = self.draw_background()
        self._score_box, self._score_patches = self._draw_score_patches()

    # ------------------------------------------------------------------------------- twins
    def render(self, state: Any) -> jax.Array:
        """The observation of ``state`` in this env's twin."""
        return self.render_pomdp(state) if self.partial_obs else self.render_mdp(state)

    def render_mdp(self, state: Any) -> jax.Array:
        """The fully observable frame."""
        raise NotImplementedError

    def render_pomdp(self, state: Any) -> jax.Array:
        """The partially observable frame (equal to the MDP frame at t = 0)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The game's name, as in its ids and banner."""
        return type(self).__name__

    # --------------------------------------------------------------------------------- HUD
    def draw_background(self) -> np.ndarray:
        """The static frame: background colour and the title banner (a numpy constant)."""
        size = self.obs_size
        canvas = draw_utils.new_canvas(size, size, self.background_color)
        title = self.title or self.name.upper()
        # Square 2x2-pixel font cells (at 128) where the title fits, else narrow 2x1 cells.
        for scale in ((2 * self.scale, 2 * self.scale), (2 * self.scale, self.scale)):
            lit = draw_utils.text_bitmap(title, scale, spacing=self.scale)
            if lit.shape[1] <= size - 4 * self.scale:
                break
        else:
            raise ValueError(f"title {title!r} is too wide for {size} pixels")
        top, left = size - 12 * self.scale, (size - lit.shape[1]) // 2
        canvas[top : top + lit.shape[0], left : left + lit.shape[1]][lit] = self.title_color
        return canvas

    @property
    def max_score(self) -> int | None:
        """The largest score the game can show, or ``None`` where it has no small bound.

        Where it is given, every score's pixels are drawn once at construction and
        :meth:`draw_score` copies them: a few microseconds less per frame than drawing digits.
        """
        return None

    @property
    def score_band(self) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of the top band that holds the score."""
        s = self.scale
        return 2 * s, 14 * s, 16 * s, 112 * s

    @property
    def board_origin(self) -> int:
        """Pixel offset of the board area from the top and left edges (16 or 32)."""
        return 16 * self.scale

    @property
    def board_extent(self) -> int:
        """Side of the board area in pixels (96 or 192)."""
        return BOARD_SIZE_AT_128 * self.scale

    def draw_score(self, canvas: jax.Array, score: jax.Array, color: Any = None) -> jax.Array:
        """Write ``score`` centred in the top band; touches only that band.

        With :attr:`max_score` set and the default colour, this copies the pre-drawn pixels of
        ``clip(score, 0, max_score)`` over the band, whatever was drawn there before.
        """
        if color is None and self._score_patches is not None:
            y0, y1, x0, x1 = self._score_box
            patch = jnp.asarray(self._score_patches)[jnp.clip(score, 0, self.max_score)]
            return canvas.at[y0:y1, x0:x1].set(patch)
        y0, y1, x0, x1 = self.score_band
        color = self.score_color if color is None else color
        band = _score_drawer(self.scale, tuple(color))(canvas[y0:y1, x0:x1], jnp.asarray(score))
        return canvas.at[y0:y1, x0:x1].set(band)

    def _draw_score_patches(self) -> tuple[tuple[int, int, int, int], np.ndarray | None]:
        """The smallest box that every score changes, and each score's pixels in it."""
        if self.max_score is None:
            return self.score_band, None
        y0, y1, x0, x1 = self.score_band
        band = self.background[y0:y1, x0:x1]
        draw = _score_drawer(self.scale, tuple(self.score_color))
        bands = np.stack([draw(band, n) for n in range(self.max_score + 1)])  # numpy: no compile
        rows, cols = np.nonzero(np.any(bands != band, axis=(0, 3)))
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        box = (int(y0 + r0), int(y0 + r1), int(x0 + c0), int(x0 + c1))
        return box, bands[:, r0:r1, c0:c1]

    def paste_board(self, canvas: jax.Array, board: jax.Array) -> jax.Array:
        """Paste a board image centred in the board area (static position)."""
        h, w = board.shape[:2]
        top = self.board_origin + (self.board_extent - h) // 2
        left = (self.obs_size - w) // 2
        return canvas.at[top : top + h, left : left + w].set(board)

    def frame(self) -> jax.Array:
        """The background as a JAX array, to draw a frame on."""
        return jnp.asarray(self.background)


@functools.lru_cache(maxsize=None)
def _score_drawer(scale: int, color: tuple[int, ...]) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``draw(band, score) -> band`` for one HUD scale and colour (shared by every game)."""

    def draw(band: jax.Array, score: jax.Array) -> jax.Array:
        height, width = band.shape[:2]
        return draw_utils.draw_number(band, (0, 0), (width, height), score, color, scale=2 * scale)

    return draw

