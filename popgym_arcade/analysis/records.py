"""Run records and human episodes as one tidy table of standardised returns.

A *run folder* is what training writes: ``config.json`` (at least ``algo``, ``env``, ``partial``,
``memory``, ``obs_size``, ``seed``, ``num_seeds``; or training's layout, with ``network.memory``
and ``seeds``: see :func:`flat_run_config`) and, once the run has been evaluated,
``evaluation.json``::

    {"env": "CartPoleEasy", "algo": "pqn", "memory": "GRU", "trained_on": "mdp" | "pomdp",
     "return_range": [lo, hi], "seeds": [0, 1, ...], "episodes_per_seed": int,
     "mdp": {"mean_return": [per seed], "episode_returns": [[...] per seed]},
     "pomdp": {...}}

A run trains several seeds at once; each seed is one sample. Each seed gives one row per twin it
was evaluated on, so a row says which twin the agent was *trained* on and which twin it was
*evaluated* on (the Observability Gap and Memory Bias use the rows where the two agree).

A *human episode* is a JSON file written by ``popgym-arcade play --save``::

    {"kind": "human_episode", "env", "partial", "obs_size", "seed", "actions", "rewards",
     "return", "length"}

Each file is one sample of the model ``"Human"`` (algo ``"human"``), trained and evaluated on
the twin it was played on.

Every return is standardised by its game's return range ``[lo, hi]``:

    standardised = (return - lo) / (hi - lo)

so that every game lies in ``[0, 1]`` whatever its reward scale (``[0, 1]`` or ``[-1, 1]``).
The value is not clipped: a return outside the declared range shows up as such.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

TWINS = ("mdp", "pomdp")
HUMAN_MODEL = "Human"
HUMAN_ALGO = "human"
REQUIRED_CONFIG_KEYS = ("algo", "env", "partial", "memory", "obs_size", "seed", "num_seeds")
REQUIRED_EVALUATION_KEYS = ("env", "algo", "memory", "trained_on", "return_range", "seeds")
HUMAN_KEYS = ("env", "partial", "obs_size", "seed", "return")
_LEVEL_PATTERN = re.compile(r"^(?P<game>.+?)(?P<difficulty>Easy|Medium|Hard)$")


class AnalysisError(ValueError):
    """Bad or incomplete input to an analysis: the message says what is wrong and what to do."""


@dataclass(frozen=True)
class ReturnRecord:
    """One sample: the mean evaluation return of one seed (or one human episode) on one twin.

    Attributes:
        env: environment id, e.g. ``"CartPoleEasy"``.
        game: the id without its difficulty, e.g. ``"CartPole"``.
        difficulty: ``"Easy"``, ``"Medium"``, ``"Hard"``, or ``""`` for an id without a level.
        algo: lower-case algorithm name (``"pqn"``, ``"ppo"``, ...; ``"human"`` for people).
        memory: memory model name as trained (``"GRU"``, ``"MLP"``, ...; ``"Human"`` for people).
        trained_on: twin the agent was trained on, ``"mdp"`` or ``"pomdp"``.
        evaluated_on: twin this return was measured on, ``"mdp"`` or ``"pomdp"``.
        seed: seed of the sample within its run (the human file's seed for people).
        sample: identifier of the sample, unique within a table (run folder and seed, or file).
        raw_return: the return in the game's own units (mean over evaluation episodes).
        standardised_return: ``(raw_return - lo) / (hi - lo)``.
        return_range: the game's ``(lo, hi)``.
        obs_size: observation side in pixels.
        source: the run folder or human file the row came from.
    """

    env: str
    game: str
    difficulty: str
    algo: str
    memory: str
    trained_on: str
    evaluated_on: str
    seed: int
    sample: str
    raw_return: float
    standardised_return: float
    return_range: tuple[float, float]
    obs_size: int
    source: str


COLUMNS = tuple(field.name for field in dataclasses.fields(ReturnRecord))


def split_env_id(env_id: str) -> tuple[str, str]:
    """``"CartPoleEasy" -> ("CartPole", "Easy")``; an id without a level gives ``(env_id, "")``."""
    match = _LEVEL_PATTERN.match(env_id)
    if match is None:
        return env_id, ""
    return match.group("game"), match.group("difficulty")


def standardise(value: float, return_range: tuple[float, float]) -> float:
    """``(value - lo) / (hi - lo)`` for ``return_range = (lo, hi)``, ``hi > lo``."""
    lo, hi = return_range
    return (float(value) - lo) / (hi - lo)


def twin_name(partial: bool) -> str:
    """``"pomdp"`` for the partially observable twin, ``"mdp"`` otherwise."""
    return "pomdp" if partial else "mdp"


# ---------------------------------------------------------------------------------------------
# Reading files


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as error:
        raise AnalysisError(f"cannot read {what} {path}: {error}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise AnalysisError(f"malformed JSON in {what} {path}: {error}") from error


def _require_keys(data: Any, keys: Iterable[str], path: Path, what: str) -> None:
    if not isinstance(data, dict):
        raise AnalysisError(f"{what} {path} must hold a JSON object, got {type(data).__name__}")
    missing = [key for key in keys if key not in data]
    if missing:
        raise AnalysisError(f"{what} {path} lacks the key(s) {', '.join(missing)}")


def _return_range(value: Any, path: Path) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as error:
        raise AnalysisError(f"return_range in {path} must be two numbers [lo, hi], got {value!r}") from error
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise AnalysisError(f"return_range in {path} must satisfy lo < hi (finite), got {value!r}")
    return lo, hi


def _finite_float(value: Any, path: Path, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise AnalysisError(f"{what} in {path} must be a number, got {value!r}") from error
    if not math.isfinite(number):
        raise AnalysisError(f"{what} in {path} is not finite: {value!r}")
    return number


def _twin_returns(evaluation: dict, twin: str, n_seeds: int, path: Path) -> list[float] | None:
    """Per-seed mean returns on ``twin``, or ``None`` when the run was not evaluated there."""
    block = evaluation.get(twin)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise AnalysisError(f"{path}: '{twin}' must be an object with 'mean_return', got {block!r}")
    if "mean_return" in block:
        values = block["mean_return"]
    elif "episode_returns" in block:
        # The mean over episodes is what mean_return would hold; accept either.
        episodes = block["episode_returns"]
        if not isinstance(episodes, list) or not all(isinstance(e, list) and e for e in episodes):
            raise AnalysisError(f"{path}: '{twin}.episode_returns' must be a non-empty list per seed")
        values = [float(np.mean(e)) for e in episodes]
    else:
        raise AnalysisError(f"{path}: '{twin}' has neither 'mean_return' nor 'episode_returns'")
    if not isinstance(values, list) or len(values) != n_seeds:
        raise AnalysisError(
            f"{path}: '{twin}.mean_return' must have one value per seed ({n_seeds}), got {values!r}"
        )
    return [_finite_float(v, path, f"{twin}.mean_return") for v in values]


def flat_run_config(config: Any) -> Any:
    """A run config with the flat keys this module reads, also for ``popgym-arcade train``'s layout.

    Training writes the memory model as ``network.memory`` and the number of seeds as ``seeds``
    (:class:`~popgym_arcade.agents.config.TrainConfig`); they are copied to ``memory`` and
    ``num_seeds`` unless those keys are already there. Anything else is returned unchanged.
    """
    if not isinstance(config, dict):
        return config
    flat = dict(config)
    network = config.get("network")
    if "memory" not in flat and isinstance(network, dict) and "memory" in network:
        flat["memory"] = network["memory"]
    if "num_seeds" not in flat and "seeds" in flat:
        flat["num_seeds"] = flat["seeds"]
    return flat


def load_run(run_dir: str | os.PathLike) -> tuple[ReturnRecord, ...]:
    """Rows of one run folder: one per (seed, twin evaluated on).

    Raises:
        AnalysisError: the folder has no ``config.json``; it has no ``evaluation.json`` (the run
            must finish training and be evaluated first); a file is malformed; or
            ``evaluation.json`` disagrees with ``config.json`` (env, algo, memory, twin).
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    evaluation_path = run_dir / "evaluation.json"
    if not config_path.is_file():
        raise AnalysisError(f"{run_dir} is not a run folder: it has no config.json")
    config = flat_run_config(_read_json(config_path, "run config"))
    _require_keys(config, REQUIRED_CONFIG_KEYS, config_path, "run config")
    if not evaluation_path.is_file():
        raise AnalysisError(
            f"run {run_dir} has no evaluation.json: the run must finish training and be evaluated "
            f"on both twins before it can be analysed (a run that was interrupted can be resumed)"
        )
    evaluation = _read_json(evaluation_path, "evaluation")
    _require_keys(evaluation, REQUIRED_EVALUATION_KEYS, evaluation_path, "evaluation")

    algo = str(config["algo"]).lower()
    memory = str(config["memory"])
    env_id = str(config["env"])
    trained_on = twin_name(bool(config["partial"]))
    mismatches = [
        f"{key}: config says {expected!r}, evaluation says {found!r}"
        for key, expected, found in (
            ("env", env_id, str(evaluation["env"])),
            ("algo", algo, str(evaluation["algo"]).lower()),
            ("memory", memory, str(evaluation["memory"])),
            ("trained_on", trained_on, str(evaluation["trained_on"])),
        )
        if expected != found
    ]
    if mismatches:
        raise AnalysisError(f"{evaluation_path} does not match its config.json: " + "; ".join(mismatches))

    return_range = _return_range(evaluation["return_range"], evaluation_path)
    seeds = evaluation["seeds"]
    if not isinstance(seeds, list) or not seeds:
        raise AnalysisError(f"{evaluation_path}: 'seeds' must be a non-empty list, got {seeds!r}")
    game, difficulty = split_env_id(env_id)
    rows = []
    for twin in TWINS:
        returns = _twin_returns(evaluation, twin, len(seeds), evaluation_path)
        if returns is None:
            continue
        for seed, value in zip(seeds, returns, strict=True):
            rows.append(
                ReturnRecord(
                    env=env_id,
                    game=game,
                    difficulty=difficulty,
                    algo=algo,
                    memory=memory,
                    trained_on=trained_on,
                    evaluated_on=twin,
                    seed=int(seed),
                    sample=f"{run_dir}#seed={int(seed)}",
                    raw_return=value,
                    standardised_return=standardise(value, return_range),
                    return_range=return_range,
                    obs_size=int(config["obs_size"]),
                    source=str(run_dir),
                )
            )
    if not rows:
        raise AnalysisError(f"{evaluation_path} holds no returns for either twin ('mdp' or 'pomdp')")
    return tuple(rows)


@cache
def registered_return_range(env_id: str) -> tuple[float, float]:
    """The return range the registered environment ``env_id`` declares (``env.return_range``)."""
    from popgym_arcade.registration import make

    try:
        env, _ = make(env_id)
    except ValueError as error:
        raise AnalysisError(f"cannot find the return range of {env_id!r}: {error}") from error
    value = getattr(env, "return_range", None)
    if value is None:
        raise AnalysisError(f"environment {env_id!r} does not declare a return_range")
    return float(value[0]), float(value[1])


def load_human_episode(
    path: str | os.PathLike,
    return_range_of: Callable[[str], tuple[float, float]] = registered_return_range,
) -> ReturnRecord:
    """The row of one human episode file (model ``"Human"``, one sample).

    The return range comes from the file's ``"return_range"`` when present, else from
    ``return_range_of(env_id)`` (by default the registered environment's ``return_range``).

    Raises:
        AnalysisError: malformed JSON, not a human episode, missing keys, or a ``"return"``
            that disagrees with the sum of ``"rewards"``.
    """
    path = Path(path)
    data = _read_json(path, "human episode")
    _require_keys(data, ("kind",), path, "human episode")
    if data["kind"] != "human_episode":
        raise AnalysisError(f"{path} is not a human episode (kind={data['kind']!r})")
    _require_keys(data, HUMAN_KEYS, path, "human episode")
    value = _finite_float(data["return"], path, "return")
    rewards = data.get("rewards")
    if (
        isinstance(rewards, list)
        and rewards
        and not math.isclose(sum(rewards), value, rel_tol=1e-4, abs_tol=1e-4)
    ):
        raise AnalysisError(f"{path}: 'return' {value} is not the sum of 'rewards' {sum(rewards)}")
    env_id = str(data["env"])
    if "return_range" in data:
        return_range = _return_range(data["return_range"], path)
    else:
        return_range = return_range_of(env_id)
    twin = twin_name(bool(data["partial"]))
    game, difficulty = split_env_id(env_id)
    return ReturnRecord(
        env=env_id,
        game=game,
        difficulty=difficulty,
        algo=HUMAN_ALGO,
        memory=HUMAN_MODEL,
        trained_on=twin,
        evaluated_on=twin,
        seed=int(data["seed"]),
        sample=str(path),
        raw_return=value,
        standardised_return=standardise(value, return_range),
        return_range=return_range,
        obs_size=int(data["obs_size"]),
        source=str(path),
    )


def _is_human_file(path: Path) -> bool:
    data = _read_json(path, "JSON file")
    return isinstance(data, dict) and data.get("kind") == "human_episode"


def find_sources(paths: Iterable[str | os.PathLike]) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """``(run folders, human episode files)`` under ``paths``.

    A path may be a run folder (it holds ``config.json``), a human episode file, or a folder
    searched recursively for both. A run folder is not searched further (its checkpoints and
    logs are not inputs). Other JSON files met while searching are read to see whether they are
    human episodes, so a malformed one is reported.

    Raises:
        AnalysisError: a path does not exist, or an explicitly named file is not a human episode.
    """
    runs: list[Path] = []
    humans: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise AnalysisError(f"{path} does not exist")
        if path.is_file():
            if not _is_human_file(path):
                raise AnalysisError(f"{path} is neither a run folder nor a human episode file")
            humans.append(path)
            continue
        for folder, subfolders, files in os.walk(path):
            folder_path = Path(folder)
            if "config.json" in files:
                runs.append(folder_path)
                subfolders[:] = []
                continue
            subfolders.sort()
            for name in sorted(files):
                candidate = folder_path / name
                if name.endswith(".json") and _is_human_file(candidate):
                    humans.append(candidate)
    # The same folder reached twice (e.g. named and also under a named parent) counts once.
    return tuple(dict.fromkeys(runs)), tuple(dict.fromkeys(humans))


def load_records(
    paths: Iterable[str | os.PathLike],
    *,
    return_range_of: Callable[[str], tuple[float, float]] = registered_return_range,
    skip_unevaluated: bool = False,
) -> tuple[ReturnRecord, ...]:
    """All rows of the run folders and human episodes found under ``paths`` (see :func:`find_sources`).

    Args:
        paths: run folders, human episode files, or folders holding them.
        return_range_of: return range of an env id, for human episodes that do not state it.
        skip_unevaluated: leave out (with a warning naming them) run folders that have no
            ``evaluation.json`` yet, e.g. runs still training; by default they are an error.

    Raises:
        AnalysisError: nothing found; any run or file is incomplete or malformed; or two run
            folders are the same run (same algo, env, twin, memory, obs_size and root seed),
            which would count its seeds twice.
    """
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    run_dirs, human_files = find_sources(paths)
    if not run_dirs and not human_files:
        raise AnalysisError(
            "no runs found under " + ", ".join(str(p) for p in paths) + ": expected run folders "
            "(with config.json and evaluation.json) or human episode files"
        )
    if skip_unevaluated:
        pending = [run for run in run_dirs if not (run / "evaluation.json").is_file()]
        if pending:
            warnings.warn(
                "skipping run(s) without evaluation.json: " + ", ".join(map(str, pending)), stacklevel=2
            )
        run_dirs = tuple(run for run in run_dirs if run not in pending)
        if not run_dirs and not human_files:
            raise AnalysisError("no evaluated runs found: every run found still lacks evaluation.json")
    rows: list[ReturnRecord] = []
    identities: dict[tuple, Path] = {}
    for run_dir in run_dirs:
        config = flat_run_config(_read_json(run_dir / "config.json", "run config"))
        _require_keys(config, REQUIRED_CONFIG_KEYS, run_dir / "config.json", "run config")
        identity = tuple(
            str(config[key]).lower() for key in ("algo", "env", "partial", "memory", "obs_size", "seed")
        )
        if identity in identities:
            raise AnalysisError(
                f"runs {identities[identity]} and {run_dir} are the same run (same algo, env, twin, "
                f"memory, obs_size and seed): pass only one of them"
            )
        identities[identity] = run_dir
        rows.extend(load_run(run_dir))
    rows.extend(load_human_episode(path, return_range_of) for path in human_files)
    return tuple(rows)


# ---------------------------------------------------------------------------------------------
# Table helpers


def select(records: Iterable[ReturnRecord], **criteria: Any) -> tuple[ReturnRecord, ...]:
    """Rows whose fields equal the given values; a value may be a set/tuple/list of allowed values.

    >>> select(rows, algo="pqn", evaluated_on=("mdp",))  # doctest: +SKIP
    """
    unknown = set(criteria) - set(COLUMNS)
    if unknown:
        raise AnalysisError(f"unknown record field(s) {sorted(unknown)}; fields are {list(COLUMNS)}")

    def keep(row: ReturnRecord) -> bool:
        for key, wanted in criteria.items():
            value = getattr(row, key)
            if isinstance(wanted, set | frozenset | tuple | list):
                if value not in wanted:
                    return False
            elif value != wanted:
                return False
        return True

    return tuple(row for row in records if keep(row))


def require_single(records: Iterable[ReturnRecord], field: str, what: str | None = None) -> Any:
    """The one value of ``field`` over ``records``; :class:`AnalysisError` when there are several.

    Used where an analysis expects one algorithm (or one game, one obs size, ...).
    """
    values = sorted({getattr(row, field) for row in records}, key=str)
    if not values:
        raise AnalysisError(f"no records to take the {what or field} from")
    if len(values) > 1:
        raise AnalysisError(
            f"expected runs of one {what or field}, got {len(values)}: {', '.join(map(str, values))}; "
            f"choose one (e.g. {field}={values[0]!r}) or pass only those runs"
        )
    return values[0]


def records_to_columns(records: Iterable[ReturnRecord]) -> dict[str, np.ndarray]:
    """The table as columns: ``{field: numpy array}`` (``return_range`` as an ``[N, 2]`` array)."""
    records = tuple(records)
    columns: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        values = [getattr(row, name) for row in records]
        if name == "return_range":
            columns[name] = np.asarray(values, dtype=np.float64).reshape(len(records), 2)
        elif name in ("raw_return", "standardised_return"):
            columns[name] = np.asarray(values, dtype=np.float64)
        elif name in ("seed", "obs_size"):
            columns[name] = np.asarray(values, dtype=np.int64)
        else:
            columns[name] = np.asarray(values, dtype=object)
    return columns


def write_records_csv(records: Iterable[ReturnRecord], path: str | os.PathLike) -> Path:
    """Write the table as CSV (one row per record; ``return_range`` as ``lo`` and ``hi`` columns)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = [name for name in COLUMNS if name != "return_range"] + ["return_lo", "return_hi"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in records:
            values = [getattr(row, name) for name in COLUMNS if name != "return_range"]
            writer.writerow([*values, *row.return_range])
    return path


def group_by(records: Iterable[ReturnRecord], *fields: str) -> dict[tuple, tuple[ReturnRecord, ...]]:
    """``{(values of fields): rows}`` in sorted key order."""
    groups: dict[tuple, list[ReturnRecord]] = {}
    for row in records:
        groups.setdefault(tuple(getattr(row, f) for f in fields), []).append(row)
    return {key: tuple(groups[key]) for key in sorted(groups, key=lambda k: tuple(map(str, k)))}
