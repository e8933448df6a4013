"""Does the topological allocation lose because it piles its removals into a few layers?

In the matched-FLOPs run (``configs/fmnist-vgg16q-budget.yaml``, ``docs/benchmarks/budgets.md``) the
topological allocation removes 80-88 % of three early layers at 2x fewer FLOPs (``max_ratio``
0.9, its default) and nothing elsewhere, and its BN-recalibrated accuracy right after pruning is far below the
peers'. This diagnostic asks one question of that run's trained baseline, without any
training: with a lower per-layer cap (``max_ratio``), does the topological allocation's
recalibrated accuracy come up to uniform FPGM's? Everything else is the run's: FPGM's filter
choice, the target of each reduction, the recalibration batches (``recovery.recalibrate_bn``
batches of ``recovery.batch_size`` training inputs drawn with the cell's seed), the test split.
A cap does a little more than cap: each layer's sensitivity curve is sampled from 0 to the
cap (``TopologicalAllocation.curves``), so a lower cap also samples it more finely, and the
slopes that break ties over that range.

FPGM and the allocations are deterministic on a trained network. With one baseline for the run
(``train.seed: 0``) the seeds vary only the recalibration batches, so the paired intervals measure
that noise, not the spread between trained networks; under ``train.seed: each`` every seed prunes
its own network, as the run's cells did, and the intervals cover both.

Recalibrated accuracy is a proxy measured before recovery, not the accuracy after 10 epochs;
what this shows is where the immediate damage comes from, not who wins after recovery. A cap
is a setting chosen here after seeing the run, so none of this enters the run's verdicts.

As a check, the script recomputes the run's own cells of the two (its uniform FPGM entry and
its topological-allocation entry, at the cap that entry uses) and reports how many of those
the run has finished, how many were compared and whether their recalibrated accuracies equal
the run's rows (``run_check``; ``matches_run`` is None when none could be compared). It also
records whether each variant removed the same filters on every seed.

Run (the run's baselines must exist: ``topoprune compare configs/fmnist-vgg16q-budget.yaml
--out benchmarks/runs`` trains it first)::

    python benchmarks/budget_caps.py

It writes ``benchmarks/results/budget-caps.{json,md}``, with its own wall time
(``seconds``): about a minute per measurement on one core beside other work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

from topoprune.experiments.stats import t_interval

try:
    from _env import environment, provenance_lines
    from export_run import _pm
except ImportError:
    from benchmarks._env import environment, provenance_lines
    from benchmarks.export_run import _pm

HERE = Path(__file__).parent
RESULTS = HERE / "results"
DEFAULT_CONFIG = HERE.parent / "configs" / "fmnist-vgg16q-budget.yaml"
DEFAULT_CAPS = [0.9, 0.75, 0.6]


def variants(caps: list[float]) -> list[tuple[str, dict | str, float | None]]:
    """(label, allocation, cap) triples: uniform FPGM, then the topological allocation at each cap."""
    out: list[tuple[str, dict | str, float | None]] = [("uniform", "uniform", None)]
    for cap in caps:
        out.append((f"topological cap {cap:g}", {"name": "topological-budget", "max_ratio": cap}, cap))
    return out


def run_counterparts(methods: list[dict]) -> dict[str, str]:
    """Which of the run's method entries each variant recomputes: ``{variant label: the run's
    method label}``. The run's uniform FPGM is an ``fpgm`` entry without an allocation (or with
    ``uniform``); its topological allocation is an ``fpgm`` entry with ``allocation: topological-budget``,
    at the cap it sets (the allocation's default when it sets none)."""
    from topoprune.pruning.allocation import resolve_allocation

    out: dict[str, str] = {}
    for m in methods:
        if m.get("name") != "fpgm":
            continue
        label = m.get("label") or m["name"]
        allocation = resolve_allocation(m.get("allocation") or "uniform")
        if allocation.name == "uniform":
            out.setdefault("uniform", label)
        elif allocation.name == "topological-budget":
            out.setdefault(f"topological cap {allocation.max_ratio:g}", label)
    return out


def measure(config_path: Path, runs: Path, caps: list[float], seeds: list[int] | None,
            threads: int) -> dict:
    """Prune the run's baseline with each variant at each reduction and seed, recalibrate BN as
    the run does, and return the record (measurements, paired differences, the run check)."""
    from topoprune.errors import TopopruneError
    from topoprune.experiments.config import load_config
    from topoprune.experiments.runner import run_dir_for
    from topoprune.experiments.stages import load_baseline, prepare
    from topoprune.experiments.store import RunStore, read_results
    from topoprune.pruning import prune_filters
    from topoprune.train import evaluate, recalibrate_bn
    from topoprune.train.scoped import seeded_rng

    torch.set_num_threads(threads)
    config = load_config(config_path)
    if config.budget is None:
        raise SystemExit(f"{config_path} has no budget: section; this diagnostic needs a matched-target run")
    run_dir = run_dir_for(config, runs)
    baseline_root = run_dir / "baseline"
    if not baseline_root.is_dir() or not any(baseline_root.iterdir()):
        raise SystemExit(f"{run_dir} has no trained baseline: run `topoprune compare {config_path} --out {runs}` first")
    key = next(p.name for p in sorted(baseline_root.iterdir()) if p.is_dir())
    store = RunStore(run_dir)
    data = prepare(config, config.model(key))
    seeds = seeds or list(config.seeds)
    classes = int(data.test_y.max()) + 1
    run_rows = {(r["method"], r["sparsity"], r["seed"]): r for r in read_results(run_dir) if r["model"] == key}
    rows = []
    for sparsity in config.sparsities:
        target = config.target(sparsity)
        for seed in seeds:
            for label, allocation, cap in variants(caps):
                entry = {"variant": label, "cap": cap, "allocation": allocation, "sparsity": sparsity, "seed": seed}
                model = load_baseline(store, config.baseline_key(key, seed))  # each seed's own network
                t0 = time.perf_counter()
                try:
                    with seeded_rng(seed):
                        pruned, info = prune_filters(model, method="fpgm", target=target, allocation=allocation,
                                                     seed=seed)
                except TopopruneError as exc:  # e.g. a cap too low for this reduction
                    rows.append({**entry, "error": str(exc)})
                    print(f"{sparsity:g} seed {seed} {label:>22}: {exc}", flush=True)
                    continue
                seconds = time.perf_counter() - t0
                cfg = config.recovery.train_config(seed)  # the cells' precision and layout, as they measured
                speed = {"precision": cfg.precision, "channels_last": cfg.channels_last}
                raw = evaluate(pruned, data.test_x, data.test_y, batch_size=cfg.eval_batch_size, **speed)[1]
                recalibrate_bn(pruned, data, batches=config.recovery.recalibrate_bn,
                               batch_size=config.recovery.batch_size, seed=seed, **speed)
                recal = evaluate(pruned, data.test_x, data.test_y, batch_size=cfg.eval_batch_size, **speed)[1]
                budget = info.extra.get("budget", {})
                removed = {k: v["removed"] for k, v in budget.get("layers", {}).items()}
                units = {k: v["units"] for k, v in budget.get("layers", {}).items()}
                rows.append({**entry, "metric": config.budget.metric,
                             "fraction_kept": budget.get("measured_fraction"), "met": budget.get("met"),
                             "acc_pruned_raw": raw, "acc_pruned_recal": recal, "prune_seconds": seconds,
                             "max_layer_fraction": max((removed[k] / units[k] for k in removed if units[k]),
                                                       default=0.0),
                             "removed": removed, "units": units,
                             "filters_digest": _digest({n.name: list(n.kept) for n in info.layers})})
                print(f"{sparsity:g} seed {seed} {label:>22}: raw {raw:6.2f}  recal {recal:6.2f}  "
                      f"max layer {rows[-1]['max_layer_fraction']:.2f}", flush=True)
    counterparts = run_counterparts(config.to_dict()["methods"])
    check = run_check(rows, run_rows, counterparts)
    return {"baseline_run": run_dir.name, "model": key, "seeds": seeds, "caps": caps, "metric": config.budget.metric,
            "recalibrate_bn": config.recovery.recalibrate_bn, "chance": 100.0 / classes,
            "measurements": rows, "paired": paired(rows), "same_filters_every_seed": same_filters(rows),
            "run_counterparts": counterparts, **check}


def _digest(kept: dict[str, list[int]]) -> str:
    """A short fingerprint of which filters each layer kept (equal on two seeds: same pruning)."""
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def run_check(rows: list[dict], run_rows: dict, counterparts: dict[str, str]) -> dict:
    """Compare the recomputed cells with the run's rows of the same method, reduction and seed:
    how many such cells the check wants, how many the run has finished, and whether they are
    equal (``matches_run``: None when none could be compared)."""
    check, wanted = [], 0
    for row in rows:
        method = counterparts.get(row["variant"])
        if method is None or "error" in row:
            continue
        wanted += 1
        ref = run_rows.get((method, row["sparsity"], row["seed"]))
        if ref is not None and ref.get("acc_pruned_recal") is not None:
            check.append({"variant": row["variant"], "run_method": method, "sparsity": row["sparsity"],
                          "seed": row["seed"], "here": row["acc_pruned_recal"], "run": ref["acc_pruned_recal"],
                          "equal": abs(row["acc_pruned_recal"] - ref["acc_pruned_recal"]) < 1e-9})
    return {"run_check": check, "run_check_wanted": wanted,
            "matches_run": all(c["equal"] for c in check) if check else None}


def same_filters(rows: list[dict]) -> dict[str, bool]:
    """Per variant and reduction (``"<variant> @ <sparsity>"``): whether every seed removed the
    same filters (so the seeds vary only the recalibration batches)."""
    seen: dict[str, list] = {}
    for r in rows:
        if "error" not in r:
            seen.setdefault(f"{r['variant']} @ {r['sparsity']:g}", []).append(r["filters_digest"])
    return {k: all(v == vs[0] for v in vs) for k, vs in seen.items()}


def paired(rows: list[dict]) -> list[dict]:
    """Per reduction and variant: mean ± interval of the same-seed difference of recalibrated
    accuracy against uniform FPGM (variants with no seed in common with it are left out)."""
    out = []
    ok = [r for r in rows if "error" not in r]
    for sparsity in sorted({r["sparsity"] for r in ok}):
        base = {r["seed"]: r["acc_pruned_recal"] for r in ok if r["sparsity"] == sparsity and r["variant"] == "uniform"}
        for variant in dict.fromkeys(r["variant"] for r in ok if r["variant"] != "uniform"):
            mine = {r["seed"]: r for r in ok if r["sparsity"] == sparsity and r["variant"] == variant}
            seeds = sorted(set(base) & set(mine))
            if not seeds:
                continue
            diffs = [mine[s]["acc_pruned_recal"] - base[s] for s in seeds]
            entry = {"sparsity": sparsity, "variant": variant, "cap": mine[seeds[0]].get("cap"), "seeds": seeds,
                     "diffs": diffs, "recal": [mine[s]["acc_pruned_recal"] for s in seeds],
                     "uniform": [base[s] for s in seeds], "met": all(mine[s]["met"] for s in seeds),
                     "max_layer_fraction": max(mine[s]["max_layer_fraction"] for s in seeds)}
            if len(diffs) >= 2:
                entry["mean"], entry["low"], entry["high"] = t_interval(diffs)
            out.append(entry)
    return out


def markdown(record: dict) -> str:
    lines = ["# The topological allocation under a per-layer cap (recalibrated accuracy, no training)", "",
             f"Baseline: `{record['baseline_run']}` ({record['model']}), seeds {record['seeds']}. Accuracy on the test "
             f"split right after pruning to the {record['metric']} target and re-estimating BatchNorm statistics "
             f"({record['recalibrate_bn']} batches), mean ± std over seeds; the difference is against uniform FPGM on "
             f"the same seed (95 % t-interval). Chance is {record['chance']:.0f} %. A proxy before recovery, not an "
             "after-recovery verdict.", "",
             "| reduction (fraction removed) | allocation | most of one layer removed | recalibrated acc | "
             "uniform FPGM | difference | target met (within 1 %) |", "|---|---|---|---|---|---|---|"]
    for p in record["paired"]:
        diff = (f"{p['mean']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}]" if "mean" in p
                else ", ".join(f"{d:+.2f}" for d in p["diffs"]))
        lines.append(f"| {p['sparsity']:g} | {p['variant']} | {p['max_layer_fraction']:.2f} | {_pm(p['recal'])} | "
                     f"{_pm(p['uniform'])} | {diff} | {'yes' if p['met'] else 'no'} |")
    errors = [r for r in record["measurements"] if "error" in r]
    lines += [""] + [f"- {r['variant']} at {r['sparsity']:g}, seed {r['seed']}: {r['error']}" for r in errors]
    check = record["run_check"]
    lines += ["", f"Run check: {len(check)} of the {record['run_check_wanted']} recomputed cells with a counterpart "
              f"in the run were finished there and compared; equal: {sum(c['equal'] for c in check)}"
              + (f" (the largest difference: {max(abs(c['here'] - c['run']) for c in check):.2f} points)"
                 if check and not all(c["equal"] for c in check) else "") + ".",
              "Same filters removed on every seed: "
              + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in record["same_filters_every_seed"].items()) + ".",
              f"Wall time: {record['seconds'] / 60:.1f} min.", ""]
    lines += provenance_lines(record, threads=f", {record['torch_threads']} torch thread(s)")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--caps", type=float, nargs="+", default=DEFAULT_CAPS,
                    help="max_ratio values for the topological allocation (0.9 is its default, the run's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the config's seeds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if any(not 0 < c < 1 for c in args.caps):
        ap.error("--caps must lie in (0, 1)")
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    t0 = time.perf_counter()
    record = measure(args.config, args.runs, args.caps, args.seeds, args.threads)
    command = "python benchmarks/budget_caps.py" + "".join(
        f" --{name} {value}" for name, value, default in (
            ("config", args.config, DEFAULT_CONFIG), ("runs", args.runs, HERE / "runs"),
            ("caps", " ".join(f"{c:g}" for c in args.caps), " ".join(f"{c:g}" for c in DEFAULT_CAPS)),
            ("seeds", " ".join(map(str, args.seeds or [])), ""), ("threads", args.threads, 1),
            ("out", args.out, RESULTS)) if value != default)
    record = {"command": command, "torch_threads": args.threads, "seconds": time.perf_counter() - t0,
              **environment(), **record}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "budget-caps.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "budget-caps.md").write_text(markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
