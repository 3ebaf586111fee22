"""MineSweeper rules and pixels, from hand-built states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments import draw_utils, font
from popgym_arcade.environments.minesweeper import MineSweeper, MineSweeperState, neighbour_counts
from tests.environments.harness import jit_step_state

UP, DOWN, LEFT, RIGHT, REVEAL = range(5)
EASY = MineSweeper.difficulties["Easy"]
B = EASY.board_size
MINES = [(0, 0), (2, 2)]  # (row, col) on the 4 x 4 Easy board
SAFE = [(r, c) for r in range(B) for c in range(B) if (r, c) not in MINES]


def board(cells, size=B):
    mask = np.zeros((size, size), dtype=bool)
    for r, c in cells:
        mask[r, c] = True
    return jnp.asarray(mask)


def make_state(revealed=(), cursor=(3, 3), repeats=0, timestep=1, mines=MINES, size=B):
    return MineSweeperState(
        cursor_x=jnp.int32(cursor[0]),
        cursor_y=jnp.int32(cursor[1]),
        mines=board(mines, size),
        revealed=board(revealed, size),
        repeats=jnp.int32(repeats),
        timestep=jnp.int32(timestep),
    )


@pytest.fixture(scope="module")
def env():
    return MineSweeper("Easy")


@pytest.fixture(scope="module")
def step(env):
    return jit_step_state(env)


@pytest.fixture(scope="module")
def render(env):
    return jax.jit(env.render)


@pytest.fixture(scope="module")
def render_pomdp():
    return jax.jit(MineSweeper("Easy", partial_obs=True).render)


def interior(frame, layout, x, y):
    x0, y0, x1, y1 = layout.interior(x, y)
    return np.asarray(frame)[y0:y1, x0:x1]


# ------------------------------------------------------------------------------ difficulty
@pytest.mark.parametrize(
    "level, size, mines, max_steps, repeat_limit",
    [("Easy", 4, 2, 32, 8), ("Medium", 6, 6, 72, 18), ("Hard", 8, 10, 128, 32)],
)
def test_difficulty_table(level, size, mines, max_steps, repeat_limit):
    d = MineSweeper.difficulties[level]
    assert (d.board_size, d.num_mines, d.max_steps, d.repeat_limit) == (size, mines, max_steps, repeat_limit)
    assert d.max_steps == 2 * size**2 and d.repeat_limit == size**2 // 2
    assert d.num_safe == size**2 - mines
    assert d.safe_reward == pytest.approx(1 / (size**2 - mines))
    assert d.repeat_penalty == pytest.approx(1 / repeat_limit)


# ----------------------------------------------------------------------------------- rules
def test_neighbour_counts_include_the_cell_itself():
    mines = np.zeros((5, 5), dtype=bool)
    mines[0, 0] = mines[0, 1] = mines[3, 3] = True
    expected = np.zeros((5, 5), dtype=int)
    for r in range(5):
        for c in range(5):
            expected[r, c] = mines[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].sum()
    np.testing.assert_array_equal(neighbour_counts(jnp.asarray(mines)), expected)
    assert expected[0, 0] == 2 and expected[3, 3] == 1 and expected[4, 4] == 1


@pytest.mark.parametrize(
    "cursor, action, expected",
    [
        ((1, 1), UP, (1, 0)),
        ((1, 1), DOWN, (1, 2)),
        ((1, 1), LEFT, (0, 1)),
        ((1, 1), RIGHT, (2, 1)),
        ((0, 0), UP, (0, 0)),
        ((0, 0), LEFT, (0, 0)),
        ((B - 1, B - 1), DOWN, (B - 1, B - 1)),
        ((B - 1, B - 1), RIGHT, (B - 1, B - 1)),
    ],
)
def test_moves_are_clamped_and_free(step, cursor, action, expected):
    state = make_state(revealed=[(1, 1)], cursor=cursor, timestep=4)
    nxt, reward, terminated, truncated, info = step(state, action)
    assert (int(nxt.cursor_x), int(nxt.cursor_y)) == expected
    assert float(reward) == 0.0 and not terminated and not truncated and info == {}
    assert int(nxt.timestep) == 5
    np.testing.assert_array_equal(nxt.revealed, state.revealed)


@pytest.mark.parametrize("action", [-1, 5, 9, 1000])
def test_out_of_range_actions_are_no_ops(step, action):
    state = make_state(revealed=[(3, 3)], cursor=(3, 3), repeats=1, timestep=7)
    nxt, reward, terminated, truncated, _ = step(state, action)
    assert float(reward) == 0.0 and not terminated and not truncated
    assert int(nxt.timestep) == 8
    for name in ("cursor_x", "cursor_y", "mines", "revealed", "repeats"):
        np.testing.assert_array_equal(getattr(nxt, name), getattr(state, name))


def test_reveal_safe_then_repeat(step):
    state = make_state(cursor=(3, 3))
    state, reward, terminated, _, _ = step(state, REVEAL)
    assert float(reward) == pytest.approx(1 / 14) and not terminated
    assert bool(state.revealed[3, 3]) and int(state.safe_revealed) == 1 and int(state.repeats) == 0
    before = state
    state, reward, terminated, _, _ = step(state, REVEAL)
    assert float(reward) == pytest.approx(-1 / EASY.repeat_limit) and not terminated
    np.testing.assert_array_equal(state.revealed, before.revealed)
    assert int(state.repeats) == 1 and int(state.timestep) == 3


def test_revealing_a_mine_ends_the_game_without_reward(step):
    state = make_state(revealed=[(3, 3)], cursor=(2, 2))
    nxt, reward, terminated, truncated, _ = step(state, REVEAL)
    assert float(reward) == 0.0 and bool(terminated) and not truncated
    assert bool(nxt.revealed[2, 2]) and int(nxt.safe_revealed) == 1


def test_last_safe_cell_wins(step):
    state = make_state(revealed=SAFE[:-1], cursor=(3, 3))  # SAFE[-1] is row 3, col 3
    nxt, reward, terminated, truncated, _ = step(state, REVEAL)
    assert float(reward) == pytest.approx(1 / 14) and bool(terminated) and not truncated
    assert int(nxt.safe_revealed) == EASY.num_safe


def test_repeat_limit_terminates_on_the_post_step_count(step):
    state = make_state(revealed=[(1, 1)], cursor=(1, 1), repeats=EASY.repeat_limit - 2)
    nxt, _, terminated, _, _ = step(state, REVEAL)
    assert not terminated and int(nxt.repeats) == EASY.repeat_limit - 1
    nxt, reward, terminated, truncated, _ = step(nxt, REVEAL)
    assert bool(terminated) and not truncated and int(nxt.repeats) == EASY.repeat_limit
    assert float(reward) == pytest.approx(-1 / EASY.repeat_limit)


def test_truncation_on_the_last_step_reveals_included(step):
    _, _, terminated, truncated, _ = step(make_state(timestep=EASY.max_steps - 2), UP)
    assert not terminated and not truncated
    _, _, terminated, truncated, _ = step(make_state(timestep=EASY.max_steps - 1), UP)
    assert not terminated and bool(truncated)
    # No lag: a reveal on the last step truncates too, and pays.
    _, reward, terminated, truncated, _ = step(make_state(cursor=(0, 3), timestep=EASY.max_steps - 1), REVEAL)
    assert float(reward) == pytest.approx(1 / 14) and not terminated and bool(truncated)


def test_always_revealing_returns_first_reveal_minus_one(env):
    """The worst episodes: R repeats after one reveal; they terminate on the R-th repeat."""
    limit = EASY.repeat_limit

    def episode(cursor):
        state = make_state(cursor=cursor)

        def body(state, _):
            action = jnp.int32(REVEAL)
            state, reward, terminated, _, _ = env.step_state(jax.random.key(0), state, action, None)
            return state, (reward, terminated)

        return jax.lax.scan(body, state, None, limit + 1)[1]

    rewards, terminated = jax.jit(episode)(jnp.asarray((3, 3)))
    assert bool(terminated[-1]) and not bool(terminated[:-1].any())
    assert float(rewards.sum()) == pytest.approx(1 / 14 - 1, abs=1e-5)
    # Starting on a mine ends at once, with return 0.
    rewards, terminated = jax.jit(episode)(jnp.asarray((0, 0)))
    assert bool(terminated[0]) and float(rewards[0]) == 0.0


@pytest.mark.parametrize("level", ["Easy", "Hard"])
def test_random_rollout_returns_stay_in_bounds(level):
    env = MineSweeper(level)
    num_envs, num_steps = 64, 2 * env.difficulty.max_steps

    def rollout(key):
        keys = jax.random.split(key, num_envs + 1)
        state = jax.vmap(env.reset_state, in_axes=(0, None))(keys[1:], None)

        def body(carry, key):
            state, running = carry
            k_act, k_fire, k_step = jax.random.split(key, 3)
            # Reveal more or less often by env, so that every way of ending happens.
            actions = jnp.where(
                jax.random.uniform(k_fire, (num_envs,)) < jnp.linspace(0.0, 0.9, num_envs),
                REVEAL,
                jax.random.randint(k_act, (num_envs,), 0, 4),
            )
            step_keys = jax.random.split(k_step, num_envs)
            _, state, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                step_keys, state, actions, None
            )
            running = running + reward
            done = terminated | truncated
            return (state, jnp.where(done, 0.0, running)), (running, done, terminated, truncated)

        return jax.lax.scan(body, (state, jnp.zeros(num_envs)), jax.random.split(keys[0], num_steps))[1]

    returns, done, terminated, truncated = jax.jit(rollout)(jax.random.key(1))
    finished = np.asarray(returns)[np.asarray(done)]
    assert np.asarray(terminated).any() and np.asarray(truncated).any()
    assert finished.min() >= -1 - 1e-5 and finished.max() <= 1 + 1e-5
    assert np.asarray(returns).min() >= -1 - 1e-5


# ----------------------------------------------------------------------------------- reset
def test_reset_mines_and_cursor_are_uniform():
    env = MineSweeper("Hard")
    size, mines = env.difficulty.board_size, env.difficulty.num_mines
    states = jax.jit(jax.vmap(lambda k: env.reset_state(k, None)))(jax.random.split(jax.random.key(2), 4000))
    np.testing.assert_array_equal(states.mines.sum(axis=(1, 2)), mines)
    assert not bool(states.revealed.any() | states.repeats.any() | states.timestep.any())
    np.testing.assert_allclose(np.asarray(states.mines).mean(axis=0), mines / size**2, atol=0.03)
    for coord in (states.cursor_x, states.cursor_y):
        counts = np.bincount(np.asarray(coord), minlength=size)
        assert len(counts) == size and counts.min() > 350  # 500 expected per row/column


# ---------------------------------------------------------------------------------- render
def glyph_offsets(mask, digit, scale):
    """The offsets at which ``mask`` is exactly the digit's glyph at ``scale``."""
    glyph = np.kron(font.glyph(str(digit)), np.ones((scale, scale), dtype=bool))
    n, g = mask.shape[0], glyph.shape[0]
    found = []
    for oy in range(n - g + 1):
        for ox in range(n - g + 1):
            placed = np.zeros_like(mask)
            placed[oy : oy + g, ox : ox + g] = glyph
            if (placed == mask).all():
                found.append((oy, ox))
    return found


