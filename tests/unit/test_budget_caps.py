"""The per-layer cap diagnostic (``benchmarks/budget_caps.py``) and its README lines: differences
are paired by seed, not by position; the run check finds the run's own entries and says when it
could compare nothing; the generated sentence follows the sign of each interval."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import budget_caps  # noqa: E402 - a benchmark script, importable from its folder


def _m(variant: str, seed: int, recal: float, sparsity: float = 0.5, fraction: float = 0.3) -> dict:
    cap = float(variant.rsplit(" ", 1)[1]) if variant.startswith("topological cap") else None
    return {"variant": variant, "cap": cap, "sparsity": sparsity, "seed": seed, "acc_pruned_recal": recal,
            "met": True, "max_layer_fraction": fraction, "filters_digest": f"{variant}-{sparsity}"}


def test_differences_pair_the_same_seed_whatever_the_order():
    rows = [_m("uniform", 0, 60.0), _m("uniform", 1, 70.0), _m("uniform", 2, 80.0),
            _m("topological cap 0.9", 2, 79.0, fraction=0.84), _m("topological cap 0.9", 0, 59.0, fraction=0.8),
            _m("topological cap 0.9", 1, 69.0, fraction=0.84)]
    (p,) = budget_caps.paired(rows)
    assert p["seeds"] == [0, 1, 2] and p["diffs"] == [-1.0, -1.0, -1.0] and p["cap"] == 0.9
    assert p["mean"] == pytest.approx(-1.0) and p["low"] == pytest.approx(-1.0) == p["high"]
    assert p["max_layer_fraction"] == 0.84


def test_a_seed_missing_on_one_side_or_a_failed_cell_is_left_out():
    rows = [_m("uniform", 0, 60.0), _m("uniform", 1, 70.0), _m("topological cap 0.6", 1, 72.0),
            _m("topological cap 0.6", 2, 50.0),
            {"variant": "topological cap 0.3", "cap": 0.3, "sparsity": 0.5, "seed": 0, "error": "infeasible"}]
    (p,) = budget_caps.paired(rows)
    assert p["seeds"] == [1] and p["diffs"] == [2.0] and "mean" not in p


def test_the_run_check_finds_the_runs_own_entries():
    methods = [{"name": "l1"}, {"name": "fpgm"}, {"name": "fpgm", "label": "fpgm-eagleeye",
                                                  "allocation": {"name": "eagleeye", "candidates": 100}},
               {"name": "fpgm", "label": "fpgm-topological", "allocation": {"name": "topological-budget"}}]
    counterparts = budget_caps.run_counterparts(methods)
    assert counterparts == {"uniform": "fpgm", "topological cap 0.9": "fpgm-topological"}
    rows = [_m("uniform", 0, 66.16), _m("topological cap 0.9", 0, 29.81), _m("topological cap 0.6", 0, 59.2),
            _m("uniform", 1, 65.98)]
    run_rows = {("fpgm", 0.5, 0): {"acc_pruned_recal": 66.16}, ("fpgm-topological", 0.5, 0): {"acc_pruned_recal": 29.8}}
    check = budget_caps.run_check(rows, run_rows, counterparts)
    assert check["run_check_wanted"] == 3 and len(check["run_check"]) == 2
    assert [c["equal"] for c in check["run_check"]] == [True, False] and check["matches_run"] is False
    assert budget_caps.run_check(rows, {}, counterparts)["matches_run"] is None


def test_same_filters_is_per_variant_and_reduction():
    rows = [_m("uniform", 0, 60.0), _m("uniform", 1, 61.0), {**_m("topological cap 0.9", 0, 30.0)},
            {**_m("topological cap 0.9", 1, 30.0), "filters_digest": "other"}]
    assert budget_caps.same_filters(rows) == {"uniform @ 0.5": True, "topological cap 0.9 @ 0.5": False}


def _report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "scripts" / "bench_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _record(last_diffs: list[float], uniform: float = 66.0, first: float = 30.0) -> dict:
    rows = [_m("uniform", s, uniform + s / 10) for s in range(3)]
    rows += [_m("topological cap 0.9", s, first + s / 10, fraction=0.84) for s in range(3)]
    rows += [_m("topological cap 0.6", s, uniform + s / 10 + d, fraction=0.59) for s, d in enumerate(last_diffs)]
    return {"command": "python benchmarks/budget_caps.py", "date": "2026-11-22T06:00:00+00:00", "seconds": 600.0,
            "git_commit": "abc1234", "chance": 10.0, "paired": budget_caps.paired(rows),
            "run_check": [{"equal": True}, {"equal": True}], "run_check_wanted": 3,
            "run_counterparts": {"uniform": "fpgm", "topological cap 0.9": "fpgm-topological"},
            "same_filters_every_seed": budget_caps.same_filters(rows)}


def _text(record: dict) -> str:
    return "\n".join(_report()._budget_caps_lines(record))


def test_the_sentence_follows_the_sign_of_each_interval():
    text = _text(_record([-0.5, 0.4, 0.1]))
    assert "at cap 0.9 (-36.00 [-36.00, -36.00]: below uniform FPGM beyond the interval)" in text
    assert "no difference from uniform FPGM resolved" in text
    assert "(2 of 2; 3 have a counterpart in the run)" in text and "a fraction 0.9 of a layer" in text
    assert "above uniform FPGM beyond the interval" in _text(_record([2.0, 2.5, 3.0]))
    assert "| 0.5 | topological cap 0.6 | 0.59 |" in _text(_record([-7.0, -6.5, -7.2]))


def test_near_chance_the_sentence_says_the_proxy_says_nothing():
    text = _text(_record([1.0, 2.0, 1.5], uniform=16.0, first=13.0))
    assert "the proxy says nothing here" in text
    assert "the proxy says nothing here" not in _text(_record([1.0, 2.0, 1.5]))


def test_a_failed_check_and_an_empty_check_are_said():
    record = _record([0.0, 0.1, -0.1])
    assert "read with care" in _text({**record, "run_check": [{"equal": True}, {"equal": False}]})
    assert "No recomputed cell could be compared" in _text({**record, "run_check": []})


def test_no_results_file_no_lines():
    assert _report()._budget_caps_lines(None) == []
