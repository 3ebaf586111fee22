"""Memory contamination: perturb a past frame, replay through memory, measure what changes.

Perturbations (only the observations change; ``start`` and ``prev_action`` are replayed as
recorded, so the replay isolates what memory carries forward):

- noise: o'_k = clip(o_k + sigma * eps, 0, 255), eps ~ N(0, I), sigma in 0..255 pixel units;
  the perturbation spans step k (first = last = k);
- shuffle: o'_i = o_{p(i)} for i < k with p a permutation of 0..k-1 drawn uniformly among the
  non-identity ones (so it is never a no-op); it spans from the first moved frame to k - 1.

Both the clean and the perturbed sequence are replayed through ``apply`` from a fresh memory
carry, so without a perturbation the two replays agree exactly. At every step t:

- Q learners (``kind="q"``): A(s, a) = Q(s, a) - mean_a' Q(s, a'); the change is
  dA_t = A'_t - A_t, reported as its L2 norm ||dA_t||_2 and max_a |dA_t(a)|;
- policies (``kind="policy"``): KL(pi_t || pi'_t) = sum_a pi_t(a) log(pi_t(a) / pi'_t(a))
  (probabilities floored at 1e-12 inside the log), and dA on the mean-centred probabilities;
- flipped_t: whether argmax_a out'_t differs from argmax_a out_t.

Offsets count steps after the last perturbed step: d = t - last. Summary of one replay:

- flip horizon: the largest d >= 0 with a flipped action (-1 if none), also given as the step
  t = last + d (``last_flipped_step``, -1 if none);
- flip fraction: the share of later steps (d >= 1) with a flipped action;
- mean change: the mean of the change (||dA||_2, or the KL) over later steps (d >= 1);
- the change and flip at the perturbation itself (d = 0).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.analysis._sequence import (
    SequenceFunction,
    cached_jit,
    check_kind,
    check_outputs,
    check_sequence,
    check_step,
)
from popgym_arcade.analysis.records import AnalysisError

PROBABILITY_FLOOR = 1e-12


# ---------------------------------------------------------------------------------------------
# Perturbations


def add_frame_noise(obs, step: int, sigma: float, key: jax.Array) -> jnp.ndarray:
    """``obs`` with Gaussian noise of scale ``sigma`` (0..255 units) on frame ``step``, clipped to 0..255.

    o'_step = clip(o_step + sigma * eps, 0, 255),  eps ~ N(0, I);  o'_t = o_t otherwise.
    """
    obs = jnp.asarray(obs, jnp.float32)
    if obs.ndim < 1:
        raise AnalysisError("obs must be a sequence of frames")
    step = check_step(step, obs.shape[0], "noise step")
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise AnalysisError(f"sigma must be a finite number >= 0 (pixel units), got {sigma}")
    noisy = jnp.clip(obs[step] + sigma * jax.random.normal(key, obs.shape[1:], jnp.float32), 0.0, 255.0)
    return obs.at[step].set(noisy)


def shuffle_permutation(k: int, key: jax.Array) -> np.ndarray:
    """A permutation of ``0..k-1``, uniform among the non-identity ones (``k >= 2``)."""
    if k < 2:
        raise AnalysisError(f"shuffling needs at least 2 frames, got k={k}")
    attempt = 0
    while True:
        # Rejection sampling: a uniform permutation conditioned on not being the identity.
        permutation = np.asarray(jax.random.permutation(jax.random.fold_in(key, attempt), k))
        if np.any(permutation != np.arange(k)):
            return permutation
        attempt += 1


def shuffle_first_frames(obs, k: int, key: jax.Array) -> tuple[jnp.ndarray, np.ndarray]:
    """``(obs with frames 0..k-1 permuted, permutation p)``: o'_i = o_{p(i)} for i < k."""
    obs = jnp.asarray(obs, jnp.float32)
    if not 2 <= k <= obs.shape[0]:
        raise AnalysisError(f"k must lie in [2, T] = [2, {obs.shape[0]}], got {k}")
    permutation = shuffle_permutation(k, key)
    order = np.concatenate([permutation, np.arange(k, obs.shape[0])])
    return obs[order], permutation


# ---------------------------------------------------------------------------------------------
# Replays and metrics


