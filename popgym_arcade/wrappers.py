"""Environment wrappers.

* :class:`Wrapper`: the base, forwarding every attribute it does not define to the inner env.
* :class:`LogWrapper`: episode returns and lengths for logging and evaluation.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from popgym_arcade.environments.base import Environment
from popgym_arcade.environments.struct import pytree


class Wrapper(Environment):
    """Wrap an :class:`Environment`; unknown attributes are looked up on the inner env."""

    def __init__(self, env: Environment):
        self._env = env

    @property
    def unwrapped(self) -> Environment:
        """The innermost environment."""
        env = self._env
        while isinstance(env, Wrapper):
            env = env._env
        return env

    def __getattr__(self, name: str) -> Any:
        if name == "_env":  # not yet set (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self._env, name)

    # Properties defined on Environment would shadow __getattr__; forward them explicitly.
    @property
    def partial_obs(self) -> bool:  # type: ignore[override]
        return self._env.partial_obs

    @property
    def obs_size(self) -> int:  # type: ignore[override]
        return self._env.obs_size

    @property
    def default_params(self) -> Any:
        return self._env.default_params

    @property
    def name(self) -> str:
        return self._env.name

    @property
    def num_actions(self) -> int:
        return self._env.num_actions

    def observation_space(self, params: Any = None) -> Any:
        return self._env.observation_space(params)

    def action_space(self, params: Any = None) -> Any:
        return self._env.action_space(params)

    def render(self, state: Any) -> jax.Array:
        return self._env.render(state)


@pytree
class LogState:
    """An env state plus episode statistics.

    Attributes:
        env_state: the wrapped env's state.
        episode_return, episode_length: of the episode in progress.
        returned_episode_return, returned_episode_length: of the last finished episode (0 until
            one has finished).
        has_returned_episode: whether any episode has finished since ``reset``; read the
            ``returned_*`` fields only where it is true.
        total_steps: steps taken since ``reset``, across episodes.
    """

    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array
    returned_episode_return: jax.Array
    returned_episode_length: jax.Array
    has_returned_episode: jax.Array
    total_steps: jax.Array


class LogWrapper(Wrapper):
    """Track episode returns and lengths.

    ``info`` gains ``returned_episode`` (an episode finished on this step),
    ``returned_episode_return``/``returned_episode_length`` (of the last finished episode) and
    ``has_returned_episode`` (any episode finished yet).
    """

    @functools.partial(jax.jit, static_argnums=0)
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, LogState]:
        obs, env_state = self._env.reset(key, params)
        zero_f, zero_i = jnp.float32(0), jnp.int32(0)
        return obs, LogState(env_state, zero_f, zero_i, zero_f, zero_i, jnp.asarray(False), zero_i)

    @functools.partial(jax.jit, static_argnums=0)
    def step(self, key: jax.Array, state: LogState, action: Any, params: Any = None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        new_state = LogState(
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
            returned_episode_return=jnp.where(done, episode_return, state.returned_episode_return),
            returned_episode_length=jnp.where(done, episode_length, state.returned_episode_length),
            has_returned_episode=jnp.logical_or(state.has_returned_episode, done),
            total_steps=state.total_steps + 1,
        )
        info = dict(info)
        info.update(
            returned_episode=done,
            returned_episode_return=new_state.returned_episode_return,
            returned_episode_length=new_state.returned_episode_length,
            has_returned_episode=new_state.has_returned_episode,
        )
        return obs, new_state, reward, terminated, truncated, info

    def render(self, state: Any) -> jax.Array:
        """Render a :class:`LogState` or a bare env state."""
        return self._env.render(state.env_state if isinstance(state, LogState) else state)
