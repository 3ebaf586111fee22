"""Encoders and the encoder -> memory -> head network."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.agents.config import NetworkConfig
from popgym_arcade.agents.networks import Network, batch_carry, make_encoder, network_summary

pytestmark = pytest.mark.xdist_group("agents-networks")


@pytest.mark.parametrize("kind", ["paper", "small"])
@pytest.mark.parametrize("size", [128, 256])
def test_encoders_map_frames_to_features(kind, size):
    encoder = make_encoder(kind, size, 48, key=jax.random.PRNGKey(0))
    frame = jax.random.randint(jax.random.PRNGKey(1), (size, size, 3), 0, 256).astype(jnp.uint8)
    features = eqx.filter_jit(encoder)(frame)
    assert features.shape == (48,)
    # uint8 pixels and the same pixels as floats (for gradients) give the same features
    np.testing.assert_allclose(features, eqx.filter_jit(encoder)(frame.astype(jnp.float32)), atol=1e-5)


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="valid: paper, small"):
        make_encoder("resnet", 128, 8, key=jax.random.PRNGKey(0))


SMALL = NetworkConfig(
    encoder="small", features=16, memory="GRU", memory_hidden=16, memory_output=16, head_hidden=16
)


def test_network_sequence_outputs_and_previous_action_input():
    network = Network(SMALL, 128, 5, 5, key=jax.random.PRNGKey(0))
    obs = jax.random.randint(jax.random.PRNGKey(1), (4, 128, 128, 3), 0, 256).astype(jnp.uint8)
    start = jnp.array([True, False, False, False])
    call = eqx.filter_jit(lambda n, a: n(n.initialize_carry(), obs, start, a, jnp.zeros(4)))
    _, q = call(network, jnp.array([0, 1, 2, 3]))
    assert q.shape == (4, 5)
    # The previous action at an episode start is ignored; later ones are read.
    _, q_other_first = call(network, jnp.array([4, 1, 2, 3]))
    np.testing.assert_allclose(q, q_other_first, atol=1e-6)
    _, q_other_second = call(network, jnp.array([0, 4, 2, 3]))
    assert not np.allclose(q[1], q_other_second[1])


def test_batch_carry_and_summary():
    network = Network(SMALL, 128, 5, 5, key=jax.random.PRNGKey(0))
    carry = batch_carry(network, 3)
    for leaf, single in zip(jax.tree.leaves(carry), jax.tree.leaves(network.initialize_carry())):
        assert leaf.shape == (3, *single.shape)
    summary = network_summary(network)
    assert summary["total"] == summary["encoder"] + summary["memory"] + summary["head"] > 0
