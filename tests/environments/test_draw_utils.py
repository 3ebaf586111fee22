"""The draw toolkit: exact pixels for the simple shapes, sanity for the curved ones, jit/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.environments import draw_utils as du
from popgym_arcade.environments import font

RED = (255, 0, 0)


def lit(canvas, color=RED):
    return np.all(np.asarray(canvas) == np.asarray(color, np.uint8), axis=-1)


def test_rectangle_is_half_open_and_clipped():
    canvas = du.new_canvas(8, 10)
    out = lit(du.draw_rectangle(canvas, (2, 1), (5, 4), RED))
    expected = np.zeros((8, 10), bool)
    expected[1:4, 2:5] = True
    np.testing.assert_array_equal(out, expected)
    clipped = lit(du.draw_rectangle(canvas, (-3, 6), (3, 20), RED))
    assert clipped.sum() == 3 * 2 and clipped[6:, :3].all()


def test_overlapping_shapes_overwrite_never_add():
    canvas = du.draw_rectangle(du.new_canvas(8, 8), (0, 0), (6, 6), (200, 200, 200))
    canvas = du.draw_circle(canvas, (0, 0), (8, 8), (100, 100, 100))
    values = set(map(tuple, np.asarray(canvas).reshape(-1, 3).tolist()))
    assert values <= {(0, 0, 0), (200, 200, 200), (100, 100, 100)}


def test_circle_is_symmetric_and_inside_its_box():
    out = lit(du.draw_circle(du.new_canvas(20, 20), (2, 2), (12, 12), RED))
    box = out[2:12, 2:12]
    assert out.sum() == box.sum() > 60  # all inside the box; close to pi * 25
    np.testing.assert_array_equal(box, box[::-1])
    np.testing.assert_array_equal(box, box[:, ::-1])


@pytest.mark.parametrize("direction", ["up", "down", "left", "right"])
def test_triangle_points_its_way(direction):
    out = lit(du.draw_triangle(du.new_canvas(11, 11), (0, 0), (11, 11), RED, direction))
    rows, cols = out.sum(axis=1), out.sum(axis=0)
    widest = {"up": rows[-1] > rows[0], "down": rows[0] > rows[-1], "left": cols[-1] > cols[0], "right": cols[0] > cols[-1]}
    assert widest[direction]
    with pytest.raises(ValueError):
        du.draw_triangle(du.new_canvas(4, 4), (0, 0), (4, 4), RED, "diagonal")


def test_hexagon_ring_cross_line():
    hexagon = lit(du.draw_hexagon(du.new_canvas(20, 20), (0, 0), (20, 20), RED))
    assert hexagon[10, 10] and not hexagon[0, 0] and hexagon[10, 1]
    ring = lit(du.draw_ring(du.new_canvas(20, 20), (0, 0), (20, 20), RED, 2))
    assert not ring[10, 10] and ring[10, 0]
    cross = lit(du.draw_cross(du.new_canvas(10, 10), (0, 0), (10, 10), RED, 1.5))
    assert cross[0, 0] and cross[9, 9] and cross[0, 9] and cross[9, 0] and not cross[0, 5]
    line = lit(du.draw_line(du.new_canvas(10, 10), (0.5, 5.5), (9.5, 5.5), RED, 1))
    assert line[5].all() and line.sum() == 10


@pytest.mark.parametrize("suit", du.SUITS)
def test_suits_fill_part_of_their_box_with_their_colour(suit):
    canvas = du.draw_suit(du.new_canvas(24, 24, (255, 255, 255)), (2, 2), (22, 22), suit)
    index = du.SUITS.index(suit)
    mask = lit(canvas, du.SUIT_COLORS[index])
    assert 0.25 < mask[2:22, 2:22].mean() < 0.9
    assert mask.sum() == mask[2:22, 2:22].sum()


def test_suits_are_distinct():
    masks = [lit(du.draw_suit(du.new_canvas(20, 20), (0, 0), (20, 20), s, RED)) for s in du.SUITS]
    for i in range(4):
        for j in range(i + 1, 4):
            assert (masks[i] != masks[j]).sum() > 10


def test_text_matches_the_font():
    out = lit(du.draw_text(du.new_canvas(5, 11), (0, 0), "HI", RED))
    np.testing.assert_array_equal(out[:, :5], font.glyph("H"))
    np.testing.assert_array_equal(out[:, 6:], font.glyph("I"))
    assert not out[:, 5].any()
    assert du.text_width("HI", 2) == 22 and du.text_width("HI", (2, 1), spacing=1) == 11
    with pytest.raises(ValueError, match="no glyph"):
        du.draw_text(du.new_canvas(5, 5), (0, 0), "@", RED)


@pytest.mark.parametrize("number, text", [(0, "0"), (7, "7"), (42, "42"), (-3, "-3"), (123456, "123456")])
def test_number_reads_back(number, text):
    scale = 2
    canvas = du.draw_number(du.new_canvas(12, 100), (0, 0), (100, 12), jnp.int32(number), RED, scale=scale)
    expected = du.draw_text(du.new_canvas(12, 100), ((100 - du.text_width(text, scale)) // 2, 1), text, RED, scale)
    np.testing.assert_array_equal(lit(canvas), lit(expected))


def test_number_paths_agree():
    # A static box takes a lookup path, a traced box the arithmetic, host data numpy: one layout.
    numbers = np.arange(-1150, 1150, 3)
    canvas = du.new_canvas(20, 50)
    by_static_box = jax.vmap(lambda n: du.draw_number(canvas, (3, 2), (47, 19), n, RED, 2, 3))
    by_traced_box = jax.vmap(lambda n, x: du.draw_number(jnp.asarray(canvas), (x, 2), (x + 44, 19), n, RED, 2, 3))
    static = jax.jit(by_static_box)(jnp.asarray(numbers))
    traced = jax.jit(by_traced_box)(jnp.asarray(numbers), jnp.full(len(numbers), 3))
    np.testing.assert_array_equal(static, traced)
    for i in range(0, len(numbers), 97):
        on_host = du.draw_number(canvas, (3, 2), (47, 19), int(numbers[i]), RED, 2, 3)
        np.testing.assert_array_equal(static[i], on_host)
    shown = (numbers >= -99) & (numbers <= 999)  # three digits: every one of these looks different
    assert len({lit(frame).tobytes() for frame in np.asarray(static)[shown]}) == shown.sum()


def test_primitives_under_jit_and_vmap_with_traced_positions():
    @jax.jit
    @jax.vmap
    def draw(x, number):
        canvas = jnp.zeros((32, 32, 3), jnp.uint8)
        canvas = du.draw_rectangle(canvas, (x, 0), (x + 3, 3), RED)
        canvas = du.draw_circle(canvas, (x, 10), (x + 8, 18), RED)
        canvas = du.draw_hexagon(canvas, (x, 20), (x + 8, 28), RED)
        return du.draw_number(canvas, (0, 0), (32, 7), number, (0, 255, 0), scale=1)

    frames = draw(jnp.array([0, 5, 20]), jnp.array([1, -2, 30]))
    assert frames.shape == (3, 32, 32, 3)
    assert lit(frames[1])[0, 5] and not lit(frames[0])[0, 5]
    assert lit(frames[2])[14, 24]


def test_number_needs_static_scale_for_traced_box():
    with pytest.raises(ValueError, match="static scale"):
        jax.jit(lambda y: du.draw_number(jnp.zeros((8, 8, 3), jnp.uint8), (0, y), (8, 8), 1, RED))(0)


def test_paste_upscale_grid_image_sub_canvas():
    canvas = du.new_canvas(6, 6)
    sprite = np.full((2, 2, 3), 9, np.uint8)
    out = np.asarray(du.paste(canvas, sprite, (jnp.int32(3), jnp.int32(1))))
    assert (out[1:3, 3:5] == 9).all() and out.sum() == 9 * 12
    masked = np.asarray(du.paste(canvas, sprite, (0, 0), mask=np.array([[True, False], [False, True]])))
    assert masked[0, 0, 0] == 9 and masked[0, 1, 0] == 0
    up = np.asarray(du.upscale(np.arange(4).reshape(2, 2), 3))
    assert up.shape == (6, 6) and up[5, 5] == 3 and up[0, 2] == 0
    tiles = np.stack([np.full((2, 3, 3), k, np.uint8) for k in range(3)])
    board = np.asarray(du.grid_image(tiles, jnp.array([[0, 1], [2, 0]])))
    assert board.shape == (4, 6, 3) and board[0, 3, 0] == 1 and board[2, 0, 0] == 2
    centred = np.asarray(du.draw_sub_canvas(du.new_canvas(10, 10), np.full((4, 4, 3), 7, np.uint8)))
    assert (centred[3:7, 3:7] == 7).all() and centred.sum() == 7 * 48
    with pytest.raises(ValueError):
        du.draw_sub_canvas(du.new_canvas(10, 10), np.zeros((3, 3, 3), np.uint8))


def test_grid_lines():
    out = lit(du.draw_grid(du.new_canvas(10, 10), (0, 0), 2, (3, 3), RED, 1))
    assert out[0].all() and out[:, 3].all() and not out[1, 1] and out[9, 9]


DRAWERS = [
    lambda c: du.draw_rectangle(c, (2, 3), (9, 7), RED),
    lambda c: du.draw_circle(c, (1, 1), (12, 10), RED),
    lambda c: du.draw_ring(c, (1, 1), (12, 12), RED, 2),
    lambda c: du.draw_triangle(c, (0, 0), (11, 9), RED, "left"),
    lambda c: du.draw_hexagon(c, (0, 0), (14, 14), RED),
    lambda c: du.draw_line(c, (1, 2), (12, 9), RED, 2),
    lambda c: du.draw_cross(c, (1, 1), (13, 13), RED, 2),
    lambda c: du.draw_heart(c, (1, 1), (13, 13), RED),
    lambda c: du.draw_diamond(c, (1, 1), (13, 13), RED),
    lambda c: du.draw_spade(c, (1, 1), (13, 13), RED),
    lambda c: du.draw_club(c, (1, 1), (13, 13), RED),
    lambda c: du.draw_grid(c, (0, 0), 3, (3, 3), RED),
    lambda c: du.draw_text(c, (0, 0), "A1", RED),
    lambda c: du.draw_number(c, (0, 0), (16, 7), -12, RED, scale=1),
]


@pytest.mark.parametrize("index", range(len(DRAWERS)))
def test_host_inputs_draw_with_numpy_and_match_jax(index):
    host = DRAWERS[index](du.new_canvas(16, 16))
    device = DRAWERS[index](jnp.asarray(du.new_canvas(16, 16)))
    assert isinstance(host, np.ndarray) and isinstance(device, jax.Array)
    np.testing.assert_array_equal(host, np.asarray(device))
    assert lit(host).any()
