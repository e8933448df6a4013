"""How long choosing and removing filters takes, per method, in one run.

- ``vgg16`` width 1 at 3x32x32, sparsity 0.5, default targets: L1, FPGM and the Topological
  Pruner with its default settings (target: under 60 s), each timed end to end by
  ``prune_filters``; plus the share of the GA's time spent in fitness evaluations (the reason
  the GA is a plain loop around compiled kernels rather than a GA library).
- ``vgg16`` width 0.25 at 1x32x32 with Betti pruning on a 256-sample batch of real
  Fashion-MNIST (target: under 120 s), with L1 and FPGM on the same model beside it.

The GA's speed-up (five times faster than its reference evaluation) is measured in the same run:

- the Topological Pruner on ``vgg16`` width 1 (target: <= 3 s), on a ResNet-18-size model (the
  option-B ResNet of ``tests/e2e/architectures.py`` at widths 64-512, 11.2 M parameters) and on a
  MobileNetV2-size model (the standard 32-16-24-32-64-96-160-320-1280 layout with expansion 6,
  written below from the same blocks), target <= 15 s each, every one as a ratio to FPGM's time
  on the same model measured beside it (median of ``--repeats`` runs, after one untimed warm-up
  per method; the first, cold call is recorded too: it loads the compiled kernels);
- the fitness evaluation itself, before and after: the search on vgg16's largest layer with the
  reference evaluation (a new spanning forest per chromosome, the O(nm) Wasserstein DP:
  ``_Fitness(reference=True)``) and with the new one, the largest difference of their fitness
  values, and whether the two searches chose the same filters.

Run: ``python benchmarks/prune_time.py`` (``make bench``). Seeds: model init 0, sample 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

import topoprune as tp
from topoprune.data import prepare_data
from topoprune.train import set_threads

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def timed(model, method, sparsity, inputs=None):
    _, info = tp.prune_filters(model, method=method, sparsity=sparsity, data_sample=inputs)
    return {"method": method, "seconds": info.seconds, "params": list(info.params),
            "macs": list(info.macs)}


def mobilenetv2() -> nn.Module:
    """A MobileNetV2-size network (Sandler et al. 2018's layout, 3x32x32 inputs, 10 classes) from
    the inverted-residual blocks the architecture tests use."""
    sys.path.insert(0, str(ROOT))
    from tests.e2e.architectures import InvertedResidual, conv_bn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = conv_bn(3, 32, 3, 1)
            blocks, cin = [], 32
            for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
                for i in range(n):
                    blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, expand=t))
                    cin = c
            self.blocks = nn.Sequential(*blocks)
            self.last = conv_bn(cin, 1280, 1)
            self.classifier = nn.Linear(1280, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.relu6(self.stem(x))
            x = nn.functional.relu6(self.last(self.blocks(x)))
            return self.classifier(x.mean((2, 3)))

    torch.manual_seed(0)
    return Net()


def resnet18() -> nn.Module:
    """A ResNet-18-size network (option-B shortcuts, widths 64-512) from the architecture tests."""
    sys.path.insert(0, str(ROOT))
    from tests.e2e.architectures import ResNet

    torch.manual_seed(0)
    return ResNet(widths=(64, 128, 256, 512))


def time_against_fpgm(label: str, model: nn.Module, x: torch.Tensor, ignore: list[str], sparsity: float,
                      repeats: int) -> dict:
    """Median seconds of FPGM and the Topological Pruner on one model, alternating, after one
    untimed warm-up each (the Topological Pruner's cold first call is kept as ``cold_seconds``)."""
    def once(method: str) -> float:
        _, info = tp.prune_filters(model, x, method=method, sparsity=sparsity, exclude=ignore)
        return info.seconds

    once("fpgm")
    cold = once("topological")
    runs: dict[str, list[float]] = {"fpgm": [], "topological": []}
    for _ in range(repeats):
        for m in runs:
            runs[m].append(once(m))
    fpgm, topo = statistics.median(runs["fpgm"]), statistics.median(runs["topological"])
    params = sum(p.numel() for p in model.parameters())
    row = {"model": label, "params": params, "fpgm_seconds": fpgm, "topological_seconds": topo,
           "ratio_topological_to_fpgm": topo / fpgm, "cold_seconds": cold, "runs": runs}
    print("ga time", json.dumps(row), flush=True)
    return row


def fitness_before_after(model) -> dict:
    """The search on vgg16's largest layer with the reference fitness evaluation and with the new
    one: seconds of each, the ratio, the largest relative difference of fitness values over the
    chromosomes both evaluated, and whether both chose the same filters."""
    from topoprune.pruning import genetic

    modules = dict(model.named_modules())
    problem = genetic.layer_problems(model, modules, {"features.40": 0.5}, surgeon=torch.zeros(1, 3, 32, 32),
                                     inputs=None, fitness="diagram")[0]
    config = genetic.GAConfig(workers=1)
    fits = {}
    original = genetic._Fitness

    class Recording(original):
        def __init__(self, problem, kind, *, reference=False):
            super().__init__(problem, kind, reference=reference)
            fits[reference] = self

    class Reference(Recording):
        def __init__(self, problem, kind, *, reference=True):
            super().__init__(problem, kind, reference=True)

    seconds, results = {}, {}
    try:
        for ref, cls in ((True, Reference), (False, Recording)):
            genetic._Fitness = cls
            genetic.search_layer(problem, config)  # warm-up
            t0 = time.perf_counter()
            results[ref] = genetic.search_layer(problem, config)
            seconds[ref] = time.perf_counter() - t0
    finally:
        genetic._Fitness = original
    common = set(fits[True].cache) & set(fits[False].cache)
    worst = max(abs(fits[False].cache[c] - fits[True].cache[c]) / max(abs(fits[True].cache[c]), 1e-300)
                for c in common)
    return {"layer": "features.40", "reference_seconds": seconds[True], "new_seconds": seconds[False],
            "speedup": seconds[True] / seconds[False], "chromosomes_compared": len(common),
            "max_relative_difference": worst,
            "same_choice": results[True].removed == results[False].removed}


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
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method for the GA-time rows")
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
    x3 = torch.zeros(1, 3, 32, 32)
    ga_rows = [time_against_fpgm("vgg16 w1", big, x3, [], args.sparsity, args.repeats),
               time_against_fpgm("resnet18-size", resnet18(), x3, ["stem", "fc"], args.sparsity, args.repeats),
               time_against_fpgm("mobilenetv2-size", mobilenetv2(), x3, ["stem.0", "classifier"], args.sparsity,
                                 args.repeats)]
    limits = {"vgg16 w1": 3.0, "resnet18-size": 15.0, "mobilenetv2-size": 15.0}
    before_after = fitness_before_after(big)
    print("fitness", json.dumps(before_after), flush=True)
    record = {
        "command": f"python benchmarks/prune_time.py --samples {args.samples} --sparsity {args.sparsity} "
                   f"--methods {' '.join(args.methods)} --repeats {args.repeats}",
        "seed": 0, "torch_threads": threads, **environment(),
        "vgg16_width1": rows_big, "vgg16_width0.25_fmnist": rows_small,
        "ga_fitness_share": share,
        "ga_time": ga_rows, "fitness_before_after": before_after,
        "targets": {"betti, vgg16 w0.25, 256 samples, under 120 s": betti_s < 120,
                    "topological, vgg16 w1, sparsity 0.5, defaults, under 60 s":
                        None if topo_s is None else topo_s < 60,
                    **{f"topological, {r['model']}, sparsity {args.sparsity}, at most {limits[r['model']]:g} s "
                       "(median)": r["topological_seconds"] <= limits[r["model"]] for r in ga_rows}},
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
    lines += ["", "## The Topological Pruner's time against FPGM's", "",
              f"Median of {args.repeats} runs each, alternating, after one untimed warm-up per method; "
              "`cold` is the first call in the process (it loads the compiled kernels). Default GA settings, "
              f"sparsity {args.sparsity}, the first layer and the classifier kept.", "",
              "| model | parameters | FPGM s | topological s | ratio | cold s | target | met |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['model']} | {r['params']:,} | {r['fpgm_seconds']:.2f} | {r['topological_seconds']:.2f} | "
              f"{r['ratio_topological_to_fpgm']:.1f}x | {r['cold_seconds']:.2f} | <= {limits[r['model']]:g} s | "
              f"**{'yes' if r['topological_seconds'] <= limits[r['model']] else 'NO'}** |" for r in ga_rows]
    ba = before_after
    lines += ["", f"Fitness evaluation before and after (one layer, {ba['layer']}, one thread, default GA): "
              f"{ba['reference_seconds']:.2f} s with the reference evaluation, {ba['new_seconds']:.2f} s with the "
              f"new one ({ba['speedup']:.1f}x); over the {ba['chromosomes_compared']} chromosomes both evaluated "
              f"the largest relative difference of fitness values is {ba['max_relative_difference']:.1e} "
              f"(rounding), and both searches chose {'the same' if ba['same_choice'] else 'DIFFERENT'} filters."]
    lines += ["", f"GA bookkeeping vs fitness: on vgg16's largest layer (features.40, 512 -> 256 "
              f"filters, default GA settings, one process) {100 * share:.1f}% of the search time "
              "is spent in fitness evaluations (spanning-forest and Wasserstein kernels); the rest is "
              "sorting each graph's edges once and the GA's own bookkeeping.", ""]
    (args.out / "prune_time.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
