"""Optional metric sinks next to the run folder's ``metrics.csv`` (never required).

A sink has ``log(rows)`` (rows as written to ``metrics.csv``: one per seed and update) and
``close()``. Each logs the mean over seeds per update, and per-seed values under ``seed<i>/``.
"""

from __future__ import annotations

from collections import defaultdict

from popgym_arcade.agents.config import TrainConfig

_INDEX_COLUMNS = ("seed", "update", "env_steps", "wall_seconds")


def per_update_means(rows: list[dict]) -> list[tuple[int, dict[str, float]]]:
    """``[(env_steps, {metric: mean over seeds, "seed<i>/metric": value})]`` in update order."""
    grouped: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[int(row["env_steps"])].append(row)
    out = []
    for steps in sorted(grouped):
        values: dict[str, list[float]] = defaultdict(list)
        scalars: dict[str, float] = {}
        for row in grouped[steps]:
            for name, value in row.items():
                if name in _INDEX_COLUMNS or value == "":
                    continue
                values[name].append(float(value))
                scalars[f"seed{row['seed']}/{name}"] = float(value)
        scalars.update({name: sum(v) / len(v) for name, v in values.items()})
        out.append((steps, scalars))
    return out


class WandbSink:
    """Log to Weights & Biases (``pip install wandb``)."""

    def __init__(self, config: TrainConfig, project: str):
        try:
            import wandb
        except ImportError as error:
            raise ImportError("--wandb-project needs wandb: pip install wandb") from error
        self._run = wandb.init(project=project, config=config.to_dict())

    def log(self, rows: list[dict]) -> None:
        for steps, scalars in per_update_means(rows):
            self._run.log(scalars, step=steps)

    def close(self) -> None:
        self._run.finish()


class TensorBoardSink:
    """Write TensorBoard event files (``pip install tensorboardX``)."""

    def __init__(self, log_dir: str):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as error:
            raise ImportError("--tensorboard-dir needs tensorboardX: pip install tensorboardX") from error
        self._writer = SummaryWriter(log_dir)

    def log(self, rows: list[dict]) -> None:
        for steps, scalars in per_update_means(rows):
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, global_step=steps)

    def close(self) -> None:
        self._writer.close()


def make_sinks(
    config: TrainConfig, wandb_project: str | None = None, tensorboard_dir: str | None = None
) -> list:
    """The sinks asked for (none by default)."""
    sinks: list = []
    if wandb_project:
        sinks.append(WandbSink(config, wandb_project))
    if tensorboard_dir:
        sinks.append(TensorBoardSink(tensorboard_dir))
    return sinks
