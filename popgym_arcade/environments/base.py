"""The environment base class: the gymnax 1.0 contract, with one render per step.

A game implements its rules as pure functions of its state and a ``render(state)``; the base
class supplies ``reset`` and ``step`` with auto-reset. Two ways of writing a game both work:

* the paper's way: ``reset_env(key, params) -> (obs, state)`` and
  ``step_env(key, state, action, params) -> (obs, state, reward, done, info)``, with ``render``;
  a ``done`` step counts as terminated unless ``info["truncated"]`` marks it a time limit (and
  ``info["terminated"]``, where given, does not say the game ended too);
* the state-first way used by the built-in games: ``reset_state(key, params) -> state`` and
  ``step_state(key, state, action, params) -> (state, reward, terminated, truncated, info)``.

Either way ``step`` picks the next state first (stepped, or freshly reset where the episode
ended) and renders it once. Observations produced inside ``reset_env``/``step_env`` are unused
by ``step`` and removed by XLA's dead-code elimination under ``jit``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from popgym_arcade.environments import randomness, spaces
from popgym_arcade.environments.struct import pytree

NUM_ACTIONS = 5
"""Every game has the same five actions: 0 up, 1 down, 2 left, 3 right, 4 fire."""

VALID_OBS_SIZES = (128, 256)


@pytree
class EnvParams:
    """Parameters of an environment without tunable parameters (an empty pytree)."""


def validate_obs_size(obs_size: int) -> int:
    """Return ``obs_size`` if it is 128 or 256, else raise ``ValueError``."""
    if isinstance(obs_size, bool) or obs_size not in VALID_OBS_SIZES:
        raise ValueError(f"obs_size must be one of {VALID_OBS_SIZES}, got {obs_size!r}")
    return int(obs_size)


def select_tree(condition: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leaf-wise ``jnp.where(condition, on_true, on_false)`` over two pytrees of one structure."""
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


