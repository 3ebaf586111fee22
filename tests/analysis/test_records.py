"""Run folders and human episodes -> the table of standardised returns."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from popgym_arcade.analysis import records as rec
from popgym_arcade.analysis.records import AnalysisError
from tests.analysis.fake_runs import write_human, write_run


def test_split_env_id():
    assert rec.split_env_id("CartPoleEasy") == ("CartPole", "Easy")
    assert rec.split_env_id("NoisyCartPoleMedium") == ("NoisyCartPole", "Medium")
    assert rec.split_env_id("BattleShipHard") == ("BattleShip", "Hard")
    assert rec.split_env_id("MyTwin") == ("MyTwin", "")


def test_run_rows_are_standardised_per_seed_and_twin(tmp_path):
    run = write_run(
        tmp_path,
        "bs",
        env="BattleShipEasy",
        memory="GRU",
        partial=True,
        mdp=[0.0, 0.5],
        pomdp=[-0.5, 1.0],
        return_range=(-1.0, 1.0),
    )
    rows = rec.load_run(run)
    assert len(rows) == 4
    by_key = {(r.evaluated_on, r.seed): r for r in rows}
    # (r - lo) / (hi - lo) with [-1, 1]: 0 -> 0.5, 0.5 -> 0.75, -0.5 -> 0.25, 1 -> 1.
    assert by_key[("mdp", 0)].standardised_return == pytest.approx(0.5)
    assert by_key[("mdp", 1)].standardised_return == pytest.approx(0.75)
    assert by_key[("pomdp", 0)].standardised_return == pytest.approx(0.25)
    assert by_key[("pomdp", 1)].standardised_return == pytest.approx(1.0)
    row = by_key[("pomdp", 0)]
    assert (row.game, row.difficulty, row.algo, row.memory, row.trained_on) == (
        "BattleShip",
        "Easy",
        "pqn",
        "GRU",
        "pomdp",
    )
    assert row.raw_return == -0.5 and row.return_range == (-1.0, 1.0) and row.obs_size == 128
    assert len({r.sample for r in rows if r.evaluated_on == "mdp"}) == 2


def test_mean_return_falls_back_to_episode_returns(tmp_path):
    run = write_run(tmp_path, "r", env="CartPoleEasy", memory="MLP", partial=False, mdp=[0.2], pomdp=None)
    evaluation = json.loads((run / "evaluation.json").read_text())
    evaluation["mdp"] = {"episode_returns": [[0.2, 0.4, 0.9]]}
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    (row,) = rec.load_run(run)
    assert row.raw_return == pytest.approx(0.5)


def test_human_episode_row_uses_registered_return_range(tmp_path):
    path = write_human(tmp_path, "h", env="BattleShipEasy", partial=True, rewards=[0.25, -0.75], seed=3)
    row = rec.load_human_episode(path)
    assert (row.memory, row.algo, row.trained_on, row.evaluated_on, row.seed) == (
        "Human",
        "human",
        "pomdp",
        "pomdp",
        3,
    )
    assert row.raw_return == pytest.approx(-0.5)
    assert row.standardised_return == pytest.approx(0.25)  # BattleShip declares [-1, 1]
    custom = rec.load_human_episode(path, return_range_of=lambda env: (-2.0, 2.0))
    assert custom.standardised_return == pytest.approx(0.375)


def test_load_records_walks_folders_and_writes_columns_and_csv(tmp_path):
    write_run(
        tmp_path / "runs",
        "a",
        env="CartPoleEasy",
        memory="MLP",
        partial=False,
        mdp=[0.1, 0.3],
        pomdp=[0.0, 0.2],
    )
    write_run(
        tmp_path / "runs" / "deep", "b", env="CartPoleEasy", memory="GRU", partial=True, mdp=None, pomdp=[0.4]
    )
    write_human(tmp_path / "people", "p1", env="CartPoleEasy", partial=False, rewards=[0.5])
    (tmp_path / "people" / "notes.json").write_text(json.dumps({"kind": "something else"}))
    rows = rec.load_records([tmp_path])
    assert len(rows) == 4 + 1 + 1
    columns = rec.records_to_columns(rows)
    assert set(columns) == set(rec.COLUMNS)
    assert columns["return_range"].shape == (6, 2)
    assert sorted(columns["memory"]) == ["GRU", "Human", "MLP", "MLP", "MLP", "MLP"]
    np.testing.assert_allclose(sorted(columns["standardised_return"]), [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])

    assert len(rec.select(rows, memory="MLP", evaluated_on="mdp")) == 2
    assert len(rec.select(rows, memory={"GRU", "Human"})) == 2
    assert rec.require_single(rows, "env") == "CartPoleEasy"

    path = rec.write_records_csv(rows, tmp_path / "out" / "returns.csv")
    with path.open() as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == 6 and {"env", "standardised_return", "return_lo", "return_hi"} <= set(lines[0])


def test_no_runs_found(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisError, match="no runs found"):
        rec.load_records([tmp_path / "empty"])
    with pytest.raises(AnalysisError, match="does not exist"):
        rec.load_records([tmp_path / "nowhere"])


def test_missing_evaluation_names_the_run(tmp_path):
    run = write_run(
        tmp_path,
        "unfinished",
        env="CartPoleEasy",
        memory="GRU",
        partial=False,
        mdp=[0.1],
        pomdp=None,
        evaluation=False,
    )
    with pytest.raises(AnalysisError, match=r"unfinished has no evaluation\.json.*evaluated"):
        rec.load_records([tmp_path])
    assert isinstance(AnalysisError("x"), ValueError)
    write_run(tmp_path, "done", env="CartPoleEasy", memory="GRU", partial=True, mdp=None, pomdp=[0.3])
    with pytest.warns(UserWarning, match="unfinished"):
        rows = rec.load_records([tmp_path], skip_unevaluated=True)
    assert [r.source for r in rows] == [str(tmp_path / "done")]
    with pytest.warns(UserWarning), pytest.raises(AnalysisError, match="no evaluated runs"):
        rec.load_records([run], skip_unevaluated=True)


def test_malformed_and_inconsistent_files(tmp_path):
    run = write_run(
        tmp_path, "r", env="CartPoleEasy", memory="GRU", partial=False, mdp=[0.1, 0.2], pomdp=None
    )
    (run / "evaluation.json").write_text("{not json")
    with pytest.raises(AnalysisError, match="malformed JSON"):
        rec.load_run(run)

    run = write_run(
        tmp_path, "s", env="CartPoleEasy", memory="GRU", partial=False, mdp=[0.1, 0.2], pomdp=None
    )
    evaluation = json.loads((run / "evaluation.json").read_text())
    evaluation["memory"] = "LRU"
    evaluation["trained_on"] = "pomdp"
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    with pytest.raises(AnalysisError, match="does not match its config.json: memory.*trained_on"):
        rec.load_run(run)

    run = write_run(
        tmp_path, "t", env="CartPoleEasy", memory="GRU", partial=False, mdp=[0.1, 0.2], pomdp=None
    )
    evaluation = json.loads((run / "evaluation.json").read_text())
    evaluation["mdp"]["mean_return"] = [0.1]
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    with pytest.raises(AnalysisError, match="one value per seed"):
        rec.load_run(run)

    run = write_run(
        tmp_path,
        "u",
        env="CartPoleEasy",
        memory="GRU",
        partial=False,
        mdp=[0.1],
        pomdp=None,
        return_range=(1.0, 1.0),
    )
    with pytest.raises(AnalysisError, match="lo < hi"):
        rec.load_run(run)

    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "config.json").write_text(json.dumps({"algo": "pqn"}))
    with pytest.raises(AnalysisError, match="lacks the key"):
        rec.load_run(tmp_path / "v")

    human = write_human(tmp_path / "h", "bad", env="CartPoleEasy", partial=False, rewards=[0.5])
    record = json.loads(human.read_text())
    record["return"] = 0.9
    human.write_text(json.dumps(record))
    with pytest.raises(AnalysisError, match="not the sum of 'rewards'"):
        rec.load_human_episode(human)
    (tmp_path / "h" / "broken.json").write_text("[")
    with pytest.raises(AnalysisError, match="malformed JSON"):
        rec.find_sources([tmp_path / "h"])


def test_duplicate_runs_and_mixed_values(tmp_path):
    write_run(tmp_path / "a", "r", env="CartPoleEasy", memory="GRU", partial=False, mdp=[0.1], pomdp=None)
    write_run(tmp_path / "b", "r", env="CartPoleEasy", memory="GRU", partial=False, mdp=[0.1], pomdp=None)
    with pytest.raises(AnalysisError, match="are the same run"):
        rec.load_records([tmp_path])
    rows = rec.load_records([tmp_path / "a"]) + rec.load_records(
        [
            write_run(
                tmp_path / "c",
                "r",
                env="CartPoleEasy",
                memory="GRU",
                partial=False,
                mdp=[0.1],
                pomdp=None,
                algo="ppo",
            )
        ]
    )
    with pytest.raises(AnalysisError, match="expected runs of one algorithm, got 2: ppo, pqn"):
        rec.require_single(rows, "algo", "algorithm")
    with pytest.raises(AnalysisError, match="unknown record field"):
        rec.select(rows, colour="red")


def test_single_path_and_run_folder_arguments(tmp_path):
    run = write_run(tmp_path, "r", env="CartPoleEasy", memory="MLP", partial=False, mdp=[0.25], pomdp=[0.5])
    assert len(rec.load_records(run)) == 2
    assert len(rec.load_records(str(run))) == 2
    runs, humans = rec.find_sources([tmp_path, run])
    assert runs == (run,) and humans == ()
    with pytest.raises(AnalysisError, match="neither a run folder nor a human episode"):
        rec.load_records([run / "config.json"])
