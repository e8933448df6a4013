"""The damage study's statistics (torch-free): rank correlations of scores with outcomes, paired
bootstrap intervals, and the computed verdict sentences.

For one sparsity, every candidate pruning has a value for each score (L1 mass removed, the GA's
diagram fitness, ...) and each outcome (accuracy right after pruning, after K recovery epochs,
...). Per (score, outcome):

- Spearman's rho and Kendall's tau-b (:mod:`scipy.stats`), over the candidates where both are
  defined;
- a percentile bootstrap interval for each: ``resamples`` draws of the candidates with
  replacement, seeded, the *same* draws for every score, so two scores' intervals are paired;
- against the baseline score (L1 mass removed): the difference of *oriented* Spearman
  correlations. A score with a direction (+1: higher means more damage; -1: less) is oriented so
  that a positive value means "correlates the way it should" (more damage, lower accuracy or more
  epochs); a score without one counts by ``|rho|``.

Where the numbers cannot carry an interval it is left out ("no reliable interval"), never made
up: when fewer than :data:`MIN_OFF` candidates differ from the most common value of the score or
of the outcome (raw accuracy is exactly 10 % for most candidates of a BatchNorm network, epochs to
recover sit at the cap), or when more than 1 % of the resamples are undefined (a constant draw).

Per outcome, a *family* comparison asks whether any topological score beats L1 mass removed: in
every resample the best oriented correlation among the family's scores minus the baseline's, so
the interval accounts for picking the best of several (a score "explains recoverability" only
if it beats the L1-mass baseline beyond the interval).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from ..stats import interval_verdict, percentile_interval

__all__ = ["Correlation", "FamilyComparison", "Analysis", "analyse", "correlate", "verdicts", "BASELINE_SCORE",
           "MIN_OFF"]

BASELINE_SCORE = "l1-mass-removed"
TOPOLOGICAL = "topological"  # the score family the verdicts test against the baseline
MIN_OFF = 5  # candidates off the most common value needed for an interval
MIN_RANDOM_ONLY = 20  # fewer random candidates than this: no random-only analysis (percentile-bootstrap
# intervals of a rank correlation cover poorly on a handful of points)
MAX_UNDEFINED = 0.01  # share of undefined resamples above which no interval is given
WORSE_WHEN_HIGHER = ("epochs-to-recover",)


def _clean(x):
    return None if isinstance(x, float) and math.isnan(x) else x


def _as_dict(obj) -> dict:
    d = asdict(obj)
    return {k: (_clean(v) if not isinstance(v, (tuple, list)) else [_clean(x) for x in v]) for k, v in d.items()}


@dataclass(frozen=True)
class Correlation:
    """One (score, outcome) pair at one sparsity. Intervals are ``(low, high)``; NaN where the
    statistic or its interval is undefined. ``vs_baseline``: oriented rho minus the baseline's."""

    score: str
    outcome: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    vs_baseline: float
    vs_baseline_ci: tuple[float, float]
    expected_sign: int = 0  # the sign rho should have if the score measures damage; 0: unknown

    def to_dict(self) -> dict:
        return _as_dict(self)


@dataclass(frozen=True)
class FamilyComparison:
    """The best score of a family against the baseline for one outcome: ``best`` has the highest
    oriented rho; ``diff`` is its oriented rho minus the baseline's, and ``diff_ci`` the interval
    of (best of the family in each resample) minus (the baseline in that resample)."""

    family: str
    outcome: str
    members: tuple[str, ...]
    best: str
    oriented: float
    oriented_ci: tuple[float, float]
    diff: float
    diff_ci: tuple[float, float]

    def to_dict(self) -> dict:
        return _as_dict(self)


@dataclass
class Analysis:
    correlations: list[Correlation] = field(default_factory=list)
    families: list[FamilyComparison] = field(default_factory=list)


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
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def _off_mode(v: np.ndarray) -> int:
    """How many values differ from the most common one."""
    if v.size == 0:
        return 0
    _, counts = np.unique(v, return_counts=True)
    return int(v.size - counts.max())


def _interval(values: np.ndarray, level: float, reliable: bool = True) -> tuple[float, float]:
    return percentile_interval(values, level, reliable=reliable, max_undefined=MAX_UNDEFINED)


