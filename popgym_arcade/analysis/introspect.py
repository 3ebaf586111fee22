"""From trained run folders to the inputs and results of the introspection analyses.

Saliency, recall density and contamination (:mod:`~popgym_arcade.analysis.saliency`,
:mod:`~popgym_arcade.analysis.recall`, :mod:`~popgym_arcade.analysis.contamination`) take a
sequence function and a trajectory. This module provides both for every seed of a run folder
written by ``popgym-arcade train``:

- **trajectories**: each seed plays greedily on the twin it was trained on
  (:func:`popgym_arcade.record.rollout`, the same code as ``popgym-arcade record``). One rollout
  of ``episodes * max_steps`` steps is split at episode ends; an episode longer than
  ``max_steps`` is cut there, and an episode still running when the rollout stops is kept only
  if it already has ``max_steps`` frames. Should one rollout hold fewer than ``episodes``
  episodes (long episodes), further rollouts with the next rollout seeds are added; each holds at
  least one, so at most ``episodes`` rollouts are needed.
- **sequence function**: the seed's ``AgentPolicy.apply`` (Q-values for PQN/DQN, action
  probabilities for PPO), built once per seed so that its compiled functions are reused.

Every trajectory is padded to ``max_steps`` frames (zeros, ``start=True``, which a causal model
cannot see from earlier steps) before it is differentiated or replayed, so one compiled function
per seed and analysis serves every episode; the statistics use each episode's own length.

Compiled programs per seed: one rollout, one saliency function (saliency and recall share it),
one replay (contamination). Seeds are processed one after another and only their summaries are
kept, so memory does not grow with the number of seeds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from popgym_arcade.analysis.contamination import (
    ContaminationResult,
    ContaminationSummary,
    add_frame_noise,
    compare_outputs,
    noise_contamination,
    shuffle_contamination,
    shuffle_first_frames,
    summarise_contamination,
)
from popgym_arcade.analysis.recall import RecallSample, trajectory_recall
from popgym_arcade.analysis.records import AnalysisError, find_sources, load_run, split_env_id
from popgym_arcade.analysis.saliency import saliency_maps

ANALYSES = ("saliency", "recall", "contamination")
PERTURBATIONS = ("noise", "shuffle")
# Streams of the contamination keys, so noise and shuffle never share random numbers.
_PERTURBATION_STREAM = {"noise": 0, "shuffle": 1}


# ---------------------------------------------------------------------------------------------
# Trajectories


@dataclass(frozen=True, eq=False)
class Episode:
    """One episode played by an agent on its own twin, from its first frame.

    Attributes:
        obs: ``uint8[L, S, S, 3]``: the frames the agent acted on.
        start: ``bool[L]``: True on the first frame only.
        prev_action: ``int32[L]``: the action before each frame (0 on the first frame).
        actions: ``int32[L]``: the action taken at each frame.
        rewards: ``float32[L]``: the reward of each step.
        finished: whether the episode ended at its last frame (False: cut at ``max_steps``).
    """

    obs: np.ndarray
    start: np.ndarray
    prev_action: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    finished: bool

    @property
    def length(self) -> int:
        """Number of frames L."""
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        """Sum of the rewards of the kept steps."""
        return float(np.sum(self.rewards))


def _episode(frames, actions, rewards, begin: int, stop: int, finished: bool) -> Episode:
    actions = np.asarray(actions[begin:stop], np.int32)
    start = np.zeros(stop - begin, bool)
    start[0] = True
    return Episode(
        obs=np.asarray(frames[begin:stop], np.uint8),
        start=start,
        prev_action=np.concatenate([[0], actions[:-1]]).astype(np.int32),
        actions=actions,
        rewards=np.asarray(rewards[begin:stop], np.float32),
        finished=finished,
    )


def split_episodes(frames, actions, rewards, dones, max_steps: int) -> tuple[Episode, ...]:
    """The episodes of one recording (frame ``t`` acted on with ``actions[t]``; ``dones[t]`` ends it).

    An episode begins at frame 0 and after every done. It keeps its frames up to its done, at
    most ``max_steps`` of them; the last episode, still running when the recording stops, is
    kept only if it already has ``max_steps`` frames (a shorter one is neither finished nor cut).
    """
    if max_steps < 1:
        raise AnalysisError(f"max_steps must be >= 1, got {max_steps}")
    dones = np.asarray(dones, bool)
    total = len(dones)
    ends = np.flatnonzero(dones)
    begins = np.concatenate([[0], ends + 1]).astype(int)
    episodes = []
    for begin in begins[begins < total]:
        later_ends = ends[ends >= begin]
        end = int(later_ends[0]) if later_ends.size else None
        available = (end + 1 if end is not None else total) - begin
        if end is None and available < max_steps:
            continue
        stop = begin + min(available, max_steps)
        finished = end is not None and end < stop
        episodes.append(_episode(frames, actions, rewards, int(begin), int(stop), finished))
    return tuple(episodes)


@dataclass(frozen=True, eq=False)
class _SameObject:
    """A policy hashed by identity, so repeated rollouts of one agent reuse one compiled rollout.

    ``record.rollout`` caches its compiled scan on the policy; an ``AgentPolicy`` holds arrays and
    cannot be hashed, which would compile every rollout again.
    """

    policy: Any

    def init(self, key: jax.Array) -> Any:
        return self.policy.init(key)

    def act(self, carry: Any, obs: jax.Array, start: jax.Array, key: jax.Array) -> tuple[Any, jax.Array]:
        return self.policy.act(carry, obs, start, key)


def agent_trajectories(policy: Any, episodes: int, max_steps: int, seed: int = 0) -> tuple[Episode, ...]:
    """``episodes`` episodes of ``policy`` acting greedily on its own twin (see the module docstring).

    Args:
        policy: an agent with ``init``/``act``, ``env_id``, ``partial`` and ``obs_size`` (an
            :class:`~popgym_arcade.agents.policy.AgentPolicy`).
        episodes: number of episodes.
        max_steps: frames kept per episode at most.
        seed: seed of the first rollout (further rollouts use ``seed + 1``, ``seed + 2``, ...).
    """
    from popgym_arcade.record import rollout

    if episodes < 1:
        raise AnalysisError(f"episodes must be >= 1, got {episodes}")
    if max_steps < 1:
        raise AnalysisError(f"max_steps must be >= 1, got {max_steps}")
    actor = _SameObject(policy)
    collected: list[Episode] = []
    attempt = 0
    while len(collected) < episodes:
        recording = rollout(
            policy.env_id,
            actor,
            bool(policy.partial),
            episodes * max_steps,
            int(policy.obs_size),
            seed + attempt,
        )
        frames = recording.pomdp if policy.partial else recording.mdp
        collected.extend(
            split_episodes(frames, recording.actions, recording.rewards, recording.dones, max_steps)
        )
        attempt += 1
    return tuple(collected[:episodes])


def padded_inputs(episode: Episode, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(obs float32, start, prev_action)`` of ``episode`` padded at the end to ``length`` steps.

    Padding frames are zeros with ``start=True``: a causal model's outputs up to the episode's
    last frame do not depend on them.
    """
    extra = length - episode.length
    if extra < 0:
        raise AnalysisError(f"cannot pad an episode of {episode.length} frames to {length}")
    obs = np.concatenate([episode.obs, np.zeros((extra, *episode.obs.shape[1:]), np.uint8)])
    start = np.concatenate([episode.start, np.ones(extra, bool)])
    prev_action = np.concatenate([episode.prev_action, np.zeros(extra, np.int32)])
    return obs.astype(np.float32), start, prev_action


