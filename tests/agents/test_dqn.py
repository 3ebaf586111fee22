"""DQN: sequence replay, target network, double-Q targets, and a tiny jitted, vmapped run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.agents.config import DQNConfig, NetworkConfig, TrainConfig
from popgym_arcade.agents.dqn import (
    DQN,
    double_q_bootstrap,
    first_learning_update,
    replay_init,
    replay_insert,
    replay_sample,
    sequence_nbytes,
    sequence_targets,
    target_update,
)

pytestmark = pytest.mark.xdist_group("agents-dqn")


# ------------------------------------------------------------------------------ replay buffer


def _items(values):
    """Items whose every leaf records its value, so a slot's content says which item it holds."""
    values = jnp.asarray(values, jnp.int32)
    return {
        "x": values,
        "frames": jnp.broadcast_to(values[:, None, None], (len(values), 2, 3)).astype(jnp.uint8),
    }


def _empty(capacity):
    return replay_init(_items([0]), capacity)


def test_replay_init_is_empty_with_item_shapes():
    replay = _empty(5)
    assert int(replay.size) == 0 and int(replay.position) == 0
    assert replay.items["x"].shape == (5,)
    assert replay.items["frames"].shape == (5, 2, 3) and replay.items["frames"].dtype == jnp.uint8


def test_replay_insert_wraps_around_and_size_saturates():
    replay = replay_insert(_empty(5), _items([1, 2, 3]))
    np.testing.assert_array_equal(replay.items["x"], [1, 2, 3, 0, 0])
    assert (int(replay.size), int(replay.position)) == (3, 3)

    replay = replay_insert(replay, _items([4, 5, 6]))  # slots 3, 4, then 0
    np.testing.assert_array_equal(replay.items["x"], [6, 2, 3, 4, 5])
    assert (int(replay.size), int(replay.position)) == (5, 1)

    replay = replay_insert(replay, _items([7, 8]))  # overwrites the oldest: slots 1, 2
    np.testing.assert_array_equal(replay.items["x"], [6, 7, 8, 4, 5])
    assert (int(replay.size), int(replay.position)) == (5, 3)
    np.testing.assert_array_equal(replay.items["frames"][:, 0, 0], [6, 7, 8, 4, 5])
    assert replay.items["frames"].dtype == jnp.uint8


def test_replay_insert_of_a_full_buffer_worth_and_too_many():
    replay = replay_insert(_empty(3), _items([1, 2, 3]))
    assert (int(replay.size), int(replay.position)) == (3, 0)
    with pytest.raises(ValueError, match="cannot insert 4"):
        replay_insert(_empty(3), _items([1, 2, 3, 4]))


def test_replay_insert_jits():
    insert = jax.jit(replay_insert)
    replay = insert(insert(_empty(4), _items([1, 2, 3])), _items([4, 5, 6]))
    np.testing.assert_array_equal(replay.items["x"], [5, 6, 3, 4])
    assert (int(replay.size), int(replay.position)) == (4, 2)


def test_replay_samples_only_filled_slots():
    replay = replay_insert(_empty(8), _items([10, 11, 12]))
    batch = replay_sample(replay, jax.random.PRNGKey(0), 600)
    assert batch["x"].shape == (600,) and batch["frames"].shape == (600, 2, 3)
    assert set(np.asarray(batch["x"]).tolist()) == {10, 11, 12}  # never the empty slots' zeros
    np.testing.assert_array_equal(batch["frames"][:, 1, 2], batch["x"])  # leaves stay aligned

    full = replay_insert(replay_insert(replay, _items([13, 14, 15, 16])), _items([17, 18]))
    batch = replay_sample(full, jax.random.PRNGKey(1), 600)
    assert set(np.asarray(batch["x"]).tolist()) == set(range(11, 19))  # 10 was overwritten by 18


def test_sequence_nbytes_uint8_frames():
    assert sequence_nbytes(128, 128) == 129 * 128 * 128 * 3  # ~6.3 MB


# ----------------------------------------------------------------------------- target network


