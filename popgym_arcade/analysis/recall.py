"""Recall density: which part of a trajectory the last output draws on.

For one trajectory o_0..o_{L-1} (its own length L, never padded for the statistic), take the
saliency maps of the last output, n = L - 1 (see :mod:`popgym_arcade.analysis.saliency`), and
the total saliency of each frame

    m_t = sum_{x, y} S_t(x, y).

Frame t sits at relative position tau_t = t / (L - 1) (tau = 1 when L = 1) and falls in the
first third if tau < 1/3, the middle third if 1/3 <= tau < 2/3, and the last third if
tau >= 2/3 (decided in integers: 3t < L-1, 3t < 2(L-1), so there is no rounding at the edges).
The share of a third is

    share_k = sum_{t in third k} m_t / sum_t m_t.

A trajectory whose total saliency is 0 has no shares: all three are NaN and it is left out of
every average (and counted as excluded). Shares are averaged over the trajectories of a seed,
then over seeds, then over memory models and the envs of a game (each (env, model) weighs the
same), so every level is again a distribution over the thirds. An MDP agent should put its mass
in the last third; mass elsewhere is value smearing.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from popgym_arcade.analysis._sequence import SequenceFunction, check_kind, check_sequence
from popgym_arcade.analysis.records import AnalysisError, split_env_id
from popgym_arcade.analysis.saliency import frame_saliency, saliency_maps

THIRDS = ("first", "middle", "last")


def relative_positions(length: int) -> np.ndarray:
    """tau_t = t / (L - 1) for t = 0..L-1; ``[1.0]`` for L = 1."""
    if length < 1:
        raise AnalysisError(f"a trajectory needs at least one frame, got length {length}")
    if length == 1:
        return np.ones(1)
    return np.arange(length) / (length - 1)


def third_of_frames(length: int) -> np.ndarray:
    """The third (0 first, 1 middle, 2 last) of each frame of a trajectory of ``length`` frames."""
    if length < 1:
        raise AnalysisError(f"a trajectory needs at least one frame, got length {length}")
    if length == 1:
        return np.array([2])
    t = np.arange(length)
    span = length - 1
    # tau < 1/3  <=>  3t < L-1 ;  tau < 2/3  <=>  3t < 2(L-1): exact integer comparisons.
    return np.where(3 * t < span, 0, np.where(3 * t < 2 * span, 1, 2))


def recall_shares(frame_mass: Sequence[float] | np.ndarray) -> np.ndarray:
    """Shares of the total saliency per third, ``[3]`` summing to 1; all NaN when the total is 0.

    ``frame_mass[t]`` is the total saliency m_t of frame t (its own trajectory, not padded).
    """
    mass = np.asarray(frame_mass, dtype=np.float64)
    if mass.ndim != 1:
        raise AnalysisError(f"frame_mass must be [L], got shape {mass.shape}")
    if np.any(mass < 0) or not np.all(np.isfinite(mass)):
        raise AnalysisError("frame masses must be finite and non-negative")
    total = mass.sum()
    if total == 0:
        return np.full(3, np.nan)
    return np.bincount(third_of_frames(len(mass)), weights=mass, minlength=3) / total


def trajectory_recall(
    apply: SequenceFunction,
    kind: str,
    obs,
    start,
    prev_action,
    *,
    pad_to: int | None = None,
) -> np.ndarray:
    """Recall shares ``[3]`` of one trajectory, for the output at its last frame.

    ``pad_to`` pads the sequence at the end (zeros, ``start=True``) to a common length, so that
    trajectories of many lengths share one compiled saliency function. Because ``apply`` is
    causal, frames after the target cannot change ``out[L-1]``, and the statistic still uses
    the trajectory's own length L.
    """
    check_kind(kind)
    obs, start, prev_action = check_sequence(obs, start, prev_action)
    length = obs.shape[0]
    if pad_to is not None:
        if pad_to < length:
            raise AnalysisError(f"pad_to={pad_to} is shorter than the trajectory ({length} frames)")
        extra = pad_to - length
        obs = jnp.concatenate([obs, jnp.zeros((extra, *obs.shape[1:]), obs.dtype)])
        start = jnp.concatenate([start, jnp.ones(extra, bool)])
        prev_action = jnp.concatenate([prev_action, jnp.zeros(extra, prev_action.dtype)])
    maps = saliency_maps(apply, kind, obs, start, prev_action, target_step=length - 1)
    return recall_shares(frame_saliency(maps)[:length])


@dataclass(frozen=True)
class RecallSample:
    """The recall shares of one trajectory, with where it came from."""

    env: str
    twin: str
    model: str
    seed: int
    shares: tuple[float, float, float]

    @property
    def game(self) -> str:
        return split_env_id(self.env)[0]


@dataclass(frozen=True)
class RecallSummary:
    """Mean shares of one group (by default one game and twin), and how many trajectories fed it."""

    group: tuple[str, ...]
    first: float
    middle: float
    last: float
    n_trajectories: int
    n_excluded: int

    @property
    def shares(self) -> tuple[float, float, float]:
        return self.first, self.middle, self.last


def _nanmean_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the rows that are not NaN (NaN rows are trajectories with no saliency)."""
    kept = [row for row in rows if not np.any(np.isnan(row))]
    return np.mean(kept, axis=0) if kept else np.full(3, np.nan)


