"""Navigator: walk a grid to the treasure and claim it, without stepping on TNT.

The POMDP twin shows the TNT and the treasure only in the first frame; after that it shows the
grid and the agent alone, so an agent must remember the map it saw once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import draw_utils
from popgym_arcade.environments.base import EnvParams
from popgym_arcade.environments.boards import BoardGame, move_cursor
from popgym_arcade.environments.randomness import integers_below, random_bits
from popgym_arcade.environments.struct import pytree, replace

EMPTY, TNT, TREASURE = 0, 1, 2
"""What a board cell holds (also the tile kinds of the frame)."""

FIRE = 4
"""The action that claims the treasure ("hit")."""

WIN_REWARD = 1.0
TNT_PENALTY = 0.5

TNT_RED = (255, 0, 0)
TNT_BAND = (255, 255, 255)
TNT_LETTERS = (0, 0, 0)
TREASURE_COLOR = (73, 214, 247)
AGENT_COLOR = (255, 255, 0)

# Letters for the TNT block, tried from the largest: the font's own 5x5 glyphs, then 3-wide
# glyphs small enough for a 13-pixel cell.
_TNT_GLYPHS = (
    (
        ("11111", "00100", "00100", "00100", "00100"),
        ("10001", "11001", "10101", "10011", "10001"),
    ),
    (
        ("111", "010", "010", "010"),
        ("101", "111", "111", "101"),
    ),
)


@dataclasses.dataclass(frozen=True)
class NavigatorDifficulty:
    """One Navigator level.

    Attributes:
        board_size: side ``B`` of the square board.
        num_tnt: number of TNT cells (7 on every level).
        max_steps: step limit (truncation), ``B^2``. Each step that does not end the game costs
            ``0.5 / max_steps``, so the step costs of an episode add up to at most 0.5.
    """

    board_size: int
    max_steps: int
    num_tnt: int = 7

    def __post_init__(self) -> None:
        if self.board_size < 2:
            raise ValueError(f"board_size must be at least 2: {self}")
        if not 0 <= self.num_tnt <= self.board_size**2 - 2:
            raise ValueError(f"the board needs room for the TNT, the treasure and the agent: {self}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be positive: {self}")

    @property
    def step_penalty(self) -> float:
        """Cost of a step that does not end the game: ``0.5 / max_steps``."""
        return 0.5 / self.max_steps


@pytree
class NavigatorState:
    """A Navigator state.

    Attributes:
        timestep: steps since reset (int32).
        board: ``int32[B, B]`` indexed ``[row, col]``: ``EMPTY`` (0), ``TNT`` (1) or
            ``TREASURE`` (2).
        x, y: the agent's column and row (int32).
    """

    timestep: jax.Array
    board: jax.Array
    x: jax.Array
    y: jax.Array


def sample_distinct_cells(key: jax.Array, num_cells: int, count: int) -> jax.Array:
    """``int32[count]``: distinct cells of ``0 .. num_cells - 1``, a uniformly random ordered subset.

    Pick ``i`` is the ``r``-th cell not picked before, with ``r`` uniform in
    ``0 .. num_cells - i - 1``. Only ``count`` random numbers are drawn: sorting a random key
    per cell (``top_k``) costs some 60 times more, and reset runs on every step.
    """
    # One draw of `count` words (jax.random.randint would make three PRNG calls).
    words = random_bits(key, (count,))
    ranks = integers_below(words, num_cells - jnp.arange(count))
    picks: list[jax.Array] = []
    for i in range(count):
        cell = ranks[i]
        if picks:
            before = jnp.stack(picks)
            # The r-th free cell is the least v with v = r + #(picks <= v); iterating from r
            # climbs to it and needs at most one pass per earlier pick, plus one.
            for _ in range(i + 1):
                cell = ranks[i] + jnp.sum(before <= cell, dtype=jnp.int32)
        picks.append(cell)
    return jnp.stack(picks)


def place_items(key: jax.Array, board_size: int, num_tnt: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A random board: ``(board, x, y)`` with ``num_tnt`` TNT, one treasure and the agent's cell.

    The ``num_tnt + 2`` cells are distinct and drawn uniformly (see
    :func:`sample_distinct_cells`): TNT first, then the treasure, then the agent.
    """
    num_cells = board_size * board_size
    cells = sample_distinct_cells(key, num_cells, num_tnt + 2)
    kinds = jnp.asarray([TNT] * num_tnt + [TREASURE], dtype=jnp.int32)
    board = jnp.zeros(num_cells, jnp.int32).at[cells[: num_tnt + 1]].set(kinds)
    y, x = jnp.divmod(cells[num_tnt + 1], board_size)
    return board.reshape(board_size, board_size), x, y


