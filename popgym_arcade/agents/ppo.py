"""PPO with GAE and a clipped value loss, with any memory model (Schulman et al., 2017).

Each update:

1. act for ``rollout_steps`` steps in ``num_envs`` envs, sampling from the categorical policy and
   storing the action's log-probability and the critic's value at acting time; keep each env's
   memory state at the start of the rollout;
2. compute advantages and value targets once, with the acting parameters
   (:func:`~popgym_arcade.agents.returns.gae`): ``V(o_{t+1})`` is the stored value of step
   ``t + 1`` and, for the rollout's last step, the value of the frame after the rollout (one
   extra network step from the next actor state). A terminated step bootstraps from 0, a
   truncated one from its episode's last frame as seen at acting time;
3. for ``epochs`` passes, split the envs into ``minibatches`` groups; for each group re-run the
   network over the whole sequence from the stored start state (memory resets at episode
   starts) and take one gradient step on the clipped surrogate (:func:`ppo_loss`), with
   advantages normalised per minibatch.

The model (:class:`ActorCritic`) is two towers (actor and critic, each encoder -> memory -> head)
or, with ``shared_trunk``, one tower whose head outputs both. As with PQN, ``MLP`` is a memory
model without memory, so the memoryless baseline has the same trunk, head and inputs.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from popgym_arcade.agents.algorithm import Algorithm, TrainState
from popgym_arcade.agents.networks import Network, batch_carry
from popgym_arcade.agents.returns import bootstrap_values, gae
from popgym_arcade.agents.rollout import (
    ActorState,
    Transition,
    collect,
    env_minibatches,
    episode_metrics,
    init_actor,
    network_step,
)


class ActorCritic(eqx.Module):
    """Policy logits and state value over one env's sequence.

    ``model(carry, obs, start, prev_action, prev_reward) -> (carry, out[T, A + 1])``: the first
    ``A`` columns of ``out`` are the policy's logits, the last is the value (one array, so the
    shared helpers that step a :class:`~popgym_arcade.agents.networks.Network` step this too).
    Two towers (carry ``(actor_carry, critic_carry)``) or, when ``critic`` is ``None``, one
    shared tower with ``A + 1`` outputs (carry: its carry).
    """

    actor: Network
    critic: Network | None

    def __init__(self, config, num_actions: int, shared_trunk: bool, *, key: jax.Array):
        actor_key, critic_key = jax.random.split(key)
        network, obs_size = config.network, config.obs_size
        if shared_trunk:
            self.actor = Network(network, obs_size, num_actions + 1, num_actions, key=actor_key)
            self.critic = None
        else:
            # Distinct keys: the published code gave both towers identical initial weights.
            self.actor = Network(network, obs_size, num_actions, num_actions, key=actor_key)
            self.critic = Network(network, obs_size, 1, num_actions, key=critic_key)

    def initialize_carry(self):
        """The memory state before an episode's first step."""
        if self.critic is None:
            return self.actor.initialize_carry()
        return self.actor.initialize_carry(), self.critic.initialize_carry()

    def __call__(self, carry, obs, start, prev_action, prev_reward):
        if self.critic is None:
            return self.actor(carry, obs, start, prev_action, prev_reward)
        actor_carry, logits = self.actor(carry[0], obs, start, prev_action, prev_reward)
        critic_carry, value = self.critic(carry[1], obs, start, prev_action, prev_reward)
        return (actor_carry, critic_carry), jnp.concatenate([logits, value], axis=-1)

    def value(self, carry, obs, start, prev_action, prev_reward) -> jax.Array:
        """Values ``[T]`` only (with two towers the actor is not run)."""
        if self.critic is None:
            return self.actor(carry, obs, start, prev_action, prev_reward)[1][:, -1]
        return self.critic(carry[1], obs, start, prev_action, prev_reward)[1][:, 0]


