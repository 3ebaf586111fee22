"""Learning benchmark: does PQN with memory beat PQN without memory on a memory task?

Trains, on the POMDP twin of one game, a memory agent (default GRU) and the memoryless agent
(MLP: the same network with a memoryless cell), several seeds each, and evaluates both greedily;
a uniformly random policy is the third reference. Prints the final returns with 95% intervals
over seeds, the training steps/s, writes the curves (CSV, PNG) and a JSON summary.

The default task is ``NavigatorProbe``: Navigator as data, a 4x4 board with 2 TNT and 16 steps
(registered by this script). Its POMDP shows the treasure and the TNT only in the first frame,
so only a memory can walk straight to the treasure, and it is small enough for PQN to learn
within a 2-core CPU budget (NavigatorEasy's 8x8 board is not: its MDP stayed near the random
policy after 600k steps here). Any registered id works with ``--env``.

    python benchmarks/learning.py                       # the default budget (~20 min on 2 CPU cores)
    python benchmarks/learning.py --steps 3e5 --seeds 2 # a quick look
    python benchmarks/learning.py --env CartPoleEasy --steps 1.5e6
    python benchmarks/learning.py --help

Runs go to ``--out``/runs/<name> as ordinary run folders (``popgym-arcade train`` records): a
re-run resumes or reuses finished runs; ``--fresh`` retrains.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import platform
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np

from popgym_arcade._extras import install_hint
from popgym_arcade.cli.train import parse_int
from popgym_arcade.agents.config import NetworkConfig, PQNConfig, TrainConfig
from popgym_arcade.agents.evaluate import random_policy_returns
from popgym_arcade.runs.train import train_run
from popgym_arcade.environments.navigator import Navigator, NavigatorDifficulty
from popgym_arcade.registration import REGISTERED_ENVIRONMENTS, register

PROBE_DIFFICULTY = NavigatorDifficulty(board_size=4, max_steps=16, num_tnt=2)


def navigator_probe(partial_obs: bool = False, obs_size: int = 128) -> Navigator:
    """Navigator on a 4x4 board with 2 TNT and 16 steps: a small memory task."""
    return Navigator(PROBE_DIFFICULTY, partial_obs=partial_obs, obs_size=obs_size)


if "NavigatorProbe" not in REGISTERED_ENVIRONMENTS:
    register("NavigatorProbe", navigator_probe)


def cpu_config(env: str, memory: str, steps: int, seeds: int, width: int) -> TrainConfig:
    """The CPU budget's PQN run: small encoder, one memory layer, 32 envs x 32 steps per update."""
    network = NetworkConfig(
        encoder="small", features=width, memory=memory, memory_hidden=width, memory_output=width,
        head_hidden=width, memory_layers=1,
    )  # fmt: skip
    return TrainConfig(
        algo="pqn", env=env, partial=True, seeds=seeds, steps=steps, num_envs=32, rollout_steps=32,
        network=network, pqn=PQNConfig(lr=3e-4, minibatches=4, epochs=2, eps_decay=0.5),
        eval_episodes=64, chunk_updates=0,
    )  # fmt: skip


def mean_interval(values) -> tuple[float, float]:
    """Mean and the half-width of a normal 95% interval over seeds (0 for one seed)."""
    values = np.asarray(values, float)
    if values.size < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(values.size))


