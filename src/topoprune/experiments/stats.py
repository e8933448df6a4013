"""The statistics behind every verdict: one implementation, used by the benchmarks, the README
tables and the studies.

- :func:`paired_difference`: method minus reference on the same seed (paired by the seed key,
  never by position), with the mean, the sample standard deviation, the 95 % Student
  t-interval (``n - 1`` degrees of freedom), the two-sided paired-t p-value, and the verdict
  WINS / TIE / LOSES read from the interval (WINS when it lies above zero, LOSES below, TIE
  when it contains zero).
- :func:`holm` and :func:`holm_family`: Holm's step-down adjustment of the p-values of one
  named family of comparisons (e.g. every "ours vs best peer" row of one table); the adjusted
  verdict is WINS / LOSES where the adjusted p is below 0.05 (by the sign of the mean
  difference), TIE otherwise. Both verdicts are kept side by side.
- :func:`minimum_detectable_effect`: the smallest true difference a paired t-test with ``n``
  seeds detects with 80 % power at two-sided 5 %, exactly (noncentral t) or by the central
  approximation ``(t_{0.975, n-1} + t_{0.8, n-1}) * sd / sqrt(n)``, which runs low at small
  ``n`` (3.10 sd against the exact 3.26 sd at ``n = 3``). :func:`detectable_sentence` words it
  beside a TIE.
- :func:`t_interval`, :func:`interval_verdict` and :func:`percentile_interval`: the interval
  pieces the above are made of, for callers that have values rather than pairs (repeats of one
  measurement; bootstrap draws).

Everything here is torch-free and uses :mod:`scipy.stats` for the distributions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import TopopruneError

__all__ = [
    "VERDICTS",
    "AdjustedComparison",
    "FamilyResult",
    "PairedResult",
    "detectable_sentence",
    "holm",
    "holm_family",
    "interval_verdict",
    "minimum_detectable_effect",
    "paired_difference",
    "percentile_interval",
    "t_interval",
]

VERDICTS = ("WINS", "TIE", "LOSES", "n/a")
ALPHA = 0.05  # two-sided level of every verdict: 95 % intervals, adjusted p < 0.05


def _json(x):
    """NaN becomes None, so a result's dict is valid JSON."""
    return None if isinstance(x, float) and math.isnan(x) else x