# ---------------------------------------------------------------------------------------------
# Runs and agents


@dataclass(frozen=True)
class RunInfo:
    """What a run folder is: env, algorithm, memory model, the twin it was trained on, seeds."""

    run_dir: Path
    env: str
    algo: str
    memory: str
    twin: str
    seeds: int
    obs_size: int

    @property
    def game(self) -> str:
        """The env id without its difficulty."""
        return split_env_id(self.env)[0]

    @property
    def partial(self) -> bool:
        """Trained on the POMDP twin."""
        return self.twin == "pomdp"


def run_info(run_dir: str | os.PathLike) -> RunInfo:
    """The :class:`RunInfo` of a finished, evaluated run folder.

    Raises:
        AnalysisError: not a run folder, no ``evaluation.json`` yet, or malformed files.
    """
    rows = load_run(run_dir)  # validates config.json and evaluation.json against each other
    if not rows:
        raise AnalysisError(f"{run_dir}: evaluation.json holds no returns")
    first = rows[0]
    return RunInfo(
        run_dir=Path(run_dir),
        env=first.env,
        algo=first.algo,
        memory=first.memory,
        twin=first.trained_on,
        seeds=len({row.seed for row in rows}),
        obs_size=first.obs_size,
    )


def find_runs(paths: Iterable[str | os.PathLike]) -> tuple[RunInfo, ...]:
    """The evaluated run folders under ``paths`` (run folders or folders holding them), sorted.

    Raises:
        AnalysisError: a path does not exist, no run folder is found, or a run is not evaluated.
    """
    paths = list(paths)
    runs, _ = find_sources(paths)
    if not runs:
        raise AnalysisError(
            "no run folders found under " + ", ".join(str(p) for p in paths) + ": expected folders "
            "written by `popgym-arcade train` (config.json, checkpoints/, evaluation.json)"
        )
    return tuple(sorted((run_info(run) for run in runs), key=lambda r: str(r.run_dir)))


