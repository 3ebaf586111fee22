"""Rules and frames of CartPole and NoisyCartPole, from hand-built states."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments import cartpole
from popgym_arcade.environments.cartpole import CartPole, CartPoleState, NoisyCartPole

CART = np.array(cartpole.CART_COLOR, np.uint8)
POLE = np.array(cartpole.POLE_COLOR, np.uint8)
ARROW = np.array(cartpole.ARROW_COLOR, np.uint8)


def make_state(x=0.0, x_dot=0.0, theta=0.0, theta_dot=0.0, timestep=5, score=5, noise=(0.0, 0.0, 0.0, 0.0)):
    f = jnp.float32
    noise = jnp.asarray(noise, jnp.float32)
    return CartPoleState(f(x), f(x_dot), f(theta), f(theta_dot), noise, jnp.int32(timestep), jnp.int32(score))


def gym_step(x, x_dot, theta, theta_dot, force):
    """gym's cart-pole Euler step in float64 (the reference the dynamics must match)."""
    g, mc, mp, half, tau = 9.8, 1.0, 0.1, 0.5, 0.02
    total, pml = mc + mp, mp * half
    temp = (force + pml * theta_dot**2 * math.sin(theta)) / total
    cos, sin = math.cos(theta), math.sin(theta)
    theta_acc = (g * sin - cos * temp) / (half * (4 / 3 - mp * cos**2 / total))
    x_acc = temp - pml * theta_acc * math.cos(theta) / total
    return x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc


@pytest.fixture(scope="module")
def easy():
    env = CartPole("Easy")
    return env, env.default_params, jax.jit(env.step_state)


@pytest.fixture(scope="module")
def noisy():
    env = NoisyCartPole("Hard")
    return env, env.default_params, jax.jit(env.step_state)


@pytest.fixture(scope="module")
def renders():
    mdp, pomdp = CartPole("Easy"), CartPole("Easy", partial_obs=True)
    return jax.jit(mdp.render), jax.jit(pomdp.render)


def physical(state):
    return np.array([state.x, state.x_dot, state.theta, state.theta_dot], np.float64)


def colour_mask(frame, colour):
    return np.all(np.asarray(frame) == colour, axis=-1)


def bbox(mask):
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


# ------------------------------------------------------------------------------ difficulty
def test_difficulty_table():
    assert {k: (d.max_steps, d.noise_sigma) for k, d in CartPole.difficulties.items()} == {
        "Easy": (200, 0.0),
        "Medium": (400, 0.0),
        "Hard": (600, 0.0),
    }
    assert {k: (d.max_steps, d.noise_sigma) for k, d in NoisyCartPole.difficulties.items()} == {
        "Easy": (200, 0.1),
        "Medium": (200, 0.2),
        "Hard": (200, 0.3),
    }
    for level, steps in (("Easy", 200), ("Medium", 400), ("Hard", 600)):
        assert CartPole(level).default_params.max_steps_in_episode == steps
    params = CartPole("Easy").default_params
    assert (params.gravity, params.masscart, params.masspole, params.length) == (9.8, 1.0, 0.1, 0.5)
    assert (params.force_mag, params.tau, params.x_threshold) == (10.0, 0.02, 2.4)
    assert params.theta_threshold_radians == pytest.approx(0.20944, abs=1e-5)
    assert CartPole.title == "CARTPOLE" and NoisyCartPole.title == "NOISYCARTPOLE"
    assert NoisyCartPole("Easy").name == "NoisyCartPole"


# ----------------------------------------------------------------------------------- rules
@pytest.mark.parametrize(
    "start", [(0.0, 0.0, 0.0, 0.0), (0.3, -0.7, 0.1, 1.2), (-1.9, 1.5, -0.15, -2.0), (2.0, 0.2, 0.19, 0.5)]
)
def test_dynamics_match_gym_euler(easy, start):
    env, params, step = easy
    for action, force in ((2, -10.0), (3, 10.0), (0, 0.0)):
        state, *_ = step(jax.random.key(0), make_state(*start), jnp.int32(action), params)
        np.testing.assert_allclose(physical(state), gym_step(*start, force), rtol=1e-5, atol=1e-6)


