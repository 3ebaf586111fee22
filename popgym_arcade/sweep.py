"""``popgym-arcade sweep GRID.toml --store DIR``: train a grid of runs into a run store.

A grid file is TOML with a ``[base]`` table of :class:`~popgym_arcade.agents.config.TrainConfig`
fields (sections as sub-tables, ``[base.network]``, or dotted keys) and a ``[grid]`` table of
lists whose cartesian product gives the runs::

    [base]
    steps = 2_000_000
    seeds = 4

    [base.network]
    encoder = "small"

    [grid]
    env = ["CartPoleEasy", "NavigatorEasy"]
    "network.memory" = ["MLP", "GRU"]
    partial = [false, true]

Several products are written as ``[[grid]]`` tables; the runs are their union. A grid value
overrides the base.

Each run trains into ``DIR/<name>``, where the name lists the fields that vary over the sweep
and ends with the first 8 hex digits of the SHA-256 of the run's config (its identity), e.g.
``env-CartPoleEasy_memory-GRU_partial-true_3f9c2a1b``. A run is *complete* when its folder holds
``evaluation.json`` and a ``config.json`` identical to its config; complete runs are skipped, so
a killed sweep restarted with the same command finishes the grid without redoing them
(interrupted runs resume from their last checkpoint). A run whose training raises is retried
``--retries`` times, then reported as failed; ``DIR/sweep_status.json`` lists every run with its
status (``done``, ``skipped``, ``failed`` or ``pending``) and error, and the command exits 1 when
any run failed.

Executors: in this process, one run after another (default; each run uses every local device,
see :mod:`popgym_arcade.agents.sharding`); ``--parallel N`` worker processes (one GPU each when
GPUs are visible); ``--ray ADDRESS`` (or ``--ray local``) one Ray task per run, one GPU each when
the cluster has GPUs (needs the ``ray`` extra and a store every node can reach).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import hashlib
import itertools
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from popgym_arcade._extras import install_hint
from popgym_arcade.agents.config import TrainConfig, config_json

STATUS_FILE = "sweep_status.json"
HASH_DIGITS = 8
MAX_NAME = 120  # characters of the readable part of a run name (the hash keeps it unique)


class SweepError(ValueError):
    """A grid file that cannot be expanded into runs."""


# ---------------------------------------------------------------------------------------------
# The grid


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its folder name (under the store) and its config."""

    name: str
    config: TrainConfig


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"network": {"memory": "GRU"}}`` -> ``{"network.memory": "GRU"}`` (dotted keys kept)."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`: dotted keys become nested dicts."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *sections, name = dotted.split(".")
        table = nested
        for section in sections:
            table = table.setdefault(section, {})
            if not isinstance(table, dict):
                raise SweepError(f"{dotted!r}: {section!r} is a value, not a section")
        table[name] = value
    return nested


def grid_axes(data: Mapping[str, Any]) -> list[dict[str, list]]:
    """The ``[grid]`` table (or each ``[[grid]]`` table) as ``{dotted key: values}``."""
    grids = data.get("grid", {})
    grids = [grids] if isinstance(grids, Mapping) else list(grids)
    axes = []
    for grid in grids:
        flat = flatten(grid)
        for key, values in flat.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"grid value {key!r} must be a non-empty list, got {values!r}")
        axes.append(flat)
    return axes


def canonical_memory(config: TrainConfig) -> TrainConfig:
    """The config with its memory model's canonical name (``gru`` -> ``GRU``), as ``train`` does."""
    try:
        from popgym_arcade.agents.memory import canonical_memory_name
    except ImportError:  # without the train extra the names are checked when a run starts
        return config
    network = dataclasses.replace(config.network, memory=canonical_memory_name(config.network.memory))
    return dataclasses.replace(config, network=network)


def grid_configs(data: Mapping[str, Any]) -> list[TrainConfig]:
    """Every config of a parsed grid file, grid by grid, in the cartesian product's order.

    Raises:
        SweepError: tables other than ``base`` and ``grid``, a grid value that is not a list,
            or a field that :class:`TrainConfig` does not have or rejects.
    """
    unknown = set(data) - {"base", "grid"}
    if unknown:
        raise SweepError(f"unknown table(s) {sorted(unknown)}: a grid file has [base] and [grid]")
    base = flatten(data.get("base", {}))
    configs = []
    for axes in grid_axes(data) or [{}]:
        keys = list(axes)
        for values in itertools.product(*(axes[key] for key in keys)):
            flat = {**base, **dict(zip(keys, values, strict=True))}
            try:
                configs.append(canonical_memory(TrainConfig.from_dict(unflatten(flat))))
            except (TypeError, ValueError) as error:
                raise SweepError(f"invalid run {dict(zip(keys, values, strict=True))}: {error}") from error
    return configs


