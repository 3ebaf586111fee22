"""Observation and action spaces (the gymnax 1.0 ``Discrete`` and ``Box`` contract)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class Discrete:
    """Integers ``0 .. n-1``.

    Args:
        n: number of values.
        dtype: dtype of samples.
    """

    def __init__(self, n: int, dtype: Any = jnp.int32):
        if n < 1:
            raise ValueError(f"Discrete space needs n >= 1, got {n}")
        self.n = int(n)
        self.shape: tuple[int, ...] = ()
        self.dtype = dtype

    def sample(self, key: jax.Array) -> jax.Array:
        """A uniformly random value."""
        return jax.random.randint(key, self.shape, 0, self.n).astype(self.dtype)

    def contains(self, x: Any) -> jax.Array:
        """Whether ``x`` is an integer scalar in ``[0, n)``."""
        x = jnp.asarray(x)
        if x.shape != self.shape or not jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.asarray(False)
        return jnp.logical_and(x >= 0, x < self.n)

    def __repr__(self) -> str:
        return f"Discrete({self.n})"


class Box:
    """Arrays of a fixed shape and dtype with values in ``[low, high]``.

    Unlike gymnax's ``Box``, ``contains`` also checks shape and dtype.
    """

    def __init__(self, low: Any, high: Any, shape: tuple[int, ...], dtype: Any = jnp.float32):
        self.low = low
        self.high = high
        self.shape = tuple(shape)
        self.dtype = dtype

    def sample(self, key: jax.Array) -> jax.Array:
        """A uniformly random array (integers for integer dtypes)."""
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jax.random.randint(key, self.shape, self.low, int(self.high) + 1).astype(self.dtype)
        return jax.random.uniform(key, self.shape, minval=self.low, maxval=self.high).astype(self.dtype)

    def contains(self, x: Any) -> jax.Array:
        """Whether ``x`` has this shape and dtype and lies within the bounds."""
        x = jnp.asarray(x)
        if x.shape != self.shape or x.dtype != np.dtype(self.dtype):
            return jnp.asarray(False)
        return jnp.logical_and(jnp.all(x >= self.low), jnp.all(x <= self.high))

    def __repr__(self) -> str:
        return f"Box(low={self.low}, high={self.high}, shape={self.shape}, dtype={np.dtype(self.dtype).name})"