def require_one_game(runs: Sequence[RunInfo], analysis: str) -> str:
    """The one game of ``runs``; :class:`AnalysisError` naming the games when there are several."""
    games = sorted({run.game for run in runs})
    if len(games) != 1:
        raise AnalysisError(
            f"{analysis} compares the runs of one game, got {len(games)}: {', '.join(games)}; "
            f"run it once per game (pass only that game's run folders)"
        )
    return games[0]


def require_one_algorithm(runs: Sequence[RunInfo]) -> str:
    """The one algorithm of ``runs``: Q-value and policy agents are measured in different units."""
    algos = sorted({run.algo for run in runs})
    if len(algos) != 1:
        raise AnalysisError(
            f"expected runs of one algorithm, got {len(algos)}: {', '.join(algos)} (Q-values and policies "
            f"are measured in different units); analyse each algorithm's runs separately"
        )
    return algos[0]


@dataclass(frozen=True, eq=False)
class SeedAgent:
    """One trained seed: its greedy policy and its sequence function (built once, reused)."""

    run: RunInfo
    seed: int
    policy: Any
    apply: Callable
    kind: str


def load_agents(run: RunInfo) -> tuple[SeedAgent, ...]:
    """Every seed of a run (parameters read once; one ``apply`` object per seed).

    Raises:
        AnalysisError: no checkpoint, a checkpoint that does not match its config, or an agent
            that reads the previous reward (it cannot be replayed from frames alone).
    """
    from popgym_arcade.agents.policy import AgentPolicy, load_params
    from popgym_arcade.runs.train import RunError

    try:
        algorithm, params = load_params(run.run_dir)
    except RunError as error:
        raise AnalysisError(str(error)) from error
    config = algorithm.config
    if config.network.previous_reward:
        raise AnalysisError(
            f"{run.run_dir}: agents that read the previous reward cannot be replayed from frames"
        )
    agents = []
    for seed in range(config.seeds):
        one_seed = jax.tree.map(lambda leaf, s=seed: leaf[s], params)
        policy = AgentPolicy(
            algorithm, one_seed, config.env, config.partial, config.obs_size, algorithm.kind, seed
        )
        # A bound method is a new object at every attribute access: keep this one, because the
        # analyses cache their compiled functions on the identity of apply.
        agents.append(SeedAgent(run, seed, policy, policy.apply, algorithm.kind))
    return tuple(agents)


# ---------------------------------------------------------------------------------------------
# Per-episode analyses


