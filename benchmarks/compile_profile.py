"""Where a game's compile time goes: XLA kernels and PRNG calls per line of source.

XLA's CPU compile time grows with the number of kernels it emits (each fusion, gather,
scatter, dynamic-update-slice, ... is compiled by LLVM on its own) and every ``jax.random``
call adds a threefry computation of its own. This script compiles the benchmark rollout of
each id (the program of ``benchmarks/throughput.py``), times the compile (median of
``--repeats`` fresh compiles in a warm process), and attributes the kernels of the optimised
HLO to the innermost line of this package that created them:

    python benchmarks/compile_profile.py --games Breakout,Tetris --twins POMDP --top 12

Kernel counts are deterministic, so they are the number to compare while changing a game;
compile seconds vary by 10-20 % between runs on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import time
from pathlib import Path

import jax

import popgym_arcade
from popgym_arcade import throughput as tp
from popgym_arcade.registration import BUILTIN_GAMES

PACKAGE = Path(popgym_arcade.__file__).resolve().parent
# Ops that XLA's CPU backend does not turn into a kernel of their own.
NOT_KERNELS = {
    "parameter", "constant", "tuple", "get-tuple-element", "bitcast", "while", "conditional",
    "call", "after-all", "partition-id", "replica-id", "iota", "copy-start", "copy-done",
}  # fmt: skip
INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%\S+ = \S+ ([a-z][-a-z0-9]*)\(.*?stack_frame_id=(\d+)")
FUSED = re.compile(r"^%?fused_computation|^%?wrapped_|^fused_")


def parse_frames(text: str) -> dict[int, list[tuple[str, str, int]]]:
    """``stack_frame_id -> [(file, function, line), ...]``, innermost first."""
    sections: dict[str, dict[int, str]] = collections.defaultdict(dict)
    current = None
    for line in text.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            current = line
            continue
        if current and line and line[0].isdigit():
            number, _, rest = line.partition(" ")
            sections[current][int(number)] = rest
        elif current and not line.strip():
            current = None
    files = {k: v.strip('"') for k, v in sections["FileNames"].items()}
    functions = {k: v.strip('"') for k, v in sections["FunctionNames"].items()}
    locations = {}
    for k, v in sections["FileLocations"].items():
        fields = dict(re.findall(r"(\w+)=(\d+)", v))
        locations[k] = (
            files.get(int(fields["file_name_id"]), "?"),
            functions.get(int(fields["function_name_id"]), "?"),
            int(fields["line"]),
        )
    frames: dict[int, list[tuple[str, str, int]]] = {}
    parents = {}
    for k, v in sections["StackFrames"].items():
        fields = dict(re.findall(r"(\w+)=(\d+)", v))
        parents[k] = (int(fields["file_location_id"]), int(fields.get("parent_frame_id", 0)))
    for k in parents:
        chain, frame, seen = [], k, set()
        while frame in parents and frame not in seen:
            seen.add(frame)
            location, parent = parents[frame]
            chain.append(locations.get(location, ("?", "?", 0)))
            frame = parent
        frames[k] = chain
    return frames


def kernel_sites(text: str) -> collections.Counter:
    """Kernels of an optimised HLO module, counted by the innermost line of this package."""
    frames = parse_frames(text)
    counts: collections.Counter = collections.Counter()
    in_fused_body = False
    for line in text.splitlines():
        if line.startswith(("%", "ENTRY", "fused", "wrapped")) and "{" in line:
            name = line.split()[0] if not line.startswith("ENTRY") else "ENTRY"
            in_fused_body = bool(FUSED.match(name))
            continue
        match = INSTRUCTION.match(line)
        if not match or in_fused_body or match.group(1) in NOT_KERNELS:
            continue
        chain = frames.get(int(match.group(2)), [])
        site = next(
            (f"{Path(f).relative_to(PACKAGE.parent)}:{n} {fn}" for f, fn, n in chain
             if Path(f).resolve().is_relative_to(PACKAGE) and not f.endswith("throughput.py")),
            "(benchmark harness)",
        )  # fmt: skip
        counts[site] += 1
    return counts


def profile(env_id: str, partial: bool, envs: int, steps: int, repeats: int) -> dict:
    """Compile seconds (median), kernel count, threefry calls and kernels per source line."""
    env, params = popgym_arcade.make(env_id, partial_obs=partial, obs_size=128)
    seconds = []
    for _ in range(repeats):
        rollout = tp.make_rollout(env, params, envs, steps)
        start = time.perf_counter()
        compiled = rollout.lower(jax.random.key(0)).compile()
        seconds.append(time.perf_counter() - start)
    lowered_text = tp.make_rollout(env, params, envs, steps).lower(jax.random.key(0)).as_text()
    sites = kernel_sites(compiled.as_text())
    return {
        "compile_seconds": statistics.median(seconds),
        "kernels": sum(sites.values()),
        "threefry_calls": len(re.findall(r"call @threefry2x32", lowered_text)),
        "sites": sites,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = lambda text: [x for x in text.split(",") if x]
    parser.add_argument("--games", type=names, default=[g for g, _ in BUILTIN_GAMES], help="game names")
    parser.add_argument("--level", default="Easy", help="Easy, Medium or Hard")
    parser.add_argument("--twins", type=names, default=["POMDP", "MDP"], help="POMDP,MDP")
    parser.add_argument("--envs", type=int, default=64, help="parallel envs of the rollout")
    parser.add_argument("--steps", type=int, default=128, help="scan length of the rollout")
    parser.add_argument("--repeats", type=int, default=3, help="compiles to take the median of")
    parser.add_argument("--top", type=int, default=0, help="print the N source lines with most kernels")
    args = parser.parse_args(argv)
    tp.measure_frame_ceiling(8, 128, 4, 1)  # the first compile in a process pays one-off costs
    print(f"{'env id':22s} {'twin':5s} {'compile s':>9s} {'kernels':>7s} {'threefry':>8s}")
    for game in args.games:
        for twin in args.twins:
            result = profile(f"{game}{args.level}", twin == "POMDP", args.envs, args.steps, args.repeats)
            print(
                f"{game + args.level:22s} {twin:5s} {result['compile_seconds']:9.2f}"
                f" {result['kernels']:7d} {result['threefry_calls']:8d}",
                flush=True,
            )
            for site, count in result["sites"].most_common(args.top):
                print(f"    {count:4d}  {site}")


if __name__ == "__main__":
    main()
