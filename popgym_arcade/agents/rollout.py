"""Acting in vectorised envs with a memory network: the part every algorithm shares.

An algorithm supplies ``act(params, carry, obs, start, prev_action, prev_reward, key) ->
(carry, action, extras)`` over a batch of envs and, to bootstrap truncated episodes,
``final_value(params, carry, final_obs, action, reward) -> value``; :func:`collect` runs
``T`` steps and returns the :class:`Transition` s plus the next :class:`ActorState`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from popgym_arcade.environments.struct import pytree
from popgym_arcade.wrappers import LogWrapper


@pytree
class ActorState:
    """What acting carries from one step to the next, batched over envs (leading axis ``E``).

    ``start`` is True where ``obs`` is an episode's first frame; ``prev_action``/``prev_reward``
    are those of the step that produced ``obs``; ``carry`` is the memory before reading ``obs``.
    """

    env_state: Any
    obs: jax.Array
    start: jax.Array
    prev_action: jax.Array
    prev_reward: jax.Array
    carry: Any


@pytree
class Transition:
    """One step per env; stacked by :func:`collect` to ``[T, E, ...]``.

    ``final_value`` is the value of the episode's last frame where the step was truncated (0
    elsewhere, or everywhere when truncation bootstrapping is off); ``episode_return`` and
    ``episode_length`` describe the episode that ended on this step (read them where ``done``).
    """

    obs: jax.Array
    start: jax.Array
    prev_action: jax.Array
    prev_reward: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_value: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    extras: Any

    @property
    def done(self) -> jax.Array:
        return jnp.logical_or(self.terminated, self.truncated)


def network_step(network: eqx.Module, carry, obs, start, prev_action, prev_reward):
    """Run ``network`` one step for a batch of envs: ``(carry[E], out[E, n])``."""

    def one_env(c, o, s, a, r):
        c, out = network(c, o[None], s[None], a[None], r[None])
        return c, out[0]

    return jax.vmap(one_env)(carry, obs, start, prev_action, prev_reward)


def init_actor(env: LogWrapper, carry, key: jax.Array, num_envs: int) -> ActorState:
    """Reset ``num_envs`` envs; ``carry`` is the network's initial carry batched over envs."""
    obs, env_state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return ActorState(
        env_state=env_state,
        obs=obs,
        start=jnp.ones(num_envs, bool),
        prev_action=jnp.zeros(num_envs, jnp.int32),
        prev_reward=jnp.zeros(num_envs, jnp.float32),
        carry=carry,
    )


def collect(
    env: LogWrapper,
    act: Callable,
    final_value: Callable | None,
    actor: ActorState,
    key: jax.Array,
    num_steps: int,
) -> tuple[ActorState, Transition]:
    """Act for ``num_steps`` steps in every env; ``(next actor state, transitions[T, E])``.

    ``final_value`` (or ``None`` to treat truncation like termination) is evaluated on the
    pre-reset frame of every step and kept where the step was truncated.
    """
    num_envs = actor.obs.shape[0]

    def step(actor: ActorState, key):
        act_key, env_key = jax.random.split(key)
        carry, action, extras = act(
            actor.carry, actor.obs, actor.start, actor.prev_action, actor.prev_reward, act_key
        )
        obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step)(
            jax.random.split(env_key, num_envs), actor.env_state, action
        )
        if final_value is None:
            boot = jnp.zeros(num_envs, jnp.float32)
        else:
            final_obs = jax.vmap(env.final_observation)(info)
            boot = jnp.where(truncated, final_value(carry, final_obs, action, reward), 0.0)
        transition = Transition(
            obs=actor.obs,
            start=actor.start,
            prev_action=actor.prev_action,
            prev_reward=actor.prev_reward,
            action=action,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_value=boot,
            episode_return=info["returned_episode_return"],
            episode_length=info["returned_episode_length"],
            extras=extras,
        )
        done = jnp.logical_or(terminated, truncated)
        next_actor = ActorState(env_state, obs, done, action, reward, carry)
        return next_actor, transition

    return jax.lax.scan(step, actor, jax.random.split(key, num_steps))


def training_sequences(transitions: Transition, next_actor: ActorState) -> dict[str, jax.Array]:
    """Network inputs for training: the ``T`` rollout frames plus the frame after them.

    Returns ``obs, start, prev_action, prev_reward`` of shape ``[T + 1, E, ...]``: the extra
    last frame gives the bootstrap value of the rollout's final step.
    """

    def extend(steps, last):
        return jnp.concatenate([steps, last[None]], axis=0)

    return {
        "obs": extend(transitions.obs, next_actor.obs),
        "start": extend(transitions.start, next_actor.start),
        "prev_action": extend(transitions.prev_action, next_actor.prev_action),
        "prev_reward": extend(transitions.prev_reward, next_actor.prev_reward),
    }


def episode_metrics(transitions: Transition) -> dict[str, jax.Array]:
    """Sums over the episodes that ended in a rollout (divide by ``episodes`` for means)."""
    done = transitions.done
    return {
        "episodes": done.sum().astype(jnp.float32),
        "episode_return_sum": jnp.where(done, transitions.episode_return, 0.0).sum(),
        "episode_length_sum": jnp.where(done, transitions.episode_length, 0).sum().astype(jnp.float32),
    }


def env_minibatches(key: jax.Array, num_envs: int, num_minibatches: int) -> jax.Array:
    """A random split of env indices into ``num_minibatches`` equal groups ``[M, E // M]``."""
    if num_envs % num_minibatches:
        raise ValueError(f"minibatches ({num_minibatches}) must divide num_envs ({num_envs})")
    return jax.random.permutation(key, num_envs).reshape(num_minibatches, -1)


def linear_schedule(start: float, end: float, duration: float) -> Callable[[jax.Array], jax.Array]:
    """``t -> start + (end - start) * min(t / duration, 1)``."""
    duration = max(float(duration), 1.0)

    def schedule(t):
        fraction = jnp.clip(jnp.asarray(t, jnp.float32) / duration, 0.0, 1.0)
        return start + (end - start) * fraction

    return schedule
