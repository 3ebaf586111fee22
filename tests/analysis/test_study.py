"""The one-command memory study: the tiny budget end to end, resume, budgets, the paper grid's dry run.

The tiny study (4 tiny PQN runs and every analysis) is trained once per test session and shared
with ``test_cli.py`` and ``test_introspect.py`` through :func:`tiny_study`; tests only read it
(those that damage a run do so on a copy).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from popgym_arcade.agents.config import PQNConfig
from popgym_arcade.analysis import study
from popgym_arcade.cli import main

pytestmark = pytest.mark.xdist_group("study")

_SHARED: dict[str, Path] = {}
RUN_NAMES = (
    "pqn-MLP-CartPoleEasy-mdp",
    "pqn-MLP-CartPoleEasy-pomdp",
    "pqn-GRU-CartPoleEasy-mdp",
    "pqn-GRU-CartPoleEasy-pomdp",
)


def _run_tiny_study(out: Path) -> Path:
    assert main(["study", "--out", str(out), "--budget", "tiny", "--no-progress"]) == 0
    return out


def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of ``popgym-arcade study --budget tiny``, run once per test session.

    The xdist group keeps these modules on one worker where pytest-xdist can label tests; with
    pytest 9 it cannot (xdist sets a node id attribute that pytest no longer reads), so under
    xdist the workers share one study folder in the session's temporary root: the first worker
    trains it under a file lock, the others wait and read it.
    """
    if "dir" in _SHARED:
        return _SHARED["dir"]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import fcntl

        root = tmp_path_factory.getbasetemp().parent  # one per session, shared by its workers
        out = root / "tiny-study"
        with (root / "tiny-study.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (out / "report.md").is_file():
                _run_tiny_study(out)
    else:
        out = _run_tiny_study(tmp_path_factory.mktemp("tiny-study"))
    _SHARED["dir"] = out
    return out


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory):
    return tiny_study(tmp_path_factory)


def test_tiny_study_trains_the_four_runs_with_evaluations(study_dir):
    runs = sorted(p.name for p in (study_dir / "runs").iterdir())
    assert runs == sorted(RUN_NAMES)
    for name in RUN_NAMES:
        config = json.loads((study_dir / "runs" / name / "config.json").read_text())
        assert config["network"]["memory"] == name.split("-")[1]
        assert config["partial"] == name.endswith("pomdp")
        assert config["seeds"] == study.BUDGETS["tiny"].seeds
        evaluation = json.loads((study_dir / "runs" / name / "evaluation.json").read_text())
        assert set(evaluation) >= {"mdp", "pomdp"}


def test_report_links_every_figure_and_explains_every_metric(study_dir):
    from PIL import Image

    report = (study_dir / "report.md").read_text()
    for heading in (
        "Observability Gap and Memory Bias",
        "Pixel saliency",
        "Recall density",
        "Memory contamination",
    ):
        assert f"## {heading}" in report
    assert "pipeline check" in report and "noise" in report  # the honest note of the tiny budget
    assert "Wall time:" in report and '"name": "tiny"' in report and '"algo": "pqn"' in report
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {Path(f).parts[0] for f in figures} == {"gap_bias", "saliency", "recall", "contamination"}
    for figure in figures:
        assert not Path(figure).is_absolute()
        with Image.open(study_dir / figure) as image:
            assert image.format == "PNG" and image.size[0] > 200
    # The saliency figure of the memory agent exists and is listed first (memory before baseline).
    saliency = [f for f in figures if f.startswith("saliency/")]
    assert saliency[0] == "saliency/saliency_CartPoleEasy_pqn_GRU.png"
    for name in RUN_NAMES:
        assert f"(runs/{name})" in report
    assert "| all | all | GRU |" in report  # the gap/bias table
    assert "| CartPole | POMDP |" in report  # the recall table


