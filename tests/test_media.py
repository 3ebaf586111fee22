"""PNG/GIF writers and frame layout."""

import numpy as np
import pytest
from PIL import Image

from popgym_arcade import media


def test_png_round_trips(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    path = media.write_png(tmp_path / "sub" / "x.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), image)


def test_png_rejects_bad_images(tmp_path):
    with pytest.raises(ValueError):
        media.write_png(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        media.write_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))


def test_gif_has_every_frame(tmp_path):
    frames = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 100, 200)])
    path = media.write_gif(tmp_path / "x.gif", frames)
    assert Image.open(path).n_frames == 3


def test_layouts():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = np.full((2, 4, 4, 3), 9, np.uint8)
    joined = media.side_by_side(a, b, gap=2)
    assert joined.shape == (2, 4, 10, 3) and joined[0, 0, 9, 0] == 9 and joined[0, 0, 4, 0] == 255
    strip = media.filmstrip([a, b], gap=1)
    assert strip.shape == (9, 9, 3) and strip[5, 0, 0] == 9
    with pytest.raises(ValueError):
        media.side_by_side(a, b[:1])
