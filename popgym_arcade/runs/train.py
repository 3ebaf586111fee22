"""Run a training job with a local record: progress, metrics, checkpoints, resume, evaluation.

``train_run(config, out)`` trains ``config.seeds`` agents at once (the algorithm's ``update``
vmapped over seeds) in jitted chunks of updates, and keeps the run's canonical record in the
folder ``out``:

* ``config.json``: the :class:`~popgym_arcade.agents.config.TrainConfig`;
* ``metrics.csv``: one row per seed and update (env steps, finished episodes' mean return and
  length, losses, ...);
* ``checkpoints/state.eqx`` + ``checkpoints/state.json``: the whole training state of every seed
  (``equinox.tree_serialise_leaves``; no pickles) and a sidecar with the update count, so an
  interrupted run resumes exactly where its last checkpoint was written;
* ``evaluation.json``: greedy returns of every seed on both twins, which the analysis reads.

Run it again with the same config and folder to resume; a different config in the same folder
is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from popgym_arcade.agents.algorithm import Algorithm, make_algorithm
from popgym_arcade.agents.config import TrainConfig, config_json
from popgym_arcade.agents.evaluate import evaluate_both_twins
from popgym_arcade.agents.sharding import jit_over_seeds, seed_sharding, shard_seeds

CHECKPOINT_FORMAT = 1
STATE_FILE = "checkpoints/state.eqx"
SIDECAR_FILE = "checkpoints/state.json"


class RunError(RuntimeError):
    """A run folder that cannot be used as asked (another config, a damaged checkpoint, ...)."""


def default_run_dir(config: TrainConfig, root: str | os.PathLike = "runs") -> Path:
    """``runs/<algo>-<memory>-<env>-<mdp|pomdp>-<size>px-seed<seed>``."""
    twin = "pomdp" if config.partial else "mdp"
    name = f"{config.algo}-{config.network.memory}-{config.env}-{twin}-{config.obs_size}px-seed{config.seed}"
    return Path(root) / name


def seed_keys(config: TrainConfig) -> jax.Array:
    """One PRNG key per seed of the run, derived from ``config.seed``."""
    return jax.random.split(jax.random.PRNGKey(config.seed), config.seeds)


def chunk_length(config: TrainConfig) -> int:
    """Updates per jitted chunk: a divisor of ``num_updates`` so one program serves every chunk."""
    total = config.num_updates
    target = config.chunk_updates or max(1, total // 50)
    target = min(target, total)
    return max(d for d in range(1, target + 1) if total % d == 0)


def config_hash(config: TrainConfig) -> str:
    """SHA-256 of the canonical config JSON (names the config a checkpoint belongs to)."""
    return hashlib.sha256(config_json(config).encode()).hexdigest()


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, config: TrainConfig, state: Any, update: int) -> None:
    """Write the training state (all seeds) and its JSON sidecar, each replaced atomically."""
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    _write_atomic(run_dir / STATE_FILE, lambda p: eqx.tree_serialise_leaves(p, state))
    sidecar = {
        "format": CHECKPOINT_FORMAT,
        "update": update,
        "num_updates": config.num_updates,
        "env_steps_per_seed": update * config.steps_per_update,
        "seeds": config.seeds,
        "config_sha256": config_hash(config),
        "written_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    _write_atomic(run_dir / SIDECAR_FILE, lambda p: p.write_text(json.dumps(sidecar, indent=2)))


def load_checkpoint(run_dir: Path, config: TrainConfig, like: Any) -> tuple[Any, int]:
    """``(state, update)`` from a run folder's checkpoint, checked against ``config``.

    ``like`` is a state (or ``jax.eval_shape`` of one) with the expected structure.
    """
    sidecar_path = run_dir / SIDECAR_FILE
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"cannot read checkpoint sidecar {sidecar_path}: {error}") from error
    if sidecar.get("config_sha256") != config_hash(config):
        raise RunError(
            f"checkpoint in {run_dir} was written for another config than {run_dir / 'config.json'}"
        )
    like = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), like)
    try:
        state = eqx.tree_deserialise_leaves(run_dir / STATE_FILE, like)
    except Exception as error:  # equinox raises several types for a mismatched or truncated file
        raise RunError(f"checkpoint {run_dir / STATE_FILE} does not match its config: {error}") from error
    return state, int(sidecar["update"])


def read_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` of a run folder."""
    path = Path(run_dir) / "config.json"
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise RunError(f"{run_dir} is not a run folder (no config.json)") from None
    except (json.JSONDecodeError, ValueError, TypeError) as error:
        raise RunError(f"{path} is not a valid run config: {error}") from error


