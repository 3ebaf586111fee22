"""Skittles: dodge rainbow blocks falling down a 10 x 10 grid for 100 steps.

The POMDP twin flickers: each cell is shown independently with probability one half, from a
mask drawn with the env's own step key, so an agent must remember where the blocks fell.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import draw_utils
from popgym_arcade.environments.base import EnvParams
from popgym_arcade.environments.game import PixelGame
from popgym_arcade.environments.randomness import integers_below, random_bits
from popgym_arcade.environments.struct import pytree, replace

RAINBOW = (
    (255, 0, 0),  # red
    (255, 127, 0),  # orange
    (255, 255, 0),  # yellow
    (0, 255, 0),  # green
    (0, 0, 255),  # blue
    (74, 214, 247),  # "indigo" (a light blue, as published)
    (125, 0, 237),  # violet
)
"""Block colours: a block spawned at time step ``t`` has colour ``RAINBOW[t % 7]``."""

AGENT_COLOR = (255, 255, 255)
EMPTY_COLOR = (0, 0, 0)
OFF_LANE_COLOR = (34, 34, 42)
LINE_COLOR = (80, 80, 80)

# Cell kinds, indices into the palette of the board.
_EMPTY, _OFF_LANE, _AGENT, _FIRST_BLOCK = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class SkittlesDifficulty:
    """One Skittles level.

    Attributes:
        lane_start: leftmost column the agent and the blocks may occupy.
        lane_width: number of lane columns (``lane_start .. lane_start + lane_width - 1``).
        grid_size: rows and columns of the board.
        max_steps: steps to survive; reaching it truncates the episode.
        reveal_probability: chance that the POMDP shows a cell at ``t > 0`` (a multiple of
            1/256, as the mask is drawn from 8 random bits per cell).
    """

    lane_start: int
    lane_width: int
    grid_size: int = 10
    max_steps: int = 100
    reveal_probability: float = 0.5

    def __post_init__(self) -> None:
        if self.lane_start < 0 or self.lane_width < 1 or self.lane_start + self.lane_width > self.grid_size:
            raise ValueError(f"the lane must lie inside the grid: {self}")
        if not 0.0 <= self.reveal_probability <= 1.0:
            raise ValueError(f"reveal_probability must be in [0, 1]: {self}")

    @property
    def lane_end(self) -> int:
        """Rightmost lane column (inclusive)."""
        return self.lane_start + self.lane_width - 1


@pytree
class SkittlesState:
    """State of a Skittles episode.

    Attributes:
        timestep: steps since reset (``int32``).
        grid: ``bool[grid_size, grid_size]``, ``grid[row, col]`` is a block; row 0 is the top.
        x: the agent's column in the bottom row (``int32``).
        score: steps survived (``int32``), shown in the HUD; the return is ``score / max_steps``.
        shown: ``bool[grid_size, grid_size]``, the POMDP's flicker mask for this frame (all true
            at reset).
    """

    timestep: jax.Array
    grid: jax.Array
    x: jax.Array
    score: jax.Array
    shown: jax.Array


class Skittles(PixelGame):
    """Skittles: survive 100 steps while rainbow blocks rain down a 10 x 10 grid.

    - game: the agent is a white square in the bottom row. Every step each row of blocks falls
        one row (the bottom row drops off the board) and a new top row appears holding exactly
        one block, in a lane column drawn uniformly at random. The agent moves left or right
        within the lane (the columns blocks can fall in) and must not be hit.

    - rules, in order within a step:
        1. move: ``x`` goes one column left or right, clamped to the lane;
        2. sideways collision: a block already in the bottom row at the new ``x`` hits the agent;
        3. fall: rows shift down one, the new top row gets its block;
        4. landing collision: a block now in the bottom row at ``x`` hits the agent;
        5. the POMDP flicker mask of the new frame is drawn from the step key.

    - action: ``int32`` of shape ``()``
        | action | 0 up | 1 down | 2 left | 3 right | 4 fire |
        | effect | no-op | no-op | x - 1 | x + 1 | no-op |
        Any other value is a no-op that still spends a step.

    - reward: ``1 / max_steps`` (0.01) for each step survived; the step on which the agent is
        hit pays 0 (the published version paid it too). The return is the fraction of the 100
        steps survived, in [0, 1]; it is 1 exactly when the agent survives all of them.

    - episode end:
        - terminated: the agent is hit (rule 2 or 4);
        - truncated: ``timestep`` reaches ``max_steps`` (100) without a hit. Surviving to the
            limit is the goal, yet it is reported as truncation, like every step limit.

    - difficulty (all levels: 10 x 10 grid, 100 steps, one block per row, reveal p = 0.5):
        | level  | lane columns | lane width |
        | Easy   | 1..8         | 8          |
        | Medium | 2..8         | 7          |
        | Hard   | 2..7         | 6          |

    - observation: ``uint8[S, S, 3]``, S = 128 or 256. The board sits in the centre with grid
        lines, columns outside the lane shaded. A block takes the colour of the time step it
        was spawned on (red, orange, yellow, green, blue, light blue, violet, cycling), so the
        rows form a falling rainbow. The score (steps survived) is at the top, the banner
        "SKITTLES" at the bottom.
        - MDP: every block and the agent.
        - POMDP: at ``t > 0`` each cell's block is shown independently with probability 0.5
            (the mask comes from the env's own key: different across episodes and parallel
            envs); the agent, grid and score are always shown. A hidden block looks like an
            empty cell.
        - t = 0: the POMDP frame equals the MDP frame (the board is empty then anyway).

    - state: :class:`SkittlesState`.

    ```python
    env = Skittles("Hard", partial_obs=True)
    obs, state = env.reset(jax.random.key(0))
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 2)
    ```
    """

    difficulties = {
        "Easy": SkittlesDifficulty(lane_start=1, lane_width=8),
        "Medium": SkittlesDifficulty(lane_start=2, lane_width=7),
        "Hard": SkittlesDifficulty(lane_start=2, lane_width=6),
    }
    title = "SKITTLES"
    background_color = (0, 0, 0)
    title_color = (255, 245, 0)
    score_color = (0, 255, 128)
    return_range = (0.0, 1.0)

    def __init__(self, difficulty="Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        d = self.difficulty
        self._palette = np.asarray([EMPTY_COLOR, OFF_LANE_COLOR, AGENT_COLOR, *RAINBOW], dtype=np.uint8)
        columns = np.arange(d.grid_size)
        in_lane = (columns >= d.lane_start) & (columns <= d.lane_end)
        self._base_ids = np.tile(np.where(in_lane, _EMPTY, _OFF_LANE).astype(np.int32), (d.grid_size, 1))
        # Grid lines on the top and left edge of every cell; the closing lines on the right and
        # bottom of the board are part of the static background.
        p, w = self.cell_pitch, self.line_width
        cell_lines = np.zeros((p, p), dtype=bool)
        cell_lines[:w, :] = True
        cell_lines[:, :w] = True
        self._line_mask = np.tile(cell_lines, (d.grid_size, d.grid_size))

    # ------------------------------------------------------------------------------ layout
    @property
    def max_score(self) -> int:
        """The score counts steps survived: at most ``max_steps``."""
        return self.difficulty.max_steps

    @property
    def line_width(self) -> int:
        """Width of the grid lines in pixels (1 at 128, 2 at 256)."""
        return self.scale

    @property
    def cell_pitch(self) -> int:
        """Pixels from one cell's top-left line to the next (a cell plus one grid line)."""
        return (self.board_extent - self.line_width) // self.difficulty.grid_size

    @property
    def board_top_left(self) -> tuple[int, int]:
        """Pixel ``(x, y)`` of the board's outer top-left corner (on its first grid line)."""
        full = self.difficulty.grid_size * self.cell_pitch + self.line_width
        return (self.obs_size - full) // 2, self.board_origin + (self.board_extent - full) // 2

    def cell_center(self, row: int, col: int) -> tuple[int, int]:
        """Pixel ``(x, y)`` at the centre of cell ``(row, col)``: a handy probe for tests and tools."""
        x0, y0 = self.board_top_left
        half = self.line_width + (self.cell_pitch - self.line_width) // 2
        return x0 + col * self.cell_pitch + half, y0 + row * self.cell_pitch + half

    def draw_background(self) -> np.ndarray:
        """The static frame: the HUD banner and the board's grid lines."""
        canvas = super().draw_background()
        shape = (self.difficulty.grid_size,) * 2
        cell, line = self.cell_pitch - self.line_width, self.line_width
        canvas = draw_utils.draw_grid(canvas, self.board_top_left, cell, shape, LINE_COLOR, line)
        return np.asarray(canvas)

    # ------------------------------------------------------------------------------- rules
    @property
    def default_params(self) -> EnvParams:
        """Skittles has no tunable parameters (the level holds its numbers)."""
        return EnvParams()

    def reset_state(self, key: jax.Array, params: EnvParams) -> SkittlesState:
        """An empty board with the agent in a uniformly random lane column."""
        d = self.difficulty
        x = d.lane_start + integers_below(random_bits(key, ()), d.lane_end + 1 - d.lane_start)
        return SkittlesState(
            timestep=jnp.int32(0),
            grid=jnp.zeros((d.grid_size, d.grid_size), dtype=bool),
            x=x,
            score=jnp.int32(0),
            shown=jnp.ones((d.grid_size, d.grid_size), dtype=bool),
        )

    def step_state(self, key: jax.Array, state: SkittlesState, action: jax.Array, params: EnvParams):
        """Move, check the sideways hit, drop the rows, check the landing hit, draw the flicker mask."""
        d = self.difficulty
        # One draw: a word for the spawn column, then 8 bits per cell for the flicker mask.
        words = random_bits(key, (1 + -(-d.grid_size**2 // 4),))
        action = jnp.asarray(action, dtype=jnp.int32)
        move = (action == 3).astype(jnp.int32) - (action == 2).astype(jnp.int32)
        x = jnp.clip(state.x + move, d.lane_start, d.lane_end)
        hit_sideways = state.grid[-1, x]

        spawn = d.lane_start + integers_below(words[0], d.lane_end + 1 - d.lane_start)
        top_row = jnp.arange(d.grid_size) == spawn
        grid = jnp.concatenate([top_row[None], state.grid[:-1]], axis=0)
        hit_landing = grid[-1, x]

        terminated = hit_sideways | hit_landing
        timestep = state.timestep + 1
        truncated = timestep >= d.max_steps
        survived = jnp.logical_not(terminated)
        reward = jnp.where(survived, 1.0 / d.max_steps, 0.0).astype(jnp.float32)
        next_state = replace(
            state,
            timestep=timestep,
            grid=grid,
            x=x,
            score=state.score + survived.astype(jnp.int32),
            shown=self._flicker_mask(words[1:]),
        )
        return next_state, reward, terminated, truncated, {}

    def _flicker_mask(self, words: jax.Array) -> jax.Array:
        # 8 random bits per cell, four cells a word: a quarter of the cost of a float each.
        d = self.difficulty
        threshold = int(round(d.reveal_probability * 256))
        bits = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(-1)[: d.grid_size**2]
        return bits.reshape(d.grid_size, d.grid_size).astype(jnp.int32) < threshold

    # ------------------------------------------------------------------------------ render
    def _cell_kinds(self, state: SkittlesState, blocks: jax.Array) -> jax.Array:
        d = self.difficulty
        rows = jnp.arange(d.grid_size, dtype=jnp.int32)
        cols = rows
        # Row r's blocks were spawned r steps ago, which fixes their colour.
        row_color = _FIRST_BLOCK + (state.timestep - rows) % len(RAINBOW)
        ids = jnp.where(blocks, row_color[:, None], jnp.asarray(self._base_ids))
        agent = (rows[:, None] == d.grid_size - 1) & (cols[None, :] == state.x)
        return jnp.where(agent, _AGENT, ids)

    def _draw(self, state: SkittlesState, blocks: jax.Array) -> jax.Array:
        # The board is computed at cell resolution, then scaled up with the static grid lines
        # laid over it: one fused pass over the board's pixels.
        colors = jnp.asarray(self._palette)[self._cell_kinds(state, blocks)]
        board = draw_utils.upscale(colors, self.cell_pitch)
        board = jnp.where(self._line_mask[..., None], jnp.asarray(LINE_COLOR, dtype=jnp.uint8), board)
        x0, y0 = self.board_top_left
        canvas = self.frame().at[y0 : y0 + board.shape[0], x0 : x0 + board.shape[1]].set(board)
        return self.draw_score(canvas, state.score)

    def render_mdp(self, state: SkittlesState) -> jax.Array:
        """Every block, the agent and the score."""
        return self._draw(state, state.grid)

    def render_pomdp(self, state: SkittlesState) -> jax.Array:
        """Blocks only where the flicker mask shows them (all of them at t = 0); the agent always."""
        visible = (state.timestep == 0) | state.shown
        return self._draw(state, state.grid & visible)
