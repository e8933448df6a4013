"""Dense baseline accuracy on real data, over seeds (mean and spread), through the resumable
training loop: an interrupted run picks up where it stopped.

Run (``make bench`` runs both):
    python benchmarks/baseline_accuracy.py --model lenet300 --epochs 30 --seeds 0 1 2
    python benchmarks/baseline_accuracy.py --model vgg16 --width 0.25 --input-shape 1,32,32 \
        --epochs 15 --seeds 0 1 2

Checkpoints live in ``benchmarks/runs/`` (git-ignored); results in
``benchmarks/results/baseline_<model>[_w<width>].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import topoprune as tp
from topoprune.data import dataset_info, prepare_data
from topoprune.metrics import model_cost
from topoprune.train import TrainConfig, set_threads, train

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet300")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--input-shape", default=None, help="C,H,W (default: the dataset's)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--augment", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--runs", type=Path, default=HERE / "runs", help="checkpoint folder (resumable)")
    args = ap.parse_args()
    set_threads()  # once, for the whole script: train() leaves the count alone
    info = dataset_info(args.dataset)
    shape = tuple(int(s) for s in args.input_shape.split(",")) if args.input_shape else info.shape
    tag = f"{args.model}" + (f"_w{args.width:g}" if args.width != 1 else "")
    runs = args.runs / f"baseline_{tag}_{args.dataset}"
    rows = []
    for seed in args.seeds:
        data = prepare_data(args.dataset, input_shape=shape, val_fraction=0.1, seed=seed,
                            augment=args.augment)
        torch.manual_seed(seed)
        model = tp.create_model(args.model, num_classes=info.num_classes, in_channels=shape[0],
                                input_size=shape[1:], width=args.width)
        cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=seed)
        res = train(model, data, cfg, out_dir=runs / f"seed{seed}", progress=not args.quiet,
                    description=f"{tag} seed {seed}")
        best_val = max(res.history, key=lambda h: h["val_acc"])
        rows.append({"seed": seed, "test_acc": res.final["test_acc"], "val_acc": res.final["val_acc"],
                     "best_val_epoch": best_val["epoch"], "test_acc_at_best_val": best_val["test_acc"],
                     "train_seconds": sum(h["seconds"] for h in res.history)})
        print(json.dumps(rows[-1]), flush=True)
    accs = [r["test_acc"] for r in rows]
    cost = model_cost(model, shape)
    record = {
        "command": "python benchmarks/baseline_accuracy.py --model {m} --width {w:g} --dataset {d} "
                   "--input-shape {s} --epochs {e} --lr {lr:g} --batch-size {b} --seeds {seeds}{aug}".format(
                       m=args.model, w=args.width, d=args.dataset, s=",".join(map(str, shape)),
                       e=args.epochs, lr=args.lr, b=args.batch_size,
                       seeds=" ".join(map(str, args.seeds)), aug=" --augment" if args.augment else ""),
        **environment(),
        "config": cfg.to_dict() | {"seed": args.seeds}, "seeds": args.seeds,
        "model": args.model, "width": args.width, "input_shape": list(shape), "dataset": args.dataset,
        "cost": cost.to_dict(),
        "runs": rows,
        "test_acc_mean": statistics.mean(accs),
        "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
    }
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"baseline_{tag}.json").write_text(json.dumps(record, indent=2) + "\n")
    md = "\n".join([
        f"# Baseline accuracy: {args.model} (width {args.width:g}) on {args.dataset}",
        "",
        *provenance_lines(record),
        f"Recipe: SGD nesterov momentum 0.9, lr {args.lr:g} cosine, weight decay 5e-4, batch "
        f"{args.batch_size}, {args.epochs} epochs, 10% of train held out for validation, input "
        f"{'x'.join(map(str, shape))}{', crop+flip' if args.augment else ''}.",
        f"Model: {cost.params:,} parameters, {cost.macs:,} MACs, {cost.flops:,} FLOPs.",
        "",
        "| seed | test acc (final epoch) | val acc | best-val epoch | train seconds |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {r['seed']} | {r['test_acc']:.2f} | {r['val_acc']:.2f} | {r['best_val_epoch']} | "
          f"{r['train_seconds']:.0f} |" for r in rows],
        "",
        f"**Test accuracy: {record['test_acc_mean']:.2f} ± {record['test_acc_std']:.2f}%** "
        f"(mean ± sample std over {len(rows)} seeds, final epoch).",
        "",
    ])
    (out / f"baseline_{tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
