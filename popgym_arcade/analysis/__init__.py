"""Memory analysis: Observability Gap, Memory Bias, pixel saliency, recall density, contamination.

Definitions: each module's docstring (and "Analysis definitions" in the design notes).

- :mod:`~popgym_arcade.analysis.records`: run folders and human episodes -> table of
  standardised returns.
- :mod:`~popgym_arcade.analysis.gap_bias`: Observability Gap and Memory Bias with bootstrap CIs.
- :mod:`~popgym_arcade.analysis.saliency`: per-pixel saliency of past frames through memory.
- :mod:`~popgym_arcade.analysis.recall`: share of saliency per third of a trajectory.
- :mod:`~popgym_arcade.analysis.contamination`: noise / shuffle a past frame, replay, compare.

- :mod:`~popgym_arcade.analysis.introspect`: trained run folders -> trajectories, sequence
  functions and the three introspection analyses for every seed.
- :mod:`~popgym_arcade.analysis.study`: the one-command memory study (train, analyse, report).

The introspection analyses take a *sequence function* ``apply(obs, start, prev_action) -> out``
(see :mod:`popgym_arcade.analysis._sequence`). Figures need matplotlib (the ``analysis`` extra),
imported only when a figure is drawn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported from their modules on first use (PEP 562), so that importing this package
# (for instance to build the `popgym-arcade` parser) loads neither JAX-heavy analysis code nor
# matplotlib.
_EXPORTS: dict[str, str] = {
    "add_frame_noise": "contamination",
    "agent_trajectories": "introspect",
    "AnalysisError": "records",
    "BUDGETS": "study",
    "change_by_offset": "contamination",
    "compare_outputs": "contamination",
    "compare_replays": "contamination",
    "contamination_to_csv": "contamination",
    "ContaminationExample": "introspect",
    "ContaminationReplay": "introspect",
    "ContaminationResult": "contamination",
    "ContaminationSummary": "contamination",
    "describe_grid": "study",
    "Episode": "introspect",
    "episode_contamination": "introspect",
    "episode_recall": "introspect",
    "episode_saliency": "introspect",
    "Estimate": "gap_bias",
    "find_runs": "introspect",
    "find_sources": "records",
    "flat_run_config": "records",
    "frame_saliency": "saliency",
    "gap_bias_table": "gap_bias",
    "gap_bias_to_csv": "gap_bias",
    "gap_bias_to_markdown": "gap_bias",
    "GapBiasRow": "gap_bias",
    "introspect_run": "introspect",
    "IntrospectionSettings": "introspect",
    "iqm": "gap_bias",
    "load_agents": "introspect",
    "load_human_episode": "records",
    "load_records": "records",
    "load_run": "records",
    "noise_contamination": "contamination",
    "OffsetCurve": "contamination",
    "plot_contamination_curves": "contamination",
    "plot_contamination_example": "contamination",
    "plot_gap_bias": "gap_bias",
    "plot_recall_density": "recall",
    "plot_saliency": "saliency",
    "recall_shares": "recall",
    "recall_to_csv": "recall",
    "RecallSample": "recall",
    "RecallSummary": "recall",
    "RecallTrajectory": "introspect",
    "records_to_columns": "records",
    "relative_positions": "recall",
    "require_one_algorithm": "introspect",
    "require_one_game": "introspect",
    "require_single": "records",
    "resolve_budget": "study",
    "ReturnRecord": "records",
    "run_contamination": "introspect",
    "run_info": "introspect",
    "run_recall": "introspect",
    "run_saliency": "introspect",
    "run_study": "study",
    "RunInfo": "introspect",
    "RunIntrospection": "introspect",
    "saliency_function": "saliency",
    "saliency_maps": "saliency",
    "SaliencyExample": "introspect",
    "SeedAgent": "introspect",
    "select": "records",
    "shuffle_contamination": "contamination",
    "shuffle_first_frames": "contamination",
    "split_env_id": "records",
    "split_episodes": "introspect",
    "StudyBudget": "study",
    "summarise_contamination": "contamination",
    "summarise_recall": "recall",
    "third_of_frames": "recall",
    "trajectory_recall": "recall",
    "write_records_csv": "records",
}

__all__ = [
    "BUDGETS",
    "AnalysisError",
    "ContaminationExample",
    "ContaminationReplay",
    "ContaminationResult",
    "ContaminationSummary",
    "Episode",
    "Estimate",
    "GapBiasRow",
    "IntrospectionSettings",
    "OffsetCurve",
    "RecallSample",
    "RecallSummary",
    "RecallTrajectory",
    "ReturnRecord",
    "RunInfo",
    "RunIntrospection",
    "SaliencyExample",
    "SeedAgent",
    "StudyBudget",
    "add_frame_noise",
    "agent_trajectories",
    "change_by_offset",
    "compare_outputs",
    "compare_replays",
    "contamination_to_csv",
    "describe_grid",
    "episode_contamination",
    "episode_recall",
    "episode_saliency",
    "find_runs",
    "find_sources",
    "flat_run_config",
    "frame_saliency",
    "gap_bias_table",
    "gap_bias_to_csv",
    "gap_bias_to_markdown",
    "introspect_run",
    "iqm",
    "load_agents",
    "load_human_episode",
    "load_records",
    "load_run",
    "noise_contamination",
    "plot_contamination_curves",
    "plot_contamination_example",
    "plot_gap_bias",
    "plot_recall_density",
    "plot_saliency",
    "recall_shares",
    "recall_to_csv",
    "records_to_columns",
    "relative_positions",
    "require_one_algorithm",
    "require_one_game",
    "require_single",
    "resolve_budget",
    "run_contamination",
    "run_info",
    "run_recall",
    "run_saliency",
    "run_study",
    "saliency_function",
    "saliency_maps",
    "select",
    "shuffle_contamination",
    "shuffle_first_frames",
    "split_env_id",
    "split_episodes",
    "summarise_contamination",
    "summarise_recall",
    "third_of_frames",
    "trajectory_recall",
    "write_records_csv",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers see the eager imports
    from popgym_arcade.analysis.contamination import (
        ContaminationResult,
        ContaminationSummary,
        OffsetCurve,
        add_frame_noise,
        change_by_offset,
        compare_outputs,
        compare_replays,
        contamination_to_csv,
        noise_contamination,
        plot_contamination_curves,
        plot_contamination_example,
        shuffle_contamination,
        shuffle_first_frames,
        summarise_contamination,
    )
    from popgym_arcade.analysis.gap_bias import (
        Estimate,
        GapBiasRow,
        gap_bias_table,
        gap_bias_to_csv,
        gap_bias_to_markdown,
        iqm,
        plot_gap_bias,
    )
    from popgym_arcade.analysis.introspect import (
        ContaminationExample,
        ContaminationReplay,
        Episode,
        IntrospectionSettings,
        RecallTrajectory,
        RunInfo,
        RunIntrospection,
        SaliencyExample,
        SeedAgent,
        agent_trajectories,
        episode_contamination,
        episode_recall,
        episode_saliency,
        find_runs,
        introspect_run,
        load_agents,
        require_one_algorithm,
        require_one_game,
        run_contamination,
        run_info,
        run_recall,
        run_saliency,
        split_episodes,
    )
    from popgym_arcade.analysis.recall import (
        RecallSample,
        RecallSummary,
        plot_recall_density,
        recall_shares,
        recall_to_csv,
        relative_positions,
        summarise_recall,
        third_of_frames,
        trajectory_recall,
    )
    from popgym_arcade.analysis.records import (
        AnalysisError,
        ReturnRecord,
        find_sources,
        flat_run_config,
        load_human_episode,
        load_records,
        load_run,
        records_to_columns,
        require_single,
        select,
        split_env_id,
        write_records_csv,
    )
    from popgym_arcade.analysis.saliency import (
        frame_saliency,
        plot_saliency,
        saliency_function,
        saliency_maps,
    )
    from popgym_arcade.analysis.study import BUDGETS, StudyBudget, describe_grid, resolve_budget, run_study
