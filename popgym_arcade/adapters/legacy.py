"""The published package's step API: ``step -> (obs, state, reward, done, info)``.

Code written against the original popgym-arcade (gymnax 0.0.x style, one ``done`` flag) runs on
the current environments through :class:`LegacyStepAdapter`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from popgym_arcade.environments.base import Environment
from popgym_arcade.wrappers import Wrapper


class LegacyStepAdapter(Wrapper):
    """Wrap an :class:`Environment` so that ``step`` returns the legacy 5-tuple.

    ``reset(key, params) -> (obs, state)`` is unchanged;
    ``step(key, state, action, params) -> (obs, state, reward, done, info)`` with
    ``done = terminated | truncated`` and the same auto-reset. ``info`` keeps ``"terminated"``,
    ``"truncated"``, ``"discount"`` and ``"final_state"``, so a learner can still tell a time
    limit from a real end. Both methods are jitted and can be ``vmap``-ed or traced inside
    ``jax.lax.scan``.

    Args:
        env: the environment to wrap (e.g. the first item of :func:`popgym_arcade.make`).
    """

    def __init__(self, env: Environment):
        if not isinstance(env, Environment):
            raise TypeError(f"LegacyStepAdapter wraps an Environment, got {type(env).__name__}")
        super().__init__(env)

    @functools.partial(jax.jit, static_argnums=0)
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        """Start an episode: ``(obs, state)`` (as the wrapped env)."""
        return self._env.reset(key, params)

    @functools.partial(jax.jit, static_argnums=0)
    def step(
        self, key: jax.Array, state: Any, action: jax.Array | int, params: Any = None
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, dict[str, Any]]:
        """Advance one step: ``(obs, state, reward, done, info)``, ``done = terminated | truncated``."""
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info
