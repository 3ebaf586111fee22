"""Helpers shared by the adapters: resolving ``env_id`` or ``(env, params)``."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from popgym_arcade._extras import install_hint
from popgym_arcade.environments.base import Environment


def resolve_env(
    env: str | Environment | tuple[Environment, Any], partial_obs: bool, obs_size: int, **kwargs: Any
) -> tuple[Environment, Any]:
    """Return ``(env, params)`` from an id (built with :func:`popgym_arcade.make`), an env, or a pair.

    ``partial_obs``, ``obs_size`` and ``kwargs`` apply only to an id; :func:`~popgym_arcade.make`
    raises ``ValueError`` for an unknown id or an ``obs_size`` other than 128 or 256.
    """
    from popgym_arcade.registration import make

    if isinstance(env, str):
        return make(env, partial_obs=partial_obs, obs_size=obs_size, **kwargs)
    if isinstance(env, tuple):
        if len(env) != 2:
            raise TypeError(f"expected an env id, an Environment or (env, params), got a tuple of {len(env)}")
        inner, params = env
    else:
        inner, params = env, None
    if not isinstance(inner, Environment):
        raise TypeError(f"expected an env id, an Environment or (env, params), got {type(inner).__name__}")
    if kwargs:
        raise TypeError(f"keyword arguments {sorted(kwargs)} apply only when building from an env id")
    return inner, inner.default_params if params is None else params


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ``ImportError`` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this adapter needs {module!r}: {install_hint(extra)} ({error})"
        ) from error
