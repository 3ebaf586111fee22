"""Quick steps/s of random-action rollouts (a development check; issue 4 grows the full benchmark).

    python benchmarks/speed.py CartPoleEasy NavigatorHard --envs 64 --steps 200 [--partial] [--size 128]
    python benchmarks/speed.py popgym_arcade.environments.cartpole:CartPole:Easy

Method: reset once, then one jitted ``lax.scan`` of ``--steps`` vmapped steps whose carry keeps
the latest frames and returns them (so XLA cannot drop the rendering); timed after a warm-up
with ``block_until_ready``, median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import jax
import jax.numpy as jnp

import popgym_arcade


def build(spec: str, partial_obs: bool, obs_size: int):
    if ":" in spec:
        module, cls, level = spec.split(":")
        env = getattr(importlib.import_module(module), cls)(level, partial_obs=partial_obs, obs_size=obs_size)
        return env, env.default_params
    return popgym_arcade.make(spec, partial_obs=partial_obs, obs_size=obs_size)


def make_rollout(env, params, num_envs: int, num_steps: int):
    def rollout(key):
        keys = jax.random.split(key, num_envs)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def body(carry, _):
            obs, state, key, total = carry
            key, k_act, k_step = jax.random.split(key, 3)
            actions = jax.random.randint(k_act, (num_envs,), 0, env.num_actions)
            obs, state, reward, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, num_envs), state, actions, params
            )
            return (obs, state, key, total + reward.sum()), None

        (obs, _, _, total), _ = jax.lax.scan(body, (obs, state, key, jnp.float32(0)), None, num_steps)
        return obs, total

    return jax.jit(rollout)


def measure(spec: str, partial_obs: bool, obs_size: int, num_envs: int, num_steps: int, repeats: int):
    env, params = build(spec, partial_obs, obs_size)
    rollout = make_rollout(env, params, num_envs, num_steps)
    start = time.perf_counter()
    jax.block_until_ready(rollout(jax.random.key(0)))
    compile_s = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(rollout(jax.random.key(i + 1)))
        times.append(time.perf_counter() - start)
    return num_envs * num_steps / statistics.median(times), compile_s


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
        sps, compile_s = measure(spec, args.partial, args.size, args.envs, args.steps, args.repeats)
        print(f"{spec:45s} {'POMDP' if args.partial else 'MDP':5s} {args.size}px  {sps:12,.0f} steps/s  compile+first run {compile_s:5.1f}s")


if __name__ == "__main__":
    main()
