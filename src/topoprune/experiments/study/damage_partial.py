"""Does a score add information beyond magnitude and density? Partial rank correlations of the
damage study.

A score "adds information" about an outcome only if it still correlates with the outcome once
what L1 mass removed and the candidates' layer densities already explain is taken out. Per
(score, outcome) at one sparsity:

- the **partial Spearman correlation**: the score, the outcome and the controls are replaced by
  their ranks (average ranks for ties); the ranks of the score and of the outcome are each
  regressed on the controls' ranks (least squares with an intercept), and the partial correlation
  is Pearson's correlation of the two residuals;
- the **controls**: L1 mass removed, and the largest per-layer fraction of units or weights
  removed (the density summary). A control that is constant over the candidates (a uniform
  structured budget removes the same share from every layer) explains nothing and is dropped,
  and the result says which controls were used;
- a **percentile bootstrap** interval (the same seeded draws of the candidates for every score)
  and a two-sided bootstrap p-value, ``2 * min(share of draws <= 0, share >= 0)``;
- **Holm's adjustment** across the scores of one family (the topological scores) for that
  outcome and sparsity. A score adds information when its adjusted p-value is below 5 % and its
  partial correlation has the sign of damage (more damage, worse outcome); a score without a
  known direction, in either direction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from ..stats import holm, percentile_interval

__all__ = ["PartialCorrelation", "partial_spearman", "partial_correlations", "partial_sentences",
           "DENSITY_CONTROL"]

DENSITY_CONTROL = "largest-layer-fraction-removed"


@dataclass(frozen=True)
class PartialCorrelation:
    """One (score, outcome): the partial Spearman correlation, its interval, p-values and the
    Holm-adjusted verdict within its family."""

    score: str
    outcome: str
    n: int
    controls: tuple[str, ...]
    partial: float
    ci: tuple[float, float]
    p_value: float
    p_adjusted: float | None
    family: str
    expected_sign: int
    adds_information: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
        d["ci"] = [clean(v) for v in self.ci]
        d["controls"] = list(self.controls)
        return {k: (clean(v) if not isinstance(v, list) else v) for k, v in d.items()}


def _residual_ranks(values: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` minus their least-squares fit on the controls' ranks and an intercept."""
    r = stats.rankdata(values)
    design = np.column_stack([np.ones(len(r)), *[stats.rankdata(c) for c in controls.T]]) if controls.size else \
        np.ones((len(r), 1))
    coef, *_ = np.linalg.lstsq(design, r, rcond=None)
    return r - design @ coef


def partial_spearman(x: Sequence[float], y: Sequence[float], controls: Sequence[Sequence[float]] = ()) -> float:
    """Spearman's correlation of ``x`` and ``y`` with the ranks of ``controls`` (each a sequence as
    long as ``x``) partialled out; NaN when a residual is constant or there are too few points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    c = np.asarray(controls, float).T if len(controls) else np.empty((len(x), 0))
    if len(x) < c.shape[1] + 3:
        return math.nan
    rx, ry = _residual_ranks(x, c), _residual_ranks(y, c)
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / den) if den > 1e-12 * len(x) else math.nan


def _usable(controls: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The controls that vary over the candidates (a constant one explains nothing)."""
    return {k: v for k, v in controls.items() if np.isfinite(v).all() and np.ptp(v) > 0}


