"""Every memory model builds and runs; memory resets at episode starts; our own cells are exact."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.agents.memory import (
    MEMORY_MODELS,
    FrameStackCell,
    MinGRUCell,
    canonical_memory_name,
    make_memory,
)

FEATURES, STEPS = 6, 7
X = jax.random.normal(jax.random.PRNGKey(1), (STEPS, FEATURES))
START = jnp.array([True, False, False, True, False, False, False])  # a second episode at step 3


def run(model, carry, x, start):
    return eqx.filter_jit(lambda m, c, x, s: m(c, (x, s)))(model, carry, x, start)


@pytest.mark.parametrize("name", MEMORY_MODELS)
def test_every_memory_model_runs_and_resets_at_episode_starts(name):
    model = make_memory(name, FEATURES, 8, 4, num_layers=1, key=jax.random.PRNGKey(0), attention_window=8)
    carries, y = run(model, model.initialize_carry(), X, START)
    assert y.shape == (STEPS, 4)
    assert np.all(np.isfinite(y))
    # After the start flag at step 3 the outputs equal a fresh model's on the second episode.
    _, fresh = run(model, model.initialize_carry(), X[3:], START[3:])
    np.testing.assert_allclose(y[3:], fresh, atol=1e-5)
    latest = model.latest_recurrent_state(carries)
    assert jax.tree.structure(latest) == jax.tree.structure(model.initialize_carry())


@pytest.mark.parametrize("name", ["GRU", "LRU", "MinGRU", "FrameStack", "FART"])
def test_carry_continues_a_sequence(name):
    model = make_memory(name, FEATURES, 8, 4, num_layers=2, key=jax.random.PRNGKey(0))
    no_reset = jnp.zeros(STEPS, bool)
    _, whole = run(model, model.initialize_carry(), X, no_reset)
    carries, first = run(model, model.initialize_carry(), X[:4], no_reset[:4])
    _, second = run(model, model.latest_recurrent_state(carries), X[4:], no_reset[4:])
    np.testing.assert_allclose(jnp.concatenate([first, second]), whole, atol=1e-5)


def test_memory_matters_except_for_mlp():
    x_changed = X.at[1].add(3.0)  # change a past input of the first episode
    for name, should_change in (("MLP", False), ("GRU", True), ("MinGRU", True)):
        model = make_memory(name, FEATURES, 8, 4, num_layers=1, key=jax.random.PRNGKey(0))
        no_reset = jnp.zeros(STEPS, bool)
        _, y = run(model, model.initialize_carry(), X, no_reset)
        _, y_changed = run(model, model.initialize_carry(), x_changed, no_reset)
        assert bool(jnp.any(jnp.abs(y[2:] - y_changed[2:]) > 1e-6)) == should_change, name


def test_names_are_case_insensitive_and_errors_list_valid_names():
    assert canonical_memory_name("gru") == "GRU"
    assert canonical_memory_name("mingru") == "MinGRU"
    assert canonical_memory_name("attention-rope") == "Attention-RoPE"
    with pytest.raises(ValueError, match="valid names: MLP, GRU"):
        canonical_memory_name("transformer-xl")


def test_mingru_matches_its_sequential_definition():
    cell = MinGRUCell(FEATURES, key=jax.random.PRNGKey(3))
    h0 = jax.random.normal(jax.random.PRNGKey(4), (FEATURES,))
    hidden, y = cell(h0, (X, START.at[0].set(False)))
    h, expected = h0, []
    for t in range(STEPS):
        if t == 3:  # episode start: forget
            h = jnp.zeros(FEATURES)
        z = jax.nn.sigmoid(cell.gate(X[t]))
        h = (1 - z) * h + z * cell.candidate(X[t])
        expected.append(h)
    np.testing.assert_allclose(hidden, jnp.stack(expected), atol=1e-5)
    np.testing.assert_allclose(y, hidden)


def test_frame_stack_sees_its_episode_window_only():
    cell = FrameStackCell(2, window=3, key=jax.random.PRNGKey(0))
    # Replace the mixing layer by an identity-like readout: output = concatenated window.
    x = jnp.arange(1.0, 15.0).reshape(STEPS, 2)
    carry = cell.initialize_carry()
    (history, valid), _ = cell(carry, (x, START))
    stacked = []
    for t in range(STEPS):
        episode_start = 3 if t >= 3 else 0
        window = [x[t - lag] if t - lag >= episode_start else jnp.zeros(2) for lag in range(3)]
        stacked.append(jnp.concatenate(window))
    expected = jax.vmap(cell.mix)(jnp.stack(stacked))
    _, y = cell(carry, (x, START))
    np.testing.assert_allclose(y, expected, atol=1e-6)
    # The carry after the last step holds steps 5 and 6 (oldest first), both valid.
    np.testing.assert_allclose(history[-1], x[5:7])
    assert bool(valid[-1].all())
