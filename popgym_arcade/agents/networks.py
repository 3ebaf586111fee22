"""Agent networks: pixel encoder -> memory -> head, one shape for every algorithm and memory.

A :class:`Network` reads one env's sequence of frames. It takes ``uint8`` (or float, for
gradients with respect to pixels) frames in ``0..255`` and scales them itself, so callers pass raw
observations. Two encoders:

* ``"paper"``: the published four-convolution CNN (512 features at 128 and 256 pixels), the
  default for GPUs and paper-sized budgets;
* ``"small"``: average-pools the frame to 32x32, embeds each 4x4 patch and maps the patches to
  features with one linear layer. Tens of times cheaper to train, for CPU budgets (the games
  are drawn at cell resolution, so a pooled frame keeps what the agent needs).

Optional inputs next to the frame features: a one-hot of the previous action and the previous
reward (both zero on an episode's first step).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from popgym_arcade.agents.config import NetworkConfig
from popgym_arcade.agents.memory import make_memory

ENCODERS = ("paper", "small")


def _leaky(x: jax.Array) -> jax.Array:
    return jax.nn.leaky_relu(x)


def _to_unit_chw(frame: jax.Array) -> jax.Array:
    """``[H, W, 3]`` pixels in 0..255 -> ``[3, H, W]`` float32 in 0..1."""
    return jnp.transpose(jnp.asarray(frame, jnp.float32) / 255.0, (2, 0, 1))


class PaperEncoder(eqx.Module):
    """The published CNN: four VALID convolutions with max pooling, 512 features."""

    layers: tuple
    features: int = eqx.field(static=True)

    def __init__(self, obs_size: int, features: int, *, key: jax.Array):
        keys = jax.random.split(key, 5)
        conv = eqx.nn.Conv2d
        if obs_size == 128:
            layers = [
                conv(3, 64, 5, stride=2, key=keys[0]), eqx.nn.MaxPool2d(2, 2),
                conv(64, 128, 3, stride=2, key=keys[1]), eqx.nn.MaxPool2d(2, 2),
                conv(128, 256, 3, stride=2, key=keys[2]), eqx.nn.MaxPool2d(3, 1),
                conv(256, 512, 1, stride=1, key=keys[3]),
            ]  # fmt: skip
        else:
            layers = [
                conv(3, 64, 7, stride=2, key=keys[0]), eqx.nn.MaxPool2d(2, 2),
                conv(64, 128, 3, stride=2, key=keys[1]), eqx.nn.MaxPool2d(2, 2),
                conv(128, 256, 3, stride=2, key=keys[2]), eqx.nn.MaxPool2d(2, 2),
                conv(256, 512, 3, stride=2, key=keys[3]),
            ]  # fmt: skip
        # A projection only when asked for a width other than the CNN's 512.
        if features != 512:
            layers.append(eqx.nn.Linear(512, features, key=keys[4]))
        self.layers = tuple(layers)
        self.features = features

    def __call__(self, frame: jax.Array) -> jax.Array:
        x = _to_unit_chw(frame)
        for layer in self.layers:
            if isinstance(layer, eqx.nn.Linear):
                x = _leaky(layer(x.reshape(-1)))
            else:
                x = layer(x)
                if isinstance(layer, eqx.nn.Conv2d):
                    x = _leaky(x)
        return x.reshape(-1)


def average_pool(frame: jax.Array, pool: int) -> jax.Array:
    """``[S, S, 3]`` pixels -> ``[S / pool, S / pool, 3]`` means, scaled to 0..1.

    Integer frames are summed as integers: on CPUs that is several times faster than summing
    floats, and pooling is most of this encoder's cost. Float frames (pixels as a
    differentiable input) take the float path and give the same numbers.
    """
    size = frame.shape[0] // pool
    scale = 1.0 / (pool * pool * 255.0)
    if jnp.issubdtype(frame.dtype, jnp.integer):
        rows = frame.reshape(size, pool, -1).astype(jnp.int32).sum(axis=1)
        return rows.reshape(size, size, pool, 3).sum(axis=2).astype(jnp.float32) * scale
    rows = frame.reshape(size, pool, -1).astype(jnp.float32).sum(axis=1)
    return rows.reshape(size, size, pool, 3).sum(axis=2) * scale


class SmallEncoder(eqx.Module):
    """Average-pool to 32x32, embed each 4x4 patch, then a linear layer: cheap on CPUs.

    The patch embedding is a stride-4 convolution written as one matrix product (XLA's CPU
    convolutions are several times slower than its matrix products at these sizes).
    """

    patch: eqx.nn.Linear
    linear: eqx.nn.Linear
    pool: int = eqx.field(static=True)
    features: int = eqx.field(static=True)

    GRID: ClassVar[int] = 32
    PATCH: ClassVar[int] = 4
    PATCH_FEATURES: ClassVar[int] = 32

    def __init__(self, obs_size: int, features: int, *, key: jax.Array):
        patch_key, linear_key = jax.random.split(key)
        self.pool = obs_size // self.GRID
        self.patch = eqx.nn.Linear(self.PATCH * self.PATCH * 3, self.PATCH_FEATURES, key=patch_key)
        patches = (self.GRID // self.PATCH) ** 2
        self.linear = eqx.nn.Linear(patches * self.PATCH_FEATURES, features, key=linear_key)
        self.features = features

    def __call__(self, frame: jax.Array) -> jax.Array:
        x = average_pool(frame, self.pool)  # [32, 32, 3]
        side = self.GRID // self.PATCH
        patches = x.reshape(side, self.PATCH, side, self.PATCH, 3).transpose(0, 2, 1, 3, 4)
        patches = patches.reshape(side * side, -1)
        embedded = _leaky(patches @ self.patch.weight.T + self.patch.bias)
        return _leaky(self.linear(embedded.reshape(-1)))


def make_encoder(kind: str, obs_size: int, features: int, *, key: jax.Array) -> eqx.Module:
    """Encoder ``kind`` (``"paper"`` or ``"small"``) for ``obs_size``-pixel frames."""
    if kind == "paper":
        return PaperEncoder(obs_size, features, key=key)
    if kind == "small":
        return SmallEncoder(obs_size, features, key=key)
    raise ValueError(f"unknown encoder {kind!r}; valid: {', '.join(ENCODERS)}")


class Head(eqx.Module):
    """Linear -> LayerNorm -> leaky ReLU -> Linear."""

    hidden: eqx.nn.Linear
    norm: eqx.nn.LayerNorm
    out: eqx.nn.Linear

    def __init__(self, in_size: int, hidden_size: int, out_size: int, *, key: jax.Array):
        hidden_key, out_key = jax.random.split(key)
        self.hidden = eqx.nn.Linear(in_size, hidden_size, key=hidden_key)
        self.norm = eqx.nn.LayerNorm(hidden_size)
        self.out = eqx.nn.Linear(hidden_size, out_size, key=out_key)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(_leaky(self.norm(self.hidden(x))))


class Network(eqx.Module):
    """Encoder -> memory -> head over one env's sequence.

    Call ``network(carry, obs, start, prev_action, prev_reward) -> (carry, out)`` with
    ``obs[T, S, S, 3]`` (0..255), ``start[T]`` (True on an episode's first frame: memory resets
    and the previous action/reward read as zero), ``prev_action[T]`` int, ``prev_reward[T]``
    float; ``out[T, output_size]``. ``carry`` is the memory state after the last step. Vmap over
    envs for a batch.
    """

    encoder: eqx.Module
    memory: eqx.Module
    head: Head
    num_actions: int = eqx.field(static=True)
    previous_action: bool = eqx.field(static=True)
    previous_reward: bool = eqx.field(static=True)

    def __init__(self, config: NetworkConfig, obs_size: int, output_size: int, num_actions: int, *, key):
        encoder_key, memory_key, head_key = jax.random.split(key, 3)
        self.encoder = make_encoder(config.encoder, obs_size, config.features, key=encoder_key)
        extra = num_actions * config.previous_action + config.previous_reward
        self.memory = make_memory(
            config.memory,
            config.features + extra,
            config.memory_hidden,
            config.memory_output,
            config.memory_layers,
            key=memory_key,
            frame_stack=config.frame_stack,
            attention_window=config.attention_window,
        )
        self.head = Head(config.memory_output, config.head_hidden, output_size, key=head_key)
        self.num_actions = num_actions
        self.previous_action = config.previous_action
        self.previous_reward = config.previous_reward

    def initialize_carry(self):
        """The memory state before an episode's first step."""
        return self.memory.initialize_carry()

    def features(self, obs, start, prev_action, prev_reward) -> jax.Array:
        """Per-step memory inputs ``[T, F]``: frame features and the optional previous action/reward."""
        parts = [jax.vmap(self.encoder)(obs)]
        not_start = 1.0 - jnp.asarray(start, jnp.float32)[:, None]
        if self.previous_action:
            parts.append(jax.nn.one_hot(prev_action, self.num_actions) * not_start)
        if self.previous_reward:
            parts.append(jnp.asarray(prev_reward, jnp.float32)[:, None] * not_start)
        return jnp.concatenate(parts, axis=-1)

    def __call__(self, carry, obs, start, prev_action, prev_reward):
        x = self.features(obs, start, prev_action, prev_reward)
        carries, y = self.memory(carry, (x, jnp.asarray(start, bool)))
        return self.memory.latest_recurrent_state(carries), jax.vmap(self.head)(y)


def batch_carry(network: Network, batch_size: int):
    """``network.initialize_carry()`` repeated along a new leading batch axis."""
    carry = network.initialize_carry()
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (batch_size, *leaf.shape)), carry)


def network_summary(network: eqx.Module) -> dict[str, int]:
    """Parameter counts of a network's parts (for logs and docs)."""

    def count(tree) -> int:
        return int(sum(x.size for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))))

    parts = {
        f.name: count(getattr(network, f.name))
        for f in dataclasses.fields(network)
        if not f.metadata.get("static")
    }
    parts["total"] = count(network)
    return parts
