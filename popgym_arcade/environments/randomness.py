"""Random numbers for game rules: one cheap-to-compile PRNG call per reset or step.

Every ``jax.random`` call in traced code is a threefry computation that XLA compiles on its own,
and on a CPU it compiles slowly: JAX lowers threefry's rounds as a loop, which XLA turns into
some ten kernels, about 0.1 to 0.2 s of compile time on 2 cores (``jax.random.randint`` makes
three such calls: a split and two draws). A game's reset runs inside every step (auto-reset),
so this adds up to seconds per program that steps an env. The built-in games therefore

* draw all the random numbers a reset (or a step) needs as 32-bit words with one call of
  :func:`random_bits`, and turn words into what they need with :func:`integers_below`,
  :func:`unit_floats` and :func:`standard_normals`;
* split keys with :func:`split`.

:func:`random_bits` and :func:`split` return exactly what ``jax.random.bits`` and
``jax.random.split`` return for threefry keys (JAX's default), computed with threefry's rounds
written out so that XLA fuses them into one kernel; other key types go to ``jax.random``.

    words = random_bits(key, (3,))
    x, y = integers_below(words[:2], board_size)
    coin = unit_floats(words[2]) < 0.5
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_UNIT = np.float32(2.0**-24)

# Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
# SC 2011): the rotation distances of even and odd groups of four rounds, and the key-schedule
# parity constant.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, distance: int) -> jax.Array:
    return (x << np.uint32(distance)) | (x >> np.uint32(32 - distance))


def threefry2x32(key: tuple[jax.Array, jax.Array], counts: tuple[jax.Array, jax.Array]):
    """Threefry-2x32 of ``counts`` (two ``uint32`` arrays) under ``key`` (two ``uint32`` words).

    Straight-line code: XLA fuses it into one elementwise kernel. Equal to JAX's threefry
    primitive (``jax.extend.random.threefry_2x32``), which the tests check.
    """
    schedule = (key[0], key[1], key[0] ^ key[1] ^ _PARITY)
    x0, x1 = counts[0] + schedule[0], counts[1] + schedule[1]
    for group in range(5):
        for distance in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, distance) ^ x0
        x0 = x0 + schedule[(group + 1) % 3]
        x1 = x1 + schedule[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def _threefry_words(key: jax.Array) -> tuple[jax.Array, jax.Array] | None:
    """The two key words of a threefry key (typed or raw ``uint32[2]``), else ``None``."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        data = jax.random.key_data(key)
    else:
        data = jnp.asarray(key, jnp.uint32)
        if data.shape != (2,):
            return None
    return data[0], data[1]


def _counters(size: int) -> tuple[jax.Array, jax.Array]:
    # JAX's partitionable threefry counts with a 64-bit index: high words (zero here), low words.
    low = jnp.arange(size, dtype=jnp.uint32)
    return jnp.zeros_like(low), low


def random_bits(key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
    """``uint32[shape]`` random words: ``jax.random.bits(key, shape, jnp.uint32)``, one kernel."""
    words = _threefry_words(key)
    if words is None or math.prod(shape) >= 2**32:
        return jax.random.bits(key, shape, jnp.uint32)
    x0, x1 = threefry2x32(words, _counters(math.prod(shape)))
    return (x0 ^ x1).reshape(shape)


def split(key: jax.Array, num: int = 2) -> jax.Array:
    """``num`` new keys: ``jax.random.split(key, num)``, one kernel (for threefry keys)."""
    words = _threefry_words(key)
    if words is None:
        return jax.random.split(key, num)
    x0, x1 = threefry2x32(words, _counters(num))
    data = jnp.stack([x0, x1], axis=-1)
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(key))
    return data


def integers_below(words: jax.Array, n: jax.Array | int) -> jax.Array:
    """``int32`` in ``0 .. n - 1`` from uniform ``uint32`` words (``n`` may be traced, ``n >= 1``).

    ``word % n`` is uniform up to a bias below ``n / 2**32`` (under 1e-7 for every board here).
    """
    return (jnp.asarray(words, jnp.uint32) % jnp.asarray(n, jnp.uint32)).astype(jnp.int32)


def unit_floats(words: jax.Array) -> jax.Array:
    """``float32`` uniform on ``[0, 1)`` from ``uint32`` words (their top 24 bits: exact floats)."""
    return (jnp.asarray(words, jnp.uint32) >> 8).astype(jnp.float32) * _UNIT


def standard_normals(words: jax.Array) -> jax.Array:
    """``float32`` standard normal numbers from ``uint32`` words (inverse CDF, as ``jax.random``).

    The top 23 bits pick one of ``2**23`` equal bins of ``(-1, 1)`` and the erf argument is the
    bin's centre, exact in ``float32``: symmetric, never ``-1`` or ``1``, so the result is finite
    (within about 5.3 standard deviations).
    """
    bins = (jnp.asarray(words, jnp.uint32) >> 9).astype(jnp.int32)
    centred = (2 * bins + (1 - 2**23)).astype(jnp.float32) * np.float32(2.0**-23)
    return np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(centred)
