"""Rule and rendering tests of Breakout (hand-built states, a reference rule-by-rule model)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments import breakout as bo
from popgym_arcade.environments.breakout import Breakout, BreakoutParams, BreakoutState
from popgym_arcade.environments.struct import replace

WIDTH = 6  # Easy's paddle, used by the hand-built rule tests
PAY = {r: (17 - 2 * r) / 600 for r in range(1, 7)}  # the documented brick rewards of rows 1..6


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def env():
    return Breakout("Easy")


@pytest.fixture(scope="module")
def pomdp():
    return Breakout("Easy", partial_obs=True)


@pytest.fixture(scope="module")
def params(env):
    return env.default_params


@pytest.fixture(scope="module")
def step(env):
    fn = jax.jit(env.step_state)
    key = jax.random.key(0)
    return lambda state, action, params=BreakoutParams(): fn(key, state, jnp.int32(action), params)


@pytest.fixture(scope="module")
def render_mdp(env):
    return jax.jit(env.render_mdp)


@pytest.fixture(scope="module")
def render_pomdp(pomdp):
    return jax.jit(pomdp.render_pomdp)


def make_state(**changes) -> BreakoutState:
    """A mid-episode state: full wall, paddle at 2, ball at (x=5, y=10) moving up-left."""
    state = BreakoutState(
        ball_x=jnp.int32(5),
        ball_y=jnp.int32(10),
        ball_dir=jnp.int32(0),
        last_x=jnp.int32(6),
        last_y=jnp.int32(11),
        paddle=jnp.int32(2),
        bricks=jnp.asarray(bo.initial_bricks()),
        strike=jnp.bool_(False),
        score=jnp.int32(0),
        timestep=jnp.int32(5),
    )
    dtypes = {"bricks": jnp.bool_, "strike": jnp.bool_}
    changes = {k: jnp.asarray(v, dtypes.get(k, jnp.int32)) for k, v in changes.items()}
    return replace(state, **changes)


def bricks_with(*cells: tuple[int, int]) -> np.ndarray:
    """A brick map with bricks only at ``(y, x)`` cells."""
    bricks = np.zeros((20, 10), dtype=bool)
    for y, x in cells:
        bricks[y, x] = True
    return bricks


def as_tuple(state: BreakoutState) -> tuple:
    return (
        int(state.ball_x), int(state.ball_y), int(state.ball_dir), int(state.last_x), int(state.last_y),
        int(state.paddle), bool(state.strike), int(state.score), int(state.timestep),
    )  # fmt: skip


# --------------------------------------------------------------------------------- difficulty
def test_difficulty_table_and_params():
    widths = {level: d.paddle_width for level, d in Breakout.difficulties.items()}
    assert widths == {"Easy": 6, "Medium": 5, "Hard": 4}
    assert Breakout("Hard").default_params.max_steps_in_episode == 2000
    assert bo.ROWS == 20 and bo.COLS == 10 and bo.NUM_BRICKS == 60


def test_row_rewards_sum_to_one_top_rows_worth_most():
    rewards = bo.ROW_REWARD[1:7]
    np.testing.assert_allclose(rewards, [PAY[r] for r in range(1, 7)], rtol=1e-6)
    assert np.all(np.diff(rewards) < 0)
    assert bo.ROW_REWARD[0] == 0 and np.all(bo.ROW_REWARD[7:] == 0)
    assert abs(10 * rewards.sum() - 1.0) < 1e-6


@pytest.mark.parametrize("level,start", [("Easy", 2), ("Medium", 2), ("Hard", 3)])
def test_reset(level, start):
    game = Breakout(level)
    keys = jax.random.split(jax.random.key(3), 64)
    states = jax.vmap(game.reset_state, in_axes=(0, None))(keys, game.default_params)
    width = game.difficulty.paddle_width
    assert np.all(states.paddle == start) and 0 <= start <= 10 - width
    assert np.all(states.ball_y == 13) and np.all(states.timestep == 0) and np.all(states.score == 0)
    assert not np.any(states.strike)
    right = np.asarray(states.ball_x) == 9
    assert 0 < right.sum() < 64  # both starts happen
    assert np.all(np.where(right, states.ball_dir == 1, (states.ball_x == 0) & (states.ball_dir == 0)))
    assert np.all(states.last_x == states.ball_x) and np.all(states.last_y == states.ball_y)
    np.testing.assert_array_equal(states.bricks, np.broadcast_to(bo.initial_bricks(), (64, 20, 10)))
    assert bo.initial_bricks()[1:7].all() and bo.initial_bricks().sum() == 60


# ------------------------------------------------------------------------------------- rules
@pytest.mark.parametrize("direction,dx,dy", [(0, -1, -1), (1, 1, -1), (2, 1, 1), (3, -1, 1)])
def test_ball_moves_diagonally(step, direction, dx, dy):
    state, reward, terminated, truncated, info = step(make_state(ball_dir=direction), 0)
    assert as_tuple(state) == (5 + dx, 10 + dy, direction, 5, 10, 2, False, 0, 6)
    assert float(reward) == 0 and not terminated and not truncated and info == {}


def test_side_walls_mirror_horizontally(step):
    state = step(make_state(ball_x=0, ball_dir=0), 0)[0]
    assert (int(state.ball_x), int(state.ball_y), int(state.ball_dir)) == (0, 9, 1)
    state = step(make_state(ball_x=9, ball_dir=2), 0)[0]
    assert (int(state.ball_x), int(state.ball_y), int(state.ball_dir)) == (9, 11, 3)


def test_ceiling_mirrors_vertically(step):
    state, reward, *_ = step(make_state(ball_x=4, ball_y=0, ball_dir=1), 0)
    assert (int(state.ball_x), int(state.ball_y), int(state.ball_dir)) == (5, 0, 2)
    assert float(reward) == 0 and not state.strike


def test_brick_breaks_pays_and_bounces(step):
    state, reward, terminated, truncated, _ = step(make_state(ball_x=3, ball_y=7, ball_dir=1), 0)
    assert as_tuple(state) == (4, 7, 2, 3, 7, 2, True, 1, 6)
    assert not state.bricks[6, 4] and int(state.bricks.sum()) == 59
    assert float(reward) == pytest.approx(PAY[6])
    assert not terminated and not truncated


def test_top_row_brick_pays_most(step):
    bricks = bricks_with(*[(1, x) for x in range(10)], (6, 0))
    state, reward, terminated, *_ = step(make_state(ball_x=4, ball_y=2, ball_dir=0, bricks=bricks), 0)
    assert float(reward) == pytest.approx(PAY[1])
    assert (int(state.ball_x), int(state.ball_y), int(state.ball_dir)) == (3, 2, 3)
    assert not state.bricks[1, 3] and not terminated


def test_ball_passes_through_a_brick_right_after_a_strike(step):
    # MinAtar: the brick stays (it is not removed unpaid) and the ball does not bounce.
    state, reward, terminated, *_ = step(make_state(ball_x=3, ball_y=7, ball_dir=1, strike=True), 0)
    assert as_tuple(state) == (4, 6, 1, 3, 7, 2, True, 0, 6)
    assert bool(state.bricks[6, 4]) and int(state.bricks.sum()) == 60
    assert float(reward) == 0 and not terminated
    # Leaving the bricks clears the strike; the next brick breaks again.
    state = step(make_state(ball_x=3, ball_y=9, ball_dir=1, strike=True), 0)[0]
    assert not state.strike


def test_paddle_bounces_ball_falling_from_above(step):
    state, reward, terminated, *_ = step(make_state(ball_x=4, ball_y=18, ball_dir=2), 0)
    assert (int(state.ball_x), int(state.ball_y), int(state.ball_dir)) == (5, 18, 1)
    assert float(reward) == 0 and not terminated


def test_paddle_corner_sends_ball_back(step):
    # Paddle covers 2..7; the ball comes from column 1 onto column 2.
    state, reward, terminated, *_ = step(make_state(ball_x=1, ball_y=18, ball_dir=2), 0)
    assert (int(state.ball_x), int(state.ball_y), int(state.ball_dir)) == (2, 18, 0)
    assert not terminated


def test_paddle_moves_before_the_ball(step):
    # Moving left to 1..6 puts the paddle under the ball: a plain bounce, not a corner.
    state, _, terminated, *_ = step(make_state(ball_x=1, ball_y=18, ball_dir=2), 2)
    assert (int(state.paddle), int(state.ball_x), int(state.ball_y), int(state.ball_dir)) == (1, 2, 18, 1)
    # Moving right (to 3..8) away from a ball falling from column 2 to column 1 loses it.
    state, reward, terminated, *_ = step(make_state(ball_x=2, ball_y=18, ball_dir=3), 3)
    assert int(state.paddle) == 3 and terminated


def test_lost_ball_terminates_with_penalty_of_bricks_left(step):
    state, reward, terminated, truncated, _ = step(make_state(ball_x=9, ball_y=18, ball_dir=3), 0)
    assert int(state.ball_y) == 19 and terminated and not truncated
    assert float(reward) == pytest.approx(-1.0)
    bricks = bricks_with(*[(2, x) for x in range(10)], *[(5, x) for x in range(5)])
    _, reward, terminated, *_ = step(make_state(ball_x=9, ball_y=18, ball_dir=3, bricks=bricks), 0)
    assert terminated and float(reward) == pytest.approx(-15 / 60)


def test_clearing_the_board_terminates_without_penalty(step):
    bricks = bricks_with((6, 4))
    state = make_state(ball_x=3, ball_y=7, ball_dir=1, bricks=bricks)
    state, reward, terminated, truncated, _ = step(state, 0)
    assert not state.bricks.any() and terminated and not truncated
    assert float(reward) == pytest.approx(PAY[6])


def test_truncation_at_the_step_limit(step):
    _, _, terminated, truncated, _ = step(make_state(timestep=1998), 0)
    assert not truncated and not terminated
    _, _, terminated, truncated, _ = step(make_state(timestep=1999), 0)
    assert truncated and not terminated
    _, _, _, truncated, _ = step(make_state(timestep=9), 0, BreakoutParams(max_steps_in_episode=10))
    assert truncated


@pytest.mark.parametrize("action", [0, 1, 4, -1, 5, 99])
def test_other_actions_are_noops_that_spend_a_step(step, action):
    state = make_state(paddle=3)
    expected = step(state, 0)[0]
    got, reward, *_ = step(state, action)
    assert as_tuple(got) == as_tuple(expected)
    assert int(got.paddle) == 3 and int(got.timestep) == 6


def test_paddle_moves_and_is_clamped(step):
    assert int(step(make_state(paddle=3), 2)[0].paddle) == 2
    assert int(step(make_state(paddle=3), 3)[0].paddle) == 4
    assert int(step(make_state(paddle=0), 2)[0].paddle) == 0
    assert int(step(make_state(paddle=4), 3)[0].paddle) == 4  # 10 - 6
    for width in (5, 4):
        assert int(bo.move_paddle(jnp.int32(10 - width), jnp.int32(3), width)) == 10 - width


# ---------------------------------------------------- rollouts against a reference model
def reference_step(s: dict, action: int, width: int, max_steps: int):
    """The rules written imperatively (MinAtar style), independently of the module."""
    bricks = s["bricks"].copy()
    paddle = s["paddle"]
    if action == 2:
        paddle = max(0, paddle - 1)
    elif action == 3:
        paddle = min(10 - width, paddle + 1)
    bx, by, d = s["ball_x"], s["ball_y"], s["ball_dir"]
    x = bx + (1 if d in (1, 2) else -1)
    y = by + (1 if d in (2, 3) else -1)
    if x < 0 or x > 9:
        x = min(max(x, 0), 9)
        d = {0: 1, 1: 0, 2: 3, 3: 2}[d]
    reward, score, lost, in_brick = 0.0, s["score"], False, False
    if y < 0:
        y = 0
        d = {0: 3, 1: 2, 2: 1, 3: 0}[d]
    elif bricks[y, x]:
        in_brick = True
        if not s["strike"]:
            reward += PAY[y]
            score += 1
            bricks[y, x] = False
            y = by
            d = {0: 3, 1: 2, 2: 1, 3: 0}[d]
    elif y == 19:
        if paddle <= bx < paddle + width:
            d, y = {2: 1, 3: 0}[d], by
        elif paddle <= x < paddle + width:
            d, y = {2: 0, 3: 1}[d], by
        else:
            lost = True
    left = int(bricks.sum())
    if lost:
        reward -= left / 60
    terminated = lost or left == 0
    timestep = s["timestep"] + 1
    nxt = dict(
        ball_x=x, ball_y=y, ball_dir=d, last_x=bx, last_y=by, paddle=paddle, bricks=bricks,
        strike=in_brick, score=score, timestep=timestep,
    )  # fmt: skip
    return nxt, reward, terminated, (timestep >= max_steps) and not terminated


NUM_ENVS, NUM_STEPS, LIMIT = 24, 400, 300


@pytest.fixture(scope="module")
def rollout(env):
    """A vmapped, auto-resetting rollout of ``env.step`` with a noisy paddle-tracking policy."""
    params = BreakoutParams(max_steps_in_episode=LIMIT)

    @jax.jit
    def run(key):
        key, k_reset, k_holes = jax.random.split(key, 3)
        state = jax.vmap(env.reset_state, in_axes=(0, None))(jax.random.split(k_reset, NUM_ENVS), params)
        # First episodes start from walls with random holes: balls get inside the wall, where
        # strikes follow each other (pass-throughs); later episodes start from full walls.
        holes = jax.random.uniform(k_holes, state.bricks.shape) < 0.4
        state = replace(state, bricks=state.bricks & ~holes)

        def body(state, key):
            k_mix, k_rand, k_step = jax.random.split(key, 3)
            ball, paddle = state.ball_x, state.paddle
            track = jnp.where(ball < paddle + 1, 2, jnp.where(ball > paddle + 4, 3, 0))
            noise = jax.random.randint(k_rand, (NUM_ENVS,), -2, 8)  # out-of-range actions included
            action = jnp.where(jax.random.uniform(k_mix, (NUM_ENVS,)) < 0.3, noise, track)
            _, new_state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, NUM_ENVS), state, action, params
            )
            return new_state, (state, action, info["final_state"], reward, terminated, truncated)

        return jax.lax.scan(body, state, jax.random.split(key, NUM_STEPS))[1]

    return jax.tree.map(np.asarray, run(jax.random.key(7)))


def test_rollout_matches_reference_rules(rollout):
    states, actions, finals, rewards, terminated, truncated = rollout
    fields = [f for f in BreakoutState.__dataclass_fields__]
    events = {"breaks": 0, "pass_through": 0, "lost": 0, "truncated": 0, "corner": 0}
    for e in range(NUM_ENVS):
        for t in range(NUM_STEPS):
            s = {f: getattr(states, f)[t, e] for f in fields}
            s = {f: (v.copy() if f == "bricks" else v.item()) for f, v in s.items()}
            nxt, reward, term, trunc = reference_step(s, int(actions[t, e]), WIDTH, LIMIT)
            for f in fields:
                got = getattr(finals, f)[t, e]
                np.testing.assert_array_equal(got, nxt[f], err_msg=f"{f} env {e} step {t}")
            assert rewards[t, e] == pytest.approx(reward, abs=1e-6)
            assert (bool(terminated[t, e]), bool(truncated[t, e])) == (term, trunc)
            events["breaks"] += nxt["score"] > s["score"]
            events["pass_through"] += nxt["strike"] and nxt["score"] == s["score"]
            events["lost"] += term
            events["truncated"] += trunc
            falling = s["ball_dir"] >= 2 and s["ball_y"] == 18 and nxt["ball_y"] == 18
            events["corner"] += falling and nxt["ball_dir"] == {2: 0, 3: 1}[s["ball_dir"]]
            if (term or trunc) and t + 1 < NUM_STEPS:  # auto-reset: a fresh episode follows
                assert states.timestep[t + 1, e] == 0
    assert all(count > 0 for count in events.values()), events


def test_episode_returns_within_bounds(rollout):
    _, _, _, rewards, terminated, truncated = rollout
    done = terminated | truncated
    running = np.zeros(NUM_ENVS)
    finished = []
    for t in range(NUM_STEPS):
        running += rewards[t]
        assert np.all(running >= -1 - 1e-5) and np.all(running <= 1 + 1e-5)
        finished.extend(running[done[t]])
        running[done[t]] = 0
    finished = np.asarray(finished)
    assert len(finished) > NUM_ENVS
    assert np.all(finished >= -1 - 1e-5) and np.all(finished <= 1 + 1e-5)
    assert finished.min() < 0 < finished.max()


# --------------------------------------------------------------------------------- rendering
def pixel(frame, env, x, y):
    px, py = env.cell_center(x, y)
    return tuple(int(v) for v in np.asarray(frame)[py, px])


def cells_mask(env, *cells: tuple[int, int]) -> np.ndarray:
    """``bool[S, S]``: the canvas pixels of board cells ``(x, y)``."""
    mask = np.zeros((env.obs_size, env.obs_size), dtype=bool)
    left, top = env.board_top_left()
    h, w = bo.CELL_H * env.scale, bo.CELL_W * env.scale
    for x, y in cells:
        mask[top + y * h : top + (y + 1) * h, left + x * w : left + (x + 1) * w] = True
    return mask


def count_color(frame, color) -> int:
    return int(np.all(np.asarray(frame) == np.asarray(color, np.uint8), axis=-1).sum())


def test_mdp_shows_bricks_paddle_ball_and_trail(env, render_mdp):
    bricks = bo.initial_bricks()
    bricks[3, 7] = False
    frame = render_mdp(make_state(ball_x=5, ball_y=10, last_x=6, last_y=11, paddle=3, bricks=bricks))
    assert frame.shape == (128, 128, 3) and frame.dtype == jnp.uint8
    for row in range(1, 7):
        assert pixel(frame, env, 2, row) == bo.BRICK_COLORS[row - 1]
    assert pixel(frame, env, 7, 3) == bo.BOARD_COLOR
    assert pixel(frame, env, 5, 10) == bo.BALL_COLOR
    assert pixel(frame, env, 6, 11) == bo.TRAIL_COLOR
    assert [pixel(frame, env, x, 19) == bo.PADDLE_COLOR for x in range(10)] == [3 <= x < 9 for x in range(10)]
    assert pixel(frame, env, 4, 12) == bo.BOARD_COLOR
    # The ball and trail are small sprites: one each.
    cell = bo.CELL_W * bo.CELL_H
    assert 0 < count_color(frame, bo.BALL_COLOR) < cell and 0 < count_color(frame, bo.TRAIL_COLOR) < cell
    # Walls left and right of the board.
    left, top = env.board_top_left()
    assert tuple(np.asarray(frame)[top + 40, left - 1]) == bo.WALL_COLOR
    assert tuple(np.asarray(frame)[top + 40, left + 90]) == bo.WALL_COLOR


def test_ball_is_drawn_over_a_brick_it_passes_through(env, render_mdp):
    frame = render_mdp(make_state(ball_x=4, ball_y=6, last_x=3, last_y=7, strike=True))
    assert pixel(frame, env, 4, 6) == bo.BALL_COLOR
    assert pixel(frame, env, 3, 6) == bo.BRICK_COLORS[5]


def sprite_cell(frame, env, x, y) -> np.ndarray:
    """The pixels of board cell ``(x, y)``."""
    left, top = env.board_top_left()
    h, w = bo.CELL_H * env.scale, bo.CELL_W * env.scale
    return np.asarray(frame)[top + y * h : top + (y + 1) * h, left + x * w : left + (x + 1) * w]


def expected_cell(sprite, color, under) -> np.ndarray:
    """A 128-px cell showing ``under`` (``uint8[4, 9, 3]``) with ``sprite``'s lit pixels in ``color``."""
    lit = np.array([[c == "#" for c in row] for row in sprite])
    return np.where(lit[..., None], np.asarray(color, np.uint8), under)