@pytest.mark.parametrize("level, scale", [("Easy", 3), ("Medium", 2), ("Hard", 1)])
def test_digits_fit_their_cells_in_one_glyph(level, scale):
    env = MineSweeper(level)
    lay = env.layout
    for digit in range(10):
        plain = env.tiles[1 + digit, lay.line :, lay.line :]
        on_cursor = env.tiles[env.num_kinds + 1 + digit, lay.line :, lay.line :]
        white = (plain == env.digit_color).all(axis=-1)
        black = (on_cursor == env.cursor_digit_color).all(axis=-1)
        np.testing.assert_array_equal(white, black)  # the same glyph on and off the cursor
        (oy, ox), = glyph_offsets(white, digit, scale)
        # A margin on every side: the digit stays inside its cell.
        assert min(oy, ox) >= 1 and max(oy, ox) + 5 * scale <= lay.cell - 1
    # Hidden tiles are blank cells.
    assert (env.tiles[0, lay.line :, lay.line :] == env.cell_color).all()


def test_first_frame_twins_are_equal(env, render, render_pomdp):
    state = env.reset_state(jax.random.key(4), None)
    np.testing.assert_array_equal(render(state), render_pomdp(state))
    shown = make_state(revealed=[(0, 1), (3, 0)], timestep=0)
    np.testing.assert_array_equal(render(shown), render_pomdp(shown))
    assert (np.asarray(render(shown)) != np.asarray(render(make_state(timestep=0)))).any()


