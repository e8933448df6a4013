"""The damage study's statistics (torch-free): rank correlations of scores with outcomes, paired
bootstrap intervals, and the computed verdict sentences.

For one sparsity, every candidate pruning has a value for each score (L1 mass removed, the GA's
diagram fitness, ...) and each outcome (accuracy right after pruning, after K recovery epochs,
...). Per (score, outcome):

- Spearman's rho and Kendall's tau-b (:mod:`scipy.stats`), over the candidates where both are
  defined;
- a percentile bootstrap interval for each: ``resamples`` draws of the candidates with
  replacement, seeded, the *same* draws for every score, so intervals of two scores are paired;
- against the baseline score (L1 mass removed): the difference of absolute Spearman
  correlations, ``|rho(score)| - |rho(L1)|``, and its paired bootstrap interval. A score
  "explains recoverability better than L1" only if that interval lies above zero (METHODS.md
  section 8).

The sign of a correlation is kept in the tables (a damage score should correlate negatively with
accuracy); predictive strength is compared in absolute value, so NP *retained* (higher = less
damage) and L1 mass *removed* compete on equal terms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = ["Correlation", "correlate", "verdicts", "BASELINE_SCORE"]

BASELINE_SCORE = "l1-mass-removed"


@dataclass(frozen=True)
class Correlation:
    """One (score, outcome) pair at one sparsity. Intervals are ``(low, high)``; NaN where the
    statistic is undefined (a constant score or outcome)."""

    score: str
    outcome: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    vs_baseline: float  # |rho| - |rho(baseline)|
    vs_baseline_ci: tuple[float, float]

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (_clean(v) if not isinstance(v, (tuple, list)) else [_clean(x) for x in v]) for k, v in d.items()}


def _clean(x):
    return None if isinstance(x, float) and math.isnan(x) else x


def _rows_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``x`` with the same row of ``y`` (average ranks for ties);
    NaN for a constant row."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / np.where(den > 0, den, 1), np.nan)


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size < 10:  # too few defined resamples to say anything
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def correlate(
    scores: Mapping[str, Sequence[float | None]],
    outcomes: Mapping[str, Sequence[float | None]],
    *,
    baseline: str = BASELINE_SCORE,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    kendall_resamples: int | None = None,
) -> list[Correlation]:
    """Every score against every outcome over the same candidates (equal-length sequences; ``None``
    or NaN marks a missing value, and that candidate is left out of that pair).

    ``kendall_resamples`` (default: ``resamples``) bounds the Kendall bootstrap, which is a
    Python loop (Spearman's is vectorised). The baseline's comparison with itself is 0 [0, 0]."""
    names = list(scores)
    lengths = {len(v) for v in [*scores.values(), *outcomes.values()]}
    if len(lengths) > 1:
        raise ValueError(f"scores and outcomes must cover the same candidates, got lengths {sorted(lengths)}")
    n_all = lengths.pop() if lengths else 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_all, size=(resamples, n_all)) if n_all else np.zeros((resamples, 0), int)
    k_draws = draws[: kendall_resamples if kendall_resamples is not None else resamples]
    as_array = {k: np.array([math.nan if v is None else float(v) for v in vals]) for k, vals in
                [*scores.items(), *outcomes.items()]}
    out: list[Correlation] = []
    for outcome in outcomes:
        y_all = as_array[outcome]
        boot: dict[str, np.ndarray] = {}
        for score in names:
            x_all = as_array[score]
            ok = np.isfinite(x_all) & np.isfinite(y_all)
            # a resample keeps the draws that landed on defined pairs (paired across scores when
            # every score is defined on every candidate, the usual case)
            x, y = x_all[draws], y_all[draws]
            valid = ok[draws]
            x = np.where(valid, x, np.nan)
            y = np.where(valid, y, np.nan)
            boot[score] = _boot_spearman(x, y)
        base = boot.get(baseline)
        for score in names:
            x_all = as_array[score]
            ok = np.isfinite(x_all) & np.isfinite(y_all)
            x, y = x_all[ok], y_all[ok]
            n = int(ok.sum())
            rho = float(_rows_spearman(x[None], y[None])[0]) if n >= 3 else math.nan
            tau = _kendall(x, y) if n >= 3 else math.nan
            taus = np.array([_kendall(x_all[d][ok[d]], y_all[d][ok[d]]) if ok[d].sum() >= 3 else math.nan
                             for d in k_draws])
            if base is None:
                diff, diff_ci = math.nan, (math.nan, math.nan)
            elif score == baseline:
                diff, diff_ci = 0.0, (0.0, 0.0)
            else:
                b = as_array[baseline]
                okb = ok & np.isfinite(b)
                base_rho = float(_rows_spearman(b[okb][None], y_all[okb][None])[0]) if okb.sum() >= 3 else math.nan
                diff = abs(rho) - abs(base_rho)
                diff_ci = _interval(np.abs(boot[score]) - np.abs(base), level)
            out.append(Correlation(score, outcome, n, rho, _interval(boot[score], level), tau,
                                   _interval(taus, level), diff, diff_ci))
    return out


def _boot_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman per resample row, ignoring NaN entries (rows with fewer than 3 pairs: NaN)."""
    full = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    res = np.full(x.shape[0], np.nan)
    if full.any():
        res[full] = _rows_spearman(x[full], y[full])
    for i in np.flatnonzero(~full):
        keep = np.isfinite(x[i]) & np.isfinite(y[i])
        if keep.sum() >= 3:
            res[i] = _rows_spearman(x[i][keep][None], y[i][keep][None])[0]
    return res


def _fmt(rho: float, ci: Sequence[float | None]) -> str:
    lo, hi = (math.nan if v is None else v for v in ci)
    if rho is None or (isinstance(rho, float) and math.isnan(rho)):
        return "undefined"
    if math.isnan(lo):
        return f"{rho:+.2f}"
    return f"{rho:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def verdicts(
    correlations: Sequence[Correlation | Mapping],
    *,
    families: Mapping[str, str],
    outcome_labels: Mapping[str, str],
    sparsity: float,
    baseline: str = BASELINE_SCORE,
    level: float = 0.95,
    directions: Mapping[str, int] | None = None,
    worse_when_higher: Sequence[str] = ("epochs-to-recover",),
) -> list[str]:
    """One computed sentence per outcome: the strongest predictor (largest ``|rho|``), whether its
    correlation is distinguishable from zero, and whether the best *topological* score beats the
    baseline beyond the paired interval. ``families`` maps a score to ``"topological"``,
    ``"magnitude"``, ``"control"`` or ``"user"``. ``directions`` maps a score to +1 (higher =
    more damage) or -1 (higher = less damage); a correlation whose interval excludes zero on the
    side the direction does not predict is called "the wrong way" (``worse_when_higher`` names
    the outcomes where a higher value is worse, e.g. epochs to recover). Nothing here is typed by
    hand: the sentences follow from the numbers, and they may be negative."""
    rows = [c if isinstance(c, Mapping) else c.to_dict() for c in correlations]
    directions = directions or {}

    def wrong_way(r: Mapping) -> str:
        d = directions.get(r["score"], 0)
        lo, hi = r["spearman_ci"]
        if not d or lo is None or hi is None or (lo <= 0 <= hi):
            return ""
        expected = d if r["outcome"] in worse_when_higher else -d
        if (r["spearman"] > 0) == (expected > 0):
            return ""
        if d > 0:
            return ", the wrong way: what it counts as more damage went with better outcomes"
        return ", the wrong way: what it counts as less damage went with worse outcomes"

    pct = f"{level * 100:g} %"
    sentences = []
    for outcome, label in outcome_labels.items():
        these = [r for r in rows if r["outcome"] == outcome and r["spearman"] is not None
                 and not (isinstance(r["spearman"], float) and math.isnan(r["spearman"]))]
        head = f"Sparsity {sparsity:g}, {label}"
        if not these:
            sentences.append(f"{head}: no score is defined (the outcome or every score is constant).")
            continue
        n = max(r["n"] for r in these)
        best = max(these, key=lambda r: abs(r["spearman"]))
        lo, hi = best["spearman_ci"]
        significant = lo is not None and hi is not None and (lo > 0 or hi < 0)
        text = (f"{head} (n = {n}): the strongest predictor is {best['score']} (Spearman "
                f"{_fmt(best['spearman'], best['spearman_ci'])}{wrong_way(best)}), "
                + ("its interval excludes zero" if significant else "but its interval includes zero")
                + ".")
        base = next((r for r in these if r["score"] == baseline), None)
        topo = [r for r in these if families.get(r["score"]) == "topological"]
        if base is None:
            text += f" The baseline {baseline} is not available, so nothing is compared with it."
        elif not topo:
            text += " No topological score is defined here."
        else:
            t = max(topo, key=lambda r: abs(r["spearman"]))
            dlo, dhi = t["vs_baseline_ci"]
            if dlo is not None and dlo > 0:
                word = "beats"
                tail = "beyond the paired interval: topology explains this outcome better than L1 mass"
            elif dhi is not None and dhi < 0:
                word = "is worse than"
                tail = "beyond the paired interval"
            else:
                word = "is not distinguishable from"
                tail = "the paired interval of the difference includes zero"
            text += (f" The best topological score, {t['score']} ({_fmt(t['spearman'], t['spearman_ci'])}"
                     f"{wrong_way(t)}), "
                     f"{word} {baseline} ({_fmt(base['spearman'], base['spearman_ci'])}): |rho| difference "
                     f"{_fmt(t['vs_baseline'], t['vs_baseline_ci'])} ({pct}), {tail}.")
        sentences.append(text)
    return sentences
