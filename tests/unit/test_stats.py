"""The statistics of a verdict: paired differences, Holm's step-down adjustment and the minimum
detectable effect, on cases small enough to compute by hand.

With 2 degrees of freedom (3 seeds) Student's t has closed forms, used below:
``t_q = (2q - 1) / sqrt(2 q (1 - q))`` and the two-sided p-value of ``t`` is
``1 - t / sqrt(2 + t^2)``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from topoprune.errors import TopopruneError
from topoprune.experiments.stats import (
    PairedResult,
    detectable_sentence,
    holm,
    holm_family,
    interval_verdict,
    minimum_detectable_effect,
    paired_difference,
    percentile_interval,
    t_interval,
)

T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.3027: t_{0.975, 2}
T80_DF2 = 0.6 / math.sqrt(2 * 0.8 * 0.2)  # 1.0607: t_{0.8, 2}


def test_paired_difference_by_hand_is_a_tie():
    # differences 1, 2, 3: mean 2, sd 1; half-width t_{0.975,2} * 1 / sqrt(3) = 2.4841
    # t = 2 / (1 / sqrt 3) = sqrt 12, p = 1 - sqrt(12) / sqrt(14) = 1 - sqrt(6 / 7) = 0.0742
    r = paired_difference({0: 91.0, 1: 92.0, 2: 93.0}, {0: 90.0, 1: 90.0, 2: 90.0})
    half = T975_DF2 / math.sqrt(3)
    assert r.n == 3 and r.mean == pytest.approx(2.0) and r.sd == pytest.approx(1.0)
    assert (r.low, r.high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    assert r.p_value == pytest.approx(1 - math.sqrt(6 / 7), rel=1e-9)
    assert r.verdict == "TIE" and r.reason is None


def test_pairs_by_seed_key_not_by_position():
    # seed 0: 91 - 90, seed 1: 92 - 90.8, seed 2: 93 - 91.6 -> 1.0, 1.2, 1.4 (mean 1.2, sd 0.2)
    method = {2: 93.0, 0: 91.0, 1: 92.0}
    reference = {1: 90.8, 2: 91.6, 0: 90.0, 7: 50.0}  # seed 7 has no partner and is left out
    r = paired_difference(method, reference)
    assert r.seeds == (2, 0, 1) and r.differences == pytest.approx((1.4, 1.0, 1.2))
    half = T975_DF2 * 0.2 / math.sqrt(3)  # 0.4968
    assert r.mean == pytest.approx(1.2) and r.low == pytest.approx(1.2 - half) and r.high == pytest.approx(1.2 + half)
    assert r.verdict == "WINS"
    # by position the pairs would be (93, 90.8), (91, 91.6), (92, 90): another mean
    assert paired_difference(reference, method).verdict == "LOSES"


def test_the_verdict_agrees_with_the_p_value():
    rng = np.random.default_rng(0)
    for _ in range(50):
        d = rng.normal(0.5, 1.0, size=int(rng.integers(2, 8)))
        r = paired_difference(dict(enumerate(d)), dict.fromkeys(range(d.size), 0.0))
        assert (r.verdict != "TIE") == (r.p_value < 0.05)


def test_fewer_than_two_pairs_gives_no_verdict_and_says_why():
    one = paired_difference({0: 2.0, 1: 3.0}, {1: 1.0})
    assert one.verdict == "n/a" and one.n == 1 and one.mean == 2.0 and "1 paired seed" in one.reason
    assert math.isnan(one.low) and math.isnan(one.p_value)
    none = paired_difference({0: 2.0}, {1: 1.0})
    assert none.verdict == "n/a" and none.n == 0 and math.isnan(none.mean)
    d = one.to_dict()
    assert d["low"] is None and d["verdict"] == "n/a"
    json.dumps(d, allow_nan=False)


def test_identical_differences_are_a_zero_width_interval():
    r = paired_difference({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})
    assert r.sd == 0 and r.low == r.high == 1.0 and r.verdict == "WINS" and r.p_value == 0.0
    z = paired_difference({0: 2.0, 1: 3.0}, {0: 2.0, 1: 3.0})
    assert z.verdict == "TIE" and z.p_value == 1.0


def test_non_finite_values_are_refused_naming_the_seed():
    with pytest.raises(TopopruneError, match="seed 1"):
        paired_difference({0: 1.0, 1: float("nan")}, {0: 0.0, 1: 0.0})


def test_t_interval_matches_the_closed_form_and_needs_two_values():
    m, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert (m, lo, hi) == (2.0, pytest.approx(2 - T975_DF2 / math.sqrt(3)), pytest.approx(2 + T975_DF2 / math.sqrt(3)))
    with pytest.raises(TopopruneError):
        t_interval([1.0])


def test_interval_verdict():
    assert interval_verdict(0.1, 2.0) == "WINS"
    assert interval_verdict(-2.0, -0.1) == "LOSES"
    assert interval_verdict(-0.1, 2.0) == "TIE"
    assert interval_verdict(0.0, 2.0) == "TIE"  # an interval that touches zero does not exclude it


def test_holm_by_hand():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # 0.5 * 2 caps at 1
    assert holm([0.02]) == [0.02] and holm([]) == []


def test_holm_is_monotone_in_the_raw_order_and_never_below_raw():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=7)
        adj = holm(p)
        order = np.argsort(p)
        assert np.all(np.diff(np.asarray(adj)[order]) >= 0)
        assert np.all(np.asarray(adj) >= p) and max(adj) <= 1


def test_holm_refuses_probabilities_outside_0_1():
    with pytest.raises(TopopruneError):
        holm([0.1, 1.5])


def test_holm_family_gives_raw_and_adjusted_verdicts():
    # diffs 1.0, 1.2, 1.4: t = 1.2 / (0.2 / sqrt 3) = sqrt 108, p = 1 - sqrt(108 / 110) = 0.0092
    strong = paired_difference({0: 1.0, 1: 1.2, 2: 1.4}, dict.fromkeys(range(3), 0.0))
    # diffs 1, 2, 3 ... shifted to 2, 3, 4: t = 3 / (1 / sqrt 3) = sqrt 27, p = 1 - sqrt(27 / 29) = 0.0351
    weak = paired_difference({0: 2.0, 1: 3.0, 2: 4.0}, dict.fromkeys(range(3), 0.0))
    # diffs -1, -2, -3 (p = 0.0742): a TIE either way
    tie = paired_difference({0: -1.0, 1: -2.0, 2: -3.0}, dict.fromkeys(range(3), 0.0))
    lone = paired_difference({0: 5.0}, {0: 0.0})
    fam = holm_family("ours vs best peer, table 9", {"a": strong, "b": weak, "c": tie, "d": lone})
    p_strong, p_weak, p_tie = 1 - math.sqrt(108 / 110), 1 - math.sqrt(27 / 29), 1 - math.sqrt(6 / 7)
    # m = 3 (the n/a row makes no comparison): 3 p_strong = 0.028, 2 p_weak = 0.070, p_tie -> 0.074
    by = {c.name: c for c in fam.comparisons}
    assert fam.m == 3 and fam.family == "ours vs best peer, table 9"
    assert by["a"].p_adjusted == pytest.approx(3 * p_strong) and by["a"].verdict_adjusted == "WINS"
    assert by["b"].p_adjusted == pytest.approx(2 * p_weak)
    assert by["b"].result.verdict == "WINS" and by["b"].verdict_adjusted == "TIE"
    assert by["c"].p_adjusted == pytest.approx(p_tie) and by["c"].verdict_adjusted == "TIE"
    assert by["d"].p_adjusted is None and by["d"].verdict_adjusted == "n/a"
    d = fam.to_dict()
    assert d["comparisons"][1]["verdict"] == "WINS" and d["comparisons"][1]["verdict_adjusted"] == "TIE"
    json.dumps(d, allow_nan=False)


def test_holm_family_adjusted_loses_by_the_sign_of_the_mean():
    r = paired_difference({0: -1.0, 1: -1.2, 2: -1.4}, dict.fromkeys(range(3), 0.0))
    assert holm_family("f", {"x": r}).comparisons[0].verdict_adjusted == "LOSES"


def test_minimum_detectable_effect_at_three_seeds_exact_and_approximate():
    # n = 3: the central approximation (t_{0.975,2} + t_{0.8,2}) / sqrt 3 = 3.10 sd; exact 3.26 sd
    approx = minimum_detectable_effect(1.0, 3, exact=False)
    assert approx == pytest.approx((T975_DF2 + T80_DF2) / math.sqrt(3), rel=1e-9)
    assert round(approx, 2) == 3.10
    assert round(minimum_detectable_effect(1.0, 3), 2) == 3.26
    assert minimum_detectable_effect(2.0, 3) == pytest.approx(2 * minimum_detectable_effect(1.0, 3))
    # the approximation runs low at small n and meets the exact value as n grows
    for n in (2, 3, 5, 10):
        assert minimum_detectable_effect(1.0, n, exact=False) < minimum_detectable_effect(1.0, n)
    assert minimum_detectable_effect(1.0, 100, exact=False) == pytest.approx(
        minimum_detectable_effect(1.0, 100), rel=1e-3)
    assert minimum_detectable_effect(0.0, 3) == 0.0


def test_the_exact_effect_is_detected_80_percent_of_the_time():
    """Simulate paired t-tests at the exact effect: about 80 % of them reject at 5 %."""
    from scipy import stats

    n, reps = 3, 200_000
    effect = minimum_detectable_effect(1.0, n)
    x = np.random.default_rng(0).normal(effect, 1.0, size=(reps, n))
    t = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n))
    rejected = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert rejected == pytest.approx(0.8, abs=0.005)


@pytest.mark.parametrize("call", [lambda: minimum_detectable_effect(1.0, 1),
                                  lambda: minimum_detectable_effect(-1.0, 3),
                                  lambda: minimum_detectable_effect(1.0, 3, power=1.2),
                                  lambda: minimum_detectable_effect(1.0, 3, alpha=0.0)])
def test_minimum_detectable_effect_refuses_bad_input(call):
    with pytest.raises(TopopruneError):
        call()


def test_detectable_sentence_for_a_tie():
    r = paired_difference({0: 91.0, 1: 92.0, 2: 93.0}, {0: 90.0, 1: 90.0, 2: 90.0})
    s = detectable_sentence(r)
    assert s.startswith("no difference larger than 3.26 points could be seen with 3 seeds")
    assert "noncentral t" in s
    assert detectable_sentence(r, exact=False).startswith("no difference larger than 3.10 points could be seen "
                                                          "with 3 seeds")
    with pytest.raises(TopopruneError):
        detectable_sentence(paired_difference({0: 1.0}, {0: 0.0}))


def test_percentile_interval():
    draws = np.arange(101, dtype=float)  # percentiles 2.5 and 97.5 of 0..100
    assert percentile_interval(draws) == (pytest.approx(2.5), pytest.approx(97.5))
    assert all(math.isnan(v) for v in percentile_interval(draws, reliable=False))
    some_nan = draws.copy()
    some_nan[:2] = np.nan  # 2 % undefined: more than 1 %
    assert all(math.isnan(v) for v in percentile_interval(some_nan))


def test_paired_result_round_trips_to_json():
    r = paired_difference({"s0": 1.0, "s1": 2.0}, {"s0": 0.0, "s1": 0.0})
    assert isinstance(r, PairedResult)
    d = r.to_dict()
    assert d["seeds"] == ["s0", "s1"] and d["verdict"] == "TIE" and d["level"] == 0.95
    json.dumps(d, allow_nan=False)


def test_a_difference_without_spread_says_why_its_interval_has_no_width():
    from topoprune.experiments.stats import paired_difference

    r = paired_difference({0: 90.28, 1: 91.0}, {0: 90.56, 1: 91.28})  # -0.28 on both seeds
    assert r.sd == 0 and r.verdict == "LOSES" and "every seed gave the same difference (-0.28)" in r.reason
    assert paired_difference({0: 1.0, 1: 3.0}, {0: 0.0, 1: 1.0}).reason is None


def test_differences_equal_up_to_rounding_count_as_equal():
    from topoprune.experiments.stats import paired_difference

    # 350/359 - 351/359 computed from different accuracies: equal in exact arithmetic
    a = {0: 100 * 350 / 359, 1: 100 * 340 / 359}
    b = {0: 100 * 351 / 359, 1: 100 * 341 / 359}
    r = paired_difference(a, b)
    assert r.sd == 0 and r.low == r.high == r.mean and r.reason is not None
