"""``popgym-arcade sweep``: grid files, run names, the store, skip/resume, retries, Ray.

Every training here is the same two tiny runs (MDP and POMDP twin). Their programs are compiled
once, in this process, into a persistent compilation cache that the sweep's worker processes
and Ray workers read (``JAX_COMPILATION_CACHE_DIR``), so the file stays well under a minute and
a half on two cores. The Ray test needs the ``ray`` extra (``make test`` installs it) and is
skipped without it.
"""

import csv
import dataclasses
import json
import os
import textwrap
import tomllib

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from popgym_arcade.agents.config import TrainConfig
from popgym_arcade.cli import main
from popgym_arcade.sweep import (
    STATUS_FILE,
    InProcess,
    SweepError,
    expand_grid,
    load_grid,
    run_sweep,
    train_in_process,
)

pytestmark = pytest.mark.xdist_group("sweep")

TINY_GRID = """
[base]
env = "CartPoleEasy"
seeds = 2
steps = 64
num_envs = 2
rollout_steps = 8
chunk_updates = 2
eval_episodes = 2
eval_max_steps = 30
network = { encoder = "small", features = 16, memory_hidden = 16, memory_output = 16, head_hidden = 16 }

[base.pqn]
minibatches = 2
epochs = 1

[grid]
partial = [false, true]
"""
NAMES = ("partial-false", "partial-true")


def _grid(tmp_path, text: str, name: str = "grid.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _status(store) -> dict:
    record = json.loads((store / STATUS_FILE).read_text())
    return {run["name"].rsplit("_", 1)[0]: run for run in record["runs"]}


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """A persistent compilation cache shared by this process, its subprocesses and Ray workers."""
    cache = str(tmp_path_factory.mktemp("jax_cache"))
    old = {name: getattr(jax.config, name) for name in
           ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAX_COMPILATION_CACHE_DIR", cache)
        patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        compilation_cache.reset_cache()  # the cache is set up once per process: redo it with the dir
        yield cache
        for name, value in old.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    return _grid(tmp_path_factory.mktemp("grid"), TINY_GRID)


@pytest.fixture(scope="module")
def local_store(compile_cache, grid_file, tmp_path_factory):
    """The tiny grid trained by the default executor (in this process)."""
    store = tmp_path_factory.mktemp("store") / "local"
    assert main(["sweep", str(grid_file), "--store", str(store)]) == 0
    return store


# ---------------------------------------------------------------------------------------------
# Grid files


def test_grid_expands_nested_base_and_dotted_keys():
    data = tomllib.loads(
        textwrap.dedent("""
        [base]
        steps = 4096
        "pqn.epochs" = 1
        [base.network]
        encoder = "small"
        [grid]
        "network.memory" = ["mlp", "gru"]
        pqn.lr = [1e-4, 3e-4]
        seed = [0]
        """)
    )
    runs = expand_grid(data)
    assert len(runs) == 4
    configs = [run.config for run in runs]
    assert [(c.network.memory, c.pqn.lr) for c in configs] == [
        ("MLP", 1e-4), ("MLP", 3e-4), ("GRU", 1e-4), ("GRU", 3e-4)
    ]  # fmt: skip
    assert all(c.steps == 4096 and c.network.encoder == "small" and c.pqn.epochs == 1 for c in configs)
    # Names list what varies (not seed: one value) and end with the config's hash.
    assert runs[0].name.startswith("memory-MLP_lr-0.0001_") and len(runs[0].name.rsplit("_", 1)[1]) == 8
    assert [r.name for r in expand_grid(data)] == [r.name for r in runs]  # stable
    assert len({r.name for r in runs}) == 4


def test_several_grids_are_a_union_and_ambiguous_labels_are_dotted():
    runs = expand_grid(
        {
            "base": {"steps": 4096},
            "grid": [{"algo": ["pqn"], "pqn": {"lr": [1e-4]}}, {"algo": ["ppo"], "ppo.lr": [1e-3, 1e-4]}],
        }
    )
    assert [r.config.algo for r in runs] == ["pqn", "ppo", "ppo"]
    assert runs[1].name.startswith("algo-ppo_pqn.lr-5e-05_ppo.lr-0.001_")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"grid": {"seed": 1}}, "non-empty list"),
        ({"grid": {"seed": []}}, "non-empty list"),
        ({"grid": {"learning_rate": [1]}}, "unknown TrainConfig fields"),
        ({"base": {"network": {"width": 3}}}, "unknown NetworkConfig fields"),
        ({"runs": {}}, "unknown table"),
        ({"grid": {"algo": ["a2c"]}}, "unknown algo"),
    ],
)
def test_invalid_grids_are_refused(data, message):
    with pytest.raises(SweepError, match=message):
        expand_grid(data)


