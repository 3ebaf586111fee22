"""Small hand-checkable environments for testing the base class and wrappers."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from popgym_arcade.environments import Environment
from popgym_arcade.environments.struct import pytree


@pytree
class CounterState:
    timestep: jax.Array
    position: jax.Array


class _CounterTwins:
    """The counter's rendering: the MDP paints every pixel with the position; the POMDP shows
    black after t = 0."""

    def __init__(self, partial_obs: bool = False, obs_size: int = 128):
        self.partial_obs = partial_obs
        self.obs_size = obs_size
        self.render_calls = 0

    def render(self, state):
        self.render_calls += 1  # counts traces, not executions

        def full(s):
            return jnp.full((self.obs_size, self.obs_size, 3), s.position, jnp.uint8)

        def hidden(s):
            return jnp.where(s.timestep == 0, full(s), jnp.zeros_like(full(s)))

        return jax.lax.cond(self.partial_obs, hidden, full, state)


class PaperStyleCounter(_CounterTwins, Environment):
    """A twin written like the paper's example: reset_env/step_env/render, no params class.

    The position starts at a random 0..9 and moves by +1 on action 3 and -1 on action 2; reward
    1 per step; the episode ends (``done``) at position 12 (terminated) or after 5 steps
    (truncated, reported in ``info``).
    """

    def reset_env(self, key, params):
        state = CounterState(jnp.int32(0), jax.random.randint(key, (), 0, 10))
        return self.render(state), state

    def step_env(self, key, state, action, params):
        move = jnp.where(action == 3, 1, jnp.where(action == 2, -1, 0))
        state = CounterState(state.timestep + 1, state.position + move)
        truncated = state.timestep >= 5
        done = jnp.logical_or(state.position >= 12, truncated)
        return self.render(state), state, jnp.float32(1.0), done, {"truncated": truncated}


class StateFirstCounter(_CounterTwins, Environment):
    """The same game written state-first (reset_state/step_state), as the built-in games are."""

    def reset_state(self, key, params):
        return CounterState(jnp.int32(0), jax.random.randint(key, (), 0, 10))

    def step_state(self, key, state, action, params):
        move = jnp.where(action == 3, 1, jnp.where(action == 2, -1, 0))
        state = CounterState(state.timestep + 1, state.position + move)
        return state, jnp.float32(1.0), state.position >= 12, state.timestep >= 5, {}
