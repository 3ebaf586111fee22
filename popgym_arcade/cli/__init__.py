"""The ``popgym-arcade`` command.

    popgym-arcade list                 ids and each game's difficulty table
    popgym-arcade demo --out DIR       twins side by side for every game, and steps/s
    popgym-arcade play ID              play a twin (or --both) with the keyboard (pygame-ce)
    popgym-arcade record ID --out F    a policy's trajectory as a GIF/MP4, twins side by side
    popgym-arcade train --algo pqn ... train agents; a run folder with metrics, checkpoints, evaluation
    popgym-arcade analyze A RUNS --out D  gap-bias, saliency, recall or contamination of run folders
    popgym-arcade study --out DIR      train MLP and memory agents on both twins, analyse, report
    popgym-arcade sweep GRID --store D train a TOML grid of runs (locally, in processes, or on Ray)

Subcommand modules are imported when the parser is built; none imports pygame or a video
writer at import time, so ``popgym-arcade list`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
from collections.abc import Sequence

from popgym_arcade.registration import BUILTIN_GAMES, LEVELS, REGISTERED_ENVIRONMENTS, game_class


def _difficulty_tables() -> tuple[dict[str, list[str]], list[str]]:
    """Each built-in game's difficulty table as text lines, and the registered ids of other games."""
    tables: dict[str, list[str]] = {}
    builtin_ids = set()
    for name, _ in BUILTIN_GAMES:
        game = game_class(name)
        fields = [f.name for f in dataclasses.fields(game.difficulties[LEVELS[0]])]
        lines = tables.setdefault(name, [f"  {'id':24s} " + " ".join(f"{k:>16s}" for k in fields)])
        for level in LEVELS:
            values = dataclasses.asdict(game.difficulties[level]).values()
            lines.append(f"  {name + level:24s} " + " ".join(f"{v!s:>16s}" for v in values))
            builtin_ids.add(name + level)
    return tables, [i for i in REGISTERED_ENVIRONMENTS if i not in builtin_ids]


def cmd_list(args: argparse.Namespace) -> int:
    """Print every registered id, grouped by game with its difficulty table."""
    tables, others = _difficulty_tables()
    for game, lines in tables.items():
        print(game)
        print("\n".join(lines))
        print()
    if others:
        print("Other registered ids: " + ", ".join(others))
    print(f"{len(REGISTERED_ENVIRONMENTS)} ids; each in two twins: partial_obs=False (MDP) and True (POMDP).")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Render the twins of every (or each given) id and print steps/s."""
    from popgym_arcade.demo import run_demo

    unknown = [i for i in args.ids or [] if i not in REGISTERED_ENVIRONMENTS]
    if unknown:
        print(f"error: unknown ids {unknown}; see `popgym-arcade list`", file=sys.stderr)
        return 2
    run_demo(
        args.out,
        args.ids or None,
        num_steps=args.steps,
        obs_size=args.size,
        speed_envs=args.envs,
        speed_steps=args.speed_steps,
        seed=args.seed,
    )
    print(f"pictures written to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``popgym-arcade`` command."""
    parser = argparse.ArgumentParser(
        prog="popgym-arcade", description="POPGym Arcade: pixel MDP/POMDP twins in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list registered ids with each game's difficulty table")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser(
        "demo", help="render MDP and POMDP twins side by side for every game, and print steps/s"
    )
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument("--ids", nargs="*", help="ids to show (default: every registered id)")
    p.add_argument("--steps", type=int, default=8, help="random steps shown per game (default: 8)")
    p.add_argument(
        "--size", type=int, choices=(128, 256), default=128, help="observation size (default: 128)"
    )
    p.add_argument("--envs", type=int, default=64, help="parallel envs for the steps/s figure (default: 64)")
    p.add_argument("--speed-steps", type=int, default=100, help="steps per env for the steps/s figure")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    # Imported here, not at the top: each module defines its own subcommand and imports its
    # heavy dependencies (pygame, video writers, trained agents) only when run.
    from popgym_arcade import play, record, sweep
    from popgym_arcade.cli import train as train_cli
    from popgym_arcade.analysis import cli as analysis_cli

    play.add_parser(sub)
    record.add_parser(sub)
    train_cli.add_parser(sub)
    analysis_cli.add_parser(sub)
    sweep.add_parser(sub)
    return parser


EXIT_BROKEN_PIPE = 128 + 13
"""Exit status when the reader of our output went away, as a shell reports death by SIGPIPE."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``popgym-arcade`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # `popgym-arcade list | head -1`: the reader has gone, so stop quietly, as `cat` does,
        # instead of printing a traceback (and a second one when Python flushes stdout at exit).
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _discard_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # stdout without a file descriptor
        pass


if __name__ == "__main__":
    sys.exit(main())