def summarise_recall(
    samples: Iterable[RecallSample], by: Sequence[str] = ("game", "twin")
) -> tuple[RecallSummary, ...]:
    """Nested means of the shares: trajectories -> seed -> (env, model) -> groups given by ``by``.

    ``by`` names fields of :class:`RecallSample` (``env``, ``game``, ``twin``, ``model``).
    A group whose every trajectory had zero saliency gets NaN shares.
    """
    samples = list(samples)
    if not samples:
        raise AnalysisError("no recall samples to summarise")
    per_seed: dict[tuple, list[np.ndarray]] = {}
    for sample in samples:
        key = (sample.env, sample.twin, sample.model, sample.seed)
        per_seed.setdefault(key, []).append(np.asarray(sample.shares, dtype=np.float64))
    per_env_model: dict[tuple, list[np.ndarray]] = {}
    for (env, twin, model, _seed), rows in per_seed.items():
        per_env_model.setdefault((env, twin, model), []).append(_nanmean_rows(rows))

    def group_of(env: str, twin: str, model: str) -> tuple[str, ...]:
        fields = {"env": env, "game": split_env_id(env)[0], "twin": twin, "model": model}
        return tuple(fields[name] for name in by)

    unknown = set(by) - {"env", "game", "twin", "model"}
    if unknown:
        raise AnalysisError(f"cannot group recall by {sorted(unknown)}; use env, game, twin or model")
    grouped: dict[tuple, list[np.ndarray]] = {}
    counts: dict[tuple, list[int]] = {}
    for (env, twin, model), rows in per_env_model.items():
        grouped.setdefault(group_of(env, twin, model), []).append(_nanmean_rows(rows))
    for sample in samples:
        key = group_of(sample.env, sample.twin, sample.model)
        tally = counts.setdefault(key, [0, 0])
        tally[0] += 1
        tally[1] += int(np.any(np.isnan(sample.shares)))
    summaries = []
    for key in sorted(grouped):
        first, middle, last = _nanmean_rows(grouped[key])
        summaries.append(RecallSummary(key, float(first), float(middle), float(last), *counts[key]))
    return tuple(summaries)


def recall_to_csv(summaries: Iterable[RecallSummary], path: str | os.PathLike, by=("game", "twin")) -> Path:
    """Write summaries as CSV: the group fields, the three shares, trajectory counts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*by, *THIRDS, "n_trajectories", "n_excluded"])
        for summary in summaries:
            writer.writerow(
                [
                    *summary.group,
                    *(f"{s:.6g}" for s in summary.shares),
                    summary.n_trajectories,
                    summary.n_excluded,
                ]
            )
    return path


def _paper_order(games: Iterable[str]) -> list[str]:
    """Built-in games in the paper's order, then any others alphabetically."""
    from popgym_arcade.registration import BUILTIN_GAMES

    rank = {name: i for i, (name, _) in enumerate(BUILTIN_GAMES)}
    return sorted(games, key=lambda g: (rank.get(g, len(rank)), g))


def plot_recall_density(
    summaries: Iterable[RecallSummary], path: str | os.PathLike, *, title: str | None = None
) -> Path:
    """Stacked bars of the thirds per game: MDP (blues) left, POMDP (oranges) right.

    ``summaries`` must be grouped by ``("game", "twin")`` (the default of :func:`summarise_recall`).
    """
    from popgym_arcade.analysis._figures import colormap, new_figure, save_figure

    summaries = list(summaries)
    if not summaries or any(len(s.group) != 2 for s in summaries):
        raise AnalysisError("plot_recall_density needs summaries grouped by ('game', 'twin')")
    games = _paper_order(dict.fromkeys(s.group[0] for s in summaries))
    lookup = {s.group: s for s in summaries}
    figure = new_figure(figsize=(max(4.5, 0.9 * len(games) + 1.5), 4.6))
    axis = figure.subplots()
    width = 0.38
    shades = {"mdp": colormap("Blues"), "pomdp": colormap("Oranges")}
    for offset, twin in ((-width / 2, "mdp"), (width / 2, "pomdp")):
        bottom = np.zeros(len(games))
        for k, third in enumerate(THIRDS):
            heights = np.array(
                [lookup[(g, twin)].shares[k] if (g, twin) in lookup else math.nan for g in games]
            )
            heights = np.nan_to_num(heights)
            axis.bar(
                np.arange(len(games)) + offset,
                heights,
                width,
                bottom=bottom,
                color=shades[twin](0.35 + 0.25 * k),
                edgecolor="white",
                linewidth=0.5,
                label=f"{twin.upper()} {third} third",
            )
            bottom += heights
    axis.set_xticks(np.arange(len(games)), games, rotation=30, ha="right")
    axis.set_xlim(-0.75, len(games) - 0.25)
    axis.set_ylim(0, 1)
    axis.set_ylabel("share of saliency of the last output")
    axis.legend(fontsize=7, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.28))
    axis.set_title(title or "Recall density (left bar MDP, right bar POMDP)", fontsize=10)
    return save_figure(figure, path)
