"""DQN with a target network and a replay of sequences (Mnih et al., 2015; R2D2-style storage).

Each update:

1. act epsilon-greedily with the online network for ``rollout_steps`` steps in ``num_envs`` envs
   (exactly as :mod:`~popgym_arcade.agents.pqn` acts);
2. insert every env's window into a ring buffer of ``buffer_sequences`` sequences: the
   ``rollout_steps + 1`` frames (the extra frame bootstraps the last step), the actions, rewards
   and episode ends, and the memory state at the window's start (stored state, as in R2D2);
3. once ``learning_starts`` rollouts are in and the buffer holds ``batch_sequences`` sequences,
   take ``updates_per_rollout`` gradient steps, each on ``batch_sequences`` sequences drawn
   uniformly from the buffer. Both networks re-run a sequence from its stored start state, memory
   resetting at episode starts; the loss is ``0.5 * mean((Q(o_t, a_t) - G_t)^2)`` over its steps;
4. the targets ``G_t`` are lambda-returns (:func:`~popgym_arcade.agents.returns.lambda_returns`;
   ``lam = 0``, the default, is the one-step ``r + gamma * Q_target(o', a*)``) of the *target*
   network's values, with ``a*`` the online network's argmax when ``double_q`` (van Hasselt et
   al., 2016) and the target's own argmax otherwise. A truncated step bootstraps from its
   episode's last frame as valued by the online network at acting time, a terminated one from 0;
5. the target network is copied every ``target_update_every`` updates (``tau == 1``) or moved
   towards the online one by ``tau`` every update (Polyak averaging).

Unlike the published "DQN" (targets frozen at insertion by the acting network, no target
network, float32 frames), targets are recomputed at every gradient step and frames stay ``uint8``.
Known simplifications: the stored start state comes from the parameters that acted (no burn-in),
and ``lam > 0`` gives uncorrected (Peng's) Q(lambda) on replayed, older-policy data.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from popgym_arcade.agents.algorithm import Algorithm, TrainState
from popgym_arcade.agents.networks import Network, batch_carry
from popgym_arcade.agents.pqn import q_rollout
from popgym_arcade.agents.returns import bootstrap_values, lambda_returns
from popgym_arcade.agents.rollout import (
    ActorState,
    Transition,
    episode_metrics,
    init_actor,
    linear_schedule,
    network_step,
    training_sequences,
)
from popgym_arcade.environments.struct import pytree

# ------------------------------------------------------------------------------ replay buffer


@pytree
class Replay:
    """A ring buffer of items: every leaf of ``items`` has the capacity as its leading axis.

    Slots ``[0, size)`` hold data: the buffer fills from slot 0 and, once full, overwrites the
    oldest item at ``position``. Fixed shapes, so it lives in a jitted, vmapped train state.
    """

    items: Any
    size: jax.Array
    position: jax.Array


def replay_capacity(replay: Replay) -> int:
    """Number of slots (static)."""
    return jax.tree.leaves(replay.items)[0].shape[0]


def replay_init(example_items: Any, capacity: int) -> Replay:
    """An empty buffer of ``capacity`` slots shaped like ``example_items`` (minus its leading axis)."""
    if capacity < 1:
        raise ValueError(f"replay capacity must be >= 1, got {capacity}")
    items = jax.tree.map(lambda x: jnp.zeros((capacity, *x.shape[1:]), x.dtype), example_items)
    return Replay(items=items, size=jnp.int32(0), position=jnp.int32(0))


def replay_insert(replay: Replay, items: Any) -> Replay:
    """Write ``items`` (leading axis ``N <= capacity``) at the next ``N`` slots, wrapping around.

    ``size`` saturates at the capacity; ``position`` is the slot the next insert writes first.
    """
    capacity = replay_capacity(replay)
    count = jax.tree.leaves(items)[0].shape[0]
    if count > capacity:
        # Two items would land in one slot in the same scatter, which XLA leaves unordered.
        raise ValueError(f"cannot insert {count} items at once into a buffer of {capacity}")
    slots = (replay.position + jnp.arange(count)) % capacity
    stored = jax.tree.map(lambda buf, x: buf.at[slots].set(x.astype(buf.dtype)), replay.items, items)
    return Replay(
        items=stored,
        size=jnp.minimum(replay.size + count, capacity).astype(jnp.int32),
        position=((replay.position + count) % capacity).astype(jnp.int32),
    )


def replay_sample(replay: Replay, key: jax.Array, batch_size: int) -> Any:
    """``batch_size`` items drawn uniformly (with replacement) from the filled slots ``[0, size)``.

    The buffer must be non-empty (an empty one returns slot 0's zeros).
    """
    slots = jax.random.randint(key, (batch_size,), 0, jnp.maximum(replay.size, 1))
    return jax.tree.map(lambda buf: buf[slots], replay.items)


def rollout_items(transitions: Transition, next_actor: ActorState, start_carry: Any) -> dict[str, Any]:
    """One replay item per env (leading axis ``E``) from a rollout ``[T, E]``.

    Sequence inputs carry ``T + 1`` steps (the frame after the rollout bootstraps its last step),
    per-step outcomes ``T``; ``carry`` is each env's memory state before the window's first frame.
    """
    sequences = training_sequences(transitions, next_actor)
    steps = {
        "action": transitions.action,
        "reward": transitions.reward,
        "terminated": transitions.terminated,
        "truncated": transitions.truncated,
        "final_value": transitions.final_value,
    }
    items = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), {**sequences, **steps})
    return {**items, "carry": start_carry}


def sequence_nbytes(rollout_steps: int, obs_size: int) -> int:
    """Bytes of one replay sequence's frames (``uint8``; the rest of an item is negligible)."""
    return (rollout_steps + 1) * obs_size * obs_size * 3


# ----------------------------------------------------------------------------- target network


def double_q_bootstrap(online_q: jax.Array, target_q: jax.Array, double_q: bool) -> jax.Array:
    """Value of the next state from ``[..., A]`` Q-values: ``Q_target(s, argmax_a Q_online(s, a))``.

    With ``double_q=False``, plain DQN's ``max_a Q_target(s, a)``.
    """
    if not double_q:
        return target_q.max(axis=-1)
    best = jnp.argmax(online_q, axis=-1)
    return jnp.take_along_axis(target_q, best[..., None], axis=-1)[..., 0]


def target_update(target: Any, online: Any, updates_done: jax.Array, every: int, tau: float) -> Any:
    """The target parameters after an update.

    ``tau == 1``: a hard copy of ``online`` when ``updates_done`` (counting this update) is a
    multiple of ``every``, else unchanged. ``tau < 1``: Polyak averaging every update,
    ``tau * online + (1 - tau) * target``. Non-float leaves are always copied.
    """

    def leaf(t, o):
        if not eqx.is_inexact_array(o):
            return o
        if tau >= 1.0:
            return jnp.where(updates_done % every == 0, o, t)
        return (tau * o + (1.0 - tau) * t).astype(t.dtype)

    return jax.tree.map(leaf, target, online)


def sequence_targets(
    online_next_q, target_next_q, reward, terminated, truncated, final_value, *, gamma, lam, double_q
) -> jax.Array:
    """DQN targets ``G[T, ...]`` of one or more sequences (time first).

    ``online_next_q``/``target_next_q`` ``[T, ..., A]`` are both networks' Q-values of the
    observation each step led to (the next episode's first frame after an episode end: those are
    never used, see :func:`~popgym_arcade.agents.returns.bootstrap_values`); ``final_value`` is
    the value of a truncated episode's last frame. ``lam = 0``: ``r + gamma * (1 - term) * v'``.
    """
    next_q = double_q_bootstrap(online_next_q, target_next_q, double_q)
    next_values = bootstrap_values(next_q, final_value, terminated, truncated)
    continues = 1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32)
    return lambda_returns(reward, next_values, continues, gamma, lam)


