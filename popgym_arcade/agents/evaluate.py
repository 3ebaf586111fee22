"""Greedy evaluation of trained agents on both twins of their game.

The analysis reads these returns (not the epsilon-greedy or sampled training returns the
published code logged): ``episodes`` fresh episodes per seed and twin, each played greedily
from a fresh memory until it ends or ``max_steps`` pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from popgym_arcade.agents.algorithm import Algorithm
from popgym_arcade.registration import make
from popgym_arcade.wrappers import LogWrapper


def make_evaluate(algorithm: Algorithm, partial: bool, episodes: int, max_steps: int):
    """``evaluate(params, key) -> (returns[episodes], lengths[episodes], finished[episodes])``.

    One seed's greedy episodes on the twin ``partial`` of the algorithm's env (vmap it over
    seeds). An episode still running after ``max_steps`` steps reports its return so far with
    ``finished`` False.
    """
    config = algorithm.config
    env = LogWrapper(make(config.env, partial_obs=partial, obs_size=config.obs_size)[0])

    def evaluate(params, key):
        reset_key, key = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, episodes))
        zeros_f, zeros_i = jnp.zeros(episodes, jnp.float32), jnp.zeros(episodes, jnp.int32)
        init = (
            env_state, obs, jnp.ones(episodes, bool), zeros_i, zeros_f,
            algorithm.initial_carry(params, episodes), jnp.zeros(episodes, bool), zeros_f, zeros_i, key,
        )  # fmt: skip

        def running(loop):
            finished, length = loop[6], loop[8]
            return jnp.any(~finished & (length < max_steps))

        def step(loop):
            env_state, obs, start, prev_action, prev_reward, carry, finished, total, length, key = loop
            key, step_key = jax.random.split(key)
            carry, action = algorithm.greedy_step(params, carry, obs, start, prev_action, prev_reward)
            obs, env_state, reward, terminated, truncated, _ = jax.vmap(env.step)(
                jax.random.split(step_key, episodes), env_state, action
            )
            active = ~finished & (length < max_steps)
            done = jnp.logical_or(terminated, truncated)
            total = total + jnp.where(active, reward, 0.0)
            length = length + active.astype(jnp.int32)
            finished = finished | (active & done)
            return env_state, obs, done, action, reward, carry, finished, total, length, key

        final = jax.lax.while_loop(running, step, init)
        return final[7], final[8], final[6]

    return evaluate


@functools.lru_cache(maxsize=32)
def _jitted_evaluate(algorithm: Algorithm, partial: bool, episodes: int, max_steps: int):
    # Keyed on the algorithm object: runs of one config share it (see train.compiled_programs).
    return jax.jit(jax.vmap(make_evaluate(algorithm, partial, episodes, max_steps)))


def evaluate_both_twins(algorithm: Algorithm, params, key: jax.Array, episodes: int, max_steps: int) -> dict:
    """Greedy returns of every seed (``params`` stacked over seeds) on the MDP and POMDP twins.

    Returns ``{"mdp": {...}, "pomdp": {...}}`` with numpy ``returns``/``lengths``/``finished``
    of shape ``[seeds, episodes]``.
    """
    seeds = jax.tree.leaves(params)[0].shape[0]
    results = {}
    for twin, partial in (("mdp", False), ("pomdp", True)):
        evaluate = _jitted_evaluate(algorithm, partial, episodes, max_steps)
        returns, lengths, finished = evaluate(
            params, jax.random.split(jax.random.fold_in(key, int(partial)), seeds)
        )
        results[twin] = {
            "returns": jax.device_get(returns),
            "lengths": jax.device_get(lengths),
            "finished": jax.device_get(finished),
        }
    return results


def random_policy_returns(
    env_id: str, partial: bool, episodes: int, max_steps: int, key: jax.Array, obs_size: int = 128
) -> dict:
    """Returns of a uniformly random policy under the evaluation protocol (a reference row).

    Same episode count and step cap as :func:`make_evaluate`; numpy ``returns``/``lengths``/
    ``finished`` of shape ``[episodes]``.
    """
    env = LogWrapper(make(env_id, partial_obs=partial, obs_size=obs_size)[0])

    @jax.jit
    def run(key):
        reset_key, key = jax.random.split(key)
        _, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, episodes))
        zeros_f, zeros_i = jnp.zeros(episodes, jnp.float32), jnp.zeros(episodes, jnp.int32)

        def running(loop):
            return jnp.any(~loop[1] & (loop[3] < max_steps))

        def step(loop):
            env_state, finished, total, length, key = loop
            key, action_key, step_key = jax.random.split(key, 3)
            action = jax.random.randint(action_key, (episodes,), 0, env.num_actions)
            _, env_state, reward, terminated, truncated, _ = jax.vmap(env.step)(
                jax.random.split(step_key, episodes), env_state, action
            )
            active = ~finished & (length < max_steps)
            total = total + jnp.where(active, reward, 0.0)
            finished = finished | (active & (terminated | truncated))
            return env_state, finished, total, length + active.astype(jnp.int32), key

        final = jax.lax.while_loop(
            running, step, (env_state, jnp.zeros(episodes, bool), zeros_f, zeros_i, key)
        )
        return final[2], final[3], final[1]

    returns, lengths, finished = jax.device_get(run(key))
    return {"returns": returns, "lengths": lengths, "finished": finished}