def test_a_long_push_matches_gym(easy):
    env, params, step = easy
    state, ref = make_state(0.01, -0.02, 0.03, 0.0, timestep=0, score=0), (0.01, -0.02, 0.03, 0.0)
    for i in range(12):
        action = 3 if i % 3 else 2
        state, reward, terminated, truncated, _ = step(jax.random.key(i), state, jnp.int32(action), params)
        ref = gym_step(*ref, 10.0 if action == 3 else -10.0)
        assert not terminated and not truncated and reward == pytest.approx(1 / 200)
    np.testing.assert_allclose(physical(state), ref, rtol=1e-4, atol=1e-5)
    assert int(state.timestep) == 12 and int(state.score) == 12


def test_non_push_and_invalid_actions_are_no_ops(easy):
    env, params, step = easy
    start = make_state(0.5, 0.4, -0.05, 0.3)
    outcomes = [step(jax.random.key(0), start, jnp.int32(a), params) for a in (0, 1, 4, 5, -1, 99)]
    for state, reward, terminated, truncated, _ in outcomes:
        np.testing.assert_array_equal(physical(state), physical(outcomes[0][0]))
        np.testing.assert_allclose(physical(state), gym_step(0.5, 0.4, -0.05, 0.3, 0.0), rtol=1e-5, atol=1e-6)
        assert int(state.timestep) == 6 and reward == pytest.approx(1 / 200)
    pushed = [physical(step(jax.random.key(0), start, jnp.int32(a), params)[0]) for a in (2, 3)]
    assert pushed[0][1] < outcomes[0][0].x_dot < pushed[1][1]


@pytest.mark.parametrize(
    "start",
    [
        dict(x=2.39, x_dot=1.0),  # x goes to 2.41
        dict(x=-2.39, x_dot=-1.0),
        dict(theta=0.205, theta_dot=0.5),  # theta goes to 0.215
        dict(theta=-0.205, theta_dot=-0.5),
    ],
)
def test_leaving_the_bounds_terminates_on_that_step(easy, start):
    env, params, step = easy
    state, reward, terminated, truncated, info = step(jax.random.key(0), make_state(**start), 0, params)
    assert bool(terminated) and not bool(truncated)
    assert float(reward) == 0.0
    assert int(state.score) == 5 and int(state.timestep) == 6
    assert info == {}


def test_staying_in_bounds_pays_one_over_max_steps(easy):
    env, params, step = easy
    # x goes to exactly 2.39 + 0.005: in bounds, however close.
    start = make_state(x=2.39, x_dot=0.25)
    state, reward, terminated, truncated, _ = step(jax.random.key(0), start, jnp.int32(0), params)
    assert not terminated and not truncated
    assert float(reward) == pytest.approx(1 / 200) and int(state.score) == 6


def test_step_limit_truncates():
    for level, limit in (("Easy", 200), ("Medium", 400), ("Hard", 600)):
        env = CartPole(level)
        params = env.default_params
        _, reward, terminated, truncated, _ = env.step_state(
            jax.random.key(0), make_state(timestep=limit - 1, score=limit - 1), jnp.int32(0), params
        )
        assert bool(truncated) and not bool(terminated)
        assert float(reward) == pytest.approx(1 / limit)
        _, _, _, truncated, _ = env.step_state(
            jax.random.key(0), make_state(timestep=limit - 2, score=limit - 2), jnp.int32(0), params
        )
        assert not bool(truncated)