def test_sprites_cover_only_their_lit_pixels(env, render_mdp):
    # The ball has just left a brick it passed through: the trail lies on that brick.
    frame = render_mdp(make_state(ball_x=4, ball_y=7, last_x=3, last_y=6, ball_dir=3))
    brick = sprite_cell(render_mdp(make_state(ball_x=9, ball_y=12, last_x=9, last_y=12)), env, 3, 6)
    trail_on_brick = expected_cell(bo._TRAIL_SPRITE, bo.TRAIL_COLOR, brick)
    np.testing.assert_array_equal(sprite_cell(frame, env, 3, 6), trail_on_brick)
    board = np.full((bo.CELL_H, bo.CELL_W, 3), bo.BOARD_COLOR, np.uint8)
    ball_on_board = expected_cell(bo._BALL_SPRITE, bo.BALL_COLOR, board)
    np.testing.assert_array_equal(sprite_cell(frame, env, 4, 7), ball_on_board)
    # Ball and trail in one cell (as at reset): the ball covers the trail.
    frame = render_mdp(make_state(ball_x=2, ball_y=12, last_x=2, last_y=12))
    np.testing.assert_array_equal(sprite_cell(frame, env, 2, 12), ball_on_board)
    assert count_color(frame, bo.TRAIL_COLOR) == 0


