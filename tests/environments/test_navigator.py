"""Navigator's rules, reset distribution, return bounds and frames (the shared harness covers the rest)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments.base import EnvParams
from popgym_arcade.environments.navigator import (
    AGENT_COLOR,
    EMPTY,
    TNT,
    TNT_BAND,
    TNT_LETTERS,
    TNT_RED,
    TREASURE,
    TREASURE_COLOR,
    Navigator,
    NavigatorDifficulty,
    NavigatorState,
    sample_distinct_cells,
)

PARAMS = EnvParams()
KEY = jax.random.key(0)
B = 8  # Easy
P = 0.5 / 64  # Easy's step penalty
CELL_COLOR = np.array(Navigator.cell_color, np.uint8)


@pytest.fixture(scope="module")
def env():
    return Navigator("Easy")


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(lambda state, action: env.step_state(KEY, state, action, PARAMS))


@pytest.fixture(scope="module")
def renders(env):
    pomdp = Navigator("Easy", partial_obs=True)
    return jax.jit(env.render), jax.jit(pomdp.render)


def make_state(agent, tnt=(), treasure=None, timestep=0, size=B):
    """A hand-built state; cells are ``(x, y)``."""
    board = np.full((size, size), EMPTY, np.int32)
    for x, y in tnt:
        board[y, x] = TNT
    if treasure is not None:
        board[treasure[1], treasure[0]] = TREASURE
    return NavigatorState(
        timestep=jnp.int32(timestep), board=jnp.asarray(board), x=jnp.int32(agent[0]), y=jnp.int32(agent[1])
    )


def run(step, state, actions):
    """Step through ``actions``; returns the states, rewards, terminated and truncated flags."""
    states, rewards, terms, truncs = [], [], [], []
    for action in actions:
        state, reward, term, trunc, info = step(state, jnp.int32(action))
        assert info == {}
        states.append(state)
        rewards.append(float(reward))
        terms.append(bool(term))
        truncs.append(bool(trunc))
    return states, rewards, terms, truncs


# ------------------------------------------------------------------------------ difficulty
def test_difficulty_table():
    table = {name: (d.board_size, d.num_tnt, d.max_steps) for name, d in Navigator.difficulties.items()}
    assert table == {"Easy": (8, 7, 64), "Medium": (10, 7, 100), "Hard": (12, 7, 144)}
    for d in Navigator.difficulties.values():
        assert d.step_penalty == pytest.approx(0.5 / d.board_size**2)
    assert Navigator.return_range == (-1.0, 1.0)


def test_difficulty_validation():
    with pytest.raises(ValueError):
        NavigatorDifficulty(board_size=3, max_steps=9, num_tnt=8)  # no room for treasure and agent
    with pytest.raises(ValueError):
        NavigatorDifficulty(board_size=4, max_steps=0)
    custom = Navigator(NavigatorDifficulty(board_size=5, max_steps=30, num_tnt=3))
    state = custom.reset_state(KEY, PARAMS)
    assert int(jnp.sum(state.board == TNT)) == 3


# ----------------------------------------------------------------------------------- reset
@pytest.mark.parametrize("level", ["Easy", "Hard"])
def test_reset_places_distinct_items_uniformly(level):
    game = Navigator(level)
    size = game.difficulty.board_size
    n = 4000
    states = jax.jit(jax.vmap(lambda k: game.reset_state(k, PARAMS)))(jax.random.split(KEY, n))
    board = np.asarray(states.board)
    x, y = np.asarray(states.x), np.asarray(states.y)
    assert np.all((board == TNT).sum(axis=(1, 2)) == 7)
    assert np.all((board == TREASURE).sum(axis=(1, 2)) == 1)
    assert np.all(board[np.arange(n), y, x] == EMPTY)  # never on TNT or the treasure
    assert np.all(np.asarray(states.timestep) == 0)
    # Every cell, last row and column included, is used by the agent, the treasure and TNT
    # (about 28 times each on Hard, so a missing cell means a bias).
    agent_counts = np.bincount(y * size + x, minlength=size * size)
    treasure_counts = (board == TREASURE).sum(axis=0).ravel()
    tnt_counts = (board == TNT).sum(axis=0).ravel()
    per_cell = n / size**2
    for counts, expected in ((agent_counts, per_cell), (treasure_counts, per_cell), (tnt_counts, 7 * per_cell)):
        assert counts.min() > 0
        chi2 = np.sum((counts - expected) ** 2 / expected)
        assert chi2 < 2 * size**2, chi2  # mean size^2 - 1, sd ~ sqrt(2 size^2)


def test_sample_distinct_cells_is_uniform_over_ordered_pairs():
    # 4 cells, 2 picks: the 12 ordered pairs are equally likely.
    sample = jax.jit(jax.vmap(lambda k: sample_distinct_cells(k, 4, 2)))
    picks = np.asarray(sample(jax.random.split(KEY, 12000)))
    assert np.all(picks[:, 0] != picks[:, 1])
    counts = np.bincount(picks[:, 0] * 4 + picks[:, 1], minlength=16).reshape(4, 4)
    assert np.all(np.diag(counts) == 0)
    off = counts[~np.eye(4, dtype=bool)]
    assert np.all(np.abs(off - 1000) < 150), counts


# ------------------------------------------------------------------------------------ rules
@pytest.mark.parametrize("action, expected", [(0, (3, 3)), (1, (3, 5)), (2, (2, 4)), (3, (4, 4))])
def test_moves(step, action, expected):
    start = make_state((3, 4), tnt=[(0, 0)], treasure=(7, 7), timestep=10)
    state, reward, term, trunc, _ = step(start, action)
    assert (int(state.x), int(state.y)) == expected
    assert int(state.timestep) == 11
    assert float(reward) == pytest.approx(-P)
    assert not bool(term) and not bool(trunc)


@pytest.mark.parametrize(
    "agent, action", [((0, 0), 0), ((0, 0), 2), ((7, 7), 1), ((7, 7), 3), ((0, 7), 2), ((7, 0), 0)]
)
def test_walls_clamp(step, agent, action):
    state, reward, term, _, _ = step(make_state(agent, tnt=[(1, 1)], treasure=(4, 4)), action)
    assert (int(state.x), int(state.y)) == agent
    assert float(reward) == pytest.approx(-P) and not bool(term)


@pytest.mark.parametrize("action", [-1, 5, 7, 100])
def test_out_of_range_actions_are_noops(step, action):
    start = make_state((2, 2), tnt=[(2, 3)], treasure=(2, 2), timestep=3)  # even standing on the treasure
    state, reward, term, trunc, _ = step(start, action)
    assert (int(state.x), int(state.y)) == (2, 2)
    np.testing.assert_array_equal(state.board, start.board)
    assert int(state.timestep) == 4
    assert float(reward) == pytest.approx(-P)
    assert not bool(term) and not bool(trunc)


def test_walking_onto_tnt_loses(step):
    state, reward, term, trunc, _ = step(make_state((3, 3), tnt=[(4, 3)], treasure=(0, 0)), 3)
    assert (int(state.x), int(state.y)) == (4, 3)
    assert float(reward) == -0.5
    assert bool(term) and not bool(trunc)


def test_hit_wins_only_on_the_treasure(step):
    board = dict(tnt=[(5, 5)], treasure=(2, 6))
    # Stepping onto the treasure is not enough; firing there wins.
    states, rewards, terms, _ = run(step, make_state((2, 5), **board), [4, 1, 4])
    assert rewards == pytest.approx([-P, -P, 1.0])
    assert terms == [False, False, True]
    assert [(int(s.x), int(s.y)) for s in states] == [(2, 5), (2, 6), (2, 6)]


def test_trajectory(step):
    # Walk down past a TNT wall, right, down onto the treasure, and claim it.
    tnt = [(1, 0), (1, 1), (0, 3)]
    start = make_state((0, 0), tnt=tnt, treasure=(1, 3))
    states, rewards, terms, truncs = run(step, start, [1, 1, 3, 1, 4])
    assert [(int(s.x), int(s.y)) for s in states] == [(0, 1), (0, 2), (1, 2), (1, 3), (1, 3)]
    assert rewards == pytest.approx([-P] * 4 + [1.0])
    assert terms == [False] * 4 + [True] and truncs == [False] * 5
    assert 1.0 - 4 * P == pytest.approx(sum(rewards))
    # The same walk turning left at (1, 3) lands on TNT at (0, 3).
    _, rewards, terms, _ = run(step, states[3], [2])
    assert rewards == [-0.5] and terms == [True]


def test_last_step_truncates_unless_the_game_ends(step, env):
    board = dict(tnt=[(4, 2)], treasure=(3, 3))
    _, reward, term, trunc, _ = step(make_state((0, 0), timestep=63, **board), 3)
    assert float(reward) == pytest.approx(-P) and not bool(term) and bool(trunc)
    _, reward, term, _, _ = step(make_state((3, 3), timestep=63, **board), 4)
    assert float(reward) == 1.0 and bool(term)  # a win on the last step pays
    _, reward, term, _, _ = step(make_state((3, 2), timestep=63, **board), 3)
    assert float(reward) == -0.5 and bool(term)
    # Through the public step: terminated wins over truncated, and the episode restarts.
    _, state, reward, term, trunc, info = env.step(KEY, make_state((3, 3), timestep=63, **board), 4)
    assert bool(term) and not bool(trunc) and float(reward) == 1.0
    assert int(state.timestep) == 0 and int(info["final_state"].timestep) == 64


def test_worst_and_timeout_returns_stay_inside_bounds(env):
    scan_step = jax.jit(
        lambda state, actions: jax.lax.scan(
            lambda s, a: (lambda out: (out[0], out[1:4]))(env.step_state(KEY, s, a, PARAMS)), state, actions
        )
    )
    # 63 bumps into the wall, then onto TNT on the last step: the lowest possible return.
    start = make_state((0, 0), tnt=[(1, 0)], treasure=(7, 7))
    _, (rewards, terms, truncs) = scan_step(start, jnp.asarray([0] * 63 + [3], jnp.int32))
    assert not np.any(np.asarray(terms)[:-1]) and bool(terms[-1])
    assert float(jnp.sum(rewards)) == pytest.approx(-1 + P) and float(jnp.sum(rewards)) > -1
    # Doing nothing for the whole episode: truncated at step 64 with return -0.5.
    _, (rewards, terms, truncs) = scan_step(start, jnp.full(64, 4, jnp.int32))
    assert not np.any(np.asarray(terms)) and np.flatnonzero(np.asarray(truncs)).tolist() == [63]
    assert float(jnp.sum(rewards)) == pytest.approx(-0.5)


def test_random_rollout_returns_within_bounds(env):
    num_envs, num_steps = 64, 300

    def rollout(key):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), PARAMS)

        def body(carry, key):
            state, running = carry
            k_act, k_step = jax.random.split(key)
            # Random moves, but fire whenever standing on the treasure, so that all three
            # endings (win, TNT, time-out) occur.
            on_treasure = state.board[jnp.arange(num_envs), state.y, state.x] == TREASURE
            actions = jnp.where(on_treasure, 4, jax.random.randint(k_act, (num_envs,), 0, 4))
            _, state, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, num_envs), state, actions, PARAMS
            )
            running = running + reward
            done = term | trunc
            return (state, jnp.where(done, 0.0, running)), (jnp.where(done, running, jnp.nan), term, trunc)

        _, out = jax.lax.scan(body, (state, jnp.zeros(num_envs)), jax.random.split(key, num_steps))
        return out

    returns, terms, truncs = (np.asarray(a) for a in jax.jit(rollout)(jax.random.key(1)))
    returns = returns[~np.isnan(returns)]
    assert returns.size > 100
    assert np.all(returns >= -1 + P - 1e-6) and np.all(returns <= 1 - P + 1e-6)
    assert returns.max() > 0.5 and returns.min() < -0.5  # wins and late TNT deaths
    assert np.any(np.isclose(returns, -0.5)) and truncs.any() and terms.any()


# ---------------------------------------------------------------------------------- render
def cell_pixels(frame, game, x, y):
    x0, y0, x1, y1 = game.layout.interior(x, y)
    return np.asarray(frame)[y0:y1, x0:x1]


def has_color(pixels, color):
    return bool(np.any(np.all(pixels == np.asarray(color, np.uint8), axis=-1)))


BOARD = dict(tnt=[(1, 1), (6, 2), (0, 7)], treasure=(5, 5))


def test_mdp_shows_everything(env, renders):
    render_mdp, _ = renders
    frame = np.asarray(render_mdp(make_state((3, 4), timestep=5, **BOARD)))
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    for x, y in BOARD["tnt"]:
        tnt = cell_pixels(frame, env, x, y)
        assert np.all(tnt[0] == TNT_RED) and np.all(tnt[-1] == TNT_RED)  # red above and below the band
        assert np.all(tnt[tnt.shape[0] // 2] == TNT_BAND)
    treasure = cell_pixels(frame, env, 5, 5)
    assert np.all(treasure[treasure.shape[0] // 2, treasure.shape[1] // 2] == TREASURE_COLOR)
    assert np.all(treasure[0, 0] == CELL_COLOR)  # a hexagon, not a filled cell
    assert np.all(cell_pixels(frame, env, 3, 4) == AGENT_COLOR)
    assert np.all(cell_pixels(frame, env, 2, 2) == CELL_COLOR)
    # White grid lines: the line just left of and above cell (2, 2).
    x0, y0, _, _ = env.layout.interior(2, 2)
    assert np.all(frame[y0 - 1, x0 : x0 + 3] == 255) and np.all(frame[y0 : y0 + 3, x0 - 1] == 255)


def test_pomdp_hides_the_map_after_the_first_frame(env, renders):
    render_mdp, render_pomdp = renders
    later = make_state((3, 4), timestep=5, **BOARD)
    pomdp = np.asarray(render_pomdp(later))
    mdp = np.asarray(render_mdp(later))
    for x, y in [*BOARD["tnt"], BOARD["treasure"]]:
        assert np.all(cell_pixels(pomdp, env, x, y) == CELL_COLOR)
    assert not has_color(pomdp, TNT_RED) and not has_color(pomdp, TREASURE_COLOR)
    assert np.all(cell_pixels(pomdp, env, 3, 4) == AGENT_COLOR)
    # Elsewhere the twins agree (grid, HUD, agent).
    differ = np.any(pomdp != mdp, axis=-1)
    mask = np.zeros_like(differ)
    for x, y in [*BOARD["tnt"], BOARD["treasure"]]:
        x0, y0, x1, y1 = env.layout.interior(x, y)
        mask[y0:y1, x0:x1] = True
    assert differ.any() and not np.any(differ & ~mask)
    # At t = 0 the POMDP shows the full board: its frame is the MDP's.
    first = make_state((3, 4), timestep=0, **BOARD)
    np.testing.assert_array_equal(render_pomdp(first), render_mdp(first))
    assert has_color(np.asarray(render_pomdp(first)), TNT_RED)


def test_agent_covers_its_cell_in_both_twins(env, renders):
    for render in renders:
        frame = render(make_state((5, 5), timestep=3, **BOARD))  # standing on the treasure
        assert np.all(cell_pixels(frame, env, 5, 5) == AGENT_COLOR)


def test_hud_shows_steps_left(env, renders):
    render_mdp, render_pomdp = renders
    band = slice(0, 16)
    frame5 = np.asarray(render_mdp(make_state((3, 4), timestep=5, **BOARD)))
    frame6 = np.asarray(render_pomdp(make_state((3, 4), timestep=6, **BOARD)))
    assert has_color(frame5[band], Navigator.score_color)
    expected = np.asarray(env.draw_score(env.frame(), 64 - 5))[band]
    np.testing.assert_array_equal(frame5[band], expected)
    assert np.any(frame5[band] != np.asarray(env.draw_score(env.frame(), 5))[band])
    assert np.any(frame5[band] != frame6[band])
    np.testing.assert_array_equal(frame6[band], np.asarray(env.draw_score(env.frame(), 58))[band])
    # The title banner is drawn in its colour at the bottom.
    assert has_color(frame5[112:], Navigator.title_color)


def test_256_frame():
    game = Navigator("Easy", obs_size=256)
    frame = np.asarray(game.render(make_state((3, 4), timestep=5, **BOARD)))
    assert frame.shape == (256, 256, 3)
    assert np.all(cell_pixels(frame, game, 3, 4) == AGENT_COLOR)
    tnt = cell_pixels(frame, game, 1, 1)
    assert np.all(tnt[0] == TNT_RED) and has_color(tnt, TNT_BAND) and has_color(tnt, TNT_LETTERS)
    treasure = cell_pixels(frame, game, 5, 5)
    assert np.all(treasure[treasure.shape[0] // 2, treasure.shape[1] // 2] == TREASURE_COLOR)
    assert game.layout.line == 2


def test_tnt_tiles_have_letters_where_they_fit():
    # At 256 px every level's TNT shows black letters; at 128 px the cells are too small.
    for size, expect_letters in ((256, True), (128, False)):
        for level in ("Easy", "Medium", "Hard"):
            game = Navigator(level, obs_size=size)
            tile = game.tiles[TNT]
            assert has_color(tile, TNT_LETTERS) == expect_letters, (size, level)
            assert has_color(tile, TNT_RED) and has_color(tile, TNT_BAND)
