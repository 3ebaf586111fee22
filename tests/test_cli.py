"""The popgym-arcade command: list and demo."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from popgym_arcade.cli import EXIT_BROKEN_PIPE, main
from popgym_arcade.registration import REGISTERED_ENVIRONMENTS


def test_list_prints_every_id_with_its_difficulty(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for env_id in REGISTERED_ENVIRONMENTS:
        assert env_id in out
    assert f"{len(REGISTERED_ENVIRONMENTS)} ids" in out


def test_demo_writes_twin_pictures_and_speed(tmp_path, capsys):
    env_id = REGISTERED_ENVIRONMENTS[0]
    code = main(["demo", "--out", str(tmp_path), "--ids", env_id, "--steps", "3", "--envs", "4", "--speed-steps", "5"])
    assert code == 0
    image = np.asarray(Image.open(tmp_path / f"{env_id}.png").convert("RGB"))
    assert image.shape == (2 * 128 + 4, 4 * 128 + 3 * 4, 3)  # MDP row above POMDP row, 4 frames each
    np.testing.assert_array_equal(image[:128, :128], image[132:, :128])  # t = 0 frames are equal
    assert Image.open(tmp_path / f"{env_id}.gif").n_frames == 4
    out = capsys.readouterr().out
    assert env_id in out and "steps/s" in out


def test_demo_rejects_unknown_ids(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--ids", "NoSuchGame"]) == 2
    assert "unknown ids" in capsys.readouterr().err


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "popgym_arcade.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout and "list" in result.stdout


def test_closed_reader_ends_quietly():
    # `popgym-arcade list | head -1` where head has gone: no traceback, SIGPIPE's exit status.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "popgym_arcade.cli", "list"], stdout=write_end, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write_end)
    assert result.stderr == "" and result.returncode == EXIT_BROKEN_PIPE

