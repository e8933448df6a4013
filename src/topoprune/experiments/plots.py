"""Plots written next to results (PNG, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["plot_ga_trajectories"]


def plot_ga_trajectories(searches: Mapping[str, Mapping], path: str | Path, title: str = "") -> Path:
    """One panel per layer: the GA's best and mean fitness by generation, with the L1, L2 and
    FPGM choices' fitness as horizontal lines (lower is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(n, s) for n, s in searches.items() if s.get("best_by_generation")]
    cols = min(4, max(1, len(items)))
    rows = max(1, -(-len(items) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
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
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
