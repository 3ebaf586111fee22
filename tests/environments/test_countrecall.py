"""CountRecall rules and pixels, from hand-built states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments import countrecall as cr
from popgym_arcade.environments.cards import CARD_HEIGHT, CARD_WIDTH
from popgym_arcade.environments.countrecall import CountRecall, CountRecallState
from popgym_arcade.environments.draw_utils import SUIT_COLORS
from tests.environments.harness import jit_step_state

UP, DOWN, LEFT, RIGHT, FIRE = range(5)
HEART, SPADE, CLUB, DIAMOND = range(4)
RED, BLACK = np.array(SUIT_COLORS[HEART]), np.array(SUIT_COLORS[SPADE])
EASY = CountRecall.difficulties["Easy"]
N = EASY.num_cards
# A fixed Easy deal: hearts and spades alternate in the value deck; the queries are 13 hearts, then 13 spades.
VALUES = [HEART, SPADE] * (N // 2)
QUERIES = [HEART] * (N // 2) + [SPADE] * (N // 2)


def make_state(dealt=0, answer=0, score=0, timestep=1, values=VALUES, queries=QUERIES):
    return CountRecallState(
        value_cards=jnp.asarray(values, jnp.int32),
        query_cards=jnp.asarray(queries, jnp.int32),
        dealt=jnp.int32(dealt),
        answer=jnp.int32(answer),
        score=jnp.int32(score),
        timestep=jnp.int32(timestep),
    )


@pytest.fixture(scope="module")
def env():
    return CountRecall("Easy")


@pytest.fixture(scope="module")
def pomdp():
    return CountRecall("Easy", partial_obs=True)


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


def slot(env, frame, i):
    """Pixels of history slot i."""
    x, y = env.history_origin
    size = env.history.slot
    r, c = divmod(i, env.history.cols)
    return np.asarray(frame)[y + r * size : y + (r + 1) * size, x + c * size : x + (c + 1) * size]


def has(pixels, color):
    return bool(np.any(np.all(pixels == np.asarray(color, np.uint8), axis=-1)))


# ------------------------------------------------------------------------------ difficulty
@pytest.mark.parametrize(
    "level, decks, cards, types, max_steps",
    [("Easy", 1, 26, 2, 126), ("Medium", 2, 52, 2, 152), ("Hard", 3, 78, 4, 178)],
)
def test_difficulty_table(level, decks, cards, types, max_steps):
    d = CountRecall.difficulties[level]
    assert (d.num_decks, d.num_cards, d.num_types, d.max_steps) == (decks, cards, types, max_steps)
    assert d.max_steps == 100 + d.num_cards


@pytest.mark.parametrize("level", ["Easy", "Hard"])
def test_reset_deals_two_shuffled_decks(level):
    env = CountRecall(level)
    d = env.difficulty
    states = jax.jit(jax.vmap(env.reset_state))(jax.random.split(jax.random.key(3), 8))
    values, queries = np.asarray(states.value_cards), np.asarray(states.query_cards)
    expected = np.bincount(np.arange(d.num_cards) % d.num_types, minlength=4)
    for deck in (*values, *queries):
        assert np.array_equal(np.bincount(deck, minlength=4), expected)
    assert len({tuple(v) for v in values}) == 8, "different keys deal different decks"
    assert not any(np.array_equal(v, q) for v, q in zip(values, queries)), (
        "the decks are shuffled independently"
    )
    for field in (states.dealt, states.answer, states.score, states.timestep):
        assert np.all(np.asarray(field) == 0)


# ----------------------------------------------------------------------------------- rules
def test_up_and_down_change_the_answer(step):
    state, reward, terminated, truncated, _ = step(make_state(answer=3, timestep=5), UP)
    assert int(state.answer) == 4 and int(state.timestep) == 6
    assert float(reward) == 0.0 and not terminated and not truncated
    state, *_ = step(make_state(answer=0), DOWN)
    assert int(state.answer) == -1, "the answer may go negative"


def test_answer_stays_displayable(step):
    assert int(step(make_state(answer=cr.MAX_ANSWER), UP)[0].answer) == 999
    assert int(step(make_state(answer=cr.MIN_ANSWER), DOWN)[0].answer) == -99


@pytest.mark.parametrize("action", [LEFT, RIGHT, 5, -1, 100])
def test_other_actions_are_noops(step, action):
    before = make_state(dealt=4, answer=2, score=1, timestep=9)
    state, reward, terminated, truncated, _ = step(before, action)
    assert int(state.timestep) == 10
    for field in ("dealt", "answer", "score"):
        assert int(getattr(state, field)) == int(getattr(before, field))
    assert float(reward) == 0.0 and not terminated and not truncated


def test_correct_answer_counts_only_cards_dealt_before(step):
    # Round 4: values dealt so far are H S H S; the query is a heart (QUERIES[4]) -> 2.
    # The round's own value card (a heart) must not be counted.
    assert QUERIES[4] == HEART and VALUES[4] == HEART
    state, reward, terminated, _, _ = step(make_state(dealt=4, answer=2, score=1), FIRE)
    assert float(reward) == pytest.approx(1 / N)
    assert (int(state.dealt), int(state.score), int(state.answer)) == (5, 2, 2), "the answer is not reset"
    assert not terminated
    state, reward, *_ = step(make_state(dealt=4, answer=3, score=1), FIRE)
    assert float(reward) == 0.0 and (int(state.dealt), int(state.score)) == (5, 1), (
        "a wrong answer still deals"
    )


def test_first_round_answer_is_zero(step):
    assert float(step(make_state(dealt=0, answer=0), FIRE)[1]) == pytest.approx(1 / N)
    assert float(step(make_state(dealt=0, answer=1), FIRE)[1]) == 0.0


def test_last_confirm_terminates(step):
    # Before round 25 (a spade query), 12 spades are dealt.
    state, reward, terminated, truncated, _ = step(make_state(dealt=N - 1, answer=12, score=3), FIRE)
    assert int(state.dealt) == N and float(reward) == pytest.approx(1 / N)
    assert bool(terminated) and not truncated


def test_step_limit_truncates(step):
    _, _, terminated, truncated, _ = step(make_state(timestep=EASY.max_steps - 2), UP)
    assert not truncated
    _, _, terminated, truncated, _ = step(make_state(timestep=EASY.max_steps - 1), UP)
    assert bool(truncated) and not terminated


def reference_step(s, action):
    """The rules, in plain Python, on a dict state."""
    s = dict(s)
    if action == UP:
        s["answer"] = min(s["answer"] + 1, 999)
    elif action == DOWN:
        s["answer"] = max(s["answer"] - 1, -99)
    reward = 0.0
    if action == FIRE and s["dealt"] < N:
        query = QUERIES[s["dealt"]]
        if s["answer"] == VALUES[: s["dealt"]].count(query):
            reward = 1 / N
            s["score"] += 1
        s["dealt"] += 1
    s["timestep"] += 1
    return s, reward, s["dealt"] == N, s["timestep"] >= EASY.max_steps


def test_matches_reference_step_by_step(env):
    actions = np.random.default_rng(0).choice([UP, UP, DOWN, LEFT, RIGHT, FIRE, FIRE, FIRE, 7, -3], size=140)

    @jax.jit
    def run(state, actions):
        def body(state, action):
            state, reward, terminated, truncated, _ = env.step_state(jax.random.key(0), state, action, None)
            return state, (state, reward, terminated, truncated)

        return jax.lax.scan(body, state, actions)[1]

    states, rewards, terms, truncs = jax.device_get(
        run(make_state(timestep=0), jnp.asarray(actions, jnp.int32))
    )
    ref = {"dealt": 0, "answer": 0, "score": 0, "timestep": 0}
    for t, action in enumerate(actions):
        ref, reward, terminated, truncated = reference_step(ref, int(action))
        got = {k: int(getattr(states, k)[t]) for k in ref}
        assert got == ref, f"step {t}, action {action}"
        assert rewards[t] == pytest.approx(reward) and terms[t] == terminated and truncs[t] == truncated
        if terminated or truncated:
            break
    assert ref["dealt"] > 10, "the sequence should play many rounds"


# -------------------------------------------------------------------------------- returns
def test_returns_within_bounds_and_perfect_play_scores_one(env):
    """Random and perfect play over vmapped episodes: returns in [0, 1], perfect play gets 1."""
    num_envs, num_steps = 16, 2 * EASY.max_steps

    def perfect(state):
        target = cr.count_dealt(
            state.value_cards, state.dealt, state.query_cards[jnp.minimum(state.dealt, N - 1)]
        )
        return jnp.where(state.answer < target, UP, jnp.where(state.answer > target, DOWN, FIRE))

    @jax.jit
    def rollout(key):
        keys = jax.random.split(key, num_envs)
        _, state = jax.vmap(env.reset)(keys)

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
            return (state, jnp.where(done, 0.0, running)), (jnp.where(done, running, jnp.nan), term)

        return jax.lax.scan(body, (state, jnp.zeros(num_envs)), jax.random.split(key, num_steps))[1]

    returns, terminated = jax.device_get(rollout(jax.random.key(1)))
    ended = ~np.isnan(returns)
    assert np.all((returns[ended] >= 0) & (returns[ended] <= 1 + 1e-6))
    perfect_returns = returns[:, : num_envs // 2][ended[:, : num_envs // 2]]
    assert perfect_returns.size >= num_envs // 2
    np.testing.assert_allclose(perfect_returns, 1.0, atol=1e-5)
    assert np.all(terminated[:, : num_envs // 2][ended[:, : num_envs // 2]]), (
        "perfect play ends by termination"
    )
    assert np.any(returns[:, num_envs // 2 :][ended[:, num_envs // 2 :]] < 1), "random play is not perfect"


# ------------------------------------------------------------------------------- rendering
def test_current_cards_and_history(render, render_pomdp, env):
    state = make_state(dealt=5, answer=2, score=3, timestep=8)
    mdp, pomdp = np.asarray(render(state)), np.asarray(render_pomdp(state))
    # Round 5: value card spade, query card heart.
    for frame in (mdp, pomdp):
        value = region(env, frame, cr.VALUE_CARD_X, cr.CARD_Y, CARD_WIDTH, CARD_HEIGHT)
        query = region(env, frame, cr.QUERY_CARD_X, cr.CARD_Y, CARD_WIDTH, CARD_HEIGHT)
        assert has(value, BLACK) and not has(value, RED)
        assert has(query, RED) and has(query, cr.QUERY_CARD_FACE)
    for i in range(5):
        suit_color = RED if VALUES[i] == HEART else BLACK
        assert has(slot(env, mdp, i), suit_color), f"MDP shows dealt card {i}"
        assert not has(slot(env, pomdp, i), suit_color), f"POMDP hides dealt card {i}"
    for i in range(5, 8):
        assert not has(slot(env, mdp, i), RED) and not has(slot(env, mdp, i), BLACK), (
            "undealt slots are empty"
        )
    assert not np.array_equal(slot(env, mdp, 0), slot(env, mdp, 1)), "hearts and spades look different"


def test_twins_equal_at_t0(render, render_pomdp, env):
    state = env.reset_state(jax.random.key(5))
    np.testing.assert_array_equal(render(state), render_pomdp(state))
    # Even a (hand-built) state with a history shows it at t = 0.
    state = make_state(dealt=6, timestep=0)
    np.testing.assert_array_equal(render(state), render_pomdp(state))


def test_answer_shows_a_minus_sign(render, env):
    x, y, w, h = cr.ANSWER_BOX
    positive = region(env, render(make_state(answer=7)), x, y, w, h)
    negative = region(env, render(make_state(answer=-7)), x, y, w, h)
    lit_pos = np.all(positive == np.array(cr.ANSWER_COLOR, np.uint8), axis=-1)
    lit_neg = np.all(negative == np.array(cr.ANSWER_COLOR, np.uint8), axis=-1)
    columns = np.flatnonzero(lit_neg.any(axis=0))
    assert columns.size > np.flatnonzero(lit_pos.any(axis=0)).size
    minus_rows = np.flatnonzero(lit_neg[:, columns[0]])
    assert minus_rows.size <= 2 and abs(minus_rows.mean() - h / 2) <= 2, "a lone bar in the middle row"


def test_score_shows(render, env):
    band = lambda frame: np.asarray(frame)[2:14, 16:112]
    zero, twelve = band(render(make_state(score=0))), band(render(make_state(score=12)))
    assert has(twelve, env.score_color) and not np.array_equal(zero, twelve)


def test_256_pixels():
    env = CountRecall("Hard", obs_size=256)
    values = [HEART, SPADE, CLUB, DIAMOND] * 19 + [HEART, SPADE]
    state = make_state(dealt=4, timestep=4, values=values, queries=values)
    frame = np.asarray(jax.jit(env.render)(state))
    assert frame.shape == (256, 256, 3) and env.history.slot == 18
    for i, color in enumerate((RED, BLACK, BLACK, RED)):
        assert has(slot(env, frame, i), color) and not has(
            slot(env, frame, i), RED if color is BLACK else BLACK
        )
    assert not np.array_equal(slot(env, frame, 0), slot(env, frame, 3)), "hearts and diamonds differ"
    assert not np.array_equal(slot(env, frame, 1), slot(env, frame, 2)), "spades and clubs differ"
    assert has(region(env, frame, cr.VALUE_CARD_X, cr.CARD_Y, CARD_WIDTH, CARD_HEIGHT), RED)
