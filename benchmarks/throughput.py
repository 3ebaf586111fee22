"""Throughput benchmark: ours vs the published popgym-arcade 0.0.7, frame-write ceiling, baselines.

Every measurement uses popgym_arcade.throughput: reset once, one jitted ``lax.scan`` of vmapped
random-action steps with the latest frames kept in the scan carry and returned (so XLA cannot
drop the rendering), AOT compile timed separately (first trace and lowering plus the fastest of
``--compiles`` XLA compiles, where the published implementation is compared), one warm-up run,
median of repeats.

Per game (Easy id by default, ``--all-ids`` for all 30), twin (POMDP, MDP), frame size and number
of parallel envs it measures our steps/s and compile time; at ``--their-envs`` it measures the
published implementation the same way, in its own venv (``benchmarks/.published-venv``, created
once; it shares our import name) with a per-measurement timeout, alternating ours and theirs per
game. It also measures the frame-write ceiling (a jitted fill of the same ``[envs, S, S, 3]`` uint8
frames per step), a non-pixel JAX cart-pole (gymnax-style dynamics, no rendering) and, if
``ale_py`` imports, the ALE vector env.

    python benchmarks/throughput.py --quick            # 64 envs, 128 px, both twins (minutes)
    python benchmarks/throughput.py                    # sweep 1..512 envs, 128 and 256 px (long)
    python benchmarks/throughput.py --envs 16,64 --sizes 128 --games CartPole,Tetris --no-published

Writes ``<out>/throughput.csv``, ``<out>/throughput.json`` and (with matplotlib, from the
``analysis`` extra) ``<out>/throughput.png``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

import popgym_arcade
from popgym_arcade import throughput as tp
from popgym_arcade._extras import install_hint
from popgym_arcade.registration import BUILTIN_GAMES, LEVELS

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED_VENV = ROOT / "benchmarks" / ".published-venv"
PUBLISHED_REQUIREMENTS = ("popgym-arcade==0.0.7", "six")  # stable-gymnax forgets to declare six
WORKER = ROOT / "benchmarks" / "_published_worker.py"
METHOD_FILE = ROOT / "popgym_arcade" / "throughput.py"
TWINS = {"POMDP": True, "MDP": False}
FIELDS = (
    "impl", "env_id", "game", "twin", "size", "envs", "steps",
    "steps_per_second", "compile_seconds", "first_call_seconds", "status",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--quick`` overrides the sweep to 64 envs, 128 px)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda text: [int(x) for x in text.split(",") if x]
    names = lambda text: [x for x in text.split(",") if x]
    parser.add_argument("--quick", action="store_true", help="64 envs, 128 px, both twins: a few minutes")
    parser.add_argument(
        "--envs", type=ints, default=[2**i for i in range(10)], help="env counts (1,2,...,512)"
    )
    parser.add_argument("--sizes", type=ints, default=[128, 256], help="frame sizes in pixels (128,256)")
    parser.add_argument("--twins", type=names, default=list(TWINS), help="POMDP,MDP")
    parser.add_argument("--games", type=names, default=[g for g, _ in BUILTIN_GAMES], help="game names")
    parser.add_argument(
        "--all-ids", action="store_true", help="every level (Easy/Medium/Hard), not only Easy"
    )
    parser.add_argument("--steps", type=int, default=128, help="scan length of our rollouts")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (median)")
    parser.add_argument(
        "--compiles", type=int, default=2, help="XLA compiles (fastest counts) where theirs is compared"
    )
    parser.add_argument("--their-envs", type=ints, default=[64], help="env counts at which to run theirs")
    parser.add_argument("--their-steps", type=int, default=16, help="scan length of their (slow) rollouts")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per published measurement")
    parser.add_argument("--no-published", action="store_true", help="skip the published implementation")
    parser.add_argument("--no-baselines", action="store_true", help="skip non-pixel cart-pole and ALE")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.envs, args.sizes, args.their_envs, args.their_steps = [64], [128], [64], 8
    unknown = [t for t in args.twins if t not in TWINS]
    if unknown:
        parser.error(f"unknown twins {unknown}; choose from {list(TWINS)}")
    return args


def env_ids(games: list[str], all_ids: bool) -> list[tuple[str, str]]:
    """``(game, env_id)`` pairs: each game's Easy id, or all three levels."""
    levels = LEVELS if all_ids else LEVELS[:1]
    return [(game, f"{game}{level}") for game in games for level in levels]


# ---------------------------------------------------------------------------------------------
# Measurements


def row(
    impl: str, env_id: str, game: str, twin: str, size: int, envs: int, steps: int, **result: Any
) -> dict:
    """One CSV/JSON record."""
    base = {
        "impl": impl,
        "env_id": env_id,
        "game": game,
        "twin": twin,
        "size": size,
        "envs": envs,
        "steps": steps,
    }
    base.update(steps_per_second=None, compile_seconds=None, first_call_seconds=None, status="ok")
    base.update(result)
    return base