def test_numbers_and_what_the_pomdp_hides(env, render, render_pomdp):
    lay = env.layout
    counts = np.asarray(neighbour_counts(board(MINES)))
    # Revealed: (x=1, y=0) count 1, (x=1, y=1) count 2, (x=3, y=3) count 1 under the cursor.
    state = make_state(revealed=[(0, 1), (1, 1), (3, 3)], cursor=(3, 3), timestep=6)
    mdp, pomdp = np.asarray(render(state)), np.asarray(render_pomdp(state))
    assert mdp.shape == (128, 128, 3) and mdp.dtype == np.uint8
    for x, y in ((1, 0), (1, 1)):
        white = (interior(mdp, lay, x, y) == env.digit_color).all(axis=-1)
        assert len(glyph_offsets(white, counts[y, x], 3)) == 1
        assert (interior(pomdp, lay, x, y) == env.cell_color).all()  # hidden in the POMDP
    cursor = interior(mdp, lay, 3, 3)
    np.testing.assert_array_equal(cursor[0, 0], env.cursor_color)
    black = (cursor == env.cursor_digit_color).all(axis=-1)
    assert len(glyph_offsets(black, counts[3, 3], 3)) == 1
    np.testing.assert_array_equal(interior(pomdp, lay, 3, 3), cursor)  # same glyph in both twins
    for x, y in ((0, 0), (2, 2), (0, 3)):  # hidden cells, mines included, are blank
        assert (interior(mdp, lay, x, y) == env.cell_color).all()