def partial_correlations(
    scores: Mapping[str, Sequence[float | None]],
    outcomes: Mapping[str, Sequence[float | None]],
    controls: Mapping[str, Sequence[float | None]],
    *,
    families: Mapping[str, str],
    signs: Mapping[tuple[str, str], int],
    family: str = "topological",
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[PartialCorrelation]:
    """Every score of ``family`` against every outcome, controlling for ``controls`` (L1 mass
    removed and the density summary, by name). ``signs[(score, outcome)]``: the sign a damage
    score's correlation should have (0: unknown, then ``|partial|`` counts)."""
    members = [s for s in scores if families.get(s) == family and s not in controls]
    out: list[PartialCorrelation] = []
    n_all = len(next(iter(scores.values()))) if scores else 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_all, size=(resamples, n_all)) if n_all else np.zeros((resamples, 0), int)
    arr = lambda v: np.array([math.nan if x is None else float(x) for x in v], float)  # noqa: E731
    ctrl_all = {k: arr(v) for k, v in controls.items()}
    for outcome, yv in outcomes.items():
        y_all = arr(yv)
        results = []
        for score in members:
            x_all = arr(scores[score])
            ok = np.isfinite(x_all) & np.isfinite(y_all)
            for c in ctrl_all.values():
                ok &= np.isfinite(c)
            used = _usable({k: v[ok] for k, v in ctrl_all.items()})
            cols = list(used.values())
            point = partial_spearman(x_all[ok], y_all[ok], cols)
            boot = np.full(resamples, math.nan)
            idx = np.flatnonzero(ok)
            for i, d in enumerate(draws):
                keep = d[ok[d]]
                if keep.size < len(cols) + 3:
                    continue
                boot[i] = partial_spearman(x_all[keep], y_all[keep], [ctrl_all[k][keep] for k in used])
            del idx
            sign = signs.get((score, outcome), 0)
            finite = boot[np.isfinite(boot)]
            if finite.size < 0.99 * resamples or not math.isfinite(point):
                p = math.nan
            else:  # two-sided, on the correlation itself (the direction is judged on the point estimate)
                p = float(min(1.0, 2 * min((finite <= 0).mean(), (finite >= 0).mean())))
            ci = percentile_interval(boot, level, reliable=finite.size >= 0.99 * resamples, max_undefined=0.01)
            results.append((score, int(ok.sum()), tuple(used), point, ci, p, sign))
        tested = [r for r in results if not math.isnan(r[5])]
        adjusted = dict(zip([r[0] for r in tested], holm([r[5] for r in tested]))) if tested else {}
        for score, n, used, point, ci, p, sign in results:
            pa = adjusted.get(score)
            right_way = (point * sign > 0) if sign else abs(point) > 0
            adds = pa is not None and pa < alpha and math.isfinite(point) and right_way
            out.append(PartialCorrelation(score, outcome, n, used, point, (float(ci[0]), float(ci[1])), p, pa,
                                          family, sign, adds))
    return out


def partial_sentences(partials: Sequence[PartialCorrelation | Mapping], *, outcome_labels: Mapping[str, str],
                      sparsity: float, resamples: int = 1000) -> list[str]:
    """One computed sentence per outcome: which scores add information beyond the controls after
    Holm's adjustment (usually none), with the strongest partial correlation and its interval."""
    rows = [p.to_dict() if isinstance(p, PartialCorrelation) else dict(p) for p in partials]
    out = []
    for outcome, label in outcome_labels.items():
        these = [r for r in rows if r["outcome"] == outcome and r["partial"] is not None]
        if not these:
            continue
        used = sorted({c for r in these for c in r["controls"]})
        controls = " and ".join(used) if used else "nothing (every control was constant)"
        m = sum(1 for r in these if r["p_adjusted"] is not None)
        best = max(these, key=lambda r: abs(r["partial"]))
        lo, hi = best["ci"]
        shown = f"{best['partial']:+.2f}" + ("" if lo is None else f" [{lo:+.2f}, {hi:+.2f}]")
        if best["expected_sign"] and best["partial"] * best["expected_sign"] < 0:
            shown += ", the wrong way (what it counts as damage went with better outcomes)"
        adds = [r["score"] for r in these if r["adds_information"]]
        head = f"Sparsity {sparsity:g}, {label}, controlling for {controls}"
        if m == 0:
            out.append(f"{head}: no verdict, no score has a reliable interval (too few candidates differ); the "
                       f"strongest partial correlation is {best['score']}'s, {shown}.")
            continue
        if adds:
            verdict = (f"{', '.join(adds)} add{'s' if len(adds) == 1 else ''} information (Holm-adjusted over the "
                       f"{m} topological scores)")
        else:
            verdict = f"no topological score adds information (Holm-adjusted over the {m} topological scores)"
        p = best["p_adjusted"]
        words = "n/a" if p is None else (f"< {2 / resamples:.2g}" if p == 0 else f"= {p:.2g}")
        out.append(f"{head}: {verdict}; the strongest partial correlation is {best['score']}'s, {shown} "
                   f"(adjusted p {words}).")
    return out
