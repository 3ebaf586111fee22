"""Spread a run's seeds over every local device with :mod:`jax.sharding` (no ``pmap``).

A run trains ``config.seeds`` agents at once: every leaf of its training state (and of each
chunk's metrics) has the seed axis first. On a machine with several accelerators the seed axis
is split over a 1-D mesh of all local devices named ``"seeds"``, so each device trains
``seeds / devices`` agents and XLA inserts no communication (the seeds are independent).

When ``seeds`` is not a multiple of the device count the state is replicated instead (every
device computes every seed; correct but no faster than one device) with a one-line warning:
choose ``--seeds`` as a multiple of the device count. Padding with dummy seeds was not chosen
because it would change what a run's metrics and checkpoints contain.

Only the devices of this process are used (one host; multi-host runs are not supported here).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED_AXIS = "seeds"


def seed_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"seeds"`` over ``devices`` (default: every local device)."""
    devices = jax.local_devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (SEED_AXIS,))


def seed_spec(seeds: int, device_count: int) -> PartitionSpec:
    """``P("seeds")`` when ``seeds`` splits evenly over ``device_count`` devices, else ``P()``."""
    return PartitionSpec(SEED_AXIS) if seeds % device_count == 0 else PartitionSpec()


def seed_sharding(seeds: int, mesh: Mesh | None = None, *, warn: bool = True) -> NamedSharding:
    """The sharding of arrays whose leading axis is the run's ``seeds``.

    Split over ``mesh`` (default :func:`seed_mesh`) when ``seeds`` is a multiple of its size,
    replicated otherwise (with a warning when ``warn`` and there are several devices).
    """
    mesh = seed_mesh() if mesh is None else mesh
    spec = seed_spec(seeds, mesh.size)
    if warn and mesh.size > 1 and spec == PartitionSpec():
        warnings.warn(
            f"{seeds} seed(s) do not split over {mesh.size} devices: every device trains every seed "
            f"(set --seeds to a multiple of {mesh.size} to use them all)",
            stacklevel=2,
        )
    return NamedSharding(mesh, spec)


def shard_seeds(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """``tree`` with every array leaf placed with ``sharding`` (its leading axis is the seeds).

    Non-array leaves (``None``, Python scalars of static fields) are left as they are.
    """
    return jax.tree.map(lambda leaf: jax.device_put(leaf, sharding) if eqx.is_array(leaf) else leaf, tree)


def jit_over_seeds(function: Any, sharding: jax.sharding.Sharding) -> Any:
    """``jax.jit(function)`` whose every input and output leaf has the seed axis sharded.

    ``function`` is already vmapped over seeds, so each leaf's leading axis is the seed axis;
    fixing the output sharding keeps the state where it is across chunks (no gathers).
    """
    return jax.jit(function, in_shardings=sharding, out_shardings=sharding)