def test_falling_on_the_last_step_is_a_termination(easy):
    env, params, step = easy
    last = make_state(x=2.39, x_dot=1.0, timestep=199, score=199)
    _, reward, terminated, truncated, _ = step(jax.random.key(0), last, jnp.int32(0), params)
    assert bool(terminated) and not bool(truncated) and float(reward) == 0.0
    _, _, reward, terminated, truncated, info = jax.jit(env.step)(jax.random.key(0), last, 0, params)
    assert bool(terminated) and not bool(truncated) and float(info["discount"]) == 0.0


def test_reset(easy, noisy):
    env, params, _ = easy
    noisy_env, noisy_params, _ = noisy
    keys = jax.random.split(jax.random.key(3), 256)
    states = jax.vmap(env.reset_state, in_axes=(0, None))(keys, params)
    values = np.stack([states.x, states.x_dot, states.theta, states.theta_dot])
    assert np.all(np.abs(values) <= 0.05) and values.std(axis=1).min() > 0.02
    assert np.all(states.timestep == 0) and np.all(states.score == 0)
    assert np.all(states.noise == 0)
    noisy_states = jax.vmap(noisy_env.reset_state, in_axes=(0, None))(keys, noisy_params)
    # Noise never touches the physics: the same key starts the same cart.
    np.testing.assert_array_equal(noisy_states.x, states.x)
    np.testing.assert_array_equal(noisy_states.theta_dot, states.theta_dot)
    assert np.all(np.asarray(noisy_states.noise).std(axis=0) > 0.2)


def test_noise_is_fresh_each_step_with_sigma_and_leaves_the_dynamics_alone(easy, noisy):
    env, params, step = easy
    noisy_env, noisy_params, noisy_step = noisy
    keys = jax.random.split(jax.random.key(7), 4000)
    start = make_state(0.2, -0.3, 0.05, 0.4, noise=(9.0, 9.0, 9.0, 9.0))
    batched = jax.vmap(noisy_step, in_axes=(0, None, None, None))
    states, rewards, *_ = batched(keys, start, jnp.int32(3), noisy_params)
    noise = np.asarray(states.noise)
    assert np.all(np.abs(noise.mean(axis=0)) < 0.03)
    np.testing.assert_allclose(noise.std(axis=0), 0.3, rtol=0.08)
    plain, plain_reward, *_ = step(keys[0], start, jnp.int32(3), params)
    np.testing.assert_array_equal(physical(jax.tree.map(lambda a: a[0], states)), physical(plain))
    assert np.all(rewards == plain_reward)
    assert np.all(np.asarray(plain.noise) == 0)


# --------------------------------------------------------------------------------- returns
def rollout_returns(env, params, policy, num_envs, num_steps, key):
    """Per-step, per-env returns of finished episodes (NaN elsewhere), with auto-reset."""

    def run(key):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)

        def body(carry, key):
            state, running = carry
            action_key, step_key = jax.random.split(key)
            actions = policy(action_key, state)
            _, state, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_key, num_envs), state, actions, params
            )
            running = running + reward
            done = terminated | truncated
            return (state, jnp.where(done, 0.0, running)), (jnp.where(done, running, jnp.nan), truncated)

        _, out = jax.lax.scan(body, (state, jnp.zeros(num_envs)), jax.random.split(key, num_steps))
        return out

    return jax.jit(run)(key)


def random_policy(key, state):
    return jax.random.randint(key, state.x.shape, -1, 7)


def balancing_policy(key, state):
    push = state.theta * 10 + state.theta_dot + state.x * 0.1 + state.x_dot * 0.5
    return jnp.where(push > 0, 3, 2)


@pytest.mark.parametrize(
    "env", [CartPole("Easy"), NoisyCartPole("Hard", partial_obs=True)], ids=["plain", "noisy-pomdp"]
)
def test_random_returns_within_bounds(env):
    returns, _ = rollout_returns(env, env.default_params, random_policy, 32, 300, jax.random.key(0))
    finished = np.asarray(returns)[~np.isnan(returns)]
    assert finished.size > 100
    assert finished.min() >= 0.0 and finished.max() <= 1.0
    assert np.all(np.abs(finished * 200 - np.round(finished * 200)) < 1e-3)