def episode_saliency(agent: SeedAgent, episode: Episode, pad_to: int) -> np.ndarray:
    """Saliency maps ``[L, H, W]`` of every frame for the output at the episode's last frame."""
    obs, start, prev_action = padded_inputs(episode, pad_to)
    maps = saliency_maps(agent.apply, agent.kind, obs, start, prev_action, target_step=episode.length - 1)
    return np.asarray(maps)[: episode.length]


def episode_recall(agent: SeedAgent, episode: Episode, pad_to: int) -> RecallSample:
    """The recall shares of one episode, as a sample labelled with the run and seed."""
    obs, start, prev_action = episode.obs.astype(np.float32), episode.start, episode.prev_action
    shares = trajectory_recall(agent.apply, agent.kind, obs, start, prev_action, pad_to=pad_to)
    return RecallSample(
        agent.run.env, agent.run.twin, agent.run.memory, agent.seed, tuple(map(float, shares))
    )


def crop_result(result: ContaminationResult, length: int) -> ContaminationResult:
    """The comparison restricted to the first ``length`` steps (drops the padding)."""
    return compare_outputs(
        result.kind,
        result.clean_out[:length],
        result.perturbed_out[:length],
        first_perturbed=result.first_perturbed,
        last_perturbed=result.last_perturbed,
        perturbation=result.perturbation,
    )


def contamination_key(seed: int, agent_seed: int, episode_index: int, perturbation: str) -> jax.Array:
    """The key of one perturbation: a function of the analysis seed, the agent's seed and the episode."""
    key = jax.random.key(seed)
    for value in (_PERTURBATION_STREAM[perturbation], agent_seed, episode_index):
        key = jax.random.fold_in(key, value)
    return key


def perturbation_fits(perturbation: str, length: int, noise_step: int, shuffle_k: int) -> bool:
    """Whether an episode of ``length`` frames is long enough for the perturbation."""
    if perturbation == "noise":
        return 0 <= noise_step < length
    return 2 <= shuffle_k <= length