def test_dry_run_lists_the_runs(grid_file, capsys):
    assert main(["sweep", str(grid_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 run(s)" in out and all(name in out for name in NAMES)
    assert main(["sweep", str(grid_file)]) == 2  # --store is required to train


# ---------------------------------------------------------------------------------------------
# The store: train, skip, resume, retry


def test_local_sweep_writes_run_folders_and_status(local_store):
    status = _status(local_store)
    assert sorted(status) == list(NAMES)
    assert all(run["status"] == "done" and run["attempts"] == 1 for run in status.values())
    for run in status.values():
        folder = local_store / run["folder"]
        assert (folder / "evaluation.json").is_file()
        assert TrainConfig.from_dict(json.loads((folder / "config.json").read_text())).partial == (
            run["name"].startswith("partial-true")
        )


def test_restart_skips_complete_runs(local_store, grid_file, capsys):
    files = sorted(local_store.glob("*/evaluation.json")) + sorted(local_store.glob("*/checkpoints/*"))
    mtimes = [path.stat().st_mtime_ns for path in files]
    calls = []
    statuses = run_sweep(load_grid(grid_file), local_store, InProcess(train=lambda *a: calls.append(a)))
    assert calls == [] and {s.status for s in statuses} == {"skipped"}
    assert main(["sweep", str(grid_file), "--store", str(local_store)]) == 0
    assert "0 trained, 2 skipped" in capsys.readouterr().out
    assert [path.stat().st_mtime_ns for path in files] == mtimes


def test_killed_sweep_finishes_without_redoing_runs(local_store, grid_file, tmp_path):
    from popgym_arcade.runs.train import train_run

    runs = load_grid(grid_file)
    store = tmp_path / "store"

    def killed_during_second(config, run_dir):
        if config.partial:  # the second run: one chunk, its checkpoint, then Ctrl-C
            train_run(config, run_dir, progress=False, stop_after_chunks=1)
            raise KeyboardInterrupt
        train_in_process(config, run_dir)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(runs, store, InProcess(train=killed_during_second), log=lambda _: None)
    assert {name: run["status"] for name, run in _status(store).items()} == dict(
        zip(NAMES, ("done", "pending"))
    )
    first = next(store.glob("partial-false_*/evaluation.json"))
    mtime = first.stat().st_mtime_ns

    trained = []

    def counting(config, run_dir):
        trained.append(config.partial)
        train_in_process(config, run_dir)

    statuses = run_sweep(runs, store, InProcess(train=counting), log=lambda _: None)
    assert trained == [True] and [s.status for s in statuses] == ["skipped", "done"]
    assert first.stat().st_mtime_ns == mtime
    # The resumed run ends where the uninterrupted one did.
    for name in NAMES:
        (resumed,), (reference,) = store.glob(f"{name}_*"), local_store.glob(f"{name}_*")
        assert (resumed / "evaluation.json").read_text() == (reference / "evaluation.json").read_text()


def test_failed_run_is_retried_and_reported(compile_cache, tmp_path, capsys):
    grid = _grid(
        tmp_path, TINY_GRID.replace("partial = [false, true]", 'env = ["CartPoleEasy", "NoSuchEnv"]')
    )
    store = tmp_path / "store"
    assert main(["sweep", str(grid), "--store", str(store), "--retries", "2"]) == 1
    status = _status(store)
    assert status["env-CartPoleEasy"]["status"] == "done"
    failed = status["env-NoSuchEnv"]
    assert failed["status"] == "failed" and failed["attempts"] == 3 and "NoSuchEnv" in failed["error"]
    assert "failed: env-NoSuchEnv" in capsys.readouterr().err


def test_parallel_workers_train_and_report_failures(local_store, tmp_path):
    grid = _grid(
        tmp_path, TINY_GRID.replace("partial = [false, true]", 'env = ["CartPoleEasy", "NoSuchEnv"]')
    )
    store = tmp_path / "store"
    assert main(["sweep", str(grid), "--store", str(store), "--parallel", "2"]) == 1
    status = _status(store)
    assert status["env-CartPoleEasy"]["status"] == "done"
    assert status["env-NoSuchEnv"]["status"] == "failed" and status["env-NoSuchEnv"]["attempts"] == 2
    assert "unknown environment id 'NoSuchEnv'" in status["env-NoSuchEnv"]["error"]
    (worker,), (reference,) = store.glob("env-CartPoleEasy_*"), local_store.glob("partial-false_*")
    assert worker.name.rsplit("_", 1)[1] == reference.name.rsplit("_", 1)[1]  # the same config
    assert (worker / "evaluation.json").read_text() == (reference / "evaluation.json").read_text()


# ---------------------------------------------------------------------------------------------
# Ray and the analysis


def _metrics_without_time(path) -> list[dict]:
    with path.open() as handle:
        return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in csv.DictReader(handle)]


def _records(store) -> list[dict]:
    from popgym_arcade.analysis.records import load_records

    rows = [dataclasses.asdict(row) for row in load_records([store])]
    return [{k: v for k, v in row.items() if k not in ("source", "sample")} for row in rows]


def test_ray_sweep_gives_the_local_records(local_store, grid_file, tmp_path):
    pytest.importorskip("ray")
    store = tmp_path / "ray"
    assert main(["sweep", str(grid_file), "--store", str(store), "--ray", "local"]) == 0
    assert {run["status"] for run in _status(store).values()} == {"done"}
    for name in NAMES:
        (remote,), (local,) = store.glob(f"{name}_*"), local_store.glob(f"{name}_*")
        assert remote.name == local.name
        for file in ("config.json", "evaluation.json", "checkpoints/state.eqx"):
            assert (remote / file).read_bytes() == (local / file).read_bytes(), file
        assert _metrics_without_time(remote / "metrics.csv") == _metrics_without_time(local / "metrics.csv")
    assert _records(store) == _records(local_store)


def test_a_store_is_input_to_gap_bias(local_store, tmp_path):
    out = tmp_path / "gap_bias"
    assert main(["analyze", "gap-bias", str(local_store), "--out", str(out)]) == 0
    with (out / "gap_bias.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    env_rows = [row for row in rows if row["scope"] == "env"]
    assert [(row["group"], row["n_samples_mdp"], row["n_samples_pomdp"]) for row in env_rows] == [
        ("CartPoleEasy", "2", "2")
    ]
    assert os.path.exists(out / "returns.csv")


def test_the_example_paper_grid_is_the_paper_study():
    from pathlib import Path

    from popgym_arcade.analysis.study import PAPER

    grid = Path(__file__).resolve().parents[1] / "examples" / "paper_grid.toml"
    runs = load_grid(grid)
    assert len(runs) == len({run.name for run in runs}) == 300
    assert {run.config for run in runs} == {run.config for run in PAPER.runs()}
