"""Table 1's last column (``benchmarks/export_run.py``): the topological methods against the best
of L1/L2/FPGM as a same-seed paired difference with a 95 % t-interval, and WINS / TIE / LOSES from
that interval, not from the difference of means alone."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _env  # noqa: E402 - the benchmark scripts' shared helpers
import export_run  # noqa: E402 - a benchmark script, importable from its folder


def _row(method: str, seed: int, final: float) -> dict:
    return {"sparsity": 0.5, "method": method, "seed": seed, "algorithm": method, "params": [100, 50],
            "macs": [100, 50], "flops": [200, 100], "latency_ms": None, "acc_pruned_raw": 10.0,
            "acc_pruned_recal": None, "recovery_curve": [10.0, 80.0, 85.0, 88.0, 89.0, final],
            "acc_after_recovery": final, "epochs_to_recover": None, "prune_seconds": 0.1}


def _verdict(ours: list[float], l1: list[float], l2: list[float], ours_seeds: list[int] | None = None) -> str:
    seeds = ours_seeds or list(range(len(ours)))
    rows = ([_row("l1", s, a) for s, a in enumerate(l1)] + [_row("l2", s, a) for s, a in enumerate(l2)]
            + [_row("topological", s, a) for s, a in zip(seeds, ours)])
    table = export_run.structured_table(rows, 3)
    return next(r for r in table if r[1] == "topological")[-1]


def test_a_consistent_loss_against_the_best_baseline_loses():
    assert _verdict([90.0, 91.0, 92.0], [91.0, 92.0, 93.1], [80.0, 80.0, 80.0]).startswith("LOSES: -1.03 [")


def test_a_higher_mean_with_seeds_disagreeing_is_a_tie():
    verdict = _verdict([93.0, 90.0, 92.5], [91.0, 92.0, 92.0], [80.0, 80.0, 80.0])
    assert verdict.startswith("TIE: +0.17 [") and verdict.endswith("vs l1")


def test_a_consistent_gain_wins_and_one_seed_gets_no_verdict():
    assert _verdict([92.0, 93.0, 94.0], [91.0, 92.0, 93.0], [80.0, 80.0, 80.0]).startswith("WINS: +1.00 [+1.00, +1.00]")
    assert _verdict([92.0], [91.0], [80.0]) == "+1.00 vs l1 (too few seeds for an interval)"


def test_pairs_by_seed_not_by_position():
    # ours listed for seeds 2, 0, 1: paired by seed the differences are +1 each (a clear win);
    # paired by position they would be +3, 0, 0 (a tie)
    verdict = _verdict([94.0, 92.0, 93.0], [91.0, 92.0, 93.0], [80.0, 80.0, 80.0], ours_seeds=[2, 0, 1])
    assert verdict.startswith("WINS: +1.00 [+1.00, +1.00]")


def test_the_export_says_how_the_cells_ran(tmp_path):
    (tmp_path / "log.txt").write_text(
        "2026-01-01 10:00:00,000 INFO run r: start (local, workers=1, training on cpu)\n"
        "2026-01-01 11:00:00,000 INFO run r: start (local, workers=2, training on cpu)\n"
        "2026-01-01 12:00:00,000 INFO run r: start (local, workers=2, training on cpu)\n"
        "2026-01-01 13:00:00,000 INFO run r: start (local, workers=1, training on cpu)\n")
    rows = [{"threads": 1}, {"threads": 2}, {}]
    execution = _env.run_execution(tmp_path, rows)
    assert execution == {"executors": ["local, workers=1", "local, workers=2", "local, workers=1"],
                         "threads": [1, 2], "rows_without_threads": 1}
    assert _env.execution_text(execution) == (
        "The run was started with: local, workers=1, then local, workers=2, then local, workers=1; its rows were "
        "measured with 1 or 2 torch thread(s) per cell (1 row(s) do not record it).")
