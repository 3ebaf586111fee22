"""Run folders: train, record, checkpoint, resume, evaluate; seeds; make_train; the train command."""

import argparse
import csv
import dataclasses
import json

import jax
import numpy as np
import pytest

from popgym_arcade.agents.algorithm import make_train
from popgym_arcade.cli.train import config_from_args, parse_int
from popgym_arcade.agents.config import NetworkConfig, PQNConfig, TrainConfig
from popgym_arcade.runs.train import RunError, chunk_length, compiled_programs, read_config, train_run
from popgym_arcade.cli import build_parser, main

pytestmark = pytest.mark.xdist_group("agents-train")

TINY_NETWORK = NetworkConfig(
    encoder="small", features=16, memory="GRU", memory_hidden=16, memory_output=16, head_hidden=16
)
TINY = TrainConfig(
    env="CartPoleEasy", seeds=2, steps=4 * 2 * 8, num_envs=2, rollout_steps=8, network=TINY_NETWORK,
    pqn=PQNConfig(minibatches=2, epochs=1), chunk_updates=1, eval_episodes=2, eval_max_steps=30,
)  # fmt: skip


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return train_run(TINY, tmp_path_factory.mktemp("run") / "full", progress=False)


def test_run_folder_holds_config_metrics_checkpoint_and_evaluation(finished_run):
    assert read_config(finished_run) == TINY
    with (finished_run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == TINY.num_updates * TINY.seeds
    assert [int(r["update"]) for r in rows[::2]] == list(range(1, TINY.num_updates + 1))
    assert int(rows[-1]["env_steps"]) == TINY.num_updates * TINY.steps_per_update
    assert all(np.isfinite(float(r["td_loss"])) for r in rows)
    sidecar = json.loads((finished_run / "checkpoints/state.json").read_text())
    assert sidecar["update"] == TINY.num_updates and sidecar["seeds"] == 2
    evaluation = json.loads((finished_run / "evaluation.json").read_text())
    assert evaluation["trained_on"] == "mdp" and evaluation["memory"] == "GRU"
    for twin in ("mdp", "pomdp"):
        returns = np.array(evaluation[twin]["episode_returns"])
        assert returns.shape == (2, 2)
        lo, hi = evaluation["return_range"]
        assert np.all((returns >= lo - 1e-6) & (returns <= hi + 1e-6))
        np.testing.assert_allclose(evaluation[twin]["mean_return"], returns.mean(axis=1), rtol=1e-6)


def test_interrupted_run_resumes_to_the_same_result(finished_run, tmp_path):
    out = tmp_path / "interrupted"
    train_run(TINY, out, progress=False, stop_after_chunks=2)
    assert not (out / "evaluation.json").exists()
    assert json.loads((out / "checkpoints/state.json").read_text())["update"] == 2
    train_run(TINY, out, progress=False)  # resume
    assert (out / "metrics.csv").read_text().count("\n") == TINY.num_updates * TINY.seeds + 1
    programs = compiled_programs(TINY)
    from popgym_arcade.runs.train import load_checkpoint

    like = jax.eval_shape(programs.init, jax.random.split(jax.random.PRNGKey(0), 2))
    resumed, _ = load_checkpoint(out, TINY, like)
    uninterrupted, _ = load_checkpoint(finished_run, TINY, like)
    assert leaves_equal(resumed.params, uninterrupted.params)
    assert json.loads((out / "evaluation.json").read_text()) == json.loads(
        (finished_run / "evaluation.json").read_text()
    )


def test_a_folder_with_another_config_is_refused(finished_run):
    with pytest.raises(RunError, match="another config"):
        train_run(dataclasses.replace(TINY, seed=7), finished_run, progress=False)
    with pytest.raises(RunError, match="--resume"):
        train_run(TINY, finished_run, progress=False, resume=False)


def test_seeds_differ_and_the_same_key_repeats():
    programs = compiled_programs(TINY)
    key = jax.random.PRNGKey(3)
    states, _ = programs.run_chunk(
        programs.init(jax.numpy.stack([key, key, jax.random.PRNGKey(4)])[:2])
    )
    assert leaves_equal(
        jax.tree.map(lambda x: x[0], states.params), jax.tree.map(lambda x: x[1], states.params)
    )
    different = programs.init(jax.random.split(key, 2))
    first = jax.tree.leaves(different.params)[0]
    assert not np.array_equal(first[0], first[1])


def test_make_train_is_one_jittable_function_vmapped_over_seeds():
    config = dataclasses.replace(TINY, steps=2 * 2 * 8)
    states, metrics = jax.jit(jax.vmap(make_train(config)))(jax.random.split(jax.random.PRNGKey(0), 2))
    assert metrics["td_loss"].shape == (2, config.num_updates)
    assert states.update.tolist() == [config.num_updates] * 2


def test_chunks_divide_the_run():
    config = dataclasses.replace(TINY, steps=7 * 16, chunk_updates=3)
    assert chunk_length(config) == 1  # 7 updates: only 1 divides it and is <= 3
    assert chunk_length(dataclasses.replace(TINY, steps=12 * 16, chunk_updates=5)) == 4


def test_config_validation():
    with pytest.raises(ValueError, match="unknown algo"):
        TrainConfig(algo="a2c")
    with pytest.raises(ValueError, match="one update"):
        TrainConfig(steps=10)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"learning_rate": 1})
    assert TrainConfig.from_dict(TINY.to_dict()) == TINY


def test_train_flags_map_to_config_fields():
    args = build_parser().parse_args(
        ["train", "--algo", "pqn", "--memory", "GRU", "--env", "NavigatorEasy", "--partial", "--seeds", "4",
         "--steps", "2e6", "--pqn.lr", "1e-4", "--network.memory-hidden", "64", "--no-network.previous-action"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (
        config.env == "NavigatorEasy" and config.partial and config.seeds == 4 and config.steps == 2_000_000
    )
    assert (
        config.network.memory == "GRU"
        and config.network.memory_hidden == 64
        and not config.network.previous_action
    )
    assert config.pqn.lr == 1e-4 and config.ppo == TrainConfig().ppo
    assert parse_int("1_000") == 1000
    with pytest.raises(argparse.ArgumentTypeError, match="not an integer"):
        parse_int("2.5")


def test_train_command_errors_are_clear(capsys, tmp_path):
    assert main(["train", "--memory", "transformer", "--out", str(tmp_path / "x")]) == 2
    assert "valid names" in capsys.readouterr().err
    assert main(["train", "--steps", "10", "--out", str(tmp_path / "y")]) == 2
    assert "one update" in capsys.readouterr().err
    assert main(["train", "--list-memory"]) == 0
    assert "MinGRU" in capsys.readouterr().out


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_every_algorithm_writes_a_run_folder_and_resumes(algo, tmp_path):
    config = dataclasses.replace(TINY, algo=algo, seeds=1, steps=2 * 2 * 8, eval_episodes=1, eval_max_steps=10)
    config = dataclasses.replace(
        config,
        ppo=dataclasses.replace(config.ppo, minibatches=2, epochs=1),
        dqn=dataclasses.replace(config.dqn, buffer_sequences=4, batch_sequences=2, learning_starts=1),
    )
    out = tmp_path / algo
    train_run(config, out, progress=False, stop_after_chunks=1)
    assert json.loads((out / "checkpoints/state.json").read_text())["update"] == 1
    train_run(config, out, progress=False)
    with (out / "metrics.csv").open() as handle:
        assert [int(r["update"]) for r in csv.DictReader(handle)] == [1, 2]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["algo"] == algo and len(evaluation["pomdp"]["episode_returns"]) == 1
