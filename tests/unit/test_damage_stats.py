"""The damage study's statistics: rank correlations against scipy, the paired bootstrap, the
tie rule, oriented family comparisons, and verdict sentences that follow from the numbers."""

import math

import numpy as np
import pytest
from scipy import stats

from topoprune.experiments.study.damage_stats import analyse, correlate, verdicts


def _one(cs, score, outcome):
    return next(c for c in cs if c.score == score and c.outcome == outcome)


def test_hand_computed_and_scipy_agree():
    # x = 1..5, y reversed except one swap: rho = 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*38/120 = -0.9
    x = [1, 2, 3, 4, 5]
    y = [5, 4, 3, 1, 2]
    c = _one(correlate({"l1-mass-removed": x}, {"acc": y}, resamples=200), "l1-mass-removed", "acc")
    assert c.spearman == pytest.approx(-0.9)
    assert c.kendall == pytest.approx(stats.kendalltau(x, y).statistic)
    rng = np.random.default_rng(3)
    a = rng.normal(size=40)
    b = a + rng.normal(size=40)
    a[[3, 7]] = a[5]  # ties take average ranks, as scipy does
    c = _one(correlate({"s": a}, {"o": b}, resamples=50, baseline="s"), "s", "o")
    assert c.spearman == pytest.approx(stats.spearmanr(a, b).statistic)
    assert c.kendall == pytest.approx(stats.kendalltau(a, b).statistic)
    lo, hi = c.spearman_ci
    assert lo < c.spearman < hi and -1 <= lo and hi <= 1


def test_a_good_damage_score_beats_noise_beyond_the_interval():
    rng = np.random.default_rng(0)
    acc = rng.normal(size=60)
    scores = {"l1-mass-removed": rng.normal(size=60), "good": -acc * 2 + 0.01 * rng.normal(size=60)}
    res = analyse(scores, {"acc": acc}, directions={"good": 1, "l1-mass-removed": 1},
                  families={"good": "topological"}, resamples=500, seed=1)
    good = _one(res.correlations, "good", "acc")
    assert good.spearman < -0.99 and good.spearman_ci[1] < -0.98 and good.expected_sign == -1
    assert good.vs_baseline_ci[0] > 0.5  # oriented gain over the baseline, paired
    base = _one(res.correlations, "l1-mass-removed", "acc")
    assert base.vs_baseline == 0 and tuple(base.vs_baseline_ci) == (0, 0)
    (fam,) = res.families
    assert fam.best == "good" and fam.diff_ci[0] > 0.5
    text = verdicts(res, outcome_labels={"acc": "accuracy"}, sparsity=0.5)
    assert len(text) == 1 and "strongest predictor is good" in text[0] and " beats l1-mass-removed" in text[0]


def test_a_wrong_way_score_never_beats_the_baseline():
    rng = np.random.default_rng(7)
    acc = rng.normal(size=40)
    loss = acc + 0.1 * rng.normal(size=40)  # a "damage" that goes WITH accuracy
    res = analyse({"l1-mass-removed": rng.normal(size=40), "loss": loss}, {"acc": acc, "epochs-to-recover": -acc},
                  directions={"loss": 1, "l1-mass-removed": 1}, families={"loss": "topological"}, resamples=300)
    text = verdicts(res, outcome_labels={"acc": "accuracy", "epochs-to-recover": "e"}, sparsity=0.5)
    assert "the wrong way" in text[0] and "the wrong way" in text[1]
    assert all(" beats " not in t for t in text)  # |rho| is large, but it points the wrong way
    assert "is worse than l1-mass-removed" in text[0]
    # the same numbers as a retention score (higher = less damage) point the right way
    res = analyse({"l1-mass-removed": rng.normal(size=40), "loss": loss}, {"acc": acc},
                  directions={"loss": -1, "l1-mass-removed": 1}, families={"loss": "topological"}, resamples=300)
    assert "wrong way" not in verdicts(res, outcome_labels={"acc": "a"}, sparsity=0.5)[0]


def test_picking_the_best_of_several_scores_widens_the_interval():
    rng = np.random.default_rng(2)
    acc = rng.normal(size=40)
    members = {f"t{i}": -(acc + 1.5 * rng.normal(size=40)) for i in range(5)}  # equally informative
    res = analyse({"l1-mass-removed": -(acc + 1.5 * rng.normal(size=40)), **members}, {"acc": acc},
                  directions=dict.fromkeys([*members, "l1-mass-removed"], 1),
                  families=dict.fromkeys(members, "topological"), resamples=400)
    (fam,) = res.families
    single = _one(res.correlations, fam.best, "acc")
    # the family's interval is built from the best member of EVERY resample: it sits higher than
    # the chosen member's own paired interval, so a lucky pick is not a discovery
    assert fam.diff_ci[0] > single.vs_baseline_ci[0]
    assert fam.diff == pytest.approx(single.vs_baseline)


def test_a_mostly_constant_outcome_gets_no_interval():
    rng = np.random.default_rng(4)
    acc = np.full(44, 10.0)
    acc[[3, 9]] = [14.0, 35.0]  # two candidates off "chance": too few to say anything
    res = analyse({"l1-mass-removed": rng.normal(size=44), "s": rng.normal(size=44)}, {"acc-raw": acc},
                  families={"s": "topological"}, resamples=300)
    c = _one(res.correlations, "s", "acc-raw")
    assert math.isfinite(c.spearman) and all(math.isnan(v) for v in c.spearman_ci)
    text = verdicts(res, outcome_labels={"acc-raw": "raw accuracy"}, sparsity=0.5)[0]
    assert "no reliable interval" in text and " beats " not in text


def test_missing_values_are_dropped_pairwise_and_equal_scores_are_not_distinguishable():
    rng = np.random.default_rng(2)
    outcome = rng.normal(size=30)
    noisy = -outcome + rng.normal(size=30)
    topo = list(noisy)
    topo[4] = None  # a candidate where the score is undefined
    res = analyse({"l1-mass-removed": noisy, "topo": topo}, {"acc": outcome}, families={"topo": "topological"},
                  directions={"topo": 1, "l1-mass-removed": 1}, resamples=300)
    t = _one(res.correlations, "topo", "acc")
    assert t.n == 29
    assert t.vs_baseline == pytest.approx(0)  # the baseline is taken over the same 29 candidates
    assert t.vs_baseline_ci[0] <= 0 <= t.vs_baseline_ci[1]
    text = verdicts(res, outcome_labels={"acc": "acc"}, sparsity=0.7)
    assert "is not distinguishable from l1-mass-removed" in text[0]


def test_constant_values_are_undefined_not_an_error():
    cs = correlate({"l1-mass-removed": [1.0, 2.0, 3.0, 4.0], "flat": [1.0] * 4}, {"acc": [10.0] * 4},
                   resamples=50)
    assert all(math.isnan(c.spearman) for c in cs)
    text = verdicts(analyse({"flat": [1.0] * 4}, {"acc": [10.0] * 4}), outcome_labels={"acc": "accuracy"},
                    sparsity=0.5)
    assert "no score is defined" in text[0]
    assert correlate({"a": [1, 2]}, {"o": [1, 2]}, baseline="a")[0].n == 2


def test_lengths_must_match():
    with pytest.raises(ValueError, match="same candidates"):
        correlate({"a": [1, 2, 3]}, {"o": [1, 2]})


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(5)
    s, o = {"l1-mass-removed": rng.normal(size=20)}, {"acc": rng.normal(size=20)}
    assert correlate(s, o, seed=4) == correlate(s, o, seed=4)
