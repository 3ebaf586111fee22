"""The adapters: Gymnasium Env and VectorEnv, gymnax 1.0, and the legacy 5-tuple step.

Kept fast: 128 px, one level of each game for the Gymnasium checker, hand-checkable toy envs
for the reset semantics, and module-scoped adapters so each compiles once.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import popgym_arcade
from popgym_arcade.adapters import LegacyStepAdapter
from popgym_arcade.adapters._common import require
from popgym_arcade.registration import BUILTIN_GAMES
from tests.toy_envs import StateFirstCounter

gymnasium = pytest.importorskip("gymnasium", reason="the gymnasium extra is not installed")
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from popgym_arcade.adapters import GymnasiumEnv, GymnasiumVectorEnv

# The checker's only expected warning: it cannot re-make the env in other render modes without a spec.
_SPEC_WARNING = "not having a spec"


@pytest.fixture(scope="module")
def cartpole():
    return GymnasiumEnv("CartPoleEasy", seed=0, render_mode="rgb_array")


@pytest.fixture(scope="module")
def counter():
    """A toy twin: obs is filled with the position; +1 on action 3; truncates after 5 steps."""
    return GymnasiumEnv(StateFirstCounter(), seed=0, render_mode="rgb_array")


# ----------------------------------------------------------------------------- gymnasium.Env
@pytest.mark.parametrize("game, partial", [(game, i % 2 == 1) for i, (game, _) in enumerate(BUILTIN_GAMES)])
def test_gymnasium_checker_passes_on_every_game(game, partial):
    env = GymnasiumEnv(f"{game}Easy", partial_obs=partial, seed=1, render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught if _SPEC_WARNING not in str(w.message)]
    assert not unexpected
    obs, _ = env.reset(seed=3)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(reward, float)
    assert isinstance(terminated, bool) and isinstance(truncated, bool) and "discount" in info


def test_gymnasium_env_spaces_and_render(cartpole):
    assert cartpole.observation_space == gymnasium.spaces.Box(0, 255, (128, 128, 3), np.uint8)
    assert cartpole.action_space == gymnasium.spaces.Discrete(5)
    assert cartpole.metadata["render_modes"] == ["rgb_array"] and cartpole.metadata["render_fps"] > 0
    obs, info = cartpole.reset(seed=0)
    assert isinstance(obs, np.ndarray) and obs.dtype == np.uint8 and obs.flags.writeable and info == {}
    np.testing.assert_array_equal(cartpole.render(), obs)
    obs, *_ = cartpole.step(1)
    np.testing.assert_array_equal(cartpole.render(), obs)
    assert "CartPole" in repr(cartpole) and "MDP" in repr(cartpole)


def test_gymnasium_env_is_deterministic_by_seed(cartpole):
    other = GymnasiumEnv("CartPoleEasy", seed=0)
    for seed in (5, 6):
        a, _ = cartpole.reset(seed=seed)
        b, _ = other.reset(seed=seed)
        np.testing.assert_array_equal(a, b)
        for action in (0, 3, 3, 2, 4):
            a, ra, *_ = cartpole.step(action)
            b, rb, *_ = other.step(action)
            np.testing.assert_array_equal(a, b)
            assert ra == rb
    # The constructor's seed fixes the first unseeded reset; different seeds give different starts.
    first = [GymnasiumEnv("CartPoleEasy", seed=s).reset()[0] for s in (11, 11, 12)]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], first[2])


def test_gymnasium_env_returns_the_final_frame_and_waits_for_reset(counter):
    obs, _ = counter.reset(seed=0)
    position = int(obs[0, 0, 0])
    for t in range(1, 6):
        obs, reward, terminated, truncated, info = counter.step(3)
        position += 1
        assert int(obs[0, 0, 0]) == position and reward == 1.0  # no auto-reset: the frame of the step
        if position >= 12:
            assert terminated and not truncated and info["discount"] == 0.0
            break
    else:
        assert truncated and not terminated and info["discount"] == 1.0
    np.testing.assert_array_equal(counter.render(), obs)
    with pytest.warns(UserWarning, match="reset"):
        counter.step(4)
    obs, _ = counter.reset()
    assert int(counter.state.timestep) == 0
    _, _, terminated, truncated, _ = counter.step(4)
    assert not (terminated or truncated)


def test_gymnasium_env_errors(cartpole):
    with pytest.raises(ValueError, match="did you mean"):
        GymnasiumEnv("CartPoleEsay")
    with pytest.raises(ValueError, match="obs_size"):
        GymnasiumEnv("CartPoleEasy", obs_size=64)
    with pytest.raises(ValueError, match="render_mode"):
        GymnasiumEnv("CartPoleEasy", render_mode="human")
    with pytest.raises(TypeError):
        GymnasiumEnv(object())
    with pytest.raises(gymnasium.error.ResetNeeded):
        GymnasiumEnv("CartPoleEasy").step(0)
    cartpole.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        cartpole.step(5)
    with pytest.warns(UserWarning, match="render_mode"):
        assert GymnasiumEnv("CartPoleEasy").render() is None
    with pytest.raises(ImportError, match=r"pip install -e '\.\[someextra\]'"):
        require("popgym_arcade_no_such_module", "someextra")


# ------------------------------------------------------------------------ gymnasium VectorEnv
def test_vector_env_shapes_dtypes_and_metadata():
    envs = GymnasiumVectorEnv("NavigatorEasy", num_envs=3, partial_obs=True, seed=0, render_mode="rgb_array")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.single_observation_space == gymnasium.spaces.Box(0, 255, (128, 128, 3), np.uint8)
    assert envs.observation_space.shape == (3, 128, 128, 3)
    assert envs.action_space == gymnasium.spaces.MultiDiscrete([5, 5, 5])
    obs, info = envs.reset(seed=0)
    assert obs.shape == (3, 128, 128, 3) and obs.dtype == np.uint8 and envs.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert obs.shape == (3, 128, 128, 3) and obs.dtype == np.uint8
    assert reward.shape == (3,) and reward.dtype == np.float32
    assert terminated.dtype == bool and truncated.dtype == bool and terminated.shape == (3,)
    assert info["discount"].shape == (3,) and info["_discount"].all()
    frames = envs.render()
    assert len(frames) == 3 and all(np.array_equal(f, o) for f, o in zip(frames, obs))
    with pytest.raises(ValueError, match="actions"):
        envs.step(np.zeros(2, int))
    with pytest.raises(ValueError, match="num_envs"):
        GymnasiumVectorEnv("NavigatorEasy", num_envs=0)


def test_vector_env_same_step_autoreset_puts_the_final_frame_in_info():
    envs = GymnasiumVectorEnv(StateFirstCounter(), num_envs=4, seed=0)
    obs, _ = envs.reset(seed=0)
    position = obs[:, 0, 0, 0].astype(int)
    # Env 0 moves right (may terminate at 12), the others stand still (truncated at step 5).
    actions = np.array([3, 4, 4, 4])
    ended = np.zeros(4, bool)
    for _ in range(5):
        obs, _, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        position = position + (actions == 3) * (~ended)
        if done.any():
            assert (
                info["_final_obs"].tolist() == done.tolist() and info["_final_info"].tolist() == done.tolist()
            )
            for i in range(4):
                if done[i]:
                    # The final frame is the ended episode's last one; obs is the next episode's first.
                    assert int(info["final_obs"][i][0, 0, 0]) == position[i]
                    assert int(envs.state.timestep[i]) == 0
                    assert info["final_info"]["terminated"][i] == terminated[i]
                else:
                    assert info["final_obs"][i] is None and int(obs[i, 0, 0, 0]) == position[i]
            ended |= done
        else:
            assert "final_obs" not in info
            np.testing.assert_array_equal(obs[:, 0, 0, 0], position)
    assert truncated[1:].all() and ended.all()


def test_vector_env_is_deterministic_by_seed():
    a = GymnasiumVectorEnv(StateFirstCounter(), num_envs=3, seed=7)
    b = GymnasiumVectorEnv(StateFirstCounter(), num_envs=3)
    np.testing.assert_array_equal(a.reset()[0], b.reset(seed=7)[0])
    for _ in range(7):
        oa, _, ta, ua, _ = a.step(np.array([3, 2, 4]))
        ob, _, tb, ub, _ = b.step(np.array([3, 2, 4]))
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ta | ua, tb | ub)
    per_env = a.reset(seed=[1, 2, 3])[0]
    np.testing.assert_array_equal(per_env, b.reset(seed=[1, 2, 3])[0])
    with pytest.raises(ValueError, match="seeds"):
        a.reset(seed=[1, 2])


# --------------------------------------------------------------------------------- legacy
def test_legacy_step_adapter_done_is_terminated_or_truncated():
    inner = StateFirstCounter()
    legacy = LegacyStepAdapter(inner)
    key = jax.random.key(0)
    obs, state = legacy.reset(key)
    obs_inner, state_inner = inner.reset(key)
    np.testing.assert_array_equal(obs, obs_inner)

    def rollout(adapter_state, inner_state, keys, actions):
        def body(carry, xs):
            s_a, s_i = carry
            k, a = xs
            _, s_a, r_a, done, info = legacy.step(k, s_a, a)
            _, s_i, r_i, term, trunc, _ = inner.step(k, s_i, a)
            return (s_a, s_i), (done, term | trunc, info["terminated"], info["truncated"], r_a == r_i)

        return jax.lax.scan(body, (adapter_state, inner_state), (keys, actions))[1]

    keys = jax.random.split(jax.random.key(1), 12)
    for actions in (jnp.full(12, 3), jnp.full(12, 4)):
        done, expected, term, trunc, same_reward = jax.jit(rollout)(state, state_inner, keys, actions)
        np.testing.assert_array_equal(done, expected)
        np.testing.assert_array_equal(done, term | trunc)
        assert bool(done.any()) and bool(same_reward.all())
    # vmap over a batch of keys and states.
    _, state_b = jax.vmap(legacy.reset)(jax.random.split(key, 3))
    out = jax.vmap(legacy.step)(jax.random.split(key, 3), state_b, jnp.array([0, 3, 4]))
    assert len(out) == 5 and out[3].shape == (3,) and out[3].dtype == jnp.bool_
    with pytest.raises(TypeError):
        LegacyStepAdapter("CartPoleEasy")


# --------------------------------------------------------------------------------- gymnax
def test_gymnax_adapter():
    gymnax_environment = pytest.importorskip(
        "gymnax.environments.environment", reason="the gymnax extra (gymnax 1.0) is not installed"
    )
    from popgym_arcade.adapters import GymnaxEnv

    env = GymnaxEnv("CartPoleEasy", partial_obs=True)
    assert isinstance(env, gymnax_environment.Environment)
    assert env.num_actions == 5 and env.name == "CartPole"
    ours, params = popgym_arcade.make("CartPoleEasy", partial_obs=True)
    keys = jax.random.split(jax.random.key(0), 2)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, env.default_params)
    our_obs, _ = jax.vmap(ours.reset, in_axes=(0, None))(keys, params)
    np.testing.assert_array_equal(obs, our_obs)
    assert bool(env.observation_space(env.default_params).contains(obs[0]))
    assert int(env.action_space(env.default_params).n) == 5
    obs, state, reward, terminated, _, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
        keys, state, jnp.array([0, 1]), env.default_params
    )
    assert obs.shape == (2, 128, 128, 3) and reward.shape == (2,) and terminated.dtype == jnp.bool_
    final = jax.vmap(ours.render)(info["final_state"])
    np.testing.assert_array_equal(info["final_observation"], final)
    # The non-resetting pieces.
    _, state0 = env.reset_env(jax.random.key(1), env.default_params)
    obs1, state1, _, _, info1 = env.step_env(jax.random.key(2), state0, 3, env.default_params)
    np.testing.assert_array_equal(obs1, ours.render(state1))
    assert "truncated" in info1
    lean = GymnaxEnv(ours, final_observation=False)
    assert "final_observation" not in lean.step(jax.random.key(3), state0, 0)[-1]
