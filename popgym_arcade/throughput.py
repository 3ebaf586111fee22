"""Measure environment throughput honestly.

``make_rollout`` builds one jitted program: reset ``num_envs`` envs, then a ``lax.scan`` of
``num_steps`` vmapped steps with random actions. The latest frames stay in the scan carry and
are returned, so XLA cannot drop the rendering (a benchmark that returns only a checksum of one
pixel, or the final frame of an unrolled loop, measures far less work than a learner gets).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from popgym_arcade.environments.base import Environment


def make_rollout(env: Environment, params: Any, num_envs: int, num_steps: int) -> Callable[[jax.Array], Any]:
    """A jitted ``rollout(key) -> (last_frames, summed_reward)`` of random actions."""

    def rollout(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        key, reset_key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, num_envs), params)

        def body(carry, _):
            obs, state, key, total = carry
            key, action_key, step_key = jax.random.split(key, 3)
            actions = jax.random.randint(action_key, (num_envs,), 0, env.num_actions)
            obs, state, reward, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_key, num_envs), state, actions, params
            )
            return (obs, state, key, total + reward.sum()), None

        (obs, _, _, total), _ = jax.lax.scan(body, (obs, state, key, jnp.float32(0)), None, num_steps)
        return obs, total

    return jax.jit(rollout)


@dataclass(frozen=True)
class Throughput:
    """Result of :func:`measure`: steps per second and the first call's time (compile + run)."""

    steps_per_second: float
    compile_seconds: float
    num_envs: int
    num_steps: int


def measure(env: Environment, params: Any, num_envs: int = 64, num_steps: int = 128, repeats: int = 3) -> Throughput:
    """Steps/s of :func:`make_rollout`: median over ``repeats`` timed runs after a warm-up."""
    rollout = make_rollout(env, params, num_envs, num_steps)
    start = time.perf_counter()
    jax.block_until_ready(rollout(jax.random.key(0)))
    compile_seconds = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(rollout(jax.random.key(i + 1)))
        times.append(time.perf_counter() - start)
    return Throughput(num_envs * num_steps / statistics.median(times), compile_seconds, num_envs, num_steps)
