"""Install hints for the optional extras name requirements, never the PyPI project."""

import importlib.metadata

import pytest

from popgym_arcade import _extras


def test_hint_names_the_extras_requirements_not_the_published_project():
    hint = _extras.install_hint("play")
    assert hint.startswith("pip install 'pygame-ce>=2.4'")
    assert "pip install -e '.[play]'" in hint
    # `pip install 'popgym-arcade[...]'` fetches the published 0.0.7, which shares our import name.
    assert "popgym-arcade[" not in hint


def test_requirements_are_read_from_the_metadata():
    assert _extras.extra_requirements("gymnax") == ["gymnax>=1.0", "six"]
    assert _extras.extra_requirements("analysis") == ["matplotlib>=3.8", "pillow>=10"]
    # Extras that only combine other extras list no requirement of their own.
    assert _extras.extra_requirements("all") == []
    assert _extras.extra_requirements("no-such-extra") == []


def test_hint_without_metadata_points_at_the_checkout(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "requires", missing)
    assert _extras.install_hint("train") == "pip install -e '.[train]' in the popgym-arcade checkout (the `train` extra)"


@pytest.mark.parametrize(
    "requirement, extra",
    [('pillow>=10; extra == "media"', "media"), ("ray>=2.9 ; extra=='ray'", "ray")],
)
def test_marker_forms(monkeypatch, requirement, extra):
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: [requirement, "jax>=0.4.30"])
    assert _extras.extra_requirements(extra) == [requirement.partition(";")[0].strip()]
