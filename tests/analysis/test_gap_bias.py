"""Observability Gap and Memory Bias on a tiny fake run store with hand-computed answers."""

from __future__ import annotations

import csv

import pytest

from popgym_arcade.analysis import gap_bias as gb
from popgym_arcade.analysis.records import AnalysisError, load_records
from tests.analysis.fake_runs import write_human, write_run

# Standardised returns per (model, env, twin), two seeds each (trained and evaluated on the twin):
#   CartPoleEasy [0, 1]:    MLP  M 0.8 0.6 (0.70)  P 0.3 0.5 (0.40) | GRU M 0.9 0.7 (0.80) P 0.6 0.8 (0.70)
#   BattleShipEasy [-1, 1]: MLP  M 0.5 0.6 (0.55)  P 0.2 0.3 (0.25) | GRU M 0.7 0.6 (0.65) P 0.5 0.5 (0.50)
# All envs:  J(MLP, M) = 0.625, J(MLP, P) = 0.325, gap 0.300, bias 0
#            J(GRU, M) = 0.725, J(GRU, P) = 0.600, gap 0.125, bias 0.725 - 0.625 = 0.100
# Humans (one file per sample): CartPole M 0.5, P 0.3; BattleShip M 0.6 (raw 0.2), P 0.4 (raw -0.2)
#            J(Human, M) = 0.55, J(Human, P) = 0.35, gap 0.2, bias 0 by definition.
STORE = {
    ("MLP", "CartPoleEasy"): ([0.8, 0.6], [0.3, 0.5]),
    ("GRU", "CartPoleEasy"): ([0.9, 0.7], [0.6, 0.8]),
    ("MLP", "BattleShipEasy"): ([0.0, 0.2], [-0.6, -0.4]),  # raw returns in [-1, 1]
    ("GRU", "BattleShipEasy"): ([0.4, 0.2], [0.0, 0.0]),
}


def build_store(root, skip=(), extra_algo=None, humans=True):
    for (memory, env), (mdp, pomdp) in STORE.items():
        return_range = (-1.0, 1.0) if env.startswith("BattleShip") else (0.0, 1.0)
        for partial, values in ((False, mdp), (True, pomdp)):
            if (memory, env, partial) in skip:
                continue
            # A run trained on one twin is also evaluated on the other (those rows are unused here).
            off = [v - 0.5 for v in values]
            write_run(
                root,
                f"{memory}_{env}_{partial}",
                env=env,
                memory=memory,
                partial=partial,
                mdp=off if partial else values,
                pomdp=values if partial else off,
                return_range=return_range,
            )
    if extra_algo:
        write_run(
            root,
            "other",
            env="CartPoleEasy",
            memory="GRU",
            partial=False,
            mdp=[0.1],
            pomdp=None,
            algo=extra_algo,
        )
    if humans:
        write_human(root / "humans", "a", env="CartPoleEasy", partial=False, rewards=[0.5])
        write_human(root / "humans", "b", env="CartPoleEasy", partial=True, rewards=[0.3])
        write_human(root / "humans", "c", env="BattleShipEasy", partial=False, rewards=[0.2])
        write_human(root / "humans", "d", env="BattleShipEasy", partial=True, rewards=[-0.2])
    return load_records([root])


def rows_by(table, scope, group):
    return {row.model: row for row in table if row.scope == scope and row.group == group}


def test_iqm_on_known_lists():
    assert gb.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)  # drop 2 each side: mean(3, 4, 5, 6)
    assert gb.iqm([100, 1, 4, 3, 2]) == pytest.approx(3.0)  # drop 1 each side: mean(2, 3, 4)
    assert gb.iqm([5, 1, 3]) == pytest.approx(3.0)  # n < 4: plain mean
    with pytest.raises(AnalysisError):
        gb.iqm([])


def test_gap_and_bias_match_hand_computation(tmp_path):
    table = gb.gap_bias_table(build_store(tmp_path), n_bootstrap=400, seed=0)
    overall = rows_by(table, "all", "all")
    assert list(overall) == ["MLP", "Human", "GRU"]  # baseline, Human, then the rest
    mlp, human, gru = overall["MLP"], overall["Human"], overall["GRU"]
    assert mlp.mdp_return.value == pytest.approx(0.625)
    assert mlp.pomdp_return.value == pytest.approx(0.325)
    assert mlp.gap.value == pytest.approx(0.3)
    assert (mlp.bias.value, mlp.bias.low, mlp.bias.high) == (0.0, 0.0, 0.0)
    assert gru.mdp_return.value == pytest.approx(0.725)
    assert gru.pomdp_return.value == pytest.approx(0.6)
    assert gru.gap.value == pytest.approx(0.125)
    assert gru.bias.value == pytest.approx(0.1)
    assert human.gap.value == pytest.approx(0.2) and human.bias.value == 0.0
    assert (gru.n_envs, gru.n_samples_mdp, gru.n_samples_pomdp, human.n_samples_mdp) == (2, 4, 4, 2)
    assert gru.algo == "pqn" and human.algo == "human"
    for row in table:
        for estimate in (row.mdp_return, row.pomdp_return, row.gap, row.bias):
            assert estimate.low - 1e-12 <= estimate.value <= estimate.high + 1e-12

    cartpole = rows_by(table, "game", "CartPole")["GRU"]
    assert (cartpole.gap.value, cartpole.bias.value) == (pytest.approx(0.1), pytest.approx(0.1))
    battleship = rows_by(table, "env", "BattleShipEasy")["GRU"]
    assert (battleship.gap.value, battleship.bias.value) == (pytest.approx(0.15), pytest.approx(0.1))
    assert rows_by(table, "difficulty", "Easy")["GRU"].gap.value == pytest.approx(0.125)
    # The bootstrap interval of one env's mean of [0.9, 0.7] can only hold 0.7, 0.8 and 0.9.
    cart_env = rows_by(table, "env", "CartPoleEasy")["GRU"].mdp_return
    assert 0.7 - 1e-9 <= cart_env.low <= 0.8 <= cart_env.high <= 0.9 + 1e-9


