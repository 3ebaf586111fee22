"""The usage examples in the game classes' docstrings run as written."""

import re

import jax
import pytest

from popgym_arcade.registration import BUILTIN_GAMES, game_class

EXAMPLES = [
    pytest.param(name, block, id=f"{name}-{i}")
    for name, _ in BUILTIN_GAMES
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", game_class(name).__doc__ or "", flags=re.S))
]


@pytest.mark.parametrize("name, block", EXAMPLES)
def test_class_docstring_example_runs(name, block):
    cls = game_class(name)
    namespace = {"jax": jax, cls.__name__: cls}
    exec(compile(_dedent(block), f"{name} docstring", "exec"), namespace)
    assert namespace["obs"].shape == (128, 128, 3)


def _dedent(block: str) -> str:
    lines = block.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)