class Environment:
    """Base class of every popgym-arcade environment (gymnax 1.0 semantics).

    ``reset(key, params) -> (obs, state)`` and
    ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``.
    ``step`` auto-resets: where ``terminated | truncated``, the returned ``obs`` and ``state`` are
    those of a new episode (reset from a split of ``key``), while ``reward``, ``terminated``,
    ``truncated`` and ``info`` describe the finished transition; the reset's key is split from
    ``key`` (all of ``key`` where :attr:`independent_step_key` is false). ``info`` holds:

    * ``"terminated"``, ``"truncated"``: as returned;
    * ``"discount"``: ``0.0`` where terminated, else ``1.0``;
    * ``"final_state"``: the state reached by the transition, before any reset. Render it with
      :meth:`final_observation` to bootstrap on truncation; ``step`` itself renders only once.

    Attributes:
        partial_obs: ``True`` for the POMDP twin, ``False`` for the MDP twin.
        obs_size: side of the square ``uint8`` RGB observation, 128 or 256.
    """

    partial_obs: bool = False
    obs_size: int = 128
    independent_step_key: bool = True
    """Whether ``step`` splits its key into one for ``step_state`` and one for the auto-reset.
    A game sets this to ``False`` when sharing one key is sound: its transitions ignore the
    key (deterministic rules), or they draw only words the reset never uses, from the same
    ``random_bits`` call as the reset (NoisyCartPole). ``step`` then hands the whole key to
    both, one PRNG call (and some 0.2 s of CPU compile time) less per program that steps the
    env, and XLA computes a draw the two share only once."""

    # ----------------------------------------------------------------------------- public API
    @property
    def default_params(self) -> Any:
        """Parameters used when ``params`` is ``None``."""
        return EnvParams()

    @functools.partial(jax.jit, static_argnums=0)
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        """Start an episode: ``(obs, state)``."""
        params = self.default_params if params is None else params
        state = self.reset_state(key, params)
        return self.render(state), state

    @functools.partial(jax.jit, static_argnums=0)
    def step(
        self, key: jax.Array, state: Any, action: jax.Array | int, params: Any = None
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Advance one step, auto-resetting a finished episode (see the class docstring)."""
        params = self.default_params if params is None else params
        if self.independent_step_key:
            key_step, key_reset = randomness.split(key)
        else:  # step_state ignores its key or reads only words the reset does not use
            key_step = key_reset = key
        action = jnp.asarray(action, dtype=jnp.int32)
        next_state, reward, terminated, truncated, info = self.step_state(key_step, state, action, params)
        terminated = jnp.asarray(terminated, dtype=bool)
        truncated = jnp.logical_and(jnp.asarray(truncated, dtype=bool), jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        fresh_state = self.reset_state(key_reset, params)
        state_out = select_tree(done, fresh_state, next_state)
        obs = self.render(state_out)
        info = dict(info)
        info.update(
            terminated=terminated,
            truncated=truncated,
            discount=1.0 - terminated.astype(jnp.float32),
            final_state=next_state,
        )
        return obs, state_out, jnp.asarray(reward, dtype=jnp.float32), terminated, truncated, info

    def final_observation(self, info: dict[str, Any]) -> jax.Array:
        """The observation of ``info["final_state"]``: the last frame of an episode that ended."""
        return self.render(info["final_state"])

    def observation_space(self, params: Any = None) -> spaces.Box:
        """``uint8`` images of shape ``(obs_size, obs_size, 3)``."""
        return spaces.Box(0, 255, (self.obs_size, self.obs_size, 3), jnp.uint8)

    def action_space(self, params: Any = None) -> spaces.Discrete:
        """``Discrete(5)``: 0 up, 1 down, 2 left, 3 right, 4 fire."""
        return spaces.Discrete(NUM_ACTIONS)

    @property
    def num_actions(self) -> int:
        """Number of actions (5 in every game)."""
        return NUM_ACTIONS

    @property
    def name(self) -> str:
        """The environment's name (the class name unless a game says otherwise)."""
        return type(self).__name__

    # ------------------------------------------------------------------ what a game implements
    def render(self, state: Any) -> jax.Array:
        """The observation of ``state``: ``uint8[obs_size, obs_size, 3]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement render(state)")

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """The paper-style reset: ``(obs, state)``."""
        if type(self).reset_state is Environment.reset_state:
            raise NotImplementedError(f"{type(self).__name__} must implement reset_env or reset_state")
        state = self.reset_state(key, params)
        return self.render(state), state

    def reset_state(self, key: jax.Array, params: Any) -> Any:
        """The initial state of an episode."""
        if type(self).reset_env is Environment.reset_env:
            raise NotImplementedError(f"{type(self).__name__} must implement reset_env or reset_state")
        return self.reset_env(key, params)[1]

    def step_env(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, dict[str, Any]]:
        """The paper-style step without reset: ``(obs, state, reward, terminated, info)``.

        ``info["truncated"]`` marks a step-limit ending.
        """
        if type(self).step_state is Environment.step_state:
            raise NotImplementedError(f"{type(self).__name__} must implement step_env or step_state")
        next_state, reward, terminated, truncated, info = self.step_state(key, state, action, params)
        info = {**info, "terminated": terminated, "truncated": truncated}
        return self.render(next_state), next_state, reward, terminated, info

    def step_state(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One transition without reset: ``(state, reward, terminated, truncated, info)``."""
        if type(self).step_env is Environment.step_env:
            raise NotImplementedError(f"{type(self).__name__} must implement step_env or step_state")
        _, next_state, reward, done, info = self.step_env(key, state, action, params)
        info = dict(info)
        done = jnp.asarray(done, dtype=bool)
        truncated = jnp.logical_and(done, jnp.asarray(info.pop("truncated", False), dtype=bool))
        # A done step is a truncation where info says so, unless info also says terminated.
        if "terminated" in info:
            terminated = jnp.logical_and(done, jnp.asarray(info.pop("terminated"), dtype=bool))
        else:
            terminated = jnp.logical_and(done, jnp.logical_not(truncated))
        return next_state, reward, terminated, truncated, info
