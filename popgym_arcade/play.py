"""Human play: drive a twin (or both twins at once) from the keyboard, in a pygame-ce window.

    popgym-arcade play ENV_ID [--partial] [--size 128|256] [--both] [--scale N] [--seed S]
                              [--save DIR] [--episodes K]

Arrow keys are up (0), down (1), left (2) and right (3); space is fire (4). Esc or closing the
window quits; any other key does nothing. The games are turn-based: one key press is one
environment step, and the window waits for the next press (no frame loop).

``--both`` shows the MDP twin (left) and the POMDP twin (right) of one shared state, driven by
the same keys. The twins share state, dynamics and reward, so one state is stepped and rendered
by each twin. The twin a saved episode is credited to is the POMDP twin with ``--partial`` and
the MDP twin without it.

``--save DIR`` writes every finished episode to ``DIR/<env>_<mdp|pomdp>_<UTC timestamp>.json``:
``{"kind": "human_episode", "env", "partial", "obs_size", "seed", "actions", "rewards",
"return", "length"}``. Episode ``k`` (from 0) of a session started with ``--seed S`` is played
with seed ``S + k``, so a record's ``seed`` and ``actions`` replay it exactly (:func:`replay`).

The logic lives in :class:`PlaySession`, which needs no display; :func:`run_window` is the thin
pygame loop around it. pygame is imported only when a window is opened (the ``play`` extra).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade._extras import install_hint
from popgym_arcade.environments.base import NUM_ACTIONS, Environment
from popgym_arcade.media import side_by_side
from popgym_arcade.registration import REGISTERED_ENVIRONMENTS, make

KEY_ACTIONS: dict[str, int] = {"UP": 0, "DOWN": 1, "LEFT": 2, "RIGHT": 3, "SPACE": 4}
"""pygame key names (``pygame.K_<name>``) and the action each one takes."""

GAP = 4
"""Pixels between the two twins with ``--both`` (before scaling), as in :func:`media.side_by_side`."""

STATUS_HEIGHT = 28
"""Height in window pixels of the text strip under the frames."""


def twin_name(partial: bool) -> str:
    """``"pomdp"`` for the partially observable twin, ``"mdp"`` otherwise."""
    return "pomdp" if partial else "mdp"


def split_step_key(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(next_key, step_key)``: how a session derives each step's key from its running key."""
    next_key, step_key = jax.random.split(key)
    return next_key, step_key