def test_pomdp_hides_falling_ball_and_trail(env, render_mdp, render_pomdp):
    for direction, visible in [(0, True), (1, True), (2, False), (3, False)]:
        state = make_state(ball_dir=direction, last_x=6, last_y=11 if direction < 2 else 9)
        mdp, pomdp = render_mdp(state), render_pomdp(state)
        assert pixel(mdp, env, 5, 10) == bo.BALL_COLOR and count_color(mdp, bo.TRAIL_COLOR) > 0
        assert count_color(pomdp, bo.TRAIL_COLOR) == 0
        assert (pixel(pomdp, env, 5, 10) == bo.BALL_COLOR) == visible
        assert (count_color(pomdp, bo.BALL_COLOR) > 0) == visible
        # Everything else is the same in both twins.
        differ = np.any(np.asarray(mdp) != np.asarray(pomdp), axis=-1)
        ball_and_trail = cells_mask(env, (5, 10), (int(state.last_x), int(state.last_y)))
        assert differ.any() and not np.any(differ & ~ball_and_trail)


def test_twins_are_equal_at_t0(env, params, render_mdp, render_pomdp):
    for key in jax.random.split(jax.random.key(11), 4):
        state = env.reset_state(key, params)
        np.testing.assert_array_equal(render_mdp(state), render_pomdp(state))
    # Also for a hand-built first frame with the ball falling and a separate trail.
    state = make_state(timestep=0, ball_dir=3, last_x=6, last_y=9)
    frame = render_pomdp(state)
    np.testing.assert_array_equal(render_mdp(state), frame)
    assert pixel(frame, env, 5, 10) == bo.BALL_COLOR and pixel(frame, env, 6, 9) == bo.TRAIL_COLOR


