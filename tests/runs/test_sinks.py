"""Optional metric sinks: per-update means over seeds, W&B and TensorBoard through fakes."""

import sys
import types

import pytest

from popgym_arcade.agents.config import TrainConfig
from popgym_arcade.runs.sinks import TensorBoardSink, WandbSink, make_sinks, per_update_means

ROWS = [
    {"seed": 0, "update": 1, "env_steps": 512, "wall_seconds": 1.0, "episode_return": 0.5, "td_loss": 1.0},
    {"seed": 1, "update": 1, "env_steps": 512, "wall_seconds": 1.0, "episode_return": "", "td_loss": 3.0},
    {"seed": 0, "update": 2, "env_steps": 1024, "wall_seconds": 2.0, "episode_return": 0.7, "td_loss": 2.0},
]


def test_per_update_means_average_seeds_and_skip_missing_returns():
    (steps1, first), (steps2, second) = per_update_means(ROWS)
    assert (steps1, steps2) == (512, 1024)
    assert first["td_loss"] == 2.0 and first["episode_return"] == 0.5
    assert first["seed1/td_loss"] == 3.0 and "seed1/episode_return" not in first
    assert second["td_loss"] == 2.0


def test_no_sinks_by_default():
    assert make_sinks(TrainConfig()) == []


def test_wandb_sink_logs_with_env_steps(monkeypatch):
    logged = []
    run = types.SimpleNamespace(
        log=lambda data, step: logged.append((step, data)), finish=lambda: logged.append("done")
    )
    fake = types.SimpleNamespace(init=lambda project, config: run)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    sink = WandbSink(TrainConfig(), "proj")
    sink.log(ROWS)
    sink.close()
    assert [entry[0] for entry in logged[:2]] == [512, 1024] and logged[-1] == "done"


def test_tensorboard_sink_writes_scalars(monkeypatch):
    scalars = []

    class Writer:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, name, value, global_step):
            scalars.append((name, value, global_step))

        def close(self):
            scalars.append("closed")

    monkeypatch.setitem(sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=Writer))
    sink = TensorBoardSink("/tmp/tb")
    sink.log(ROWS)
    sink.close()
    assert ("td_loss", 2.0, 512) in scalars and scalars[-1] == "closed"


def test_missing_sink_packages_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match="pip install wandb"):
        WandbSink(TrainConfig(), "proj")
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        TensorBoardSink("x")
