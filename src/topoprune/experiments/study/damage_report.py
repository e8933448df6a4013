"""The damage study's report: verdicts, correlation tables, per-candidate table and scatter plots,
all rebuilt from the run folder's files (``topoprune study damage`` writes it; nothing here
trains or prunes)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .damage_stats import MIN_RANDOM_ONLY, TOPOLOGICAL

__all__ = ["write_damage_report", "correlation_table"]


def _cell(rho, ci) -> str:
    if rho is None:
        return "—"
    lo, hi = ci
    return f"{rho:+.2f}" if lo is None else f"{rho:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def correlation_table(block: dict, outcomes: dict[str, str], families: dict[str, str], *,
                      statistic: str = "spearman") -> list[list[str]]:
    """Rows = scores, columns = outcomes; each cell ``rho [low, high]`` (Spearman or Kendall)."""
    cs = block["correlations"]
    scores = list(dict.fromkeys(c["score"] for c in cs))
    head = ["score", "family"] + list(outcomes)
    rows = [head]
    for s in scores:
        row = [s, families.get(s, "user")]
        for o in outcomes:
            c = next((c for c in cs if c["score"] == s and c["outcome"] == o), None)
            row.append("—" if c is None else _cell(c[statistic], c[f"{statistic}_ci"]))
        rows.append(row)
    return rows


def _difference_table(block: dict, outcomes: dict[str, str], baseline: str) -> list[list[str]]:
    cs = block["correlations"]
    scores = [s for s in dict.fromkeys(c["score"] for c in cs) if s != baseline]
    rows = [["score"] + list(outcomes)]
    for s in scores:
        row = [s]
        for o in outcomes:
            c = next((c for c in cs if c["score"] == s and c["outcome"] == o), None)
            row.append("—" if c is None else _cell(c["vs_baseline"], c["vs_baseline_ci"]))
        rows.append(row)
    return rows


def _candidate_table(rows: list[dict], outcomes: dict[str, str], sparsity: float) -> list[list[str]]:
    these = [r for r in rows if r["sparsity"] == sparsity and r["source"] == "method"]
    randoms = [r for r in rows if r["sparsity"] == sparsity and r["source"] != "method"]
    head = ["candidate", "L1 mass removed"] + list(outcomes)
    out = [head]

    def fmt(v):
        return "—" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    for r in these:
        out.append([r["candidate"], fmt(r["scores"].get("l1-mass-removed"))] + [fmt(r["outcomes"].get(o)) for o in outcomes])
    if randoms:
        row = [f"random (n = {len(randoms)}): median [min, max]"]
        for key in ["l1-mass-removed", *outcomes]:
            vals = [r["scores"].get(key) if key == "l1-mass-removed" else r["outcomes"].get(key) for r in randoms]
            vals = [v for v in vals if v is not None]
            row.append(f"{np.median(vals):.2f} [{min(vals):.2f}, {max(vals):.2f}]" if vals else "—")
        out.append(row)
    return out


def _scatter(run_dir: Path, rows: list[dict], block: dict, outcomes: dict[str, str], families: dict[str, str],
             sparsity: float, baseline: str) -> Path:
    """L1 mass removed and the best topological score (by mean |rho| over outcomes) against every
    outcome; random candidates as dots, method choices labelled."""
    from ..plots import new_figure, save_figure

    cs = block["correlations"]
    topo = [s for s in dict.fromkeys(c["score"] for c in cs) if families.get(s) == TOPOLOGICAL]

    def strength(s):
        vals = [abs(c["spearman"]) for c in cs if c["score"] == s and c["spearman"] is not None]
        return float(np.mean(vals)) if vals else -1.0

    shown = [baseline] + ([max(topo, key=strength)] if topo else [])
    these = [r for r in rows if r["sparsity"] == sparsity]
    fig, axes = new_figure(len(shown), len(outcomes), figsize=(2.9 * len(outcomes), 2.6 * len(shown)), squeeze=False)
    for i, score in enumerate(shown):
        for j, o in enumerate(outcomes):
            ax = axes[i][j]
            for src, style in (("random", dict(color="0.55", s=12)), ("method", dict(color="C3", s=22, marker="D"))):
                pts = [(r["scores"].get(score), r["outcomes"].get(o), r["candidate"]) for r in these if r["source"] == src]
                pts = [p for p in pts if p[0] is not None and p[1] is not None]
                if pts:
                    ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=src, **style)
                    if src == "method":
                        for x, y, name in pts:
                            ax.annotate(name, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            c = next((c for c in cs if c["score"] == score and c["outcome"] == o), None)
            rho = "" if c is None or c["spearman"] is None else f"rho {c['spearman']:+.2f}"
            ax.set_title(f"{rho}", fontsize=8)
            ax.tick_params(labelsize=6)
            ax.set_xlabel(score, fontsize=7)
            ax.set_ylabel(o, fontsize=7)
    fig.suptitle(f"sparsity {sparsity:g}: scores before retraining vs outcomes (grey: random candidates)", fontsize=9)
    return save_figure(fig, run_dir / f"damage_s{sparsity!r}.png", dpi=100)


def write_damage_report(run_dir: Path, summary: dict) -> tuple[Path, Path]:
    from ..report import write_pages

    config, corr, rows = summary["config"], summary["correlations"], summary["rows"]
    exp, dmg = config["experiment"], config["damage"]
    outcomes, families, baseline = corr["outcomes"], corr["families"], corr["baseline"]
    run = summary.get("run") or {}
    model = exp["models"][0]
    r = exp["recovery"]
    dense = rows[0]["dense_acc"] if rows else math.nan
    intro = (f"Model `{model.get('name') or model.get('factory')}` (width {model.get('width', 1)}) on "
             f"`{exp['dataset']['name']}`, dense test accuracy {dense:.2f} %. Kind: {dmg['kind']}. Per sparsity: "
             f"{dmg['random']['count']} random candidates (layer sparsity spread {dmg['random']['spread']:g}) and the "
             f"choices of {', '.join(m.get('label') or m['name'] for m in exp['methods'])}; seed {exp['seeds'][0]}. "
             f"Outcomes on the test split; recovery {r['epochs']} epochs at lr {r['lr']} ({r.get('schedule', 'cosine')}), "
             f"BN recalibration on {r.get('recalibrate_bn', 50)} batches. Correlations over candidates: Spearman "
             f"(and Kendall) with {corr['level'] * 100:g} % percentile-bootstrap intervals ({corr['resamples']} "
             f"resamples, paired across scores); 'vs L1' = |rho(score)| - |rho({baseline})|. "
             f"Command: `{run.get('command', '?')}`; versions: "
             f"{', '.join(f'{k} {v}' for k, v in (run.get('versions') or {}).items())}; machine: {run.get('machine', '?')}.")
    expected = len(exp["sparsities"]) * (dmg["random"]["count"] + len(exp["methods"]))
    if len(rows) < expected:
        intro += (f" **Partial: {len(rows)} of {expected} candidates measured**; the sparsities listed below are "
                  "complete, the rest resume with the same command.")
    if dmg["random"]["count"] >= MIN_RANDOM_ONLY and any("random_only" not in b for b in corr["sparsities"].values()):
        intro += (" This run's correlations.json predates the analysis over the random candidates alone; run the "
                  "same `topoprune study damage` command again to add it (it re-analyses the measured rows, nothing "
                  "is retrained).")
    sections: list[tuple[str, list]] = [("Verdicts (computed from the numbers below)", summary["verdicts"])]
    if summary.get("verdicts_random_only"):
        sections.append(("Verdicts among the random candidates only (the method choices left out: does a score "
                         "still rank prunings of one kind?)", summary["verdicts_random_only"]))
    partial = [v for b in corr["sparsities"].values() for v in b.get("partial_verdicts", [])]
    if partial:
        sections.append(("Beyond magnitude and density: partial rank correlations of the topological scores "
                         "(controls: L1 mass removed and the largest per-layer fraction removed; Holm over the "
                         "topological scores of each outcome and sparsity)", partial))
    plots = []
    for key, block in corr["sparsities"].items():
        s = block.get("sparsity", float(key))
        sections.append((f"Sparsity {key}: Spearman rho [{corr['level'] * 100:g} % CI], n = {block['n']}",
                         correlation_table(block, outcomes, families)))
        sections.append((f"Sparsity {key}: Kendall tau [CI]", correlation_table(block, outcomes, families,
                                                                              statistic="kendall")))
        sections.append((f"Sparsity {key}: oriented rho minus {baseline}'s [paired CI] (oriented: positive = "
                         "more damage went with a worse outcome; scores without a direction by |rho|)",
                         _difference_table(block, outcomes, baseline)))
        alone = block.get("random_only")
        if alone:
            sections.append((f"Sparsity {key}, random candidates only: Spearman rho [CI], n = {alone['n']}",
                             correlation_table(alone, outcomes, families)))
            sections.append((f"Sparsity {key}, random candidates only: oriented rho minus {baseline}'s [paired CI]",
                             _difference_table(alone, outcomes, baseline)))
        sections.append((f"Sparsity {key}: the candidates", _candidate_table(rows, outcomes, s)))
        plots.append((f"Sparsity {key}: scores vs outcomes",
                      _scatter(run_dir, rows, block, outcomes, families, s, baseline)))
    sections.append(("Outcomes", [f"**{k}**: {v}" for k, v in outcomes.items()]))
    return write_pages(run_dir, f"topoprune damage study: {exp['name']}", intro, sections, plots)
