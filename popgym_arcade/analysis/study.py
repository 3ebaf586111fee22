"""``popgym-arcade study``: train memoryless and memory agents on both twins, run every analysis, report.

    popgym-arcade study --out DIR [--budget tiny|default|paper] [--game G] [--memory M] [--seeds N]
                        [--no-progress] [--dry-run]

A study is a grid of runs (envs x models x twins; each run trains all its seeds at once with
PQN, one run after another) followed by every analysis on them:

1. train into ``DIR/runs/<algo>-<memory>-<env>-<twin>`` with
   :func:`~popgym_arcade.runs.train.train_run`. Re-running the study skips finished runs (those
   with ``evaluation.json`` and the same config) and resumes interrupted ones;
2. Observability Gap and Memory Bias (``DIR/gap_bias``), saliency (``DIR/saliency``: per env and
   model, the MDP-trained agent above the POMDP-trained one), recall density (``DIR/recall``)
   and memory contamination (``DIR/contamination``, per game);
3. ``DIR/report.md``: the tables, relative links to the figures, what each metric means, the
   configs, wall times and what the budget can and cannot show.

Budgets (:data:`BUDGETS`) are frozen :class:`StudyBudget` values:

- ``tiny``: the whole pipeline in a minute or two on a CPU, for tests; its numbers are noise;
- ``default``: CartPoleEasy, MLP vs GRU, 2 seeds, in about 15 minutes on a 2-core CPU;
- ``paper``: the paper's grid, all 10 games x Easy/Medium/Hard x {MLP, GRU, LRU, MinGRU, FART} x
  5 seeds with the published encoder and PQN settings; days of compute (``--dry-run`` lists it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from popgym_arcade.agents.config import NetworkConfig, PQNConfig, TrainConfig, config_json
from popgym_arcade.registration import BUILTIN_GAMES, LEVELS, REGISTERED_ENVIRONMENTS

TWINS = (("mdp", False), ("pomdp", True))


@dataclass(frozen=True)
class StudyBudget:
    """Everything a study trains and analyses.

    Attributes:
        name: the budget's name.
        games: games (env ids without their difficulty) of the grid.
        difficulties: ``Easy``, ``Medium``, ``Hard`` levels of the grid.
        memories: memory models compared with the baseline.
        baseline: the memoryless model (Memory Bias is measured against it).
        seeds: seeds per run (trained at once, vmapped).
        steps: env steps per seed; ``steps_per_game`` overrides it per game.
        num_envs, rollout_steps: parallel envs per seed and steps per update.
        network: the network (its ``memory`` is set per run).
        pqn: PQN settings.
        eval_episodes, eval_max_steps: greedy evaluation on both twins after training.
        analysis_episodes, analysis_max_steps: episodes per seed for saliency, recall and
            contamination, and their length cap.
        noise_step, sigma, shuffle_k: the contamination perturbations.
        obs_size: observation side in pixels.
        steps_per_game: ``((game, steps), ...)`` where a game needs another budget.
        note: what this budget can and cannot show (printed in the report).
    """

    name: str
    games: tuple[str, ...]
    difficulties: tuple[str, ...]
    memories: tuple[str, ...]
    seeds: int
    steps: int
    num_envs: int
    rollout_steps: int
    network: NetworkConfig
    pqn: PQNConfig
    eval_episodes: int
    eval_max_steps: int
    analysis_episodes: int
    analysis_max_steps: int
    noise_step: int = 1
    sigma: float = 255.0
    shuffle_k: int = 8
    baseline: str = "MLP"
    algo: str = "pqn"
    obs_size: int = 128
    steps_per_game: tuple[tuple[str, int], ...] = ()
    note: str = ""

    @property
    def envs(self) -> tuple[str, ...]:
        """Env ids of the grid (games x difficulties)."""
        return tuple(f"{game}{level}" for game in self.games for level in self.difficulties)

    @property
    def models(self) -> tuple[str, ...]:
        """The baseline, then the memory models."""
        return (self.baseline, *self.memories)

    def steps_for(self, env: str) -> int:
        """Env steps per seed of the runs on ``env``."""
        from popgym_arcade.analysis.records import split_env_id

        return dict(self.steps_per_game).get(split_env_id(env)[0], self.steps)

    def runs(self) -> tuple[StudyRun, ...]:
        """Every run of the grid, env by env, model by model, MDP before POMDP."""
        return tuple(
            StudyRun(run_name(self.algo, memory, env, twin), self.train_config(env, memory, partial))
            for env in self.envs
            for memory in self.models
            for twin, partial in TWINS
        )

    def train_config(self, env: str, memory: str, partial: bool) -> TrainConfig:
        """The :class:`TrainConfig` of one run."""
        return TrainConfig(
            algo=self.algo,
            env=env,
            partial=partial,
            obs_size=self.obs_size,
            seed=0,
            seeds=self.seeds,
            steps=self.steps_for(env),
            num_envs=self.num_envs,
            rollout_steps=self.rollout_steps,
            network=dataclasses.replace(self.network, memory=memory),
            pqn=self.pqn,
            eval_episodes=self.eval_episodes,
            eval_max_steps=self.eval_max_steps,
        )

    def introspection_settings(self, seed: int = 0):
        """The :class:`~popgym_arcade.analysis.introspect.IntrospectionSettings` of the analyses."""
        from popgym_arcade.analysis.introspect import IntrospectionSettings

        return IntrospectionSettings(
            episodes=self.analysis_episodes,
            max_steps=self.analysis_max_steps,
            seed=seed,
            sigma=self.sigma,
            noise_step=self.noise_step,
            shuffle_k=self.shuffle_k,
        )


@dataclass(frozen=True)
class StudyRun:
    """One run of a study: its folder name and config."""

    name: str
    config: TrainConfig


def run_name(algo: str, memory: str, env: str, twin: str) -> str:
    """``<algo>-<memory>-<env>-<twin>``: the run's folder under ``DIR/runs``."""
    return f"{algo}-{memory}-{env}-{twin}"