def episode_contamination(
    agent: SeedAgent,
    episode: Episode,
    perturbation: str,
    key: jax.Array,
    *,
    pad_to: int,
    sigma: float,
    noise_step: int,
    shuffle_k: int,
) -> ContaminationResult:
    """One perturbed replay of ``episode`` (noise on frame ``noise_step``, or shuffled first ``shuffle_k``)."""
    obs, start, prev_action = padded_inputs(episode, pad_to)
    if perturbation == "noise":
        result = noise_contamination(
            agent.apply, agent.kind, obs, start, prev_action, step=noise_step, sigma=sigma, key=key
        )
    elif perturbation == "shuffle":
        result = shuffle_contamination(agent.apply, agent.kind, obs, start, prev_action, k=shuffle_k, key=key)
    else:
        raise AnalysisError(f"perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
    return crop_result(result, episode.length)


def perturbed_frames(
    episode: Episode, perturbation: str, key: jax.Array, *, sigma: float, noise_step: int, shuffle_k: int
) -> np.ndarray:
    """The perturbed frames ``[L, S, S, 3]`` (0..255 floats) that :func:`episode_contamination` replayed."""
    obs = episode.obs.astype(np.float32)
    if perturbation == "noise":
        return np.asarray(add_frame_noise(obs, noise_step, sigma, key))
    return np.asarray(shuffle_first_frames(obs, shuffle_k, key)[0])


# ---------------------------------------------------------------------------------------------
# Whole runs


@dataclass(frozen=True)
class IntrospectionSettings:
    """How many trajectories to collect and how to perturb them.

    Attributes:
        episodes: episodes per seed.
        max_steps: frames per episode at most (and the padded length of every sequence).
        seed: seed of the rollouts and of the perturbations.
        sigma: noise scale in 0..255 pixel units.
        noise_step: the frame that gets the noise.
        shuffle_k: the first ``shuffle_k`` frames are shuffled.
        saliency_seed: the trained seed whose trajectory gives the saliency example.
    """

    episodes: int = 8
    max_steps: int = 64
    seed: int = 0
    sigma: float = 255.0
    noise_step: int = 1
    shuffle_k: int = 8
    saliency_seed: int = 0

    def __post_init__(self):
        if self.episodes < 1 or self.max_steps < 1:
            raise AnalysisError(f"episodes and max_steps must be >= 1, got {self.episodes}, {self.max_steps}")
        if not (self.sigma >= 0 and math.isfinite(self.sigma)):
            raise AnalysisError(f"sigma must be a finite number >= 0 (pixel units), got {self.sigma}")
        if self.noise_step < 0 or self.shuffle_k < 2:
            raise AnalysisError(
                f"need noise step >= 0 and shuffle k >= 2, got {self.noise_step}, {self.shuffle_k}"
            )

    def check_perturbations(self) -> None:
        """Raise unless some episode of ``max_steps`` frames can take both perturbations."""
        if not self.noise_step < self.max_steps:
            raise AnalysisError(
                f"noise step must lie in [0, max_steps) = [0, {self.max_steps}), got {self.noise_step}"
            )
        if not self.shuffle_k <= self.max_steps:
            raise AnalysisError(
                f"shuffle k must lie in [2, max_steps] = [2, {self.max_steps}], got {self.shuffle_k}"
            )


@dataclass(frozen=True, eq=False)
class SaliencyExample:
    """Saliency maps of one episode of one seed, for the output at the episode's last frame."""

    run: RunInfo
    seed: int
    frames: np.ndarray
    maps: np.ndarray

    @property
    def target_step(self) -> int:
        """n = L - 1."""
        return len(self.frames) - 1


@dataclass(frozen=True, eq=False)
class RecallTrajectory:
    """The recall sample of one episode and the episode's place and length."""

    sample: RecallSample
    episode: int
    length: int


@dataclass(frozen=True, eq=False)
class ContaminationReplay:
    """One perturbed replay of one episode of one seed, with its summary."""

    run: RunInfo
    seed: int
    episode: int
    result: ContaminationResult
    summary: ContaminationSummary

    def labels(self) -> dict[str, Any]:
        """The CSV labels of the replay: env, algo, model, twin, seed, episode, length."""
        return {
            "env": self.run.env,
            "algo": self.run.algo,
            "model": self.run.memory,
            "twin": self.run.twin,
            "seed": self.seed,
            "episode": self.episode,
            "length": len(self.result.flipped),
        }


@dataclass(frozen=True, eq=False)
class ContaminationExample:
    """A replay kept with its clean and perturbed frames, for the example figure."""

    replay: ContaminationReplay
    clean: np.ndarray
    perturbed: np.ndarray


@dataclass(frozen=True, eq=False)
class RunIntrospection:
    """Everything the introspection analyses computed for one run (all its seeds).

    ``skipped`` counts, per perturbation, the episodes too short for it.
    """

    run: RunInfo
    settings: IntrospectionSettings
    saliency: SaliencyExample | None
    recall: tuple[RecallTrajectory, ...]
    contamination: tuple[ContaminationReplay, ...]
    examples: tuple[ContaminationExample, ...]
    skipped: dict[str, int]


def _longest(episodes: Sequence[Episode]) -> int:
    """Index of the longest episode (the first of equals): most past frames to show."""
    return int(np.argmax([episode.length for episode in episodes]))


def _seed_contamination(agent, episodes, settings, keep_example: bool):
    replays, examples, skipped = [], [], dict.fromkeys(PERTURBATIONS, 0)
    for perturbation in PERTURBATIONS:
        for index, episode in enumerate(episodes):
            if not perturbation_fits(perturbation, episode.length, settings.noise_step, settings.shuffle_k):
                skipped[perturbation] += 1
                continue
            key = contamination_key(settings.seed, agent.seed, index, perturbation)
            options = {
                "sigma": settings.sigma,
                "noise_step": settings.noise_step,
                "shuffle_k": settings.shuffle_k,
            }
            result = episode_contamination(
                agent, episode, perturbation, key, pad_to=settings.max_steps, **options
            )
            replay = ContaminationReplay(
                agent.run, agent.seed, index, result, summarise_contamination(result)
            )
            replays.append(replay)
            if keep_example and not any(e.replay.result.perturbation == perturbation for e in examples):
                # The frames are regenerated from the same key rather than kept for every replay.
                perturbed = perturbed_frames(episode, perturbation, key, **options)
                examples.append(ContaminationExample(replay, episode.obs, perturbed))
    return replays, examples, skipped


def introspect_run(
    run: RunInfo | str | os.PathLike,
    settings: IntrospectionSettings = IntrospectionSettings(),
    analyses: Sequence[str] = ANALYSES,
    *,
    log: Callable[[str], None] | None = None,
) -> RunIntrospection:
    """Collect every seed's episodes once and compute the requested analyses on them.

    Args:
        run: a run folder (or its :class:`RunInfo`).
        settings: episodes, lengths and perturbations.
        analyses: any of ``"saliency"`` (the saliency seed's longest episode), ``"recall"`` (every
            episode of every seed) and ``"contamination"`` (noise and shuffle on every episode
            long enough; the first replay of the saliency seed of each kind is kept as an example).
        log: called with a line of progress per seed.

    Raises:
        AnalysisError: an unknown analysis, or a run that cannot be loaded (see :func:`load_agents`).
    """
    unknown = sorted(set(analyses) - set(ANALYSES))
    if unknown:
        raise AnalysisError(f"unknown analyses {unknown}; choose from {ANALYSES}")
    if "contamination" in analyses:
        settings.check_perturbations()
    info = run if isinstance(run, RunInfo) else run_info(run)
    agents = load_agents(info)
    if not 0 <= settings.saliency_seed < len(agents):
        raise AnalysisError(f"saliency seed {settings.saliency_seed} is not a seed of {info.run_dir}")
    saliency = None
    recall: list[RecallTrajectory] = []
    replays: list[ContaminationReplay] = []
    examples: list[ContaminationExample] = []
    skipped = dict.fromkeys(PERTURBATIONS, 0)
    for agent in agents:
        if log is not None:
            log(
                f"{info.run_dir.name}: seed {agent.seed}: {settings.episodes} episode(s), {', '.join(analyses)}"
            )
        episodes = agent_trajectories(agent.policy, settings.episodes, settings.max_steps, settings.seed)
        is_example_seed = agent.seed == settings.saliency_seed
        if "recall" in analyses:
            for index, episode in enumerate(episodes):
                sample = episode_recall(agent, episode, settings.max_steps)
                recall.append(RecallTrajectory(sample, index, episode.length))
        if "saliency" in analyses and is_example_seed:
            episode = episodes[_longest(episodes)]
            maps = episode_saliency(agent, episode, settings.max_steps)
            saliency = SaliencyExample(info, agent.seed, episode.obs, maps)
        if "contamination" in analyses:
            seed_replays, seed_examples, seed_skipped = _seed_contamination(
                agent, episodes, settings, is_example_seed
            )
            replays.extend(seed_replays)
            examples.extend(seed_examples)
            skipped = {name: skipped[name] + seed_skipped[name] for name in PERTURBATIONS}
    return RunIntrospection(info, settings, saliency, tuple(recall), tuple(replays), tuple(examples), skipped)


def run_saliency(run, settings: IntrospectionSettings = IntrospectionSettings(), **kwargs) -> SaliencyExample:
    """The saliency example of a run (see :func:`introspect_run`)."""
    result = introspect_run(run, settings, ("saliency",), **kwargs).saliency
    assert result is not None  # introspect_run always fills it when asked
    return result


def run_recall(
    run, settings: IntrospectionSettings = IntrospectionSettings(), **kwargs
) -> tuple[RecallTrajectory, ...]:
    """Recall samples of every episode of every seed of a run (see :func:`introspect_run`)."""
    return introspect_run(run, settings, ("recall",), **kwargs).recall


def run_contamination(
    run, settings: IntrospectionSettings = IntrospectionSettings(), **kwargs
) -> RunIntrospection:
    """Noise and shuffle replays (with summaries and examples) of a run (see :func:`introspect_run`)."""
    return introspect_run(run, settings, ("contamination",), **kwargs)
