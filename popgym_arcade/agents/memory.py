"""Memory models behind one protocol, with a registry.

Every memory model is an ``equinox.Module`` with

* ``initialize_carry(key=None) -> carry``: the state before an episode's first step;
* ``model(carry, (x, start), key=None) -> (carries, y)``: run a sequence ``x[T, F]``.
  ``start[T]`` marks the first step of an episode: the memory is reset to its initial state
  *before* that step is read, so several episodes can share one sequence without interacting.
  ``carries`` holds the carry after every step (leading axis ``T``), ``y[T, output]`` the outputs;
* ``latest_recurrent_state(carries) -> carry``: the carry after the last step.

All models share one trunk (memax's residual model: a linear map in, ``num_layers`` x (memory
cell, linear, layer norm, leaky ReLU), a linear map out), so two models differ only in their
memory cell. ``MLP`` is that trunk with a memoryless cell: it is the no-memory baseline, and a
comparison with it measures memory, not architecture. Names are those of ``memax[equinox]``
plus two of ours:

* ``MinGRU`` (Feng et al., 2024, "Were RNNs all we needed?"): ``z = sigmoid(W_z x)``,
  ``h_t = (1 - z) h_{t-1} + z (W_h x)``; linear in ``h`` so it runs as a parallel scan;
* ``FrameStack``: the cell sees the last ``frame_stack`` inputs of its episode side by side
  (zeros before the episode's first step), the classic frame-stacking baseline applied to
  features.

Lower-case names (``gru``, ``lru``, ``mingru``, ``mlp``, as the published scripts use) resolve
to their canonical spelling.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

MEMAX_MODELS: tuple[str, ...] = (
    "MLP", "GRU", "LSTM", "MGU", "Elman", "ElmanReLU", "Spherical", "LRU", "S6", "FFM", "FART",
    "FWP", "DeltaNet", "DeltaProduct", "GDN", "NMax", "PSpherical", "LinearRNN", "Stack",
    "Attention", "Attention-RoPE", "Attention-ALiBi",
)  # fmt: skip
OWN_MODELS: tuple[str, ...] = ("MinGRU", "FrameStack")
MEMORY_MODELS: tuple[str, ...] = MEMAX_MODELS + OWN_MODELS
"""Every valid memory model name."""

_ATTENTION_MODELS = ("Attention", "Attention-RoPE", "Attention-ALiBi")


def canonical_memory_name(name: str) -> str:
    """The registered spelling of ``name`` (case-insensitive); ``ValueError`` listing valid names."""
    by_lower = {m.lower(): m for m in MEMORY_MODELS}
    canonical = by_lower.get(str(name).lower())
    if canonical is None:
        raise ValueError(f"unknown memory model {name!r}; valid names: {', '.join(MEMORY_MODELS)}")
    return canonical


class MinGRUCell(eqx.Module):
    """One MinGRU layer: ``h_t = (1 - z_t) h_{t-1} + z_t * (W_h x_t)``, ``z_t = sigmoid(W_z x_t)``.

    The gate and candidate depend on the input only, so the recurrence is a chain of affine maps
    ``h -> a h + b`` and runs as ``jax.lax.associative_scan`` (logarithmic depth in ``T``).
    """

    gate: eqx.nn.Linear
    candidate: eqx.nn.Linear
    recurrent_size: int = eqx.field(static=True)

    def __init__(self, recurrent_size: int, *, key: jax.Array):
        gate_key, candidate_key = jax.random.split(key)
        self.gate = eqx.nn.Linear(recurrent_size, recurrent_size, key=gate_key)
        self.candidate = eqx.nn.Linear(recurrent_size, recurrent_size, key=candidate_key)
        self.recurrent_size = recurrent_size

    def initialize_carry(self, key: jax.Array | None = None) -> jax.Array:
        return jnp.zeros((self.recurrent_size,))

    def __call__(self, carry: jax.Array, inputs: tuple[jax.Array, jax.Array], key=None):
        x, start = inputs
        z = jax.nn.sigmoid(jax.vmap(self.gate)(x))
        decay = jnp.where(start[:, None], 0.0, 1.0 - z)  # an episode start forgets the past
        drive = z * jax.vmap(self.candidate)(x)
        # Fold the incoming carry into the first step so the scan starts from h_{-1} = carry.
        drive = drive.at[0].add(decay[0] * carry)
        decay = decay.at[0].set(0.0)

        def compose(first, second):
            a1, b1 = first
            a2, b2 = second
            return a1 * a2, a2 * b1 + b2

        _, hidden = jax.lax.associative_scan(compose, (decay, drive))
        return hidden, hidden

    def latest_recurrent_state(self, carries: jax.Array) -> jax.Array:
        return carries[-1]


class FrameStackCell(eqx.Module):
    """Memory of the last ``window`` inputs of the current episode, concatenated and mixed.

    The carry holds the previous ``window - 1`` inputs and whether each belongs to the episode in
    progress; inputs from before the episode's start read as zeros.
    """

    mix: eqx.nn.Linear
    window: int = eqx.field(static=True)
    recurrent_size: int = eqx.field(static=True)

    def __init__(self, recurrent_size: int, window: int, *, key: jax.Array):
        if window < 1:
            raise ValueError(f"frame_stack window must be >= 1, got {window}")
        self.mix = eqx.nn.Linear(window * recurrent_size, recurrent_size, key=key)
        self.window = window
        self.recurrent_size = recurrent_size

    def initialize_carry(self, key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        history = jnp.zeros((self.window - 1, self.recurrent_size))
        return history, jnp.zeros((self.window - 1,), dtype=bool)

    def __call__(self, carry, inputs, key=None):
        x, start = inputs
        steps = x.shape[0]
        history, history_valid = carry
        padded = jnp.concatenate([history, x])  # [window - 1 + T, F]
        # Episode index of every padded position; history positions are episode 0 (if valid).
        episode = jnp.concatenate(
            [jnp.zeros(self.window - 1, jnp.int32), jnp.cumsum(start.astype(jnp.int32))]
        )
        valid = jnp.concatenate([history_valid, jnp.ones(steps, dtype=bool)])
        now = jnp.arange(steps) + self.window - 1
        lags = jnp.arange(self.window)
        source = now[:, None] - lags[None, :]  # [T, window]: lag 0 is the current step
        same_episode = (episode[source] == episode[now][:, None]) & valid[source]
        stacked = jnp.where(same_episode[..., None], padded[source], 0.0)  # [T, window, F]
        y = jax.vmap(self.mix)(stacked.reshape(steps, -1))
        # Carry after step t: the last window-1 inputs up to t that share t's episode.
        keep = source[:, : self.window - 1][:, ::-1]  # oldest first, ending at step t
        keep_valid = same_episode[:, : self.window - 1][:, ::-1]
        carries = (jnp.where(keep_valid[..., None], padded[keep], 0.0), keep_valid)
        return carries, y

    def latest_recurrent_state(self, carries):
        return jax.tree.map(lambda leaf: leaf[-1], carries)


def _own_cell_factory(name: str, frame_stack: int) -> Callable[..., eqx.Module]:
    if name == "MinGRU":
        return lambda recurrent_size, key: MinGRUCell(recurrent_size, key=key)
    return lambda recurrent_size, key: FrameStackCell(recurrent_size, frame_stack, key=key)


def make_memory(
    name: str,
    input_size: int,
    hidden_size: int,
    output_size: int,
    num_layers: int = 2,
    *,
    key: jax.Array,
    frame_stack: int = 4,
    attention_window: int = 128,
) -> eqx.Module:
    """Build memory model ``name`` (see :data:`MEMORY_MODELS`) on the shared residual trunk.

    Args:
        name: a memory model name, case-insensitive.
        input_size, hidden_size, output_size: trunk widths (input features, cell width, output).
        num_layers: number of memory cells stacked in the trunk.
        key: PRNG key for the initial weights.
        frame_stack: window of ``FrameStack``.
        attention_window: context length of the attention models (memax defaults to 20; a
            rollout's length lets a sequence attend to all of itself).

    Returns:
        An ``equinox.Module`` implementing the memory protocol of this module.
    """
    from memax.equinox.models.residual import ResidualModel
    from memax.equinox.train_utils import get_residual_memory_model

    name = canonical_memory_name(name)
    if name in OWN_MODELS:
        return ResidualModel(
            make_layer_fn=_own_cell_factory(name, frame_stack),
            input_size=input_size,
            output_size=output_size,
            recurrent_size=hidden_size,
            num_layers=num_layers,
            key=key,
        )
    layer_kwargs = {n: {"window_size": attention_window} for n in _ATTENTION_MODELS}
    return get_residual_memory_model(
        name, input_size, hidden_size, output_size, num_layers, key=key, layer_kwargs=layer_kwargs
    )
