"""Human play: the PlaySession logic without a display, and the pygame loop on a dummy display."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade import play
from popgym_arcade.cli import main
from tests.environments.harness import trees_equal

pytestmark = pytest.mark.xdist_group("play")

ENV_ID = "CartPoleEasy"
RECORD_KEYS = {"kind", "env", "partial", "obs_size", "seed", "actions", "rewards", "return", "length"}


@pytest.fixture(scope="module")
def twins():
    """``(mdp, pomdp, params)`` of the test id, and the session functions compiled once for the module.

    The twins are the sessions' own env objects (whose jitted methods are already compiled).
    """
    for partial, both in [(False, False), (True, False), (False, True), (True, True)]:
        play.compiled(ENV_ID, partial, 128, both)
    mdp, params = play.twin(ENV_ID, False, 128)
    pomdp, _ = play.twin(ENV_ID, True, 128)
    return mdp, pomdp, params


def finish_episode(session, action=3, limit=300):
    """Press ``action`` until an episode ends (pushing right topples CartPole in a few steps)."""
    done_before = len(session.finished)
    for _ in range(limit):
        session.press(action)
        if len(session.finished) > done_before:
            return session.finished[-1]
    raise AssertionError("the episode did not end")


def test_press_steps_like_env_step(twins):
    mdp, _, params = twins
    session = play.PlaySession(ENV_ID, seed=3)
    _, expected_state = mdp.reset(play.episode_keys(3)[0], params)
    assert bool(trees_equal(session.state, expected_state))
    for action in (3, 2, 4, 0, 1):
        key, state = session.key, session.state
        frames = session.press(action)
        obs, expected_state, *_ = mdp.step(play.split_step_key(key)[1], state, jnp.int32(action), params)
        assert bool(trees_equal(session.state, expected_state))
        assert len(frames) == 1
        np.testing.assert_array_equal(frames[0], np.asarray(obs))
    assert session.episode_record()["actions"] == [3, 2, 4, 0, 1]


def test_both_shows_the_two_twins_of_one_state(twins):
    mdp, pomdp, _ = twins
    session = play.PlaySession(ENV_ID, both=True)
    first = session.frames()
    assert len(first) == 2
    np.testing.assert_array_equal(first[0], first[1])  # t = 0: the twins show the same frame
    for action in (3, 3, 2):
        frames = session.press(action)
    np.testing.assert_array_equal(frames[0], np.asarray(jax.jit(mdp.render)(session.state)))
    np.testing.assert_array_equal(frames[1], np.asarray(jax.jit(pomdp.render)(session.state)))
    assert not np.array_equal(frames[0], frames[1])  # the POMDP hides the cart and pole
    assert session.env.partial_obs is False and session.episode_record()["partial"] is False
    # With --partial the POMDP twin is the one credited; the shared state steps the same.
    partial = play.PlaySession(ENV_ID, both=True, partial=True)
    for action in (3, 3, 2):
        partial_frames = partial.press(action)
    assert partial.env.partial_obs is True and partial.episode_record()["partial"] is True
    np.testing.assert_array_equal(np.stack(partial_frames), np.stack(frames))


def test_unmapped_key_does_nothing(twins):
    session = play.PlaySession(ENV_ID)
    session.press(2)
    state, key, frames = session.state, session.key, session.frames()
    assert session.press(None) is frames
    assert session.state is state and session.key is key
    assert session.episode_record()["actions"] == [2]
    with pytest.raises(ValueError, match="action must be in 0..4"):
        session.press(5)


def test_finished_episode_record_saves_and_replays(twins, tmp_path):
    session = play.PlaySession(ENV_ID, seed=7)
    record = finish_episode(session)
    assert set(record) == RECORD_KEYS
    assert record["kind"] == "human_episode" and record["env"] == ENV_ID
    assert record["partial"] is False and record["obs_size"] == 128 and record["seed"] == 7
    assert record["length"] == len(record["actions"]) == len(record["rewards"]) > 0
    assert record["return"] == sum(record["rewards"])
    assert all(isinstance(r, float) for r in record["rewards"])
    # The next episode starts fresh, with the next seed.
    assert session.episode == 1 and session.episode_record()["seed"] == 8
    assert session.episode_record()["actions"] == []
    assert play.replay(record) == record["rewards"]

    first = play.save_record(record, tmp_path)
    second = play.save_record(record, tmp_path)
    assert first != second  # never overwritten
    assert first.name.startswith(f"{ENV_ID}_mdp_") and first.name.endswith("Z.json")
    assert json.loads(first.read_text()) == record

    partial = play.PlaySession(ENV_ID, partial=True)
    assert play.save_record(finish_episode(partial), tmp_path).name.startswith(f"{ENV_ID}_pomdp_")


def test_status_and_compose(twins):
    session = play.PlaySession(ENV_ID, both=True)
    session.press(3)
    status = session.status()
    assert ENV_ID in status and "MDP | POMDP" in status and "step 1" in status and "return" in status
    image = play.compose(session.frames(), scale=2)
    assert image.shape == (2 * 128, 2 * (2 * 128 + play.GAP), 3)
    np.testing.assert_array_equal(image[::2, : 2 * 128 : 2], session.frames()[0])
    assert play.default_scale(128) == 4 and play.default_scale(256) == 2


def test_missing_pygame_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # makes `import pygame` fail
    with pytest.raises(ImportError, match=r"pip install 'pygame-ce>=2.4'.*pip install -e '\.\[play\]'"):
        play.import_pygame()
    assert main(["play", ENV_ID]) == 2


def test_cli_rejects_unknown_id(capsys):
    assert main(["play", "NoSuchGame"]) == 2
    assert "unknown id" in capsys.readouterr().err


def test_modules_do_not_import_pygame():
    code = (
        "import sys, popgym_arcade.cli as c, popgym_arcade.play, popgym_arcade.record; c.build_parser(); "
        "assert 'pygame' not in sys.modules and 'imageio_ffmpeg' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------- the pygame loop, headless
@pytest.fixture
def pygame(monkeypatch):
    """pygame on SDL's dummy video driver (no window), with an empty event queue."""
    pygame = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame.display.init()
    pygame.event.clear()
    yield pygame
    pygame.display.quit()  # run_window quits the display itself; this covers a failed test


