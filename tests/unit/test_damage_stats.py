"""The damage study's statistics: rank correlations against scipy, the paired bootstrap, and
verdict sentences that follow from the numbers (torch-free)."""

import math

import numpy as np
import pytest
from scipy import stats

from topoprune.experiments.study.damage_stats import correlate, verdicts


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
    a, b = rng.normal(size=40), rng.normal(size=40)
    b = a + rng.normal(size=40)
    a[[3, 7]] = a[5]  # ties take average ranks, as scipy does
    c = _one(correlate({"s": a}, {"o": b}, resamples=50, baseline="s"), "s", "o")
    assert c.spearman == pytest.approx(stats.spearmanr(a, b).statistic)
    assert c.kendall == pytest.approx(stats.kendalltau(a, b).statistic)
    lo, hi = c.spearman_ci
    assert lo < c.spearman < hi and -1 <= lo and hi <= 1


def test_perfect_predictor_beats_noise_beyond_the_interval():
    rng = np.random.default_rng(0)
    outcome = rng.normal(size=60)
    scores = {"l1-mass-removed": rng.normal(size=60), "good": -outcome * 2 + 0.01 * rng.normal(size=60)}
    cs = correlate(scores, {"acc": outcome}, resamples=500, seed=1)
    good = _one(cs, "good", "acc")
    assert good.spearman < -0.99 and good.spearman_ci[1] < -0.98
    assert good.vs_baseline_ci[0] > 0.5  # |rho| gain over the baseline, paired
    base = _one(cs, "l1-mass-removed", "acc")
    assert base.vs_baseline == 0 and tuple(base.vs_baseline_ci) == (0, 0)
    text = verdicts(cs, families={"good": "topological", "l1-mass-removed": "magnitude"},
                    outcome_labels={"acc": "accuracy"}, sparsity=0.5)
    assert len(text) == 1 and "strongest predictor is good" in text[0] and " beats " in text[0]


def test_equal_scores_are_not_distinguishable_and_missing_values_are_dropped():
    rng = np.random.default_rng(2)
    outcome = rng.normal(size=30)
    noisy = outcome + rng.normal(size=30)
    topo = list(noisy)
    topo[4] = None  # a candidate where the score is undefined
    cs = correlate({"l1-mass-removed": noisy, "topo": topo}, {"acc": outcome}, resamples=300)
    t = _one(cs, "topo", "acc")
    assert t.n == 29
    assert t.vs_baseline_ci[0] <= 0 <= t.vs_baseline_ci[1]
    text = verdicts(cs, families={"topo": "topological"}, outcome_labels={"acc": "acc"}, sparsity=0.7)
    assert "is not distinguishable from l1-mass-removed" in text[0]


def test_constant_values_are_undefined_not_an_error():
    cs = correlate({"l1-mass-removed": [1.0, 2.0, 3.0, 4.0], "flat": [1.0] * 4}, {"acc": [10.0] * 4},
                   resamples=50)
    assert all(math.isnan(c.spearman) for c in cs)
    text = verdicts(cs, families={}, outcome_labels={"acc": "accuracy"}, sparsity=0.5)
    assert "no score is defined" in text[0]
    assert correlate({"a": [1, 2]}, {"o": [1, 2]}, baseline="a")[0].n == 2


def test_lengths_must_match():
    with pytest.raises(ValueError, match="same candidates"):
        correlate({"a": [1, 2, 3]}, {"o": [1, 2]})


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(5)
    s, o = {"l1-mass-removed": rng.normal(size=20)}, {"acc": rng.normal(size=20)}
    assert correlate(s, o, seed=4) == correlate(s, o, seed=4)


def test_a_correlation_the_wrong_way_is_called_so():
    rng = np.random.default_rng(7)
    acc = rng.normal(size=40)
    loss = acc + 0.1 * rng.normal(size=40)  # a "damage" that goes WITH accuracy
    cs = correlate({"l1-mass-removed": rng.normal(size=40), "loss": loss}, {"acc": acc, "epochs-to-recover": -acc},
                   resamples=300)
    text = verdicts(cs, families={"loss": "topological"}, outcome_labels={"acc": "accuracy", "epochs-to-recover": "e"},
                    sparsity=0.5, directions={"loss": 1})
    assert "the wrong way: what it counts as more damage went with better outcomes" in text[0]
    assert "more damage went with better outcomes" in text[1]  # more "damage", fewer epochs to recover
    right = verdicts(cs, families={"loss": "topological"}, outcome_labels={"acc": "accuracy", "epochs-to-recover": "e"},
                     sparsity=0.5, directions={"loss": -1})  # as a retention score it points the right way
    assert "wrong way" not in " ".join(right)
    flipped = verdicts(cs, families={"loss": "topological"}, outcome_labels={"acc": "accuracy"}, sparsity=0.5,
                       directions={})
    assert "wrong way" not in flipped[0]  # no direction given: nothing said
