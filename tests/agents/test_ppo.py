"""PPO: the loss on hand-made numbers, acting/training consistency, and tiny end-to-end runs.

GAE itself is tested in ``test_returns.py``. Compilation dominates the time, so each program is
compiled once per module: per config, the whole ``make_train`` vmapped over two seeds together
with the evaluation-side outputs of the trained agent; and, for the memory config only, a probe
of the pieces of one update evaluated at the acting parameters.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.agents.algorithm import make_algorithm, make_train
from popgym_arcade.agents.config import NetworkConfig, PPOConfig, TrainConfig
from popgym_arcade.agents.ppo import PPO, normalise, ppo_loss, sequence_outputs_batch, split_outputs

pytestmark = pytest.mark.xdist_group("agents-ppo")

NUM_ENVS, ROLLOUT, SEEDS = 2, 32, 2  # 32 steps: CartPoleEasy episodes end inside the rollout

# Two configs cover both memories and both tower layouts without compiling all four pairs.
CASES = [("MLP", True), ("GRU", False)]


def tiny_config(memory: str, shared_trunk: bool) -> TrainConfig:
    network = NetworkConfig(
        encoder="small",
        features=32,
        memory=memory,
        memory_hidden=32,
        memory_output=32,
        memory_layers=1,
        head_hidden=32,
    )
    return TrainConfig(
        algo="ppo",
        env="CartPoleEasy",
        steps=2 * NUM_ENVS * ROLLOUT,  # two updates
        num_envs=NUM_ENVS,
        rollout_steps=ROLLOUT,
        network=network,
        ppo=PPOConfig(minibatches=2, epochs=1, shared_trunk=shared_trunk),
    )


def train_and_evaluate(config: TrainConfig, algorithm: PPO, keys: jax.Array) -> dict:
    """Train every seed; then seed 0's policy on the frames its envs ended on, read as a sequence."""
    initial = jax.vmap(algorithm.init)(keys).params
    states, metrics = jax.vmap(make_train(config))(keys)
    params = jax.tree.map(lambda leaf: leaf[0], states.params)
    obs, prev_action, prev_reward = (
        states.actor.obs[0],
        states.actor.prev_action[0],
        states.actor.prev_reward[0],
    )
    # Every frame a fresh episode for the greedy step, so env 0 matches the sequence's first step.
    fresh = jnp.ones(NUM_ENVS, bool)
    sequence_start = jnp.arange(NUM_ENVS) == 0
    probs = algorithm.sequence_outputs(params, obs, sequence_start, prev_action, prev_reward)
    _, greedy = algorithm.greedy_step(
        params, algorithm.initial_carry(params, NUM_ENVS), obs, fresh, prev_action, prev_reward
    )
    return {"initial": initial, "states": states, "metrics": metrics, "probs": probs, "greedy": greedy}


def probe(algorithm: PPO, key: jax.Array) -> dict:
    """The pieces of a first update, with the loss evaluated at the acting parameters."""
    init_key, rollout_key = jax.random.split(key)
    state = algorithm.init(init_key)
    actor, transitions = algorithm.rollout(state.params, state.actor, rollout_key)
    advantages, targets = algorithm.advantages(state.params, transitions, actor)
    t = transitions
    out = sequence_outputs_batch(
        algorithm.model(state.params), state.actor.carry, t.obs, t.start, t.prev_action, t.prev_reward
    )
    logits, values = split_outputs(out)
    log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), t.action[..., None], axis=-1)[..., 0]
    _, loss_metrics = algorithm.loss(state.params, state.actor.carry, transitions, advantages, targets)
    return {
        "transitions": transitions,
        "log_probs": log_probs,
        "values": values,
        "loss_metrics": loss_metrics,
    }


@pytest.fixture(
    scope="module", params=CASES, ids=lambda case: f"{case[0]}-{'shared' if case[1] else 'towers'}"
)
def case(request):
    config = tiny_config(*request.param)
    algorithm = make_algorithm(config)
    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)
    result = jax.jit(lambda k: train_and_evaluate(config, algorithm, k))(keys)
    return {"algorithm": algorithm, **result}


@pytest.fixture(scope="module")
def probed():
    """The memory config with two towers: the carry is a pair and memory resets mid-sequence."""
    algorithm = make_algorithm(tiny_config("GRU", False))
    return jax.jit(lambda key: probe(algorithm, key))(jax.random.PRNGKey(1))


def test_training_runs_vmapped_over_seeds(case):
    metrics = case["metrics"]
    expected = {"total_loss", "actor_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "episodes"}
    assert expected <= set(metrics)
    for name, value in metrics.items():
        assert value.shape == (SEEDS, 2), name
        assert np.all(np.isfinite(value)), name
    assert np.all(np.asarray(metrics["entropy"]) > 0)
    assert np.all(np.asarray(metrics["approx_kl"]) >= -1e-6)
    assert np.all(np.asarray(case["states"].update) == 2)


def _array_leaves(tree) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))]


def test_training_changes_parameters_and_seeds_differ(case):
    trained, initial = _array_leaves(case["states"].params), _array_leaves(case["initial"])
    for seed in range(SEEDS):
        assert any(np.any(new[seed] != old[seed]) for new, old in zip(trained, initial, strict=True))
    assert any(np.any(leaf[0] != leaf[1]) for leaf in trained)