# ------------------------------------------------------------------------------------ metrics
def metric_rows(
    metrics: dict[str, np.ndarray], first_update: int, config: TrainConfig, seconds: float
) -> list[dict]:
    """CSV rows (one per seed and update) from a chunk's metrics ``{name: [seeds, updates]}``."""
    episodes = metrics["episodes"]
    rows = []
    seeds, updates = episodes.shape
    for update in range(updates):
        for seed in range(seeds):
            count = float(episodes[seed, update])
            row = {
                "seed": seed,
                "update": first_update + update + 1,
                "env_steps": (first_update + update + 1) * config.steps_per_update,
                "wall_seconds": round(seconds, 3),
                "episodes": int(count),
                "episode_return": metrics["episode_return_sum"][seed, update] / count if count else "",
                "episode_length": metrics["episode_length_sum"][seed, update] / count if count else "",
            }
            for name in sorted(metrics):
                if name not in ("episodes", "episode_return_sum", "episode_length_sum"):
                    row[name] = float(metrics[name][seed, update])
            rows.append(row)
    return rows


def append_metrics(path: Path, rows: list[dict]) -> None:
    """Append rows to ``metrics.csv``, writing the header when the file is new."""
    if not rows:
        return
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def truncate_metrics(path: Path, last_update: int) -> None:
    """Drop rows after ``last_update`` (written after the checkpoint a resume starts from)."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, [r for r in reader if int(r["update"]) <= last_update]
    with path.open("w", newline="") as handle:
        if fields:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


class Progress:
    """A progress line: env steps (all seeds), steps/s, recent mean return. tqdm if installed."""

    def __init__(self, total_steps: int, initial_steps: int, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.total, self.done = total_steps, initial_steps
        self.started = time.perf_counter()
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=total_steps, initial=initial_steps, unit="step", unit_scale=True, dynamic_ncols=True
                )
            except ImportError:
                pass

    def update(self, steps: int, recent_return: float | None) -> None:
        self.done += steps
        text = "return n/a" if recent_return is None else f"return {recent_return:.3f}"
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix_str(text)
        elif self.enabled:
            rate = (self.done) / max(time.perf_counter() - self.started, 1e-9)
            print(
                f"{self.done:>12,d}/{self.total:,d} steps  {rate:,.0f} steps/s  {text}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------ the run
def _prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> None:
    config_path = run_dir / "config.json"
    if config_path.exists():
        existing = config_path.read_text()
        if existing.strip() != config_json(config).strip():
            raise RunError(
                f"{run_dir} holds a run with another config; choose another --out or delete the folder "
                f"(compare {config_path} with this run's flags)"
            )
        if not resume:
            raise RunError(
                f"{run_dir} already holds this run; pass --resume to continue it or choose another --out"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(config_json(config) + "\n")


def train_run(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    resume: bool = True,
    progress: bool = True,
    sinks: Sequence[Any] = (),
    stop_after_chunks: int | None = None,
) -> Path:
    """Train (or resume) the run ``config`` in folder ``out``; returns the folder.

    Args:
        config: the run.
        out: run folder (created).
        resume: continue from the folder's checkpoint if it has one (else refuse a used folder).
        progress: show a progress bar on stderr.
        sinks: extra metric sinks (objects with ``log(rows)`` and ``close()``, e.g.
            :class:`~popgym_arcade.runs.sinks.WandbSink`).
        stop_after_chunks: stop (with a checkpoint) after this many chunks, as an interruption
            would; for tests and time-sliced clusters.
    """
    run_dir = Path(out)
    _prepare_run_dir(run_dir, config, resume)
    programs = compiled_programs(config)
    # Seeds are split over the local devices (see agents/sharding.py); a restored state is
    # placed the same way so every chunk runs where the state already is.
    keys = shard_seeds(seed_keys(config), programs.sharding)
    start_update = 0
    if (run_dir / SIDECAR_FILE).exists():
        state, start_update = load_checkpoint(run_dir, config, jax.eval_shape(programs.init, keys))
        state = shard_seeds(state, programs.sharding)
        truncate_metrics(run_dir / "metrics.csv", start_update)
    else:
        state = programs.init(keys)
        (run_dir / "metrics.csv").unlink(missing_ok=True)

    chunk, run_chunk = programs.chunk, programs.run_chunk
    bar = Progress(config.num_updates * config.steps_per_update * config.seeds,
                   start_update * config.steps_per_update * config.seeds, progress)  # fmt: skip
    started = time.perf_counter()
    update, chunks_run = start_update, 0
    try:
        while update < config.num_updates:
            if stop_after_chunks is not None and chunks_run >= stop_after_chunks:
                break
            state, metrics = run_chunk(state)
            metrics = jax.device_get(metrics)
            rows = metric_rows(metrics, update, config, time.perf_counter() - started)
            update += chunk
            chunks_run += 1
            append_metrics(run_dir / "metrics.csv", rows)
            for sink in sinks:
                sink.log(rows)
            if chunks_run % config.checkpoint_every == 0 or update >= config.num_updates:
                save_checkpoint(run_dir, config, state, update)
            episodes = metrics["episodes"].sum()
            recent = float(metrics["episode_return_sum"].sum() / episodes) if episodes else None
            bar.update(chunk * config.steps_per_update * config.seeds, recent)
    finally:
        bar.close()
        for sink in sinks:
            sink.close()
    if update >= config.num_updates and not (run_dir / "evaluation.json").exists():
        write_evaluation(run_dir, config, programs.algorithm, state.params)
    return run_dir


@dataclasses.dataclass(frozen=True)
class Programs:
    """The jitted functions of one config (built once per process and config)."""

    algorithm: Algorithm
    init: Callable
    chunk: int
    run_chunk: Callable
    sharding: jax.sharding.Sharding


@functools.lru_cache(maxsize=16)
def compiled_programs(config: TrainConfig) -> Programs:
    """Jitted ``init`` and chunk functions (vmapped over seeds) for ``config``, cached.

    Runs of the same config in one process (resumes, a study's repeats, tests) share their
    compiled programs. Their inputs and outputs have the seed axis sharded over every local
    device (replicated when ``config.seeds`` is not a multiple of the device count).
    """
    algorithm = make_algorithm(config)
    chunk = chunk_length(config)

    def run_chunk(state):
        return jax.lax.scan(lambda s, _: algorithm.update(s), state, None, length=chunk)

    sharding = seed_sharding(config.seeds)
    return Programs(
        algorithm,
        jit_over_seeds(jax.vmap(algorithm.init), sharding),
        chunk,
        jit_over_seeds(jax.vmap(run_chunk), sharding),
        sharding,
    )


def write_evaluation(run_dir: Path, config: TrainConfig, algorithm: Algorithm, params: Any) -> dict:
    """Evaluate every seed greedily on both twins and write ``evaluation.json``."""
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2**20)
    results = evaluate_both_twins(algorithm, params, key, config.eval_episodes, config.eval_max_steps)
    return_range = [float(x) for x in getattr(algorithm.env.unwrapped, "return_range", (math.nan, math.nan))]
    record = {
        "env": config.env,
        "algo": config.algo,
        "memory": config.network.memory,
        "trained_on": "pomdp" if config.partial else "mdp",
        "return_range": return_range,
        "seeds": list(range(config.seeds)),
        "episodes_per_seed": config.eval_episodes,
        "max_steps": config.eval_max_steps,
    }
    for twin, result in results.items():
        record[twin] = {
            "mean_return": [float(np.mean(r)) for r in result["returns"]],
            "episode_returns": [[float(x) for x in r] for r in result["returns"]],
            "episode_lengths": [[int(x) for x in r] for r in result["lengths"]],
            "unfinished_episodes": int((~result["finished"]).sum()),
        }
    _write_atomic(run_dir / "evaluation.json", lambda p: p.write_text(json.dumps(record, indent=2)))
    return record