def episode_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(reset_key, running_key)`` of the episode played with ``seed``."""
    reset_key, key = jax.random.split(jax.random.key(seed))
    return reset_key, key


@dataclass(frozen=True)
class Compiled:
    """The twins of one play configuration, with their functions compiled (shared by its sessions).

    ``reset`` and ``step`` are the acting env's own jitted methods, called as they are, so a
    session steps bit for bit like ``env.step``; the frame ``step`` renders is reused, and only
    the other twin (with ``both``) is rendered on top.

    Attributes:
        env: the twin that acts and is credited (POMDP if ``partial`` else MDP).
        params: its parameters.
        other: the other twin with ``both`` (rendered beside ``env``), else ``None``.
        render_other: jitted ``other.render``, or ``None``.
    """

    env: Environment
    params: Any
    other: Environment | None
    render_other: Callable[[Any], jax.Array] | None

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """``env.reset``: ``(obs, state)``."""
        return self.env.reset(key, self.params)

    def step(self, key: jax.Array, state: Any, action: int) -> tuple[jax.Array, Any, jax.Array, jax.Array]:
        """``env.step`` (auto-resetting): ``(obs, state, reward, done)``."""
        obs, state, reward, terminated, truncated, _ = self.env.step(
            key, state, _action_array(action), self.params
        )
        return obs, state, reward, jnp.logical_or(terminated, truncated)

    def frames(self, obs: jax.Array, state: Any) -> tuple[np.ndarray, ...]:
        """The frames shown for ``state``, whose ``env`` observation is ``obs``: MDP first with ``both``."""
        if self.other is None:
            return (np.asarray(obs),)
        pair = (np.asarray(obs), np.asarray(self.render_other(state)))
        return pair[::-1] if self.env.partial_obs else pair


@functools.cache
def twin(env_id: str, partial: bool, obs_size: int) -> tuple[Environment, Any]:
    """``make(env_id, partial, obs_size)``, once: jitted methods compile per env object, so every
    configuration that acts with or renders this twin shares its compiled code."""
    return make(env_id, partial_obs=partial, obs_size=obs_size)


@functools.cache
def compiled(env_id: str, partial: bool = False, obs_size: int = 128, both: bool = False) -> Compiled:
    """Build the twins of a configuration and compile reset, step and render (once per configuration).

    Every function is called once here so that the first key press does not wait on XLA.
    """
    env, params = twin(env_id, partial, obs_size)
    other = twin(env_id, not partial, obs_size)[0] if both else None
    fns = Compiled(env, params, other, jax.jit(other.render) if other is not None else None)
    obs, state = fns.reset(jax.random.key(0))
    jax.block_until_ready((fns.step(jax.random.key(0), state, 0), fns.frames(obs, state)))
    return fns


def _action_array(action: int) -> jax.Array:
    # One dtype for every call, so the jitted step never retraces.
    return jnp.asarray(action, dtype=jnp.int32)


def make_record(
    env_id: str, partial: bool, obs_size: int, seed: int, actions: Sequence[int], rewards: Sequence[float]
) -> dict[str, Any]:
    """A human episode record (the schema the analysis reads as its "Human" row)."""
    rewards = [float(r) for r in rewards]
    return {
        "kind": "human_episode",
        "env": env_id,
        "partial": bool(partial),
        "obs_size": int(obs_size),
        "seed": int(seed),
        "actions": [int(a) for a in actions],
        "rewards": rewards,
        "return": float(sum(rewards)),
        "length": len(rewards),
    }


class PlaySession:
    """One human's play of an id, without any display: state, keys and the episode log.

    Args:
        env_id: a registered id.
        partial: credit the POMDP twin (show it, unless ``both``).
        obs_size: 128 or 256.
        both: render the MDP twin and the POMDP twin of the shared state, left to right.
        seed: episode ``k`` of this session (from 0) is played with seed ``seed + k``.

    Attributes:
        state: the current state (of the episode in progress).
        key: the running key; the next step uses ``split_step_key(key)[1]``.
        episode: index of the episode in progress (from 0).
        finished: records of the finished episodes, oldest first (see :func:`make_record`).
    """

    def __init__(
        self, env_id: str, partial: bool = False, obs_size: int = 128, both: bool = False, seed: int = 0
    ):
        self.env_id = env_id
        self.partial = bool(partial)
        self.obs_size = int(obs_size)
        self.both = bool(both)
        self.seed = int(seed)
        self.fns = compiled(env_id, self.partial, self.obs_size, self.both)
        self.finished: list[dict[str, Any]] = []
        self.episode = 0
        self._start_episode()

    @property
    def env(self) -> Environment:
        """The twin that acts and is credited in the records."""
        return self.fns.env

    @property
    def episode_seed(self) -> int:
        """The seed of the episode in progress."""
        return self.seed + self.episode

    def _start_episode(self) -> None:
        reset_key, self.key = episode_keys(self.episode_seed)
        obs, self.state = self.fns.reset(reset_key)
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self._frames = self.fns.frames(obs, self.state)

    def press(self, action: int | None) -> tuple[np.ndarray, ...]:
        """Take ``action`` (0..4) and return the new frames; ``None`` (an unmapped key) does nothing.

        When the step ends the episode, its record is appended to :attr:`finished` and the next
        episode starts (with the next seed): the frames returned are its first.
        """
        if action is None:
            return self._frames
        if not 0 <= int(action) < NUM_ACTIONS:
            raise ValueError(f"action must be in 0..{NUM_ACTIONS - 1} or None, got {action!r}")
        self.key, step_key = split_step_key(self.key)
        obs, self.state, reward, done = self.fns.step(step_key, self.state, int(action))
        self.actions.append(int(action))
        self.rewards.append(float(reward))
        if bool(done):
            # The auto-reset state is dropped: the next episode starts from its own seed, so
            # that every saved record replays from its seed alone.
            self.finished.append(self.episode_record())
            self.episode += 1
            self._start_episode()
        else:
            self._frames = self.fns.frames(obs, self.state)
        return self._frames

    def frames(self) -> tuple[np.ndarray, ...]:
        """The current frames ``uint8[S, S, 3]``: one, or the MDP and POMDP twins with ``both``."""
        return self._frames

    def episode_record(self) -> dict[str, Any]:
        """The record of the episode in progress, so far (finished ones are in :attr:`finished`)."""
        return make_record(
            self.env_id, self.partial, self.obs_size, self.episode_seed, self.actions, self.rewards
        )

    def status(self) -> str:
        """One line for the window: id, twins shown, episode, step, return so far, last return."""
        views = "MDP | POMDP" if self.both else twin_name(self.partial).upper()
        text = f"{self.env_id} {views}   episode {self.episode + 1}   step {len(self.actions)}"
        text += f"   return {sum(self.rewards):.3f}"
        if self.finished:
            text += f"   last {self.finished[-1]['return']:.3f}"
        return text


def replay(record: dict[str, Any]) -> list[float]:
    """The rewards of replaying a saved record's actions from its seed (equal to its ``rewards``)."""
    fns = compiled(record["env"], bool(record["partial"]), int(record["obs_size"]), False)
    reset_key, key = episode_keys(int(record["seed"]))
    _, state = fns.reset(reset_key)
    rewards = []
    for action in record["actions"]:
        key, step_key = split_step_key(key)
        _, state, reward, _ = fns.step(step_key, state, int(action))
        rewards.append(float(reward))
    return rewards