def test_score_shows_in_the_top_band(env, render_mdp):
    zero, some = render_mdp(make_state(score=0)), render_mdp(make_state(score=37))
    differ = np.any(np.asarray(zero) != np.asarray(some), axis=-1)
    assert differ.any() and np.nonzero(differ)[0].max() < 16
    np.testing.assert_array_equal(np.asarray(some)[:16], np.asarray(env.draw_score(env.frame(), 37))[:16])
    assert count_color(some[:16], Breakout.score_color) > 0


def test_render_at_256():
    env = Breakout("Hard", obs_size=256)
    bricks = bo.initial_bricks()
    bricks[1, 0] = False
    state = make_state(ball_x=8, ball_y=15, last_x=9, last_y=16, paddle=6, bricks=bricks)
    frame = jax.jit(env.render_mdp)(state)
    assert frame.shape == (256, 256, 3)
    assert pixel(frame, env, 8, 15) == bo.BALL_COLOR and pixel(frame, env, 9, 16) == bo.TRAIL_COLOR
    assert pixel(frame, env, 0, 1) == bo.BOARD_COLOR and pixel(frame, env, 1, 1) == bo.BRICK_COLORS[0]
    paddle = [pixel(frame, env, x, 19) == bo.PADDLE_COLOR for x in range(10)]
    assert paddle == [6 <= x < 10 for x in range(10)]
    np.testing.assert_array_equal(np.asarray(frame)[:32], np.asarray(env.draw_score(env.frame(), 0))[:32])
