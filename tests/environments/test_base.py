"""The base class: auto-reset semantics, both ways of writing a twin, spaces, one render per step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import popgym_arcade
from popgym_arcade.environments import Environment, spaces
from popgym_arcade.registration import REGISTERED_ENVIRONMENTS, register
from tests.toy_envs import CounterState, PaperStyleCounter, StateFirstCounter

KEY = jax.random.key(0)


@pytest.mark.parametrize("cls", [PaperStyleCounter, StateFirstCounter])
def test_step_runs_transition_then_auto_resets(cls):
    env = cls()
    obs, state = env.reset(KEY)
    assert obs.shape == (128, 128, 3) and obs.dtype == jnp.uint8
    state = CounterState(jnp.int32(3), jnp.int32(11))

    obs, next_state, reward, terminated, truncated, info = env.step(KEY, state, 3)
    # Position 12 ends the game: terminated, and the returned state is a fresh episode.
    assert bool(terminated) and not bool(truncated)
    assert int(next_state.timestep) == 0
    assert int(info["final_state"].position) == 12 and int(info["final_state"].timestep) == 4
    assert float(reward) == 1.0 and float(info["discount"]) == 0.0
    assert int(obs[0, 0, 0]) == int(next_state.position)  # obs shows the new episode
    np.testing.assert_array_equal(env.final_observation(info), jnp.full((128, 128, 3), 12, jnp.uint8))


@pytest.mark.parametrize("cls", [PaperStyleCounter, StateFirstCounter])
def test_time_limit_is_truncation(cls):
    env = cls()
    state = CounterState(jnp.int32(4), jnp.int32(0))
    _, next_state, _, terminated, truncated, info = env.step(KEY, state, 4)
    assert not bool(terminated) and bool(truncated)
    assert float(info["discount"]) == 1.0
    assert int(next_state.timestep) == 0 and int(info["final_state"].timestep) == 5


def test_termination_wins_over_truncation():
    env = StateFirstCounter()
    state = CounterState(jnp.int32(4), jnp.int32(11))
    *_, terminated, truncated, _ = env.step(KEY, state, 3)
    assert bool(terminated) and not bool(truncated)


def test_ongoing_step_keeps_state():
    env = StateFirstCounter()
    state = CounterState(jnp.int32(1), jnp.int32(5))
    obs, next_state, _, terminated, truncated, info = env.step(KEY, state, 2)
    assert not bool(terminated) and not bool(truncated)
    assert int(next_state.position) == 4 and int(next_state.timestep) == 2
    assert set(info) >= {"terminated", "truncated", "discount", "final_state"}


def test_paper_style_twin_registers_and_makes():
    register("PaperCounterTest", PaperStyleCounter)
    try:
        assert "PaperCounterTest" in REGISTERED_ENVIRONMENTS
        env, params = popgym_arcade.make("PaperCounterTest", partial_obs=True)
        obs, state = env.reset(KEY, params)
        obs, state, *_ = env.step(KEY, state, 3, params)
        assert env.observation_space(params).contains(obs)
        assert int(obs.max()) == 0  # the POMDP hides the position after t = 0
    finally:
        from popgym_arcade import registration

        registration._FACTORIES.pop("PaperCounterTest")
        REGISTERED_ENVIRONMENTS.remove("PaperCounterTest")


@pytest.mark.parametrize("cls", [PaperStyleCounter, StateFirstCounter])
def test_state_first_step_renders_once(cls):
    env = cls()
    _, state = env.reset(KEY)
    env.render_calls = 0
    jax.make_jaxpr(lambda k, s: env.step(k, s, 1))(KEY, state)
    # State-first games render once in the traced step; paper-style step_env/reset_env render
    # too, but those frames are unused and dropped by XLA.
    assert env.render_calls == (1 if cls is StateFirstCounter else 3)


def test_unused_paper_style_renders_are_compiled_away():
    env = PaperStyleCounter()
    _, state = env.reset(KEY)
    hlo = jax.jit(lambda k, s: env.step(k, s, 1)[0]).lower(KEY, state).compile().as_text()
    # One 128x128x3 frame is produced (one broadcast of the position), not three.
    assert hlo.count("u8[128,128,3]{2,1,0} broadcast(") == 1


def test_missing_methods_raise_clear_errors():
    class Incomplete(Environment):
        pass

    env = Incomplete()
    with pytest.raises(NotImplementedError, match="reset_env or reset_state"):
        env.reset_state(KEY, None)
    with pytest.raises(NotImplementedError, match="step_env or step_state"):
        env.step_state(KEY, None, 0, None)
    with pytest.raises(NotImplementedError, match="render"):
        env.render(None)


def test_spaces():
    box = spaces.Box(0, 255, (4, 4, 3), jnp.uint8)
    assert bool(box.contains(jnp.zeros((4, 4, 3), jnp.uint8)))
    assert not bool(box.contains(jnp.zeros((4, 4, 3), jnp.float32)))
    assert not bool(box.contains(jnp.zeros((4, 4), jnp.uint8)))
    sample = box.sample(KEY)
    assert sample.shape == (4, 4, 3) and sample.dtype == jnp.uint8
    discrete = spaces.Discrete(5)
    samples = jax.vmap(discrete.sample)(jax.random.split(KEY, 500))
    assert set(np.unique(samples).tolist()) == {0, 1, 2, 3, 4}
    assert bool(discrete.contains(jnp.int32(4))) and not bool(discrete.contains(jnp.int32(5)))
    assert not bool(discrete.contains(jnp.float32(1.0)))
    with pytest.raises(ValueError):
        spaces.Discrete(0)


def test_default_api_surface():
    env = StateFirstCounter()
    assert env.num_actions == 5 and env.action_space().n == 5
    assert env.name == "StateFirstCounter"
    assert env.observation_space().shape == (128, 128, 3)
