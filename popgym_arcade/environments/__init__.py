"""Environments: the base class, spaces, the draw toolkit and the games."""

from popgym_arcade.environments import spaces
from popgym_arcade.environments.base import EnvParams, Environment
from popgym_arcade.environments.game import PixelGame

__all__ = ["EnvParams", "Environment", "PixelGame", "spaces"]
