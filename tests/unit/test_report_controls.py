"""The controls section of a comparison report: the paired t-interval and its verdicts, by hand."""

from __future__ import annotations

import pytest

import math

from topoprune.experiments.report import control_verdicts
from topoprune.experiments.stats import paired_difference

CONFIG = {"name": "c", "methods": [{"name": "fpgm"}, {"name": "magnitude"}], "train": {"epochs": 1},
          "controls": ["shuffle", "magnitude-at-budget"]}


def _row(method, seed, acc, control=None):
    return {"model": "m", "method": method, "sparsity": 0.5, "seed": seed, "acc_after_recovery": acc,
            **({"control": control} if control else {})}


def test_paired_t_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302653, half width 4.302653 / sqrt(3) = 2.484138
    p = paired_difference({0: 11.0, 1: 12.0, 2: 13.0, 9: 50.0}, {0: 10.0, 1: 10.0, 2: 10.0})
    assert p.n == 3 and p.mean == pytest.approx(2.0)
    assert p.low == pytest.approx(2 - 2.484138, abs=1e-5) and p.high == pytest.approx(2 + 2.484138, abs=1e-5)
    one = paired_difference({0: 1.0}, {0: 0.5})
    assert (one.n, one.mean, one.verdict) == (1, 0.5, "n/a") and math.isnan(one.low)
    assert paired_difference({0: 1.0}, {1: 1.0}).n == 0


@pytest.mark.parametrize("method_acc, word, meaning", [
    ((90, 91, 92), "WINS", "its choice inside layers matters"),
    ((80.5, 79.5, 80.2), "TIE", "no effect of its choice inside layers found"),
    ((70, 71, 72), "LOSES", "its choice inside layers is worse than random"),
])
def test_shuffle_verdicts(method_acc, word, meaning):
    rows = [_row("fpgm", s, a) for s, a in enumerate(method_acc)]
    rows += [_row("fpgm+shuffle", s, 80.0, "shuffle") for s in range(3)]
    line = next(x for x in control_verdicts(CONFIG, rows) if "**fpgm** vs its shuffle control" in x)
    assert f"**{word}**: {meaning}." in line and "over 3 seeds" in line


def test_magnitude_at_budget_verdict_and_coincident_controls():
    rows = [_row("fpgm", s, 80 - s) for s in range(2)] + [_row("fpgm+magnitude-at-budget", s, 85.0 - s, "x")
                                                         for s in range(2)]
    lines = control_verdicts(CONFIG, rows)
    line = next(x for x in lines if "**fpgm** vs its magnitude-at-budget control" in x)
    assert "-5.00 points, 95 % t-interval [-5.00, -5.00]" in line
    assert "**LOSES**: it loses to the plainest choice at the same budget." in line
    assert "magnitude's magnitude-at-budget control is magnitude itself" in " ".join(lines)
    assert "m at sparsity 0.5: **fpgm** vs its shuffle control (fpgm+shuffle): no seed with both rows yet." in lines
    assert control_verdicts({**CONFIG, "controls": []}, rows) == []
