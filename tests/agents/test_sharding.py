"""Seeds sharded over several devices: the same run as on one device.

JAX fixes its device count when it initialises, and the test process has already done so with
one CPU device; each run therefore happens in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``. Both subprocesses train the same tiny
config (4 seeds) into their own folder and save the final training state's leaves.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from jax.sharding import PartitionSpec

from popgym_arcade.agents.sharding import SEED_AXIS, seed_spec

pytestmark = pytest.mark.xdist_group("agents-sharding")

# The TINY config of tests/agents/test_train.py with 4 seeds (so they split over 4 devices).
SCRIPT = """
import json, sys, warnings
from pathlib import Path

import jax
import numpy as np

from popgym_arcade.agents.config import NetworkConfig, PQNConfig, TrainConfig
from popgym_arcade.agents.sharding import seed_sharding, shard_seeds
from popgym_arcade.runs.train import compiled_programs, load_checkpoint, seed_keys, train_run

out = Path(sys.argv[1])
network = NetworkConfig(
    encoder="small", features=16, memory="GRU", memory_hidden=16, memory_output=16, head_hidden=16
)
config = TrainConfig(
    env="CartPoleEasy", seeds=4, steps=4 * 2 * 8, num_envs=2, rollout_steps=8, network=network,
    pqn=PQNConfig(minibatches=2, epochs=1), chunk_updates=1, eval_episodes=2, eval_max_steps=30,
)
run_dir = train_run(config, out / "run", progress=False)
programs = compiled_programs(config)
saved, _ = load_checkpoint(run_dir, config, jax.eval_shape(programs.init, seed_keys(config)))
np.savez(out / "leaves.npz", *[np.asarray(leaf) for leaf in jax.tree.leaves(saved)])

# Where one chunk's outputs live (compiled already: no extra compilation).
state, metrics = programs.run_chunk(programs.init(shard_seeds(seed_keys(config), programs.sharding)))
leaves = jax.tree.leaves(state) + jax.tree.leaves(metrics)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    odd = seed_sharding(3)
print(json.dumps({
    "devices": jax.device_count(),
    "specs": sorted({str(leaf.sharding.spec) for leaf in leaves}),
    "devices_per_leaf": sorted({len(leaf.sharding.device_set) for leaf in leaves}),
    "seeds_per_shard": sorted({shard.data.shape[0] for leaf in leaves for shard in leaf.addressable_shards}),
    "odd_spec": str(odd.spec),
    "odd_warnings": [str(w.message) for w in caught],
}))
"""


def _start(devices: int, out) -> subprocess.Popen:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    out.mkdir()
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharding")
    # Both at once: each is mostly compilation, which is single-threaded.
    processes = {devices: _start(devices, root / f"devices{devices}") for devices in (1, 4)}
    results = {}
    for devices, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        results[devices] = (root / f"devices{devices}", json.loads(stdout.strip().splitlines()[-1]))
    return results


def test_seed_spec_splits_only_an_even_seed_axis():
    assert seed_spec(4, 4) == PartitionSpec(SEED_AXIS)
    assert seed_spec(8, 4) == PartitionSpec(SEED_AXIS)
    assert seed_spec(3, 4) == PartitionSpec()
    assert seed_spec(5, 1) == PartitionSpec(SEED_AXIS)


def test_four_devices_hold_one_seed_each(runs):
    _, info = runs[4]
    assert info["devices"] == 4
    assert info["specs"] == [str(PartitionSpec(SEED_AXIS))]
    assert info["devices_per_leaf"] == [4] and info["seeds_per_shard"] == [1]
    # 3 seeds do not split over 4 devices: replicated, with one warning saying so.
    assert info["odd_spec"] == str(PartitionSpec())
    assert len(info["odd_warnings"]) == 1 and "multiple of 4" in info["odd_warnings"][0]
    _, single = runs[1]
    assert single["devices"] == 1 and single["seeds_per_shard"] == [4] and single["odd_warnings"] == []


def _metrics(run_dir) -> list[dict]:
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_four_devices_train_the_same_run_as_one(runs):
    """Same run on 1 and 4 devices, up to float32 rounding.

    Not bit-exact on CPU: each device compiles the vmapped program for 1 seed instead of 4, and
    XLA emits the batched matmuls and reductions with another accumulation order, so float32
    values differ in their last bits (seen: 9e-8 at most on parameters after 4 updates). The
    tolerance (atol 1e-6, rtol 1e-5) is ten times that and far below any learning signal;
    everything discrete (episodes, returns, lengths, greedy evaluation) must be equal.
    """
    (one, _), (four, _) = runs[1], runs[4]
    leaves_one, leaves_four = np.load(one / "leaves.npz"), np.load(four / "leaves.npz")
    assert leaves_one.files == leaves_four.files
    for name in leaves_one.files:
        np.testing.assert_allclose(leaves_four[name], leaves_one[name], rtol=1e-5, atol=1e-6, err_msg=name)

    rows_one, rows_four = _metrics(one / "run"), _metrics(four / "run")
    assert len(rows_one) == len(rows_four) == 4 * 4
    exact = ("seed", "update", "env_steps", "episodes", "episode_return", "episode_length", "epsilon")
    for a, b in zip(rows_one, rows_four, strict=True):
        assert {k: a[k] for k in exact} == {k: b[k] for k in exact}
        for name in set(a) - set(exact) - {"wall_seconds"}:
            np.testing.assert_allclose(float(b[name]), float(a[name]), rtol=1e-5, atol=1e-6, err_msg=name)

    evaluation = [json.loads((path / "run" / "evaluation.json").read_text()) for path in (one, four)]
    assert evaluation[0] == evaluation[1]