def _boot_spearman(x_all: np.ndarray, y_all: np.ndarray, ok: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Spearman per resample over the drawn candidates where ``ok`` (rows with fewer than 3
    pairs: NaN)."""
    x, y, valid = x_all[draws], y_all[draws], ok[draws]
    full = valid.all(axis=1)
    res = np.full(draws.shape[0], np.nan)
    if full.any():
        res[full] = _rows_spearman(x[full], y[full])
    for i in np.flatnonzero(~full):
        keep = valid[i]
        if keep.sum() >= 3:
            res[i] = _rows_spearman(x[i][keep][None], y[i][keep][None])[0]
    return res


def expected_sign(direction: int, outcome: str, worse_when_higher: Sequence[str] = WORSE_WHEN_HIGHER) -> int:
    """The sign rho should have if a score with ``direction`` measures damage: more damage, lower
    accuracy (negative), or more epochs to recover (positive). 0 when the direction is unknown."""
    if not direction:
        return 0
    return direction if outcome in worse_when_higher else -direction


def _orient(rho, sign: int):
    return rho * sign if sign else np.abs(rho)


def analyse(
    scores: Mapping[str, Sequence[float | None]],
    outcomes: Mapping[str, Sequence[float | None]],
    *,
    baseline: str = BASELINE_SCORE,
    directions: Mapping[str, int] | None = None,
    families: Mapping[str, str] | None = None,
    compare_families: Sequence[str] = (TOPOLOGICAL,),
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    kendall_resamples: int | None = None,
    worse_when_higher: Sequence[str] = WORSE_WHEN_HIGHER,
) -> Analysis:
    """Every score against every outcome over the same candidates (equal-length sequences; ``None``
    or NaN marks a missing value, and that candidate is left out of that pair), plus, per outcome,
    each family of ``compare_families`` against the baseline.

    ``kendall_resamples`` (default: ``resamples``) bounds the Kendall bootstrap, a Python loop
    (Spearman's is vectorised). The baseline's comparison with itself is 0 [0, 0]."""
    directions = directions or {}
    families = families or {}
    names = list(scores)
    lengths = {len(v) for v in [*scores.values(), *outcomes.values()]}
    if len(lengths) > 1:
        raise ValueError(f"scores and outcomes must cover the same candidates, got lengths {sorted(lengths)}")
    n_all = lengths.pop() if lengths else 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_all, size=(resamples, n_all)) if n_all else np.zeros((resamples, 0), int)
    k_draws = draws[: kendall_resamples if kendall_resamples is not None else resamples]
    arr = {k: np.array([math.nan if v is None else float(v) for v in vals], dtype=float)
           for k, vals in [*scores.items(), *outcomes.items()]}
    result = Analysis()
    for outcome in outcomes:
        y_all = arr[outcome]
        point: dict[str, float] = {}
        boot: dict[str, np.ndarray] = {}
        reliable: dict[str, bool] = {}
        oks: dict[str, np.ndarray] = {}
        for score in names:
            x_all = arr[score]
            ok = np.isfinite(x_all) & np.isfinite(y_all)
            oks[score] = ok
            x, y = x_all[ok], y_all[ok]
            point[score] = float(_rows_spearman(x[None], y[None])[0]) if ok.sum() >= 3 else math.nan
            boot[score] = _boot_spearman(x_all, y_all, ok, draws)
            reliable[score] = min(_off_mode(x), _off_mode(y)) >= MIN_OFF
        b_all = arr.get(baseline)
        for score in names:
            ok = oks[score]
            x, y = arr[score][ok], y_all[ok]
            sign = expected_sign(directions.get(score, 0), outcome, worse_when_higher)
            tau = _kendall(x, y)
            taus = np.array([_kendall(arr[score][d][ok[d]], y_all[d][ok[d]]) for d in k_draws])
            if b_all is None:
                diff, diff_ci = math.nan, (math.nan, math.nan)
            elif score == baseline:
                diff, diff_ci = 0.0, (0.0, 0.0)
            else:
                b_sign = expected_sign(directions.get(baseline, 0), outcome, worse_when_higher)
                joint = ok & np.isfinite(b_all)  # the baseline over the same candidates as the score
                if joint.all() or np.array_equal(joint, oks[baseline]):
                    b_point, b_boot = point[baseline], boot[baseline]
                else:
                    b_point = (float(_rows_spearman(b_all[joint][None], y_all[joint][None])[0])
                               if joint.sum() >= 3 else math.nan)
                    b_boot = _boot_spearman(b_all, y_all, joint, draws)
                diff = _orient(point[score], sign) - _orient(b_point, b_sign)
                diff_ci = _interval(_orient(boot[score], sign) - _orient(b_boot, b_sign), level,
                                    reliable[score] and reliable[baseline])
            result.correlations.append(Correlation(
                score, outcome, int(ok.sum()), point[score], _interval(boot[score], level, reliable[score]),
                tau, _interval(taus, level, reliable[score]), diff, diff_ci, sign))
        if b_all is None:
            continue
        b_sign = expected_sign(directions.get(baseline, 0), outcome, worse_when_higher)
        for family in compare_families:
            members = tuple(s for s in names if families.get(s) == family and np.isfinite(point[s]))
            if not members:
                continue
            signs = {s: expected_sign(directions.get(s, 0), outcome, worse_when_higher) for s in members}
            oriented = {s: _orient(point[s], signs[s]) for s in members}
            best = max(members, key=lambda s: oriented[s])
            stack = np.vstack([_orient(boot[s], signs[s]) for s in members])
            with warnings.catch_warnings():  # a draw where every member is undefined stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                best_per_draw = np.nanmax(stack, axis=0)
            ok_all = all(reliable[s] for s in members) and reliable[baseline]
            result.families.append(FamilyComparison(
                family, outcome, members, best, oriented[best],
                _interval(_orient(boot[best], signs[best]), level, reliable[best]),
                oriented[best] - _orient(point[baseline], b_sign),
                _interval(best_per_draw - _orient(boot[baseline], b_sign), level, ok_all)))
    return result


def correlate(scores, outcomes, **kwargs) -> list[Correlation]:
    """:func:`analyse`'s correlations alone."""
    return analyse(scores, outcomes, **kwargs).correlations


def _fmt(rho, ci: Sequence[float | None]) -> str:
    lo, hi = (math.nan if v is None else v for v in ci)
    if rho is None or (isinstance(rho, float) and math.isnan(rho)):
        return "undefined"
    if math.isnan(lo):
        return f"{rho:+.2f} (no reliable interval)"
    return f"{rho:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _defined(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _wrong_way(r: Mapping) -> str:
    sign = r.get("expected_sign", 0)
    lo, hi = r["spearman_ci"]
    if not sign or not (_defined(lo) and _defined(hi)) or interval_verdict(lo, hi) == "TIE":
        return ""
    if (r["spearman"] > 0) == (sign > 0):
        return ""
    return ", the wrong way: what it counts as damage went with better outcomes"


def verdicts(
    analysis: Analysis | Mapping,
    *,
    outcome_labels: Mapping[str, str],
    sparsity: float,
    baseline: str = BASELINE_SCORE,
    level: float = 0.95,
    subset: str | None = None,
) -> list[str]:
    """One computed sentence per outcome: the strongest predictor (largest ``|rho|``), whether its
    interval excludes zero and whether it runs the wrong way; then whether the topological scores
    (the best of them, chosen per resample) beat the baseline beyond the paired interval. Nothing
    is typed by hand: the sentences follow from the numbers, and they may be negative. ``subset``
    names the candidates analysed when they are not all of them (``"the 40 random candidates only"``)."""
    if isinstance(analysis, Analysis):
        corr = [c.to_dict() for c in analysis.correlations]
        fams = [f.to_dict() for f in analysis.families]
    else:
        corr, fams = list(analysis["correlations"]), list(analysis.get("families", []))
    pct = f"{level * 100:g} %"
    sentences = []
    for outcome, label in outcome_labels.items():
        these = [r for r in corr if r["outcome"] == outcome and _defined(r["spearman"])]
        head = f"Sparsity {sparsity:g}, {label}" + (f", among {subset}" if subset else "")
        if not these:
            sentences.append(f"{head}: no score is defined (the outcome or every score is constant).")
            continue
        n = max(r["n"] for r in these)
        best = max(these, key=lambda r: abs(r["spearman"]))
        lo, hi = best["spearman_ci"]
        if not (_defined(lo) and _defined(hi)):
            state = "with no reliable interval (too few candidates differ in the score or the outcome)"
        elif interval_verdict(lo, hi) != "TIE":
            state = "its interval excludes zero"
        else:
            state = "but its interval includes zero"
        shown = _fmt(best["spearman"], best["spearman_ci"]).replace(" (no reliable interval)", "")
        text = (f"{head} (n = {n}): the strongest predictor is {best['score']} (Spearman "
                f"{shown}{_wrong_way(best)}), {state}.")
        base = next((r for r in these if r["score"] == baseline), None)
        fam = next((f for f in fams if f["outcome"] == outcome and f["family"] == TOPOLOGICAL), None)
        if base is None:
            text += f" The baseline {baseline} is not available, so nothing is compared with it."
        elif fam is None:
            text += " No topological score is defined here."
        else:
            dlo, dhi = fam["diff_ci"]
            olo = fam["oriented_ci"][0]
            k = len(fam["members"])
            picked = f"the best of {k} topological scores, {fam['best']}" if k > 1 else f"the topological score {fam['best']}"
            if not (_defined(dlo) and _defined(dhi)):
                tail = "no reliable interval, so no verdict"
                word = "cannot be compared with"
            elif interval_verdict(dlo, dhi) == "WINS" and _defined(olo) and olo > 0:
                word = "beats"
                tail = ("beyond the paired interval: at this sparsity, topology predicts this outcome better than "
                        "L1 mass")
            elif interval_verdict(dlo, dhi) == "LOSES":
                word = "is worse than"
                tail = "beyond the paired interval"
            else:
                word = "is not distinguishable from"
                tail = "the interval of the difference includes zero" if dlo <= 0 else (
                    "its own correlation is not clearly in the expected direction")
            sign = base.get("expected_sign") or 0
            b_oriented = base["spearman"] * sign if sign else abs(base["spearman"])
            text += (f" Oriented so that positive means 'more damage, worse outcome', {picked} "
                     f"({_fmt(fam['oriented'], fam['oriented_ci'])}) {word} {baseline} ({b_oriented:+.2f}): "
                     f"difference {_fmt(fam['diff'], fam['diff_ci'])} ({pct}, best-of-{k} chosen in every "
                     f"resample), {tail}.")
        sentences.append(text)
    return sentences
