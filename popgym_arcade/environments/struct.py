"""Frozen dataclasses that are also JAX pytrees.

Every state, params and difficulty object in popgym-arcade is a frozen dataclass. ``pytree``
registers one with JAX so it can cross ``jit``/``vmap``/``scan`` boundaries; fields declared
with ``static_field()`` become part of the tree structure (hashable, never traced).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax

T = TypeVar("T")


def static_field(**kwargs: Any) -> Any:
    """A dataclass field that is static metadata of the pytree, not a traced leaf."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata["static"] = True
    return dataclasses.field(metadata=metadata, **kwargs)


def pytree(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass registered as a JAX pytree.

    Fields are leaves unless declared with :func:`static_field`.
    """
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    data = [f.name for f in fields if not f.metadata.get("static", False)]
    meta = [f.name for f in fields if f.metadata.get("static", False)]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def replace(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` under a short name, for state updates."""
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
