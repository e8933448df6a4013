"""The committed benchmark results parse and say where they came from (not a re-run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
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


def _bench_report():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_report", RESULTS.parents[1] / "scripts" / "bench_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_pages_are_the_generated_ones():
    """Each page of docs/benchmarks is what scripts/bench_report.py makes of these files, the
    plots it shows are the results' own, and the index lists every page."""
    mod = _bench_report()
    docs = RESULTS.parents[1] / "docs" / "benchmarks"
    for stem, page in mod.PAGES:
        path = docs / f"{stem}.md"
        assert path.is_file(), f"{path} is missing: run make bench-report"
        assert path.read_text() == mod.page_text(page), f"{path} is not the generated page: run make bench-report"
    assert (docs / "index.md").read_text() == mod.index_text()
    for name in mod.plots():
        assert (docs / "plots" / name).read_bytes() == (RESULTS / name).read_bytes(), name


def test_benchmark_headings_say_the_verdicts():
    """A heading states what its table says: never a win above LOSES verdicts."""
    mod = _bench_report()
    assert mod._verdict_words(["TIE", "TIE"], "X") == "tie with X"
    assert mod._verdict_words(["LOSES", "LOSES"], "X") == "lose to X"
    assert mod._verdict_words(["TIE", "LOSES"], "X").startswith("tie with or lose to X")
    assert mod._verdict_words(["WINS", "LOSES", "TIE"], "X") == "beat X in 1 and lose to it in 1 of 3 comparisons"
    budgets = mod.page_budgets()[0]
    if "LOSES" in "\n".join(mod.page_budgets()):
        assert "help" not in budgets and "win" not in budgets.lower()


def test_readme_numbers_come_from_the_benchmark_pages():
    """Every interval, count and ratio the README quotes about the benchmarks is on a generated page."""
    root = RESULTS.parents[1]
    readme = (root / "README.md").read_text()
    readme = re.sub(r"<!-- quickstart:begin -->.*<!-- quickstart:end -->", "", readme, flags=re.S)
    readme = re.sub(r"\s+", " ", readme)
    pages = re.sub(r"\s+", " ", "\n".join(p.read_text() for p in sorted((root / "docs" / "benchmarks").glob("*.md"))))
    patterns = [r"[+-]\d+\.\d+ \[[+-]\d+\.\d+, [+-]\d+\.\d+\]", r"\b\d+ of \d+\b", r"\b\d+x-\d+x\b", r"\b\d+\.\dx\b"]
    quoted = [m for p in patterns for m in re.findall(p, readme)]
    assert len(quoted) >= 8, quoted
    for number in quoted:
        if "[" in number:  # "mean [low, high]": the pages may say "mean points [low, high]"
            mean, interval = number.split(" [")
            assert re.search(re.escape(mean) + r"(?: points)? \[" + re.escape(interval), pages), number
        else:
            assert number in pages, number


def test_the_speed_guide_quotes_the_workers_measurement():
    d = json.loads((RESULTS / "workers_throughput.json").read_text())
    guide = " ".join((ROOT / "docs" / "guide" / "speed.md").read_text().split())
    m = d["models"]
    said = [f"{m['vgg16-w0.25, L1 to 2x fewer FLOPs']['ratio']:.1f}x the steps per second",
            f"{m['vgg16-w0.25']['ratio']:.1f}x on the dense one", f"{m['lenet300']['ratio']:.1f}x on LeNet-300-100",
            f"took {m['vgg16-w0.25, L1 to 2x fewer FLOPs']['one_thread_step_ms']:.0f} ms on one thread against "
            f"{m['vgg16-w0.25']['one_thread_step_ms']:.0f} ms"]
    assert [s for s in said if s not in guide] == []


def test_the_leaderboard_says_an_iterative_candidate_trains_more_than_the_baselines():
    mod = _bench_report()
    timp = {"name": "timp", "structured": False, "settings": {"fraction": 0.5, "rounds": 8, "rewind": "init",
                                                              "epochs": 6}}
    intro = mod._leaderboard_intro([timp])
    assert ("T-IMP's cell at 2^k times fewer weights is round k of its trajectory: k x 6 epochs of training from "
            "the initialisation (up to 48 in its 8 rounds)") in intro
    no_trajectory = {**timp, "settings": {"rounds": 3, "rewind": "init", "epochs": 6, "fraction": None}}
    assert "T-IMP prunes the trained network in 3 rounds" in mod._training_caveat([no_trajectory])
    assert "trains" not in mod._leaderboard_intro([{"name": "betti", "structured": True, "settings": {}}])
