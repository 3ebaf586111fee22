"""Building blocks of the throughput benchmark on tiny cases (no timing assertions, no network)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import popgym_arcade
from popgym_arcade import throughput as tp

ROOT = Path(__file__).resolve().parent.parent


def load_benchmark():
    """``benchmarks/throughput.py`` as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "_benchmark_throughput", ROOT / "benchmarks" / "throughput.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("partial", [True, False])
def test_measure_tiny_rollout_gives_positive_numbers(partial):
    env, params = popgym_arcade.make("CartPoleEasy", partial_obs=partial, obs_size=128)
    result = tp.measure(env, params, num_envs=2, num_steps=3, repeats=1)
    assert result.steps_per_second > 0
    assert result.compile_seconds > 0
    assert result.first_call_seconds >= result.compile_seconds
    assert (result.num_envs, result.num_steps) == (2, 3)


def test_rollout_returns_the_latest_frames():
    env, params = popgym_arcade.make("NavigatorEasy", partial_obs=False, obs_size=128)
    frames, total = tp.make_rollout(env, params, num_envs=2, num_steps=3)(jax.random.key(0))
    assert frames.shape == (2, 128, 128, 3) and frames.dtype == np.uint8
    assert np.isfinite(float(total))


def test_frame_ceiling_fills_frames_of_the_right_shape():
    frames, _ = tp.make_frame_fill_rollout(num_envs=2, obs_size=128, num_steps=3)(jax.random.key(0))
    assert frames.shape == (2, 128, 128, 3) and frames.dtype == np.uint8
    result = tp.measure_frame_ceiling(num_envs=2, obs_size=128, num_steps=3, repeats=1)
    assert result.steps_per_second > 0


def test_nonpixel_cartpole_runs_with_the_same_method():
    bench = load_benchmark()
    reset, step, num_actions = bench.cartpole_nonpixel()
    obs, _total = jax.jit(tp.make_rollout_fn(reset, step, num_actions, 2, 3))(jax.random.key(0))
    assert obs.shape == (2, 4)
    assert bench.measure_nonpixel(2, 3, 1)["steps_per_second"] > 0


def test_benchmark_arguments_and_summary():
    bench = load_benchmark()
    args = bench.parse_args(["--quick"])
    assert (args.envs, args.sizes, args.twins) == ([64], [128], ["POMDP", "MDP"])
    assert bench.env_ids(["CartPole"], all_ids=True) == [
        ("CartPole", f"CartPole{lv}") for lv in ("Easy", "Medium", "Hard")
    ]
    assert bench.geomean([10.0, 1000.0]) == pytest.approx(100.0)
    rows = [
        bench.row(
            "ours", "CartPoleEasy", "CartPole", "MDP", 128, 2, 3, steps_per_second=200.0, compile_seconds=1.0
        ),
        bench.row(
            "published",
            "CartPoleEasy",
            "CartPole",
            "MDP",
            128,
            2,
            3,
            steps_per_second=2.0,
            compile_seconds=4.0,
        ),
    ]
    (record,) = bench.summarise(rows, log=lambda *_: None)
    assert record["ratio"] == pytest.approx(100.0) and record["compile_ratio"] == pytest.approx(0.25)


def test_each_compile_is_a_fresh_one():
    """JAX caches a jitted function's executable: every compile that is timed must retrace."""
    traces = []

    def rollout_fn(key):
        traces.append(None)
        return tp.frame_fill_rollout_fn(num_envs=2, obs_size=128, num_steps=2)(key)

    result = tp.time_rollout(rollout_fn, num_envs=2, num_steps=2, repeats=1, compiles=3)
    assert len(traces) == 3
    assert 0 < result.compile_seconds <= result.first_call_seconds
