"""Return targets: Q(lambda) returns and generalised advantage estimates.

Both take, for a rollout of ``T`` steps (time on axis 0, any batch axes after it):

* ``rewards[t]``: reward of step ``t``;
* ``next_values[t]``: the value of the state step ``t`` led to, *within its episode*: ``0`` where
  the episode terminated, the value of the final frame where it was truncated (a time limit: the
  episode could have gone on), and the value of the next observation otherwise;
* ``continues[t]``: ``1`` if step ``t + 1`` belongs to the same episode (``0`` where step ``t``
  terminated or was truncated). Returns never mix rewards across an episode boundary.

Treating truncation as termination (as the published code does) would teach the agent that a
time limit is a terminal state worth zero; bootstrapping from the *next* observation would read
the next episode's first frame.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def lambda_returns(rewards, next_values, continues, gamma: float, lam: float) -> jax.Array:
    """Q(lambda) / TD(lambda) targets.

    ``G_t = r_t + gamma * ((1 - lam * c_t) * v_{t+1} + lam * c_t * G_{t+1})`` with ``G_T = v_T``
    (so the last step bootstraps fully from ``next_values[T - 1]``). ``lam = 0`` gives one-step
    targets ``r_t + gamma * v_{t+1}``; ``lam = 1`` Monte-Carlo returns bootstrapped at the ends.
    """
    rewards = jnp.asarray(rewards, jnp.float32)
    next_values = jnp.asarray(next_values, jnp.float32)
    continues = jnp.asarray(continues, jnp.float32)

    def backward(next_return, step):
        reward, next_value, cont = step
        mixed = (1.0 - lam * cont) * next_value + lam * cont * next_return
        ret = reward + gamma * mixed
        return ret, ret

    _, returns = jax.lax.scan(backward, next_values[-1], (rewards, next_values, continues), reverse=True)
    return returns


def gae(rewards, values, next_values, continues, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates and value targets.

    ``delta_t = r_t + gamma * v_{t+1} - V_t``, ``A_t = delta_t + gamma * lam * c_t * A_{t+1}``
    (``A_T = 0``); returns ``(advantages, advantages + values)``.
    """
    rewards = jnp.asarray(rewards, jnp.float32)
    values = jnp.asarray(values, jnp.float32)
    next_values = jnp.asarray(next_values, jnp.float32)
    continues = jnp.asarray(continues, jnp.float32)
    deltas = rewards + gamma * next_values - values

    def backward(next_advantage, step):
        delta, cont = step
        advantage = delta + gamma * lam * cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, continues), reverse=True)
    return advantages, advantages + values


def bootstrap_values(values_next_obs, values_final_obs, terminated, truncated) -> jax.Array:
    """``next_values`` for :func:`lambda_returns` / :func:`gae` from per-step value estimates.

    ``values_next_obs[t]`` is the value of the observation returned by step ``t`` (the next
    episode's first frame where the episode ended), ``values_final_obs[t]`` that of the episode's
    last frame (used only where ``truncated[t]``).
    """
    terminated = jnp.asarray(terminated, bool)
    truncated = jnp.asarray(truncated, bool)
    value = jnp.where(truncated, values_final_obs, values_next_obs)
    return jnp.where(terminated, 0.0, value)
