"""The README's code runs as written."""

import re
from pathlib import Path

import pytest

from popgym_arcade import registration

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
    before = list(registration.REGISTERED_ENVIRONMENTS)
    namespace: dict = {}
    try:
        exec(compile(BLOCKS[index], f"README block {index}", "exec"), namespace)
    finally:
        for env_id in registration.REGISTERED_ENVIRONMENTS[len(before):]:
            registration._FACTORIES.pop(env_id)
        del registration.REGISTERED_ENVIRONMENTS[len(before):]


def test_readme_twin_example_behaves():
    namespace: dict = {}
    block = next(b for b in BLOCKS if "register(" in b)
    before = list(registration.REGISTERED_ENVIRONMENTS)
    try:
        exec(compile(block, "README twin", "exec"), namespace)
        import jax

        env, params = namespace["env"], namespace["params"]
        obs, state = env.reset(jax.random.key(0), params)
        assert obs.max() == 255  # t = 0: the POMDP shows the walker
        obs, state, *_ = env.step(jax.random.key(1), state, 4, params)
        assert obs.max() == 0  # afterwards it hides it
    finally:
        for env_id in registration.REGISTERED_ENVIRONMENTS[len(before):]:
            registration._FACTORIES.pop(env_id)
        del registration.REGISTERED_ENVIRONMENTS[len(before):]