@dataclass(frozen=True, eq=False)
class ContaminationResult:
    """Per-step comparison of a clean and a perturbed replay (arrays over all T steps).

    Steps before ``first_perturbed`` are unchanged for a causal model; ``offsets`` is
    ``t - last_perturbed``.
    """

    kind: str
    perturbation: str
    first_perturbed: int
    last_perturbed: int
    clean_out: np.ndarray
    perturbed_out: np.ndarray
    advantage_l2: np.ndarray
    advantage_max_abs: np.ndarray
    kl: np.ndarray
    clean_action: np.ndarray
    perturbed_action: np.ndarray
    flipped: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.arange(len(self.flipped)) - self.last_perturbed

    @property
    def change(self) -> np.ndarray:
        """The headline change per step: ||dA||_2 for Q learners, KL(pi || pi') for policies."""
        return self.kl if self.kind == "policy" else self.advantage_l2


@dataclass(frozen=True)
class ContaminationSummary:
    """Summary numbers of one replay (see the module docstring)."""

    perturbation: str
    kind: str
    last_perturbed: int
    flip_horizon: int
    last_flipped_step: int
    flip_fraction: float
    mean_change: float
    change_at_perturbation: float
    flipped_at_perturbation: bool
    n_later_steps: int


def mean_centred(out: np.ndarray) -> np.ndarray:
    """A(s, a) = out(s, a) - mean_a' out(s, a'), per row."""
    return out - out.mean(axis=-1, keepdims=True)


def policy_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row = sum_a p_a (log p_a - log q_a); terms with p_a = 0 count 0."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    logs = np.log(np.maximum(p, PROBABILITY_FLOOR)) - np.log(np.maximum(q, PROBABILITY_FLOOR))
    return np.sum(np.where(p > 0, p * logs, 0.0), axis=-1)


def compare_outputs(
    kind: str,
    clean_out,
    perturbed_out,
    *,
    first_perturbed: int,
    last_perturbed: int,
    perturbation: str = "custom",
) -> ContaminationResult:
    """Per-step metrics between two output sequences ``[T, A]`` (no replay; see :func:`compare_replays`)."""
    check_kind(kind)
    clean = np.asarray(clean_out, np.float64)
    perturbed = np.asarray(perturbed_out, np.float64)
    if clean.shape != perturbed.shape or clean.ndim != 2:
        raise AnalysisError(f"outputs must both be [T, A], got {clean.shape} and {perturbed.shape}")
    length = clean.shape[0]
    first = check_step(first_perturbed, length, "first_perturbed")
    last = check_step(last_perturbed, length, "last_perturbed")
    if first > last:
        raise AnalysisError(f"first_perturbed {first} is after last_perturbed {last}")
    delta = mean_centred(perturbed) - mean_centred(clean)
    clean_action = clean.argmax(axis=-1)
    perturbed_action = perturbed.argmax(axis=-1)
    return ContaminationResult(
        kind=kind,
        perturbation=perturbation,
        first_perturbed=first,
        last_perturbed=last,
        clean_out=clean,
        perturbed_out=perturbed,
        advantage_l2=np.linalg.norm(delta, axis=-1),
        advantage_max_abs=np.abs(delta).max(axis=-1),
        kl=policy_kl(clean, perturbed) if kind == "policy" else np.full(length, np.nan),
        clean_action=clean_action,
        perturbed_action=perturbed_action,
        flipped=clean_action != perturbed_action,
    )


def compare_replays(
    apply: SequenceFunction,
    kind: str,
    clean_obs,
    perturbed_obs,
    start,
    prev_action,
    *,
    first_perturbed: int,
    last_perturbed: int,
    perturbation: str = "custom",
) -> ContaminationResult:
    """Replay both sequences through ``apply`` (fresh carry each) and compare every step."""
    check_kind(kind)
    clean_obs, start, prev_action = check_sequence(clean_obs, start, prev_action)
    perturbed_obs = jnp.asarray(perturbed_obs, jnp.float32)
    if perturbed_obs.shape != clean_obs.shape:
        raise AnalysisError(
            f"perturbed obs {perturbed_obs.shape} and clean obs {clean_obs.shape} differ in shape"
        )
    length = clean_obs.shape[0]
    replay = cached_jit("replay", apply, lambda f: f)
    clean_out = check_outputs(replay(clean_obs, start, prev_action), kind, length)
    perturbed_out = check_outputs(replay(perturbed_obs, start, prev_action), kind, length)
    return compare_outputs(
        kind,
        clean_out,
        perturbed_out,
        first_perturbed=first_perturbed,
        last_perturbed=last_perturbed,
        perturbation=perturbation,
    )


