"""A trained agent from a run folder, as a policy (for videos) and a sequence function (for analysis)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from popgym_arcade.agents.algorithm import Algorithm, make_algorithm
from popgym_arcade.runs.train import SIDECAR_FILE, RunError, load_checkpoint, read_config, seed_keys


@dataclass(frozen=True)
class AgentPolicy:
    """One seed of a trained run, acting greedily in a single env.

    Implements the policy protocol of :mod:`popgym_arcade.record` (``init``/``act``) and the
    sequence function the analysis differentiates (:meth:`apply`).

    Attributes:
        algorithm: the run's algorithm (config, env, network structure).
        params: this seed's parameters.
        env_id, partial, obs_size: the env and twin the agent was trained on.
        kind: ``"q"`` (outputs are Q-values) or ``"policy"`` (action probabilities).
        seed: index of the seed within the run.
    """

    algorithm: Algorithm
    params: Any
    env_id: str
    partial: bool
    obs_size: int
    kind: str
    seed: int

    def init(self, key: jax.Array):
        """Fresh memory and a zero previous action."""
        return self.algorithm.initial_carry(self.params, 1), jnp.zeros((1,), jnp.int32)

    def act(self, carry, obs: jax.Array, start: jax.Array, key: jax.Array):
        """``(carry, greedy action)`` for one frame ``obs[S, S, 3]``."""
        memory, prev_action = carry
        start = jnp.reshape(start, (1,))
        memory, action = self.algorithm.greedy_step(
            self.params, memory, obs[None], start, prev_action, jnp.zeros((1,), jnp.float32)
        )
        return (memory, action), action[0]

    def apply(self, obs: jax.Array, start: jax.Array, prev_action: jax.Array) -> jax.Array:
        """Outputs ``[T, A]`` along one sequence from a fresh memory (``obs`` may be float 0..255)."""
        return self.algorithm.sequence_outputs(
            self.params, obs, start, prev_action, jnp.zeros(obs.shape[0], jnp.float32)
        )


def load_params(run_dir: str | os.PathLike) -> tuple[Algorithm, Any]:
    """The algorithm of a run folder and its latest parameters, stacked over seeds."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if not (run_dir / SIDECAR_FILE).exists():
        raise RunError(f"{run_dir} has no checkpoint yet (train it first)")
    algorithm = make_algorithm(config)
    like = jax.eval_shape(jax.vmap(algorithm.init), seed_keys(config))
    state, _ = load_checkpoint(run_dir, config, like)
    return algorithm, state.params


def load_policy(run_dir: str | os.PathLike, seed: int = 0) -> AgentPolicy:
    """Seed ``seed`` of the run in ``run_dir`` as an :class:`AgentPolicy`."""
    algorithm, params = load_params(run_dir)
    config = algorithm.config
    if not 0 <= seed < config.seeds:
        raise RunError(f"seed must be in 0..{config.seeds - 1} for {run_dir}, got {seed}")
    if config.network.previous_reward:
        raise RunError("policies that read the previous reward cannot be replayed from frames alone")
    one_seed = jax.tree.map(lambda leaf: leaf[seed], params)
    return AgentPolicy(algorithm, one_seed, config.env, config.partial, config.obs_size, algorithm.kind, seed)
