"""``popgym-arcade train``: every :class:`~popgym_arcade.agents.config.TrainConfig` field is a flag.

Top-level fields are ``--name`` (``--steps 2e6`` accepts scientific notation), section fields
``--section.name`` (``--pqn.lr 1e-4``, ``--network.memory-hidden 128``); booleans take
``--flag``/``--no-flag``. Shortcuts: ``--memory`` and ``--encoder`` for the network's.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import sys
import textwrap

from popgym_arcade._extras import install_hint
from popgym_arcade.agents.config import ALGORITHMS, NetworkConfig, TrainConfig

_SHORTCUTS = {"memory": "network.memory", "encoder": "network.encoder"}
_RUN_FLAGS = ("out", "resume", "progress", "list_memory", "wandb_project", "tensorboard_dir")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (its ``--help`` text)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in itertools.pairwise(body):
        is_field = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        if is_field and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def parse_int(text: str) -> int:
    """An integer, also written as ``2e6`` or ``1_000``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != int(value):
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    return int(value)


def _add_fields(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    docs = field_docs(cls)
    defaults = cls()
    for field in dataclasses.fields(cls):
        default = getattr(defaults, field.name)
        if dataclasses.is_dataclass(default):
            group = parser.add_argument_group(f"{field.name} ({type(default).__name__})")
            _add_fields(group, type(default), prefix=f"{field.name}.")
            continue
        dest = f"{prefix}{field.name}"
        flag = "--" + prefix + field.name.replace("_", "-")
        help_text = f"{docs.get(field.name, '')} (default: {default})"
        if isinstance(default, bool):
            parser.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            kind = parse_int if isinstance(default, int) else type(default)
            choices = ALGORITHMS if dest == "algo" else None
            parser.add_argument(flag, dest=dest, type=kind, default=None, choices=choices, help=help_text)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``train`` to the ``popgym-arcade`` sub-commands."""
    parser = subparsers.add_parser(
        "train",
        help="train agents (PQN, PPO or DQN with any memory model) and write a run folder",
        description="Train `--seeds` agents at once and keep the run's record (config.json, metrics.csv, "
        "checkpoints, evaluation.json on both twins) in --out. Re-run the same command to resume.",
    )
    parser.add_argument(
        "--out", default=None, help="run folder (default: runs/<algo>-<memory>-<env>-<twin>-...)"
    )
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="continue a run found in --out (default: on)")  # fmt: skip
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    parser.add_argument("--list-memory", action="store_true", help="list the memory model names and exit")
    parser.add_argument("--wandb-project", default=None, help="also log to this W&B project (needs wandb)")
    parser.add_argument(
        "--tensorboard-dir", default=None, help="also log TensorBoard events here (needs tensorboardX)"
    )
    network_docs = field_docs(NetworkConfig)
    for short, target in _SHORTCUTS.items():
        parser.add_argument(
            f"--{short}", dest=target, default=None, help=f"same as --{target} ({network_docs[short]})"
        )
    _add_fields(parser, TrainConfig)
    parser.set_defaults(func=cmd_train)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed flags (unset flags keep their defaults)."""
    values = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k not in _RUN_FLAGS and k not in ("func", "command")
    }
    data: dict = {}
    for dest, value in values.items():
        section, _, name = dest.rpartition(".")
        (data.setdefault(section, {}) if section else data)[name] = value
    base = TrainConfig()
    sections = {
        name: dataclasses.replace(getattr(base, name), **fields)
        for name, fields in data.items()
        if isinstance(fields, dict)
    }
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    return dataclasses.replace(base, **top, **sections)


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``popgym-arcade train``."""
    try:
        from popgym_arcade.agents.memory import MEMORY_MODELS, canonical_memory_name
    except ImportError as error:
        print(
            f"error: training needs the `train` extra: {install_hint('train')} ({error})",
            file=sys.stderr,
        )
        return 2
    if args.list_memory:
        print("\n".join(MEMORY_MODELS))
        return 0
    try:
        config = config_from_args(args)
        config = dataclasses.replace(
            config,
            network=dataclasses.replace(config.network, memory=canonical_memory_name(config.network.memory)),
        )
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from popgym_arcade.runs.sinks import make_sinks
    from popgym_arcade.runs.train import RunError, default_run_dir, train_run

    out = args.out or default_run_dir(config)
    try:
        sinks = make_sinks(config, wandb_project=args.wandb_project, tensorboard_dir=args.tensorboard_dir)
        run_dir = train_run(config, out, resume=args.resume, progress=args.progress, sinks=sinks)
    except (RunError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_summary(run_dir)
    return 0


def _print_summary(run_dir) -> None:
    import json

    path = run_dir / "evaluation.json"
    if not path.exists():
        print(f"run folder: {run_dir} (not finished; run the same command again to resume)")
        return
    record = json.loads(path.read_text())
    for twin in ("mdp", "pomdp"):
        means = record[twin]["mean_return"]
        print(f"greedy return on the {twin.upper()} twin: {sum(means) / len(means):.3f} (per seed: "
              + ", ".join(f"{m:.3f}" for m in means) + ")")  # fmt: skip
    print(f"run folder: {run_dir}")
