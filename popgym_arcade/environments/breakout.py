"""Breakout: a MinAtar-style brick breaker on a 20 x 10 grid, as an MDP/POMDP twin.

The ball moves one cell diagonally per step; the POMDP twin hides it while it falls, so the
agent must remember where it was going to catch it with the paddle.
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
"""Board size in cells: row 0 is the top, row 19 the paddle row."""

BRICK_ROWS = (1, 6)
"""First and last board rows that hold bricks at reset (6 rows of 10: 60 bricks)."""

NUM_BRICKS = (BRICK_ROWS[1] - BRICK_ROWS[0] + 1) * COLS
PADDLE_ROW = ROWS - 1
START_ROW = 13

# A brick in board row r (1..6) pays (17 - 2r) / 600: 0.025, 0.0217, ..., 0.0083, top rows
# worth most. The weights 15, 13, ..., 5 sum to 60, so the 60 bricks sum to exactly 1.
ROW_REWARD = np.zeros(ROWS, dtype=np.float32)
ROW_REWARD[BRICK_ROWS[0] : BRICK_ROWS[1] + 1] = [
    (17 - 2 * r) / 600 for r in range(BRICK_ROWS[0], BRICK_ROWS[1] + 1)
]

# Ball directions: 0 up-left, 1 up-right, 2 down-right, 3 down-left.
DIR_DX = np.array([-1, 1, 1, -1], dtype=np.int32)
DIR_DY = np.array([-1, -1, 1, 1], dtype=np.int32)
MIRROR_X = np.array([1, 0, 3, 2], dtype=np.int32)
MIRROR_Y = np.array([3, 2, 1, 0], dtype=np.int32)
REVERSE = np.array([2, 3, 0, 1], dtype=np.int32)

ACTION_LEFT, ACTION_RIGHT = 2, 3

BRICK_COLORS = (
    (200, 72, 72),
    (198, 108, 58),
    (255, 122, 48),
    (162, 162, 42),
    (72, 255, 72),
    (66, 72, 200),
)
"""Brick colour of board rows 1..6."""
PADDLE_COLOR = (200, 72, 72)
BALL_COLOR = (255, 255, 255)
TRAIL_COLOR = (140, 140, 140)
BOARD_COLOR = (0, 0, 0)
WALL_COLOR = (190, 192, 196)

# Cells are 9 x 4 pixels at 128 (18 x 8 at 256): the 90 x 80 board fits the 96 x 96 area.
CELL_W, CELL_H = 9, 4
# Sprites in one 9 x 4 cell at 128 pixels ('#' lit).
_BRICK_SPRITE = ("########.", "########.", "########.", ".........")
_PADDLE_SPRITE = ("#########", "#########", "#########", ".........")
_BALL_SPRITE = ("...###...", "..#####..", "..#####..", "...###...")
_TRAIL_SPRITE = (".........", "...###...", "...###...", ".........")



@dataclasses.dataclass(frozen=True)
class BreakoutDifficulty:
    """One Breakout level.

    Attributes:
        paddle_width: paddle width in cells (the board is 10 cells wide).
    """

    paddle_width: int


@pytree
class BreakoutParams:
    """Tunable numbers of Breakout.

    Attributes:
        max_steps_in_episode: steps after which an episode is truncated.
    """

    max_steps_in_episode: int = 2000


@pytree
class BreakoutState:
    """The state of a Breakout episode (board rows top to bottom, columns left to right).

    Attributes:
        ball_x, ball_y: the ball's cell (int32).
        ball_dir: 0 up-left, 1 up-right, 2 down-right, 3 down-left (int32).
        last_x, last_y: the ball's cell one step earlier: the trail (int32).
        paddle: the paddle's leftmost cell in row 19 (int32).
        bricks: ``bool[20, 10]``, true where a brick stands. Bricks stand only in rows 1..6
            (the rules never add any); only those rows are drawn and pay.
        strike: whether the ball entered a brick cell on the last step (bool).
        score: bricks broken so far (int32).
        timestep: steps since reset (int32).
    """

    ball_x: jax.Array
    ball_y: jax.Array
    ball_dir: jax.Array
    last_x: jax.Array
    last_y: jax.Array
    paddle: jax.Array
    bricks: jax.Array
    strike: jax.Array
    score: jax.Array
    timestep: jax.Array


def initial_bricks() -> np.ndarray:
    """``bool[20, 10]``: the full wall of bricks in rows 1..6."""
    bricks = np.zeros((ROWS, COLS), dtype=bool)
    bricks[BRICK_ROWS[0] : BRICK_ROWS[1] + 1] = True
    return bricks


def move_paddle(paddle: jax.Array, action: jax.Array, width: int) -> jax.Array:
    """The paddle after ``action``: 2 moves it left, 3 right (clamped to the board), others stay."""
    shift = jnp.where(action == ACTION_LEFT, -1, jnp.where(action == ACTION_RIGHT, 1, 0))
    return jnp.clip(paddle + shift, 0, COLS - width)


def on_paddle(x: jax.Array, paddle: jax.Array, width: int) -> jax.Array:
    """Whether column ``x`` lies under the paddle."""
    return (x >= paddle) & (x < paddle + width)


def advance(
    state: BreakoutState, action: jax.Array, width: int
) -> tuple[BreakoutState, jax.Array, jax.Array]:
    """One step of the rules: ``(next state, reward for bricks broken, ball lost)``.

    The paddle moves first; the ball then moves one cell diagonally and bounces off the side
    walls, the ceiling, a brick (which it breaks, unless it struck one on the step before: then
    it passes through, as in MinAtar) or the paddle.
    """
    paddle = move_paddle(state.paddle, action, width)
    dx, dy = jnp.asarray(DIR_DX), jnp.asarray(DIR_DY)
    x = state.ball_x + dx[state.ball_dir]
    y = state.ball_y + dy[state.ball_dir]
    direction = state.ball_dir

    hit_side = (x < 0) | (x >= COLS)
    x = jnp.clip(x, 0, COLS - 1)
    direction = jnp.where(hit_side, jnp.asarray(MIRROR_X)[direction], direction)

    hit_ceiling = y < 0
    y = jnp.maximum(y, 0)
    direction = jnp.where(hit_ceiling, jnp.asarray(MIRROR_Y)[direction], direction)

    # Entering a brick cell breaks the brick and bounces back, except right after a strike:
    # then the ball passes through and the brick stays (MinAtar), so no brick vanishes unpaid.
    # The ball's cell as a one-hot board: reading and clearing it stays elementwise, which XLA
    # fuses, where indexing a traced cell costs a gather and a scatter (kernels of their own).
    ball_cell = (jnp.arange(ROWS)[:, None] == y) & (jnp.arange(COLS)[None, :] == x)
    in_brick = ~hit_ceiling & jnp.any(state.bricks & ball_cell)
    breaks = in_brick & ~state.strike
    reward = jnp.where(breaks, jnp.asarray(ROW_REWARD)[y], 0.0)
    bricks = state.bricks & ~(ball_cell & breaks)
    y = jnp.where(breaks, state.ball_y, y)
    direction = jnp.where(breaks, jnp.asarray(MIRROR_Y)[direction], direction)

    # In the paddle row: a ball falling from above the paddle bounces straight back up; one
    # that only lands on the paddle's corner goes back the way it came; otherwise it is lost.
    at_bottom = ~in_brick & (y == PADDLE_ROW)
    from_above = at_bottom & on_paddle(state.ball_x, paddle, width)
    on_corner = at_bottom & ~from_above & on_paddle(x, paddle, width)
    lost = at_bottom & ~from_above & ~on_corner
    direction = jnp.where(from_above, jnp.asarray(MIRROR_Y)[direction], direction)
    direction = jnp.where(on_corner, jnp.asarray(REVERSE)[direction], direction)
    y = jnp.where(from_above | on_corner, state.ball_y, y)

    next_state = replace(
        state,
        ball_x=x,
        ball_y=y,
        ball_dir=direction,
        last_x=state.ball_x,
        last_y=state.ball_y,
        paddle=paddle,
        bricks=bricks,
        strike=in_brick,
        score=state.score + breaks.astype(jnp.int32),
        timestep=state.timestep + 1,
    )
    return next_state, reward, lost


class Breakout(PixelGame):
    """Breakout: break a wall of bricks with a ball, and do not let the ball fall past the paddle.

    A MinAtar-style Breakout on a grid of 20 rows by 10 columns. Six rows of bricks (board rows
    1 to 6, 60 bricks) hang under the ceiling; the paddle slides along the bottom row (row 19).
    The ball starts in row 13, in the left or right column (a fair coin), moving up and away
    from the side wall it is on.

    - rules, in order, each step:
        1. the paddle moves (clamped to the board);
        2. the ball moves one cell diagonally; a side wall mirrors it horizontally, the ceiling
           vertically;
        3. if the ball enters a brick, the brick breaks, pays its reward, and the ball returns
           to its previous row moving vertically mirrored. Right after a strike the ball passes
           through a brick instead (it stays, unbroken, and pays later; the ball is drawn over
           it), as in MinAtar; so every brick that disappears pays;
        4. if the ball reaches the paddle row: falling onto the paddle from above it bounces
           back up; landing only on the paddle's end from beside it, it goes back the way it
           came; otherwise it is lost.

    - state: :class:`BreakoutState` (ball, direction, trail cell, paddle, bricks, strike flag,
        score, timestep); params: :class:`BreakoutParams` (the step limit).

    - action: ``int`` in 0..4. 2: paddle left, 3: paddle right. 0 (up), 1 (down), 4 (fire) and
        any value outside 0..4 are no-ops that still spend a step.

    - reward: a broken brick in board row r pays (17 - 2r) / 600, so rows 1..6 pay 0.025,
        0.0217, 0.0183, 0.015, 0.0117, 0.0083 (top rows worth most) and the 60 bricks sum to 1.
        Losing the ball costs the share of bricks still standing, -(bricks left) / 60.

    - return bounds: [-1, 1]. Clearing the board returns exactly 1; losing the ball returns
        (reward of bricks broken) - (bricks left) / 60 >= -1; a truncated episode returns its
        brick rewards, in [0, 1].

    - episode end:
        - terminated: the ball is lost, or the last brick is broken;
        - truncated: ``params.max_steps_in_episode`` steps (default 2000) have passed.

    - difficulty:

        | level  | paddle width | paddle start (leftmost cell) |
        |--------|--------------|------------------------------|
        | Easy   | 6            | 2                            |
        | Medium | 5            | 2                            |
        | Hard   | 4            | 3                            |

    - observation (``uint8[obs_size, obs_size, 3]``): the score (bricks broken) at the top,
        "BREAKOUT" at the bottom, the board (cells of 9 x 4 pixels at 128, 18 x 8 at 256) in the
        centre between light grey walls (open at the bottom):
        - MDP: bricks coloured by row, the paddle, the ball (white) and its trail (a grey dot
          in the ball's previous cell), which shows the ball's direction;
        - POMDP: bricks, paddle and score; the ball only while it moves up, never the trail.
          The agent must remember where a falling ball is heading.
        - at t = 0 the POMDP frame equals the MDP frame (the ball starts moving up, and the
          trail, under the ball at reset, is shown at t = 0 anyway).

    ```python
    env = Breakout("Hard", partial_obs=True)
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 3, params)
    ```
    """

    difficulties = {
        "Easy": BreakoutDifficulty(paddle_width=6),
        "Medium": BreakoutDifficulty(paddle_width=5),
        "Hard": BreakoutDifficulty(paddle_width=4),
    }
    title = "BREAKOUT"
    independent_step_key = False
    return_range = (-1.0, 1.0)
    background_color = (119, 122, 127)
    title_color = (255, 255, 0)
    score_color = (255, 48, 71)

    def __init__(self, difficulty: Any = "Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        if not 1 <= self.difficulty.paddle_width <= COLS:
            raise ValueError(f"paddle_width must be in 1..{COLS}, got {self.difficulty.paddle_width}")
        self._wall_image, self._paddle_image = self._make_row_images()
        # The lit pixels of trail and ball: (row, column) offsets in a cell, colours, which are trail.
        trail, ball = (np.argwhere(self._sprite_mask(sprite)) for sprite in (_TRAIL_SPRITE, _BALL_SPRITE))
        self._sprite_offsets = np.concatenate([trail, ball]).astype(np.int32)
        self._sprite_colors = np.array([TRAIL_COLOR] * len(trail) + [BALL_COLOR] * len(ball), np.uint8)
        self._sprite_is_trail = np.arange(len(self._sprite_offsets)) < len(trail)

    # ------------------------------------------------------------------------------ drawing
    @property
    def board_shape(self) -> tuple[int, int]:
        """Board image ``(height, width)`` in pixels: 80 x 90 at 128, 160 x 180 at 256."""
        return ROWS * CELL_H * self.scale, COLS * CELL_W * self.scale

    def board_top_left(self) -> tuple[int, int]:
        """Pixel ``(x, y)`` of the board's top-left corner on the canvas."""
        height, width = self.board_shape
        return (self.obs_size - width) // 2, self.board_origin + (self.board_extent - height) // 2

    def cell_center(self, x: int, y: int) -> tuple[int, int]:
        """Canvas pixel ``(x, y)`` inside board cell ``(x, y)`` that every sprite lights (for tests)."""
        left, top = self.board_top_left()
        s = self.scale
        return left + (x * CELL_W + CELL_W // 2) * s, top + (y * CELL_H + 1) * s

    def _sprite_mask(self, sprite: tuple[str, ...]) -> np.ndarray:
        lit = np.array([[c == "#" for c in row] for row in sprite], dtype=bool)
        return np.kron(lit, np.ones((self.scale, self.scale), dtype=bool))

    def _cell_image(self, sprite: tuple[str, ...], color: tuple[int, int, int]) -> np.ndarray:
        """``uint8[cell_h, cell_w, 3]``: ``sprite`` in ``color`` on the board colour."""
        mask = self._sprite_mask(sprite)
        image = np.empty(mask.shape + (3,), dtype=np.uint8)
        image[:] = BOARD_COLOR
        image[mask] = color
        return image

    def _make_row_images(self) -> tuple[np.ndarray, np.ndarray]:
        """The full brick wall ``uint8[6, cell_h, 10, cell_w, 3]`` and the paddle row
        ``uint8[cell_h, 10, cell_w, 3]`` with a paddle cell in every column."""
        bricks = np.stack([self._cell_image(_BRICK_SPRITE, color) for color in BRICK_COLORS])
        wall = np.repeat(bricks[:, :, None], COLS, axis=2)
        paddle = np.repeat(self._cell_image(_PADDLE_SPRITE, PADDLE_COLOR)[:, None], COLS, axis=1)
        return wall, paddle

    @property
    def max_score(self) -> int:
        """The score counts bricks broken: at most 60."""
        return NUM_BRICKS

    def draw_background(self) -> np.ndarray:
        """Background, title, and the walls (left, top, right) around the board."""
        canvas = super().draw_background()
        height, width = self.board_shape
        left, top = self.board_top_left()
        t = 2 * self.scale
        walls = ((left - t, top - t), (left + width + t, top + height))
        canvas = draw_utils.draw_rectangle(canvas, *walls, WALL_COLOR)
        canvas = draw_utils.draw_rectangle(canvas, (left, top), (left + width, top + height), BOARD_COLOR)
        return np.asarray(canvas)

    def _render(self, state: BreakoutState, show_ball: jax.Array, show_trail: jax.Array) -> jax.Array:
        # Only the brick rows, the paddle row, two sprites and the score change: each is
        # written into the static frame at cell resolution or as a small slice.
        s = self.scale
        cell_h, cell_w = CELL_H * s, CELL_W * s
        left, top = self.board_top_left()
        canvas = self.frame()

        first, last = BRICK_ROWS
        standing = state.bricks[first : last + 1][:, None, :, None, None]
        wall = jnp.where(standing, jnp.asarray(self._wall_image), jnp.asarray(BOARD_COLOR, jnp.uint8))
        y0 = top + first * cell_h
        canvas = canvas.at[y0 : y0 + wall.shape[0] * cell_h, left : left + COLS * cell_w].set(
            wall.reshape(-1, COLS * cell_w, 3)
        )

        covered = on_paddle(jnp.arange(COLS), state.paddle, self.difficulty.paddle_width)[None, :, None, None]
        paddle = jnp.where(covered, jnp.asarray(self._paddle_image), jnp.asarray(BOARD_COLOR, jnp.uint8))
        y0 = top + PADDLE_ROW * cell_h
        canvas = canvas.at[y0 : y0 + cell_h, left : left + COLS * cell_w].set(paddle.reshape(cell_h, -1, 3))

        # Ball and trail are their lit pixels, written by one scatter with no read of what lies
        # under them (a masked paste reads, selects and writes: three kernels per sprite). A
        # hidden sprite, and the trail under the ball (which covers it), go off the canvas and
        # are dropped, so no two written pixels coincide and their order cannot matter.
        is_trail, offsets = self._sprite_is_trail, self._sprite_offsets
        under_ball = (state.last_x == state.ball_x) & (state.last_y == state.ball_y)
        trail_hidden = ~show_trail | (show_ball & under_ball)
        cell_x = jnp.where(is_trail, state.last_x, state.ball_x)
        cell_y = jnp.where(is_trail, state.last_y, state.ball_y)
        hidden = jnp.where(is_trail, trail_hidden, ~show_ball)
        rows = jnp.where(hidden, self.obs_size, top + cell_y * cell_h + offsets[:, 0])
        cols = left + cell_x * cell_w + offsets[:, 1]
        canvas = canvas.at[rows, cols].set(jnp.asarray(self._sprite_colors), mode="drop")

        return self.draw_score(canvas, state.score)

    def render_mdp(self, state: BreakoutState) -> jax.Array:
        """Bricks, paddle, ball and trail, and the score."""
        return self._render(state, jnp.bool_(True), jnp.bool_(True))

    def render_pomdp(self, state: BreakoutState) -> jax.Array:
        """Bricks, paddle and score; the ball only while it moves up; everything at t = 0."""
        first = state.timestep == 0
        return self._render(state, first | (state.ball_dir < 2), first)

    # -------------------------------------------------------------------------------- rules
    @property
    def default_params(self) -> BreakoutParams:
        """``BreakoutParams(max_steps_in_episode=2000)``."""
        return BreakoutParams()

    def initial_paddle(self) -> int:
        """The paddle's leftmost cell at reset: centred (rounded left)."""
        return (COLS - self.difficulty.paddle_width) // 2

    def reset_state(self, key: jax.Array, params: BreakoutParams) -> BreakoutState:
        """Full wall, centred paddle, ball in row 13 at the left or right wall (a fair coin)."""
        right = (random_bits(key) >> 31) == 1
        x = jnp.where(right, COLS - 1, 0).astype(jnp.int32)
        y = jnp.int32(START_ROW)
        return BreakoutState(
            ball_x=x,
            ball_y=y,
            ball_dir=jnp.where(right, 1, 0).astype(jnp.int32),
            last_x=x,
            last_y=y,
            paddle=jnp.int32(self.initial_paddle()),
            bricks=jnp.asarray(initial_bricks()),
            strike=jnp.bool_(False),
            score=jnp.int32(0),
            timestep=jnp.int32(0),
        )

    def step_state(
        self, key: jax.Array, state: BreakoutState, action: jax.Array, params: BreakoutParams
    ) -> tuple[BreakoutState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Move paddle and ball; pay broken bricks; end on a lost ball, a cleared board or the limit."""
        action = jnp.asarray(action, jnp.int32)
        next_state, reward, lost = advance(state, action, self.difficulty.paddle_width)
        bricks_left = jnp.sum(next_state.bricks, dtype=jnp.int32)
        reward = reward - jnp.where(lost, bricks_left / NUM_BRICKS, 0.0)
        terminated = lost | (bricks_left == 0)
        truncated = next_state.timestep >= params.max_steps_in_episode
        return next_state, reward.astype(jnp.float32), terminated, truncated, {}
