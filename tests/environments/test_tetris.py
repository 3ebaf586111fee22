"""Rule and rendering tests of Tetris, from hand-built states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments.base import select_tree
from popgym_arcade.environments.struct import replace
from popgym_arcade.environments.tetris import (
    COLS,
    PIECE_COLORS,
    ROWS,
    SPAWN_X,
    SPAWN_Y,
    Tetris,
    TetrisDifficulty,
    TetrisParams,
    TetrisState,
    clear_full_rows,
)

I, O, T, S, Z, J, L = range(7)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


# ------------------------------------------------------------------------------------ helpers
def board_from(rows: dict[int, str]) -> np.ndarray:
    """A board whose row ``r`` is ``rows[r]``: '.' empty, a digit 1..7 a block of that value."""
    board = np.zeros((ROWS, COLS), np.int32)
    for r, text in rows.items():
        assert len(text) == COLS
        board[r] = [0 if ch == "." else int(ch) for ch in text]
    return board


def make_state(board=None, piece=I, x=SPAWN_X, y=SPAWN_Y, rotation=0, lines=0, locked=False, timestep=5,
               bag=None, bag_index=0) -> TetrisState:
    """A state with ``piece`` falling (by default the first piece of the bag 0..6 rotated to it)."""
    if bag is None:
        first = (np.arange(7) + piece) % 7
        bag, bag_index = np.concatenate([first, first]), 0
    i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
    return TetrisState(
        timestep=i32(timestep),
        board=i32(np.zeros((ROWS, COLS)) if board is None else board),
        bag=i32(bag),
        bag_index=i32(bag_index),
        x=i32(x),
        y=i32(y),
        rotation=i32(rotation),
        locked=jnp.asarray(locked),
        lines=i32(lines),
    )


KEY = jax.random.key(0)
PARAMS = TetrisParams()


@pytest.fixture(scope="module")
def game():
    """Per level: the env (MDP, 128 px) and its jitted ``step_state``."""
    envs = {level: Tetris(level) for level in ("Easy", "Hard")}
    return {level: (env, jax.jit(env.step_state)) for level, env in envs.items()}


def step(game, level, state, action, params=PARAMS, key=KEY):
    _, fn = game[level]
    next_state, reward, terminated, truncated, info = fn(key, state, jnp.int32(action), params)
    assert info == {}
    return next_state, float(reward), bool(terminated), bool(truncated)


def where(state):
    return int(state.x), int(state.y), int(state.rotation)


# -------------------------------------------------------------------------------- difficulty
def test_difficulty_table():
    table = {
        level: (d.preview, d.gravity, d.soft_drop, d.lines_to_win) for level, d in Tetris.difficulties.items()
    }
    assert table == {"Easy": (3, 1, 2, 10), "Medium": (2, 1, 2, 10), "Hard": (1, 2, 3, 10)}
    assert Tetris("Medium").default_params == TetrisParams(max_steps_in_episode=3000)
    with pytest.raises(ValueError):
        TetrisDifficulty(preview=7, gravity=1, soft_drop=2)


# ------------------------------------------------------------------------------------- reset
def test_reset(game):
    env, _ = game["Easy"]
    states = jax.vmap(env.reset_state, in_axes=(0, None))(jax.random.split(KEY, 16), PARAMS)
    assert not np.asarray(states.board).any()
    for field, value in (("x", SPAWN_X), ("y", SPAWN_Y), ("rotation", 0), ("bag_index", 0), ("lines", 0),
                         ("timestep", 0), ("locked", False)):
        assert (np.asarray(getattr(states, field)) == value).all(), field
    bags = np.asarray(states.bag)
    for bag in bags:
        assert sorted(bag[:7]) == list(range(7)) and sorted(bag[7:]) == list(range(7))
    assert len({tuple(b) for b in bags}) > 8  # the bags depend on the key


# ------------------------------------------------------------------------------------- moves
@pytest.mark.parametrize(
    "level, action, expected",
    [
        ("Easy", 4, (3, 6, 0)),  # gravity 1
        ("Hard", 4, (3, 7, 0)),  # gravity 2
        ("Easy", 1, (3, 7, 0)),  # soft drop 2 replaces gravity
        ("Hard", 1, (3, 8, 0)),  # soft drop 3
        ("Easy", 2, (2, 6, 0)),
        ("Easy", 3, (4, 6, 0)),
        ("Easy", 0, (3, 6, 1)),  # rotate clockwise
        ("Hard", 0, (3, 7, 1)),
    ],
)
def test_move_then_fall(game, level, action, expected):
    state = make_state(piece=T, y=5)
    next_state, reward, terminated, truncated = step(game, level, state, action)
    assert where(next_state) == expected
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert int(next_state.timestep) == 6 and not bool(next_state.locked)
    np.testing.assert_array_equal(next_state.board, state.board)


def test_blocked_moves_keep_the_piece_but_it_still_falls(game):
    # O occupies box columns 1-2: at x = -1 it touches the left wall.
    state = make_state(piece=O, x=-1, y=5)
    assert where(step(game, "Easy", state, 2)[0]) == (-1, 6, 0)
    # A block beside the piece's lower row stops a shift right; the piece still falls.
    board = board_from({7: "...5......"})
    state = make_state(board=board, piece=O, x=0, y=5)
    assert where(step(game, "Easy", state, 3)[0]) == (0, 6, 0)
    # I in rotation 0 at the right wall (columns 6-9): rotation 1 needs column 8, rows y..y+3.
    board = board_from({9: "........1."})
    state = make_state(board=board, piece=I, x=6, y=6)
    assert where(step(game, "Easy", state, 0)[0]) == (6, 7, 0)
    state = make_state(piece=I, x=6, y=6)
    assert where(step(game, "Easy", state, 0)[0]) == (6, 7, 1)


@pytest.mark.parametrize("action", [-1, 5, 7, 1000])
def test_out_of_range_actions_are_noops(game, action):
    state = make_state(piece=S, x=4, y=3, rotation=1)
    expected = step(game, "Easy", state, 4)
    got = step(game, "Easy", state, action)
    assert got[1:] == expected[1:]
    jax.tree.map(np.testing.assert_array_equal, got[0], expected[0])
    assert int(got[0].timestep) == int(state.timestep) + 1


# ---------------------------------------------------------------------------- falls and locks
def test_no_tunnelling(game):
    # A flat I (box row 1) on Hard would jump a one-row ledge if only the target were checked.
    board = board_from({7: "...1......"})
    for action in (4, 1):
        state = make_state(board=board, piece=I, x=3, y=5)
        next_state, reward, terminated, _ = step(game, "Hard", state, action)
        assert where(next_state) == (3, 5, 0) and bool(next_state.locked)
        np.testing.assert_array_equal(next_state.board[6], [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    # An obstacle two rows down stops a 2-row fall after one row, and the piece locks there.
    board = board_from({8: "...1......"})
    next_state, *_ = step(game, "Hard", make_state(board=board, piece=I, x=3, y=5), 4)
    assert where(next_state) == (3, 6, 0) and bool(next_state.locked)


def test_lock_pays_a_line_and_the_next_step_clears_and_spawns(game):
    board = board_from({18: "7.........", 19: "666....666"})
    state = make_state(board=board, piece=I, x=3, y=17, lines=2)
    locked, reward, terminated, truncated = step(game, "Easy", state, 4)
    assert where(locked) == (3, 18, 0) and bool(locked.locked)
    assert reward == pytest.approx(0.1) and int(locked.lines) == 3
    assert not terminated and not truncated
    np.testing.assert_array_equal(locked.board, board_from({18: "7.........", 19: "6661111666"}))
    # The piece already locked: moving it on the lock step's successor moves the new piece.
    spawned, reward, terminated, _ = step(game, "Easy", locked, 3)
    np.testing.assert_array_equal(spawned.board, board_from({19: "7........."}))
    assert int(spawned.piece) == O and int(spawned.bag_index) == 1
    assert where(spawned) == (SPAWN_X + 1, SPAWN_Y + 1, 0)
    assert reward == 0.0 and not terminated and not bool(spawned.locked) and int(spawned.lines) == 3


def test_landing_without_a_line_locks_without_reward(game):
    state = make_state(piece=T, x=0, y=17)
    next_state, reward, terminated, _ = step(game, "Easy", state, 4)
    assert bool(next_state.locked) and reward == 0.0 and not terminated
    expected = board_from({18: ".3........", 19: "333......."})
    np.testing.assert_array_equal(next_state.board, expected)


WELL = {r: "22222.2222" for r in range(16, 20)}


@pytest.mark.parametrize("lines, reward, terminated", [(0, 0.4, False), (5, 0.4, False), (6, 0.4, True),
                                                       (8, 0.2, True), (9, 0.1, True)])
def test_four_lines_pay_up_to_the_win(game, lines, reward, terminated):
    # A vertical I (rotation 1, box column 2) drops into a one-wide well four rows deep.
    state = make_state(board=board_from(WELL), piece=I, x=3, y=15, rotation=1, lines=lines)
    next_state, got_reward, got_terminated, truncated = step(game, "Easy", state, 4)
    assert bool(next_state.locked) and int(next_state.lines) == lines + 4
    assert got_reward == pytest.approx(reward) and got_terminated == terminated and not truncated


def test_clear_full_rows_keeps_the_order_of_the_rest():
    board = board_from({15: "1.........", 16: "2222222222", 17: "..3.......", 18: "4444444444",
                        19: ".5........"})
    expected = board_from({17: "1.........", 18: "..3.......", 19: ".5........"})
    np.testing.assert_array_equal(clear_full_rows(jnp.asarray(board)), expected)


def test_blocked_spawn_is_game_over(game):
    board = board_from({2: "..3333....", 3: "..3333...."})
    state = make_state(board=board, piece=Z, x=6, y=0, locked=True, lines=4)
    next_state, reward, terminated, truncated = step(game, "Easy", state, 1)
    assert terminated and not truncated and reward == -1.0
    # Nothing moves or locks after the failed spawn.
    assert where(next_state) == (SPAWN_X, SPAWN_Y, 0) and not bool(next_state.locked)
    np.testing.assert_array_equal(next_state.board, board)
    assert int(next_state.lines) == 4


def test_rows_are_cleared_before_the_spawn_check(game):
    # The full row 2 would block the spawn if it were not removed first.
    board = board_from({2: "1111111111"})
    state = make_state(board=board, piece=Z, x=0, y=1, locked=True)
    next_state, reward, terminated, _ = step(game, "Easy", state, 4)
    assert not terminated and reward == 0.0
    assert not np.asarray(next_state.board).any()


def test_truncation(game):
    state = make_state(piece=T, y=2, timestep=2999)
    _, _, terminated, truncated = step(game, "Easy", state, 4)
    assert truncated and not terminated
    _, _, _, truncated = step(game, "Easy", make_state(piece=T, y=2, timestep=8), 4, TetrisParams(9))
    assert truncated
    _, _, _, truncated = step(game, "Easy", make_state(piece=T, y=2, timestep=7), 4, TetrisParams(9))
    assert not truncated


@pytest.mark.parametrize("level", ["Easy", "Hard"])
def test_seven_bag_and_previews(game, level):
    """Every block of seven pieces from the first is a permutation; previews show what comes next."""
    env, _ = game[level]
    state = env.reset_state(jax.random.key(7), PARAMS)
    pieces, previews = [], []
    for i in range(29):
        pieces.append(int(state.piece))
        previews.append(list(np.asarray(env.previews(state))))
        # Pretend the piece just locked on an empty board, so the next step spawns.
        state = step(game, level, replace(state, locked=jnp.asarray(True)), 4, key=jax.random.key(i))[0]
    for start in range(0, 28, 7):
        assert sorted(pieces[start : start + 7]) == list(range(7))
    preview = env.difficulty.preview
    for i in range(len(pieces) - preview):
        assert previews[i] == pieces[i + 1 : i + 1 + preview]
    assert pieces[:7] != pieces[7:14] or pieces[7:14] != pieces[14:21]  # reshuffled from the step key


# ------------------------------------------------------------------------------------ returns
def test_returns_within_bounds_over_random_rollouts(game):
    """Random play from reset and from nearly cleared boards: returns in [-1, 1], as documented."""
    env, _ = game["Hard"]
    num_envs, num_steps = 64, 400

    def start(key):
        k_reset, k_lines = jax.random.split(key)
        state = env.reset_state(k_reset, PARAMS)
        # A well in the spawn columns over four full-but-two rows makes lines easy to clear,
        # and a random count of lines already cleared puts the win within reach.
        board = jnp.asarray(board_from({r: "1111..1111" for r in range(14, 20)}))
        return replace(state, board=board, lines=jax.random.randint(k_lines, (), 0, 10))

    @jax.jit
    def rollout(key):
        states = jax.vmap(start)(jax.random.split(key, num_envs))
        paid = states.lines.astype(jnp.float32) / 10  # lines already cleared count as paid

        def body(carry, key):
            states, returns = carry
            k_act, k_step, k_reset = jax.random.split(key, 3)
            actions = jax.random.randint(k_act, (num_envs,), 0, 5)
            step_keys = jax.random.split(k_step, num_envs)
            nexts, rewards, term, trunc = jax.vmap(env.step_state, in_axes=(0, 0, 0, None))(
                step_keys, states, actions, PARAMS)[:4]
            returns = returns + rewards
            done = term | trunc
            fresh = jax.vmap(env.reset_state, in_axes=(0, None))(jax.random.split(k_reset, num_envs), PARAMS)
            out = (returns, nexts.lines, term, rewards < -0.5, done)
            states = jax.vmap(select_tree)(done, fresh, nexts)
            return (states, jnp.where(done, 0.0, returns)), out

        _, out = jax.lax.scan(body, (states, paid), jax.random.split(key, num_steps))
        return out

    returns, lines, terminated, game_over, done = (np.asarray(a) for a in rollout(jax.random.key(1)))
    finished = returns[done]
    assert finished.size > 50
    assert finished.min() >= -1.0 - 1e-6 and finished.max() <= 1.0 + 1e-6
    # The return is min(lines, 10) / 10, minus 1 on game over.
    expected = np.minimum(lines[done], 10) / 10 - game_over[done]
    np.testing.assert_allclose(finished, expected, atol=1e-5)
    assert (game_over & done).any() and (terminated & ~game_over).any()  # both endings happened


# ---------------------------------------------------------------------------------- rendering
@pytest.fixture(scope="module")
def renders():
    mdp, pomdp = Tetris("Easy"), Tetris("Easy", partial_obs=True)
    return mdp, jax.jit(mdp.render), jax.jit(pomdp.render)


def cell_pixel(env, row, col):
    """(y, x) of a pixel inside board cell (row, col), clear of the cell's bevel."""
    left, top, _, _ = env.well_box
    cell = env.obs_size // 32
    return top + row * cell + 1, left + col * cell + 1