def test_sequence_outputs_are_probabilities(case):
    probs = case["probs"]
    assert probs.shape == (NUM_ENVS, case["algorithm"].num_actions)
    assert np.all(np.asarray(probs) >= 0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


def test_greedy_step_takes_the_most_probable_action(case):
    greedy = np.asarray(case["greedy"])
    assert greedy.shape == (NUM_ENVS,) and greedy.dtype == np.int32
    assert np.all((greedy >= 0) & (greedy < case["algorithm"].num_actions))
    # Env 0's frame starts a fresh episode in both: the greedy action is the argmax of its policy.
    assert greedy[0] == int(jnp.argmax(case["probs"][0]))


def test_training_forward_reproduces_acting(probed):
    """Same params: re-running the sequence gives the acting-time log-probs and values (ratio 1)."""
    transitions = probed["transitions"]
    # An episode boundary inside the rollout, so the memory reset at start flags is exercised.
    assert bool(jnp.any(transitions.start[1:]))
    np.testing.assert_allclose(probed["log_probs"], transitions.extras["log_prob"], atol=1e-5)
    np.testing.assert_allclose(probed["values"], transitions.extras["value"], atol=1e-5)
    loss_metrics = probed["loss_metrics"]
    assert abs(float(loss_metrics["approx_kl"])) < 1e-6
    assert float(loss_metrics["clip_fraction"]) == 0.0


# ------------------------------------------------------------------------ the loss by hand
def _loss(**overrides):
    args = {"clip_eps": 0.2, "vf_coef": 0.5, "ent_coef": 0.01, **overrides}
    return ppo_loss(**{k: jnp.asarray(v) if isinstance(v, list | np.ndarray) else v for k, v in args.items()})


def test_ratio_one_when_policy_unchanged():
    logits = jnp.array([[0.3, -1.0, 2.0], [1.0, 1.0, 0.0], [-0.5, 0.2, 0.1]])
    actions = jnp.array([2, 0, 1])
    old_log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[:, None], axis=-1)[:, 0]
    advantages = jnp.array([1.5, -2.0, 0.5])
    values, targets = jnp.array([0.1, 0.2, 0.3]), jnp.array([1.0, -1.0, 0.0])
    total, m = _loss(
        logits=logits,
        values=values,
        actions=actions,
        old_log_probs=old_log_probs,
        old_values=values,
        advantages=advantages,
        targets=targets,
    )
    # ratio == 1 exactly: both surrogates are the advantage, nothing is clipped, KL is 0.
    assert float(m["approx_kl"]) == 0.0
    assert float(m["clip_fraction"]) == 0.0
    assert float(m["actor_loss"]) == pytest.approx(-float(advantages.mean()), abs=1e-7)
    assert float(m["value_loss"]) == pytest.approx(0.5 * float(((values - targets) ** 2).mean()), rel=1e-6)
    expected_total = m["actor_loss"] + 0.5 * m["value_loss"] - 0.01 * m["entropy"]
    assert float(total) == pytest.approx(float(expected_total), rel=1e-6)


def test_clipped_surrogate_and_value_loss_by_hand():
    # Two equally likely actions (log-prob -ln 2); old log-probs set so the ratios are these.
    ratios = np.array([1.5, 0.5, 1.1])
    logits = np.zeros((3, 2), np.float32)
    old_log_probs = (-math.log(2) - np.log(ratios)).astype(np.float32)
    advantages = np.array([1.0, -1.0, 2.0], np.float32)
    values = np.array([1.0, 0.0, 2.0], np.float32)
    old_values = np.array([0.5, 0.5, 2.0], np.float32)
    targets = np.array([2.0, 0.0, 3.0], np.float32)
    total, m = _loss(
        logits=logits,
        values=values,
        actions=np.array([0, 1, 0]),
        old_log_probs=old_log_probs,
        old_values=old_values,
        advantages=advantages,
        targets=targets,
    )
    # min(r A, clip(r) A): 1.5*1 -> clipped 1.2; 0.5*(-1) -> clipped 0.8*(-1) = -0.8; 1.1*2 = 2.2.
    assert float(m["actor_loss"]) == pytest.approx(-(1.2 - 0.8 + 2.2) / 3, rel=1e-5)
    assert float(m["clip_fraction"]) == pytest.approx(2 / 3)
    # Clipped values 0.7, 0.3, 2.0: max((V - G)^2, (Vc - G)^2) = 1.69, 0.09, 1.0.
    assert float(m["value_loss"]) == pytest.approx(0.5 * (1.69 + 0.09 + 1.0) / 3, rel=1e-5)
    assert float(m["entropy"]) == pytest.approx(math.log(2), rel=1e-6)
    assert float(m["approx_kl"]) == pytest.approx(float(np.mean(ratios - 1 - np.log(ratios))), rel=1e-4)
    expected_total = -(2.6 / 3) + 0.5 * 0.5 * 2.78 / 3 - 0.01 * math.log(2)
    assert float(total) == pytest.approx(expected_total, rel=1e-5)


def test_normalise():
    x = normalise(jnp.array([1.0, 2.0, 3.0, 6.0]))
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(x.std()) == pytest.approx(1.0, rel=1e-6)
