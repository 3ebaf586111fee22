"""The games' one-kernel PRNG helpers agree with ``jax.random`` bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments import randomness


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (2, 2, 4)])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_random_bits_equal_jax_random_bits(shape, seed):
    key = jax.random.key(seed)
    np.testing.assert_array_equal(
        randomness.random_bits(key, shape), jax.random.bits(key, shape, jnp.uint32)
    )


@pytest.mark.parametrize("num", [1, 2, 5])
@pytest.mark.parametrize("seed", [0, 7])
def test_split_equals_jax_random_split(num, seed):
    key = jax.random.key(seed)
    ours, theirs = randomness.split(key, num), jax.random.split(key, num)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == (num,)
    np.testing.assert_array_equal(jax.random.key_data(ours), jax.random.key_data(theirs))


def test_raw_uint32_keys_stay_raw():
    raw = jax.random.PRNGKey(3)
    split = randomness.split(raw, 3)
    assert split.dtype == jnp.uint32 and split.shape == (3, 2)
    np.testing.assert_array_equal(split, jax.random.split(raw, 3))
    np.testing.assert_array_equal(randomness.random_bits(raw, (4,)), jax.random.bits(raw, (4,), jnp.uint32))


def test_threefry2x32_matches_the_primitive():
    from jax.extend.random import threefry_2x32

    key = jnp.array([0x13198A2E, 0x03707344], jnp.uint32)
    counts = jnp.arange(10, dtype=jnp.uint32), jnp.arange(10, 20, dtype=jnp.uint32)
    ours = randomness.threefry2x32((key[0], key[1]), counts)
    theirs = threefry_2x32(key, jnp.concatenate(counts))
    np.testing.assert_array_equal(jnp.concatenate(ours), theirs)


def test_other_key_types_fall_back_to_jax_random():
    key = jax.random.key(0, impl="rbg")
    np.testing.assert_array_equal(
        randomness.random_bits(key, (6,)), jax.random.bits(key, (6,), jnp.uint32)
    )
    np.testing.assert_array_equal(
        jax.random.key_data(randomness.split(key, 2)), jax.random.key_data(jax.random.split(key, 2))
    )


def test_helpers_are_jit_and_vmap_safe():
    keys = jax.random.split(jax.random.key(1), 4)
    batched = jax.jit(jax.vmap(lambda k: randomness.random_bits(k, (3,))))(keys)
    expected = jnp.stack([jax.random.bits(k, (3,), jnp.uint32) for k in keys])
    np.testing.assert_array_equal(batched, expected)


def test_integers_below_covers_the_range_and_nothing_else():
    words = randomness.random_bits(jax.random.key(2), (4000,))
    values = np.asarray(randomness.integers_below(words, 7))
    assert values.dtype == np.int32
    assert set(values.tolist()) == set(range(7))
    traced = jax.jit(randomness.integers_below)(words, jnp.int32(3))
    assert set(np.asarray(traced).tolist()) == {0, 1, 2}


def test_unit_floats_are_in_the_half_open_unit_interval():
    extremes = jnp.array([0, 255, 2**32 - 1], jnp.uint32)
    values = np.asarray(randomness.unit_floats(extremes))
    assert values[0] == values[1] == 0.0 and values[2] < 1.0
    sample = np.asarray(randomness.unit_floats(randomness.random_bits(jax.random.key(4), (20000,))))
    assert 0.0 <= sample.min() and sample.max() < 1.0
    assert abs(sample.mean() - 0.5) < 0.01


def test_standard_normals_are_finite_with_unit_moments():
    extremes = jnp.array([0, 2**32 - 1], jnp.uint32)
    assert np.all(np.isfinite(randomness.standard_normals(extremes)))
    sample = np.asarray(randomness.standard_normals(randomness.random_bits(jax.random.key(5), (20000,))))
    assert abs(sample.mean()) < 0.03 and abs(sample.std() - 1.0) < 0.03
    bins = jnp.array([0, 2**31, 2**32 - 1], jnp.uint32)
    low, middle, high = np.asarray(randomness.standard_normals(bins))
    assert low == -high and abs(middle) < 1e-5
