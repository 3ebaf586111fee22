"""Pixel saliency through memory.

For a trajectory o_0..o_{T-1} replayed from a fresh memory carry, and a target step n, the map
of frame t is, per pixel (x, y),

    S_t(x, y) = sum_a sum_c ( d out[n, a] / d o_t(x, y, c) )^2        for t <= n
    S_t(x, y) = 0                                                      for t > n

where out is Q(s_n, a) for Q learners (``kind="q"``) or pi(a | s_n) for policy-gradient agents
(``kind="policy"``), s_n is the memory state after o_n, and the derivative goes through the
memory model and the head (the design's sum_a ||d Q(s_n, a) / d o_t||^2, per pixel).

Units: ``out`` units squared per pixel unit squared, with pixels in 0..255 (so a map computed
from a network fed 0..1 pixels would be 255^2 times larger). Figures show the maps divided by
their largest value in the figure, so one colour scale is shared by every panel.

Computation: one forward pass and A backward passes (one vector-Jacobian product per action,
accumulated as squares, so only one gradient of the sequence is alive at a time). The target
step is traced, so a jitted saliency function compiles once per sequence shape.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.analysis._sequence import (
    SequenceFunction,
    cached_jit,
    check_kind,
    check_probabilities,
    check_sequence,
    check_step,
)
from popgym_arcade.analysis.records import AnalysisError


def _saliency_core(
    apply: SequenceFunction,
    obs: jnp.ndarray,
    start: jnp.ndarray,
    prev_action: jnp.ndarray,
    target: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(maps [T, H, W], out[target] [A])`` for a traced ``target``."""

    def out_at_target(frames: jnp.ndarray) -> jnp.ndarray:
        out = apply(frames, start, prev_action)
        return jax.lax.dynamic_index_in_dim(out, target, axis=0, keepdims=False)

    out_n, pullback = jax.vjp(out_at_target, obs)
    num_actions = out_n.shape[0]

    def add_action(a: int, total: jnp.ndarray) -> jnp.ndarray:
        # The gradient of out[n, a] with respect to every frame: one vector-Jacobian product.
        (grad,) = pullback(jax.nn.one_hot(a, num_actions, dtype=out_n.dtype))
        return total + jnp.sum(jnp.square(grad), axis=-1)

    maps = jax.lax.fori_loop(0, num_actions, add_action, jnp.zeros(obs.shape[:-1], obs.dtype))
    # A causal model gives exact zeros after n anyway; the mask makes the definition explicit.
    after_target = jnp.arange(obs.shape[0]) > target
    return jnp.where(after_target[:, None, None], 0.0, maps), out_n


def saliency_function(apply: SequenceFunction) -> Callable:
    """A jitted ``f(obs, start, prev_action, target_step) -> (maps [T, H, W], out[target_step] [A])``.

    It compiles once per input shape; calls with the same ``apply`` object (identity) reuse it.
    """
    return cached_jit("saliency", apply, lambda f: functools.partial(_saliency_core, f))


def saliency_maps(
    apply: SequenceFunction,
    kind: str,
    obs,
    start,
    prev_action,
    target_step: int | None = None,
) -> jnp.ndarray:
    """Per-pixel saliency of every frame for the output at ``target_step`` (default: the last).

        S_t(x, y) = sum_a sum_c (d out[n, a] / d obs[t, x, y, c])^2   (t <= n),   0 for t > n

    Args:
        apply: the sequence function ``apply(obs, start, prev_action) -> out [T, A]``.
        kind: ``"q"`` (out are Q-values) or ``"policy"`` (out are probabilities pi(a|s)).
        obs: float ``[T, H, W, C]`` frames in 0..255 pixel units.
        start: bool ``[T]``, True on an episode's first frame.
        prev_action: int ``[T]``.
        target_step: n; negative counts from the end; default ``T - 1``.

    Returns:
        float32 ``[T, H, W]`` in (out units / pixel unit)^2.

    Raises:
        AnalysisError: bad shapes, a target step outside the sequence, or (``kind="policy"``)
            outputs that are not probabilities.
    """
    check_kind(kind)
    obs, start, prev_action = check_sequence(obs, start, prev_action)
    length = obs.shape[0]
    target = check_step(length - 1 if target_step is None else target_step, length, "target_step")
    maps, out_n = saliency_function(apply)(obs, start, prev_action, jnp.int32(target))
    if kind == "policy":
        check_probabilities(np.asarray(out_n)[None])
    return maps


