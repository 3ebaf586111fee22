"""AutoEncode rules and pixels, from hand-built states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments import autoencode as ae
from popgym_arcade.environments.autoencode import AutoEncode, AutoEncodeState
from popgym_arcade.environments.cards import CARD_HEIGHT, CARD_WIDTH, shuffled_deck
from popgym_arcade.environments.draw_utils import SUIT_COLORS
from tests.environments.harness import jit_step_state

UP, DOWN, LEFT, RIGHT, FIRE = range(5)
HEART, SPADE, CLUB, DIAMOND = range(4)
RED, BLACK = np.array(SUIT_COLORS[HEART]), np.array(SUIT_COLORS[SPADE])
EASY = AutoEncode.difficulties["Easy"]
N = EASY.num_cards
# A fixed Easy sequence: heart, spade, club, diamond, repeated (the last card is a spade).
CARDS = [i % 4 for i in range(N)]


def make_state(timestep=1, selector=HEART, played=0, score=0, cards=CARDS):
    return AutoEncodeState(
        cards=jnp.asarray(cards, jnp.int32),
        selector=jnp.int32(selector),
        played=jnp.int32(played),
        score=jnp.int32(score),
        timestep=jnp.int32(timestep),
    )


@pytest.fixture(scope="module")
def env():
    return AutoEncode("Easy")


@pytest.fixture(scope="module")
def pomdp():
    return AutoEncode("Easy", partial_obs=True)


@pytest.fixture(scope="module")
def step(env):
    return jit_step_state(env)


@pytest.fixture(scope="module")
def render(env):
    return jax.jit(env.render)


@pytest.fixture(scope="module")
def render_pomdp(pomdp):
    return jax.jit(pomdp.render)


def region(env, frame, x, y, w, h):
    """Pixels of the box at board point (x, y), size (w, h), all at 128-pixel units."""
    left, top = env.board_point(x, y)
    s = env.scale
    return np.asarray(frame)[top : top + h * s, left : left + w * s]


def current_card(env, frame):
    return region(env, frame, ae.CARD_X, ae.CARD_Y, CARD_WIDTH, CARD_HEIGHT)


def palette_card(env, frame, position):
    x = ae.PALETTE_X + position * (CARD_WIDTH + ae.PALETTE_GAP)
    return region(env, frame, x, ae.CARD_Y, CARD_WIDTH, CARD_HEIGHT)


def slot(env, frame, i):
    """Pixels of history slot i."""
    x, y = env.history_origin
    size = env.history.slot
    r, c = divmod(i, env.history.cols)
    return np.asarray(frame)[y + r * size : y + (r + 1) * size, x + c * size : x + (c + 1) * size]


def has(pixels, color):
    return bool(np.any(np.all(pixels == np.asarray(color, np.uint8), axis=-1)))


def has_suit(pixels):
    return has(pixels, RED) or has(pixels, BLACK)


# ------------------------------------------------------------------------------ difficulty
@pytest.mark.parametrize(
    "level, decks, cards, max_steps, suit_counts",
    [
        ("Easy", 1, 26, 260, (7, 7, 6, 6)),
        ("Medium", 2, 52, 520, (13, 13, 13, 13)),
        ("Hard", 3, 78, 780, (20, 20, 19, 19)),
    ],
)
def test_difficulty_table_and_reset(level, decks, cards, max_steps, suit_counts):
    env = AutoEncode(level)
    d = env.difficulty
    assert (d.num_decks, d.num_cards, d.max_steps) == (decks, cards, max_steps)
    assert d.max_steps == 10 * d.num_cards
    states = jax.jit(jax.vmap(env.reset_state))(jax.random.split(jax.random.key(2), 4))
    for deck in np.asarray(states.cards):
        assert tuple(np.bincount(deck, minlength=4)) == suit_counts
    assert len({tuple(deck) for deck in np.asarray(states.cards)}) == 4, "different keys, different sequences"
    for field in (states.selector, states.played, states.score, states.timestep):
        assert np.all(np.asarray(field) == 0)


def test_shuffle_is_uniform():
    """Every card is equally likely at every position (the rank shuffle replaces a sort)."""
    n, draws = 26, 4000
    decks = jax.jit(jax.vmap(lambda key: shuffled_deck(key, n, n)))(
        jax.random.split(jax.random.key(9), draws)
    )
    decks = np.asarray(decks)
    assert all(sorted(deck) == list(range(n)) for deck in decks[:50]), "a permutation"
    where_first = np.argmax(decks == 0, axis=1)
    counts = np.bincount(where_first, minlength=n)
    expected = draws / n
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 60, chi2  # 25 degrees of freedom: P(chi2 > 60) < 1e-4


# ----------------------------------------------------------------------------------- rules
@pytest.mark.parametrize("timestep", [3, N + 3], ids=["watch", "play"])
def test_left_and_right_turn_the_selector(step, timestep):
    assert int(step(make_state(timestep, selector=HEART), LEFT)[0].selector) == SPADE
    assert int(step(make_state(timestep, selector=DIAMOND), LEFT)[0].selector) == HEART
    assert int(step(make_state(timestep, selector=HEART), RIGHT)[0].selector) == DIAMOND
    assert int(step(make_state(timestep, selector=CLUB), RIGHT)[0].selector) == SPADE


@pytest.mark.parametrize("action", [UP, DOWN, FIRE, 5, -1, 100])
def test_watch_phase_plays_nothing(step, action):
    state, reward, terminated, truncated, _ = step(make_state(timestep=N - 1, selector=CLUB), action)
    assert (int(state.selector), int(state.played), int(state.score), int(state.timestep)) == (CLUB, 0, 0, N)
    assert float(reward) == 0.0 and not terminated and not truncated


@pytest.mark.parametrize("action", [UP, DOWN, 5, -1, 100])
def test_play_phase_plays_only_on_fire(step, action):
    # The published game played a card on the first play step without a fire; not here.
    state, reward, terminated, truncated, _ = step(make_state(timestep=N, selector=SPADE), action)
    assert (int(state.selector), int(state.played), int(state.score), int(state.timestep)) == (
        SPADE,
        0,
        0,
        N + 1,
    )
    assert float(reward) == 0.0 and not terminated and not truncated


def test_cards_are_played_back_in_reverse(step):
    # The last card shown (CARDS[N-1]) is a spade; then a heart (CARDS[N-2]).
    assert CARDS[N - 1] == SPADE and CARDS[N - 2] == HEART
    state, reward, terminated, _, _ = step(make_state(timestep=N, selector=SPADE), FIRE)
    assert float(reward) == pytest.approx(1 / N) and (int(state.played), int(state.score)) == (1, 1)
    assert int(state.selector) == SPADE and not terminated
    state, reward, *_ = step(state, FIRE)
    assert float(reward) == 0.0 and (int(state.played), int(state.score)) == (2, 1), (
        "a wrong card still counts as played"
    )
    state, reward, *_ = step(make_state(timestep=N + 5, selector=HEART, played=1, score=1), FIRE)
    assert float(reward) == pytest.approx(1 / N) and int(state.score) == 2


def test_last_card_terminates_at_once(step):
    # The N-th card played back is CARDS[0], a heart.
    state, reward, terminated, truncated, _ = step(make_state(N + 40, HEART, played=N - 1, score=N - 1), FIRE)
    assert int(state.played) == N and float(reward) == pytest.approx(1 / N)
    assert bool(terminated) and not truncated


def test_step_limit_truncates(step):
    assert not step(make_state(timestep=EASY.max_steps - 2), UP)[3]
    _, _, terminated, truncated, _ = step(make_state(timestep=EASY.max_steps - 1), UP)
    assert bool(truncated) and not terminated


def reference_step(s, action):
    """The rules, in plain Python, on a dict state."""
    s = dict(s)
    s["selector"] = (s["selector"] + (action == LEFT) - (action == RIGHT)) % 4
    reward = 0.0
    if action == FIRE and s["timestep"] >= N and s["played"] < N:
        if CARDS[N - 1 - s["played"]] == s["selector"]:
            reward = 1 / N
            s["score"] += 1
        s["played"] += 1
    s["timestep"] += 1
    return s, reward, s["played"] == N, s["timestep"] >= EASY.max_steps


def test_matches_reference_step_by_step(env):
    actions = np.random.default_rng(0).choice([UP, DOWN, LEFT, LEFT, RIGHT, FIRE, FIRE, 6, -2], size=140)

    @jax.jit
    def run(state, actions):
        def body(state, action):
            state, reward, terminated, truncated, _ = env.step_state(jax.random.key(0), state, action, None)
            return state, (state, reward, terminated, truncated)

        return jax.lax.scan(body, state, actions)[1]

    states, rewards, terms, truncs = jax.device_get(
        run(make_state(timestep=0), jnp.asarray(actions, jnp.int32))
    )
    ref = {"selector": 0, "played": 0, "score": 0, "timestep": 0}
    for t, action in enumerate(actions):
        ref, reward, terminated, truncated = reference_step(ref, int(action))
        got = {k: int(getattr(states, k)[t]) for k in ref}
        assert got == ref, f"step {t}, action {action}"
        assert rewards[t] == pytest.approx(reward) and terms[t] == terminated and truncs[t] == truncated
    assert ref["score"] > 0 and ref["played"] > 10


# -------------------------------------------------------------------------------- returns
def test_returns_within_bounds_and_perfect_play_scores_one(env):
    """Random and perfect play over vmapped episodes: returns in [0, 1], perfect play gets 1."""
    num_envs, num_steps = 16, 4 * N

    def perfect(state):
        target = state.cards[jnp.clip(N - 1 - state.played, 0, N - 1)]
        turn = jnp.where((state.selector + 1) % 4 == target, LEFT, RIGHT)
        return jnp.where(state.timestep < N, UP, jnp.where(state.selector == target, FIRE, turn))

    @jax.jit
    def rollout(key):
        _, state = jax.vmap(env.reset)(jax.random.split(key, num_envs))

        def body(carry, key):
            state, running = carry
            act_key, step_key = jax.random.split(key)
            random_actions = jax.random.randint(act_key, (num_envs,), -1, 6)
            actions = jnp.where(
                jnp.arange(num_envs) < num_envs // 2, jax.vmap(perfect)(state), random_actions
            )
            _, state, reward, term, trunc, _ = jax.vmap(env.step)(
                jax.random.split(step_key, num_envs), state, actions
            )
            running = running + reward
            done = term | trunc
            return (state, jnp.where(done, 0.0, running)), (jnp.where(done, running, jnp.nan), term, running)

        return jax.lax.scan(body, (state, jnp.zeros(num_envs)), jax.random.split(key, num_steps))[1]

    returns, terminated, running = jax.device_get(rollout(jax.random.key(1)))
    ended = ~np.isnan(returns)
    assert np.all((returns[ended] >= 0) & (returns[ended] <= 1 + 1e-6))
    assert np.all((running >= 0) & (running <= 1 + 1e-6)), "unfinished episodes too"
    half = num_envs // 2
    assert np.all(ended[:, :half].sum(axis=0) >= 1), "perfect play finishes within 4N steps"
    np.testing.assert_allclose(returns[:, :half][ended[:, :half]], 1.0, atol=1e-5)
    assert np.all(terminated[:, :half][ended[:, :half]])


# ------------------------------------------------------------------------------- rendering
def test_watch_phase_shows_the_current_card(render, render_pomdp, env):
    for frame in (render(make_state(timestep=1)), render_pomdp(make_state(timestep=1))):  # CARDS[1]: a spade
        card = current_card(env, frame)
        assert has(card, BLACK) and not has(card, RED)
    for frame in (render(make_state(timestep=3)), render_pomdp(make_state(timestep=3))):  # a diamond
        assert has(current_card(env, frame), RED)
    assert not has_suit(current_card(env, render(make_state(timestep=N)))), "no card in the play phase"


@pytest.mark.parametrize("selector", range(4))
def test_palette_marks_the_selector(render_pomdp, env, selector):
    frame = render_pomdp(make_state(timestep=N + 2, selector=selector))
    for position, suit in enumerate(ae.PALETTE_ORDER):
        card = palette_card(env, frame, position)
        assert has(card, RED) == (suit in (HEART, DIAMOND)) and has(card, BLACK) == (suit in (SPADE, CLUB))
        assert has(card, ae.SELECTED_FACE) == (suit == selector)


def test_mdp_shows_history_and_pomdp_hides_it(render, render_pomdp, env):
    state = make_state(timestep=5)
    mdp, pomdp = np.asarray(render(state)), np.asarray(render_pomdp(state))
    for i in range(5):
        color = RED if CARDS[i] in (HEART, DIAMOND) else BLACK
        assert has(slot(env, mdp, i), color), f"MDP shows card {i}"
        assert not has_suit(slot(env, pomdp, i)), f"POMDP hides card {i}"
    assert not has_suit(slot(env, mdp, 5)), "the current card is not in the history yet"
    assert not np.array_equal(slot(env, mdp, 0), slot(env, mdp, 3)), "hearts and diamonds differ"
    assert not np.array_equal(slot(env, mdp, 1), slot(env, mdp, 2)), "spades and clubs differ"


def test_mdp_marks_the_next_card_to_play(render, render_pomdp, env):
    frame = np.asarray(render(make_state(timestep=N + 4, played=3)))
    target = N - 1 - 3
    for i in range(N):
        assert has_suit(slot(env, frame, i)), "the play phase shows every card"
        assert has(slot(env, frame, i), ae.TARGET_COLOR) == (i == target)
    pomdp = np.asarray(render_pomdp(make_state(timestep=N + 4, played=3)))
    assert not has(slot(env, pomdp, target), ae.TARGET_COLOR) and not has_suit(slot(env, pomdp, target))


def test_twins_equal_at_t0(render, render_pomdp, env):
    state = env.reset_state(jax.random.key(7))
    np.testing.assert_array_equal(render(state), render_pomdp(state))
    state = make_state(timestep=0, selector=CLUB, played=4, score=2)
    np.testing.assert_array_equal(render(state), render_pomdp(state))


def test_score_shows(render, env):
    band = lambda frame: np.asarray(frame)[2:14, 16:112]
    zero, nine = band(render(make_state(score=0))), band(render(make_state(score=9)))
    assert has(nine, env.score_color) and not np.array_equal(zero, nine)


def test_256_pixels():
    env = AutoEncode("Hard", obs_size=256)
    cards = [i % 4 for i in range(78)]
    frame = np.asarray(jax.jit(env.render)(make_state(timestep=4, selector=CLUB, cards=cards)))
    assert frame.shape == (256, 256, 3) and env.history.slot == 18
    for i, color in enumerate((RED, BLACK, BLACK, RED)):
        assert has(slot(env, frame, i), color)
    assert not has_suit(slot(env, frame, 4))
    assert has(current_card(env, frame), RED)  # card 4: a heart
    assert has(palette_card(env, frame, ae.PALETTE_ORDER.index(CLUB)), ae.SELECTED_FACE)
