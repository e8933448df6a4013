"""The committed benchmark results parse and say where they came from (not a re-run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
FILES = sorted(RESULTS.glob("*.json"))


def test_there_are_results_files():
    names = {p.stem for p in FILES}
    assert {"np_speed", "critical_compression", "activation_study"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_results_file_carries_machine_versions_seeds_and_date(path):
    d = json.loads(path.read_text())
    assert d["command"].strip() and re.match(r"\d{4}-\d{2}-\d{2}T", d["date"])
    assert d["machine"]["cpu"] and d["machine"]["cores"] >= 1
    assert d["versions"]["torch"] and d["versions"]["numpy"] and d["python"]
    seeds = d.get("seeds", [d["seed"]] if "seed" in d else None)
    assert isinstance(seeds, list), "every results file names its seeds ([] when nothing is random)"
    if "rows" in d:  # a run export: per-seed raw values, and the cells it holds
        assert d["cells_done"] == len(d["rows"]) <= d["cells_total"]
        assert d["complete"] == (d["cells_done"] == d["cells_total"])
        assert {r["seed"] for r in d["rows"]} <= set(seeds)


def test_activation_study_has_five_seeds_per_activation_and_a_consistent_verdict():
    d = json.loads((RESULTS / "activation_study.json").read_text())
    assert len(d["seeds"]) >= 5
    for s in d["summary"]:
        assert s["seeds"] == len(d["seeds"]) and len(s["final_all"]) == s["seeds"]
    recommended = [s["activation"] for s in d["summary"] if s["recommended"]]
    assert d["verdict"].startswith("No activation") == (not recommended)


def test_readme_tables_are_the_generated_ones():
    """The README's benchmark block is what scripts/bench_report.py makes of these files."""
    import importlib.util

    root = RESULTS.parents[1]
    spec = importlib.util.spec_from_file_location("bench_report", root / "scripts" / "bench_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme = (root / "README.md").read_text()
    block = readme.split(mod.BEGIN, 1)[1].split(mod.END, 1)[0]
    for section in (mod.section_structured, mod.section_imp, mod.section_critical, mod.section_speed,
                    mod.section_early_stopping, mod.section_study, mod.section_budgets):
        assert "\n".join(section()) in block, section.__name__
