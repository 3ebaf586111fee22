"""CartPole and NoisyCartPole: the classic pole-balancing task, seen as pixels.

The physics are gym's cart-pole (explicit Euler, 50 Hz). The frame shows the cart, the pole and
two velocity arrows; the POMDP twin shows only the arrows (after the first frame), so a
memory must integrate velocities to track where the cart and the pole are. NoisyCartPole adds
Gaussian noise to what is drawn, never to the dynamics.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade.environments import draw_utils
from popgym_arcade.environments.game import PixelGame
from popgym_arcade.environments.randomness import random_bits, standard_normals, unit_floats
from popgym_arcade.environments.struct import pytree, replace

X_LIMIT = 2.4
"""Half-width of the track in metres: the default ``x_threshold`` and the drawn track."""

THETA_LIMIT = 12 * 2 * math.pi / 360
"""Largest pole angle in radians (12 degrees): the default ``theta_threshold_radians``."""

# Action indices that push the cart; every other action (including out-of-range ones) applies
# no force.
LEFT, RIGHT = 2, 3

# Colours: clean, overwriting, never blended.
CART_COLOR = (245, 74, 140)
POLE_COLOR = (140, 69, 18)
ARROW_COLOR = (204, 204, 204)
TRACK_COLOR = (120, 120, 120)

# Layout in board pixels at 128 px (the board is the central 96 x 96 square; everything
# doubles at 256). Positions are pixel edges, so the pixel centres sit at +0.5.
CART_WIDTH, CART_HEIGHT, CART_TOP = 32.0, 14.0, 50.0
PIVOT_Y = 54.0
POLE_LENGTH, POLE_RADIUS = 38.0, 2.5
TRACK_TOP, TRACK_BOTTOM = 64, 66
SCENE_ROWS = (10, 64)
"""Board rows holding the cart and the pole at any allowed position and angle."""
SCENE_WINDOW = 36
"""Width of the band's window redrawn around the cart: the cart (32) and the pole tip (at
most 10.5 either side of the cart's centre) fit in it."""
H_ARROW_BOX = (78, 90, 3, 45)
"""(row0, row1, col0, col1) holding the cart-velocity arrow at any speed, in board pixels."""
C_ARROW_BOX = (73, 93, 58, 86)
"""(row0, row1, col0, col1) holding the angular-velocity arrow at any speed, in board pixels."""
H_ARROW_CENTRE = (24.0, 84.0)
C_ARROW_CENTRE, C_ARROW_RADIUS = (72.0, 86.0), 9.0


@dataclasses.dataclass(frozen=True)
class CartPoleDifficulty:
    """One level of CartPole or NoisyCartPole.

    Attributes:
        max_steps: the step limit (a truncation); the per-step reward is ``1 / max_steps``.
        noise_sigma: standard deviation of the Gaussian noise added to the drawn position,
            velocity, angle and angular velocity (0 for plain CartPole: no noise is drawn).
    """

    max_steps: int
    noise_sigma: float = 0.0


@pytree
class CartPoleParams:
    """Physics constants (gym's cart-pole) and the step limit.

    ``length`` is the pole's half-length, as in gym. Changing the thresholds changes the rules,
    not the drawing: the frame always spans ``x`` in ``[-2.4, 2.4]`` and clips the pole to 12
    degrees.
    """

    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5
    force_mag: float = 10.0
    tau: float = 0.02
    theta_threshold_radians: float = THETA_LIMIT
    x_threshold: float = X_LIMIT
    max_steps_in_episode: int = 200


@pytree
class CartPoleState:
    """The cart-pole's physical state, the observation noise drawn for it, and counters.

    Attributes:
        x, x_dot: cart position (m) and velocity (m/s).
        theta, theta_dot: pole angle (rad, positive leans right) and angular velocity (rad/s).
        noise: ``float32[4]`` added to ``(x, x_dot, theta, theta_dot)`` when drawing (zeros
            for CartPole).
        timestep: steps since reset (``int32``).
        score: rewarded steps so far (``int32``), shown at the top.
    """

    x: jax.Array
    x_dot: jax.Array
    theta: jax.Array
    theta_dot: jax.Array
    noise: jax.Array
    timestep: jax.Array
    score: jax.Array


# ----------------------------------------------------------------------------------- rules
def push_force(action: jax.Array, params: CartPoleParams) -> jax.Array:
    """The horizontal force of an action: ``-force_mag`` for left, ``+force_mag`` for right, else 0."""
    force_mag = jnp.asarray(params.force_mag, jnp.float32)
    return jnp.where(action == RIGHT, force_mag, jnp.where(action == LEFT, -force_mag, jnp.float32(0.0)))


