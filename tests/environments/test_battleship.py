"""BattleShip rules and pixels, from hand-built states."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments import draw_utils
from popgym_arcade.environments.battleship import BattleShip, BattleShipState, place_ships
from tests.environments.harness import jit_step_state

UP, DOWN, LEFT, RIGHT, FIRE = range(5)
EASY = BattleShip.difficulties["Easy"]
B = EASY.board_size
# A fixed fleet on the Easy board: (row, col) cells of ships of 2, 3, 3 and 4.
FLEET = [(0, 0), (0, 1), (2, 2), (3, 2), (4, 2), (7, 5), (7, 6), (7, 7), (5, 0), (5, 1), (5, 2), (5, 3)]


def board(cells, size=B):
    mask = np.zeros((size, size), dtype=bool)
    for r, c in cells:
        mask[r, c] = True
    return jnp.asarray(mask)


def make_state(fired=(), cursor=(3, 3), repeats=0, timestep=1, ships=FLEET, size=B):
    return BattleShipState(
        cursor_x=jnp.int32(cursor[0]),
        cursor_y=jnp.int32(cursor[1]),
        ships=board(ships, size),
        fired=board(fired, size),
        repeats=jnp.int32(repeats),
        timestep=jnp.int32(timestep),
    )


@pytest.fixture(scope="module")
def env():
    return BattleShip("Easy")


@pytest.fixture(scope="module")
def pomdp():
    return BattleShip("Easy", partial_obs=True)


@pytest.fixture(scope="module")
def step(env):
    return jit_step_state(env)


@pytest.fixture(scope="module")
def render(env):
    return jax.jit(env.render)


@pytest.fixture(scope="module")
def render_pomdp(pomdp):
    return jax.jit(pomdp.render)


def interior(frame, layout, x, y):
    x0, y0, x1, y1 = layout.interior(x, y)
    return np.asarray(frame)[y0:y1, x0:x1]


# ------------------------------------------------------------------------------ difficulty
@pytest.mark.parametrize(
    "level, size, max_steps, repeat_limit",
    [("Easy", 8, 128, 32), ("Medium", 10, 200, 50), ("Hard", 12, 288, 72)],
)
def test_difficulty_table(level, size, max_steps, repeat_limit):
    d = BattleShip.difficulties[level]
    assert (d.board_size, d.max_steps, d.repeat_limit) == (size, max_steps, repeat_limit)
    assert d.max_steps == 2 * size**2 and d.repeat_limit == size**2 // 2
    assert d.ship_sizes == (2, 3, 3, 4) and d.hits_to_win == 12
    assert d.hit_reward == pytest.approx(1 / 12)
    assert d.repeat_penalty == pytest.approx(1 / repeat_limit)


# ----------------------------------------------------------------------------------- rules
@pytest.mark.parametrize(
    "cursor, action, expected",
    [
        ((3, 3), UP, (3, 2)),
        ((3, 3), DOWN, (3, 4)),
        ((3, 3), LEFT, (2, 3)),
        ((3, 3), RIGHT, (4, 3)),
        ((0, 0), UP, (0, 0)),
        ((0, 0), LEFT, (0, 0)),
        ((B - 1, B - 1), DOWN, (B - 1, B - 1)),
        ((B - 1, B - 1), RIGHT, (B - 1, B - 1)),
    ],
)
def test_moves_are_clamped_and_free(step, cursor, action, expected):
    state = make_state(fired=[(1, 1)], cursor=cursor, timestep=5)
    nxt, reward, terminated, truncated, info = step(state, action)
    assert (int(nxt.cursor_x), int(nxt.cursor_y)) == expected
    assert float(reward) == 0.0 and not terminated and not truncated and info == {}
    assert int(nxt.timestep) == 6
    np.testing.assert_array_equal(nxt.fired, state.fired)


@pytest.mark.parametrize("action", [-1, 5, 7, 1000])
def test_out_of_range_actions_are_no_ops(step, action):
    state = make_state(fired=[(3, 3)], cursor=(3, 3), repeats=2, timestep=9)
    nxt, reward, terminated, truncated, _ = step(state, action)
    assert float(reward) == 0.0 and not terminated and not truncated
    assert int(nxt.timestep) == 10
    for name in ("cursor_x", "cursor_y", "ships", "fired", "repeats"):
        np.testing.assert_array_equal(getattr(nxt, name), getattr(state, name))


def test_fire_hit_miss_and_repeat(step):
    # Hit: the ship cell at row 2, col 2 (x=2, y=2).
    state = make_state(cursor=(2, 2))
    state, reward, terminated, _, _ = step(state, FIRE)
    assert float(reward) == pytest.approx(1 / 12) and not terminated
    assert bool(state.fired[2, 2]) and int(state.hits) == 1 and int(state.repeats) == 0
    # Miss: one cell right, no ship.
    state, _, _, _, _ = step(state, RIGHT)
    state, reward, terminated, _, _ = step(state, FIRE)
    assert float(reward) == 0.0 and not terminated
    assert bool(state.fired[2, 3]) and int(state.hits) == 1
    # Repeat on the miss, then on the hit: a penalty each, nothing else changes.
    for cell in ((2, 3), (2, 2)):
        assert (int(state.cursor_y), int(state.cursor_x)) == cell
        before = state
        state, reward, terminated, _, _ = step(state, FIRE)
        assert float(reward) == pytest.approx(-1 / EASY.repeat_limit) and not terminated
        np.testing.assert_array_equal(state.fired, before.fired)
        assert int(state.hits) == 1 and int(state.repeats) == int(before.repeats) + 1
        state, _, _, _, _ = step(state, LEFT)
    assert int(state.timestep) == 1 + 7


def test_last_hit_wins(step):
    state = make_state(fired=FLEET[:-1] + [(6, 6)], cursor=(3, 5))  # last ship cell: row 5, col 3
    nxt, reward, terminated, truncated, _ = step(state, FIRE)
    assert float(reward) == pytest.approx(1 / 12)
    assert bool(terminated) and not truncated and int(nxt.hits) == 12


def test_repeat_limit_terminates_on_the_post_step_count(step):
    state = make_state(fired=[(3, 3)], cursor=(3, 3), repeats=EASY.repeat_limit - 2)
    nxt, reward, terminated, _, _ = step(state, FIRE)
    assert not terminated and int(nxt.repeats) == EASY.repeat_limit - 1
    nxt, reward, terminated, truncated, _ = step(nxt, FIRE)
    assert bool(terminated) and not truncated and int(nxt.repeats) == EASY.repeat_limit
    assert float(reward) == pytest.approx(-1 / EASY.repeat_limit)


def test_truncation_on_the_last_step(step):
    _, _, terminated, truncated, _ = step(make_state(timestep=EASY.max_steps - 2), UP)
    assert not terminated and not truncated
    _, _, terminated, truncated, _ = step(make_state(timestep=EASY.max_steps - 1), UP)
    assert not terminated and bool(truncated)
    # Winning on the last step pays and terminates (the base gives termination priority).
    state = make_state(fired=FLEET[:-1], cursor=(3, 5), timestep=EASY.max_steps - 1)
    _, reward, terminated, truncated, _ = step(state, FIRE)
    assert float(reward) == pytest.approx(1 / 12) and bool(terminated) and bool(truncated)


def test_always_firing_returns_exactly_minus_one_or_first_hit_minus_one(env):
    """The worst episode: R repeats; it terminates on the R-th, and the return is >= -1."""
    limit = EASY.repeat_limit

    def episode(cursor):
        state = make_state(cursor=cursor)

        def body(state, _):
            state, reward, terminated, _, _ = env.step_state(jax.random.key(0), state, jnp.int32(FIRE), None)
            return state, (reward, terminated)

        return jax.lax.scan(body, state, None, limit + 1)[1]

    rewards, terminated = jax.jit(jax.vmap(episode))(jnp.asarray([(4, 4), (2, 2)]))  # a miss, a hit
    np.testing.assert_array_equal(terminated[:, -1], True)
    np.testing.assert_array_equal(terminated[:, :-1], False)
    np.testing.assert_allclose(rewards.sum(axis=1), [-1.0, 1 / 12 - 1], atol=1e-5)
    assert float(rewards.sum(axis=1).min()) >= -1 - 1e-5


@pytest.mark.parametrize("level", ["Easy", "Hard"])
def test_random_rollout_returns_stay_in_bounds(level):
    env = BattleShip(level)
    num_envs, num_steps = 64, 2 * env.difficulty.max_steps

    def rollout(key):
        keys = jax.random.split(key, num_envs + 1)
        state = jax.vmap(env.reset_state, in_axes=(0, None))(keys[1:], None)

        def body(carry, key):
            state, running = carry
            k_act, k_fire, k_step = jax.random.split(key, 3)
            # Fire more or less often by env, so that both the repeat limit and the step limit happen.
            actions = jnp.where(
                jax.random.uniform(k_fire, (num_envs,)) < jnp.linspace(0.2, 0.95, num_envs),
                FIRE,
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
def test_reset_places_twelve_cells_and_the_cursor_anywhere(env):
    states = jax.jit(jax.vmap(lambda k: env.reset_state(k, None)))(jax.random.split(jax.random.key(2), 2000))
    np.testing.assert_array_equal(states.ships.sum(axis=(1, 2)), 12)  # no overlap
    assert not bool(states.fired.any()) and not bool(states.repeats.any()) and not bool(states.timestep.any())
    for coord in (states.cursor_x, states.cursor_y):
        counts = np.bincount(np.asarray(coord), minlength=B)
        assert len(counts) == B and counts.min() > 150  # 250 expected per row/column
    assert bool(states.ships.any(axis=0).all())  # every cell, corners included, can hold a ship


def test_a_ship_is_uniform_over_its_placements():
    size, length, samples = 8, 4, 20000
    place = jax.jit(jax.vmap(lambda k: place_ships(k, size, (length,))))
    ships = np.asarray(place(jax.random.split(jax.random.key(3), samples)))
    for mask in ships[:50]:
        rows, cols = np.nonzero(mask)
        assert len(rows) == length
        across = len(set(rows)) == 1 and np.ptp(cols) == length - 1
        down = len(set(cols)) == 1 and np.ptp(rows) == length - 1
        assert across or down
    # Exact cover probability of each cell under the uniform law over the 2 * 8 * 5 placements.
    expected = np.zeros((size, size))
    placements = 0
    for r, c in itertools.product(range(size), range(size - length + 1)):
        expected[r, c : c + length] += 1
        expected[c : c + length, r] += 1
        placements += 2
    np.testing.assert_allclose(ships.mean(axis=0), expected / placements, atol=0.006)


# ---------------------------------------------------------------------------------- render
def test_first_frame_twins_are_equal(env, render, render_pomdp):
    state = env.reset_state(jax.random.key(4), None)
    np.testing.assert_array_equal(render(state), render_pomdp(state))
    marked = make_state(fired=[(0, 0), (1, 1), (2, 2)], timestep=0)
    np.testing.assert_array_equal(render(marked), render_pomdp(marked))
    assert (np.asarray(render(marked)) != np.asarray(render(make_state(timestep=0)))).any()


def test_marks_cursor_and_what_the_pomdp_hides(env, render, render_pomdp):
    lay = env.layout
    # Hit at (x=0, y=0), miss at (x=4, y=1), cursor on a hit at (x=2, y=2).
    state = make_state(fired=[(0, 0), (1, 4), (2, 2)], cursor=(2, 2), timestep=3)
    mdp, pomdp = np.asarray(render(state)), np.asarray(render_pomdp(state))
    assert mdp.shape == (128, 128, 3) and mdp.dtype == np.uint8
    centre = lay.cell // 2
    hit, miss, cursor = interior(mdp, lay, 0, 0), interior(mdp, lay, 4, 1), interior(mdp, lay, 2, 2)
    np.testing.assert_array_equal(hit[centre, centre], env.hit_color)  # pure red, not blended
    assert (miss == env.miss_color).all(axis=-1).any() and not (miss == env.hit_color).all(axis=-1).any()
    np.testing.assert_array_equal(miss[centre, centre], env.cell_color)  # an O is hollow
    np.testing.assert_array_equal(cursor[0, 0], env.cursor_color)
    np.testing.assert_array_equal(cursor[centre, centre], env.hit_color)
    # The POMDP shows the cursor cell's mark only: the other fired cells look unfired.
    np.testing.assert_array_equal(interior(pomdp, lay, 2, 2), cursor)
    for x, y in ((0, 0), (4, 1)):
        assert (interior(pomdp, lay, x, y) == env.cell_color).all()
    blank = np.asarray(render_pomdp(make_state(fired=[(2, 2)], cursor=(2, 2), timestep=3)))
    top = lay.top  # the hit counts differ
    np.testing.assert_array_equal(pomdp[top:], blank[top:])


def test_ships_are_never_drawn(render, render_pomdp):
    for draw in (render, render_pomdp):
        np.testing.assert_array_equal(draw(make_state(ships=FLEET)), draw(make_state(ships=[(6, 6), (6, 7)])))


def test_score_shows_the_hits(env, render):
    state = make_state(fired=FLEET[:5], cursor=(7, 0))
    frame = render(state)
    expected = env.draw_score(env.frame(), jnp.int32(5))
    top = env.layout.top
    np.testing.assert_array_equal(np.asarray(frame)[:top], np.asarray(expected)[:top])
    assert (np.asarray(frame)[:top] == env.score_color).all(axis=-1).any()


def test_board_matches_the_tile_grid(env):
    kinds = np.asarray(jax.random.randint(jax.random.key(5), (B, B), 0, 3))
    ids = kinds + env.num_kinds * np.asarray(board([(6, 1)]))
    expected = draw_utils.grid_image(env.tiles, jnp.asarray(ids))
    np.testing.assert_array_equal(env.board_image(jnp.asarray(kinds), jnp.int32(1), jnp.int32(6)), expected)
    assert env.tiles.shape[0] == 2 * env.num_kinds


def test_256_pixels():
    env = BattleShip("Hard", obs_size=256)
    state = make_state(fired=[(11, 11)], ships=[(11, 11), (11, 10)], cursor=(0, 0), timestep=2, size=12)
    frame = np.asarray(env.render(state))
    assert frame.shape == (256, 256, 3) and env.layout.line == 2
    hit = interior(frame, env.layout, 11, 11)
    np.testing.assert_array_equal(hit[env.layout.cell // 2, env.layout.cell // 2], env.hit_color)
    np.testing.assert_array_equal(interior(frame, env.layout, 0, 0)[0, 0], env.cursor_color)