def test_pomdp_hides_the_stack_but_not_the_piece(renders):
    env, render_mdp, render_pomdp = renders
    board = board_from({19: "3.........", 10: ".....7...."})
    state = make_state(board=board, piece=O, x=5, y=3, timestep=4)
    mdp, pomdp = np.asarray(render_mdp(state)), np.asarray(render_pomdp(state))
    assert mdp.shape == (128, 128, 3) and mdp.dtype == np.uint8
    for row, col, piece in ((19, 0, T), (10, 5, L)):
        assert tuple(mdp[cell_pixel(env, row, col)]) == PIECE_COLORS[piece]
        assert tuple(pomdp[cell_pixel(env, row, col)]) == BLACK
    for row, col in ((4, 6), (4, 7), (5, 6), (5, 7)):  # the falling O
        assert tuple(mdp[cell_pixel(env, row, col)]) == PIECE_COLORS[O]
        assert tuple(pomdp[cell_pixel(env, row, col)]) == PIECE_COLORS[O]
    # Elsewhere the twins agree: only the two hidden cells differ.
    differ = np.any(mdp != pomdp, axis=2)
    assert differ.sum() == 2 * (env.obs_size // 32) ** 2
    # At t = 0 the POMDP shows the stack too.
    np.testing.assert_array_equal(render_pomdp(replace(state, timestep=jnp.int32(0))), mdp)


def test_full_rows_flash_in_both_twins(renders):
    env, render_mdp, render_pomdp = renders
    board = board_from({19: "1234567123", 18: "1........."})
    state = make_state(board=board, piece=T, y=4)
    for frame in (np.asarray(render_mdp(state)), np.asarray(render_pomdp(state))):
        assert all(tuple(frame[cell_pixel(env, 19, c)]) == WHITE for c in range(COLS))
        assert tuple(frame[cell_pixel(env, 18, 1)]) == BLACK


def test_previews_show_the_next_pieces(renders):
    env, render_mdp, _ = renders
    bag = [J, O, I, L, T, S, Z, J, O, I, L, T, S, Z]
    frame = np.asarray(render_mdp(make_state(bag=bag, bag_index=5, y=8)))  # S falls; Z, J, O next
    left, top, right, _ = env.preview_box
    slot = 12  # 2 cells + the gap
    for i, piece in enumerate((Z, J, O)):
        colors = {tuple(c) for c in frame[top + i * slot : top + (i + 1) * slot, left:right].reshape(-1, 3)}
        shown = [k for k, color in enumerate(PIECE_COLORS) if color in colors]
        assert shown == [piece], i


def test_score_shows_the_lines(renders):
    env, render_mdp, _ = renders
    band = slice(0, 16)
    zero = np.asarray(render_mdp(make_state(lines=0)))[band]
    seven = np.asarray(render_mdp(make_state(lines=7)))[band]
    for frame in (zero, seven):
        assert np.all(frame == Tetris.score_color, axis=2).sum() > 10
    assert (zero != seven).any()
    # The band is the HUD's score, up to the most lines a game can reach (9 + 4).
    thirteen = np.asarray(render_mdp(make_state(lines=13)))[band]
    np.testing.assert_array_equal(thirteen, np.asarray(env.draw_score(env.frame(), 13))[band])
    # The band holds only the score: background or score colour.
    lit = np.all(seven == Tetris.score_color, axis=2) | np.all(seven == Tetris.background_color, axis=2)
    assert lit.all()


def test_render_256():
    env = Tetris("Hard", obs_size=256)
    board = board_from({19: "......3..."})
    frame = np.asarray(jax.jit(env.render)(make_state(board=board, piece=I, y=0)))
    assert frame.shape == (256, 256, 3)
    assert tuple(frame[cell_pixel(env, 19, 6)]) == PIECE_COLORS[T]
    assert tuple(frame[cell_pixel(env, 1, 5)]) == PIECE_COLORS[I]
    assert tuple(frame[cell_pixel(env, 2, 5)]) == BLACK
