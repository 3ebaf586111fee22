"""The environment registry: ids to factories.

``make(env_id, partial_obs=False, obs_size=128, **kwargs)`` builds a registered environment and
returns ``(env, env.default_params)``. The built-in ids are ``<Game><Easy|Medium|Hard>``;
``register(env_id, factory)`` adds your own twin.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from popgym_arcade.environments.base import Environment, validate_obs_size

REGISTERED_ENVIRONMENTS: list[str] = []
"""Every registered id, in registration order (the built-in games first, in the paper's order)."""

_FACTORIES: dict[str, Callable[..., Environment]] = {}

# (game class name, module) in the paper's order of ids.
BUILTIN_GAMES: tuple[tuple[str, str], ...] = (
    ("CartPole", "popgym_arcade.environments.cartpole"),
    ("NoisyCartPole", "popgym_arcade.environments.cartpole"),
    ("CountRecall", "popgym_arcade.environments.countrecall"),
    ("BattleShip", "popgym_arcade.environments.battleship"),
    ("AutoEncode", "popgym_arcade.environments.autoencode"),
    ("Navigator", "popgym_arcade.environments.navigator"),
    ("MineSweeper", "popgym_arcade.environments.minesweeper"),
    ("Skittles", "popgym_arcade.environments.skittles"),
    ("Breakout", "popgym_arcade.environments.breakout"),
    ("Tetris", "popgym_arcade.environments.tetris"),
)

LEVELS = ("Easy", "Medium", "Hard")


def register(env_id: str, factory: Callable[..., Environment], *, overwrite: bool = False) -> None:
    """Register ``factory`` under ``env_id``.

    ``factory(partial_obs=..., obs_size=..., **kwargs)`` must return an :class:`Environment`.
    Registering an existing id raises ``ValueError`` unless ``overwrite=True``.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty string, got {env_id!r}")
    if not callable(factory):
        raise TypeError(f"factory for {env_id!r} must be callable, got {factory!r}")
    if env_id in _FACTORIES and not overwrite:
        raise ValueError(f"{env_id!r} is already registered; pass overwrite=True to replace it")
    if env_id not in _FACTORIES:
        REGISTERED_ENVIRONMENTS.append(env_id)
    _FACTORIES[env_id] = factory


def make(env_id: str, partial_obs: bool = False, obs_size: int = 128, **kwargs: Any) -> tuple[Environment, Any]:
    """Build the environment ``env_id``: returns ``(env, env.default_params)``.

    Args:
        env_id: a registered id, e.g. ``"CartPoleEasy"``.
        partial_obs: ``True`` for the POMDP twin, ``False`` for the MDP twin.
        obs_size: observation side in pixels, 128 or 256.
        **kwargs: passed on to the factory.

    Raises:
        ValueError: for an unknown id (naming the closest ids) or an ``obs_size`` other than
            128 or 256.
    """
    if env_id not in _FACTORIES:
        close = difflib.get_close_matches(str(env_id), REGISTERED_ENVIRONMENTS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown environment id {env_id!r}{hint} (see popgym_arcade.registration.REGISTERED_ENVIRONMENTS)")
    obs_size = validate_obs_size(obs_size)
    env = _FACTORIES[env_id](partial_obs=partial_obs, obs_size=obs_size, **kwargs)
    return env, env.default_params


class _LevelFactory:
    """Builds one difficulty of a built-in game (keyword arguments override the level)."""

    def __init__(self, game: type, level: str):
        self.game = game
        self.level = level

    def __call__(self, **kwargs: Any) -> Environment:
        kwargs.setdefault("difficulty", self.level)
        return self.game(**kwargs)

    def __repr__(self) -> str:
        return f"{self.game.__name__}(difficulty={self.level!r})"


def game_class(game: str) -> type:
    """The class of a built-in game, by name (e.g. ``"CartPole"``)."""
    for name, module in BUILTIN_GAMES:
        if name == game:
            return getattr(importlib.import_module(module), name)
    raise ValueError(f"unknown game {game!r}; built-in games: {[name for name, _ in BUILTIN_GAMES]}")


def _register_builtins() -> None:
    for name, _ in BUILTIN_GAMES:
        cls = game_class(name)
        for level in LEVELS:
            register(f"{name}{level}", _LevelFactory(cls, level))


_register_builtins()