def test_hard_target_copy_exactly_every_n_updates():
    target = {"w": jnp.zeros(2), "b": jnp.float32(0.0)}
    copies = []
    for updates_done in range(1, 13):
        online = {"w": jnp.full(2, float(updates_done)), "b": jnp.float32(updates_done)}
        target = target_update(target, online, jnp.int32(updates_done), every=4, tau=1.0)
        if float(target["b"]) == updates_done:
            copies.append(updates_done)
        np.testing.assert_array_equal(target["w"], jnp.full(2, float(4 * (updates_done // 4))))
    assert copies == [4, 8, 12]


def test_polyak_target_update():
    target = {"w": jnp.array([1.0, -1.0]), "n": jnp.int32(3), "none": None}
    online = {"w": jnp.array([3.0, 1.0]), "n": jnp.int32(7), "none": None}
    new = target_update(target, online, jnp.int32(1), every=4, tau=0.1)
    np.testing.assert_allclose(new["w"], [1.2, -0.8], rtol=1e-6)  # 0.1 * online + 0.9 * target
    assert int(new["n"]) == 7 and new["none"] is None  # non-float leaves are copied


# ----------------------------------------------------------------------------------- targets


def test_double_q_bootstrap_on_a_hand_made_table():
    online = jnp.array([[1.0, 5.0, 2.0], [3.0, 0.0, 1.0]])
    target = jnp.array([[10.0, 20.0, 30.0], [7.0, 8.0, 9.0]])
    # Online argmax picks actions 1 and 0; the target network values them.
    np.testing.assert_allclose(double_q_bootstrap(online, target, True), [20.0, 7.0])
    np.testing.assert_allclose(double_q_bootstrap(online, target, False), [30.0, 9.0])


def _hand_sequence():
    """Four steps, one sequence: step 1 terminates, step 2 is truncated (final frame worth 5)."""
    online = jnp.array([[0.0, 1.0], [1.0, 0.0], [9.0, 9.5], [2.0, 1.0]])[:, None]  # [T, B=1, A]
    target = jnp.array([[3.0, 4.0], [100.0, 100.0], [100.0, 100.0], [6.0, 8.0]])[:, None]
    steps = {
        "reward": jnp.ones((4, 1)),
        "terminated": jnp.array([False, True, False, False])[:, None],
        "truncated": jnp.array([False, False, True, False])[:, None],
        "final_value": jnp.array([0.0, 0.0, 5.0, 0.0])[:, None],
    }
    return online, target, steps


def test_one_step_double_q_targets_with_termination_and_truncation():
    online, target, steps = _hand_sequence()
    targets = sequence_targets(online, target, **steps, gamma=0.9, lam=0.0, double_q=True)
    # t0: online argmax(o1) = 1 -> target 4; t1 terminated; t2 truncated -> final value 5
    # (never the next episode's first frame, valued 100); t3: online argmax(o4) = 0 -> target 6.
    np.testing.assert_allclose(targets[:, 0], [1 + 0.9 * 4, 1.0, 1 + 0.9 * 5, 1 + 0.9 * 6], rtol=1e-6)
    plain = sequence_targets(online, target, **steps, gamma=0.9, lam=0.0, double_q=False)
    np.testing.assert_allclose(plain[:, 0], [1 + 0.9 * 4, 1.0, 1 + 0.9 * 5, 1 + 0.9 * 8], rtol=1e-6)


def test_lambda_targets_mix_within_an_episode_only():
    online, target, steps = _hand_sequence()
    targets = sequence_targets(online, target, **steps, gamma=0.9, lam=0.5, double_q=True)
    g1 = 1.0  # terminated: nothing after it in its episode
    g0 = 1 + 0.9 * (0.5 * 4 + 0.5 * g1)
    g3 = 1 + 0.9 * 6  # the sequence's last step bootstraps fully
    g2 = 1 + 0.9 * 5  # truncated: bootstraps from its final frame, not the next episode's return
    np.testing.assert_allclose(targets[:, 0], [g0, g1, g2, g3], rtol=1e-6)


# ------------------------------------------------------------------------------ config checks


def _config(memory="MLP", updates=3, **dqn):
    settings = {"buffer_sequences": 8, "batch_sequences": 2, "learning_starts": 1, "updates_per_rollout": 2}
    settings.update(dqn)
    return TrainConfig(
        algo="dqn",
        env="CartPoleEasy",
        steps=2 * 8 * updates,
        num_envs=2,
        rollout_steps=8,
        network=NetworkConfig(
            encoder="small", features=32, memory=memory, memory_hidden=32, memory_output=32, head_hidden=32
        ),
        dqn=DQNConfig(**settings),
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_sequences": 9}, "batch_sequences"),
        ({"buffer_sequences": 1, "batch_sequences": 1}, "num_envs"),
        ({"tau": 0.0}, "tau"),
        ({"tau": 1.5}, "tau"),
        ({"lam": 1.5}, "lam"),
        ({"updates_per_rollout": 0}, "updates_per_rollout"),
        ({"target_update_every": 0}, "target_update_every"),
        ({"learning_starts": -1}, "learning_starts"),
    ],
)
def test_invalid_settings_raise(settings, message):
    with pytest.raises(ValueError, match=message):
        DQN(_config(**settings))


def test_first_learning_update():
    assert first_learning_update(learning_starts=4, batch_sequences=16, num_envs=16) == 3
    assert first_learning_update(learning_starts=1, batch_sequences=32, num_envs=16) == 1  # buffer gate
    assert first_learning_update(learning_starts=0, batch_sequences=1, num_envs=16) == 0


def test_a_run_that_never_learns_warns():
    with pytest.warns(UserWarning, match="never learns"):
        DQN(_config(updates=1, learning_starts=4))


# ---------------------------------------------------------------------------- tiny end to end

# GRU: learning held back by learning_starts; MLP: by the buffer holding fewer than a batch
# (2 sequences after the first rollout, batch 4). Both first learn on update 1, so update 0 shows
# that nothing changes before learning starts. target_update_every=2: one copy, after update 1.
RUNS = {
    "GRU": {"learning_starts": 2, "batch_sequences": 2},
    "MLP": {"learning_starts": 1, "batch_sequences": 4},
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def tiny_run(request):
    """Init plus three updates of two seeds in one jitted, vmapped program (compiled once)."""
    algorithm = DQN(_config(request.param, target_update_every=2, **RUNS[request.param]))

    def run(key):
        state = algorithm.init(key)

        def step(state, _):
            state, metrics = algorithm.update(state)
            return state, (metrics, state.params, state.extra.target_params)

        final, history = jax.lax.scan(step, state, None, length=algorithm.config.num_updates)
        return state.params, final, history

    outputs = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), 2))
    initial, final, (metrics, params, targets) = jax.device_get(outputs)  # numpy: cheap to slice
    return algorithm, initial, final, metrics, params, targets


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


def _at(tree, index):
    """Leading-axis slice of every leaf (outputs of the vmapped run are ``[seeds, updates, ...]``)."""
    return jax.tree.map(lambda x: x[index], tree)


def test_tiny_run_metrics(tiny_run):
    _, _, _, metrics, _, _ = tiny_run
    for name, value in metrics.items():
        assert value.shape == (2, 3), name  # [seeds, updates]
        assert np.isfinite(np.asarray(value)).all(), name
    np.testing.assert_array_equal(metrics["learning"], [[0, 1, 1]] * 2)
    np.testing.assert_array_equal(metrics["buffer_size"], [[2, 4, 6]] * 2)
    np.testing.assert_array_equal(metrics["td_loss"][:, 0], [0, 0])
    assert (np.asarray(metrics["td_loss"][:, 1:]) > 0).all()
    np.testing.assert_allclose(metrics["epsilon"][:, 0], [1.0, 1.0])


def test_tiny_run_params_change_only_once_learning(tiny_run):
    _, initial, _, _, params, targets = tiny_run
    for seed in range(2):
        history = [_at(initial, seed)] + [_at(_at(params, seed), update) for update in range(3)]
        assert _same(history[0], history[1])  # update 0: no learning
        assert not _same(history[1], history[2])
        assert not _same(history[2], history[3])
        # Target: the initial params until the copy after the second update, then a frozen copy.
        target_history = [_at(_at(targets, seed), update) for update in range(3)]
        assert _same(target_history[0], history[0])
        assert _same(target_history[1], history[2])
        assert _same(target_history[2], history[2])
    assert not _same(_at(initial, 0), _at(initial, 1))  # seeds differ


def test_tiny_run_replay_holds_uint8_sequences(tiny_run):
    algorithm, _, final, _, _, _ = tiny_run
    items = final.extra.replay.items
    size = algorithm.config.obs_size
    assert items["obs"].shape == (2, 8, 9, size, size, 3) and items["obs"].dtype == jnp.uint8
    assert items["action"].shape == (2, 8, 8)
    assert np.asarray(items["start"][:, 0, 0]).all()  # the first window starts at a reset
    np.testing.assert_array_equal(final.extra.replay.size, [6, 6])
    np.testing.assert_array_equal(final.extra.replay.position, [6, 6])
    # A window's bootstrap frame is the next window's first frame (same env, consecutive rollouts).
    np.testing.assert_array_equal(items["obs"][:, 0, -1], items["obs"][:, 2, 0])


def test_greedy_step_and_sequence_outputs(tiny_run):
    algorithm, initial, _, _, _, _ = tiny_run
    params = _at(initial, 0)
    size = algorithm.config.obs_size
    obs = jax.random.randint(jax.random.PRNGKey(3), (3, size, size, 3), 0, 256).astype(jnp.uint8)
    start = jnp.array([True, False, False])
    prev = jnp.array([0, 2, 1], jnp.int32), jnp.zeros(3, jnp.float32)

    @jax.jit  # one small program instead of slow eager memax ops
    def outputs(params):
        q_values = algorithm.sequence_outputs(params, obs, start, *prev)
        _, action = algorithm.greedy_step(params, algorithm.initial_carry(params, 3), obs, start, *prev)
        return q_values, action

    q_values, action = outputs(params)
    assert q_values.shape == (3, algorithm.num_actions) and np.isfinite(np.asarray(q_values)).all()
    assert action.shape == (3,) and action.dtype == jnp.int32
    # Env 0 starts an episode from a fresh carry, exactly as the sequence's first step does.
    assert int(action[0]) == int(jnp.argmax(q_values[0]))