def test_bootstrap_is_reproducible_and_optional(tmp_path):
    records = build_store(tmp_path)
    first = gb.gap_bias_table(records, n_bootstrap=200, seed=7, scopes=("all",))
    again = gb.gap_bias_table(records, n_bootstrap=200, seed=7, scopes=("all",))
    other = gb.gap_bias_table(records, n_bootstrap=200, seed=8, scopes=("all",))
    assert first == again
    assert first != other
    bare = gb.gap_bias_table(records, n_bootstrap=0, scopes=("all",))
    assert all(row.gap.low != row.gap.low for row in bare)  # NaN intervals


def test_iqm_statistic_pools_seeds(tmp_path):
    table = gb.gap_bias_table(
        build_store(tmp_path, humans=False), statistic="iqm", n_bootstrap=50, scopes=("all",)
    )
    overall = rows_by(table, "all", "all")
    # GRU MDP pooled [0.6, 0.7, 0.7, 0.9] -> mean(0.7, 0.7); POMDP [0.5, 0.5, 0.6, 0.8] -> 0.55.
    # MLP MDP pooled [0.5, 0.6, 0.6, 0.8] -> 0.6.
    assert overall["GRU"].mdp_return.value == pytest.approx(0.7)
    assert overall["GRU"].gap.value == pytest.approx(0.15)
    assert overall["GRU"].bias.value == pytest.approx(0.1)
    assert overall["GRU"].statistic == "iqm"


def test_missing_baseline_names_the_runs_needed(tmp_path):
    records = build_store(tmp_path, skip={("MLP", "BattleShipEasy", False)})
    with pytest.raises(AnalysisError, match=r"memory='MLP' trained and evaluated on the MDP.*BattleShipEasy"):
        gb.gap_bias_table(records)
    with pytest.raises(AnalysisError, match="memory='FFM'"):
        gb.gap_bias_table(records, baseline="FFM")


def test_missing_twin_and_mixed_algos(tmp_path):
    records = build_store(tmp_path, skip={("GRU", "CartPoleEasy", True)})
    with pytest.raises(AnalysisError, match=r"missing GRU on CartPoleEasy \(POMDP\)"):
        gb.gap_bias_table(records)
    # Restricting the comparison to complete envs works.
    table = gb.gap_bias_table(records, envs=["BattleShipEasy"], scopes=("all",), n_bootstrap=10)
    assert rows_by(table, "all", "all")["GRU"].gap.value == pytest.approx(0.15)

    mixed = build_store(tmp_path / "mixed", extra_algo="ppo")
    with pytest.raises(AnalysisError, match="one algorithm, got 2: ppo, pqn"):
        gb.gap_bias_table(mixed)
    assert rows_by(gb.gap_bias_table(mixed, algo="pqn", n_bootstrap=10), "all", "all")["GRU"].bias.value == (
        pytest.approx(0.1)
    )
    with pytest.raises(AnalysisError, match="statistic"):
        gb.gap_bias_table(mixed, algo="pqn", statistic="median")


def test_csv_and_markdown(tmp_path):
    table = gb.gap_bias_table(build_store(tmp_path / "runs"), n_bootstrap=50)
    path = gb.gap_bias_to_csv(table, tmp_path / "out" / "gap_bias.csv")
    with path.open() as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == len(table)
    gru = next(line for line in lines if line["scope"] == "all" and line["model"] == "GRU")
    assert float(gru["bias"]) == pytest.approx(0.1) and float(gru["gap_low"]) <= float(gru["gap"])
    markdown = gb.gap_bias_to_markdown(table, scope="all")
    assert markdown.count("\n| all | all |") == 3 and "Observability Gap" in markdown and "95%" in markdown


def test_figure(tmp_path):
    pytest.importorskip("matplotlib")
    table = gb.gap_bias_table(build_store(tmp_path / "runs"), n_bootstrap=50)
    figure = gb.plot_gap_bias(table, tmp_path / "out" / "gap_bias.png")
    assert figure.stat().st_size > 1000 and figure.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(AnalysisError, match="no rows"):
        gb.plot_gap_bias(table, tmp_path / "x.png", scope="game", group="Tetris")
