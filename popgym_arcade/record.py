"""Videos of a policy: one trajectory, the MDP and POMDP twins side by side in every frame.

    popgym-arcade record ENV_ID [--policy random|RUN_DIR] [--partial] [--steps N] [--size 128|256]
                                [--seed S] [--fps F] --out FILE.gif|FILE.mp4

The twins share state, dynamics and reward, so one trajectory serves both: the policy acts on
one twin's observations (the POMDP with ``--partial``; a trained policy acts on the twin it was
trained on) and every state is rendered by both. The whole rollout is one jitted
``jax.lax.scan``. Frame ``t`` of the video is the observation the policy acted on at step ``t``
(MDP left, POMDP right), so ``--steps N`` gives ``N`` frames. GIFs need Pillow (the ``media``
extra); MP4 needs ``imageio-ffmpeg`` (``pip install imageio-ffmpeg``).

A policy is any object with two pure, jit-able functions (:class:`Policy`):
``init(key) -> carry`` and ``act(carry, obs, start, key) -> (carry, action)``, where ``start`` is
``True`` on an episode's first frame (for recurrent policies to reset their memory).
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from popgym_arcade import media
from popgym_arcade._extras import install_hint
from popgym_arcade.environments.base import NUM_ACTIONS
from popgym_arcade.registration import REGISTERED_ENVIRONMENTS, make

VIDEO_SUFFIXES = (".gif", ".mp4")
GAP = 4
"""Pixels between the MDP (left) and POMDP (right) frames."""


@runtime_checkable
class Policy(Protocol):
    """What :func:`rollout` drives: two pure functions, traced inside one jitted scan."""

    def init(self, key: jax.Array) -> Any:
        """The policy's initial carry (e.g. a recurrent state; ``()`` for none)."""
        ...

    def act(self, carry: Any, obs: jax.Array, start: jax.Array, key: jax.Array) -> tuple[Any, jax.Array]:
        """``(carry, action)`` for observation ``obs``; ``start`` is ``True`` on an episode's first frame."""
        ...


@dataclass(frozen=True)
class RandomPolicy:
    """Uniformly random actions in ``0..num_actions - 1``; no carry."""

    num_actions: int = NUM_ACTIONS

    def init(self, key: jax.Array) -> tuple[()]:
        """No carry."""
        return ()

    def act(self, carry: Any, obs: jax.Array, start: jax.Array, key: jax.Array) -> tuple[Any, jax.Array]:
        """A uniform random action, whatever the observation."""
        return carry, jax.random.randint(key, (), 0, self.num_actions, dtype=jnp.int32)


@dataclass(frozen=True)
class Recording:
    """One recorded trajectory.

    Attributes:
        mdp, pomdp: ``uint8[T, S, S, 3]``: frame ``t`` rendered by each twin.
        actions, rewards, dones: ``[T]``: the policy's action at frame ``t``, its reward, and
            whether that step ended the episode.
    """

    mdp: np.ndarray
    pomdp: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray

    def episode_returns(self) -> list[float]:
        """Returns of the episodes that finished within the recording."""
        ends = np.flatnonzero(self.dones)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(int)
        return [float(self.rewards[s : e + 1].sum()) for s, e in zip(starts, ends)]


def rollout(
    env_id: str,
    policy: Policy,
    partial: bool = False,
    num_steps: int = 100,
    obs_size: int = 128,
    seed: int = 0,
) -> Recording:
    """Run ``policy`` on the ``partial`` twin of ``env_id`` for ``num_steps`` steps; keep both twins' frames."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    try:
        hash(policy)
        build = _compiled_rollout
    except TypeError:  # an unhashable policy cannot be a cache key: compile for this call only
        build = _compiled_rollout.__wrapped__
    run = build(env_id, policy, bool(partial), int(num_steps), int(obs_size))
    out = jax.device_get(run(jax.random.key(seed)))
    return Recording(*(np.asarray(x) for x in out))


@functools.lru_cache(maxsize=8)
def _compiled_rollout(env_id: str, policy: Policy, partial: bool, num_steps: int, obs_size: int) -> Any:
    """The jitted rollout ``run(key) -> (mdp, pomdp, actions, rewards, dones)`` of one configuration."""
    mdp, params = make(env_id, partial_obs=False, obs_size=obs_size)
    pomdp, _ = make(env_id, partial_obs=True, obs_size=obs_size)
    actor = pomdp if partial else mdp

    @jax.jit
    def run(key: jax.Array) -> Any:
        reset_key, init_key, key = jax.random.split(key, 3)
        _, state = actor.reset(reset_key, params)

        def body(carry: Any, key: jax.Array) -> tuple[Any, Any]:
            state, policy_carry, start = carry
            act_key, step_key = jax.random.split(key)
            frames = (mdp.render(state), pomdp.render(state))
            # The acting twin's frame is the observation; it is one of the two already drawn.
            obs = frames[1] if partial else frames[0]
            policy_carry, action = policy.act(policy_carry, obs, start, act_key)
            action = jnp.asarray(action, jnp.int32)
            _, state, reward, terminated, truncated, _ = actor.step(step_key, state, action, params)
            done = jnp.logical_or(terminated, truncated)
            return (state, policy_carry, done), (*frames, action, reward, done)

        carry = (state, policy.init(init_key), jnp.asarray(True))
        _, out = jax.lax.scan(body, carry, jax.random.split(key, num_steps))
        return out

    return run


def check_output(path: str | Path) -> Path:
    """Return ``path`` as a ``Path`` if its suffix is a video format this module writes, else raise ``ValueError``.

    Raises ``ImportError`` for ``.mp4`` when ``imageio-ffmpeg`` is missing (before any rollout
    is spent on it).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"cannot write {path.name!r}: the output must end in .gif or .mp4")
    if suffix == ".mp4":
        _import_ffmpeg()
    return path


