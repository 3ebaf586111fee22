"""Matplotlib helpers shared by the analysis figures.

Figures are built with the object-oriented API on an Agg canvas (``matplotlib.figure.Figure``),
never through ``pyplot``, so that drawing a figure neither needs a display nor changes the
backend of a user's session. matplotlib is imported here, lazily, so that
``import popgym_arcade.analysis`` works without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from popgym_arcade._extras import install_hint


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"figures need matplotlib: {install_hint('analysis')}", name="matplotlib"
        ) from error
    return matplotlib


def new_figure(figsize: tuple[float, float]) -> Any:
    """A figure on an Agg canvas (no display, no global pyplot state)."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` (format from the suffix), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def palette(n: int) -> list[Any]:
    """``n`` distinct colours (tab10, cycling)."""
    matplotlib = _matplotlib()
    colours = matplotlib.colormaps["tab10"].colors
    return [colours[i % len(colours)] for i in range(n)]


def colormap(name: str) -> Any:
    """A registered colour map by name."""
    return _matplotlib().colormaps[name]