def result_fields(result: tp.Throughput) -> dict:
    """The numeric fields of a :class:`~popgym_arcade.throughput.Throughput`."""
    return {
        "steps_per_second": result.steps_per_second,
        "compile_seconds": result.compile_seconds,
        "first_call_seconds": result.first_call_seconds,
    }


def measure_ours(
    env_id: str, partial: bool, size: int, envs: int, steps: int, repeats: int, compiles: int = 1
) -> dict:
    """Our env ``env_id`` with popgym_arcade.throughput.measure."""
    env, params = popgym_arcade.make(env_id, partial_obs=partial, obs_size=size)
    try:
        return result_fields(tp.measure(env, params, envs, steps, repeats, compiles))
    except Exception as error:  # noqa: BLE001 - e.g. out of memory at 512 envs x 256 px: record, go on
        return {"status": f"error: {type(error).__name__}: {error}"[:200]}


def measure_theirs(
    python: Path,
    env_id: str,
    partial: bool,
    size: int,
    envs: int,
    steps: int,
    repeats: int,
    timeout: float,
    compiles: int = 1,
) -> dict:
    """The published env in a subprocess of its venv; ``status`` is ``timeout`` or an error if so."""
    command = [str(python), str(WORKER), "--throughput-file", str(METHOD_FILE), "--id", env_id]
    command += ["--size", str(size), "--envs", str(envs), "--steps", str(steps), "--repeats", str(repeats)]
    command += ["--compiles", str(compiles)]
    command += ["--partial"] if partial else []
    try:
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT / "benchmarks"
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timeout ({timeout:.0f}s)"}
    if done.returncode != 0:
        return {"status": f"error: {done.stderr.strip().splitlines()[-1:]}"[:200]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: out[k] for k in ("steps_per_second", "compile_seconds", "first_call_seconds")}


def cartpole_nonpixel():
    """Gymnax-style cart-pole dynamics without rendering: ``(reset, step, num_actions)``.

    Observations are the 4 physical variables; episodes auto-reset on failure or after 500 steps.
    """
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass, polemass_length = masscart + masspole, masspole * length

    def reset(key):
        state = (jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05), jnp.int32(0))
        return state[0], state

    def step(key, state, action):
        (x, x_dot, theta, theta_dot), t = state[0], state[1]
        force = jnp.where(action == 1, force_mag, -force_mag)
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (gravity * sin - cos * temp) / (length * (4.0 / 3.0 - masspole * cos**2 / total_mass))
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        phys = jnp.stack(
            [x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc]
        )
        done = (jnp.abs(phys[0]) > 2.4) | (jnp.abs(phys[2]) > 0.2095) | (t + 1 >= 500)
        fresh, _ = reset(key)
        phys = jnp.where(done, fresh, phys)
        return phys, (phys, jnp.where(done, 0, t + 1)), 1.0 - done.astype(jnp.float32)

    return reset, step, 2


def measure_nonpixel(envs: int, steps: int, repeats: int) -> dict:
    """The non-pixel cart-pole with the same scan method."""
    reset, step, num_actions = cartpole_nonpixel()
    rollout_fn = tp.make_rollout_fn(reset, step, num_actions, envs, steps)
    return result_fields(tp.time_rollout(rollout_fn, envs, steps, repeats))


def measure_ale(envs: int, steps: int, repeats: int) -> dict | None:
    """ALE's C++ vector env (Breakout, 84x84 grey frames, its defaults), or None without ale_py."""
    try:
        import ale_py  # noqa: F401
        import numpy as np
        from ale_py.vector_env import AtariVectorEnv
    except Exception:  # noqa: BLE001 - any import failure means: skip ALE
        return None
    import statistics
    import time

    vec = AtariVectorEnv(game="breakout", num_envs=envs)
    try:
        vec.reset(seed=0)
        rng = np.random.default_rng(0)
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            for _ in range(steps):
                vec.step(rng.integers(0, vec.single_action_space.n, size=envs))
            times.append(time.perf_counter() - start)
        return {"steps_per_second": envs * steps / statistics.median(times[1:])}
    finally:
        vec.close()


# ---------------------------------------------------------------------------------------------
# The published implementation's venv