def replay_q_values(network: Network, batch: dict[str, Any]) -> jax.Array:
    """Q-values ``[T + 1, B, A]`` (time first) of replayed sequences ``[B, T + 1, ...]`` from their carries."""

    def one_sequence(carry, obs, start, prev_action, prev_reward):
        return network(carry, obs, start, prev_action, prev_reward)[1]

    keys = ("carry", "obs", "start", "prev_action", "prev_reward")
    return jax.vmap(one_sequence, out_axes=1)(*(batch[k] for k in keys))


@pytree
class DQNExtra:
    """DQN's part of the :class:`TrainState`: the sequence replay and the target parameters."""

    replay: Replay
    target_params: Any


# ------------------------------------------------------------------------------- the algorithm


class DQN(Algorithm):
    """DQN with a target network over a replay of sequences; reads ``config.dqn``.

    See the module docstring for the update. Memory: the replay keeps frames as ``uint8``, one
    sequence of ``rollout_steps + 1`` frames per slot, i.e. ``(T + 1) * S * S * 3`` bytes
    (:func:`sequence_nbytes`): 129 * 128 * 128 * 3 B ~ 6.3 MB at 128 px and T = 128 (1.6 GB per
    seed for 256 sequences), four times that at 256 px. Every seed holds its own buffer.
    """

    name = "dqn"
    kind = "q"

    def __init__(self, config):
        _validate(config)  # before building the env and network, so a bad config fails fast
        settings = config.dqn
        self.first_learning_update = first_learning_update(
            settings.learning_starts, settings.batch_sequences, config.num_envs
        )
        if self.first_learning_update >= config.num_updates:
            warnings.warn(
                f"DQN never learns in this run: it starts learning at update {self.first_learning_update} "
                f"(learning_starts={settings.learning_starts}, batch_sequences={settings.batch_sequences}, "
                f"num_envs={config.num_envs}) but the run has {config.num_updates} updates",
                stacklevel=2,
            )
        super().__init__(config)
        # The learning rate decays over the optimiser steps actually taken (none before learning starts).
        learning_updates = max(config.num_updates - self.first_learning_update, 1)
        optimiser_steps = learning_updates * settings.updates_per_rollout
        self.optimizer = optax.chain(
            optax.clip_by_global_norm(settings.max_grad_norm),
            optax.radam(self.learning_rate(settings.lr, settings.lr_decay, optimiser_steps)),
        )
        self.epsilon = linear_schedule(
            settings.eps_start, settings.eps_finish, settings.eps_decay * config.num_updates
        )

    def build_model(self, key):
        return Network(self.config.network, self.config.obs_size, self.num_actions, self.num_actions, key=key)

    def initial_carry(self, params, batch_size):
        return batch_carry(self.model(params), batch_size)

    def init(self, key):
        config = self.config
        network_key, env_key, key = jax.random.split(key, 3)
        params = self.init_params(network_key)
        actor = init_actor(self.env, self.initial_carry(params, config.num_envs), env_key, config.num_envs)
        extra = DQNExtra(
            replay=replay_init(self._example_items(params, actor), config.dqn.buffer_sequences),
            target_params=params,
        )
        return TrainState(params, self.optimizer.init(params), actor, key, jnp.int32(0), extra)

    def _example_items(self, params, actor: ActorState) -> dict[str, Any]:
        """Zero items with the replay's shapes and dtypes (leading axis 1), without acting."""
        steps = self.config.rollout_steps
        frame = actor.obs[:1]

        def seq(x, length):
            return jnp.zeros((1, length, *x.shape[1:]), x.dtype)

        return {
            "obs": seq(frame, steps + 1),
            "start": jnp.zeros((1, steps + 1), bool),
            "prev_action": jnp.zeros((1, steps + 1), jnp.int32),
            "prev_reward": jnp.zeros((1, steps + 1), jnp.float32),
            "action": jnp.zeros((1, steps), jnp.int32),
            "reward": jnp.zeros((1, steps), jnp.float32),
            "terminated": jnp.zeros((1, steps), bool),
            "truncated": jnp.zeros((1, steps), bool),
            "final_value": jnp.zeros((1, steps), jnp.float32),
            "carry": self.initial_carry(params, 1),
        }

    def greedy_step(self, params, carry, obs, start, prev_action, prev_reward):
        carry, q_values = network_step(self.model(params), carry, obs, start, prev_action, prev_reward)
        return carry, jnp.argmax(q_values, axis=-1).astype(jnp.int32)

    def sequence_outputs(self, params, obs, start, prev_action, prev_reward):
        network = self.model(params)
        return network(network.initialize_carry(), obs, start, prev_action, prev_reward)[1]

    def loss(self, params, target_params, batch):
        """TD loss of a batch of replayed sequences ``[B, T + 1, ...]``, and the mean chosen Q."""
        settings = self.config.dqn
        q_values = replay_q_values(self.model(params), batch)  # [T + 1, B, A]
        target_q = jax.lax.stop_gradient(replay_q_values(self.model(target_params), batch))
        steps = {k: batch[k].T for k in ("action", "reward", "terminated", "truncated", "final_value")}
        targets = sequence_targets(
            jax.lax.stop_gradient(q_values[1:]),
            target_q[1:],
            steps["reward"],
            steps["terminated"],
            steps["truncated"],
            steps["final_value"],
            gamma=self.config.gamma,
            lam=settings.lam,
            double_q=settings.double_q,
        )
        chosen = jnp.take_along_axis(q_values[:-1], steps["action"][..., None], axis=-1)[..., 0]
        return 0.5 * jnp.mean((chosen - targets) ** 2), chosen.mean()

    def learn(self, params, opt_state, target_params, replay: Replay, key):
        """``updates_per_rollout`` gradient steps on fresh uniform samples; mean loss and Q."""
        settings = self.config.dqn
        grad_fn = eqx.filter_value_and_grad(self.loss, has_aux=True)

        def gradient_step(carry, key):
            params, opt_state = carry
            batch = replay_sample(replay, key, settings.batch_sequences)
            (loss, q_mean), grads = grad_fn(params, target_params, batch)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, q_mean)

        keys = jax.random.split(key, settings.updates_per_rollout)
        (params, opt_state), (losses, q_means) = jax.lax.scan(gradient_step, (params, opt_state), keys)
        return params, opt_state, losses.mean(), q_means.mean()

    def update(self, state):
        settings = self.config.dqn
        key, collect_key, learn_key = jax.random.split(state.key, 3)
        epsilon = self.epsilon(state.update)
        start_carry = state.actor.carry
        actor, transitions = q_rollout(self, state.params, state.actor, collect_key, epsilon)
        replay = replay_insert(state.extra.replay, rollout_items(transitions, actor, start_carry))
        learning = jnp.logical_and(
            state.update + 1 >= settings.learning_starts, replay.size >= settings.batch_sequences
        )

        def learn(_):
            return self.learn(state.params, state.opt_state, state.extra.target_params, replay, learn_key)

        def skip(_):
            zero = jnp.float32(0.0)
            return state.params, state.opt_state, zero, zero

        # Under vmap over seeds the predicate is batched and cond becomes a select (both branches
        # run); the skipped branch's outputs are simply discarded.
        params, opt_state, td_loss, q_mean = jax.lax.cond(learning, learn, skip, None)
        updates_done = state.update + 1
        target_params = target_update(
            state.extra.target_params, params, updates_done, settings.target_update_every, settings.tau
        )
        metrics = {
            "td_loss": td_loss,
            "q_mean": q_mean,
            "epsilon": epsilon,
            "buffer_size": replay.size.astype(jnp.float32),
            "learning": learning.astype(jnp.float32),
            **episode_metrics(transitions),
        }
        new_state = TrainState(params, opt_state, actor, key, updates_done, DQNExtra(replay, target_params))
        return new_state, metrics


