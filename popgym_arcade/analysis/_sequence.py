"""The "sequence function" the introspection analyses take, and checks of its inputs and outputs.

A sequence function is ``apply(obs, start, prev_action) -> out`` where

- ``obs`` is float32 ``[T, H, W, C]`` in 0..255 pixel units (it is differentiated);
- ``start`` is bool ``[T]``, True on an episode's first frame (memory resets there);
- ``prev_action`` is int32 ``[T]``;
- ``out`` is float32 ``[T, A]``: Q-values for ``kind="q"``, action probabilities
  pi(a | s_t) for ``kind="policy"``;

and the whole sequence runs from a fresh memory carry. It must be causal (``out[t]`` depends
only on inputs at steps ``<= t``), as every recurrent memory model is, and traceable by JAX.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.analysis.records import AnalysisError

KINDS = ("q", "policy")
# Probabilities must sum to 1 within this tolerance (float32 softmax is well inside it).
PROBABILITY_TOLERANCE = 1e-3
# Compiled functions kept per apply object (each holds its model's parameters alive).
JIT_CACHE_SIZE = 4
_JIT_CACHE: OrderedDict[tuple[str, int], tuple[object, Callable]] = OrderedDict()


class SequenceFunction(Protocol):
    def __call__(self, obs: jnp.ndarray, start: jnp.ndarray, prev_action: jnp.ndarray) -> jnp.ndarray: ...


def check_kind(kind: str) -> str:
    """``kind`` itself if it is ``"q"`` or ``"policy"``."""
    if kind not in KINDS:
        raise AnalysisError(f"kind must be one of {KINDS} (Q-values or action probabilities), got {kind!r}")
    return kind


def check_sequence(obs, start, prev_action) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The inputs as (float32 ``[T, H, W, C]``, bool ``[T]``, int32 ``[T]``); errors on bad shapes."""
    obs = jnp.asarray(obs, dtype=jnp.float32)
    start = jnp.asarray(start, dtype=bool)
    prev_action = jnp.asarray(prev_action, dtype=jnp.int32)
    if obs.ndim != 4:
        raise AnalysisError(f"obs must be [T, H, W, C], got shape {obs.shape}")
    length = obs.shape[0]
    if length == 0:
        raise AnalysisError("the sequence is empty (T = 0)")
    if start.shape != (length,) or prev_action.shape != (length,):
        raise AnalysisError(
            f"start and prev_action must be [T] = [{length}], got {start.shape} and {prev_action.shape}"
        )
    return obs, start, prev_action


def check_outputs(out, kind: str, length: int) -> np.ndarray:
    """``out`` as a numpy ``[T, A]`` array; for ``kind="policy"`` its rows must be probabilities."""
    out = np.asarray(out)
    if out.ndim != 2 or out.shape[0] != length:
        raise AnalysisError(f"apply must return [T, A] = [{length}, A], got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise AnalysisError("apply returned non-finite values")
    if kind == "policy":
        check_probabilities(out)
    return out


def check_probabilities(out: np.ndarray) -> None:
    """Rows must be non-negative and sum to 1 (so a policy's logits are caught)."""
    sums = out.sum(axis=-1)
    if np.any(out < -PROBABILITY_TOLERANCE) or np.any(np.abs(sums - 1) > PROBABILITY_TOLERANCE):
        raise AnalysisError(
            "kind='policy' needs apply to return action probabilities pi(a|s) (softmax of the logits); "
            f"got rows summing to {sums.min():.4g}..{sums.max():.4g}"
        )


def check_step(step: int, length: int, what: str = "step") -> int:
    """``step`` as a non-negative index into ``[0, length)``; negative counts from the end."""
    if isinstance(step, bool) or not isinstance(step, int | np.integer):
        raise AnalysisError(f"{what} must be an integer, got {step!r}")
    step = int(step)
    if not -length <= step < length:
        raise AnalysisError(f"{what} {step} is outside the sequence of length {length}")
    return step % length


def cached_jit(tag: str, apply: SequenceFunction, build: Callable[[SequenceFunction], Callable]) -> Callable:
    """``jax.jit(build(apply))``, reused while the same ``apply`` object is passed again.

    Keyed by object identity (the cache keeps ``apply`` alive, so its id is not reused), which
    also works for unhashable callables such as equinox modules holding arrays. Pass the same
    object for every trajectory of a model to compile once per input shape.
    """
    key = (tag, id(apply))
    hit = _JIT_CACHE.get(key)
    if hit is not None and hit[0] is apply:
        _JIT_CACHE.move_to_end(key)
        return hit[1]
    compiled = jax.jit(build(apply))
    _JIT_CACHE[key] = (apply, compiled)
    while len(_JIT_CACHE) > JIT_CACHE_SIZE:
        _JIT_CACHE.popitem(last=False)
    return compiled