def read_curve(run_dir: Path) -> dict[int, float]:
    """Mean over seeds of the finished episodes' training return, per logged env step."""
    sums: dict[int, list[float]] = {}
    with (run_dir / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["episode_return"]:
                sums.setdefault(int(row["env_steps"]), []).append(float(row["episode_return"]))
    return {step: float(np.mean(v)) for step, v in sorted(sums.items())}


def training_rate(run_dir: Path, config: TrainConfig) -> float:
    """Env steps per second (all seeds), from the run's wall clock after its first chunk (compile)."""
    with (run_dir / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["seed"] == "0"]
    first, last = rows[0], rows[-1]
    # The first logged chunk includes compilation; measure from its end.
    chunk_rows = [r for r in rows if r["wall_seconds"] == first["wall_seconds"]]
    start = chunk_rows[-1]
    seconds = float(last["wall_seconds"]) - float(start["wall_seconds"])
    steps = (int(last["env_steps"]) - int(start["env_steps"])) * config.seeds
    return steps / seconds if seconds > 0 else float("nan")


def plot(curves: dict[str, dict[int, float]], random_mean: float, path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib not installed: no plot ({install_hint('analysis')})")
        return False
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, curve in curves.items():
        steps = np.array(list(curve))
        values = np.array(list(curve.values()))
        window = max(1, len(values) // 20)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, label=name)
    ax.axhline(random_mean, color="grey", linestyle="--", label="random policy")
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel("training return (epsilon-greedy)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="NavigatorProbe")
    parser.add_argument("--memory", default="GRU", help="memory model of the memory agent")
    parser.add_argument("--steps", type=parse_int, default=1_000_000, help="env steps per seed")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--width", type=int, default=128, help="network width")
    parser.add_argument("--out", default="benchmarks/results/learning")
    parser.add_argument("--fresh", action="store_true", help="delete earlier runs in --out first")
    args = parser.parse_args(argv)

    out = Path(args.out)
    if args.fresh and (out / "runs").exists():
        shutil.rmtree(out / "runs")
    out.mkdir(parents=True, exist_ok=True)
    results, curves = {}, {}
    for memory in (args.memory, "MLP"):
        config = cpu_config(args.env, memory, args.steps, args.seeds, args.width)
        run_dir = out / "runs" / f"pqn-{memory}-{args.env}-pomdp"
        print(
            f"== training PQN + {memory} on {args.env} POMDP: {args.seeds} seeds x {args.steps:,} steps",
            flush=True,
        )
        started = time.perf_counter()
        train_run(config, run_dir, progress=sys.stderr.isatty())
        evaluation = json.loads((run_dir / "evaluation.json").read_text())
        mean, half = mean_interval(evaluation["pomdp"]["mean_return"])
        results[memory] = {
            "pomdp_return": mean,
            "pomdp_return_ci95": half,
            "per_seed": evaluation["pomdp"]["mean_return"],
            "mdp_return_of_pomdp_agent": mean_interval(evaluation["mdp"]["mean_return"])[0],
            "train_steps_per_second": training_rate(run_dir, config),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        curves[f"PQN + {memory}"] = read_curve(run_dir)
    random = random_policy_returns(args.env, True, 512, 4000, jax.random.PRNGKey(0))
    random_mean = float(np.mean(random["returns"]))

    print(
        f"\n{args.env} POMDP, greedy evaluation ({args.seeds} seeds x 64 episodes), 95% interval over seeds"
    )
    print(f"{'agent':18s} {'return':>16s} {'train steps/s':>14s}")
    for memory, r in results.items():
        name = f"PQN + {memory}"
        print(
            f"{name:18s} {r['pomdp_return']:8.3f} +- {r['pomdp_return_ci95']:5.3f} {r['train_steps_per_second']:14,.0f}"
        )
    print(f"{'random policy':18s} {random_mean:8.3f}")
    memory_result, mlp_result = results[args.memory], results["MLP"]
    lower_memory = memory_result["pomdp_return"] - memory_result["pomdp_return_ci95"]
    beats_mlp = lower_memory > mlp_result["pomdp_return"] + mlp_result["pomdp_return_ci95"]
    beats_random = lower_memory > random_mean
    print(
        f"memory beats no memory (intervals apart): {'yes' if beats_mlp else 'no'}; beats random: {'yes' if beats_random else 'no'}"
    )

    summary = {
        "env": args.env, "twin": "pomdp", "memory": args.memory, "steps_per_seed": args.steps, "seeds": args.seeds,
        "results": results, "random_policy_return": random_mean,
        "memory_beats_mlp": bool(beats_mlp), "memory_beats_random": bool(beats_random),
        "config": dataclasses.asdict(cpu_config(args.env, args.memory, args.steps, args.seeds, args.width)),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "devices": [str(d) for d in jax.devices()],
                    "jax": jax.__version__},
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    with (out / "curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["agent", "env_steps", "training_return"])
        for name, curve in curves.items():
            writer.writerows([name, step, value] for step, value in curve.items())
    if plot(curves, random_mean, out / "curves.png", f"{args.env} POMDP: PQN with and without memory"):
        print(f"plot: {out / 'curves.png'}")
    print(f"summary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
