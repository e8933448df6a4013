"""Partial rank correlations of the damage study: a hand-computed case, the one-control formula
as a reference, controls that explain everything or nothing, and the Holm-adjusted verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from topoprune.experiments.study.damage_partial import partial_correlations, partial_sentences, partial_spearman


def test_without_controls_it_is_spearman():
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    assert partial_spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)  # 0.8 by hand: 1 - 6*4/120


def test_a_control_that_explains_the_score_leaves_nothing():
    z = np.arange(20.0)
    x = z ** 2  # a monotone function of the control: its ranks are the control's
    y = np.sin(z) + z
    assert math.isnan(partial_spearman(x, y, [z]))  # the score's residual is constant


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100), st.floats(-100, 100)), min_size=6,
                max_size=40, unique_by=lambda t: t[2]))
def test_one_control_matches_the_textbook_formula_on_ranks(points):
    x, y, z = (np.array(v) for v in zip(*points))
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    r = lambda a, b: np.corrcoef(a, b)[0, 1]  # noqa: E731
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = (r(rx, ry) - r(rx, rz) * r(ry, rz)) / math.sqrt((1 - r(rx, rz) ** 2) * (1 - r(ry, rz) ** 2))
    got = partial_spearman(x, y, [z])
    if math.isfinite(expected) and abs(1 - r(rx, rz) ** 2) > 1e-9 and abs(1 - r(ry, rz) ** 2) > 1e-9:
        assert got == pytest.approx(expected, abs=1e-9)


def test_a_score_that_only_repeats_the_mass_adds_nothing_and_an_independent_one_does():
    rng = np.random.default_rng(0)
    n = 60
    mass = rng.uniform(0, 1, n)
    extra = rng.uniform(0, 1, n)
    accuracy = -2 * mass - 2 * extra + rng.normal(0, 0.1, n)  # both do damage
    scores = {"l1-mass-removed": mass, "copy": mass + rng.normal(0, 0.01, n), "news": extra}
    families = {"copy": "topological", "news": "topological", "l1-mass-removed": "magnitude"}
    signs = {("copy", "acc"): -1, ("news", "acc"): -1}
    out = partial_correlations(scores, {"acc": accuracy}, {"l1-mass-removed": mass}, families=families, signs=signs,
                               resamples=300, seed=1)
    by = {p.score: p for p in out}
    assert set(by) == {"copy", "news"}  # the control itself is not a member
    assert by["news"].adds_information and by["news"].partial < -0.8 and by["news"].p_adjusted < 0.05
    assert not by["copy"].adds_information
    assert by["news"].controls == ("l1-mass-removed",)
    text = partial_sentences(out, outcome_labels={"acc": "accuracy"}, sparsity=0.5, resamples=300)[0]
    assert "news adds information" in text and "controlling for l1-mass-removed" in text


def test_a_constant_control_is_left_out_and_said():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=30), rng.normal(size=30)
    out = partial_correlations({"s": x}, {"acc": y}, {"density": np.full(30, 0.5)}, families={"s": "topological"},
                               signs={}, resamples=100)
    assert out[0].controls == () and out[0].partial == pytest.approx(stats.spearmanr(x, y).statistic)
    assert not out[0].adds_information and out[0].p_value > 0.05  # noise, whatever its (unknown) direction
