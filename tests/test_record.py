"""Videos of a policy: one jitted rollout, the MDP and POMDP twins side by side in every frame."""

import sys
import types
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from popgym_arcade import record as rec
from popgym_arcade.cli import main

pytestmark = pytest.mark.xdist_group("record")

ENV_ID = "CartPoleEasy"
STEPS = 6


@dataclass(frozen=True)
class StartMarker:
    """Fires (no push) on an episode's first frame, else pushes right: actions show ``start``."""

    def init(self, key):
        return jnp.int32(0)

    def act(self, carry, obs, start, key):
        return carry + 1, jnp.where(start, 4, 3)


@dataclass(frozen=True)
class PixelSumPolicy:
    """A stand-in trained policy: its action is a function of the frame it sees."""

    env_id: str = ENV_ID
    partial: bool = True
    obs_size: int = 128

    def init(self, key):
        return ()

    def act(self, carry, obs, start, key):
        return carry, pixel_sum_action(obs)


def pixel_sum_action(obs):
    return jnp.sum(jnp.asarray(obs, jnp.int32)) % 5


@pytest.fixture(scope="module")
def random_recording():
    return rec.rollout(ENV_ID, rec.RandomPolicy(), partial=False, num_steps=STEPS, seed=0)


def test_random_policy_follows_the_protocol():
    policy = rec.RandomPolicy()
    assert isinstance(policy, rec.Policy)
    carry = policy.init(jax.random.key(0))
    actions = [int(policy.act(carry, None, True, jax.random.key(i))[1]) for i in range(50)]
    assert set(actions) == set(range(5))


def test_rollout_keeps_both_twins(random_recording):
    r = random_recording
    assert r.mdp.shape == r.pomdp.shape == (STEPS, 128, 128, 3) and r.mdp.dtype == np.uint8
    assert r.actions.shape == r.rewards.shape == r.dones.shape == (STEPS,)
    np.testing.assert_array_equal(r.mdp[0], r.pomdp[0])  # t = 0: same frame
    assert not np.array_equal(r.mdp[1:], r.pomdp[1:])  # then the POMDP hides the cart
    again = rec.rollout(ENV_ID, rec.RandomPolicy(), partial=False, num_steps=STEPS, seed=0)
    np.testing.assert_array_equal(again.actions, r.actions)


def test_start_is_true_on_each_episode_first_frame():
    r = rec.rollout(ENV_ID, StartMarker(), partial=True, num_steps=40, seed=1)
    assert r.dones.any()  # pushing right topples the pole within 40 steps
    starts = np.concatenate([[True], r.dones[:-1]])
    np.testing.assert_array_equal(r.actions == 4, starts)
    # Each episode's first frame is shown equally by both twins.
    np.testing.assert_array_equal(r.mdp[starts], r.pomdp[starts])
    assert len(r.episode_returns()) == int(r.dones.sum())


def test_record_writes_side_by_side_gif(tmp_path, random_recording):
    path, recording = rec.record(ENV_ID, tmp_path / "cp.gif", num_steps=STEPS, seed=0)
    np.testing.assert_array_equal(recording.actions, random_recording.actions)
    gif = Image.open(path)
    assert gif.n_frames == STEPS
    assert gif.size == (2 * 128 + rec.GAP, 128)
    first = np.asarray(gif.convert("RGB"))
    np.testing.assert_array_equal(first[:, :128], first[:, 128 + rec.GAP :])


def test_cli_record(tmp_path, capsys):
    out = tmp_path / "cli.gif"
    assert main(["record", ENV_ID, "--steps", str(STEPS), "--out", str(out)]) == 0
    assert Image.open(out).n_frames == STEPS
    assert f"{STEPS} frames" in capsys.readouterr().out


def test_bad_suffix_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        rec.record(ENV_ID, tmp_path / "cp.avi", num_steps=STEPS)
    assert main(["record", ENV_ID, "--out", str(tmp_path / "cp.png")]) == 2
    assert ".gif or .mp4" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_mp4_without_imageio_ffmpeg_suggests_gif(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ImportError, match=r"imageio-ffmpeg.*\.gif"):
        rec.record(ENV_ID, tmp_path / "cp.mp4", num_steps=STEPS)


def test_missing_run_dir_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    with pytest.raises(FileNotFoundError, match="no run directory"):
        rec.record(ENV_ID, tmp_path / "cp.gif", policy=missing, num_steps=STEPS)
    assert main(["record", ENV_ID, "--policy", str(missing), "--out", str(tmp_path / "cp.gif")]) == 2
    assert "no run directory" in capsys.readouterr().err


def test_trained_policy_acts_on_its_twin(tmp_path, monkeypatch):
    # popgym_arcade.agents is written elsewhere: a stand-in module provides load_policy.
    agents = types.ModuleType("popgym_arcade.agents")
    policy_module = types.ModuleType("popgym_arcade.agents.policy")
    policy_module.load_policy = lambda run_dir: PixelSumPolicy()
    agents.policy = policy_module
    monkeypatch.setitem(sys.modules, "popgym_arcade.agents", agents)
    monkeypatch.setitem(sys.modules, "popgym_arcade.agents.policy", policy_module)

    path, r = rec.record(ENV_ID, tmp_path / "agent.gif", policy=tmp_path, num_steps=STEPS)
    assert Image.open(path).n_frames == STEPS
    expected = [int(pixel_sum_action(frame)) for frame in r.pomdp]  # it saw the POMDP frames
    assert r.actions.tolist() == expected
    with pytest.raises(ValueError, match="trained on CartPoleEasy"):
        rec.record("CartPoleHard", tmp_path / "agent.gif", policy=tmp_path, num_steps=STEPS)
    with pytest.raises(ValueError, match="trained at 128 pixels"):
        rec.record(ENV_ID, tmp_path / "agent.gif", policy=tmp_path, num_steps=STEPS, obs_size=256)
