"""Quick steps/s of random-action rollouts (a development check; see popgym_arcade.throughput).

    python benchmarks/speed.py CartPoleEasy NavigatorHard --envs 64 --steps 200 [--partial] [--size 128]
    python benchmarks/speed.py popgym_arcade.environments.cartpole:CartPole:Easy
"""

from __future__ import annotations

import argparse
import importlib

import popgym_arcade
from popgym_arcade.throughput import measure


def build(spec: str, partial_obs: bool, obs_size: int):
    """An env and its params from a registered id or ``module:Class:Level``."""
    if ":" in spec:
        module, cls, level = spec.split(":")
        env = getattr(importlib.import_module(module), cls)(level, partial_obs=partial_obs, obs_size=obs_size)
        return env, env.default_params
    return popgym_arcade.make(spec, partial_obs=partial_obs, obs_size=obs_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--partial", action="store_true")
    args = parser.parse_args()
    for spec in args.specs:
        env, params = build(spec, args.partial, args.size)
        result = measure(env, params, args.envs, args.steps, args.repeats)
        twin = "POMDP" if args.partial else "MDP"
        print(
            f"{spec:45s} {twin:5s} {args.size}px  {result.steps_per_second:12,.0f} steps/s"
            f"  compile {result.compile_seconds:5.1f}s"
        )


if __name__ == "__main__":
    main()
