"""How long choosing and removing filters takes, per method, in one run.

- ``vgg16`` width 1 at 3x32x32, sparsity 0.5, default targets: L1, FPGM and the Topological
  Pruner with its default settings (issue #5 target: under 60 s), each timed end to end by
  ``prune_filters``; plus the share of the GA's time spent in fitness evaluations (the reason
  the GA is a plain loop around compiled kernels rather than a GA library).
- ``vgg16`` width 0.25 at 1x32x32 with Betti pruning on a 256-sample batch of real
  Fashion-MNIST (issue #5 target: under 120 s), with L1 and FPGM on the same model beside it.

Run: ``python benchmarks/prune_time.py`` (``make bench``). Seeds: model init 0, sample 0.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import topoprune as tp
from topoprune.data import prepare_data
from topoprune.train import set_threads

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

RESULTS = Path(__file__).parent / "results"


def timed(model, method, sparsity, inputs=None):
    _, info = tp.prune_filters(model, method=method, sparsity=sparsity, inputs=inputs)
    return {"method": method, "seconds": info.seconds, "params": list(info.params),
            "macs": list(info.macs)}


def ga_fitness_share(model) -> float:
    """Fraction of one layer search's wall time spent inside the fitness function."""
    import time

    from topoprune.pruning import genetic

    modules = dict(model.named_modules())
    problem = genetic.layer_problems(model, modules, {"features.40": 0.5}, surgeon=torch.zeros(1, 3, 32, 32),
                                     inputs=None, fitness="diagram")[0]
    spent = [0.0]
    original = genetic._Fitness.__call__

    def timed_call(self, removed):
        t = time.perf_counter()
        value = original(self, removed)
        spent[0] += time.perf_counter() - t
        return value

    genetic._Fitness.__call__ = timed_call
    try:
        t0 = time.perf_counter()
        genetic.search_layer(problem, genetic.GAConfig(workers=1))
        total = time.perf_counter() - t0
    finally:
        genetic._Fitness.__call__ = original
    return spent[0] / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--methods", nargs="+", default=["l1", "fpgm", "topological"],
                    help="data-free methods timed on vgg16 width 1")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    threads = set_threads()
    torch.manual_seed(0)
    big = tp.create_model("vgg16")
    timed(big, "l1", args.sparsity)  # warm-up: first tracing and flop counting pay one-off costs
    rows_big = [timed(big, m, args.sparsity) for m in args.methods]
    for r in rows_big:
        print("vgg16 w1", json.dumps(r), flush=True)
    torch.manual_seed(0)
    small = tp.create_model("vgg16", in_channels=1, width=0.25)
    data = prepare_data("fashion-mnist", input_shape=(1, 32, 32), val_fraction=0.1, seed=0)
    sample = data.sample(args.samples, seed=0)
    timed(small, "l1", args.sparsity)  # warm-up
    rows_small = [timed(small, "betti", args.sparsity, sample)]
    rows_small += [timed(small, m, args.sparsity) for m in ("l1", "fpgm")]
    for r in rows_small:
        print("vgg16 w0.25", json.dumps(r), flush=True)
    betti_s = rows_small[0]["seconds"]
    topo_s = next((r["seconds"] for r in rows_big if r["method"] == "topological"), None)
    share = ga_fitness_share(big)
    record = {
        "command": f"python benchmarks/prune_time.py --samples {args.samples} --sparsity {args.sparsity} "
                   f"--methods {' '.join(args.methods)}",
        "seed": 0, "torch_threads": threads, **environment(),
        "vgg16_width1": rows_big, "vgg16_width0.25_fmnist": rows_small,
        "ga_fitness_share": share,
        "targets": {"betti, vgg16 w0.25, 256 samples, under 120 s": betti_s < 120,
                    "topological, vgg16 w1, sparsity 0.5, defaults, under 60 s":
                        None if topo_s is None else topo_s < 60},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prune_time.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# Prune time per method", "", *provenance_lines(record, f", torch threads {threads}"), "",
             "Seconds of `prune_filters` end to end (copying, choosing, removing, counting "
             "parameters/MACs/FLOPs before and after), after one untimed warm-up, "
             f"sparsity {args.sparsity}, default targets (first conv and classifier kept).", "",
             "| model | method | seconds | parameters after | MACs after |", "|---|---|---:|---:|---:|"]
    for label, rows in (("vgg16 w1, 3x32x32", rows_big),
                        (f"vgg16 w0.25, 1x32x32, {args.samples} Fashion-MNIST inputs", rows_small)):
        lines += [f"| {label} | {r['method']} | {r['seconds']:.2f} | {r['params'][1]:,} | {r['macs'][1]:,} |"
                  for r in rows]
    lines += ["", f"Target: Betti pruning of vgg16 w0.25 on {args.samples} samples under 120 s: "
              f"**{'met' if betti_s < 120 else 'NOT met'}** ({betti_s:.1f} s)."]
    if topo_s is not None:
        lines += [f"Target: Topological Pruner on vgg16 w1 at sparsity 0.5 with default settings under "
                  f"60 s: **{'met' if topo_s < 60 else 'NOT met'}** ({topo_s:.1f} s)."]
    lines += ["", f"GA bookkeeping vs fitness: on vgg16's largest layer (features.40, 512 -> 256 "
              f"filters, default GA settings, one process) {100 * share:.1f}% of the search time "
              "is spent in fitness evaluations (spanning-forest and Wasserstein kernels).", ""]
    (args.out / "prune_time.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