# Placeholders to be calibrated (the learning issue's calibration note): sizes chosen so that each
# budget does what its note says, not tuned for returns.
TINY = StudyBudget(
    name="tiny",
    games=("CartPole",),
    difficulties=("Easy",),
    memories=("GRU",),
    seeds=2,
    steps=2 * 8 * 4,
    num_envs=2,
    rollout_steps=8,
    network=NetworkConfig(
        encoder="small", features=32, memory_hidden=32, memory_output=32, head_hidden=32, memory_layers=1
    ),
    pqn=PQNConfig(minibatches=2, epochs=1),
    eval_episodes=2,
    eval_max_steps=50,
    analysis_episodes=2,
    analysis_max_steps=16,
    noise_step=1,
    shuffle_k=4,
    note=(
        "tiny: a pipeline check. Each agent sees 64 environment steps, so the agents are untrained "
        "and every number below is noise: the report shows that the pipeline runs, not a result."
    ),
)

DEFAULT = StudyBudget(
    name="default",
    games=("CartPole",),
    difficulties=("Easy",),
    memories=("GRU",),
    seeds=2,
    steps=250_000,
    num_envs=32,
    rollout_steps=32,
    network=NetworkConfig(
        encoder="small", features=128, memory_hidden=128, memory_output=128, head_hidden=128, memory_layers=1
    ),
    pqn=PQNConfig(lr=3e-4, minibatches=4, epochs=2, eps_decay=0.5),
    eval_episodes=32,
    eval_max_steps=500,
    analysis_episodes=8,
    analysis_max_steps=64,
    noise_step=1,
    shuffle_k=8,
    note=(
        "default: CartPoleEasy, MLP and GRU, 2 seeds x 250,000 steps per run with the cheap encoder, "
        "sized to finish in about 15 minutes on a 2-core CPU. PQN learns CartPole in this budget "
        "(returns well above the random policy's ~0.1) but is far from converged, and intervals over "
        "2 seeds are wide: read the numbers as a worked example of every analysis, not as a result "
        "(benchmarks/learning.py trains 6x longer; --budget paper is the paper's grid)."
    ),
)


