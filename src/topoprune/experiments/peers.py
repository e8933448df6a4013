"""The "Paired comparisons" of a comparison report: per (model, sparsity), every method against
the best peer, with the raw and the Holm-adjusted verdict and, beside a TIE, what the seeds at
hand could have seen.

The best peer is chosen by a rule fixed before the run: the highest mean accuracy after
recovery among the config's methods (controls excluded; equal means go to the first name in
alphabetical order). Every other method is then compared with it on the same seeds
(:func:`~.stats.paired_difference`, method minus best peer), and the p-values of those
comparisons, one family per (model, sparsity), are adjusted with Holm's method
(:func:`~.stats.holm_family`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from .stats import (AdjustedComparison, FamilyResult, PairedResult, detectable_sentence, holm_family,
                    minimum_detectable_effect, paired_difference)

__all__ = ["PeerComparisonResult", "adjusted_words", "best_peer", "peer_comparisons", "peer_sentences",
           "strict_detectable_sentence"]


@dataclass(frozen=True)
class PeerComparisonResult:
    """One (model, sparsity): its best peer, that peer's mean accuracy after recovery, and the
    Holm-adjusted family of "method vs best peer" comparisons."""

    model: str
    sparsity: float
    best: str
    best_mean: float
    family: FamilyResult

    def to_dict(self) -> dict:
        return {"model": self.model, "sparsity": self.sparsity, "best": self.best, "best_mean": self.best_mean,
                **self.family.to_dict()}


def best_peer(means: dict[str, float]) -> str:
    """The method with the highest mean (equal means: the first name in alphabetical order)."""
    return min(means, key=lambda m: (-means[m], m))


def family_name(model: str, sparsity: float) -> str:
    """How a report names the family of one (model, sparsity)'s comparisons."""
    return f'every "method vs best peer" row of {model} at sparsity {sparsity:g}'


def peer_comparisons(rows: list[dict], *, at_chance: Collection[str] = ()) -> list[PeerComparisonResult]:
    """Per (model, sparsity) with at least two methods (controls excluded, models in
    ``at_chance`` left out), every method minus the best peer on ``acc_after_recovery``, paired
    by seed, Holm-adjusted over that (model, sparsity)'s comparisons."""
    acc: dict[tuple, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if not r.get("control") and r["model"] not in at_chance:
            acc[(r["model"], r["sparsity"])][r["method"]][r["seed"]] = r["acc_after_recovery"]
    out = []
    for (model, sparsity), methods in sorted(acc.items()):
        if len(methods) < 2:
            continue
        means = {m: statistics.mean(v.values()) for m, v in methods.items()}
        best = best_peer(means)
        results = {m: paired_difference(methods[m], methods[best]) for m in sorted(methods) if m != best}
        out.append(PeerComparisonResult(model, sparsity, best, means[best],
                                        holm_family(family_name(model, sparsity), results)))
    return out


def adjusted_words(c: AdjustedComparison, m: int) -> str:
    """The raw verdict, the Holm-adjusted one, and the detectable-effect sentence beside a TIE
    (at 5 % beside a raw TIE; at 5 % / m beside a TIE only the adjustment made):
    ``p = 0.2: raw **TIE**; Holm-adjusted over 3 (p = 0.41): **TIE**; no difference larger than ...``."""
    r = c.result
    words = f"p = {r.p_value:.3g}: raw **{r.verdict}**; Holm-adjusted over {m} (p = {c.p_adjusted:.3g}): " \
            f"**{c.verdict_adjusted}**"
    if r.verdict == "TIE":
        words += f"; {detectable_sentence(r)}"
    elif c.verdict_adjusted == "TIE":
        words += f"; {strict_detectable_sentence(r, m)}"
    return words


def strict_detectable_sentence(result: PairedResult, m: int) -> str:
    """Beside a TIE that Holm's adjustment made of a raw WINS or LOSES: the detectable effect at
    the family's strictest level (5 % / m, where Holm tests the smallest p-value), since at 5 %
    the difference was seen."""
    alpha = (1 - result.level) / m
    x = minimum_detectable_effect(result.sd, result.n, alpha=alpha)
    return (f"no difference larger than {x:.2f} points could be seen with {result.n} seeds at the family's "
            f"strictest level (80 % power, two-sided {alpha * 100:.3g} % = 5 % / {m}, noncentral t)")


def peer_sentences(results: list[PeerComparisonResult], coverage: str) -> list[str]:
    """The bullets of the "Paired comparisons" section: per (model, sparsity), which peer was
    best and the named family, then one line per method against it."""
    out = []
    for pc in results:
        fam = pc.family
        out.append(f"{pc.model} at sparsity {pc.sparsity:g}: the best peer is **{pc.best}** "
                   f"({pc.best_mean:.2f} % mean accuracy after recovery, the highest among the config's methods, "
                   f"controls excluded). Holm's adjustment runs over the family of {fam.m} comparison"
                   f"{'' if fam.m == 1 else 's'}: {fam.family}.")
        for c in fam.comparisons:
            r = c.result
            where = f"{pc.model} at sparsity {pc.sparsity:g}: **{c.name}** minus **{pc.best}**"
            if r.n < 2:
                mean = "" if r.n == 0 else f"{r.mean:+.2f} points with 1 seed: "
                out.append(f"{where}: {mean}no verdict ({r.n} seed{'' if r.n == 1 else 's'} both have; a verdict "
                           "needs at least 2).")
                continue
            flat = f" Note: {r.reason}." if r.sd == 0 and r.reason else ""
            out.append(f"{where}: {r.mean:+.2f} points, 95 % t-interval [{r.low:+.2f}, {r.high:+.2f}] over {r.n} "
                       f"seeds (same-seed paired, accuracy after recovery; {coverage}), {adjusted_words(c, fam.m)}."
                       f"{flat}")
    return out