def config_digest(config: TrainConfig) -> str:
    """SHA-256 of the canonical config JSON (as ``agents.train.config_hash``, without importing JAX)."""
    return hashlib.sha256(config_json(config).encode()).hexdigest()


def varying_keys(configs: Sequence[TrainConfig]) -> list[str]:
    """Dotted fields whose value differs between ``configs``, in :class:`TrainConfig` order."""
    flats = [flatten(config.to_dict()) for config in configs]
    if not flats:
        return []
    return [key for key in flats[0] if len({json.dumps(flat[key]) for flat in flats}) > 1]


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = format(value, "g") if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text)  # safe in a folder name on any file system


def run_name(config: TrainConfig, keys: Sequence[str]) -> str:
    """``<field>-<value>_..._<hash8>``: the varying ``keys`` (last part of a dotted key when that
    is unambiguous) and the config's hash."""
    short = [key.rpartition(".")[2] for key in keys]
    labels = [s if short.count(s) == 1 else key for s, key in zip(short, keys, strict=True)]
    flat = flatten(config.to_dict())
    readable = "_".join(f"{label}-{_label(flat[key])}" for label, key in zip(labels, keys, strict=True))
    digest = config_digest(config)[:HASH_DIGITS]
    return f"{readable[:MAX_NAME]}_{digest}" if readable else f"run_{digest}"


def expand_grid(data: Mapping[str, Any]) -> tuple[SweepRun, ...]:
    """The runs of a parsed grid file (identical configs from several grids count once)."""
    configs = list(dict.fromkeys(grid_configs(data)))
    keys = varying_keys(configs)
    return tuple(SweepRun(run_name(config, keys), config) for config in configs)


def load_grid(path: str | os.PathLike) -> tuple[SweepRun, ...]:
    """The runs of the grid file ``path``."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SweepError(f"cannot read grid {path}: {error}") from error
    return expand_grid(data)


# ---------------------------------------------------------------------------------------------
# The store


def is_complete(run_dir: Path, config: TrainConfig) -> bool:
    """The folder holds this very config and its evaluation: nothing left to do."""
    config_path = run_dir / "config.json"
    return (
        (run_dir / "evaluation.json").is_file()
        and config_path.is_file()
        and config_path.read_text().strip() == config_json(config).strip()
    )


def run_dir_in(store: Path, run: SweepRun) -> Path:
    """The run's folder: ``store/<name>``, or a folder already holding this config whose name ends
    with the same hash (written by an earlier version of the grid whose varying fields differed)."""
    folder = store / run.name
    suffix = "_" + run.name.rpartition("_")[2]
    if folder.exists() or not store.is_dir():
        return folder
    for other in sorted(store.iterdir()):
        config_path = other / "config.json"
        if (
            other.name.endswith(suffix)
            and config_path.is_file()
            and config_path.read_text().strip() == config_json(run.config).strip()
        ):
            return other
    return folder


@dataclass(frozen=True)
class RunStatus:
    """Where one run of the sweep stands."""

    name: str
    status: str  # pending | done (trained now) | skipped (complete before) | failed
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""
    folder: str = ""


def write_status(store: Path, grid: str, statuses: Sequence[RunStatus]) -> Path:
    """Write ``store/sweep_status.json`` atomically (readers never see half a file)."""
    counts = {key: sum(s.status == key for s in statuses) for key in ("done", "skipped", "failed", "pending")}
    record = {
        "grid": grid,
        "updated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "counts": counts,
        "runs": [dataclasses.asdict(status) for status in statuses],
    }
    path = store / STATUS_FILE
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------
# Executors: each runs a batch of (run, folder) and yields one Attempt per run as it ends.


@dataclass(frozen=True)
class Attempt:
    """One try of one run: ``error`` is empty when it finished."""

    name: str
    error: str
    seconds: float


def error_text(error: BaseException) -> str:
    """``Type: message`` of an exception, short enough for a status file."""
    return f"{type(error).__name__}: {error}"[:2000]


def train_in_process(config: TrainConfig, run_dir: Path, progress: bool = False) -> None:
    """Train (or resume) one run here: what every executor ends up calling."""
    from popgym_arcade.runs.train import train_run

    train_run(config, run_dir, resume=True, progress=progress)


@dataclass(frozen=True)
class InProcess:
    """One run after another in this process (compiled programs are reused between runs)."""

    progress: bool = False
    train: Callable[[TrainConfig, Path], None] | None = None  # tests count or fail runs with it

    def run(self, batch: Sequence[tuple[SweepRun, Path]]) -> Iterator[Attempt]:
        train = self.train or (lambda config, run_dir: train_in_process(config, run_dir, self.progress))
        for run, run_dir in batch:
            started = time.perf_counter()
            try:
                train(run.config, run_dir)
                error = ""
            except Exception as exc:  # noqa: BLE001 (reported, not fatal; Ctrl-C still stops the sweep)
                traceback.print_exc()
                error = error_text(exc)
            yield Attempt(run.name, error, time.perf_counter() - started)


def visible_gpus() -> tuple[str, ...]:
    """GPU ids this process may use, without initialising JAX (which would claim their memory)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return tuple(gpu for gpu in visible.split(",") if gpu.strip() and gpu.strip() != "-1")
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], check=False, capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU "))