def save_record(record: dict[str, Any], save_dir: str | Path) -> Path:
    """Write ``record`` to ``save_dir/<env>_<mdp|pomdp>_<UTC timestamp>.json``; never overwrites."""
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    # Microseconds keep two episodes finished within one second apart; the loop guards the rest.
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    stem = f"{record['env']}_{twin_name(record['partial'])}_{stamp}"
    path = save_dir / f"{stem}.json"
    n = 1
    while path.exists():
        path = save_dir / f"{stem}-{n}.json"
        n += 1
    path.write_text(json.dumps(record) + "\n")
    return path


def compose(frames: Sequence[np.ndarray], scale: int = 1) -> np.ndarray:
    """One ``uint8[H, W, 3]`` image of the frames left to right (a gap between), scaled by ``scale``."""
    image = frames[0]
    for frame in frames[1:]:
        image = side_by_side(image, frame, gap=GAP)
    # Nearest-neighbour scaling keeps the pixel art sharp.
    return np.repeat(np.repeat(np.asarray(image), scale, axis=0), scale, axis=1)


def default_scale(obs_size: int) -> int:
    """Scale that makes each twin 512 pixels wide: 4 at 128, 2 at 256."""
    return max(1, 512 // obs_size)


def import_pygame() -> Any:
    """Import pygame-ce, or raise ``ImportError`` saying how to install it."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as error:
        raise ImportError(f"human play needs pygame-ce: {install_hint('play')}") from error
    return pygame


def run_window(
    session: PlaySession, scale: int = 4, save_dir: str | Path | None = None, episodes: int | None = None
) -> list[Path]:
    """Play ``session`` in a window until Esc, a close, or ``episodes`` finished episodes.

    Waits on events (one key press, one step). Finished episodes are written to ``save_dir``
    where given. Returns the paths written.
    """
    pygame = import_pygame()
    keymap = {getattr(pygame, f"K_{name}"): action for name, action in KEY_ACTIONS.items()}
    pygame.display.init()
    font = None
    try:
        pygame.font.init()
        font = pygame.font.Font(None, 20)
    except (pygame.error, OSError):  # pragma: no cover - fonts missing: the caption still shows the status
        font = None
    height, width, _ = compose(session.frames(), scale).shape
    screen = pygame.display.set_mode((width, height + STATUS_HEIGHT))

    def draw() -> None:
        image = compose(session.frames(), scale)
        screen.fill((0, 0, 0))
        screen.blit(pygame.surfarray.make_surface(image.swapaxes(0, 1)), (0, 0))
        text = session.status()
        pygame.display.set_caption(text)
        if font is not None:
            screen.blit(font.render(text, True, (255, 255, 255)), (6, height + 6))
        pygame.display.flip()

    saved: list[Path] = []
    recorded = len(session.finished)  # episodes finished before this window are not counted
    first = recorded
    draw()
    try:
        while episodes is None or recorded - first < episodes:
            event = pygame.event.wait()
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                break
            if event.type == pygame.WINDOWEXPOSED:
                draw()
            # Other events (mouse, key releases, unmapped keys) wake the wait and change nothing.
            if event.type != pygame.KEYDOWN or event.key not in keymap:
                continue
            session.press(keymap[event.key])
            for record in session.finished[recorded:]:
                if save_dir is not None:
                    saved.append(save_record(record, save_dir))
                recorded += 1
            draw()
    finally:
        pygame.display.quit()
    return saved


def play(
    env_id: str,
    partial: bool = False,
    obs_size: int = 128,
    both: bool = False,
    scale: int | None = None,
    seed: int = 0,
    save_dir: str | Path | None = None,
    episodes: int | None = None,
) -> PlaySession:
    """Open a window and play ``env_id``; returns the session (its :attr:`PlaySession.finished` log)."""
    import_pygame()  # fail before compiling when pygame is missing
    session = PlaySession(env_id, partial=partial, obs_size=obs_size, both=both, seed=seed)
    saved = run_window(session, scale or default_scale(obs_size), save_dir, episodes)
    for path in saved:
        print(f"saved {path}")
    return session


def cmd_play(args: argparse.Namespace) -> int:
    """The ``play`` subcommand."""
    if args.env_id not in REGISTERED_ENVIRONMENTS:
        print(f"error: unknown id {args.env_id!r}; see `popgym-arcade list`", file=sys.stderr)
        return 2
    try:
        play(args.env_id, args.partial, args.size, args.both, args.scale, args.seed, args.save, args.episodes)
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``play`` subcommand to ``sub`` (an ``add_subparsers`` result)."""
    p = sub.add_parser(
        "play",
        help="play a game with the keyboard (arrows, space to fire, Esc to quit)",
        description="Arrows: up/down/left/right; space: fire; Esc or closing the window quits. "
        "One key press is one step. With --both the MDP (left) and POMDP (right) twins of one "
        "state are shown; saved episodes are credited to the POMDP twin with --partial, else the MDP.",
    )
    p.add_argument("env_id", help="a registered id, e.g. CartPoleEasy")
    p.add_argument("--partial", action="store_true", help="play the POMDP twin (default: the MDP twin)")
    p.add_argument(
        "--size", type=int, choices=(128, 256), default=128, help="observation size (default: 128)"
    )
    p.add_argument("--both", action="store_true", help="show the MDP and POMDP twins side by side")
    p.add_argument("--scale", type=_positive_int, help="window pixels per frame pixel (default: 512 // size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode k uses seed + k")
    p.add_argument("--save", metavar="DIR", help="write each finished episode to DIR as JSON")
    p.add_argument("--episodes", type=_positive_int, help="quit after this many finished episodes")
    p.set_defaults(func=cmd_play)
    return p
