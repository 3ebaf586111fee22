"""``popgym-arcade analyze`` and ``popgym-arcade study``.

    popgym-arcade analyze gap-bias      RUNS... --out DIR [--statistic mean|iqm] [--baseline MLP]
    popgym-arcade analyze saliency      RUNS... --out DIR [--episodes N] [--max-steps L] [--seed S]
    popgym-arcade analyze recall        RUNS... --out DIR [--episodes N] [--max-steps L] [--seed S]
    popgym-arcade analyze contamination RUNS... --out DIR [--episodes N] [--max-steps L] [--seed S]
                                        [--sigma X] [--noise-step K] [--shuffle-k K]
    popgym-arcade study --out DIR [--budget tiny|default|paper] [--game G] [--memory M] [--seeds N]

RUNS are run folders written by ``popgym-arcade train``, or folders holding them (searched
recursively); ``gap-bias`` also takes human episode files (``popgym-arcade play --save``).
Each analysis writes CSV and Markdown tables and PNG figures to ``--out`` and prints their paths.

Grouping: ``gap-bias`` reports every game (and all games together); ``recall`` draws one bar
pair per game, as the paper's figure does; ``saliency`` and ``contamination`` compare the models
and twins of **one game** (one saliency figure per env and model, one contamination curve per
model and twin) and refuse runs of several games: run them once per game. The three
introspection analyses take the runs of one algorithm (``gap-bias`` chooses one with ``--algo``).

Bad input (no runs, runs of several games where one is expected, a run without
``evaluation.json``, a checkpoint that does not match its config, ...) prints ``error: ...`` and
exits with code 2. This module imports nothing heavy until a command runs, so that
``popgym-arcade list`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TWIN_ORDER = {"mdp": 0, "pomdp": 1}


@dataclass(frozen=True)
class Outputs:
    """What one analysis wrote: its files, its figures, and its tables as Markdown (for reports)."""

    files: tuple[Path, ...]
    figures: tuple[Path, ...]
    markdown: str


# ---------------------------------------------------------------------------------------------
# Small helpers


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; floats with 3 decimals, NaN as ``n/a``."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value + 0.0:.3f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV table (creating the folder)."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _slug(*parts: str) -> str:
    return "_".join(str(p).replace("/", "-").replace(" ", "-") for p in parts if p)


def _twin_label(twin: str) -> str:
    return twin.upper()


# ---------------------------------------------------------------------------------------------
# Gap and bias


def gap_bias_outputs(
    records,
    out: Path,
    *,
    statistic: str = "mean",
    baseline: str = "MLP",
    algo: str | None = None,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Outputs:
    """Observability Gap and Memory Bias of ``records``: tables in every scope, figures per game and overall."""
    from popgym_arcade.analysis.gap_bias import (
        gap_bias_table,
        gap_bias_to_csv,
        gap_bias_to_markdown,
        plot_gap_bias,
    )
    from popgym_arcade.analysis.records import write_records_csv

    rows = gap_bias_table(
        records,
        algo=algo,
        baseline=baseline,
        statistic=statistic,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
    )
    files = [
        write_records_csv(records, out / "returns.csv"),
        gap_bias_to_csv(rows, out / "gap_bias.csv"),
    ]
    markdown = "### All envs\n\n" + gap_bias_to_markdown(rows, scope="all")
    markdown += "\n### Per env\n\n" + gap_bias_to_markdown(rows, scope="env")
    (out / "gap_bias.md").write_text(gap_bias_to_markdown(rows))
    files.append(out / "gap_bias.md")
    figures = [plot_gap_bias(rows, out / "gap_bias.png")]
    games = sorted({row.group for row in rows if row.scope == "game"})
    if len(games) > 1:
        figures += [
            plot_gap_bias(rows, out / f"gap_bias_{game}.png", scope="game", group=game) for game in games
        ]
    return Outputs(tuple(files), tuple(figures), markdown)


# ---------------------------------------------------------------------------------------------
# Saliency


def _model_key(run) -> tuple[str, str, str]:
    return run.env, run.algo, run.memory


def saliency_outputs(examples: Sequence, out: Path, model_order: Sequence[str] = ()) -> Outputs:
    """One figure per (env, algorithm, memory model): the MDP-trained agent above the POMDP-trained one.

    Figures are listed env by env, models in ``model_order`` first (then alphabetically). Also
    ``saliency.csv``: per shown episode and frame t, the total saliency m_t, its share of the
    episode's total and the relative position tau = t / (L - 1).
    """
    import numpy as np

    from popgym_arcade.analysis.recall import relative_positions
    from popgym_arcade.analysis.saliency import frame_saliency, plot_saliency

    if not examples:
        raise _error("no saliency examples to draw")
    groups: dict[tuple[str, str, str], list] = {}
    for example in examples:
        groups.setdefault(_model_key(example.run), []).append(example)
    figures, rows = [], []
    markdown = ""
    rank = {model: i for i, model in enumerate(model_order)}

    def order(key: tuple[str, str, str]) -> tuple:
        env, algo, memory = key
        return env, algo, rank.get(memory, len(rank)), memory

    for (env, algo, memory), group in sorted(groups.items(), key=lambda item: order(item[0])):
        group = sorted(group, key=lambda e: TWIN_ORDER[e.run.twin])
        path = out / f"saliency_{_slug(env, algo, memory)}.png"
        plot_saliency(
            path,
            [e.frames for e in group],
            [e.maps for e in group],
            labels=[f"{_twin_label(e.run.twin)} agent\nseed {e.seed}" for e in group],
            title=f"{env}: {algo.upper()} {memory}, saliency of the last output through memory",
        )
        figures.append(path)
        markdown += f"![saliency {env} {memory}]({path.name})\n\n"
        for e in group:
            mass = frame_saliency(e.maps)
            total = mass.sum()
            for t, (m, tau) in enumerate(zip(mass, relative_positions(len(mass)), strict=True)):
                share = m / total if total > 0 else np.nan
                rows.append(
                    [env, algo, memory, e.run.twin, e.seed, t, f"{tau:.6g}", f"{m:.6g}", f"{share:.6g}"]
                )
    table = write_csv(
        out / "saliency.csv",
        ["env", "algo", "model", "twin", "seed", "step", "tau", "frame_saliency", "share"],
        rows,
    )
    return Outputs((table,), tuple(figures), markdown)


# ---------------------------------------------------------------------------------------------
# Recall density


def recall_outputs(trajectories: Sequence, out: Path) -> Outputs:
    """Recall shares per (game, twin) (table and stacked bars) and per (game, twin, model); every trajectory."""
    from popgym_arcade.analysis.recall import THIRDS, plot_recall_density, recall_to_csv, summarise_recall

    samples = [t.sample for t in trajectories]
    by_game = summarise_recall(samples, by=("game", "twin"))
    by_model = summarise_recall(samples, by=("game", "twin", "model"))
    files = [
        recall_to_csv(by_game, out / "recall.csv"),
        recall_to_csv(by_model, out / "recall_by_model.csv", by=("game", "twin", "model")),
        write_csv(
            out / "recall_trajectories.csv",
            ["env", "twin", "model", "seed", "episode", "length", *THIRDS],
            [
                [t.sample.env, t.sample.twin, t.sample.model, t.sample.seed, t.episode, t.length]
                + [f"{s:.6g}" for s in t.sample.shares]
                for t in trajectories
            ],
        ),
    ]

    def rows(summaries):
        return [
            [*s.group[:1], _twin_label(s.group[1]), *s.group[2:], *s.shares, s.n_trajectories, s.n_excluded]
            for s in summaries
        ]

    counts = ["trajectories", "excluded (no saliency)"]
    markdown = "By game and twin (mean over trajectories, then seeds, then models):\n\n"
    markdown += markdown_table(["game", "twin", *THIRDS, *counts], rows(by_game))
    markdown += "\nBy memory model:\n\n"
    markdown += markdown_table(["game", "twin", "model", *THIRDS, *counts], rows(by_model))
    (out / "recall.md").write_text(markdown)
    files.append(out / "recall.md")
    figure = plot_recall_density(by_game, out / "recall.png")
    return Outputs(tuple(files), (figure,), markdown)


# ---------------------------------------------------------------------------------------------
# Contamination


def _replay_label(run, several_envs: bool) -> str:
    label = f"{run.memory}, {_twin_label(run.twin)}"
    return f"{run.env} {label}" if several_envs else label


def contamination_rows(replays: Sequence, skipped: dict) -> list[list[Any]]:
    """Per (env, algo, model, twin, perturbation): replays, skipped episodes and summary statistics.

    ``skipped`` maps the same keys to the number of episodes too short for the perturbation.
    Columns: see :data:`CONTAMINATION_HEADER`. Flip horizons are -1 for a replay whose greedy
    action never flips at or after the perturbation.
    """
    import numpy as np

    groups: dict[tuple, list] = {key: [] for key, count in skipped.items() if count}
    for replay in replays:
        run = replay.run
        key = (run.env, run.algo, run.memory, run.twin, replay.result.perturbation)
        groups.setdefault(key, []).append(replay.summary)
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], TWIN_ORDER[k[3]], k[4])):
        summaries = groups[key]
        horizons = np.array([s.flip_horizon for s in summaries])
        later = [s for s in summaries if s.n_later_steps]

        def mean(values) -> float:
            return float(np.mean(values)) if len(values) else math.nan

        rows.append(
            [
                *key[:3],
                _twin_label(key[3]),
                key[4],
                len(summaries),
                skipped.get(key, 0),
                mean([s.change_at_perturbation for s in summaries]),
                mean([s.mean_change for s in later]),
                mean([s.flip_fraction for s in later]),
                mean(horizons >= 1),
                float(np.median(horizons)) if horizons.size else math.nan,
                int(horizons.max()) if horizons.size else "n/a",
            ]
        )
    return rows


CONTAMINATION_HEADER = (
    "env",
    "algo",
    "model",
    "twin",
    "perturbation",
    "replays",
    "skipped (too short)",
    "change at perturbation",
    "mean change later",
    "flip fraction later",
    "share flipping later",
    "median flip horizon",
    "max flip horizon",
)


def contamination_outputs(introspections: Sequence, out: Path) -> Outputs:
    """Replay summaries (per replay and aggregated), curves per perturbation, and one example per perturbation.

    Curves: one line per (model, twin) (with the env when several envs are given) of the change
    and the flip rate against steps after the perturbation. Examples: the first replay of the
    memory agent on the POMDP when there is one (else the first run).
    """
    from popgym_arcade.analysis.contamination import (
        contamination_to_csv,
        plot_contamination_curves,
        plot_contamination_example,
    )
    from popgym_arcade.analysis.introspect import PERTURBATIONS

    replays = [r for i in introspections for r in i.contamination]
    if not replays:
        settings = introspections[0].settings if introspections else None
        raise _error(
            "no episode was long enough to perturb"
            + (
                f" (noise step {settings.noise_step}, shuffle k {settings.shuffle_k}); lower them or raise "
                f"--max-steps"
                if settings
                else ""
            )
        )
    skipped = {
        (i.run.env, i.run.algo, i.run.memory, i.run.twin, name): count
        for i in introspections
        for name, count in i.skipped.items()
    }
    files = [
        contamination_to_csv(
            [r.summary for r in replays], out / "contamination_replays.csv", [r.labels() for r in replays]
        )
    ]
    rows = contamination_rows(replays, skipped)
    files.append(write_csv(out / "contamination.csv", CONTAMINATION_HEADER, rows))
    markdown = markdown_table(CONTAMINATION_HEADER, rows)
    (out / "contamination.md").write_text(markdown)
    files.append(out / "contamination.md")

    several_envs = len({r.run.env for r in replays}) > 1
    figures = []
    for perturbation in PERTURBATIONS:
        chosen = [r for r in replays if r.result.perturbation == perturbation]
        if not chosen:
            continue
        curves: dict[str, list] = {}
        order = sorted(chosen, key=lambda r: (r.run.env, r.run.memory, TWIN_ORDER[r.run.twin]))
        for replay in order:
            curves.setdefault(_replay_label(replay.run, several_envs), []).append(replay.result)
        settings = introspections[0].settings
        detail = (
            f"noise sigma={settings.sigma:g} on frame {settings.noise_step}"
            if perturbation == "noise"
            else f"first {settings.shuffle_k} frames shuffled"
        )
        path = out / f"contamination_{perturbation}.png"
        figures.append(plot_contamination_curves(curves, path, title=f"Memory contamination: {detail}"))
    for example in _examples(introspections):
        replay = example.replay
        path = out / f"contamination_example_{replay.result.perturbation}.png"
        title = (
            f"{replay.run.env} {replay.run.memory} ({_twin_label(replay.run.twin)} agent, seed {replay.seed}, "
            f"episode {replay.episode}): {replay.result.perturbation}"
        )
        figures.append(
            plot_contamination_example(example.clean, example.perturbed, replay.result, path, title=title)
        )
    return Outputs(tuple(files), tuple(figures), markdown)


def _examples(introspections: Sequence) -> list:
    """One example per perturbation, preferring a memory agent on the POMDP (where memory matters)."""

    def preference(introspection) -> tuple:
        run = introspection.run
        return (run.twin != "pomdp", run.memory == "MLP", str(run.run_dir))

    chosen: dict[str, Any] = {}
    for introspection in sorted(introspections, key=preference):
        for example in introspection.examples:
            chosen.setdefault(example.replay.result.perturbation, example)
    return [chosen[name] for name in sorted(chosen)]


# ---------------------------------------------------------------------------------------------
# Commands


def _error(message: str) -> Exception:
    from popgym_arcade.analysis.records import AnalysisError

    return AnalysisError(message)


def _report(outputs: Outputs) -> None:
    for path in (*outputs.files, *outputs.figures):
        print(f"wrote {path}")


def _settings(args: argparse.Namespace):
    from popgym_arcade.analysis.introspect import IntrospectionSettings

    return IntrospectionSettings(
        episodes=args.episodes,
        max_steps=args.max_steps,
        seed=args.seed,
        sigma=getattr(args, "sigma", IntrospectionSettings.sigma),
        noise_step=getattr(args, "noise_step", IntrospectionSettings.noise_step),
        # Saliency and recall do not shuffle: keep the default valid for short --max-steps.
        shuffle_k=getattr(args, "shuffle_k", min(IntrospectionSettings.shuffle_k, max(args.max_steps, 2))),
    )


def _log(args: argparse.Namespace) -> Callable[[str], None] | None:
    if getattr(args, "quiet", False):
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def introspect_runs(paths: Sequence[str], settings, analyses: Sequence[str], *, one_game: bool, log=None):
    """Introspections of every run under ``paths`` (checked to be of one game when ``one_game``)."""
    from popgym_arcade.analysis.introspect import (
        find_runs,
        introspect_run,
        require_one_algorithm,
        require_one_game,
    )

    runs = find_runs(paths)
    require_one_algorithm(runs)
    if one_game:
        require_one_game(runs, " and ".join(analyses))
    return [introspect_run(run, settings, analyses, log=log) for run in runs]


def cmd_gap_bias(args: argparse.Namespace) -> Outputs:
    """``analyze gap-bias``."""
    from popgym_arcade.analysis.records import load_records

    records = load_records(args.runs)
    return gap_bias_outputs(
        records,
        Path(args.out),
        statistic=args.statistic,
        baseline=args.baseline,
        algo=args.algo,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
    )


def cmd_saliency(args: argparse.Namespace) -> Outputs:
    """``analyze saliency``."""
    intros = introspect_runs(args.runs, _settings(args), ("saliency",), one_game=True, log=_log(args))
    return saliency_outputs([i.saliency for i in intros], Path(args.out))


def cmd_recall(args: argparse.Namespace) -> Outputs:
    """``analyze recall``."""
    intros = introspect_runs(args.runs, _settings(args), ("recall",), one_game=False, log=_log(args))
    return recall_outputs([t for i in intros for t in i.recall], Path(args.out))


def cmd_contamination(args: argparse.Namespace) -> Outputs:
    """``analyze contamination``."""
    intros = introspect_runs(args.runs, _settings(args), ("contamination",), one_game=True, log=_log(args))
    return contamination_outputs(intros, Path(args.out))


def run_command(command: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """Run a command; bad input (:class:`AnalysisError`, ``RunError``, a missing extra) exits with 2."""
    from popgym_arcade.analysis.records import AnalysisError

    expected: tuple[type[BaseException], ...] = (AnalysisError, ImportError)
    try:
        from popgym_arcade.runs.train import RunError

        expected += (RunError,)
    except ImportError:  # the train extra is missing: gap-bias still works from run records
        pass
    try:
        result = command(args)
    except expected as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if isinstance(result, Outputs):
        _report(result)
        print(f"outputs in {args.out}")
    return 0


# ---------------------------------------------------------------------------------------------
# Parsers


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _common(parser: argparse.ArgumentParser, humans: bool = False) -> None:
    what = "run folders (or folders holding them)" + (" and human episode files" if humans else "")
    parser.add_argument("runs", nargs="+", metavar="RUNS", help=what)
    parser.add_argument("--out", required=True, help="output folder for the tables and figures")


def _trajectory_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--episodes", type=_positive_int, default=8, help="episodes per trained seed (default: 8)"
    )
    parser.add_argument(
        "--max-steps",
        type=_positive_int,
        default=64,
        help="frames per episode at most; longer episodes are cut (default: 64)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the rollouts and perturbations (default: 0)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _command(function: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return run_command(function, args)

    return run


def add_analyze_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``analyze`` and its four analyses to ``sub`` (an ``add_subparsers`` result)."""
    parser = sub.add_parser(
        "analyze",
        help="memory analysis of run folders: gap-bias, saliency, recall, contamination",
        description="Analyse trained run folders; tables (CSV, Markdown) and figures (PNG) go to --out. "
        "saliency and contamination take the runs of one game; gap-bias and recall group by game.",
    )
    analyses = parser.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")

    p = analyses.add_parser(
        "gap-bias",
        help="Observability Gap and Memory Bias with bootstrap confidence intervals",
        description="Observability Gap J(f,M) - J(f,P) and Memory Bias J(f,M) - J(baseline,M) from the "
        "runs' greedy evaluation returns, per env, difficulty, game and overall.",
    )
    _common(p, humans=True)
    p.add_argument(
        "--statistic", choices=("mean", "iqm"), default="mean", help="aggregate over seeds and envs"
    )
    p.add_argument("--baseline", default="MLP", help="memoryless model of the Memory Bias (default: MLP)")
    p.add_argument("--algo", default=None, help="algorithm to compare when the runs hold several")
    p.add_argument(
        "--bootstrap", type=_non_negative_int, default=2000, help="bootstrap replicates (default: 2000)"
    )
    p.add_argument("--confidence", type=float, default=0.95, help="interval coverage (default: 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.set_defaults(func=_command(cmd_gap_bias))

    p = analyses.add_parser(
        "saliency",
        help="per-pixel saliency of past frames through memory (one game)",
        description="For each env and memory model, the agent trained on the MDP (top row) and on the "
        "POMDP (bottom row) play an episode on their own twin; the figure overlays, on each frame o_t, "
        "sum_a (d out(s_n, a) / d o_t)^2 for the output at the episode's last frame n.",
    )
    _common(p)
    _trajectory_options(p)
    p.set_defaults(func=_command(cmd_saliency))

    p = analyses.add_parser(
        "recall",
        help="recall density: share of saliency per third of each trajectory",
        description="For every episode of every seed, the share of the saliency of the last output "
        "coming from each third of the episode (by its own length); averaged per game and twin.",
    )
    _common(p)
    _trajectory_options(p)
    p.set_defaults(func=_command(cmd_recall))

    p = analyses.add_parser(
        "contamination",
        help="memory contamination: noise on one frame or shuffled first frames, replayed (one game)",
        description="Perturb each collected episode (noise on frame --noise-step; shuffle of the first "
        "--shuffle-k frames), replay it through memory and measure the change of the mean-centred "
        "outputs and of the greedy action at every later step.",
    )
    _common(p)
    _trajectory_options(p)
    p.add_argument(
        "--sigma", type=float, default=255.0, help="noise scale in 0..255 pixel units (default: 255)"
    )
    p.add_argument(
        "--noise-step", type=_non_negative_int, default=1, help="frame that gets the noise (default: 1)"
    )
    p.add_argument("--shuffle-k", type=int, default=8, help="shuffle the first K frames (default: 8)")
    p.set_defaults(func=_command(cmd_contamination))
    return parser


def add_parser(sub: Any) -> None:
    """Add ``analyze`` and ``study`` to the ``popgym-arcade`` sub-commands."""
    from popgym_arcade.analysis import study

    add_analyze_parser(sub)
    study.add_parser(sub)