def test_study_tables_hold_every_model_and_twin(study_dir):
    recall = (study_dir / "recall" / "recall_by_model.csv").read_text().splitlines()
    assert {tuple(line.split(",")[:3]) for line in recall[1:]} == {
        ("CartPole", twin, model) for twin in ("mdp", "pomdp") for model in ("MLP", "GRU")
    }
    contamination = (study_dir / "contamination" / "contamination.csv").read_text().splitlines()
    keys = {tuple(line.split(",")[2:5]) for line in contamination[1:]}
    assert keys == {
        (model, twin, p)
        for model in ("MLP", "GRU")
        for twin in ("MDP", "POMDP")
        for p in ("noise", "shuffle")
    }


def test_rerunning_the_study_skips_finished_runs(study_dir):
    lines: list[str] = []
    trained = study.train_study(study.BUDGETS["tiny"], study_dir / "runs", progress=False, log=lines.append)
    assert [t.status for t in trained] == ["reused"] * 4
    assert all("reused" in line for line in lines)


def test_a_study_folder_with_other_settings_is_refused(study_dir, capsys):
    # Another seed count is another config: the run folder refuses it before any training.
    assert main(["study", "--out", str(study_dir), "--budget", "tiny", "--seeds", "1", "--no-progress"]) == 2
    assert "another config" in capsys.readouterr().err
    assert json.loads((study_dir / "runs" / RUN_NAMES[0] / "config.json").read_text())["seeds"] == 2


def test_paper_dry_run_prints_the_grid_without_training(tmp_path, capsys):
    assert main(["study", "--out", str(tmp_path), "--budget", "paper", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "300 runs = 30 env(s) x 5 model(s) (MLP, GRU, LRU, MinGRU, FART) x 2 twins; 5 seed(s)" in text
    assert re.search(r"pqn-FART-TetrisHard-pomdp\s+20,000,000\s+5", text)
    assert re.search(r"pqn-MLP-CartPoleEasy-mdp\s+10,000,000\s+5", text)
    assert not any(tmp_path.iterdir())


def test_paper_budget_is_the_published_grid():
    paper = study.BUDGETS["paper"]
    runs = paper.runs()
    assert len(runs) == 10 * 3 * 5 * 2 and len({r.name for r in runs}) == len(runs)
    assert paper.network.encoder == "paper" and paper.seeds == 5
    assert {r.config.pqn for r in runs} == {PQNConfig()}
    steps = {r.config.env: r.config.steps for r in runs}
    assert steps["AutoEncodeHard"] == 10_000_000 and steps["NavigatorEasy"] == 20_000_000


@pytest.mark.parametrize("name", sorted(study.BUDGETS))
def test_every_budget_gives_valid_runs(name):
    budget = study.BUDGETS[name]
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.seeds = 1  # type: ignore[misc]
    for run in budget.runs():
        assert run.config.num_updates >= 1
        assert run.config.num_envs % run.config.pqn.minibatches == 0
    settings = budget.introspection_settings()
    settings.check_perturbations()
    assert budget.note.startswith(name)


def test_overrides_choose_game_level_memory_and_seeds():
    budget = study.resolve_budget("default", game="CountRecallHard", memory="lru", seeds=4)
    assert budget.envs == ("CountRecallHard",) and budget.models == ("MLP", "LRU") and budget.seeds == 4
    assert study.resolve_budget("tiny", game="Navigator").envs == ("NavigatorEasy",)
    assert [r.name for r in study.resolve_budget("tiny", memory="MinGRU").runs()][2:] == [
        "pqn-MinGRU-CartPoleEasy-mdp",
        "pqn-MinGRU-CartPoleEasy-pomdp",
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--game", "Pong"], "unknown game"),
        (["--memory", "NoSuchCell"], "unknown memory model"),
        (["--memory", "mlp"], "must differ from the memoryless baseline"),
        (["--seeds", "0"], "seeds must be >= 1"),
        ([], "--out DIR is required"),
    ],
)
def test_bad_study_options_exit_with_code_2(flags, message, capsys):
    assert main(["study", "--budget", "tiny", *flags]) == 2
    assert message in capsys.readouterr().err