def post_keys(pygame, keys, quit=True):
    for key in keys:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
    if quit:
        pygame.event.post(pygame.event.Event(pygame.QUIT))


def test_window_steps_once_per_mapped_key(pygame, twins):
    session = play.PlaySession(ENV_ID, both=True)
    post_keys(pygame, [pygame.K_RIGHT, pygame.K_a, pygame.K_SPACE, pygame.K_LEFT, pygame.K_UP, pygame.K_DOWN])
    assert play.run_window(session, scale=1) == []
    assert session.episode_record()["actions"] == [3, 4, 2, 0, 1]  # K_a is not mapped


def test_window_quits_on_escape(pygame, twins):
    session = play.PlaySession(ENV_ID)
    post_keys(pygame, [pygame.K_RIGHT, pygame.K_ESCAPE, pygame.K_RIGHT], quit=False)
    play.run_window(session, scale=1)
    assert session.episode_record()["actions"] == [3]


def test_window_saves_episodes_and_stops_after_k(pygame, twins, tmp_path):
    session = play.PlaySession(ENV_ID, partial=True)
    post_keys(pygame, [pygame.K_RIGHT] * 300)  # topples the pole within a few dozen presses
    saved = play.run_window(session, scale=1, save_dir=tmp_path, episodes=1)
    assert len(saved) == 1 and saved[0].parent == tmp_path and saved[0].name.startswith(f"{ENV_ID}_pomdp_")
    record = json.loads(saved[0].read_text())
    assert set(record) == RECORD_KEYS and record == session.finished[0]
    assert record["return"] == sum(record["rewards"]) and record["partial"] is True
    assert session.episode_record()["actions"] == []  # stopped right after the episode ended