@dataclass(frozen=True)
class Subprocesses:
    """Up to ``parallel`` worker processes at once; worker ``k`` sees GPU ``gpus[k % len(gpus)]``."""

    parallel: int
    gpus: tuple[str, ...] = ()

    def _env(self, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
            if self.parallel > len(self.gpus):  # workers share a GPU: no one may take 75% of it
                env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        return env

    def _one(self, run: SweepRun, run_dir: Path, slots: queue.Queue) -> Attempt:
        slot = slots.get()
        started = time.perf_counter()
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            with (run_dir / "sweep.log").open("a") as log:
                process = subprocess.run(
                    [sys.executable, "-m", "popgym_arcade.sweep", "--worker", str(run_dir)],
                    check=False,
                    input=json.dumps(run.config.to_dict()),
                    stdout=log,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=self._env(slot),
                )
                log.write(process.stderr)
            lines = [line for line in process.stderr.splitlines() if line.strip()]
            error = "" if process.returncode == 0 else (lines[-1] if lines else f"exit {process.returncode}")
        finally:
            slots.put(slot)
        return Attempt(run.name, error, time.perf_counter() - started)

    def run(self, batch: Sequence[tuple[SweepRun, Path]]) -> Iterator[Attempt]:
        slots: queue.Queue = queue.Queue()
        for slot in range(self.parallel):
            slots.put(slot)
        with concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
            futures = [pool.submit(self._one, run, run_dir, slots) for run, run_dir in batch]
            for future in concurrent.futures.as_completed(futures):
                yield future.result()


def _ray_train(config_dict: dict, run_dir: str) -> float:
    """A Ray task: train one run in the worker, return its seconds."""
    started = time.perf_counter()
    train_in_process(TrainConfig.from_dict(config_dict), Path(run_dir))
    return time.perf_counter() - started


@dataclass(frozen=True)
class RayExecutor:
    """One Ray task per run on the cluster at ``address`` (``local``: start one here)."""

    address: str

    def run(self, batch: Sequence[tuple[SweepRun, Path]]) -> Iterator[Attempt]:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            if self.address == "local":
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
        try:
            # One GPU per run when the cluster has GPUs; Ray sets CUDA_VISIBLE_DEVICES for it, and
            # max_calls=1 gives each such task a fresh worker: JAX binds its GPU once per process.
            gpus = ray.cluster_resources().get("GPU", 0) >= 1
            resources = {"num_gpus": 1, "max_calls": 1} if gpus else {"num_cpus": 1}
            # Failures are retried by the sweep (same count for every executor), not by Ray.
            task = ray.remote(max_retries=0, **resources)(_ray_train)
            pending = {task.remote(run.config.to_dict(), str(run_dir)): run for run, run_dir in batch}
            submitted = time.perf_counter()
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                run = pending.pop(ref)
                try:
                    yield Attempt(run.name, "", ray.get(ref))
                except Exception as exc:  # noqa: BLE001 (RayTaskError wraps the worker's error as .cause)
                    error = error_text(getattr(exc, "cause", None) or exc)
                    yield Attempt(run.name, error, time.perf_counter() - submitted)
        finally:
            if started_here:
                ray.shutdown()


# ---------------------------------------------------------------------------------------------
# The sweep


def run_sweep(
    runs: Sequence[SweepRun],
    store: str | os.PathLike,
    executor: Any,
    *,
    retries: int = 1,
    grid: str = "",
    log: Callable[[str], None] = print,
) -> tuple[RunStatus, ...]:
    """Train every incomplete run of ``runs`` into ``store`` with ``executor``.

    Complete runs are skipped; a run whose attempt fails is tried again, up to ``retries`` more
    times (in a later round, after the other runs), then marked failed. ``store/sweep_status.json``
    is rewritten after every attempt, so a killed sweep leaves the runs it did not finish
    ``pending``.
    """
    store = Path(store).absolute()  # Ray workers and subprocesses do not share our cwd
    store.mkdir(parents=True, exist_ok=True)
    folders = {run.name: run_dir_in(store, run) for run in runs}
    statuses = {
        run.name: RunStatus(
            run.name,
            "skipped" if is_complete(folders[run.name], run.config) else "pending",
            folder=folders[run.name].name,
        )
        for run in runs
    }
    lock = threading.Lock()

    def save() -> None:
        with lock:
            write_status(store, grid, list(statuses.values()))

    save()
    skipped = sum(s.status == "skipped" for s in statuses.values())
    if skipped:
        log(f"{skipped} of {len(runs)} run(s) complete in {store}: skipped")
    todo = [run for run in runs if statuses[run.name].status == "pending"]
    for attempt_number in range(1, retries + 2):
        if not todo:
            break
        log(f"attempt {attempt_number}: {len(todo)} run(s)")
        failed = []
        for attempt in executor.run([(run, folders[run.name]) for run in todo]):
            previous = statuses[attempt.name]
            last_try = attempt_number == retries + 1
            status = "done" if not attempt.error else ("failed" if last_try else "pending")
            statuses[attempt.name] = dataclasses.replace(
                previous, status=status, attempts=attempt_number, error=attempt.error,
                seconds=round(previous.seconds + attempt.seconds, 3),
            )  # fmt: skip
            save()
            outcome = "done" if not attempt.error else f"failed ({attempt.error})"
            log(f"  {attempt.name}: {outcome} in {attempt.seconds:.1f}s")
            if attempt.error:
                failed.append(attempt.name)
        todo = [run for run in todo if run.name in failed]
    return tuple(statuses.values())


def describe_runs(runs: Sequence[SweepRun], store: Path | None) -> str:
    """One line per run (``--dry-run``): name, steps x seeds, and whether the store has it."""
    lines = [f"{len(runs)} run(s)"]
    for run in runs:
        state = ""
        if store is not None:
            state = "complete" if is_complete(run_dir_in(store, run), run.config) else "to train"
        lines.append(f"{run.name:70s} {run.config.steps:>12,d} x {run.config.seeds} seed(s)  {state}")
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run ``popgym-arcade sweep``."""
    try:
        runs = load_grid(args.grid)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(describe_runs(runs, Path(args.store) if args.store else None))
        return 0
    if args.store is None:
        print("error: --store DIR is required (or pass --dry-run to list the runs)", file=sys.stderr)
        return 2
    if args.ray is not None:
        try:
            import ray  # noqa: F401
        except ImportError:
            print(f"error: --ray needs the `ray` extra: {install_hint('ray')}", file=sys.stderr)
            return 2
        executor: Any = RayExecutor(args.ray)
    elif args.parallel > 1:
        executor = Subprocesses(args.parallel, visible_gpus())
    else:
        executor = InProcess(progress=args.progress)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    statuses = run_sweep(runs, args.store, executor, retries=args.retries, grid=str(args.grid), log=log)
    counts = {key: sum(s.status == key for s in statuses) for key in ("done", "skipped", "failed")}
    print(f"{counts['done']} trained, {counts['skipped']} skipped (complete before), {counts['failed']} failed; "
          f"status: {Path(args.store) / STATUS_FILE}")  # fmt: skip
    for status in statuses:
        if status.status == "failed":
            print(
                f"failed: {status.name} after {status.attempts} attempt(s): {status.error}", file=sys.stderr
            )
    return 1 if counts["failed"] else 0


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` to the ``popgym-arcade`` sub-commands."""
    parser = sub.add_parser(
        "sweep",
        help="train a TOML grid of runs into a run store (locally, in N processes, or on Ray)",
        description="Expand GRID.toml ([base] config fields, [grid] lists: their cartesian product) into "
        "runs and train each into --store DIR/<name>. Complete runs are skipped, so re-running the same "
        "command after an interruption finishes the grid; failed runs are retried, then listed in "
        "DIR/sweep_status.json and the exit code is 1.",
    )
    parser.add_argument("grid", help="the grid file (TOML)")
    parser.add_argument("--store", default=None, help="run store: a folder (local or network file system)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="worker processes at once, one GPU each when GPUs are visible (default: 1, "
                        "in this process)")  # fmt: skip
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run each run as a Ray task on the cluster at ADDRESS ('local': start one here; "
                        "needs the ray extra)")  # fmt: skip
    parser.add_argument("--retries", type=_non_negative, default=1, help="tries after a failure (default: 1)")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=False, help="progress bars (in process)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the runs (and, with --store, what is done)"
    )
    parser.set_defaults(func=cmd_sweep)
    return parser


def _worker(run_dir: str) -> int:
    """``python -m popgym_arcade.sweep --worker RUN_DIR`` with the config JSON on stdin."""
    try:
        train_in_process(TrainConfig.from_dict(json.loads(sys.stdin.read())), Path(run_dir))
    except Exception as error:  # noqa: BLE001 (any failure is the run's; the sweep reports it)
        traceback.print_exc()
        print(error_text(error).replace("\n", " "), file=sys.stderr)  # the last line is the status's error
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker(sys.argv[2]))
    sys.exit(
        "usage: python -m popgym_arcade.sweep --worker RUN_DIR < config.json (popgym-arcade sweep runs it)"
    )
