"""What every learning algorithm provides, and ``make_train``.

An :class:`Algorithm` is built from a :class:`TrainConfig` and is a bundle of pure functions
over a :class:`TrainState` (arrays only, so it can be jitted, vmapped over seeds, scanned and
serialised):

* ``init(key) -> TrainState`` and ``update(state) -> (state, metrics)``: one rollout plus
  learning on it;
* ``greedy_step(params, carry, obs, start, prev_action, prev_reward) -> (carry, action)``: the
  evaluation policy, batched over envs;
* ``sequence_outputs(params, obs, start, prev_action, prev_reward) -> out[T, A]``: Q-values
  (``kind == "q"``) or action probabilities (``kind == "policy"``) along one env's sequence, from
  a fresh memory: what the memory analysis differentiates.

``make_train(config)(key)`` runs every update in one program (purejaxrl style); the run
loop in :mod:`popgym_arcade.runs.train` runs the same ``update`` in jitted chunks instead, to
log, checkpoint and resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import optax

from popgym_arcade.agents.config import TrainConfig
from popgym_arcade.environments.struct import pytree
from popgym_arcade.registration import make
from popgym_arcade.wrappers import LogWrapper


@pytree
class TrainState:
    """Everything one seed's training carries: parameters, optimiser, actors, key, counters.

    ``params`` holds the array leaves of the algorithm's model (``None`` elsewhere; the static
    rest lives on the :class:`Algorithm`); ``extra`` is algorithm-specific (e.g. a replay buffer
    or target parameters).
    """

    params: Any
    opt_state: Any
    actor: Any
    key: jax.Array
    update: jax.Array
    extra: Any = None


class Algorithm:
    """Base class: builds the env and the model's static structure from the config."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "q"

    def __init__(self, config: TrainConfig):
        self.config = config
        self.env = LogWrapper(make(config.env, partial_obs=config.partial, obs_size=config.obs_size)[0])
        self.num_actions = self.env.num_actions
        _, self.static = eqx.partition(self.build_model(jax.random.PRNGKey(0)), eqx.is_array)

    # -------------------------------------------------------------- what a subclass implements
    def build_model(self, key: jax.Array) -> eqx.Module:
        """The algorithm's networks as one ``equinox.Module``."""
        raise NotImplementedError

    def init(self, key: jax.Array) -> TrainState:
        """A fresh :class:`TrainState` for one seed."""
        raise NotImplementedError

    def update(self, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        """One rollout and the learning on it; scalar metrics."""
        raise NotImplementedError

    def initial_carry(self, params: Any, batch_size: int) -> Any:
        """The model's memory state before an episode, batched over ``batch_size`` envs."""
        raise NotImplementedError

    def greedy_step(self, params, carry, obs, start, prev_action, prev_reward):
        """The evaluation policy over a batch of envs: ``(carry, action)``."""
        raise NotImplementedError

    def sequence_outputs(self, params, obs, start, prev_action, prev_reward) -> jax.Array:
        """Q-values or action probabilities ``[T, A]`` along one sequence, from a fresh memory."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------- helpers
    def model(self, params: Any) -> eqx.Module:
        """The model with parameters ``params``."""
        return eqx.combine(params, self.static)

    def init_params(self, key: jax.Array) -> Any:
        """Freshly initialised parameters (array leaves of :meth:`build_model`)."""
        return eqx.filter(self.build_model(key), eqx.is_array)

    def learning_rate(self, lr: float, decay: bool, optimiser_steps: int) -> optax.Schedule | float:
        """Constant ``lr``, or linear decay to 0 over ``optimiser_steps``."""
        return optax.linear_schedule(lr, 0.0, max(optimiser_steps, 1)) if decay else lr


_ALGORITHM_MODULES = {
    "pqn": "popgym_arcade.agents.pqn",
    "ppo": "popgym_arcade.agents.ppo",
    "dqn": "popgym_arcade.agents.dqn",
}


def make_algorithm(config: TrainConfig) -> Algorithm:
    """The :class:`Algorithm` named by ``config.algo`` (each module defines ``ALGORITHM``)."""
    import importlib

    return importlib.import_module(_ALGORITHM_MODULES[config.algo]).ALGORITHM(config)


def make_train(config: TrainConfig) -> Callable[[jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
    """``train(key) -> (final state, metrics per update)``: the whole run as one pure function.

    Jit it, and ``jax.vmap`` it over a batch of keys to train many seeds in one program::

        train = jax.jit(jax.vmap(make_train(config)))
        states, metrics = train(jax.random.split(jax.random.PRNGKey(0), 4))
    """
    algorithm = make_algorithm(config)

    def train(key: jax.Array):
        def step(state, _):
            return algorithm.update(state)

        return jax.lax.scan(step, algorithm.init(key), None, length=config.num_updates)

    return train