def split_outputs(out: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``out[..., A + 1]`` of :class:`ActorCritic` -> ``(logits[..., A], value[...])``."""
    return out[..., :-1], out[..., -1]


def sequence_outputs_batch(model: ActorCritic, carry, obs, start, prev_action, prev_reward) -> jax.Array:
    """``out[T, E, A + 1]`` for a batch of sequences ``[T, E, ...]`` from per-env carries ``[E]``."""

    def one_env(c, o, s, a, r):
        return model(c, o, s, a, r)[1]

    return jax.vmap(one_env, in_axes=(0, 1, 1, 1, 1), out_axes=1)(carry, obs, start, prev_action, prev_reward)


def normalise(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``(x - mean) / (std + eps)`` over all of ``x``."""
    return (x - x.mean()) / (x.std() + eps)


def ppo_loss(
    logits: jax.Array,
    values: jax.Array,
    actions: jax.Array,
    old_log_probs: jax.Array,
    old_values: jax.Array,
    advantages: jax.Array,
    targets: jax.Array,
    clip_eps: float,
    vf_coef: float,
    ent_coef: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The PPO objective on a batch of steps (any shape ``[...]``, logits ``[..., A]``).

    ``actor = -mean(min(r A, clip(r, 1 - eps, 1 + eps) A))`` with ``r = pi(a) / pi_old(a)``;
    ``value = 0.5 * mean(max((V - G)^2, (V_old + clip(V - V_old, -eps, eps) - G)^2))``;
    ``total = actor + vf_coef * value - ent_coef * entropy``. ``advantages`` are used as given
    (normalise them first). Returns ``(total, metrics)`` with ``approx_kl`` the
    ``mean((r - 1) - log r)`` estimator of KL(pi_old || pi) (zero iff the policies agree on the
    batch) and ``clip_fraction`` the share of steps with ``|r - 1| > eps``.
    """
    log_probs_all = jax.nn.log_softmax(logits, axis=-1)
    log_probs = jnp.take_along_axis(log_probs_all, actions[..., None], axis=-1)[..., 0]
    log_ratio = log_probs - old_log_probs
    ratio = jnp.exp(log_ratio)

    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    actor_loss = -jnp.minimum(unclipped, clipped).mean()

    # The value may move at most clip_eps from its acting-time estimate before the loss stops
    # rewarding the move (the pessimistic max keeps the worse of the two errors).
    values_clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    value_loss = 0.5 * jnp.maximum((values - targets) ** 2, (values_clipped - targets) ** 2).mean()

    entropy = -(jnp.exp(log_probs_all) * log_probs_all).sum(axis=-1).mean()
    total = actor_loss + vf_coef * value_loss - ent_coef * entropy
    metrics = {
        "total_loss": total,
        "actor_loss": actor_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
        "clip_fraction": (jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32).mean(),
    }
    return total, metrics


class PPO(Algorithm):
    """PPO learner; reads ``config.ppo`` (:class:`~popgym_arcade.agents.config.PPOConfig`)."""

    name = "ppo"
    kind = "policy"

    def __init__(self, config):
        super().__init__(config)
        settings = config.ppo
        env_minibatches(jax.random.PRNGKey(0), config.num_envs, settings.minibatches)  # validates
        optimiser_steps = config.num_updates * settings.epochs * settings.minibatches
        self.optimizer = optax.chain(
            optax.clip_by_global_norm(settings.max_grad_norm),
            optax.adam(self.learning_rate(settings.lr, settings.lr_decay, optimiser_steps), eps=1e-5),
        )

    def build_model(self, key):
        return ActorCritic(self.config, self.num_actions, self.config.ppo.shared_trunk, key=key)

    def initial_carry(self, params, batch_size):
        return batch_carry(self.model(params), batch_size)

    def init(self, key):
        network_key, env_key, key = jax.random.split(key, 3)
        params = self.init_params(network_key)
        actor = init_actor(
            self.env, self.initial_carry(params, self.config.num_envs), env_key, self.config.num_envs
        )
        return TrainState(params, self.optimizer.init(params), actor, key, jnp.int32(0))

    def greedy_step(self, params, carry, obs, start, prev_action, prev_reward):
        carry, out = network_step(self.model(params), carry, obs, start, prev_action, prev_reward)
        return carry, jnp.argmax(split_outputs(out)[0], axis=-1).astype(jnp.int32)

    def sequence_outputs(self, params, obs, start, prev_action, prev_reward):
        model = self.model(params)
        out = model(model.initialize_carry(), obs, start, prev_action, prev_reward)[1]
        return jax.nn.softmax(split_outputs(out)[0], axis=-1)

    # ------------------------------------------------------------------ the pieces of update
    def rollout(self, params, actor: ActorState, key: jax.Array) -> tuple[ActorState, Transition]:
        """Act with the sampled policy; ``extras`` holds ``log_prob`` and ``value`` per step."""
        model = self.model(params)

        def act(carry, obs, start, prev_action, prev_reward, key):
            carry, out = network_step(model, carry, obs, start, prev_action, prev_reward)
            logits, value = split_outputs(out)
            action = jax.random.categorical(key, logits).astype(jnp.int32)
            log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
            return carry, action, {"log_prob": log_prob, "value": value}

        def final_value(carry, final_obs, action, reward):
            # The episode's last frame continues the episode: not a start, with this step's
            # action and reward as its previous ones.
            not_start = jnp.zeros(final_obs.shape[0], bool)
            return self._values_step(model, carry, final_obs, not_start, action, reward)

        boot = final_value if self.config.bootstrap_truncated else None
        return collect(self.env, act, boot, actor, key, self.config.rollout_steps)

    def advantages(
        self, params, transitions: Transition, next_actor: ActorState
    ) -> tuple[jax.Array, jax.Array]:
        """GAE advantages and value targets ``[T, E]`` from the acting-time values.

        ``V(o_{t+1})`` is the stored value of step ``t + 1``; for the last step it is the value
        of the frame after the rollout, from one network step on ``next_actor`` with ``params``
        (the acting parameters, so every value in the estimate comes from the same critic).
        """
        values = transitions.extras["value"]
        last = next_actor
        after = self._values_step(
            self.model(params), last.carry, last.obs, last.start, last.prev_action, last.prev_reward
        )
        values_next_obs = jnp.concatenate([values[1:], after[None]], axis=0)
        next_values = bootstrap_values(
            values_next_obs, transitions.final_value, transitions.terminated, transitions.truncated
        )
        continues = 1.0 - transitions.done.astype(jnp.float32)
        return gae(
            transitions.reward, values, next_values, continues, self.config.gamma, self.config.ppo.gae_lambda
        )

    def loss(self, params, start_carry, transitions: Transition, advantages, targets):
        """PPO loss of one minibatch of env sequences ``[T, B]`` re-run from ``start_carry[B]``."""
        settings = self.config.ppo
        t = transitions
        out = sequence_outputs_batch(
            self.model(params), start_carry, t.obs, t.start, t.prev_action, t.prev_reward
        )
        logits, values = split_outputs(out)
        return ppo_loss(
            logits,
            values,
            t.action,
            t.extras["log_prob"],
            t.extras["value"],
            normalise(advantages),
            targets,
            settings.clip_eps,
            settings.vf_coef,
            settings.ent_coef,
        )

    def update(self, state):
        config, settings = self.config, self.config.ppo
        key, collect_key, learn_key = jax.random.split(state.key, 3)
        start_carry = state.actor.carry
        actor, transitions = self.rollout(state.params, state.actor, collect_key)
        advantages, targets = self.advantages(state.params, transitions, actor)

        def minibatch_step(carry, env_ids):
            params, opt_state = carry
            pick = lambda tree, axis: jax.tree.map(lambda x: jnp.take(x, env_ids, axis=axis), tree)
            grad_fn = eqx.filter_value_and_grad(self.loss, has_aux=True)
            (_, metrics), grads = grad_fn(
                params, pick(start_carry, 0), pick(transitions, 1), pick(advantages, 1), pick(targets, 1)
            )
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        def epoch(carry, key):
            groups = env_minibatches(key, config.num_envs, settings.minibatches)
            return jax.lax.scan(minibatch_step, carry, groups)

        (params, opt_state), loss_metrics = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(learn_key, settings.epochs)
        )
        metrics = {**jax.tree.map(jnp.mean, loss_metrics), **episode_metrics(transitions)}
        return TrainState(params, opt_state, actor, key, state.update + 1), metrics

    @staticmethod
    def _values_step(model: ActorCritic, carry, obs, start, prev_action, prev_reward) -> jax.Array:
        """Values ``[E]`` of one step for a batch of envs (the actor tower is not run)."""

        def one_env(c, o, s, a, r):
            return model.value(c, o[None], s[None], a[None], r[None])[0]

        return jax.vmap(one_env)(carry, obs, start, prev_action, prev_reward)


ALGORITHM = PPO
