"""Gymnasium adapters: a single :class:`GymnasiumEnv` and a batched :class:`GymnasiumVectorEnv`.

Both take an env id (built with :func:`popgym_arcade.make`), an :class:`Environment`, or an
``(env, params)`` pair, and return numpy arrays: observations ``uint8[S, S, 3]`` (``S`` = 128
or 256) and actions in ``Discrete(5)`` (0 up, 1 down, 2 left, 3 right, 4 fire).

JAX keys come from the seed only (``reset(seed=...)``, else the constructor's ``seed``, else
Gymnasium's ``np_random``), so equal seeds and actions give equal trajectories. The jitted
``reset``/``step`` are compiled once per instance, on first use.

>>> from popgym_arcade.adapters import GymnasiumEnv
>>> env = GymnasiumEnv("CartPoleEasy", partial_obs=True, seed=0)
>>> obs, info = env.reset()
>>> obs.shape, obs.dtype.name
((128, 128, 3), 'uint8')
>>> obs, reward, terminated, truncated, info = env.step(0)
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import jax
import numpy as np

from popgym_arcade.adapters._common import require, resolve_env
from popgym_arcade.environments.base import Environment

gym = require("gymnasium", "gymnasium")
from gymnasium import spaces as gym_spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

RENDER_FPS = 15
"""Frames per second announced in ``metadata`` (for video recorders; the envs are not timed)."""


def _key_from_seed(seed: int) -> jax.Array:
    """A JAX key from any non-negative Python integer, deterministically."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    word = np.random.SeedSequence(int(seed)).generate_state(1, np.uint32)[0]
    return jax.random.key(int(word))


def _spaces(env: Environment) -> tuple[gym_spaces.Box, gym_spaces.Discrete]:
    size = env.obs_size
    return (
        gym_spaces.Box(0, 255, (size, size, 3), np.uint8),
        gym_spaces.Discrete(env.num_actions),
    )


def _to_numpy(tree: Any) -> Any:
    return jax.tree.map(np.asarray, jax.device_get(tree))


def _check_render_mode(render_mode: str | None, metadata: dict[str, Any]) -> str | None:
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise ValueError(
            f"render_mode must be None or one of {metadata['render_modes']}, got {render_mode!r}"
        )
    return render_mode


