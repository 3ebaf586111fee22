"""Measure one env of the *published* popgym-arcade (0.0.7) and print the result as JSON.

Run with the python of ``benchmarks/.published-venv`` (see ``benchmarks/throughput.py``), where
``import popgym_arcade`` is the published package. The measurement method is ours, loaded by
path from ``popgym_arcade/throughput.py`` of this checkout (it needs only jax), so both
implementations are timed by the same code: reset once, one jitted ``lax.scan`` of vmapped steps
with the latest frames in the carry, compile (the fastest of ``--compiles``), warm-up, median of
repeats.

    python _published_worker.py --throughput-file ../popgym_arcade/throughput.py \
        --id CartPoleEasy --partial --size 128 --envs 64 --steps 16 --repeats 3 --compiles 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys


def load_method(path: str):
    """Our ``popgym_arcade/throughput.py`` as a standalone module (it must not shadow theirs)."""
    spec = importlib.util.spec_from_file_location("_ours_throughput", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


def published_rollout(method, env_id: str, partial: bool, size: int, num_envs: int, num_steps: int):
    """An unjitted rollout of the published env ``env_id`` (gymnax 0.0.x style API)."""
    import popgym_arcade  # the published package, in this venv

    env, params = popgym_arcade.make(env_id, partial_obs=partial, obs_size=size)

    def reset(key):
        return env.reset(key, params)

    def step(key, state, action):
        obs, state, reward, _, _ = env.step(key, state, action, params)
        return obs, state, reward

    num_actions = int(env.action_space(params).n)
    return method.make_rollout_fn(reset, step, num_actions, num_envs, num_steps)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--throughput-file", required=True, help="path to our popgym_arcade/throughput.py")
    parser.add_argument("--id", required=True, help="env id, e.g. CartPoleEasy")
    parser.add_argument("--partial", action="store_true", help="POMDP twin (default MDP)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compiles", type=int, default=2, help="XLA compiles to take the fastest of")
    args = parser.parse_args()

    from importlib.metadata import version

    import jax

    method = load_method(args.throughput_file)
    # The first compile in a process pays one-off costs; ours run in a process that has already
    # compiled (the frame-write ceiling is measured first), so warm this one the same way.
    method.measure_frame_ceiling(8, args.size, 4, 1)
    rollout = published_rollout(method, args.id, args.partial, args.size, args.envs, args.steps)
    result = method.time_rollout(rollout, args.envs, args.steps, args.repeats, args.compiles)
    print(
        json.dumps(
            {
                "steps_per_second": result.steps_per_second,
                "compile_seconds": result.compile_seconds,
                "first_call_seconds": result.first_call_seconds,
                "num_envs": result.num_envs,
                "num_steps": result.num_steps,
                "jax": jax.__version__,
                "popgym_arcade": version("popgym-arcade"),
            }
        )
    )


if __name__ == "__main__":
    main()