def _import_ffmpeg() -> Any:
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise ImportError(
            "writing .mp4 needs imageio-ffmpeg (pip install imageio-ffmpeg); or write a .gif instead"
        ) from error
    return imageio_ffmpeg


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """Write ``uint8[T, H, W, 3]`` frames as a GIF (Pillow) or an MP4 (imageio-ffmpeg), by suffix."""
    path = check_output(path)
    if path.suffix.lower() == ".gif":
        return media.write_gif(path, frames, fps=fps)
    imageio_ffmpeg = _import_ffmpeg()
    frames = np.ascontiguousarray(frames)
    height, width = frames.shape[1:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=1: keep the exact size (libx264 with yuv420p needs only even sides, which
    # 2 * 128 + GAP and 2 * 256 + GAP are).
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, macro_block_size=1)
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()
    return path


def load_trained_policy(run_dir: str | Path) -> Any:
    """Load the policy saved in a training run's folder (``popgym_arcade.agents.policy.load_policy``).

    The result follows :class:`Policy` and has ``env_id``, ``partial`` and ``obs_size``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"no run directory {str(run_dir)!r}: --policy takes 'random' or a training run's folder"
        )
    try:
        from popgym_arcade.agents.policy import load_policy
    except ImportError as error:
        raise ImportError(
            "loading a trained policy needs popgym_arcade.agents.policy and its dependencies "
            f"({install_hint('train')}): {error}"
        ) from error
    return load_policy(run_dir)


def record(
    env_id: str,
    out: str | Path,
    policy: str | Path = "random",
    partial: bool | None = None,
    num_steps: int = 100,
    obs_size: int | None = None,
    seed: int = 0,
    fps: float = 8.0,
) -> tuple[Path, Recording]:
    """Record ``num_steps`` frames of ``policy`` (``"random"`` or a run folder) on ``env_id`` to ``out``.

    With a run folder, the policy acts on the twin and size it was trained on; ``partial`` and
    ``obs_size``, where given, must agree with it and ``env_id`` must be its id. ``None`` means
    the MDP twin and 128 pixels for the random policy.
    """
    out = check_output(out)
    if env_id not in REGISTERED_ENVIRONMENTS:
        raise ValueError(f"unknown id {env_id!r}; see `popgym-arcade list`")
    if str(policy) == "random":
        actor: Any = RandomPolicy()
        partial = bool(partial)
        obs_size = obs_size or 128
    else:
        actor = load_trained_policy(policy)
        if actor.env_id != env_id:
            raise ValueError(f"the policy in {policy} was trained on {actor.env_id}, not {env_id}")
        twin = "POMDP" if actor.partial else "MDP"
        if partial is not None and bool(partial) != bool(actor.partial):
            raise ValueError(f"the policy in {policy} was trained on the {twin} twin")
        if obs_size is not None and obs_size != actor.obs_size:
            raise ValueError(f"the policy in {policy} was trained at {actor.obs_size} pixels, not {obs_size}")
        partial, obs_size = bool(actor.partial), int(actor.obs_size)
    recording = rollout(env_id, actor, partial, num_steps, obs_size, seed)
    path = write_video(out, media.side_by_side(recording.mdp, recording.pomdp, gap=GAP), fps=fps)
    return path, recording


def cmd_record(args: argparse.Namespace) -> int:
    """The ``record`` subcommand."""
    try:
        path, recording = record(
            args.env_id,
            args.out,
            args.policy,
            partial=True if args.partial else None,
            num_steps=args.steps,
            obs_size=args.size,
            seed=args.seed,
            fps=args.fps,
        )
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    returns = recording.episode_returns()
    summary = ", ".join(f"{r:.3f}" for r in returns) if returns else "none finished"
    print(
        f"wrote {path}: {len(recording.actions)} frames (MDP left, POMDP right); episode returns: {summary}"
    )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``record`` subcommand to ``sub`` (an ``add_subparsers`` result)."""
    p = sub.add_parser(
        "record",
        help="record a policy's trajectory as a GIF/MP4, MDP and POMDP twins side by side",
        description="One trajectory of the shared state; each frame shows the MDP twin (left) and the "
        "POMDP twin (right). The policy acts on one twin: the POMDP with --partial, or the twin a "
        "trained policy was trained on.",
    )
    p.add_argument("env_id", help="a registered id, e.g. CartPoleEasy")
    p.add_argument("--policy", default="random", help="'random' (default) or a training run's folder")
    p.add_argument("--partial", action="store_true", help="the random policy acts on the POMDP twin")
    p.add_argument("--steps", type=_positive_int, default=100, help="steps, one frame each (default: 100)")
    p.add_argument(
        "--size", type=int, choices=(128, 256), help="observation size (default: 128, or the policy's)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=8.0, help="frames per second (default: 8)")
    p.add_argument("--out", required=True, help="output file: .gif (Pillow) or .mp4 (imageio-ffmpeg)")
    p.set_defaults(func=cmd_record)
    return p