def test_balancing_to_the_limit_returns_one():
    env = CartPole("Medium")
    returns, truncated = rollout_returns(env, env.default_params, balancing_policy, 4, 400, jax.random.key(1))
    returns, truncated = np.asarray(returns), np.asarray(truncated)
    # Every episode lasts exactly 400 steps, ends by truncation, and returns 1.
    assert np.all(np.isnan(returns[:-1])) and np.all(truncated[-1]) and not truncated[:-1].any()
    np.testing.assert_allclose(returns[-1], 1.0, atol=1e-5)
    assert np.all(returns[-1] <= 1.0 + 1e-6)


# ---------------------------------------------------------------------------------- frames
def cart_box(x):
    """Expected cart pixels at 128 px: (row0, row1, col0, col1)."""
    centre = 16 + 16 + 64 * (x + 2.4) / 4.8
    return 66, 80, round(centre - 16), round(centre + 16)


@pytest.mark.parametrize("x", [0.0, 1.2, -2.4, 2.4, -0.6])
def test_cart_drawn_at_its_position(renders, x):
    render, _ = renders
    frame = np.asarray(render(make_state(x=x)))
    assert bbox(colour_mask(frame, CART) | colour_mask(frame, POLE))[2:] == cart_box(x)[2:]
    cart_rows = colour_mask(frame, CART).any(axis=1).nonzero()[0]
    assert (cart_rows.min(), cart_rows.max() + 1) == cart_box(x)[:2]
    pole = colour_mask(frame, POLE)
    assert pole.sum() > 150 and bbox(pole)[0] <= 32  # a long, visible pole above the cart


@pytest.mark.parametrize("theta", [0.2, -0.2])
def test_pole_leans_with_theta(renders, theta):
    render, _ = renders
    frame = np.asarray(render(make_state(theta=theta)))
    pole = colour_mask(frame, POLE)
    top_row = pole.any(axis=1).nonzero()[0].min()
    tip_col = pole[top_row].nonzero()[0].mean()
    assert (tip_col - 64) * np.sign(theta) > 5


def test_noisy_values_are_drawn_and_clipped(renders):
    render, _ = renders
    def same(a, b):
        return np.array_equal(np.asarray(render(a)), np.asarray(render(b)))

    assert same(make_state(x=0.0, noise=(0.6, 0.0, 0.0, 0.0)), make_state(x=0.6))
    noisy_speeds = make_state(x_dot=1.0, theta_dot=-1.0, noise=(0.0, -2.0, 0.0, 3.0))
    assert same(noisy_speeds, make_state(x_dot=-1.0, theta_dot=2.0))
    noisy_edge = make_state(x=2.3, theta=0.2, noise=(1.0, 0.0, 0.5, 0.0))
    assert same(noisy_edge, make_state(x=2.4, theta=cartpole.THETA_LIMIT))
    # A terminal state outside the bounds still draws the cart on the track.
    assert same(make_state(x=-3.0, theta=-0.4), make_state(x=-2.4, theta=-cartpole.THETA_LIMIT))


def arrow_areas(frame):
    """The arrow pixels in the cart-velocity (left) and angular-velocity (right) areas."""
    arrows = colour_mask(frame, ARROW)[16 + 70 : 16 + 100]
    return arrows[:, 16:64], arrows[:, 64:112]


def test_cart_velocity_arrow_points_and_grows(renders):
    render, _ = renders
    sizes = []
    for v in (0.05, 1.0, 4.0):
        right, _ = arrow_areas(render(make_state(x_dot=v)))
        left, _ = arrow_areas(render(make_state(x_dot=-v)))
        np.testing.assert_array_equal(left, right[:, ::-1])  # the mirror image, about its centre
        heights = right.sum(axis=0)
        assert heights.argmax() > 24, v  # the (tallest) head is on the right of the centre
        sizes.append(right.sum())
    assert sizes[0] < sizes[1] < sizes[2]