def euler_step(state: CartPoleState, force: jax.Array, params: CartPoleParams) -> CartPoleState:
    """Integrate the cart-pole equations of motion for one ``tau`` (gym's explicit Euler).

    Positions move with the old velocities, then velocities with the accelerations. Only the
    physical fields change.
    """
    total_mass = params.masspole + params.masscart
    polemass_length = params.masspole * params.length
    cos_theta, sin_theta = jnp.cos(state.theta), jnp.sin(state.theta)
    temp = (force + polemass_length * state.theta_dot**2 * sin_theta) / total_mass
    theta_acc = (params.gravity * sin_theta - cos_theta * temp) / (
        params.length * (4.0 / 3.0 - params.masspole * cos_theta**2 / total_mass)
    )
    x_acc = temp - polemass_length * theta_acc * cos_theta / total_mass
    f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    return replace(
        state,
        x=f32(state.x + params.tau * state.x_dot),
        x_dot=f32(state.x_dot + params.tau * x_acc),
        theta=f32(state.theta + params.tau * state.theta_dot),
        theta_dot=f32(state.theta_dot + params.tau * theta_acc),
    )


def out_of_bounds(state: CartPoleState, params: CartPoleParams) -> jax.Array:
    """Whether the cart has left the track or the pole has fallen past its threshold."""
    return (jnp.abs(state.x) > params.x_threshold) | (jnp.abs(state.theta) > params.theta_threshold_radians)


def shown_values(state: CartPoleState) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """What the frame draws: the noisy ``(x, x_dot, theta, theta_dot)``, position and angle clipped."""
    x = jnp.clip(state.x + state.noise[0], -X_LIMIT, X_LIMIT)
    theta = jnp.clip(state.theta + state.noise[2], -THETA_LIMIT, THETA_LIMIT)
    return x, state.x_dot + state.noise[1], theta, state.theta_dot + state.noise[3]