def _tnt_letters(width: int) -> np.ndarray | None:
    """``bool[h, w]``: "TNT" in the largest glyphs that fit ``width`` pixels, or None."""
    for t_glyph, n_glyph in _TNT_GLYPHS:
        t = np.array([[c == "1" for c in row] for row in t_glyph])
        n = np.array([[c == "1" for c in row] for row in n_glyph])
        gap = np.zeros((t.shape[0], 1), dtype=bool)
        letters = np.concatenate([t, gap, n, gap, t], axis=1)
        if letters.shape[1] <= width:
            return letters
    return None


def draw_tnt(cell: np.ndarray) -> np.ndarray:
    """A TNT block over the whole ``cell``: red, a white band across the middle, black "TNT".

    Cells too small for 3-wide letters (under 11 pixels) show the band alone.
    """
    size = cell.shape[0]
    cell = np.array(cell)
    cell[...] = TNT_RED
    letters = _tnt_letters(size)
    if letters is None:
        band = max(2, -(-size // 3))
        top = (size - band) // 2
        cell[top : top + band, :] = TNT_BAND
        return cell
    h, w = letters.shape
    band = min(h + 2, size - 2)
    top = (size - band) // 2
    margin = size // 16
    cell[top : top + band, margin : size - margin] = TNT_BAND
    y0, x0 = top + (band - h) // 2, (size - w) // 2
    region = cell[y0 : y0 + h, x0 : x0 + w]
    region[letters] = TNT_LETTERS
    return cell


def draw_treasure(cell: np.ndarray) -> np.ndarray:
    """The treasure: a light-blue hexagon centred in ``cell``."""
    size = cell.shape[0]
    inset = size // 10
    box = (inset, inset), (size - inset, size - inset)
    return np.asarray(draw_utils.draw_hexagon(cell, *box, TREASURE_COLOR))


class Navigator(BoardGame):
    """Navigator: walk a B x B grid to the treasure and claim it; TNT ends the walk.

    - game: a grid holds 7 TNT blocks and one treasure. The agent (a yellow square) walks one
        cell per step and must stand on the treasure and press fire ("hit") to claim it.
        Walking onto TNT blows the agent up. Standing on the treasure without firing does
        nothing.

    - rules, within a step:
        1. move: actions 0-3 move the agent one cell, clamped at the walls (a move into a
            wall leaves it in place);
        2. lose: if the agent now stands on TNT, the game is lost;
        3. win: if the action was fire and the agent stands on the treasure, the game is won;
        4. the step counter advances.

    - reset: the 7 TNT cells, the treasure and the agent's start are 9 distinct cells drawn
        uniformly at random from the reset key (any cell, edges included): the treasure is
        never on TNT, the agent never starts on TNT or on the treasure.

    - action: ``int32`` of shape ``()``
        | action | 0 up  | 1 down | 2 left | 3 right | 4 fire                |
        | effect | y - 1 | y + 1  | x - 1  | x + 1   | claim the treasure    |
        Any other value is a no-op that still spends a step (and costs the step penalty).

    - reward (``M = max_steps = B^2``):
        - +1 for a winning hit;
        - -0.5 for walking onto TNT;
        - -0.5 / M for every other step (moves, hits off the treasure, no-ops).
        The step costs of an episode add up to at most ``(M - 1) * 0.5 / M < 0.5`` before its
        last step, so every return lies in ``[-1 + 0.5 / M, 1 - 0.5 / M]``, inside (-1, 1):
        a win returns ``1 - k * 0.5 / M`` after ``k >= 1`` other steps, a loss between -0.5
        and ``-1 + 0.5 / M``, a time-out exactly -0.5.

    - episode end:
        - terminated: the treasure was claimed (won) or the agent walked onto TNT (lost);
        - truncated: ``timestep`` reaches ``max_steps`` without either. A win or a loss on
            the last step counts (and pays) as terminated.

    - difficulty (7 TNT on every level):
        | level  | B  | max_steps = B^2 | step penalty 0.5 / B^2 |
        | Easy   | 8  | 64              | 0.0078125              |
        | Medium | 10 | 100             | 0.005                  |
        | Hard   | 12 | 144             | 0.00347                |

    - observation: ``uint8[S, S, 3]``, S = 128 or 256, on a grey background. The board sits
        in the centre with white grid lines. TNT is a red block with a white band (with black
        "TNT" letters where the cell is 11 pixels or more, i.e. at 256 px), the treasure a
        light-blue hexagon, the agent a yellow square covering its whole cell (and anything
        under it). The number at the top counts the steps left before truncation
        (``max_steps - timestep``); the banner "NAVIGATOR" is at the bottom.
        - MDP: the grid, every TNT block, the treasure and the agent.
        - POMDP: at ``t > 0`` the grid and the agent only: TNT and treasure cells look empty.
        - t = 0: the POMDP frame equals the MDP frame, the full board: the only time the
            POMDP agent sees the map.

    - state: :class:`NavigatorState`.

    ```python
    env = Navigator("Hard", partial_obs=True)
    obs, state = env.reset(jax.random.key(0))
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 3)
    ```
    """

    difficulties = {
        "Easy": NavigatorDifficulty(board_size=8, max_steps=64),
        "Medium": NavigatorDifficulty(board_size=10, max_steps=100),
        "Hard": NavigatorDifficulty(board_size=12, max_steps=144),
    }
    title = "NAVIGATOR"
    independent_step_key = False
    background_color = (119, 122, 127)
    title_color = (138, 0, 138)
    score_color = (0, 0, 127)
    return_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    cell_color = (119, 122, 127)
    cursor_color = AGENT_COLOR
    line_color = (255, 255, 255)
    num_kinds = 3

    def __init__(self, difficulty: Any = "Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        if self.layout.cell < 2:
            raise ValueError(f"a {self.difficulty.board_size}-cell board does not fit {obs_size} pixels")

    @property
    def max_score(self) -> int:
        """The largest number the HUD shows: the steps left at reset, ``max_steps``."""
        return self.difficulty.max_steps

    def draw_mark(self, cell: np.ndarray, kind: int, on_cursor: bool) -> np.ndarray:
        """TNT or the treasure; under the agent, nothing (the yellow square hides the cell)."""
        if on_cursor:
            return cell
        return draw_tnt(cell) if kind == TNT else draw_treasure(cell)

    # ------------------------------------------------------------------------------- rules
    @property
    def default_params(self) -> EnvParams:
        """Navigator has no tunable parameters (the level holds its numbers)."""
        return EnvParams()

    def reset_state(self, key: jax.Array, params: EnvParams) -> NavigatorState:
        """A random board (see :func:`place_items`) with the agent on its own cell."""
        d = self.difficulty
        board, x, y = place_items(key, d.board_size, d.num_tnt)
        return NavigatorState(timestep=jnp.int32(0), board=board, x=x, y=y)

    def step_state(self, key: jax.Array, state: NavigatorState, action: jax.Array, params: EnvParams):
        """Move (or fire), then lose on TNT or win by firing on the treasure."""
        d = self.difficulty
        action = jnp.asarray(action, dtype=jnp.int32)
        x, y = move_cursor(state.x, state.y, action, d.board_size)
        cell = state.board[y, x]
        won = (action == FIRE) & (cell == TREASURE)
        lost = cell == TNT
        reward = jnp.where(won, WIN_REWARD, jnp.where(lost, -TNT_PENALTY, -d.step_penalty))
        reward = reward.astype(jnp.float32)
        timestep = state.timestep + 1
        next_state = replace(state, timestep=timestep, x=x, y=y)
        return next_state, reward, won | lost, timestep >= d.max_steps, {}

    def steps_left(self, state: NavigatorState) -> jax.Array:
        """Steps before truncation (the number shown at the top of the frame)."""
        return self.difficulty.max_steps - state.timestep

    # ------------------------------------------------------------------------------ render
    def render_mdp(self, state: NavigatorState) -> jax.Array:
        """The grid, the TNT, the treasure, the agent and the steps left."""
        return self.render_board(state.board, state.x, state.y, self.steps_left(state))

    def render_pomdp(self, state: NavigatorState) -> jax.Array:
        """The grid, the agent and the steps left; the TNT and the treasure only at t = 0."""
        kinds = jnp.where(state.timestep == 0, state.board, EMPTY)
        return self.render_board(kinds, state.x, state.y, self.steps_left(state))