def test_angular_velocity_arrow_turns_and_grows(renders):
    render, _ = renders
    sizes = []
    for w in (0.05, 1.0, 4.0):
        _, clockwise = arrow_areas(render(make_state(theta_dot=w)))
        _, counter = arrow_areas(render(make_state(theta_dot=-w)))
        cols = clockwise.sum(axis=0)
        assert cols[24:].sum() > cols[:24].sum()  # the head is at the right end of the arc
        np.testing.assert_array_equal(counter, clockwise[:, ::-1])
        sizes.append(clockwise.sum())
    assert sizes[0] < sizes[1] < sizes[2]


def test_pomdp_hides_cart_and_pole_after_the_first_frame(renders):
    render, render_pomdp = renders
    states = (make_state(0.7, -1.0, 0.1, 2.0, timestep=1), make_state(-2.0, 0.5, -0.2, -0.3, timestep=150))
    for state in states:
        mdp, pomdp = np.asarray(render(state)), np.asarray(render_pomdp(state))
        assert colour_mask(mdp, CART).sum() > 300 and colour_mask(mdp, POLE).sum() > 100
        assert not colour_mask(pomdp, CART).any() and not colour_mask(pomdp, POLE).any()
        hidden = colour_mask(mdp, CART) | colour_mask(mdp, POLE)
        np.testing.assert_array_equal(mdp[~hidden], pomdp[~hidden])  # arrows, score and track stay
        assert colour_mask(pomdp, ARROW).sum() > 40
    first = make_state(0.7, -1.0, 0.1, 2.0, timestep=0, score=0)
    np.testing.assert_array_equal(np.asarray(render(first)), np.asarray(render_pomdp(first)))
    assert colour_mask(np.asarray(render_pomdp(first)), CART).sum() > 300


def test_score_shows_in_the_top_band(renders):
    render, _ = renders
    score_colour = np.array(CartPole.score_color, np.uint8)
    low, high = np.asarray(render(make_state(score=0))), np.asarray(render(make_state(score=187)))
    assert colour_mask(low, score_colour)[:16].sum() > 10
    assert not colour_mask(high, score_colour)[16:].any()
    # Three digits are wider than one; the frame differs only in the band.
    width = lambda frame: np.ptp(colour_mask(frame, score_colour).nonzero()[1])  # noqa: E731
    assert width(high) > 2 * width(low)
    np.testing.assert_array_equal(low[16:], high[16:])


def test_clean_colours(renders):
    render, _ = renders
    allowed = {
        tuple(c)
        for c in (
            CartPole.background_color,
            CartPole.title_color,
            CartPole.score_color,
            cartpole.CART_COLOR,
            cartpole.POLE_COLOR,
            cartpole.ARROW_COLOR,
            cartpole.TRACK_COLOR,
        )
    }
    for state in (make_state(-2.4, 3.0, 0.2, -5.0, score=99), make_state(0.1, -0.2, -0.1, 0.3)):
        frame = np.asarray(render(state))
        assert {tuple(c) for c in frame.reshape(-1, 3)} <= allowed


def test_256_frame_is_the_128_frame_doubled():
    state = make_state(1.1, 0.8, -0.12, 1.5, score=42)
    big = np.asarray(CartPole("Easy", obs_size=256).render(state))
    assert big.shape == (256, 256, 3)
    small = np.asarray(jax.jit(CartPole("Easy").render)(state))
    for colour in (CART, POLE, ARROW):
        big_box, small_box = bbox(colour_mask(big, colour)), bbox(colour_mask(small, colour))
        np.testing.assert_allclose(np.array(big_box), 2 * np.array(small_box), atol=2)