PAPER = StudyBudget(
    name="paper",
    games=tuple(name for name, _ in BUILTIN_GAMES),
    difficulties=LEVELS,
    memories=("GRU", "LRU", "MinGRU", "FART"),
    seeds=5,
    steps=20_000_000,
    steps_per_game=(("CartPole", 10_000_000), ("NoisyCartPole", 10_000_000), ("AutoEncode", 10_000_000)),
    num_envs=16,
    rollout_steps=128,
    network=NetworkConfig(),  # the published CNN encoder and memory trunk sizes
    pqn=PQNConfig(),  # the published PQN settings (schedules over the whole run)
    eval_episodes=32,
    eval_max_steps=4000,
    analysis_episodes=8,
    analysis_max_steps=128,
    noise_step=1,
    shuffle_k=10,
    note=(
        "paper: the paper's grid (all games, difficulties, memory models, 5 seeds) with the published "
        "encoder, PQN settings and step budgets; days of accelerator time."
    ),
)

BUDGETS: dict[str, StudyBudget] = {budget.name: budget for budget in (TINY, DEFAULT, PAPER)}


def resolve_budget(
    name: str, *, game: str | None = None, memory: str | None = None, seeds: int | None = None
) -> StudyBudget:
    """``BUDGETS[name]`` with the command line's overrides.

    Args:
        name: ``tiny``, ``default`` or ``paper``.
        game: a game (``Navigator``: the budget's difficulties) or an env id (``NavigatorHard``).
        memory: the memory model compared with the baseline (replaces the budget's list).
        seeds: seeds per run.

    Raises:
        ValueError: unknown budget, game or memory model; the baseline named as the memory model;
            fewer than one seed.
    """
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose from {', '.join(BUDGETS)}")
    budget = BUDGETS[name]
    if game is not None:
        games = [g for g, _ in BUILTIN_GAMES]
        if game in REGISTERED_ENVIRONMENTS:
            from popgym_arcade.analysis.records import split_env_id

            base, level = split_env_id(game)
            budget = dataclasses.replace(budget, games=(base,), difficulties=(level,) if level else ("",))
        elif game in games:
            budget = dataclasses.replace(budget, games=(game,))
        else:
            raise ValueError(f"unknown game {game!r}: give a game ({', '.join(games)}) or an env id")
    if memory is not None:
        from popgym_arcade.agents.memory import canonical_memory_name

        memory = canonical_memory_name(memory)
        if memory == budget.baseline:
            raise ValueError(f"the memory model must differ from the memoryless baseline {budget.baseline}")
        budget = dataclasses.replace(budget, memories=(memory,))
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        budget = dataclasses.replace(budget, seeds=seeds)
    return budget


# ---------------------------------------------------------------------------------------------
# The grid


def describe_grid(budget: StudyBudget) -> str:
    """A text summary of the grid: counts, steps and one line per run (for ``--dry-run``)."""
    runs = budget.runs()
    steps = sum(run.config.steps * run.config.seeds for run in runs)
    lines = [
        (
            f"budget {budget.name}: {len(runs)} runs = {len(budget.envs)} env(s) x {len(budget.models)} model(s) "
            f"({', '.join(budget.models)}) x 2 twins; {budget.seeds} seed(s) per run (trained at once)"
        ),
        f"env steps: {steps:,d} in all ({steps / max(len(runs), 1):,.0f} per run on average)",
        f"analysis: {budget.analysis_episodes} episode(s) of at most {budget.analysis_max_steps} steps per seed",
        "",
        f"{'run':48s} {'steps/seed':>12s} {'seeds':>5s}",
    ]
    lines += [f"{run.name:48s} {run.config.steps:>12,d} {run.config.seeds:>5d}" for run in runs]
    return "\n".join(lines)


@dataclass(frozen=True)
class TrainedRun:
    """A run of the study after training: its folder, and what was done now."""

    run: StudyRun
    run_dir: Path
    status: str
    seconds: float