# ------------------------------------------------------------------------------- drawing
def _pixel_centres(rows: tuple[int, int], cols: tuple[int, int], scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Board coordinates (128 px units) of the pixel centres of a board area, as numpy constants."""
    y = (np.arange(rows[0] * scale, rows[1] * scale, dtype=np.float32) + 0.5) / scale
    x = (np.arange(cols[0] * scale, cols[1] * scale, dtype=np.float32) + 0.5) / scale
    return x[None, :], y[:, None]


def _growth(v: jax.Array) -> jax.Array:
    """How much an arrow grows with a speed: ``log(1 + |v|)``."""
    return jnp.log1p(jnp.abs(v))


def _arrow_head(along: jax.Array, across: jax.Array, length: jax.Array, half_width: jax.Array) -> jax.Array:
    """A triangle with its base on ``along = 0`` and its apex at ``along = length``."""
    return (along >= 0) & (along <= length) & (jnp.abs(across) <= half_width * (1 - along / length))


def _arrow_sizes(v: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(half-thickness of the shaft, head length, head half-width) for a speed ``v``."""
    g = _growth(v)
    half_thickness = jnp.minimum(1.0 + 0.6 * g, 2.5)
    head_length = jnp.minimum(5.0 + 2.0 * g, 8.0)
    return half_thickness, head_length, half_thickness + 2.5


def horizontal_arrow_mask(x: jax.Array, y: jax.Array, velocity: jax.Array) -> jax.Array:
    """The cart-velocity arrow at the pixel centres ``x, y``: centred, pointing with ``velocity``.

    Its length, thickness and head grow with ``log(1 + |velocity|)``; zero points left.
    """
    cx, cy = H_ARROW_CENTRE
    # Mirror the pixels rather than the arrow, so one shape serves both directions.
    dx = jnp.where(velocity > 0, 1.0, -1.0) * (x - cx)
    dy = y - cy
    half_thickness, head_length, head_half_width = _arrow_sizes(velocity)
    half_length = jnp.minimum(6.0 + 5.0 * _growth(velocity), 20.0)
    head_base = half_length - head_length
    shaft = (dx >= -half_length) & (dx <= head_base) & (jnp.abs(dy) <= half_thickness)
    return shaft | _arrow_head(dx - head_base, dy, head_length, head_half_width)


def curved_arrow_mask(x: jax.Array, y: jax.Array, angular_velocity: jax.Array) -> jax.Array:
    """The pole angular-velocity arrow: an arc over the top of a circle, clockwise when positive.

    The arc spans ``A`` radians either side of the top, with ``A``, the thickness and the head
    growing with ``log(1 + |angular_velocity|)``; zero turns counter-clockwise.
    """
    cx, cy = C_ARROW_CENTRE
    radius = C_ARROW_RADIUS
    dx = jnp.where(angular_velocity > 0, 1.0, -1.0) * (x - cx)
    dy = y - cy
    half_thickness, head_length, head_half_width = _arrow_sizes(angular_velocity)
    extent = jnp.minimum(math.radians(50) + math.radians(30) * _growth(angular_velocity), math.radians(120))
    # Angles are measured clockwise from straight up; the shaft runs from -extent to where the
    # head starts, and the head is a straight triangle along the circle's tangent there.
    head_angle = extent - head_length / radius
    middle, half_span = (head_angle - extent) / 2, (head_angle + extent) / 2
    r = jnp.sqrt(dx * dx + dy * dy)
    in_span = dx * jnp.sin(middle) - dy * jnp.cos(middle) >= r * jnp.cos(half_span)
    shaft = (jnp.abs(r - radius) <= half_thickness) & in_span
    sin_h, cos_h = jnp.sin(head_angle), jnp.cos(head_angle)
    ex, ey = dx - radius * sin_h, dy + radius * cos_h
    along = ex * cos_h + ey * sin_h
    across = ex * sin_h - ey * cos_h
    return shaft | _arrow_head(along, across, head_length, head_half_width)


class CartPole(PixelGame):
    """Balance a pole on a cart by pushing the cart left or right, from pixels.

    - rules: gym's cart-pole. A pole is hinged on a cart that rolls on a track; each step
      pushes the cart with a force of -10, 0 or +10 N, and the state advances by
      ``tau = 0.02`` s with explicit Euler integration (positions with the old velocities, then
      velocities). The episode starts with ``x, x_dot, theta, theta_dot`` each uniform in
      ``[-0.05, 0.05]``; the dynamics are deterministic.

    - action: ``int`` in ``[0, 5)``
        - 0 (up), 1 (down), 4 (fire): no push.
        - 2 (left): push the cart left.
        - 3 (right): push the cart right.
        - any other value: no push (time still passes).

    - reward: ``1 / max_steps`` for each step whose resulting state is still in bounds; the
      step that leaves the bounds pays 0.

    - return: in ``[0, 1]``; 1.0 exactly for balancing until the step limit.

    - episode end:
        - terminated: the transition takes the cart beyond ``|x| > 2.4`` or the pole beyond
          ``|theta| > 12`` degrees (decided from the state after the step, no lag);
        - truncated: ``max_steps`` steps have passed without falling.

    - difficulty:

        | level  | max_steps | reward per step |
        |--------|-----------|-----------------|
        | Easy   | 200       | 1/200           |
        | Medium | 400       | 1/400           |
        | Hard   | 600       | 1/600           |

    - observation: ``uint8[obs_size, obs_size, 3]``. The score (rewarded steps) at the top, the
      name at the bottom, and in the middle the track with the cart (pink) and the pole
      (brown), and two velocity arrows below: the cart's velocity (a horizontal arrow pointing
      the way the cart moves) and the pole's angular velocity (a curved arrow over a circle,
      clockwise when the tip swings right). Arrows grow with ``log(1 + |speed|)``.
        - MDP: cart, pole and both arrows.
        - POMDP: only the two arrows; the cart and the pole are hidden.
        - t = 0: the POMDP frame equals the MDP frame (the full scene is shown once per
          episode, the only time the POMDP sees positions).

    - params: :class:`CartPoleParams` (physics and ``max_steps_in_episode``).

    - state: :class:`CartPoleState`.

    ```python
    env = CartPole("Easy", partial_obs=True)
    obs, state = env.reset(jax.random.key(0), env.default_params)
    obs, state, reward, terminated, truncated, info = env.step(
        jax.random.key(1), state, 3, env.default_params
    )
    ```
    """

    difficulties: ClassVar[dict[str, CartPoleDifficulty]] = {
        "Easy": CartPoleDifficulty(max_steps=200),
        "Medium": CartPoleDifficulty(max_steps=400),
        "Hard": CartPoleDifficulty(max_steps=600),
    }
    title: ClassVar[str] = "CARTPOLE"
    background_color: ClassVar[tuple[int, int, int]] = (51, 51, 51)
    title_color: ClassVar[tuple[int, int, int]] = (74, 214, 247)
    score_color: ClassVar[tuple[int, int, int]] = (0, 255, 128)
    independent_step_key = False  # the reset and the step draw disjoint words of one draw

    def __init__(self, difficulty: Any = "Easy", partial_obs: bool = False, obs_size: int = 128):
        super().__init__(difficulty, partial_obs, obs_size)
        s = self.scale
        _, self._scene_y = _pixel_centres(SCENE_ROWS, (0, 0), s)
        o = self.board_origin
        rows = slice(o + SCENE_ROWS[0] * s, o + SCENE_ROWS[1] * s)
        self._scene_background = self.background[rows, o : o + 96 * s]
        self._h_arrow_xy = _pixel_centres(H_ARROW_BOX[:2], H_ARROW_BOX[2:], s)
        self._c_arrow_xy = _pixel_centres(C_ARROW_BOX[:2], C_ARROW_BOX[2:], s)

    @property
    def default_params(self) -> CartPoleParams:
        """Gym's physics with this level's step limit."""
        return CartPoleParams(max_steps_in_episode=self.difficulty.max_steps)

    # --------------------------------------------------------------------------- dynamics
    def _draw(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Uniforms for a reset's physics, then noise for a reset and noise for a step.

        Twelve words, one ``random_bits`` call: 0-3 start the cart, 4-7 are the reset's noise,
        8-11 the step's. ``step`` hands the same key to the step and the auto-reset, so XLA
        computes this draw, and its normals, once per step instead of twice, while the three
        groups stay independent. Noise is exact zeros when sigma is 0.
        """
        words = random_bits(key, (12,))
        sigma = self.difficulty.noise_sigma
        noise = jnp.zeros(8, jnp.float32) if sigma == 0 else sigma * standard_normals(words[4:])
        return unit_floats(words[:4]), noise[:4], noise[4:]

    def reset_state(self, key: jax.Array, params: CartPoleParams) -> CartPoleState:
        """Each of ``x, x_dot, theta, theta_dot`` uniform in ``[-0.05, 0.05]``; fresh noise."""
        uniforms, noise, _ = self._draw(key)
        x, x_dot, theta, theta_dot = 0.1 * uniforms - 0.05
        zero = jnp.int32(0)
        return CartPoleState(x, x_dot, theta, theta_dot, noise, zero, zero)

    def step_state(
        self, key: jax.Array, state: CartPoleState, action: jax.Array, params: CartPoleParams
    ) -> tuple[CartPoleState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Push, integrate one Euler step, and judge the resulting state (no lag).

        The key only draws NoisyCartPole's observation noise (words the reset leaves unused,
        see :meth:`_draw`); the dynamics are deterministic.
        """
        next_state = euler_step(state, push_force(action, params), params)
        terminated = out_of_bounds(next_state, params)
        alive = jnp.logical_not(terminated)
        timestep = state.timestep + 1
        next_state = replace(
            next_state,
            noise=self._draw(key)[2],
            timestep=timestep,
            score=state.score + alive.astype(jnp.int32),
        )
        reward = alive.astype(jnp.float32) / params.max_steps_in_episode
        truncated = (timestep >= params.max_steps_in_episode) & alive
        return next_state, reward, terminated, truncated, {}

    # ---------------------------------------------------------------------------- drawing
    def draw_background(self) -> np.ndarray:
        """Background, banner, and the track with posts at its ends and a tick at its centre."""
        canvas = super().draw_background()
        s, o = self.scale, self.board_origin
        boxes = (
            ((-2, TRACK_TOP), (98, TRACK_BOTTOM)),  # the rail
            ((-2, TRACK_TOP - 8), (0, TRACK_BOTTOM)),  # left end post
            ((96, TRACK_TOP - 8), (98, TRACK_BOTTOM)),  # right end post
            ((47, TRACK_BOTTOM), (49, TRACK_BOTTOM + 3)),  # x = 0
        )
        for (x0, y0), (x1, y1) in boxes:
            top_left, bottom_right = (o + x0 * s, o + y0 * s), (o + x1 * s, o + y1 * s)
            canvas = draw_utils.draw_rectangle(canvas, top_left, bottom_right, TRACK_COLOR)
        return np.asarray(canvas)

    def _paint_area(self, canvas: jax.Array, box: tuple[int, int, int, int], mask: jax.Array) -> jax.Array:
        """Redraw a static board area: the background, with ``mask`` in the arrow colour."""
        s, o = self.scale, self.board_origin
        r0, r1, c0, c1 = (o + v * s for v in box)
        area = jnp.where(mask[..., None], jnp.asarray(ARROW_COLOR, jnp.uint8), self.background[r0:r1, c0:c1])
        return canvas.at[r0:r1, c0:c1].set(area)

    def _draw_cart_pole(
        self, canvas: jax.Array, x: jax.Array, theta: jax.Array, show: jax.Array
    ) -> jax.Array:
        """Redraw the window of the cart's band around the cart: one distance test per pixel."""
        s = self.scale
        cart_centre = CART_WIDTH / 2 + (96 - CART_WIDTH) * (x + X_LIMIT) / (2 * X_LIMIT)
        width = SCENE_WINDOW * s
        start = jnp.floor((cart_centre - SCENE_WINDOW / 2) * s).astype(jnp.int32)
        start = jnp.clip(start, 0, 96 * s - width)
        px = (start + jnp.arange(width, dtype=jnp.float32)[None, :] + 0.5) / s
        py = self._scene_y
        left = cart_centre - CART_WIDTH / 2
        cart = (px >= left) & (px < left + CART_WIDTH) & (py >= CART_TOP) & (py < CART_TOP + CART_HEIGHT)
        # The pole is a capsule: pixels within POLE_RADIUS of the segment from pivot to tip.
        ux, uy = POLE_LENGTH * jnp.sin(theta), -POLE_LENGTH * jnp.cos(theta)
        dx, dy = px - cart_centre, py - PIVOT_Y
        t = jnp.clip((dx * ux + dy * uy) / POLE_LENGTH**2, 0.0, 1.0)
        pole = (dx - t * ux) ** 2 + (dy - t * uy) ** 2 <= POLE_RADIUS**2
        under = jnp.asarray(self._scene_background)
        area = jax.lax.dynamic_slice(under, (0, start, 0), (py.shape[0], width, 3))
        area = jnp.where((cart & show)[..., None], jnp.asarray(CART_COLOR, jnp.uint8), area)
        area = jnp.where((pole & show)[..., None], jnp.asarray(POLE_COLOR, jnp.uint8), area)
        top = self.board_origin + SCENE_ROWS[0] * s
        corner = (jnp.int32(top), self.board_origin + start, jnp.int32(0))
        return jax.lax.dynamic_update_slice(canvas, area, corner)

    def _render(self, state: CartPoleState, show_cart_pole: jax.Array) -> jax.Array:
        x, x_dot, theta, theta_dot = shown_values(state)
        # The score first: it reads the band it draws on, which is cheapest while that band is
        # still the constant background.
        canvas = self.draw_score(self.frame(), state.score)
        canvas = self._draw_cart_pole(canvas, x, theta, show_cart_pole)
        canvas = self._paint_area(canvas, H_ARROW_BOX, horizontal_arrow_mask(*self._h_arrow_xy, x_dot))
        return self._paint_area(canvas, C_ARROW_BOX, curved_arrow_mask(*self._c_arrow_xy, theta_dot))

    def render_mdp(self, state: CartPoleState) -> jax.Array:
        """Cart, pole and both velocity arrows."""
        return self._render(state, jnp.bool_(True))

    def render_pomdp(self, state: CartPoleState) -> jax.Array:
        """Only the velocity arrows, except at t = 0 where the full scene is drawn."""
        return self._render(state, state.timestep == 0)


class NoisyCartPole(CartPole):
    """CartPole seen through Gaussian observation noise.

    The rules, actions, rewards, end conditions and frames are CartPole's (see
    :class:`CartPole`), with every level 200 steps long (reward ``1/200`` per step, return in
    ``[0, 1]``). Each frame draws ``x + sigma n1`` (clipped to the track), ``x_dot + sigma n2``,
    ``theta + sigma n3`` (clipped to 12 degrees) and ``theta_dot + sigma n4``, with fresh
    ``n_i ~ N(0, 1)`` drawn from the step (or reset) key and stored in the state; the dynamics
    and the reward see the true values. Both twins draw the noisy values; the POMDP hides the
    cart and the pole after t = 0 as in CartPole.

    - difficulty:

        | level  | max_steps | sigma |
        |--------|-----------|-------|
        | Easy   | 200       | 0.1   |
        | Medium | 200       | 0.2   |
        | Hard   | 200       | 0.3   |
    """

    difficulties: ClassVar[dict[str, CartPoleDifficulty]] = {
        "Easy": CartPoleDifficulty(max_steps=200, noise_sigma=0.1),
        "Medium": CartPoleDifficulty(max_steps=200, noise_sigma=0.2),
        "Hard": CartPoleDifficulty(max_steps=200, noise_sigma=0.3),
    }
    title: ClassVar[str] = "NOISYCARTPOLE"
