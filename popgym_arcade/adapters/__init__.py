"""Adapters from popgym-arcade environments to other ecosystems.

* :class:`GymnasiumEnv`: a single ``gymnasium.Env`` (numpy out, no auto-reset; needs the
  ``gymnasium`` extra).
* :class:`GymnasiumVectorEnv`: a ``gymnasium.vector.VectorEnv`` stepping a batch with one jitted
  ``vmap`` (numpy out, ``AutoresetMode.SAME_STEP``; needs the ``gymnasium`` extra).
* :class:`GymnaxEnv`: a ``gymnax.environments.environment.Environment`` (gymnax 1.0; needs the
  ``gymnax`` extra).
* :class:`LegacyStepAdapter`: the published package's 5-tuple ``step`` returning ``done``
  (no extra needed).

The names are imported lazily, so ``import popgym_arcade.adapters`` works without gymnasium or
gymnax installed; using an adapter whose library is missing raises an ``ImportError`` that names
the extra to install.

>>> from popgym_arcade.adapters import LegacyStepAdapter
>>> import jax, popgym_arcade
>>> env = LegacyStepAdapter(popgym_arcade.make("CartPoleEasy")[0])
>>> obs, state = env.reset(jax.random.key(0))
>>> obs, state, reward, done, info = env.step(jax.random.key(1), state, 0)
>>> bool(done)
False
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GymnasiumEnv": "popgym_arcade.adapters.gymnasium_env",
    "GymnasiumVectorEnv": "popgym_arcade.adapters.gymnasium_env",
    "GymnaxEnv": "popgym_arcade.adapters.gymnax_env",
    "LegacyStepAdapter": "popgym_arcade.adapters.legacy",
}

__all__ = ["GymnasiumEnv", "GymnasiumVectorEnv", "GymnaxEnv", "LegacyStepAdapter"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
