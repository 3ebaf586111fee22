"""PQN: parallel Q(lambda) with any memory model (Gallici et al., 2024; the paper's main learner).

Each update:

1. act epsilon-greedily for ``rollout_steps`` steps in ``num_envs`` envs, keeping each env's
   memory state at the start of the rollout;
2. for ``epochs`` passes, split the envs into ``minibatches`` groups; for each group re-run the
   network over the whole sequence (``rollout_steps + 1`` frames: the extra frame bootstraps the
   last step) from the stored start state, memory resetting at episode starts, and take one
   gradient step on ``0.5 * mean((Q(o_t, a_t) - G_t)^2)``;
3. the targets ``G_t`` are Q(lambda) returns (:func:`~popgym_arcade.agents.returns.lambda_returns`)
   of ``max_a Q`` from the same forward pass with gradients stopped; a truncated step bootstraps
   from its episode's last frame as seen at acting time, a terminated one from 0.

There is no replay and no target network; LayerNorm in the head keeps it stable. One code path
serves every memory model: ``MLP`` is a memory model without memory, so the baseline has the same
trunk, head and inputs as the memory agents and a comparison measures memory alone.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from popgym_arcade.agents.algorithm import Algorithm, TrainState
from popgym_arcade.agents.networks import Network, batch_carry
from popgym_arcade.agents.returns import bootstrap_values, lambda_returns
from popgym_arcade.agents.rollout import (
    collect,
    env_minibatches,
    episode_metrics,
    init_actor,
    linear_schedule,
    network_step,
    training_sequences,
)


def epsilon_greedy(key: jax.Array, q_values: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Per row of ``q_values[E, A]``: a uniform action with probability ``epsilon``, else argmax."""
    explore_key, action_key = jax.random.split(key)
    batch, num_actions = q_values.shape
    explore = jax.random.uniform(explore_key, (batch,)) < epsilon
    random_action = jax.random.randint(action_key, (batch,), 0, num_actions)
    return jnp.where(explore, random_action, jnp.argmax(q_values, axis=-1)).astype(jnp.int32)


def q_rollout(algorithm: Algorithm, params, actor, key: jax.Array, epsilon: jax.Array):
    """Epsilon-greedy acting for Q-learners (PQN, DQN): ``(next actor state, transitions)``.

    Truncated steps keep ``max_a Q`` of their episode's final frame (unless the config turns
    truncation bootstrapping off).
    """
    network = algorithm.model(params)

    def act(carry, obs, start, prev_action, prev_reward, key):
        carry, q_values = network_step(network, carry, obs, start, prev_action, prev_reward)
        return carry, epsilon_greedy(key, q_values, epsilon), ()

    def final_value(carry, final_obs, action, reward):
        not_start = jnp.zeros(final_obs.shape[0], bool)
        return network_step(network, carry, final_obs, not_start, action, reward)[1].max(axis=-1)

    config = algorithm.config
    bootstrap = final_value if config.bootstrap_truncated else None
    return collect(algorithm.env, act, bootstrap, actor, key, config.rollout_steps)


def sequence_q_values(network: Network, carry, sequences: dict[str, jax.Array]) -> jax.Array:
    """Q-values ``[T, E, A]`` of a batch of sequences ``[T, E, ...]`` from per-env carries."""

    def one_env(c, obs, start, prev_action, prev_reward):
        return network(c, obs, start, prev_action, prev_reward)[1]

    keys = ("obs", "start", "prev_action", "prev_reward")
    return jax.vmap(one_env, in_axes=(0, 1, 1, 1, 1), out_axes=1)(carry, *(sequences[k] for k in keys))


class PQN(Algorithm):
    """Parallel Q(lambda) learner; reads ``config.pqn`` (:class:`~popgym_arcade.agents.config.PQNConfig`)."""

    name = "pqn"
    kind = "q"

    def __init__(self, config):
        super().__init__(config)
        settings = config.pqn
        env_minibatches(jax.random.PRNGKey(0), config.num_envs, settings.minibatches)  # validates
        optimiser_steps = config.num_updates * settings.epochs * settings.minibatches
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
        network_key, env_key, key = jax.random.split(key, 3)
        params = self.init_params(network_key)
        actor = init_actor(
            self.env, self.initial_carry(params, self.config.num_envs), env_key, self.config.num_envs
        )
        return TrainState(params, self.optimizer.init(params), actor, key, jnp.int32(0))

    def greedy_step(self, params, carry, obs, start, prev_action, prev_reward):
        carry, q_values = network_step(self.model(params), carry, obs, start, prev_action, prev_reward)
        return carry, jnp.argmax(q_values, axis=-1).astype(jnp.int32)

    def sequence_outputs(self, params, obs, start, prev_action, prev_reward):
        network = self.model(params)
        return network(network.initialize_carry(), obs, start, prev_action, prev_reward)[1]

    def loss(self, params, start_carry, sequences, transitions):
        """TD loss of one minibatch of env sequences, and the mean chosen Q."""
        settings, gamma = self.config.pqn, self.config.gamma
        q_values = sequence_q_values(self.model(params), start_carry, sequences)  # [T + 1, B, A]
        next_max = jax.lax.stop_gradient(q_values[1:]).max(axis=-1)
        next_values = bootstrap_values(
            next_max, transitions.final_value, transitions.terminated, transitions.truncated
        )
        targets = lambda_returns(
            transitions.reward * settings.reward_scale,
            next_values,
            1.0 - transitions.done.astype(jnp.float32),
            gamma,
            settings.lam,
        )
        chosen = jnp.take_along_axis(q_values[:-1], transitions.action[..., None], axis=-1)[..., 0]
        return 0.5 * jnp.mean((chosen - targets) ** 2), chosen.mean()

    def update(self, state):
        config, settings = self.config, self.config.pqn
        key, collect_key, learn_key = jax.random.split(state.key, 3)
        epsilon = self.epsilon(state.update)
        start_carry = state.actor.carry
        actor, transitions = q_rollout(self, state.params, state.actor, collect_key, epsilon)
        sequences = training_sequences(transitions, actor)

        def minibatch_step(carry, env_ids):
            params, opt_state = carry
            pick = lambda tree, axis: jax.tree.map(lambda x: jnp.take(x, env_ids, axis=axis), tree)
            grad_fn = eqx.filter_value_and_grad(self.loss, has_aux=True)
            (loss, q_mean), grads = grad_fn(
                params, pick(start_carry, 0), pick(sequences, 1), pick(transitions, 1)
            )
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, q_mean)

        def epoch(carry, key):
            groups = env_minibatches(key, config.num_envs, settings.minibatches)
            return jax.lax.scan(minibatch_step, carry, groups)

        (params, opt_state), (losses, q_means) = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(learn_key, settings.epochs)
        )
        metrics = {
            "td_loss": losses.mean(),
            "q_mean": q_means.mean(),
            "epsilon": epsilon,
            **episode_metrics(transitions),
        }
        new_state = TrainState(params, opt_state, actor, key, state.update + 1)
        return new_state, metrics


ALGORITHM = PQN
