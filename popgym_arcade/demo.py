"""The twins demo: every game's MDP and POMDP twins side by side, and their steps/s.

For each id, one random-action trajectory is played; its states are rendered by both twins
(they share state and dynamics, so one trajectory serves both), written as a filmstrip PNG
(MDP above, POMDP below) and, where Pillow is installed, a side-by-side GIF.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import jax
import numpy as np

from popgym_arcade import media
from popgym_arcade.registration import REGISTERED_ENVIRONMENTS, make
from popgym_arcade.throughput import measure


def twin_frames(env_id: str, key: jax.Array, num_steps: int, obs_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``uint8[num_steps + 1, S, S, 3]`` of the MDP and POMDP twins along one random trajectory."""
    mdp, params = make(env_id, partial_obs=False, obs_size=obs_size)
    pomdp, _ = make(env_id, partial_obs=True, obs_size=obs_size)

    @jax.jit
    def trajectory(key: jax.Array) -> Any:
        key, reset_key = jax.random.split(key)
        _, state = mdp.reset(reset_key, params)

        def body(state, key):
            action_key, step_key = jax.random.split(key)
            action = mdp.action_space(params).sample(action_key)
            _, next_state, *_ = mdp.step(step_key, state, action, params)
            return next_state, next_state

        _, states = jax.lax.scan(body, state, jax.random.split(key, num_steps))
        states = jax.tree.map(lambda first, rest: jax.numpy.concatenate([first[None], rest]), state, states)
        return jax.vmap(mdp.render)(states), jax.vmap(pomdp.render)(states)

    mdp_frames, pomdp_frames = trajectory(key)
    return np.asarray(mdp_frames), np.asarray(pomdp_frames)


def run_demo(
    out_dir: str | Path,
    env_ids: Sequence[str] | None = None,
    num_steps: int = 8,
    obs_size: int = 128,
    speed_envs: int = 64,
    speed_steps: int = 100,
    seed: int = 0,
    stream: TextIO = sys.stdout,
) -> list[dict[str, Any]]:
    """Write each game's twin pictures to ``out_dir`` and print its steps/s; returns one row per id."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env_ids = list(REGISTERED_ENVIRONMENTS if env_ids is None else env_ids)
    try:
        import PIL  # noqa: F401

        gifs = True
    except ImportError:
        gifs = False
    print(f"{'id':24s} {'twin images':40s} {'steps/s (POMDP, %d envs)' % speed_envs:>26s}", file=stream)
    rows = []
    for i, env_id in enumerate(env_ids):
        mdp_frames, pomdp_frames = twin_frames(env_id, jax.random.key(seed + i), num_steps, obs_size)
        png = media.write_png(out_dir / f"{env_id}.png", media.filmstrip([mdp_frames, pomdp_frames]))
        if gifs:
            media.write_gif(out_dir / f"{env_id}.gif", media.side_by_side(mdp_frames, pomdp_frames), fps=3)
        env, params = make(env_id, partial_obs=True, obs_size=obs_size)
        result = measure(env, params, num_envs=speed_envs, num_steps=speed_steps, repeats=3)
        rows.append({"env_id": env_id, "image": str(png), "steps_per_second": result.steps_per_second})
        print(f"{env_id:24s} {str(png):40s} {result.steps_per_second:26,.0f}", file=stream, flush=True)
    return rows
