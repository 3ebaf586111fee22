"""A gymnax 1.0 adapter: :class:`GymnaxEnv`, a ``gymnax.environments.environment.Environment``.

Needs the ``gymnax`` extra (``pip install -e '.[gymnax]'`` in the checkout; gymnax pulls flax,
matplotlib and seaborn); importing this module without gymnax raises an ``ImportError`` that
says so.
"""

from __future__ import annotations

import functools
from typing import Any

import jax

from popgym_arcade.adapters._common import require, resolve_env
from popgym_arcade.environments.base import Environment

_environment = require("gymnax.environments.environment", "gymnax")
_spaces = require("gymnax.environments.spaces", "gymnax")


class GymnaxEnv(_environment.Environment):
    """A popgym-arcade environment as a gymnax 1.0 ``Environment``.

    ``reset(key, params) -> (obs, state)`` and
    ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``
    follow gymnax 1.0 (auto-reset, time limits as truncation). ``info`` carries the wrapped
    env's keys (``terminated``, ``truncated``, ``discount``, ``final_state``) and, as gymnax's
    own envs do, ``final_observation``: the pre-reset frame. Drawing it is a second render per
    step; pass ``final_observation=False`` to skip it (or leave it unused under an outer
    ``jit``, where XLA drops it). ``step_env``/``reset_env`` give the non-resetting pieces, and
    ``observation_space``/``action_space`` are gymnax spaces (``Box`` of ``uint8`` images,
    ``Discrete(5)``).

    Args:
        env: an env id, an :class:`Environment`, or ``(env, params)``.
        partial_obs, obs_size: the twin and observation size; only for an id.
        final_observation: add ``info["final_observation"]`` to ``step``'s info.
        **kwargs: passed to :func:`popgym_arcade.make` (only for an id).

    Attributes:
        env: the wrapped popgym-arcade environment.
    """

    def __init__(
        self,
        env: str | Environment | tuple[Environment, Any],
        partial_obs: bool = False,
        obs_size: int = 128,
        final_observation: bool = True,
        **kwargs: Any,
    ):
        self.env, self._params = resolve_env(env, partial_obs, obs_size, **kwargs)
        self.final_observation = bool(final_observation)

    @property
    def default_params(self) -> Any:
        """The wrapped env's parameters."""
        return self._params

    @functools.partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        """Start an episode: ``(obs, state)``."""
        return self.env.reset(key, self._params if params is None else params)

    @functools.partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, action: Any, params: Any = None):
        """Advance one step with auto-reset (gymnax 1.0 semantics, see the class docstring)."""
        params = self._params if params is None else params
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        info = dict(info)
        if self.final_observation:
            info["final_observation"] = self.env.final_observation(info)
        return obs, state, reward, terminated, truncated, info

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """The reset without the ``params`` default: ``(obs, state)``."""
        return self.env.reset(key, params)

    def step_env(self, key: jax.Array, state: Any, action: Any, params: Any):
        """One transition without reset: ``(obs, state, reward, terminated, info)``."""
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        del obs
        final_state = info["final_state"]
        info = {**info, "truncated": truncated}
        return self.env.final_observation(info), final_state, reward, terminated, info

    def get_obs(self, state: Any, params: Any = None, key: Any = None) -> jax.Array:
        """The observation of ``state``."""
        return self.env.render(state)

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        """Not available from a state alone: time limits are reported by ``step``."""
        raise NotImplementedError(
            "popgym-arcade reports truncation from step(); it is not a function of the state"
        )

    @property
    def name(self) -> str:
        """The wrapped env's name."""
        return self.env.name

    @property
    def num_actions(self) -> int:
        """5: 0 up, 1 down, 2 left, 3 right, 4 fire."""
        return self.env.num_actions

    def action_space(self, params: Any = None) -> Any:
        """``gymnax.environments.spaces.Discrete(5)``."""
        return _spaces.Discrete(self.env.num_actions)

    def observation_space(self, params: Any = None) -> Any:
        """``gymnax.environments.spaces.Box(0, 255, (S, S, 3), uint8)``."""
        return _spaces.Box(0, 255, (self.env.obs_size, self.env.obs_size, 3), jax.numpy.uint8)