def is_finished(run_dir: Path, config: TrainConfig) -> bool:
    """The folder holds this very config and its evaluation: nothing left to do."""
    config_path = run_dir / "config.json"
    return (
        (run_dir / "evaluation.json").is_file()
        and config_path.is_file()
        and config_path.read_text().strip() == config_json(config).strip()
    )


def train_study(
    budget: StudyBudget, runs_root: Path, *, progress: bool = True, log: Callable[[str], None] = print
) -> tuple[TrainedRun, ...]:
    """Train every run of the grid one after another (finished runs are skipped, others resumed)."""
    from popgym_arcade.runs.train import train_run

    trained = []
    runs = budget.runs()
    for index, run in enumerate(runs, start=1):
        run_dir = runs_root / run.name
        if is_finished(run_dir, run.config):
            log(f"[{index}/{len(runs)}] {run.name}: finished before, reused")
            trained.append(TrainedRun(run, run_dir, "reused", 0.0))
            continue
        status = "resumed" if (run_dir / "config.json").exists() else "trained"
        log(
            f"[{index}/{len(runs)}] {run.name}: training {run.config.seeds} seed(s) x {run.config.steps:,d} steps"
        )
        started = time.perf_counter()
        train_run(run.config, run_dir, resume=True, progress=progress)
        trained.append(TrainedRun(run, run_dir, status, time.perf_counter() - started))
    return tuple(trained)


# ---------------------------------------------------------------------------------------------
# Analyses


@dataclass(frozen=True)
class StudyAnalysis:
    """The outputs of every analysis of a study (see :class:`~popgym_arcade.analysis.cli.Outputs`)."""

    gap_bias: Any
    saliency: Any
    recall: Any
    contamination: dict[str, Any]
    seconds: float