def noise_contamination(
    apply: SequenceFunction, kind: str, obs, start, prev_action, *, step: int, sigma: float, key: jax.Array
) -> ContaminationResult:
    """Noise of scale ``sigma`` (0..255 units) on frame ``step``, replayed; see :func:`add_frame_noise`."""
    obs, start, prev_action = check_sequence(obs, start, prev_action)
    step = check_step(step, obs.shape[0], "noise step")
    noisy = add_frame_noise(obs, step, sigma, key)
    return compare_replays(
        apply,
        kind,
        obs,
        noisy,
        start,
        prev_action,
        first_perturbed=step,
        last_perturbed=step,
        perturbation="noise",
    )


def shuffle_contamination(
    apply: SequenceFunction, kind: str, obs, start, prev_action, *, k: int, key: jax.Array
) -> ContaminationResult:
    """The first ``k`` frames shuffled (never the identity), replayed; see :func:`shuffle_first_frames`."""
    obs, start, prev_action = check_sequence(obs, start, prev_action)
    shuffled, permutation = shuffle_first_frames(obs, k, key)
    first = int(np.flatnonzero(permutation != np.arange(k))[0])
    return compare_replays(
        apply,
        kind,
        obs,
        shuffled,
        start,
        prev_action,
        first_perturbed=first,
        last_perturbed=k - 1,
        perturbation="shuffle",
    )


# ---------------------------------------------------------------------------------------------
# Summaries


def summarise_contamination(result: ContaminationResult) -> ContaminationSummary:
    """Flip horizon, flip fraction and mean change of one replay (see the module docstring)."""
    offsets = result.offsets
    at_or_after = offsets >= 0
    later = offsets >= 1
    flipped_offsets = offsets[at_or_after & result.flipped]
    n_later = int(later.sum())
    return ContaminationSummary(
        perturbation=result.perturbation,
        kind=result.kind,
        last_perturbed=result.last_perturbed,
        flip_horizon=int(flipped_offsets.max()) if flipped_offsets.size else -1,
        last_flipped_step=result.last_perturbed + int(flipped_offsets.max()) if flipped_offsets.size else -1,
        flip_fraction=float(result.flipped[later].mean()) if n_later else math.nan,
        mean_change=float(result.change[later].mean()) if n_later else math.nan,
        change_at_perturbation=float(result.change[result.last_perturbed]),
        flipped_at_perturbation=bool(result.flipped[result.last_perturbed]),
        n_later_steps=n_later,
    )


@dataclass(frozen=True, eq=False)
class OffsetCurve:
    """Change and flip rate against steps after the perturbation, over many replays.

    ``low``/``high`` are mean -/+ 1.96 standard errors (sample std, ddof 1) of the replays that
    reach that offset: a normal-approximation 95% interval of the mean (equal to the mean where
    only one replay reaches it).
    """

    offsets: np.ndarray
    mean_change: np.ndarray
    low: np.ndarray
    high: np.ndarray
    flip_rate: np.ndarray
    count: np.ndarray


def change_by_offset(results: Iterable[ContaminationResult], max_offset: int | None = None) -> OffsetCurve:
    """Average the change and the flips of replays aligned at their last perturbed step (d >= 0)."""
    results = list(results)
    if not results:
        raise AnalysisError("no contamination results to average")
    horizon = max(len(r.flipped) - 1 - r.last_perturbed for r in results)
    if max_offset is not None:
        horizon = min(horizon, max_offset)
    offsets = np.arange(horizon + 1)
    mean_change, low, high, flip_rate, count = (np.full(len(offsets), np.nan) for _ in range(5))
    for d in offsets:
        values = [r.change[r.last_perturbed + d] for r in results if r.last_perturbed + d < len(r.flipped)]
        flips = [r.flipped[r.last_perturbed + d] for r in results if r.last_perturbed + d < len(r.flipped)]
        n = len(values)
        count[d] = n
        mean_change[d] = np.mean(values)
        half = 1.96 * np.std(values, ddof=1) / math.sqrt(n) if n > 1 else 0.0
        low[d], high[d] = mean_change[d] - half, mean_change[d] + half
        flip_rate[d] = np.mean(flips)
    return OffsetCurve(offsets, mean_change, low, high, flip_rate, count.astype(int))


