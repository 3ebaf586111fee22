"""LogWrapper bookkeeping on a hand-checkable environment."""

import jax
import jax.numpy as jnp

from popgym_arcade.wrappers import LogState, LogWrapper
from tests.toy_envs import CounterState, StateFirstCounter


def test_log_wrapper_tracks_finished_episodes():
    env = LogWrapper(StateFirstCounter())
    _, state = env.reset(jax.random.key(0))
    assert isinstance(state, LogState) and not bool(state.has_returned_episode)
    # Force a known start: position 10, so two "right" steps reach 12 and terminate.
    state = LogState(CounterState(jnp.int32(0), jnp.int32(10)), *(jax.tree.leaves(state)[2:]))
    _, state, _, _, _, info = env.step(jax.random.key(1), state, 3)
    assert int(state.episode_length) == 1 and float(state.episode_return) == 1.0
    assert not bool(info["returned_episode"]) and not bool(info["has_returned_episode"])
    _, state, _, terminated, _, info = env.step(jax.random.key(2), state, 3)
    assert bool(terminated) and bool(info["returned_episode"]) and bool(info["has_returned_episode"])
    assert float(info["returned_episode_return"]) == 2.0 and int(info["returned_episode_length"]) == 2
    assert int(state.episode_length) == 0 and float(state.episode_return) == 0.0
    # The next step starts a new episode; the finished one's statistics stay readable.
    _, state, _, _, _, info = env.step(jax.random.key(3), state, 4)
    assert not bool(info["returned_episode"]) and bool(info["has_returned_episode"])
    assert float(info["returned_episode_return"]) == 2.0 and int(state.total_steps) == 3


def test_log_wrapper_forwards_the_env_api():
    inner = StateFirstCounter(partial_obs=True, obs_size=256)
    env = LogWrapper(inner)
    assert env.partial_obs and env.obs_size == 256 and env.num_actions == 5
    assert env.name == "StateFirstCounter" and env.unwrapped is inner
    obs, state = env.reset(jax.random.key(0))
    assert obs.shape == (256, 256, 3)
    assert env.render(state).shape == (256, 256, 3) and env.render(state.env_state).shape == (256, 256, 3)
    _, _, _, _, _, info = env.step(jax.random.key(1), state, 0)
    assert env.final_observation(info).shape == (256, 256, 3)


def test_log_wrapper_vmaps():
    env = LogWrapper(StateFirstCounter())
    keys = jax.random.split(jax.random.key(0), 3)
    _, states = jax.vmap(env.reset)(keys)
    _, states, rewards, *_ = jax.vmap(env.step)(keys, states, jnp.array([2, 3, 4]))
    assert rewards.shape == (3,) and states.episode_length.tolist() == [1, 1, 1]
