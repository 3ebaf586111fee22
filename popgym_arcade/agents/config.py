"""Frozen configs of a training run. Every field is a ``popgym-arcade train`` flag.

A run is a :class:`TrainConfig`: what to train on (env, twin, size), for how long, with which
network (:class:`NetworkConfig`) and which algorithm; each algorithm reads its own section
(:class:`PQNConfig`, :class:`PPOConfig`, :class:`DQNConfig`). Defaults follow the published
hyperparameters with its schedule bugs fixed (learning rate and epsilon decay over fractions of
the whole run, measured in updates).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

ALGORITHMS = ("pqn", "ppo", "dqn")


@dataclass(frozen=True)
class NetworkConfig:
    """Network shape (see :mod:`popgym_arcade.agents.networks`)."""

    encoder: str = "paper"
    """pixel encoder: `paper` (published CNN) or `small` (pooled to 32x32; ~10x cheaper, for CPUs)"""
    features: int = 512
    """width of the encoder's output"""
    memory: str = "MLP"
    """memory model name (MLP = no memory); see `popgym-arcade train --list-memory`"""
    memory_hidden: int = 512
    """width of the memory cells"""
    memory_output: int = 256
    """width of the memory trunk's output"""
    memory_layers: int = 2
    """memory cells stacked in the trunk"""
    head_hidden: int = 256
    """hidden width of the Q / policy / value heads"""
    previous_action: bool = True
    """feed a one-hot of the previous action to the memory"""
    previous_reward: bool = False
    """feed the previous reward to the memory"""
    frame_stack: int = 4
    """window of the FrameStack memory"""
    attention_window: int = 128
    """context length of the attention memories"""


@dataclass(frozen=True)
class PQNConfig:
    """PQN: parallel Q(lambda) without replay or target network (Gallici et al., 2024)."""

    lr: float = 5e-5
    """Adam-family (RAdam) learning rate"""
    lr_decay: bool = True
    """decay the learning rate linearly to 0 over the run"""
    lam: float = 0.95
    """lambda of the Q(lambda) targets"""
    epochs: int = 4
    """passes over each rollout"""
    minibatches: int = 16
    """minibatches per pass, split over envs (must divide num_envs)"""
    eps_start: float = 1.0
    """initial epsilon of epsilon-greedy exploration"""
    eps_finish: float = 0.05
    """final epsilon"""
    eps_decay: float = 0.25
    """fraction of the run over which epsilon decays linearly"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""
    reward_scale: float = 1.0
    """rewards are multiplied by this for learning"""


@dataclass(frozen=True)
class PPOConfig:
    """PPO with GAE and a clipped value loss (Schulman et al., 2017)."""

    lr: float = 1e-4
    """Adam learning rate"""
    lr_decay: bool = True
    """decay the learning rate linearly to 0 over the run"""
    gae_lambda: float = 0.95
    """lambda of generalised advantage estimation"""
    epochs: int = 4
    """passes over each rollout"""
    minibatches: int = 16
    """minibatches per pass, split over envs (must divide num_envs)"""
    clip_eps: float = 0.2
    """PPO ratio and value clip"""
    ent_coef: float = 0.01
    """entropy bonus"""
    vf_coef: float = 0.5
    """value-loss weight"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""
    shared_trunk: bool = False
    """one encoder+memory for actor and critic (cheaper) instead of two towers"""


@dataclass(frozen=True)
class DQNConfig:
    """DQN with a target network and a replay of sequences."""

    lr: float = 5e-5
    """Adam-family (RAdam) learning rate"""
    lr_decay: bool = True
    """decay the learning rate linearly to 0 over the run"""
    lam: float = 0.0
    """lambda of the targets (0 = one-step DQN)"""
    buffer_sequences: int = 256
    """replay capacity in sequences of rollout_steps + 1 frames (uint8 frames)"""
    batch_sequences: int = 16
    """sequences per gradient step"""
    updates_per_rollout: int = 8
    """gradient steps per rollout"""
    target_update_every: int = 4
    """rollouts between target-network copies (or see tau)"""
    tau: float = 1.0
    """target update rate: 1 = hard copy every target_update_every rollouts, <1 = Polyak each rollout"""
    learning_starts: int = 4
    """rollouts collected before the first gradient step"""
    eps_start: float = 1.0
    """initial epsilon of epsilon-greedy exploration"""
    eps_finish: float = 0.05
    """final epsilon"""
    eps_decay: float = 0.25
    """fraction of the run over which epsilon decays linearly"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""
    double_q: bool = True
    """choose the bootstrap action with the online network"""


@dataclass(frozen=True)
class TrainConfig:
    """One training run: ``seeds`` agents of one algorithm on one twin, trained in one program."""

    algo: str = "pqn"
    """learning algorithm: pqn, ppo or dqn"""
    env: str = "CartPoleEasy"
    """environment id (see `popgym-arcade list`)"""
    partial: bool = False
    """train on the POMDP twin (default: the MDP twin)"""
    obs_size: int = 128
    """observation size, 128 or 256"""
    seed: int = 0
    """root seed; the seeds of a run are derived from it"""
    seeds: int = 1
    """independent agents trained at once (vmapped)"""
    steps: int = 2_000_000
    """environment steps per seed"""
    num_envs: int = 16
    """parallel envs per seed"""
    rollout_steps: int = 128
    """steps per env between updates (also the training sequence length)"""
    gamma: float = 0.99
    """discount"""
    bootstrap_truncated: bool = True
    """bootstrap from the final frame on time-limit truncation (costs one render and forward per step)"""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    pqn: PQNConfig = field(default_factory=PQNConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    eval_episodes: int = 16
    """greedy evaluation episodes per seed and twin at the end of training"""
    eval_max_steps: int = 4000
    """cap on an evaluation episode's length (an unfinished episode counts its partial return)"""
    chunk_updates: int = 0
    """updates per jitted chunk between logs/checkpoints (0 = about 50 chunks per run)"""
    checkpoint_every: int = 1
    """chunks between checkpoints"""

    def __post_init__(self):
        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown algo {self.algo!r}; valid: {', '.join(ALGORITHMS)}")
        for name in ("seeds", "steps", "num_envs", "rollout_steps", "eval_episodes", "eval_max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < self.num_envs * self.rollout_steps:
            raise ValueError(
                f"steps ({self.steps}) must be at least num_envs * rollout_steps "
                f"({self.num_envs * self.rollout_steps}): one update"
            )

    @property
    def num_updates(self) -> int:
        """Updates per seed: ``steps // (num_envs * rollout_steps)``."""
        return self.steps // (self.num_envs * self.rollout_steps)

    @property
    def steps_per_update(self) -> int:
        """Env steps per seed per update."""
        return self.num_envs * self.rollout_steps

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready nested dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        return _from_dict(cls, data)


_SECTIONS = {"network": NetworkConfig, "pqn": PQNConfig, "ppo": PPOConfig, "dqn": DQNConfig}


def _from_dict(cls, data: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        section = _SECTIONS.get(key) if cls is TrainConfig else None
        kwargs[key] = _from_dict(section, value) if section is not None else value
    return cls(**kwargs)


def config_json(config: TrainConfig) -> str:
    """The canonical JSON text of a config (sorted keys), as written to a run's config.json."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)