def contamination_to_csv(
    summaries: Iterable[ContaminationSummary],
    path: str | os.PathLike,
    labels: Sequence[Mapping] | None = None,
) -> Path:
    """Write summaries as CSV; ``labels`` (one dict per summary: env, model, seed, ...) lead each line."""
    summaries = list(summaries)
    labels = list(labels) if labels is not None else [{} for _ in summaries]
    if len(labels) != len(summaries):
        raise AnalysisError("labels need one entry per summary")
    label_keys = list(dict.fromkeys(key for label in labels for key in label))
    names = [f.name for f in fields(ContaminationSummary)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(label_keys + names)
        for label, summary in zip(labels, summaries, strict=True):
            writer.writerow([label.get(key, "") for key in label_keys] + [getattr(summary, n) for n in names])
    return path


# ---------------------------------------------------------------------------------------------
# Figures


def plot_contamination_curves(
    results: Mapping[str, Sequence[ContaminationResult]],
    path: str | os.PathLike,
    *,
    max_offset: int | None = None,
    title: str | None = None,
) -> Path:
    """Change and flip rate against steps after the perturbation; one line (with band) per label.

    ``results`` maps a label (e.g. ``"GRU, POMDP"``) to its replays over trajectories and seeds.
    """
    from popgym_arcade.analysis._figures import new_figure, palette, save_figure

    if not results:
        raise AnalysisError("no contamination results to plot")
    kinds = {r.kind for rs in results.values() for r in rs}
    change_label = " / ".join(
        sorted({"||dA||_2 (mean-centred Q)" if k == "q" else "KL(pi || pi')" for k in kinds})
    )
    figure = new_figure(figsize=(9, 3.4))
    change_axis, flip_axis = figure.subplots(1, 2)
    for colour, (label, replays) in zip(palette(len(results)), results.items(), strict=True):
        curve = change_by_offset(replays, max_offset)
        change_axis.plot(curve.offsets, curve.mean_change, color=colour, label=f"{label} (n={len(replays)})")
        change_axis.fill_between(curve.offsets, curve.low, curve.high, color=colour, alpha=0.25, linewidth=0)
        flip_axis.plot(curve.offsets, curve.flip_rate, color=colour, label=label)
    change_axis.set_xlabel("steps after the perturbation")
    change_axis.set_ylabel(change_label)
    change_axis.set_title("change (mean, band: 95% CI of the mean)", fontsize=9)
    flip_axis.set_xlabel("steps after the perturbation")
    flip_axis.set_ylabel("share of replays with a flipped greedy action")
    flip_axis.set_ylim(-0.02, 1.02)
    change_axis.legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def plot_contamination_example(
    clean_obs,
    perturbed_obs,
    result: ContaminationResult,
    path: str | os.PathLike,
    *,
    max_frames: int = 8,
    title: str | None = None,
) -> Path:
    """One replay: clean frames (top), perturbed frames (middle), change per step (bottom).

    Shown frames run from the first perturbed step to the end; titles give the greedy action
    (clean -> perturbed), in red where it flipped.
    """
    from popgym_arcade.analysis._figures import new_figure, save_figure

    clean_obs = np.asarray(clean_obs)
    perturbed_obs = np.asarray(perturbed_obs)
    length = len(result.flipped)
    if clean_obs.shape != perturbed_obs.shape or clean_obs.shape[0] != length:
        raise AnalysisError("clean and perturbed frames must match the replay's length")
    count = min(max_frames, length - result.first_perturbed)
    steps = sorted({round(x) for x in np.linspace(result.first_perturbed, length - 1, count)})
    figure = new_figure(figsize=(1.6 * len(steps) + 0.6, 5.6))
    grid = figure.add_gridspec(3, len(steps), height_ratios=(1, 1, 1.1))
    for c, t in enumerate(steps):
        for r, (frames, name) in enumerate(((clean_obs, "clean"), (perturbed_obs, "perturbed"))):
            axis = figure.add_subplot(grid[r, c])
            axis.imshow(np.clip(frames[t], 0, 255).astype(np.uint8), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if c == 0:
                axis.set_ylabel(name, fontsize=9)
            if r == 1:
                colour = "red" if result.flipped[t] else "black"
                axis.set_title(
                    f"t={t}: {result.clean_action[t]}->{result.perturbed_action[t]}", fontsize=8, color=colour
                )
    line = figure.add_subplot(grid[2, :])
    t = np.arange(length)
    line.plot(t, result.change, color="tab:blue")
    line.scatter(
        t[result.flipped], result.change[result.flipped], color="red", s=12, zorder=3, label="flipped"
    )
    line.axvspan(
        result.first_perturbed - 0.5, result.last_perturbed + 0.5, color="grey", alpha=0.2, label="perturbed"
    )
    line.set_xlabel("step t")
    line.set_ylabel("||dA||_2" if result.kind == "q" else "KL(pi || pi')")
    line.legend(fontsize=7)
    figure.suptitle(title or f"{result.perturbation} perturbation", fontsize=10)
    return save_figure(figure, path)