def _check_level(level: float, name: str = "level") -> float:
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0 < level < 1:
        raise TopopruneError(f"{name} must be a probability strictly between 0 and 1, got {level!r}")
    return float(level)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` with its Student t-interval (``n - 1``
    degrees of freedom, sample standard deviation). Needs at least two values."""
    from scipy import stats

    level = _check_level(level)
    values = [float(v) for v in values]
    if len(values) < 2:
        raise TopopruneError(f"a t-interval needs at least 2 values, got {len(values)}")
    m = statistics.mean(values)
    half = stats.t.ppf(1 - (1 - level) / 2, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return m, m - half, m + half


def interval_verdict(low: float, high: float) -> str:
    """WINS when the interval lies above zero, LOSES below, TIE when it contains zero (an
    interval that only touches zero does not exclude it)."""
    if low > 0:
        return "WINS"
    if high < 0:
        return "LOSES"
    return "TIE"


def percentile_interval(draws: np.ndarray, level: float = 0.95, *, reliable: bool = True,
                        max_undefined: float = 0.01) -> tuple[float, float]:
    """The percentile interval of bootstrap ``draws`` (NaN marks an undefined draw), or
    ``(nan, nan)`` when the caller knows the numbers cannot carry one (``reliable=False``), there
    are no draws, or more than ``max_undefined`` of them are undefined."""
    level = _check_level(level)
    draws = np.asarray(draws, dtype=float)
    if not reliable or draws.size == 0 or np.mean(~np.isfinite(draws)) > max_undefined:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(draws[np.isfinite(draws)], [tail, 100 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedResult:
    """A same-seed paired difference, method minus reference.

    ``differences`` follow ``seeds`` (the method's seeds that the reference also has, in the
    method's order). ``sd`` is the sample standard deviation of the differences; ``low`` and
    ``high`` bound the ``level`` t-interval of their mean; ``p_value`` is the two-sided paired-t
    p-value. With fewer than two pairs there is no interval: those fields are NaN, ``verdict``
    is ``"n/a"`` and ``reason`` says why. When every pair gives the same difference the interval
    has no width; ``reason`` says so (the verdict then rests on the test set's resolution).
    """

    n: int
    mean: float
    sd: float
    low: float
    high: float
    p_value: float
    verdict: str
    seeds: tuple[Hashable, ...]
    differences: tuple[float, ...]
    level: float = 0.95
    reason: str | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN as None)."""
        return {
            "n": self.n, "mean": _json(self.mean), "sd": _json(self.sd), "low": _json(self.low),
            "high": _json(self.high), "p_value": _json(self.p_value), "verdict": self.verdict,
            "seeds": list(self.seeds), "differences": list(self.differences), "level": self.level,
            "reason": self.reason,
        }


def _finite(value: object, seed: Hashable, side: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TopopruneError(f"{side} value for seed {seed!r} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise TopopruneError(f"{side} value for seed {seed!r} is {x}; only finite values can be compared")
    return x


def paired_difference(method: Mapping[Hashable, float], reference: Mapping[Hashable, float], *,
                      level: float = 0.95) -> PairedResult:
    """Method minus reference on every seed both have (paired by key: ``{seed: value}``), with
    the mean, sd, t-interval, paired-t p-value and WINS / TIE / LOSES (see :class:`PairedResult`).
    Seeds only one side has are left out."""
    from scipy import stats

    level = _check_level(level)
    seeds = tuple(s for s in method if s in reference)
    diffs = tuple(_finite(method[s], s, "method") - _finite(reference[s], s, "reference") for s in seeds)
    n = len(diffs)
    if n < 2:
        mean = diffs[0] if diffs else math.nan
        reason = f"{n} paired seed{'' if n == 1 else 's'}: an interval needs at least 2 seeds both sides have"
        return PairedResult(n, mean, math.nan, math.nan, math.nan, math.nan, "n/a", seeds, diffs, level, reason)
    mean, low, high = t_interval(diffs, level)
    sd = statistics.stdev(diffs)
    if sd < 1e-9 * max(1.0, abs(mean)):  # equal differences up to float rounding (accuracies are ratios)
        sd, low, high = 0.0, mean, mean
    reason = None
    if sd == 0:
        p = 1.0 if mean == 0 else 0.0
        reason = (f"every seed gave the same difference ({mean:+.2f}): the interval has no width, so the verdict "
                  "rests on the test set's resolution (a small test set quantises accuracy); more seeds or a larger "
                  "test set would give it a spread")
    else:
        p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return PairedResult(n, mean, sd, low, high, p, interval_verdict(low, high), seeds, diffs, level, reason)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the ``k``-th smallest p times
    ``m - k + 1``, made non-decreasing along the sorted order and capped at 1."""
    p = [float(x) for x in p_values]
    bad = [x for x in p if not 0 <= x <= 1]
    if bad:
        raise TopopruneError(f"p-values must lie in [0, 1], got {bad[0]!r}")
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class AdjustedComparison:
    """One comparison of a family: its raw result (``result.verdict``), its Holm-adjusted
    p-value and the verdict that follows from it (None / ``"n/a"`` for a comparison without a
    p-value)."""

    name: str
    result: PairedResult
    p_adjusted: float | None
    verdict_adjusted: str

    def to_dict(self) -> dict:
        return {"name": self.name, **self.result.to_dict(), "p_adjusted": self.p_adjusted,
                "verdict_adjusted": self.verdict_adjusted}


@dataclass(frozen=True)
class FamilyResult:
    """Holm's adjustment over one named family of ``m`` comparisons (those with a p-value)."""

    family: str
    m: int
    alpha: float
    comparisons: tuple[AdjustedComparison, ...]

    def to_dict(self) -> dict:
        return {"family": self.family, "m": self.m, "alpha": self.alpha,
                "comparisons": [c.to_dict() for c in self.comparisons]}


def holm_family(family: str, results: Mapping[str, PairedResult], *, alpha: float = ALPHA) -> FamilyResult:
    """Adjust the paired-t p-values of one family of comparisons (name it: e.g. every "ours vs
    best peer" row of one table) with Holm's method. A comparison with fewer than two seeds has
    no p-value: it does not count in ``m`` and keeps the verdict ``"n/a"``."""
    if not isinstance(family, str) or not family.strip():
        raise TopopruneError(f"family must be a non-empty name for the comparisons, got {family!r}")
    alpha = _check_level(alpha, "alpha")
    tested = [k for k, r in results.items() if not math.isnan(r.p_value)]
    adjusted = dict(zip(tested, holm([results[k].p_value for k in tested])))
    out = []
    for name, r in results.items():
        if name not in adjusted:
            out.append(AdjustedComparison(name, r, None, "n/a"))
            continue
        p = adjusted[name]
        word = ("WINS" if r.mean > 0 else "LOSES") if p < alpha and r.mean != 0 else "TIE"
        out.append(AdjustedComparison(name, r, p, word))
    return FamilyResult(family, len(tested), alpha, tuple(out))


def _power(d: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs at standardized effect ``d``."""
    from scipy import stats

    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = d * math.sqrt(n)
    lower = stats.nct.cdf(-crit, df, nc)  # can be NaN far in the tail, where it is ~0
    return float(stats.nct.sf(crit, df, nc) + (0.0 if math.isnan(lower) else lower))


def minimum_detectable_effect(sd: float, n: int, *, power: float = 0.8, alpha: float = ALPHA,
                              exact: bool = True) -> float:
    """The smallest true mean difference a two-sided paired t-test at ``alpha`` detects with
    probability ``power``, for ``n`` seeds whose differences have standard deviation ``sd``
    (same unit as ``sd``).

    ``exact=True`` solves the noncentral-t power equation (:data:`scipy.stats.nct`);
    ``exact=False`` is the central approximation ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd /
    sqrt(n)``, a little low at small ``n``.
    """
    from scipy import optimize, stats

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise TopopruneError(f"n must be an integer number of seeds >= 2, got {n!r}")
    if not isinstance(sd, (int, float, np.floating)) or not math.isfinite(sd) or sd < 0:
        raise TopopruneError(f"sd must be a finite number >= 0, got {sd!r}")
    power = _check_level(power, "power")
    alpha = _check_level(alpha, "alpha")
    n = int(n)
    approx = (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) / math.sqrt(n)
    if not exact:
        return float(approx * sd)
    high = approx
    while _power(high, n, alpha) < power:
        high *= 1.5
    d = optimize.brentq(lambda x: _power(x, n, alpha) - power, 0.0, high, xtol=1e-12)
    return float(d * sd)


def detectable_sentence(result: PairedResult, *, exact: bool = True, power: float = 0.8,
                        unit: str = "points", digits: int = 2) -> str:
    """The sentence that goes beside a TIE: "no difference larger than X points could be seen
    with n seeds", X being :func:`minimum_detectable_effect` of the result's differences, and
    how X was computed."""
    if result.n < 2:
        raise TopopruneError(f"a minimum detectable effect needs at least 2 paired seeds, got {result.n}")
    alpha = 1 - result.level
    x = minimum_detectable_effect(result.sd, result.n, power=power, alpha=alpha, exact=exact)
    how = "noncentral t" if exact else "central t approximation"
    return (f"no difference larger than {x:.{digits}f} {unit} could be seen with {result.n} seeds "
            f"({power * 100:g} % power, two-sided {alpha * 100:g} %, {how})")
