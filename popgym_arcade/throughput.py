"""Measure environment throughput honestly.

``make_rollout`` builds one jitted program: reset ``num_envs`` envs, then a ``lax.scan`` of
``num_steps`` vmapped steps with random actions. The latest frames stay in the scan carry and
are returned, so XLA cannot drop the rendering (a benchmark that returns only a checksum of one
pixel, or the final frame of an unrolled loop, measures far less work than a learner gets).

The core (:func:`make_rollout_fn`, :func:`time_rollout`, :func:`frame_fill_rollout_fn`) needs
only ``jax``: ``benchmarks/_published_worker.py`` loads this file by path to measure the published
implementation, which shares our import name, with exactly the same method.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

if TYPE_CHECKING:  # only for annotations: the core must load without our package installed
    from popgym_arcade.environments.base import Environment

ResetFn = Callable[[jax.Array], tuple[Any, Any]]
"""``reset(key) -> (obs, state)`` of one env."""
StepFn = Callable[[jax.Array, Any, jax.Array], tuple[Any, Any, jax.Array]]
"""``step(key, state, action) -> (obs, state, reward)`` of one env (auto-resetting)."""


def make_rollout_fn(
    reset: ResetFn, step: StepFn, num_actions: int, num_envs: int, num_steps: int
) -> Callable[[jax.Array], tuple[Any, jax.Array]]:
    """An unjitted ``rollout(key) -> (last_obs, summed_reward)`` of uniformly random actions.

    Resets ``num_envs`` envs once, then scans ``num_steps`` vmapped steps. The observations are
    part of the scan carry and the final ones are returned, so every step's rendering is live.

    The harness's own randomness (every reset and step key, every action) is one draw of random
    words before the scan: each random-number call site costs XLA a few tenths of a second of
    compile time on a CPU, and a harness with five of them would bury the compile time of the
    env it measures (both implementations are measured with this same harness).
    """

    def rollout(key: jax.Array) -> tuple[Any, jax.Array]:
        key_shape = jax.random.key_data(key).shape
        words_per_key = math.prod(key_shape)
        words = jax.random.bits(key, (num_steps + 1, num_envs, words_per_key + 1), jnp.uint32)
        keys = jax.random.wrap_key_data(
            words[..., :words_per_key].reshape(num_steps + 1, num_envs, *key_shape),
            impl=jax.random.key_impl(key),
        )
        # 2**32 is not a multiple of num_actions: the bias is below 1e-9 per action.
        actions = (words[1:, :, -1] % num_actions).astype(jnp.int32)
        obs, state = jax.vmap(reset)(keys[0])

        def body(carry, inputs):
            obs, state, total = carry
            step_keys, step_actions = inputs
            obs, state, reward = jax.vmap(step)(step_keys, state, step_actions)
            return (obs, state, total + jnp.sum(reward)), None

        (obs, _, total), _ = jax.lax.scan(body, (obs, state, jnp.float32(0)), (keys[1:], actions))
        return obs, total

    return rollout


def env_rollout_fn(
    env: Environment, params: Any, num_envs: int, num_steps: int
) -> Callable[[jax.Array], Any]:
    """The unjitted :func:`make_rollout_fn` of ``env`` (what :func:`time_rollout` takes)."""

    def reset(key):
        return env.reset(key, params)

    def step(key, state, action):
        obs, state, reward, _, _, _ = env.step(key, state, action, params)
        return obs, state, reward

    return make_rollout_fn(reset, step, env.num_actions, num_envs, num_steps)


def make_rollout(env: Environment, params: Any, num_envs: int, num_steps: int) -> Callable[[jax.Array], Any]:
    """A jitted ``rollout(key) -> (last_frames, summed_reward)`` of random actions of ``env``."""
    return jax.jit(env_rollout_fn(env, params, num_envs, num_steps))


def frame_fill_rollout_fn(num_envs: int, obs_size: int, num_steps: int) -> Callable[[jax.Array], Any]:
    """The frame-write ceiling: an unjitted scan that fills ``[num_envs, S, S, 3]`` uint8 per step.

    Same structure as :func:`make_rollout_fn` (frames in the carry, returned), but each step's
    "rendering" is one fill of every env's frame with a random per-env value: the least work that
    still writes every pixel of every frame.
    """

    def rollout(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        frames = jnp.zeros((num_envs, obs_size, obs_size, 3), jnp.uint8)

        def body(carry, _):
            frames, key, total = carry
            key, value_key = jax.random.split(key)
            values = jax.random.randint(value_key, (num_envs,), 0, 256).astype(jnp.uint8)
            frames = jnp.broadcast_to(values[:, None, None, None], frames.shape)
            return (frames, key, total + values[0].astype(jnp.float32)), None

        (frames, _, total), _ = jax.lax.scan(body, (frames, key, jnp.float32(0)), None, num_steps)
        return frames, total

    return rollout


def make_frame_fill_rollout(num_envs: int, obs_size: int, num_steps: int) -> Callable[[jax.Array], Any]:
    """:func:`frame_fill_rollout_fn`, jitted."""
    return jax.jit(frame_fill_rollout_fn(num_envs, obs_size, num_steps))


@dataclass(frozen=True)
class Throughput:
    """Result of :func:`measure` / :func:`time_rollout`.

    ``steps_per_second`` is the median over timed repeats after a warm-up. ``compile_seconds``
    is what a program costs before it runs: the first trace and lowering, plus the fastest of
    ``compiles`` ahead-of-time XLA compiles of it (one compile is a single sample of a noisy
    quantity on a shared machine; the fastest is the stable one). ``first_call_seconds`` is
    the first trace, lowering and compile plus the first (warm-up) run, as a user meets them.
    """

    steps_per_second: float
    compile_seconds: float
    num_envs: int
    num_steps: int
    first_call_seconds: float = 0.0
    repeat_seconds: tuple[float, ...] = ()


def time_rollout(
    rollout_fn: Callable[[jax.Array], Any], num_envs: int, num_steps: int, repeats: int = 3, compiles: int = 2
) -> Throughput:
    """Time an unjitted ``rollout_fn(key)``: compile, one warm-up run, then the median of ``repeats``.

    ``rollout_fn`` is jitted here, afresh for each of ``compiles`` compiles: JAX caches a jitted
    function's executable, so a second ``lower().compile()`` of one would cost nothing.
    """
    key = jax.random.key(0)
    start = time.perf_counter()
    lowered = jax.jit(rollout_fn).lower(key)
    lower_seconds = time.perf_counter() - start
    compiled = lowered.compile()
    compile_times = [time.perf_counter() - start - lower_seconds]
    jax.block_until_ready(compiled(key))
    first_call_seconds = time.perf_counter() - start
    for _ in range(max(1, compiles) - 1):
        lowered_again = jax.jit(lambda key: rollout_fn(key)).lower(key)  # a new function: no cache hit
        start = time.perf_counter()
        lowered_again.compile()
        compile_times.append(time.perf_counter() - start)
    times = []
    for i in range(max(1, repeats)):
        start = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(i + 1)))
        times.append(time.perf_counter() - start)
    return Throughput(
        num_envs * num_steps / statistics.median(times),
        lower_seconds + min(compile_times),
        num_envs,
        num_steps,
        first_call_seconds,
        tuple(times),
    )


def measure(
    env: Environment,
    params: Any,
    num_envs: int = 64,
    num_steps: int = 128,
    repeats: int = 3,
    compiles: int = 2,
) -> Throughput:
    """Steps/s of :func:`make_rollout` (median of ``repeats`` runs) and compile time (see
    :func:`time_rollout`)."""
    rollout_fn = env_rollout_fn(env, params, num_envs, num_steps)
    return time_rollout(rollout_fn, num_envs, num_steps, repeats, compiles)


def measure_frame_ceiling(
    num_envs: int = 64, obs_size: int = 128, num_steps: int = 128, repeats: int = 3
) -> Throughput:
    """Frames/s (as ``steps_per_second``) of :func:`frame_fill_rollout_fn` (compiled once)."""
    return time_rollout(frame_fill_rollout_fn(num_envs, obs_size, num_steps), num_envs, num_steps, repeats, 1)