def frame_saliency(maps) -> np.ndarray:
    """Total saliency of each frame: m_t = sum_{x, y} S_t(x, y), shape ``[T]``."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise AnalysisError(f"maps must be [T, H, W], got shape {maps.shape}")
    return maps.sum(axis=(1, 2))


def default_frame_steps(target_step: int, max_frames: int) -> list[int]:
    """Up to ``max_frames`` steps evenly spread over ``0..target_step``, always with 0 and the target."""
    if max_frames < 1:
        raise AnalysisError(f"max_frames must be >= 1, got {max_frames}")
    count = min(max_frames, target_step + 1)
    if count == 1:
        return [target_step]
    return sorted({round(x) for x in np.linspace(0, target_step, count)})


def plot_saliency(
    path: str | os.PathLike,
    frames: Sequence,
    maps: Sequence,
    *,
    labels: Sequence[str] = ("MDP", "POMDP"),
    target_steps: Sequence[int] | None = None,
    steps: Sequence[Sequence[int]] | None = None,
    max_frames: int = 8,
    title: str | None = None,
) -> Path:
    """Frames in a row with their saliency overlaid; one row per trajectory (MDP above POMDP).

    Every map of the figure is divided by the largest value shown, so the colour bar runs over
    [0, 1] for all panels (its label gives that largest value in (out units / pixel unit)^2).
    The overlay's opacity grows with saliency so the frame stays visible where nothing is salient.

    Args:
        path: output image (PNG, PDF, ... from the suffix).
        frames: per row, ``[T, H, W, 3]`` frames in 0..255.
        maps: per row, ``[T, H, W]`` maps from :func:`saliency_maps`.
        labels: row names.
        target_steps: per row, the step n the maps were computed for (default: the last).
        steps: per row, which frames to show (default: :func:`default_frame_steps`).
        max_frames: frames per row when ``steps`` is not given.
        title: figure title.
    """
    from popgym_arcade.analysis._figures import colormap, new_figure, save_figure

    if not (len(frames) == len(maps) == len(labels)) or not frames:
        raise AnalysisError("frames, maps and labels need one entry per row (at least one row)")
    frames = [np.asarray(f) for f in frames]
    maps = [np.asarray(m, dtype=np.float64) for m in maps]
    for row_frames, row_maps in zip(frames, maps, strict=True):
        if row_frames.ndim != 4 or row_maps.shape != row_frames.shape[:3]:
            raise AnalysisError(
                f"frames [T, H, W, 3] and maps [T, H, W] disagree: {row_frames.shape}, {row_maps.shape}"
            )
    if target_steps is None:
        target_steps = [len(m) - 1 for m in maps]
    if steps is None:
        steps = [default_frame_steps(int(n), max_frames) for n in target_steps]
    shown = [[check_step(int(s), len(m), "step") for s in row] for row, m in zip(steps, maps, strict=True)]
    scale = max(float(m[row].max()) for m, row in zip(maps, shown, strict=True) if row)
    scale = scale if scale > 0 else 1.0

    cmap = colormap("inferno")
    columns = max(len(row) for row in shown)
    figure = new_figure(figsize=(1.7 * columns + 1.0, 1.9 * len(shown) + 0.4))
    grid = figure.subplots(len(shown), columns, squeeze=False)
    rows = zip(frames, maps, shown, labels, target_steps, strict=True)
    for r, (row_frames, row_maps, row, label, target) in enumerate(rows):
        for c in range(columns):
            axis = grid[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c >= len(row):
                axis.set_axis_off()
                continue
            t = row[c]
            relative = np.clip(row_maps[t] / scale, 0.0, 1.0)
            overlay = cmap(relative)
            # sqrt opacity: faint but non-zero saliency stays visible without hiding the frame.
            overlay[..., 3] = 0.85 * np.sqrt(relative)
            axis.imshow(np.clip(row_frames[t], 0, 255).astype(np.uint8), interpolation="nearest")
            axis.imshow(overlay, interpolation="nearest")
            axis.set_title(f"o_{t}", fontsize=9)
            if c == 0:
                axis.set_ylabel(f"{label}\nn = {int(target)}", fontsize=10)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    colourbar = figure.colorbar(
        ScalarMappable(Normalize(0.0, 1.0), cmap), ax=grid.ravel().tolist(), shrink=0.8, pad=0.01
    )
    colourbar.set_label(f"saliency / {scale:.3g} (out units^2 per pixel unit^2)", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)