def test_score_shows_the_safe_cells_revealed(env, render):
    frame = np.asarray(render(make_state(revealed=SAFE[:11] + [(0, 0)], cursor=(0, 0))))
    top = env.layout.top
    np.testing.assert_array_equal(frame[:top], np.asarray(env.draw_score(env.frame(), jnp.int32(11)))[:top])
    assert (frame[:top] == env.score_color).all(axis=-1).any()


def test_board_matches_the_tile_grid(env):
    kinds = np.asarray(jax.random.randint(jax.random.key(5), (B, B), 0, env.num_kinds))
    ids = kinds + env.num_kinds * np.asarray(board([(2, 1)]))
    expected = draw_utils.grid_image(env.tiles, jnp.asarray(ids))
    np.testing.assert_array_equal(env.board_image(jnp.asarray(kinds), jnp.int32(1), jnp.int32(2)), expected)


def test_256_pixels():
    env = MineSweeper("Hard", obs_size=256)
    state = make_state(revealed=[(7, 7)], mines=[(6, 6), (6, 7)], cursor=(0, 0), timestep=2, size=8)
    frame = np.asarray(env.render(state))
    assert frame.shape == (256, 256, 3) and env.layout.line == 2
    white = (interior(frame, env.layout, 7, 7) == env.digit_color).all(axis=-1)
    assert len(glyph_offsets(white, 2, 3)) == 1
    np.testing.assert_array_equal(interior(frame, env.layout, 0, 0)[0, 0], env.cursor_color)
