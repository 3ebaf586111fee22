"""Skittles: the rules step by step from hand-built states, the two twins' pixels, the returns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments.base import EnvParams
from popgym_arcade.environments.skittles import (
    AGENT_COLOR,
    EMPTY_COLOR,
    LINE_COLOR,
    OFF_LANE_COLOR,
    RAINBOW,
    Skittles,
    SkittlesDifficulty,
    SkittlesState,
)

LEVELS = ("Easy", "Medium", "Hard")
PARAMS = EnvParams()
STEP = 0.01


@pytest.fixture(scope="module")
def envs():
    return {level: Skittles(level) for level in LEVELS}


@pytest.fixture(scope="module")
def step(envs):
    """Jitted ``step_state`` per level."""
    return {level: jax.jit(env.step_state) for level, env in envs.items()}


@pytest.fixture(scope="module")
def render():
    """Jitted renders of the Easy twins: ``render[(partial_obs, obs_size)](state)``."""
    return {
        (partial, size): jax.jit(Skittles("Easy", partial_obs=partial, obs_size=size).render)
        for partial, size in ((False, 128), (True, 128), (False, 256))
    }


def make_state(blocks=(), x=4, timestep=5, score=None, hidden=()):
    """A state with blocks at the ``(row, col)`` cells in ``blocks``; ``hidden`` cells are masked out."""
    grid = np.zeros((10, 10), bool)
    for cell in blocks:
        grid[cell] = True
    shown = np.ones((10, 10), bool)
    for cell in hidden:
        shown[cell] = False
    return SkittlesState(
        timestep=jnp.int32(timestep),
        grid=jnp.asarray(grid),
        x=jnp.int32(x),
        score=jnp.int32(timestep if score is None else score),
        shown=jnp.asarray(shown),
    )


def as_np(tree):
    return jax.tree.map(np.asarray, tree)


# ----------------------------------------------------------------------------------- levels
def test_difficulty_table():
    table = {level: Skittles.difficulties[level] for level in LEVELS}
    lanes = [(d.lane_start, d.lane_end, d.lane_width) for d in table.values()]
    assert lanes == [(1, 8, 8), (2, 8, 7), (2, 7, 6)]
    for d in table.values():
        assert (d.grid_size, d.max_steps, d.reveal_probability) == (10, 100, 0.5)
    with pytest.raises(ValueError):
        SkittlesDifficulty(lane_start=3, lane_width=8)


# ------------------------------------------------------------------------------------ rules
@pytest.mark.parametrize("action, dies", [(3, True), (0, False), (1, False), (2, False), (4, False)])
def test_stepping_sideways_into_a_bottom_block(step, action, dies):
    # Agent in column 2, a block beside it in the bottom row (about to drop off the board).
    state = make_state(blocks=[(9, 3)], x=2, timestep=7, score=7)
    nxt, reward, terminated, truncated, info = as_np(step["Easy"](jax.random.key(0), state, action, PARAMS))
    assert bool(terminated) == dies and not truncated and info == {}
    assert reward == pytest.approx(0.0 if dies else STEP)
    assert nxt.x == {3: 3, 2: 1}.get(action, 2)
    assert nxt.score == (7 if dies else 8) and nxt.timestep == 8
    assert not nxt.grid[9].any()  # the block has dropped off


@pytest.mark.parametrize("action, dies", [(0, True), (1, True), (4, True), (2, False), (3, False)])
def test_a_block_landing_on_the_agent(step, action, dies):
    state = make_state(blocks=[(8, 5)], x=5)
    nxt, reward, terminated, truncated, _ = as_np(step["Easy"](jax.random.key(1), state, action, PARAMS))
    assert bool(terminated) == dies and not truncated
    assert reward == pytest.approx(0.0 if dies else STEP)
    assert nxt.grid[9, 5]


def test_rows_fall_and_one_block_spawns_in_the_lane(step, envs):
    blocks = [(0, 2), (3, 7), (8, 1), (9, 8)]
    state = make_state(blocks=blocks, x=4)
    for level in LEVELS:
        d = envs[level].difficulty
        for seed in range(5):
            nxt, reward, terminated, _, _ = as_np(step[level](jax.random.key(seed), state, 0, PARAMS))
            np.testing.assert_array_equal(nxt.grid[1:], np.asarray(state.grid)[:-1])
            (spawn,) = np.flatnonzero(nxt.grid[0])
            assert d.lane_start <= spawn <= d.lane_end
            assert not terminated and reward == pytest.approx(STEP)


@pytest.fixture(scope="module")
def many_steps(step):
    """One step from the same state (t = 17, empty board) under 4000 keys, per level (Easy, Hard)."""
    keys = jax.random.split(jax.random.key(3), 4000)
    batched = {level: jax.vmap(step[level], in_axes=(0, None, None, None)) for level in ("Easy", "Hard")}
    state = make_state(timestep=17)
    return keys, {level: as_np(f(keys, state, 0, PARAMS)[0]) for level, f in batched.items()}


def test_spawn_and_start_columns_are_uniform_over_the_lane(envs, many_steps):
    keys, states = many_steps
    n = len(keys)
    for level, nxt in states.items():
        env = envs[level]
        d = env.difficulty
        spawns = np.argmax(nxt.grid[:, 0], axis=1)
        starts = np.asarray(jax.vmap(env.reset_state, in_axes=(0, None))(keys, PARAMS).x)
        for columns in (spawns, starts):
            counts = np.bincount(columns, minlength=10)
            lane = counts[d.lane_start : d.lane_end + 1]
            assert counts.sum() == lane.sum() == n
            # Each count is binomial(n, 1/width): 7 standard deviations of slack.
            expected = n / d.lane_width
            assert np.all(np.abs(lane - expected) < 7 * np.sqrt(expected))


@pytest.mark.parametrize("level", LEVELS)
def test_moves_are_clamped_to_the_lane(envs, step, level):
    d = envs[level].difficulty
    key = jax.random.key(0)
    cases = [
        (d.lane_start, 2, d.lane_start),
        (d.lane_start, 3, d.lane_start + 1),
        (d.lane_end, 3, d.lane_end),
        (d.lane_end, 2, d.lane_end - 1),
    ]
    for x, action, expected in cases:
        assert int(step[level](key, make_state(x=x), action, PARAMS)[0].x) == expected


@pytest.mark.parametrize("action", [-1, 5, 6, 100, 2**31 - 1])
def test_out_of_range_actions_are_no_ops(step, action):
    state = make_state(blocks=[(8, 3), (9, 5)], x=4)
    key = jax.random.key(11)
    expected = as_np(step["Easy"](key, state, 0, PARAMS))
    got = as_np(step["Easy"](key, state, action, PARAMS))
    jax.tree.map(np.testing.assert_array_equal, got, expected)
    assert got[0].timestep == 6 and got[0].x == 4


def test_surviving_the_last_step_truncates_with_full_return(step):
    last = make_state(timestep=99)
    nxt, reward, terminated, truncated, _ = as_np(step["Easy"](jax.random.key(0), last, 0, PARAMS))
    assert truncated and not terminated and nxt.score == 100
    assert reward == pytest.approx(STEP)
    _, _, _, truncated, _ = step["Easy"](jax.random.key(0), make_state(timestep=98), 0, PARAMS)
    assert not truncated


def test_a_hit_on_the_last_step_is_a_termination(envs):
    env = envs["Easy"]
    state = make_state(blocks=[(8, 4)], timestep=99, score=99)
    _, state_out, reward, terminated, truncated, info = env.step(jax.random.key(0), state, 0, PARAMS)
    assert terminated and not truncated and float(reward) == 0.0
    assert int(info["final_state"].score) == 99 and int(state_out.timestep) == 0


def test_flicker_mask_comes_from_the_key(envs, many_steps):
    shown = many_steps[1]["Easy"].shown
    # Same state and time step, different keys (parallel envs, other episodes): different masks.
    assert len({m.tobytes() for m in shown}) == len(shown)
    assert 0.48 < shown.mean() < 0.52
    assert np.asarray(envs["Easy"].reset_state(jax.random.key(0), PARAMS).shown).all()


# ---------------------------------------------------------------------------------- render
def pixel(frame, env, row, col):
    x, y = env.cell_center(row, col)
    return tuple(np.asarray(frame)[y, x].tolist())


def cell_interior(frame, env, row, col):
    """All the pixels of a cell inside its grid lines, as ``(n, 3)``."""
    x0, y0 = env.board_top_left
    p, w = env.cell_pitch, env.line_width
    top, left = y0 + row * p + w, x0 + col * p + w
    return np.asarray(frame)[top : top + p - w, left : left + p - w].reshape(-1, 3)


def test_mdp_shows_blocks_in_their_row_colours(render, envs):
    env = envs["Easy"]
    state = make_state(blocks=[(0, 3), (4, 5), (9, 7), (6, 2)], x=2, timestep=12)
    frame = render[(False, 128)](state)
    expected = {
        (0, 3): RAINBOW[12 % 7],  # a block spawned r steps ago has the colour of time step t - r
        (4, 5): RAINBOW[8 % 7],
        (9, 7): RAINBOW[3 % 7],
        (6, 2): RAINBOW[6 % 7],
        (9, 2): AGENT_COLOR,
        (5, 5): EMPTY_COLOR,
        (5, 0): OFF_LANE_COLOR,
        (5, 9): OFF_LANE_COLOR,
    }
    for (row, col), color in expected.items():
        interior = cell_interior(frame, env, row, col)
        assert (interior == color).all(), (row, col)
    x0, y0 = env.board_top_left
    span = 10 * env.cell_pitch
    lines = np.asarray(frame)[[y0, y0 + span, y0 + 3 * env.cell_pitch], x0 : x0 + span + 1]
    assert (lines == LINE_COLOR).all()


def test_a_block_spawned_later_has_the_next_colour(step, render, envs):
    state = make_state(timestep=20)
    for _ in range(2):
        state = step["Easy"](jax.random.key(int(state.timestep)), state, 0, PARAMS)[0]
    frame = render[(False, 128)](state)
    colors = [pixel(frame, envs["Easy"], row, int(np.argmax(state.grid[row]))) for row in (0, 1)]
    assert colors == [RAINBOW[22 % 7], RAINBOW[21 % 7]]


def test_pomdp_hides_masked_blocks_but_never_the_agent(render, envs):
    env = envs["Easy"]
    hidden = [(4, 5), (7, 6), (9, 2), (5, 5)]
    state = make_state(blocks=[(0, 3), (4, 5), (7, 6)], x=2, timestep=12, hidden=hidden)
    mdp, pomdp = np.asarray(render[(False, 128)](state)), np.asarray(render[(True, 128)](state))
    assert (pixel(mdp, env, 4, 5), pixel(mdp, env, 7, 6)) == (RAINBOW[8 % 7], RAINBOW[5 % 7])
    assert pixel(pomdp, env, 4, 5) == pixel(pomdp, env, 7, 6) == EMPTY_COLOR
    assert pixel(pomdp, env, 0, 3) == pixel(mdp, env, 0, 3) == RAINBOW[12 % 7]
    assert pixel(pomdp, env, 9, 2) == AGENT_COLOR
    # Only the two hidden blocks' cells differ.
    differ = np.argwhere(np.any(mdp != pomdp, axis=-1))
    x0, y0 = env.board_top_left
    cells = {((y - y0) // env.cell_pitch, (x - x0) // env.cell_pitch) for y, x in differ}
    assert cells == {(4, 5), (7, 6)}


def test_pomdp_equals_mdp_at_t0_even_with_a_mask(render, envs):
    state = make_state(blocks=[(2, 3), (5, 6)], x=4, timestep=0, hidden=[(2, 3), (5, 6)])
    mdp, pomdp = np.asarray(render[(False, 128)](state)), np.asarray(render[(True, 128)](state))
    np.testing.assert_array_equal(mdp, pomdp)
    assert pixel(pomdp, envs["Easy"], 2, 3) == RAINBOW[(0 - 2) % 7]


def test_score_shows_in_the_top_band_only(render):
    draw = render[(False, 128)]
    frames = {score: np.asarray(draw(make_state(timestep=60, score=score))) for score in (0, 7, 47)}
    score_color = np.asarray(Skittles.score_color, np.uint8)
    lit = {s: np.all(f[:16] == score_color, axis=-1) for s, f in frames.items()}
    assert all(m.any() for m in lit.values())
    assert lit[47].sum() > lit[7].sum()  # two digits light more pixels than one
    assert not np.all(frames[0] == score_color, axis=-1)[16:].any()
    np.testing.assert_array_equal(frames[0][16:], frames[47][16:])


def test_256_pixels(render):
    env = Skittles("Easy", obs_size=256)
    state = make_state(blocks=[(3, 6)], x=8, timestep=10)
    frame = np.asarray(render[(False, 256)](state))
    assert frame.shape == (256, 256, 3)
    assert (cell_interior(frame, env, 3, 6) == RAINBOW[0]).all()
    assert (cell_interior(frame, env, 9, 8) == AGENT_COLOR).all()
    assert env.cell_pitch - env.line_width >= 16  # cells use the larger board
    x0, y0 = env.board_top_left
    assert (frame[y0 : y0 + 2, x0 : x0 + 10 * env.cell_pitch + 2] == LINE_COLOR).all()


# --------------------------------------------------------------------------------- returns
def test_returns_are_survived_fraction_within_bounds():
    """Random agents (actions -2..6, invalid ones included) and dodging agents, vmapped."""
    env = Skittles("Hard")
    d = env.difficulty
    num_envs, num_steps = 64, 260
    dodger = jnp.arange(num_envs) % 2 == 0

    def dodge(state):
        def safe(column):
            inside = (column >= d.lane_start) & (column <= d.lane_end)
            column = jnp.clip(column, 0, 9)
            return inside & ~state.grid[9, column] & ~state.grid[8, column]

        return jnp.where(safe(state.x), 0, jnp.where(safe(state.x - 1), 2, 3))

    def rollout(key):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), PARAMS)

        def body(carry, key):
            state, ret, length = carry
            k_act, k_step = jax.random.split(key)
            actions = jnp.where(dodger, jax.vmap(dodge)(state), jax.random.randint(k_act, (num_envs,), -2, 7))
            _, state, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, num_envs), state, actions, PARAMS
            )
            ret, length = ret + reward, length + 1
            done = term | trunc
            out = (done, term, trunc, ret, length)
            return (state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length)), out

        init = (state, jnp.zeros(num_envs), jnp.zeros(num_envs, jnp.int32))
        return jax.lax.scan(body, init, jax.random.split(key, num_steps))[1]

    done, term, trunc, ret, length = (np.asarray(a) for a in jax.jit(rollout)(jax.random.key(0)))
    assert not (term & trunc).any()
    r, n, t = ret[done], length[done], term[done]
    assert ((r >= 0) & (r <= 1 + 1e-5)).all() and (n <= d.max_steps).all()
    np.testing.assert_allclose(r, (n - t) * STEP, atol=1e-5)
    assert t.any() and trunc.any()
    np.testing.assert_allclose(ret[trunc], 1.0, atol=1e-5)
    assert (length[trunc] == d.max_steps).all()
