"""Observability Gap and Memory Bias with bootstrap confidence intervals.

For a memory model f, its MDP twin M and POMDP twin P, let J(f, X) be the aggregate standardised
return of the agents with memory f trained *and* evaluated on twin X:

    J(f, X) = (1 / |E|) sum_{e in E} mean_{s in seeds(f, e, X)} R_s      (statistic="mean")

over the environments E of a scope (all envs, one game, one difficulty, or one env). Then

    Observability Gap  G(f) = J(f, M) - J(f, P)        smaller is better
    Memory Bias        B(f) = J(f, M) - J(b, M)        b = the memoryless baseline ("MLP")

B(b) = 0 by definition, and the human row has B = 0 (people are not compared with the
memoryless agent). Negative bias means the memory model is worse than no memory on the MDP.

With ``statistic="iqm"``, J is instead the inter-quartile mean of the pooled per-seed returns of
the scope (the rliable convention, Agarwal et al. 2021): sort the N values, drop floor(N/4) from
each end and average the rest. It is robust both to outlier seeds and to outlier envs.

Confidence intervals: percentile bootstrap over seeds. In each of ``n_bootstrap`` replicates the
seeds of every (model, env, twin) cell are resampled with replacement, independently of every
other cell (separate runs are independent samples), and J, G and B are recomputed from the same
replicate; the interval is the ((1-c)/2, (1+c)/2) percentile range of the replicates. The point
estimate is computed on the data, not on the replicates.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from popgym_arcade.analysis.records import (
    HUMAN_MODEL,
    TWINS,
    AnalysisError,
    ReturnRecord,
    require_single,
)

SCOPES = ("all", "game", "difficulty", "env")
STATISTICS = ("mean", "iqm")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval ``[low, high]`` (NaN without bootstrap)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class GapBiasRow:
    """One model in one scope: returns on each twin, Observability Gap and Memory Bias.

    ``scope`` is ``"all"``, ``"game"``, ``"difficulty"`` or ``"env"``; ``group`` is the game,
    difficulty or env id (``"all"`` for the scope ``"all"``).
    """

    scope: str
    group: str
    model: str
    algo: str
    baseline: str
    statistic: str
    confidence: float
    n_envs: int
    n_samples_mdp: int
    n_samples_pomdp: int
    mdp_return: Estimate
    pomdp_return: Estimate
    gap: Estimate
    bias: Estimate


def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Inter-quartile mean: the mean after dropping ``floor(n/4)`` values from each end.

    IQM(x) = mean(x_(k+1), ..., x_(n-k)) with x_(i) sorted and k = floor(n/4), which is
    ``scipy.stats.trim_mean(x, 0.25)``. For n < 4 it is the plain mean.
    """
    array = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = array.shape[axis]
    if n == 0:
        raise AnalysisError("the inter-quartile mean of no values is undefined")
    k = n // 4
    trimmed = np.take(array, np.arange(k, n - k), axis=axis)
    result = trimmed.mean(axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def _aggregate(cells: Sequence[np.ndarray], statistic: str) -> np.ndarray:
    """J over a scope from its per-env sample arrays, each ``[..., n_e]``: mean of env means or pooled IQM."""
    if statistic == "mean":
        return np.mean([cell.mean(axis=-1) for cell in cells], axis=0)
    return iqm(np.concatenate(cells, axis=-1), axis=-1)


def _estimate(value: float, replicates: np.ndarray | None, confidence: float) -> Estimate:
    if replicates is None:
        return Estimate(float(value), math.nan, math.nan)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(float(value), float(low), float(high))


def _model_order(models: Iterable[str], baseline: str) -> list[str]:
    """Baseline first, then Human, then the rest alphabetically (the paper's figure order)."""
    models = set(models)
    head = [m for m in (baseline, HUMAN_MODEL) if m in models]
    return head + sorted(models - set(head))


def _scope_groups(envs: Sequence[str], env_meta: dict[str, tuple[str, str]], scopes: Sequence[str]):
    """``[(scope, group, envs of the group)]`` in a stable order."""
    groups: list[tuple[str, str, list[str]]] = []
    for scope in scopes:
        if scope == "all":
            groups.append(("all", "all", list(envs)))
        elif scope == "env":
            groups.extend(("env", env, [env]) for env in envs)
        else:
            position = 0 if scope == "game" else 1
            keys = sorted({env_meta[env][position] for env in envs} - {""})
            groups.extend((scope, key, [e for e in envs if env_meta[e][position] == key]) for key in keys)
    return groups


def _check_complete(
    cells: dict, models: Sequence[str], envs: Sequence[str], baseline: str, algo: str
) -> None:
    """Every model needs both twins on every env; the baseline at least its MDP runs (named first)."""
    missing_baseline = [env for env in envs if (baseline, env, "mdp") not in cells]
    if missing_baseline:
        raise AnalysisError(
            f"Memory Bias needs the memoryless baseline: runs of algo={algo!r} memory={baseline!r} "
            f"trained and evaluated on the MDP twin (partial=False) for env(s) "
            f"{', '.join(missing_baseline)}; train and evaluate them, or name another baseline "
            f"(baseline=...)"
        )
    missing = [
        f"{model} on {env} ({twin.upper()})"
        for model in models
        for env in envs
        for twin in TWINS
        if (model, env, twin) not in cells
    ]
    if missing:
        raise AnalysisError(
            "every model needs returns on both twins of every env it is compared on; missing "
            + "; ".join(missing)
            + ": train and evaluate those runs (or play those human episodes), or restrict the "
            "comparison with envs=... / models=..."
        )


def gap_bias_table(
    records: Iterable[ReturnRecord],
    *,
    algo: str | None = None,
    baseline: str = "MLP",
    models: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    statistic: str = "mean",
    scopes: Sequence[str] = SCOPES,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[GapBiasRow, ...]:
    """Observability Gap and Memory Bias per model, in every scope (see the module docstring).

    Args:
        records: rows from :func:`~popgym_arcade.analysis.records.load_records`; only rows with
            ``trained_on == evaluated_on`` are used. Human rows join every algorithm.
        algo: the algorithm to compare; ``None`` requires the agent rows to have exactly one.
        baseline: the memoryless model that Memory Bias is measured against.
        models: models to include, in this order (default: all, baseline and Human first).
        envs: envs to include (default: all envs of the agent runs).
        statistic: ``"mean"`` (mean over envs of per-env means) or ``"iqm"``.
        scopes: any of ``"all"``, ``"game"``, ``"difficulty"``, ``"env"``.
        n_bootstrap: bootstrap replicates; 0 gives NaN intervals.
        confidence: interval coverage, e.g. 0.95.
        seed: seed of the bootstrap's random generator (the table is deterministic given it).

    Raises:
        AnalysisError: no agent runs; mixed algorithms with ``algo=None``; mixed observation
            sizes; no baseline runs (naming the runs needed); a model lacking a twin on an env.
    """
    if statistic not in STATISTICS:
        raise AnalysisError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    bad_scopes = [s for s in scopes if s not in SCOPES]
    if bad_scopes:
        raise AnalysisError(f"unknown scope(s) {bad_scopes}; scopes are {SCOPES}")
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence must lie in (0, 1), got {confidence}")
    if n_bootstrap < 0:
        raise AnalysisError(f"n_bootstrap must be >= 0, got {n_bootstrap}")

    matched = [row for row in records if row.trained_on == row.evaluated_on]
    agents = [row for row in matched if row.memory != HUMAN_MODEL]
    if not agents:
        raise AnalysisError("no agent runs trained and evaluated on the same twin to compare")
    if algo is None:
        algo = require_single(agents, "algo", "algorithm")
    algo = algo.lower()
    agents = [row for row in agents if row.algo == algo]
    if not agents:
        raise AnalysisError(f"no runs of algo={algo!r}")
    rows = agents + [row for row in matched if row.memory == HUMAN_MODEL]
    require_single(rows, "obs_size", "observation size")

    env_list = sorted({row.env for row in agents}) if envs is None else list(envs)
    unknown_envs = [env for env in env_list if env not in {row.env for row in rows}]
    if unknown_envs:
        raise AnalysisError(f"no runs on env(s) {', '.join(unknown_envs)}")
    env_meta = {row.env: (row.game, row.difficulty) for row in rows}
    present = {row.memory for row in rows if row.env in env_list}
    model_list = _model_order(present, baseline) if models is None else list(models)

    cells: dict[tuple[str, str, str], np.ndarray] = {}
    by_cell: dict[tuple[str, str, str], list[tuple[str, float]]] = {}
    for row in rows:
        if row.env in env_list:
            by_cell.setdefault((row.memory, row.env, row.evaluated_on), []).append(
                (row.sample, row.standardised_return)
            )
    for key, samples in by_cell.items():
        # Sorted by sample id so that the bootstrap draws do not depend on the file order.
        cells[key] = np.array([value for _, value in sorted(samples)], dtype=np.float64)
    _check_complete(cells, model_list, env_list, baseline, algo)

    rng = np.random.default_rng(seed)
    boot: dict[tuple[str, str, str], np.ndarray] = {}
    if n_bootstrap > 0:
        needed = {(m, e, t) for m in set(model_list) | {baseline} for e in env_list for t in TWINS}
        for key in sorted(k for k in cells if k in needed):
            values = cells[key]
            boot[key] = values[rng.integers(0, len(values), size=(n_bootstrap, len(values)))]

    def j_of(model: str, group_envs: Sequence[str], twin: str, source: dict) -> np.ndarray:
        return _aggregate([source[(model, env, twin)] for env in group_envs], statistic)

    table: list[GapBiasRow] = []
    for scope, group, group_envs in _scope_groups(env_list, env_meta, scopes):
        base_mdp = j_of(baseline, group_envs, "mdp", cells)
        base_mdp_boot = j_of(baseline, group_envs, "mdp", boot) if boot else None
        for model in model_list:
            mdp = j_of(model, group_envs, "mdp", cells)
            pomdp = j_of(model, group_envs, "pomdp", cells)
            mdp_boot = j_of(model, group_envs, "mdp", boot) if boot else None
            pomdp_boot = j_of(model, group_envs, "pomdp", boot) if boot else None
            gap_boot = None if mdp_boot is None else mdp_boot - pomdp_boot
            if model in (baseline, HUMAN_MODEL):
                bias = Estimate(0.0, 0.0, 0.0)
            else:
                bias_boot = None if mdp_boot is None else mdp_boot - base_mdp_boot
                bias = _estimate(mdp - base_mdp, bias_boot, confidence)
            table.append(
                GapBiasRow(
                    scope=scope,
                    group=group,
                    model=model,
                    algo=HUMAN_MODEL.lower() if model == HUMAN_MODEL else algo,
                    baseline=baseline,
                    statistic=statistic,
                    confidence=confidence,
                    n_envs=len(group_envs),
                    n_samples_mdp=sum(len(cells[(model, e, "mdp")]) for e in group_envs),
                    n_samples_pomdp=sum(len(cells[(model, e, "pomdp")]) for e in group_envs),
                    mdp_return=_estimate(mdp, mdp_boot, confidence),
                    pomdp_return=_estimate(pomdp, pomdp_boot, confidence),
                    gap=_estimate(mdp - pomdp, gap_boot, confidence),
                    bias=bias,
                )
            )
    return tuple(table)


# ---------------------------------------------------------------------------------------------
# Output

_ESTIMATES = ("mdp_return", "pomdp_return", "gap", "bias")
_CSV_HEADER = [
    "scope",
    "group",
    "model",
    "algo",
    "baseline",
    "statistic",
    "confidence",
    "n_envs",
    "n_samples_mdp",
    "n_samples_pomdp",
] + [f"{name}{suffix}" for name in _ESTIMATES for suffix in ("", "_low", "_high")]


def gap_bias_to_csv(rows: Iterable[GapBiasRow], path: str | os.PathLike) -> Path:
    """Write the table as CSV: one line per (scope, group, model); each estimate as value, low, high."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_CSV_HEADER)
        for row in rows:
            estimates = [getattr(row, name) for name in _ESTIMATES]
            writer.writerow(
                [
                    row.scope,
                    row.group,
                    row.model,
                    row.algo,
                    row.baseline,
                    row.statistic,
                    row.confidence,
                    row.n_envs,
                    row.n_samples_mdp,
                    row.n_samples_pomdp,
                ]
                + [f"{number:.6g}" for e in estimates for number in (e.value, e.low, e.high)]
            )
    return path


def _number(value: float) -> str:
    # Adding 0.0 turns the -0.0 of a rounded tiny negative into 0.0.
    return f"{round(value, 3) + 0.0:.3f}"


def _format(estimate: Estimate) -> str:
    if math.isnan(estimate.low):
        return _number(estimate.value)
    return f"{_number(estimate.value)} [{_number(estimate.low)}, {_number(estimate.high)}]"


def gap_bias_to_markdown(rows: Iterable[GapBiasRow], scope: str | None = None) -> str:
    """The table in Markdown (optionally one scope only); intervals in brackets."""
    rows = [row for row in rows if scope is None or row.scope == scope]
    if not rows:
        return "_no rows_\n"
    level = round(100 * rows[0].confidence)
    lines = [
        (
            f"Statistic: {rows[0].statistic} of standardised returns; brackets: {level}% bootstrap "
            f"confidence interval over seeds."
        ),
        "",
        (
            "| scope | group | model | envs | seeds MDP/POMDP | MDP return | POMDP return "
            "| Observability Gap | Memory Bias |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scope} | {row.group} | {row.model} | {row.n_envs} | "
            f"{row.n_samples_mdp}/{row.n_samples_pomdp} | {_format(row.mdp_return)} | "
            f"{_format(row.pomdp_return)} | {_format(row.gap)} | {_format(row.bias)} |"
        )
    return "\n".join(lines) + "\n"


def plot_gap_bias(
    rows: Iterable[GapBiasRow], path: str | os.PathLike, *, scope: str = "all", group: str = "all"
) -> Path:
    """The three-panel bar figure of one scope: POMDP return, Observability Gap, Memory Bias per model.

    Whiskers are the bootstrap confidence intervals of the table (none when NaN).
    """
    from popgym_arcade.analysis._figures import new_figure, palette, save_figure

    selected = [row for row in rows if row.scope == scope and row.group == group]
    if not selected:
        raise AnalysisError(f"no rows for scope={scope!r} group={group!r}")
    models = [row.model for row in selected]
    colours = palette(len(models))
    figure = new_figure(figsize=(11, 3.6))
    axes = figure.subplots(1, 3)
    panels = (
        ("pomdp_return", "POMDP return  J(f, P)"),
        ("gap", "Observability Gap  J(f, M) - J(f, P)"),
        ("bias", f"Memory Bias  J(f, M) - J({selected[0].baseline}, M)"),
    )
    positions = np.arange(len(models))
    for axis, (name, title) in zip(axes, panels, strict=True):
        estimates = [getattr(row, name) for row in selected]
        values = np.array([e.value for e in estimates])
        lows = np.array([e.low for e in estimates])
        highs = np.array([e.high for e in estimates])
        errors = None
        if not np.all(np.isnan(lows)):
            errors = np.vstack([np.nan_to_num(values - lows), np.nan_to_num(highs - values)])
        axis.bar(positions, values, color=colours, yerr=errors, capsize=3, edgecolor="black", linewidth=0.5)
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_xticks(positions, models, rotation=30, ha="right")
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"standardised return ({selected[0].statistic})")
    ci = round(100 * selected[0].confidence)
    algo = next((row.algo for row in selected if row.model != HUMAN_MODEL), "")
    figure.suptitle(
        f"{algo.upper()}, {scope}: {group} ({selected[0].n_envs} env(s); whiskers: {ci}% bootstrap "
        f"CI over seeds)",
        fontsize=10,
    )
    return save_figure(figure, path)
