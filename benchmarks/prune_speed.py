"""Real speed-up from physical filter removal: dense vgg16 against its L1-pruned copy, in one run.

Both models are measured in the same process, alternating, on CPU (eval mode, inference_mode),
at batch 1 and batch 64 after warm-up, in two set-ups applied to both alike:
- ``eager``: the modules as they are;
- ``deployed``: ``topoprune.inference.optimize_for_inference`` (conv+BatchNorm folded, channels-last).
The target: at batch 64 the measured speed-up is at least 0.75 x the MAC ratio.

Run: ``python benchmarks/prune_speed.py`` (``make bench``); about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import topoprune as tp
from topoprune.inference import optimize_for_inference
from topoprune.metrics import measure_latency
from topoprune.train import set_threads

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--method", default="l1")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="alternating dense/pruned measurements")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    threads = set_threads()
    torch.manual_seed(0)
    dense = tp.create_model(args.model, width=args.width).eval()
    pruned, info = tp.prune_filters(dense, method=args.method, sparsity=args.sparsity)
    shape = dense.meta.input_shape
    setups = {
        "eager": ({"dense": dense, "pruned": pruned.eval()}, False),
        "deployed": ({"dense": optimize_for_inference(dense), "pruned": optimize_for_inference(pruned)}, True),
    }
    mac_ratio = info.macs[0] / info.macs[1]
    results = {}
    for setup, (models, cl) in setups.items():
        runs: dict[str, dict[int, list[float]]] = {k: {1: [], 64: []} for k in models}
        for _ in range(args.rounds):
            for label, model in models.items():
                lat = measure_latency(model, shape, batch_sizes=(1, 64), warmup=3,
                                      repeats=args.repeats, channels_last=cl)
                for b in (1, 64):
                    runs[label][b].append(lat[b]["median_ms"])
        med = {k: {b: statistics.median(v) for b, v in d.items()} for k, d in runs.items()}
        speed = {b: med["dense"][b] / med["pruned"][b] for b in (1, 64)}
        results[setup] = {"latency_ms": runs, "median_ms": med, "speedup": speed,
                          "target_met": speed[64] >= 0.75 * mac_ratio}
        print(setup, json.dumps(results[setup]["speedup"]), flush=True)
    record = {
        "command": f"python benchmarks/prune_speed.py --model {args.model} --width {args.width:g} "
                   f"--method {args.method} --sparsity {args.sparsity} --repeats {args.repeats} "
                   f"--rounds {args.rounds}",
        "seed": 0, "torch_threads": threads, **environment(),
        "params": info.params, "macs": info.macs, "flops": info.flops, "mac_ratio": mac_ratio,
        "setups": results, "target": "speedup at batch 64 >= 0.75 x MAC ratio",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prune_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    md = "\n".join([
        f"# Physical pruning speed-up: {args.model} (width {args.width:g}), {args.method} at sparsity {args.sparsity}",
        "",
        *provenance_lines(record, f", torch threads {threads}"),
        "",
        "Default targets: every conv but the first, the classifier kept. Latency: median of "
        f"{args.rounds} alternating rounds, each the median of {args.repeats} timed runs after warm-up.",
        "",
        "| | dense | pruned | ratio |",
        "|---|---:|---:|---:|",
        f"| parameters | {info.params[0]:,} | {info.params[1]:,} | {info.params[0] / info.params[1]:.2f}x |",
        f"| MACs (NNI rule) | {info.macs[0]:,} | {info.macs[1]:,} | {mac_ratio:.2f}x |",
        f"| FLOPs (torch counter) | {info.flops[0]:,} | {info.flops[1]:,} | {info.flops[0] / info.flops[1]:.2f}x |",
        *[
            f"| latency {setup}, batch {b} (ms) | {r['median_ms']['dense'][b]:.2f} | "
            f"{r['median_ms']['pruned'][b]:.2f} | {r['speedup'][b]:.2f}x |"
            for setup, r in results.items() for b in (1, 64)
        ],
        "",
        f"Target: batch-64 speed-up >= 0.75 x MAC ratio = {0.75 * mac_ratio:.2f}x. "
        + "; ".join(f"{setup}: **{'met' if r['target_met'] else 'NOT met'}** ({r['speedup'][64]:.2f}x)"
                    for setup, r in results.items()) + ".",
        "",
        "Eager mode keeps every BatchNorm and ReLU as a separate memory-bound pass, and the first "
        "conv (not pruned by default) and its 64-channel activations at 32x32 cost the same in "
        "both models; eager batch-64 timings on this 2-core machine also vary from run to run. "
        "The deployed set-up folds BN into the convs and uses channels-last, as a deployment would.",
        "",
    ])
    (args.out / "prune_speed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
