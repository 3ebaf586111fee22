"""``popgym-arcade analyze``: the four analyses on the tiny study's run folders, and bad input (exit code 2)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest

from popgym_arcade.cli import main
from tests.analysis.fake_runs import write_human
from tests.analysis.test_study import tiny_study

pytestmark = pytest.mark.xdist_group("study")

GRU_MDP, GRU_POMDP = "pqn-GRU-CartPoleEasy-mdp", "pqn-GRU-CartPoleEasy-pomdp"
MLP_MDP, MLP_POMDP = "pqn-MLP-CartPoleEasy-mdp", "pqn-MLP-CartPoleEasy-pomdp"
# Short trajectories keep each command to one small compile per seed.
QUICK = ["--episodes", "1", "--max-steps", "8", "--quiet"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return tiny_study(tmp_path_factory) / "runs"


def rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def copy_run(runs, name, tmp_path, new_name=None):
    return shutil.copytree(runs / name, tmp_path / (new_name or name))


def analyze(*args) -> int:
    return main(["analyze", *map(str, args)])


def test_building_the_parser_imports_no_analysis_code_or_matplotlib():
    code = (
        "import sys; from popgym_arcade.cli import build_parser; build_parser(); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'equinox', 'optax') "
        "or m.startswith(('popgym_arcade.analysis.saliency', 'popgym_arcade.analysis.contamination', "
        "'popgym_arcade.analysis.introspect', 'popgym_arcade.analysis.gap_bias'))]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_gap_bias_writes_tables_and_figure(runs, tmp_path, capsys):
    assert analyze("gap-bias", runs, "--out", tmp_path, "--bootstrap", "200") == 0
    printed = capsys.readouterr().out
    for name in ("returns.csv", "gap_bias.csv", "gap_bias.md", "gap_bias.png"):
        assert (tmp_path / name).is_file() and f"wrote {tmp_path / name}" in printed
    table = rows(tmp_path / "gap_bias.csv")
    overall = {r["model"]: r for r in table if r["scope"] == "all"}
    assert set(overall) == {"MLP", "GRU"} and float(overall["MLP"]["bias"]) == 0.0
    assert len(rows(tmp_path / "returns.csv")) == 4 * 2 * 2  # runs x seeds x evaluated twins


def test_gap_bias_takes_human_episodes_and_the_iqm(runs, tmp_path):
    humans = tmp_path / "humans"
    write_human(humans, "mdp", env="CartPoleEasy", partial=False, rewards=[0.1] * 5)
    write_human(humans, "pomdp", env="CartPoleEasy", partial=True, rewards=[0.1] * 3)
    out = tmp_path / "out"
    assert analyze("gap-bias", runs, humans, "--out", out, "--statistic", "iqm", "--bootstrap", "0") == 0
    table = rows(out / "gap_bias.csv")
    assert {r["model"] for r in table} == {"MLP", "Human", "GRU"}
    assert {r["statistic"] for r in table} == {"iqm"}


def test_saliency_draws_the_mdp_agent_above_the_pomdp_agent(runs, tmp_path, capsys):
    assert analyze("saliency", runs / GRU_MDP, runs / GRU_POMDP, "--out", tmp_path, *QUICK) == 0
    figure = tmp_path / "saliency_CartPoleEasy_pqn_GRU.png"
    assert figure.is_file() and f"wrote {figure}" in capsys.readouterr().out
    table = rows(tmp_path / "saliency.csv")
    assert [r["twin"] for r in table][:1] == ["mdp"] and {r["twin"] for r in table} == {"mdp", "pomdp"}
    for twin in ("mdp", "pomdp"):
        shares = [float(r["share"]) for r in table if r["twin"] == twin]
        assert sum(shares) == pytest.approx(1.0, abs=1e-4)


def test_recall_groups_by_game_and_twin(runs, tmp_path):
    assert analyze("recall", runs / MLP_MDP, runs / MLP_POMDP, "--out", tmp_path, *QUICK) == 0
    table = rows(tmp_path / "recall.csv")
    assert [(r["game"], r["twin"]) for r in table] == [("CartPole", "mdp"), ("CartPole", "pomdp")]
    for row in table:
        assert float(row["first"]) + float(row["middle"]) + float(row["last"]) == pytest.approx(1.0)
        assert int(row["n_trajectories"]) == 2  # 2 seeds x 1 episode
    assert (tmp_path / "recall.png").is_file() and (tmp_path / "recall_trajectories.csv").is_file()


def test_contamination_writes_summaries_curves_and_examples(runs, tmp_path):
    args = ["--sigma", "64", "--noise-step", "2", "--shuffle-k", "3"]
    assert analyze("contamination", runs / GRU_POMDP, "--out", tmp_path, *QUICK, *args) == 0
    replays = rows(tmp_path / "contamination_replays.csv")
    assert {r["perturbation"] for r in replays} == {"noise", "shuffle"}
    assert {r["seed"] for r in replays} == {"0", "1"}
    assert all(r["last_perturbed"] == "2" for r in replays)  # noise on frame 2; shuffle of frames 0..2
    summary = rows(tmp_path / "contamination.csv")
    assert [(r["model"], r["twin"], r["perturbation"]) for r in summary] == [
        ("GRU", "POMDP", "noise"),
        ("GRU", "POMDP", "shuffle"),
    ]
    for name in ("noise", "shuffle", "example_noise", "example_shuffle"):
        assert (tmp_path / f"contamination_{name}.png").is_file()


# ---------------------------------------------------------------------------------------------
# Bad input: a clear message and exit code 2


@pytest.mark.parametrize("analysis", ["gap-bias", "saliency", "recall", "contamination"])
def test_no_runs(analysis, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert analyze(analysis, tmp_path / "empty", "--out", tmp_path / "out") == 2
    assert "no run" in capsys.readouterr().err


def test_a_path_that_does_not_exist(tmp_path, capsys):
    assert analyze("recall", tmp_path / "missing", "--out", tmp_path / "out") == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("analysis", ["gap-bias", "saliency"])
def test_a_run_without_evaluation(analysis, runs, tmp_path, capsys):
    run = copy_run(runs, GRU_POMDP, tmp_path)
    (run / "evaluation.json").unlink()
    assert analyze(analysis, run, "--out", tmp_path / "out") == 2
    assert "has no evaluation.json" in capsys.readouterr().err


def test_a_checkpoint_written_for_another_config(runs, tmp_path, capsys):
    run = copy_run(runs, GRU_POMDP, tmp_path)
    shutil.rmtree(run / "checkpoints")
    shutil.copytree(runs / MLP_POMDP / "checkpoints", run / "checkpoints")
    assert analyze("saliency", run, "--out", tmp_path / "out", *QUICK) == 2
    assert "written for another config" in capsys.readouterr().err


def test_a_checkpoint_that_does_not_match_its_config(runs, tmp_path, capsys):
    # The sidecar names this config, but the parameters are another network's.
    run = copy_run(runs, GRU_POMDP, tmp_path)
    shutil.copy(runs / MLP_POMDP / "checkpoints" / "state.eqx", run / "checkpoints" / "state.eqx")
    assert analyze("contamination", run, "--out", tmp_path / "out", *QUICK) == 2
    assert "does not match its config" in capsys.readouterr().err


@pytest.mark.parametrize("analysis", ["saliency", "contamination"])
def test_runs_of_two_games(analysis, runs, tmp_path, capsys):
    other = copy_run(runs, GRU_POMDP, tmp_path, "navigator")
    for name in ("config.json", "evaluation.json"):
        data = json.loads((other / name).read_text())
        data["env"] = "NavigatorEasy"
        (other / name).write_text(json.dumps(data))
    assert analyze(analysis, runs / GRU_MDP, other, "--out", tmp_path / "out", *QUICK) == 2
    err = capsys.readouterr().err
    assert "one game" in err and "CartPole, Navigator" in err


def test_runs_of_two_algorithms(runs, tmp_path, capsys):
    other = copy_run(runs, GRU_POMDP, tmp_path, "ppo")
    for name in ("config.json", "evaluation.json"):
        data = json.loads((other / name).read_text())
        data["algo"] = "ppo"
        (other / name).write_text(json.dumps(data))
    assert analyze("recall", runs / GRU_MDP, other, "--out", tmp_path / "out", *QUICK) == 2
    assert "one algorithm, got 2: ppo, pqn" in capsys.readouterr().err


def test_perturbations_longer_than_the_episodes(runs, tmp_path, capsys):
    args = ["--max-steps", "4", "--shuffle-k", "8"]
    assert analyze("contamination", runs / GRU_POMDP, "--out", tmp_path, *args) == 2
    assert "shuffle k must lie in [2, max_steps]" in capsys.readouterr().err