def published_python(log=print) -> Path | None:
    """The published venv's python, creating it on first use; None (with a message) if it fails."""
    python = PUBLISHED_VENV / "bin" / "python"
    ready = PUBLISHED_VENV / ".installed"
    if ready.exists():
        return python
    log(f"creating {PUBLISHED_VENV} with {' '.join(PUBLISHED_REQUIREMENTS)} (once) ...")
    try:
        venv.create(PUBLISHED_VENV, with_pip=True, clear=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *PUBLISHED_REQUIREMENTS],
            check=True, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        subprocess.run([str(python), "-c", "import popgym_arcade, six"], check=True, capture_output=True)
    except (subprocess.SubprocessError, OSError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        log(f"skipping the published implementation: install failed ({detail.strip().splitlines()[-1:]})")
        return None
    ready.write_text(" ".join(PUBLISHED_REQUIREMENTS) + "\n")
    return python


# ---------------------------------------------------------------------------------------------
# Summary, output


def geomean(values: list[float]) -> float | None:
    """Geometric mean of positive values (None if there are none)."""
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def fmt(value: float | None, spec: str = ",.0f") -> str:
    """A number, or ``-`` for a missing one."""
    return "-" if value is None else format(value, spec)


def summarise(rows: list[dict], log=print) -> list[dict]:
    """Per (twin, size, envs) where theirs ran: ratio per game, geometric mean; returns records."""
    index = {(r["impl"], r["env_id"], r["twin"], r["size"], r["envs"]): r for r in rows}
    ceilings = {(r["size"], r["envs"]): r["steps_per_second"] for r in rows if r["impl"] == "frame-ceiling"}
    summary = []
    for key in sorted({(r["twin"], r["size"], r["envs"]) for r in rows if r["impl"] == "published"}):
        twin, size, envs = key
        log(
            f"\n== {twin} {size}px {envs} envs: steps/s (compile s)   [frame ceiling {fmt(ceilings.get((size, envs)))} frames/s]"
        )
        log(
            f"{'env id':22s} {'ours':>10s} {'theirs':>9s} {'ratio':>8s} {'ours c':>7s} {'their c':>8s} {'c ratio':>7s} {'% ceil':>7s}"
        )
        ratios = []
        for r in (r for r in rows if r["impl"] == "ours" and (r["twin"], r["size"], r["envs"]) == key):
            theirs = index.get(("published", r["env_id"], twin, size, envs), {})
            ours_sps, their_sps = r["steps_per_second"], theirs.get("steps_per_second")
            ratio = ours_sps / their_sps if ours_sps and their_sps else None
            compile_ratio = (
                r["compile_seconds"] / theirs["compile_seconds"]
                if r["compile_seconds"] and theirs.get("compile_seconds")
                else None
            )
            ceiling = ceilings.get((size, envs))
            fraction = ours_sps / ceiling if ours_sps and ceiling else None
            flag = "  <10x!" if ratio is not None and ratio < 10 else ""
            if theirs.get("status", "ok") != "ok":
                flag = f"  theirs: {theirs['status']}"
            log(
                f"{r['env_id']:22s} {fmt(ours_sps):>10s} {fmt(their_sps):>9s} {fmt(ratio, '.1f'):>7s}x"
                f" {fmt(r['compile_seconds'], '.1f'):>7s} {fmt(theirs.get('compile_seconds'), '.1f'):>8s}"
                f" {fmt(compile_ratio, '.2f'):>7s} {fmt(fraction and 100 * fraction, '.1f'):>6s}%{flag}"
            )
            ratios.append(ratio)
            summary.append({"twin": twin, "size": size, "envs": envs, "env_id": r["env_id"], "ours": ours_sps, "theirs": their_sps,
                                "ratio": ratio, "ours_compile": r["compile_seconds"], "theirs_compile": theirs.get("compile_seconds"),
                                "compile_ratio": compile_ratio, "ceiling_fraction": fraction, "theirs_status": theirs.get("status")})  # fmt: skip
        log(
            f"geometric mean ratio over {sum(r is not None for r in ratios)} ids: {fmt(geomean(ratios), '.1f')}x"
        )
    return summary


def write_outputs(out: Path, rows: list[dict], summary: list[dict], meta: dict, log=print) -> None:
    """CSV of all rows, JSON of meta + rows + summary, and the log-log plot if matplotlib imports."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "throughput.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "throughput.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=1)
    )
    log(f"\nwrote {out / 'throughput.csv'} and {out / 'throughput.json'}")
    plot(out / "throughput.png", rows, log)


def plot(path: Path, rows: list[dict], log=print) -> None:
    """Log-log steps/s against envs: one panel per (twin, size); ours solid, theirs dotted."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log(f"matplotlib not installed ({install_hint('analysis')}): skipping the plot")
        return
    panels = sorted({(r["twin"], r["size"]) for r in rows if r["impl"] == "ours"})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (twin, size) in zip(axes[0], panels):
        for impl, style in (("ours", "-o"), ("published", ":x")):
            for env_id in sorted({r["env_id"] for r in rows if r["impl"] == impl}):
                pts = sorted((r["envs"], r["steps_per_second"]) for r in rows
                             if (r["impl"], r["env_id"], r["twin"], r["size"]) == (impl, env_id, twin, size)
                             and r["steps_per_second"])  # fmt: skip
                if pts:
                    ax.plot(*zip(*pts), style, label=f"{env_id} ({impl})", markersize=3)
        pts = sorted(
            (r["envs"], r["steps_per_second"])
            for r in rows
            if r["impl"] == "frame-ceiling" and r["size"] == size
        )
        if pts:
            ax.plot(*zip(*pts), "k--s", label="frame-write ceiling", markersize=4)
        ax.set(xscale="log", yscale="log", xlabel="parallel envs", ylabel="steps/s", title=f"{twin} {size}px")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    log(f"wrote {path}")


def machine_info(their_python: Path | None) -> dict:
    """Machine, versions and date for the record."""
    from importlib.metadata import version

    with open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    theirs = None
    if their_python:
        probe = [
            str(their_python),
            "-c",
            "from importlib.metadata import version as v; print(v('popgym-arcade'), v('jax'))",
        ]
        # cwd away from the checkout, whose popgym_arcade.egg-info would answer for ours
        theirs = (
            subprocess.run(
                probe, check=False, capture_output=True, text=True, cwd=ROOT / "benchmarks"
            ).stdout.strip()
            or None
        )
    return {
        "date": datetime.date.today().isoformat(), "cpu": model or platform.processor(), "cores": os.cpu_count(),
        "jax_backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
        "ours": version("popgym-arcade"), "theirs_popgym_arcade_and_jax": theirs, "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Main


def run(args: argparse.Namespace, log=print) -> tuple[list[dict], list[dict], dict]:
    """Measure everything ``args`` asks for; returns ``(rows, summary, meta)``."""
    their_python = None if args.no_published else published_python(log)
    rows: list[dict] = []

    def add(record: dict) -> None:
        rows.append(record)
        log(
            f"{record['impl']:15s} {record['env_id']:20s} {record['twin']:5s} {record['size']:4d}px"
            f" {record['envs']:4d} envs {fmt(record['steps_per_second']):>11s} steps/s"
            f"  compile {fmt(record['compile_seconds'], '.1f')}s  {'' if record['status'] == 'ok' else record['status']}"
        )

    for size in args.sizes:
        for envs in args.envs:
            add(row("frame-ceiling", "-", "-", "-", size, envs, args.steps,
                    **result_fields(tp.measure_frame_ceiling(envs, size, args.steps, args.repeats))))  # fmt: skip
    for game, env_id in env_ids(args.games, args.all_ids):
        for twin in args.twins:
            for size in args.sizes:
                for envs in args.envs:
                    compiles = args.compiles if envs in args.their_envs else 1  # only compared there
                    add(row("ours", env_id, game, twin, size, envs, args.steps,
                            **measure_ours(env_id, TWINS[twin], size, envs, args.steps, args.repeats, compiles)))  # fmt: skip
                for envs in (e for e in args.their_envs if their_python and e in args.envs):
                    add(row("published", env_id, game, twin, size, envs, args.their_steps,
                            **measure_theirs(their_python, env_id, TWINS[twin], size, envs, args.their_steps,
                                             args.repeats, args.timeout, args.compiles)))  # fmt: skip
    if not args.no_baselines:
        for envs in args.envs:
            add(row("nonpixel-cartpole", "-", "-", "-", 0, envs, args.steps,
                    **measure_nonpixel(envs, args.steps, args.repeats)))  # fmt: skip
        for envs in args.envs:
            ale = measure_ale(envs, min(args.steps, 64), args.repeats)
            if ale is None:
                log("ale_py not importable in this venv (pip install ale-py): skipping the ALE vector env")
                break
            add(row("ale-vector", "Breakout", "-", "-", 84, envs, min(args.steps, 64), **ale))
    summary = summarise(rows, log)
    pixel = [r["steps_per_second"] for r in rows if r["impl"] == "ours" and r["steps_per_second"]]
    nonpixel = [
        r["steps_per_second"] for r in rows if r["impl"] == "nonpixel-cartpole" and r["steps_per_second"]
    ]
    if pixel and nonpixel:
        log(
            f"non-pixel cart-pole / geometric mean of our pixel envs: {geomean(nonpixel) / geomean(pixel):.1f}x"
        )
    meta = dict(machine_info(their_python), args={k: str(v) for k, v in vars(args).items()})
    return rows, summary, meta


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"jax {jax.__version__} on {jax.default_backend()} ({os.cpu_count()} cores); load average {os.getloadavg()}"
    )
    rows, summary, meta = run(args)
    write_outputs(args.out, rows, summary, meta)


if __name__ == "__main__":
    sys.exit(main())
