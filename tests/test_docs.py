"""The guides' Python examples run as written.

Every ```python block of each guide runs, in order, in one namespace per guide (as one script),
from a temporary working directory (files the examples write land there). A block whose first
line is ``# requires: MODULE[, MODULE ...]`` is skipped where a module is not importable (the
gymnax adapter example: gymnax is an optional extra that the test environment does not install).
Environments the examples register are unregistered afterwards.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from popgym_arcade import registration

pytestmark = pytest.mark.xdist_group("docs")

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = ("quickstart.md", "make-your-own-twin.md", "draw-toolkit.md")
REQUIRES = re.compile(r"\A# requires: *([\w.]+(?: *, *[\w.]+)*) *\n")
OPTIONAL_MODULES = {"gymnax"}
"""Modules a block may declare with ``# requires:`` (extras not installed for the tests)."""


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```[ \t]*$", text, flags=re.DOTALL | re.MULTILINE)


def required_modules(block: str) -> list[str]:
    """Modules named by the block's ``# requires:`` first line (none without one)."""
    match = REQUIRES.match(block)
    return [name.strip() for name in match.group(1).split(",")] if match else []


def missing_modules(block: str) -> list[str]:
    """The block's required modules that cannot be imported here."""
    missing = []
    for name in required_modules(block):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def guide_blocks(name: str) -> list[str]:
    return python_blocks((DOCS / name).read_text())


def run_guide(name: str) -> tuple[dict, int, int]:
    """Run a guide's blocks in one namespace: ``(namespace, blocks run, blocks skipped)``."""
    namespace: dict = {"__name__": "__main__"}  # as a script
    ran = skipped = 0
    for index, block in enumerate(guide_blocks(name)):
        if missing_modules(block):
            skipped += 1
            continue
        # dont_inherit: not this module's `from __future__ import annotations`.
        exec(compile(block, f"docs/{name} python block {index}", "exec", dont_inherit=True), namespace)  # noqa: S102
        ran += 1
    return namespace, ran, skipped


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """``guide(name) -> (namespace, ran, skipped, out_dir)``: each guide runs once per module,
    in its own temporary directory; ids it registers are unregistered at the end."""
    before = list(registration.REGISTERED_ENVIRONMENTS)
    results: dict[str, tuple[dict, int, int, Path]] = {}

    def run(name: str):
        if name not in results:
            out = tmp_path_factory.mktemp(Path(name).stem.replace("-", "_"))
            with pytest.MonkeyPatch.context() as patch:
                patch.chdir(out)
                namespace, ran, skipped = run_guide(name)
            results[name] = (namespace, ran, skipped, out)
        return results[name]

    yield run
    for env_id in registration.REGISTERED_ENVIRONMENTS[len(before) :]:
        registration._FACTORIES.pop(env_id)
    del registration.REGISTERED_ENVIRONMENTS[len(before) :]


def test_block_parsing():
    text = "a\n```python\nx = 1\n```\n```text\nno\n```\n```python\n# requires: gymnax, six\ny = 2\n```\n"
    blocks = python_blocks(text)
    assert blocks == ["x = 1\n", "# requires: gymnax, six\ny = 2\n"]
    assert required_modules(blocks[0]) == []
    assert required_modules(blocks[1]) == ["gymnax", "six"]
    assert missing_modules("# requires: no_such_module_xyz\n") == ["no_such_module_xyz"]
    assert missing_modules("# requires: json\n") == []


@pytest.mark.parametrize("name", GUIDES)
def test_guide_has_examples(name):
    blocks = guide_blocks(name)
    assert len(blocks) >= 1
    for block in blocks:  # only optional extras may skip a block
        assert set(required_modules(block)) <= OPTIONAL_MODULES


@pytest.mark.parametrize("name", GUIDES)
def test_guide_runs_as_written(name, guide):
    _, ran, skipped, _ = guide(name)
    assert ran >= 1 and ran + skipped == len(guide_blocks(name))


def test_twin_guide_game_behaves(guide):
    """The guide's game is a twin: the POMDP hides the colour after t = 0; the answer pays 1."""
    namespace, _, _, out = guide("make-your-own-twin.md")
    make = namespace["make"]
    mdp, params = make("RememberHard", partial_obs=False)
    pomdp, _ = make("RememberHard", partial_obs=True)
    render_pomdp = jax.jit(pomdp.render)
    obs_mdp, state = mdp.reset(jax.random.key(3), params)
    obs_pomdp, _ = pomdp.reset(jax.random.key(3), params)
    assert np.array_equal(obs_mdp, obs_pomdp)
    for t in range(mdp.difficulty.delay):
        obs_mdp, state, reward, terminated, truncated, _ = mdp.step(jax.random.key(t), state, 4, params)
        assert float(reward) == 0.0 and not terminated and not truncated
        assert not np.array_equal(obs_mdp, render_pomdp(state))
    answer = int(state.colour)
    _, state, reward, terminated, _, info = mdp.step(jax.random.key(99), state, answer, params)
    assert float(reward) == 1.0 and bool(terminated) and float(info["discount"]) == 0.0
    assert int(state.timestep) == 0  # auto-reset
    assert (out / "remember.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draw_toolkit_writes_png(guide):
    namespace, _, _, out = guide("draw-toolkit.md")
    assert namespace["frame"].shape == (128, 128, 3)
    assert (out / "frame.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
