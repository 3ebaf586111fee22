"""Compiled programs shared by the tests that run over every registered id.

Each program is compiled once per (id, size) and cached, so the smoke tests and the invariant
tests reuse it instead of compiling their own.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import popgym_arcade

ROLLOUT_ENVS = 16
ROLLOUT_STEPS = 400


@functools.lru_cache(maxsize=None)
def twins(env_id: str, obs_size: int = 128) -> tuple[Any, Any, Any]:
    """``(mdp, pomdp, params)`` of an id."""
    mdp, params = popgym_arcade.make(env_id, partial_obs=False, obs_size=obs_size)
    pomdp, _ = popgym_arcade.make(env_id, partial_obs=True, obs_size=obs_size)
    return mdp, pomdp, params


def trees_equal(a: Any, b: Any) -> jax.Array:
    """Whether two pytrees of one structure hold equal leaves (traceable)."""
    leaves = jax.tree.leaves(jax.tree.map(lambda x, y: jnp.all(x == y), a, b))
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


@functools.lru_cache(maxsize=None)
def twin_rollout(env_id: str, obs_size: int = 128):
    """A jitted ``rollout(key) -> dict of numpy arrays [steps, envs]`` of random actions.

    Every step is taken by both twins from the same state, key and action; the MDP's result is
    kept. Recorded per step and env: reward, terminated, truncated, the return of an episode
    that ended (NaN elsewhere), whether both twins gave the same next state and reward, whether
    their frames differed, whether the frame returned at an auto-reset equals the MDP's, and the
    state's timestep.
    """
    mdp, pomdp, params = twins(env_id, obs_size)

    def step_both(key, state, action):
        obs_m, state_m, reward_m, term_m, trunc_m, _ = mdp.step(key, state, action, params)
        obs_p, state_p, reward_p, term_p, trunc_p, _ = pomdp.step(key, state, action, params)
        same = trees_equal(state_m, state_p) & (reward_m == reward_p) & (term_m == term_p) & (trunc_m == trunc_p)
        first_frame_equal = jnp.all(obs_p == mdp.render(state_m))
        return state_m, reward_m, term_m, trunc_m, same, jnp.any(obs_m != obs_p), first_frame_equal

    def rollout(key):
        reset_key, key = jax.random.split(key)
        _, state = jax.vmap(mdp.reset, in_axes=(0, None))(jax.random.split(reset_key, ROLLOUT_ENVS), params)

        def body(carry, key):
            state, running = carry
            action_key, step_key = jax.random.split(key)
            actions = jax.random.randint(action_key, (ROLLOUT_ENVS,), 0, 5)
            state, reward, term, trunc, same, differ, first_equal = jax.vmap(step_both)(
                jax.random.split(step_key, ROLLOUT_ENVS), state, actions
            )
            running = running + reward
            done = term | trunc
            record = dict(
                reward=reward,
                terminated=term,
                truncated=trunc,
                episode_return=jnp.where(done, running, jnp.nan),
                twins_agree=same,
                frames_differ=differ,
                reset_frame_equal=jnp.where(done, first_equal, True),
                timestep=state.timestep,
            )
            return (state, jnp.where(done, 0.0, running)), record

        _, records = jax.lax.scan(body, (state, jnp.zeros(ROLLOUT_ENVS)), jax.random.split(key, ROLLOUT_STEPS))
        return records

    compiled = jax.jit(rollout)
    return lambda key: {k: np.asarray(v) for k, v in compiled(key).items()}


@functools.lru_cache(maxsize=None)
def rollout_records(env_id: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The records of :func:`twin_rollout` for one seed (computed once)."""
    return twin_rollout(env_id)(jax.random.key(seed))


def jit_step_state(env: Any, key: jax.Array | None = None) -> Any:
    """``step(state, action) -> env.step_state(key, state, action, default_params)``, compiled once.

    For rule tests from hand-built states: the action may be a Python int.
    """
    key = jax.random.key(0) if key is None else key
    compiled = jax.jit(lambda state, action: env.step_state(key, state, action, env.default_params))
    return lambda state, action: compiled(state, jnp.int32(action))
