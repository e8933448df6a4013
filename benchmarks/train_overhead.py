"""Training-loop overhead: ``topoprune.train.train`` against a minimal hand-written loop, in one run.

Same model (identical initial weights), same data (real Fashion-MNIST, fitted to 1x32x32), same
optimizer, batch size and threads. The minimal loop is what anyone would write: a random
permutation, slices, forward, cross-entropy, backward, step. Ours is timed by its own per-epoch
``seconds`` (the training pass: progress bar, running loss/accuracy included; the evaluation that
follows each epoch is reported separately). The two alternate, ``--rounds`` times each, and the
ratio of medians is reported.

Run: ``python benchmarks/train_overhead.py`` (``make bench``): about 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import topoprune as tp
from topoprune.data import prepare_data
from topoprune.train import TrainConfig, set_threads, train

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

RESULTS = Path(__file__).parent / "results"


def minimal_epoch(model, x, y, batch_size: int, lr: float, seed: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    g = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(x.shape[0], generator=g)
    for i in range(0, x.shape[0], batch_size):
        idx = perm[i : i + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--input-shape", default="1,32,32")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2, help="epochs of each loop (alternating)")
    ap.add_argument("--limit", type=int, default=None, help="first N samples only (smoke runs)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.input_shape.split(","))
    threads = set_threads()
    data = prepare_data(args.dataset, input_shape=shape, val_fraction=0.1, seed=0, limit=args.limit)
    torch.manual_seed(0)
    init = tp.create_model(args.model, num_classes=data.num_classes, in_channels=shape[0],
                           input_size=shape[1:], width=args.width)
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=args.batch_size, schedule="none", seed=0)
    ours, ours_eval, minimal = [], [], []
    for r in range(args.rounds):
        minimal.append(minimal_epoch(copy.deepcopy(init), data.train_x, data.train_y,
                                     args.batch_size, 0.05, seed=r))
        res = train(copy.deepcopy(init), data, cfg, progress=True, description=f"ours, round {r + 1}")
        ours.append(res.final["seconds"])
        ours_eval.append(res.final["eval_seconds"])
        print(f"round {r + 1}: minimal {minimal[-1]:.2f} s, ours {ours[-1]:.2f} s (+ eval {ours_eval[-1]:.2f} s)",
              flush=True)
    ratio = statistics.median(ours) / statistics.median(minimal)
    record = {
        "command": f"python benchmarks/train_overhead.py --model {args.model} --width {args.width} "
                   f"--dataset {args.dataset} --input-shape {args.input_shape} --batch-size "
                   f"{args.batch_size} --rounds {args.rounds}" + (f" --limit {args.limit}" if args.limit else ""),
        "seed": 0, "torch_threads": threads, "train_samples": int(data.train_x.shape[0]),
        **environment(),
        "minimal_s": minimal, "ours_s": ours, "ours_eval_s": ours_eval,
        "ratio_ours_over_minimal": ratio,
        "target": "ratio <= 1.1", "target_met": ratio <= 1.1,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_overhead.json").write_text(json.dumps(record, indent=2) + "\n")
    md = "\n".join([
        "# Training-loop overhead",
        "",
        *provenance_lines(record, f", torch threads {threads}"),
        "",
        f"One epoch of `{args.model}` width {args.width} on {args.dataset} at {args.input_shape} "
        f"({record['train_samples']} samples, batch {args.batch_size}), {args.rounds} alternating rounds.",
        "",
        "| loop | epoch seconds (each round) | median |",
        "|---|---|---:|",
        f"| minimal hand-written | {', '.join(f'{s:.2f}' for s in minimal)} | {statistics.median(minimal):.2f} |",
        f"| topoprune `train` | {', '.join(f'{s:.2f}' for s in ours)} | {statistics.median(ours):.2f} |",
        "",
        f"Ratio ours / minimal: **{ratio:.3f}** (target <= 1.1: {'met' if ratio <= 1.1 else 'NOT met'}). "
        f"Our per-epoch evaluation of val + test adds {statistics.median(ours_eval):.2f} s, not counted above.",
        "",
    ])
    (args.out / "train_overhead.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