def analyse_study(
    budget: StudyBudget, run_dirs: Sequence[Path], out: Path, *, log: Callable[[str], None] = print
) -> StudyAnalysis:
    """Every analysis on the study's runs; outputs under ``out/<analysis>``."""
    from popgym_arcade.analysis import cli
    from popgym_arcade.analysis.introspect import introspect_run, run_info
    from popgym_arcade.analysis.records import load_records

    started = time.perf_counter()
    log("analysis: Observability Gap and Memory Bias")
    gap_bias = cli.gap_bias_outputs(load_records(run_dirs), out / "gap_bias", baseline=budget.baseline)
    settings = budget.introspection_settings()
    introspections = []
    for run_dir in run_dirs:
        log(f"analysis: saliency, recall and contamination of {run_dir.name}")
        introspections.append(introspect_run(run_info(run_dir), settings, log=log))
    # Memory agents first: the saliency figure the study is about.
    model_order = (*budget.memories, budget.baseline)
    saliency = cli.saliency_outputs([i.saliency for i in introspections], out / "saliency", model_order)
    recall = cli.recall_outputs([t for i in introspections for t in i.recall], out / "recall")
    games = sorted({i.run.game for i in introspections})
    contamination = {}
    for game in games:
        # Contamination curves compare the models and twins of one game (horizons differ by game).
        folder = out / "contamination" if len(games) == 1 else out / "contamination" / game
        group = [i for i in introspections if i.run.game == game]
        contamination[game] = cli.contamination_outputs(group, folder)
    return StudyAnalysis(gap_bias, saliency, recall, contamination, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# Report

EXPLANATIONS = {
    "gap_bias": (
        "J(f, X) is the mean standardised greedy return (0 = the game's worst, 1 = its best) of the "
        "agents with memory model f trained and evaluated on twin X. **Observability Gap** = "
        "J(f, MDP) - J(f, POMDP): what partial observability still costs with memory f (smaller is "
        "better). **Memory Bias** = J(f, MDP) - J(MLP, MDP): what the memory model costs (negative) or "
        "gives (positive) where memory is not needed. Brackets: 95% bootstrap confidence intervals "
        "over seeds."
    ),
    "saliency": (
        "For an episode o_0..o_n played by the agent on its own twin, each frame o_t is overlaid with "
        "sum_a (d Q(s_n, a) / d o_t)^2 per pixel: how much the last step's Q-values depend on that "
        "past frame, through memory. Top row: the agent trained on the MDP; bottom row: the agent "
        "trained on the POMDP. One colour scale per figure."
    ),
    "recall": (
        "The share of the last output's total saliency coming from the first, middle and last third "
        "of each episode (by its own length), averaged over episodes, then seeds, then models. An "
        "MDP agent needs only the present, so its mass should sit in the last third; a POMDP agent "
        "must recall the past."
    ),
    "contamination": (
        "Each episode is perturbed (noise on one frame, or its first frames shuffled), replayed through "
        "memory, and compared with the clean replay at every later step: the change of the mean-centred "
        "Q values ||dA||_2 and whether the greedy action flips. The flip horizon is the furthest step "
        "after the perturbation at which the action still flips (-1: never); a memoryless agent can "
        "only be affected at the perturbed frames themselves."
    ),
}


def _links(paths: Sequence[Path], out: Path) -> str:
    return "".join(f"![{path.stem}]({path.relative_to(out).as_posix()})\n\n" for path in paths)


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def report_markdown(
    budget: StudyBudget,
    trained: Sequence[TrainedRun],
    analysis: StudyAnalysis,
    out: Path,
    *,
    command: str,
    wall_seconds: float,
) -> str:
    """The text of ``report.md`` (links relative to ``out``)."""
    train_seconds = sum(t.seconds for t in trained)
    settings = budget.introspection_settings()
    parts = [
        "# Memory study",
        "",
        f"> **Budget `{budget.name}`.** {budget.note}",
        "",
        f"Command: `{command}`  ",
        f"Written: {datetime.datetime.now().isoformat(timespec='seconds')}  ",
        (
            f"Wall time: {_duration(wall_seconds)} in all; training {_duration(train_seconds)} (runs trained "
            f"or resumed now), analysis {_duration(analysis.seconds)}."
        ),
        "",
        "## Runs",
        "",
        (
            f"{budget.algo.upper()} agents, each run trains {budget.seeds} seed(s) at once; evaluation: "
            f"{budget.eval_episodes} greedy episode(s) per seed and twin (at most {budget.eval_max_steps} steps)."
        ),
        "",
        "| run | env | model | trained on | seeds | steps per seed | status | train time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in trained:
        config = t.run.config
        parts.append(
            f"| [{t.run.name}]({t.run_dir.relative_to(out).as_posix()}) | {config.env} | {config.network.memory} "
            f"| {'POMDP' if config.partial else 'MDP'} | {config.seeds} | {config.steps:,d} | {t.status} "
            f"| {_duration(t.seconds)} |"
        )
    parts += [
        "",
        "## Observability Gap and Memory Bias",
        "",
        EXPLANATIONS["gap_bias"],
        "",
        _links(analysis.gap_bias.figures, out) + analysis.gap_bias.markdown,
        "## Pixel saliency",
        "",
        EXPLANATIONS["saliency"],
        "",
        (
            f"Episodes of at most {settings.max_steps} steps; the longest of seed {settings.saliency_seed}'s "
            f"{settings.episodes} episode(s) is shown."
        ),
        "",
        _links(analysis.saliency.figures, out),
        "## Recall density",
        "",
        EXPLANATIONS["recall"],
        "",
        _links(analysis.recall.figures, out) + analysis.recall.markdown,
        "## Memory contamination",
        "",
        EXPLANATIONS["contamination"],
        "",
        (
            f"Noise: sigma = {settings.sigma:g} (0..255 pixel units) on frame {settings.noise_step}; shuffle: the "
            f"first {settings.shuffle_k} frames, a random non-identity permutation. Every episode of every seed "
            f"({settings.episodes} per seed) that is long enough is perturbed once each way."
        ),
        "",
    ]
    for game, outputs in analysis.contamination.items():
        if len(analysis.contamination) > 1:
            parts += [f"### {game}", ""]
        parts += [outputs.markdown, _links(outputs.figures, out)]
    first = trained[0].run.config if trained else None
    parts += [
        "## Configs",
        "",
        "The study budget:",
        "",
        "```json",
        json.dumps(dataclasses.asdict(budget), indent=2),
        "```",
        "",
    ]
    if first is not None:
        parts += [
            (
                f"The config of `{trained[0].run.name}` (the other runs differ in `env`, `partial`, "
                "`network.memory` and `steps` only; each run folder holds its own `config.json`):"
            ),
            "",
            "```json",
            config_json(first),
            "```",
            "",
        ]
    parts += [
        "## Files",
        "",
        (
            "Tables (CSV and Markdown) and figures of each analysis are in `gap_bias/`, `saliency/`, "
            "`recall/` and `contamination/`; the runs (config, metrics, checkpoints, evaluation) in `runs/`. "
            "Each analysis can be re-run on the runs with `popgym-arcade analyze ANALYSIS "
            f"{(out / 'runs').as_posix()} --out DIR`."
        ),
        "",
    ]
    return "\n".join(parts)


@dataclass(frozen=True)
class StudyResult:
    """Where a study wrote its report, and what it did."""

    report: Path
    trained: tuple[TrainedRun, ...]
    analysis: StudyAnalysis
    wall_seconds: float


def run_study(
    budget: StudyBudget,
    out: str | Path,
    *,
    progress: bool = True,
    command: str = "popgym-arcade study",
    log: Callable[[str], None] = print,
) -> StudyResult:
    """Train the grid of ``budget`` into ``out/runs``, analyse it, and write ``out/report.md``."""
    out = Path(out)
    started = time.perf_counter()
    trained = train_study(budget, out / "runs", progress=progress, log=log)
    analysis = analyse_study(budget, [t.run_dir for t in trained], out, log=log)
    wall = time.perf_counter() - started
    report = out / "report.md"
    report.write_text(report_markdown(budget, trained, analysis, out, command=command, wall_seconds=wall))
    return StudyResult(report, trained, analysis, wall)


# ---------------------------------------------------------------------------------------------
# Command


def _command_line(args: argparse.Namespace) -> str:
    words = ["popgym-arcade", "study", "--out", str(args.out), "--budget", args.budget]
    for flag, value in (("--game", args.game), ("--memory", args.memory), ("--seeds", args.seeds)):
        if value is not None:
            words += [flag, str(value)]
    return " ".join(words)


def cmd_study(args: argparse.Namespace) -> int:
    """Run ``popgym-arcade study``."""
    from popgym_arcade.analysis.records import AnalysisError

    try:
        budget = resolve_budget(args.budget, game=args.game, memory=args.memory, seeds=args.seeds)
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(describe_grid(budget))
        return 0
    if args.out is None:
        print("error: --out DIR is required (or pass --dry-run to list the grid)", file=sys.stderr)
        return 2
    from popgym_arcade.runs.train import RunError

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = run_study(budget, args.out, progress=args.progress, command=_command_line(args), log=log)
    except (AnalysisError, RunError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {result.report} (wall time {_duration(result.wall_seconds)})")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``study`` to the ``popgym-arcade`` sub-commands."""
    parser = sub.add_parser(
        "study",
        help="train memoryless and memory agents on both twins, run every analysis, write a report",
        description="Train a memoryless (MLP) and a memory agent with PQN on a game's MDP and POMDP twins "
        "(several seeds per run), then run gap-bias, saliency, recall and contamination on the runs and "
        "write DIR/report.md. Re-running skips finished runs and resumes interrupted ones.",
    )
    parser.add_argument("--out", default=None, help="study folder (runs, tables, figures, report.md)")
    parser.add_argument("--budget", choices=tuple(BUDGETS), default="default", help="size of the study")
    parser.add_argument("--game", default=None, help="a game (e.g. Navigator) or env id (NavigatorHard)")
    parser.add_argument("--memory", default=None, help="the memory model compared with MLP (default: GRU)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per run (default: the budget's)")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars while training"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the grid of runs and exit")
    parser.set_defaults(func=cmd_study)
    return parser