class GymnasiumEnv(gym.Env):
    """One popgym-arcade game as a ``gymnasium.Env`` (numpy in and out).

    Gymnasium semantics: there is no auto-reset. The step that ends an episode
    (``terminated or truncated``) returns that episode's last observation; call :meth:`reset`
    to start the next. ``info`` holds numpy ``terminated``, ``truncated`` and ``discount``
    (``0.0`` where terminated), plus whatever the game reports.

    Args:
        env: an env id such as ``"CartPoleEasy"``, an :class:`Environment`, or ``(env, params)``.
        partial_obs: the POMDP twin (``True``) or the MDP twin (``False``); only for an id.
        obs_size: 128 or 256; only for an id.
        seed: seeds the first :meth:`reset` that is not given a seed.
        render_mode: ``None`` or ``"rgb_array"`` (:meth:`render` returns the latest frame).
        **kwargs: passed to :func:`popgym_arcade.make` (only for an id).

    Raises:
        ValueError: an unknown id or a bad ``obs_size`` (from :func:`popgym_arcade.make`), or a
            bad ``render_mode``.

    Attributes:
        env, params: the wrapped JAX environment and its parameters.
        state: the JAX state of the current episode (``None`` before :meth:`reset`).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(
        self,
        env: str | Environment | tuple[Environment, Any],
        partial_obs: bool = False,
        obs_size: int = 128,
        seed: int | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        self.env, self.params = resolve_env(env, partial_obs, obs_size, **kwargs)
        self.observation_space, self.action_space = _spaces(self.env)
        self.render_mode = _check_render_mode(render_mode, self.metadata)
        self._seed = None if seed is None else int(seed)
        if seed is not None:
            _key_from_seed(seed)  # validate early
        self._key: jax.Array | None = None
        self.state: Any = None
        self._obs: np.ndarray | None = None
        self._needs_reset = True
        inner = self.env

        def reset(key, params):
            key, sub = jax.random.split(key)
            obs, state = inner.reset(sub, params)
            return key, obs, state

        def step(key, state, action, params):
            key, sub = jax.random.split(key)
            obs, state, reward, terminated, truncated, info = inner.step(sub, state, action, params)
            done = terminated | truncated
            # Not vmapped, so only the taken branch runs: the final frame is drawn only when needed.
            obs = jax.lax.cond(done, lambda: inner.final_observation(info), lambda: obs)
            info = {k: v for k, v in info.items() if k != "final_state"}
            return key, obs, state, reward, terminated, truncated, info

        self._reset_fn = jax.jit(reset)
        self._step_fn = jax.jit(step)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Start an episode: ``(obs, info)``.

        Args:
            seed: reseeds the JAX key (and ``np_random``); without it the key continues from the
                previous episode (the first reset uses the constructor's ``seed``, else a seed
                drawn from ``np_random``).
            options: unused (accepted for the Gymnasium API).
        """
        super().reset(seed=seed)
        if seed is not None:
            self._key = _key_from_seed(seed)
        elif self._key is None:
            first = self._seed if self._seed is not None else int(self.np_random.integers(2**32))
            self._key = _key_from_seed(first)
        self._key, obs, self.state = self._reset_fn(self._key, self.params)
        self._obs = np.array(obs)
        self._needs_reset = False
        return self._obs.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take ``action`` (an integer in ``0..4``): ``(obs, reward, terminated, truncated, info)``.

        Where the episode ends, ``obs`` is its final frame and the next call must be
        :meth:`reset` (stepping on without one continues from a fresh episode, with a warning).
        """
        if self._key is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, {self.action_space.n}), got {action!r}")
        if self._needs_reset:
            warnings.warn(
                "step() called after the episode ended; call reset() first (continuing in a new episode)",
                stacklevel=2,
            )
        self._key, obs, self.state, reward, terminated, truncated, info = self._step_fn(
            self._key, self.state, np.int32(action), self.params
        )
        self._obs = np.array(obs)
        terminated, truncated = bool(terminated), bool(truncated)
        self._needs_reset = terminated or truncated
        return self._obs.copy(), float(reward), terminated, truncated, _to_numpy(info)

    def render(self) -> np.ndarray | None:
        """The latest observation as an RGB ``uint8[S, S, 3]`` array (``render_mode="rgb_array"``).

        With ``render_mode=None`` it warns and returns ``None``, as Gymnasium envs do.
        """
        if self.render_mode is None:
            warnings.warn("render() called with render_mode=None; pass render_mode='rgb_array'", stacklevel=2)
            return None
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        return self._obs.copy()

    def __repr__(self) -> str:
        twin = "POMDP" if self.env.partial_obs else "MDP"
        return f"GymnasiumEnv({self.env.name}, {twin}, obs_size={self.env.obs_size})"


class GymnasiumVectorEnv(VectorEnv):
    """``num_envs`` copies of one game as a ``gymnasium.vector.VectorEnv``, stepped by one jitted ``vmap``.

    Autoreset mode ``AutoresetMode.SAME_STEP`` (declared in ``metadata["autoreset_mode"]``): the
    step that ends a sub-environment's episode returns the *first* observation of its next
    episode, with the ending step's reward, ``terminated`` and ``truncated``; the ended episode's
    last frame is in ``info["final_obs"]`` (a length-``num_envs`` object array, ``None`` where no
    episode ended, masked by ``info["_final_obs"]``), and ``info["final_info"]`` holds that
    step's info (masked by ``info["_final_info"]``), as Gymnasium's own same-step vector envs do.
    Every other ``info[k]`` is a batched numpy array with an all-true mask ``info["_k"]``.
    The final frames are rendered (in one jitted batch) only on steps where an episode ended.

    Args:
        env: an env id, an :class:`Environment`, or ``(env, params)``.
        num_envs: number of sub-environments.
        partial_obs, obs_size: the twin and observation size; only for an id.
        seed: seeds the first :meth:`reset` that is not given a seed.
        render_mode: ``None`` or ``"rgb_array"`` (:meth:`render` returns a tuple of frames).
        **kwargs: passed to :func:`popgym_arcade.make` (only for an id).

    Attributes:
        env, params: the wrapped JAX environment and its parameters.
        state: the batched JAX state (``None`` before :meth:`reset`).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        env: str | Environment | tuple[Environment, Any],
        num_envs: int,
        partial_obs: bool = False,
        obs_size: int = 128,
        seed: int | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.env, self.params = resolve_env(env, partial_obs, obs_size, **kwargs)
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = _spaces(self.env)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = _check_render_mode(render_mode, self.metadata)
        self._seed = None if seed is None else int(seed)
        if seed is not None:
            _key_from_seed(seed)
        self._keys: jax.Array | None = None
        self.state: Any = None
        self._obs: np.ndarray | None = None
        inner = self.env

        def split_all(keys):
            pairs = jax.vmap(jax.random.split)(keys)
            return pairs[:, 0], pairs[:, 1]

        def reset(keys, params):
            keys, subs = split_all(keys)
            obs, state = jax.vmap(inner.reset, in_axes=(0, None))(subs, params)
            return keys, obs, state

        def step(keys, state, actions, params):
            keys, subs = split_all(keys)
            obs, state, reward, terminated, truncated, info = jax.vmap(inner.step, in_axes=(0, 0, 0, None))(
                subs, state, actions, params
            )
            final_state = info.pop("final_state")
            return keys, obs, state, reward, terminated, truncated, info, final_state

        def final_obs(final_state):
            return jax.vmap(lambda s: inner.final_observation({"final_state": s}))(final_state)

        self._reset_fn = jax.jit(reset)
        self._step_fn = jax.jit(step)
        self._final_obs_fn = jax.jit(final_obs)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-environment: ``(obs[num_envs, S, S, 3], info)``.

        Args:
            seed: an integer (sub-environment keys are split from it), a list of ``num_envs``
                integers (one per sub-environment), or ``None`` (continue the keys; the first
                reset uses the constructor's ``seed``, else one drawn from ``np_random``).
            options: unused (accepted for the Gymnasium API).
        """
        if isinstance(seed, (list, tuple, np.ndarray)):
            if len(seed) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seed)}")
            super().reset(seed=None)
            self._keys = jax.numpy.stack([_key_from_seed(s) for s in seed])
        else:
            super().reset(seed=seed)
            if seed is not None or self._keys is None:
                if seed is None:
                    seed = self._seed if self._seed is not None else int(self.np_random.integers(2**32))
                self._keys = jax.random.split(_key_from_seed(seed), self.num_envs)
        self._keys, obs, self.state = self._reset_fn(self._keys, self.params)
        self._obs = np.array(obs)
        return self._obs.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment with ``actions[num_envs]`` (integers in ``0..4``).

        Returns ``(obs, rewards, terminations, truncations, info)`` as numpy arrays, with
        same-step auto-reset (see the class docstring).
        """
        if self._keys is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be {self.num_envs} integers, got {actions.dtype} {actions.shape}")
        if actions.min() < 0 or actions.max() >= self.single_action_space.n:
            raise ValueError(f"actions must be in [0, {self.single_action_space.n}), got {actions}")
        self._keys, obs, self.state, reward, terminated, truncated, info, final_state = self._step_fn(
            self._keys, self.state, actions.astype(np.int32), self.params
        )
        self._obs = np.array(obs)
        reward, terminated, truncated = np.array(reward), np.array(terminated), np.array(truncated)
        info = _to_numpy(info)
        done = terminated | truncated
        all_true = np.ones(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        for name, value in info.items():
            infos[name], infos[f"_{name}"] = value, all_true
        if done.any():
            frames = np.array(self._final_obs_fn(final_state))
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = frames[i]
            final_info = {k: v for k, v in infos.items()}
            for name in info:
                final_info[f"_{name}"] = done.copy()
            infos.update(
                final_obs=final_obs, _final_obs=done.copy(), final_info=final_info, _final_info=done.copy()
            )
        return self._obs.copy(), reward, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """The latest observation of each sub-environment, as a tuple of RGB arrays."""
        if self.render_mode is None:
            warnings.warn("render() called with render_mode=None; pass render_mode='rgb_array'", stacklevel=2)
            return None
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        return tuple(frame.copy() for frame in self._obs)

    def __repr__(self) -> str:
        twin = "POMDP" if self.env.partial_obs else "MDP"
        return f"GymnasiumVectorEnv({self.env.name}, {twin}, obs_size={self.env.obs_size}, num_envs={self.num_envs})"
