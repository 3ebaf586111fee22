"""Tiny run folders and human episode files, written the way training and play write them."""

from __future__ import annotations

import json
from pathlib import Path


def write_run(
    root: Path,
    name: str,
    *,
    env: str,
    memory: str,
    partial: bool,
    mdp: list[float] | None,
    pomdp: list[float] | None,
    algo: str = "pqn",
    return_range: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
    obs_size: int = 128,
    evaluation: bool = True,
) -> Path:
    """A run folder whose seeds 0..n-1 have the given mean returns on each twin."""
    run = root / name
    run.mkdir(parents=True)
    n = len(mdp if mdp is not None else pomdp)
    config = {
        "algo": algo,
        "env": env,
        "partial": partial,
        "memory": memory,
        "obs_size": obs_size,
        "seed": seed,
        "num_seeds": n,
    }
    (run / "config.json").write_text(json.dumps(config))
    if evaluation:
        record = {
            "env": env,
            "algo": algo,
            "memory": memory,
            "trained_on": "pomdp" if partial else "mdp",
            "return_range": list(return_range),
            "seeds": list(range(n)),
            "episodes_per_seed": 1,
        }
        for twin, values in (("mdp", mdp), ("pomdp", pomdp)):
            if values is not None:
                record[twin] = {"mean_return": values, "episode_returns": [[v] for v in values]}
        (run / "evaluation.json").write_text(json.dumps(record))
    return run


def write_human(
    root: Path, name: str, *, env: str, partial: bool, rewards: list[float], seed: int = 0
) -> Path:
    """A human episode file as ``popgym-arcade play --save`` writes it."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.json"
    record = {
        "kind": "human_episode",
        "env": env,
        "partial": partial,
        "obs_size": 128,
        "seed": seed,
        "actions": [0] * len(rewards),
        "rewards": rewards,
        "return": float(sum(rewards)),
        "length": len(rewards),
    }
    path.write_text(json.dumps(record))
    return path
