"""Install hints for the optional extras (``train``, ``play``, ``media``, ...).

The PyPI project named ``popgym-arcade`` is the published implementation, which shares our
import name: a hint of ``pip install 'popgym-arcade[play]'`` would replace this package with it.
So a hint names the extra's own requirements, read from this package's installed metadata, and
the checkout form of the extra.
"""

from __future__ import annotations

import importlib.metadata
import re

DISTRIBUTION = "popgym-arcade"
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def extra_requirements(extra: str) -> list[str]:
    """The requirements the installed metadata lists for ``extra`` (empty when unknown)."""
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    found = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        match = _EXTRA_MARKER.search(marker)
        # Extras that only combine others (`all`, `dev`) list this package itself; skip it.
        if match and match.group(1) == extra and not spec.strip().startswith(DISTRIBUTION):
            found.append(spec.strip())
    return found


def install_hint(extra: str) -> str:
    """How to install ``extra``: its requirements by name, or the extra of the checkout.

    >>> install_hint("play")  # doctest: +SKIP
    "pip install 'pygame-ce>=2.4' (the `play` extra; from a checkout: pip install -e '.[play]')"
    """
    checkout = f"pip install -e '.[{extra}]'"
    requirements = extra_requirements(extra)
    if not requirements:
        return f"{checkout} in the popgym-arcade checkout (the `{extra}` extra)"
    packages = " ".join(f"'{requirement}'" for requirement in requirements)
    return f"pip install {packages} (the `{extra}` extra; from a checkout: {checkout})"