def first_learning_update(learning_starts: int, batch_sequences: int, num_envs: int) -> int:
    """Index of the first update that learns: ``learning_starts`` rollouts are in and the buffer
    (``num_envs`` sequences per rollout) holds ``batch_sequences``."""
    rollouts = max(learning_starts, math.ceil(batch_sequences / num_envs), 1)
    return rollouts - 1


def _validate(config) -> None:
    """Reject DQN settings that cannot work, with the reason."""
    settings = config.dqn
    for name in ("buffer_sequences", "batch_sequences", "updates_per_rollout", "target_update_every"):
        if getattr(settings, name) < 1:
            raise ValueError(f"dqn.{name} must be >= 1, got {getattr(settings, name)}")
    if settings.learning_starts < 0:
        raise ValueError(f"dqn.learning_starts must be >= 0, got {settings.learning_starts}")
    if settings.buffer_sequences < config.num_envs:
        raise ValueError(
            f"dqn.buffer_sequences ({settings.buffer_sequences}) must be >= num_envs ({config.num_envs}): "
            "every rollout inserts one sequence per env"
        )
    if settings.batch_sequences > settings.buffer_sequences:
        raise ValueError(
            f"dqn.batch_sequences ({settings.batch_sequences}) must be <= dqn.buffer_sequences "
            f"({settings.buffer_sequences})"
        )
    if not 0.0 < settings.tau <= 1.0:
        raise ValueError(f"dqn.tau must be in (0, 1], got {settings.tau}")
    if not 0.0 <= settings.lam <= 1.0:
        raise ValueError(f"dqn.lam must be in [0, 1], got {settings.lam}")
    for name in ("eps_start", "eps_finish"):
        if not 0.0 <= getattr(settings, name) <= 1.0:
            raise ValueError(f"dqn.{name} must be in [0, 1], got {getattr(settings, name)}")
    if settings.eps_decay < 0.0:
        raise ValueError(f"dqn.eps_decay must be >= 0, got {settings.eps_decay}")


ALGORITHM = DQN
