"""Plots written next to results (PNG).

Every figure is a :class:`matplotlib.figure.Figure` drawn on its own Agg canvas: nothing here
imports ``pyplot``, calls ``matplotlib.use`` or touches the global figure manager, so making a
report never changes the backend or the figures of the program that asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["new_figure", "plot_ga_trajectories", "save_figure"]


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
               squeeze: bool = True) -> tuple[Any, Any]:
    """``(figure, axes)`` like ``pyplot.subplots``, but a standalone ``Figure`` on an Agg canvas
    that no global state knows about (it is freed when the last reference goes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_figure(fig: Any, path: str | Path, *, dpi: int = 100) -> Path:
    """Lay ``fig`` out tightly and write it to ``path`` (PNG; parent folders created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    return out


def plot_ga_trajectories(searches: Mapping[str, Mapping], path: str | Path, title: str = "") -> Path:
    """One panel per layer: the GA's best and mean fitness by generation, with the L1, L2 and
    FPGM choices' fitness as horizontal lines (lower is better)."""
    items = [(n, s) for n, s in searches.items() if s.get("best_by_generation")]
    cols = min(4, max(1, len(items)))
    rows = max(1, -(-len(items) // cols))
    fig, axes = new_figure(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(items):]:
        ax.axis("off")
    for ax, (name, s) in zip(axes.flat, items):
        gens = range(len(s["best_by_generation"]))
        ax.plot(gens, s["mean_by_generation"], color="0.6", lw=1, label="GA mean")
        ax.plot(gens, s["best_by_generation"], color="C0", lw=2, label="GA best")
        for (label, value), color in zip(sorted(s.get("heuristics", {}).items()), ("C1", "C2", "C3")):
            ax.axhline(value, color=color, ls="--", lw=1, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("generation", fontsize=8)
        ax.set_ylabel("fitness (lower is better)", fontsize=8)
        ax.tick_params(labelsize=7)
    if items:
        axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=110)
