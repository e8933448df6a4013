"""Neural-persistence early stopping (Rieck et al. 2019) against validation-loss early stopping:
epochs used and final test accuracy, over seeds, through the resumable training loop.

Run (``make bench`` runs it):
    python benchmarks/np_early_stopping.py --model lenet300 --max-epochs 30 --patience 3 --seeds 0 1 2

Both rules watch one number per epoch with the same patience: mean normalized NP must rise, the
validation loss must fall. Results in ``benchmarks/results/np_early_stopping.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import topoprune as tp
from topoprune.data import dataset_info, prepare_data
from topoprune.train import NPEarlyStopping, TrainConfig, ValLossEarlyStopping, set_threads, train

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

HERE = Path(__file__).parent
RULES = {"np": lambda p: NPEarlyStopping(patience=p), "val-loss": lambda p: ValLossEarlyStopping(patience=p)}


def _pm(values: list[float], digits: int = 2) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet300")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--runs", type=Path, default=HERE / "runs", help="checkpoint folder (resumable)")
    args = ap.parse_args()
    set_threads()  # once, for the whole script: train() leaves the count alone
    info = dataset_info(args.dataset)
    rows = []
    for seed in args.seeds:
        data = prepare_data(args.dataset, val_fraction=0.1, seed=seed)
        for rule, make in RULES.items():
            torch.manual_seed(seed)
            model = tp.create_model(args.model, num_classes=info.num_classes, in_channels=info.shape[0],
                                    input_size=info.shape[1:])
            # constant rate: a cosine schedule tied to max-epochs would favour whoever stops later
            cfg = TrainConfig(epochs=args.max_epochs, lr=args.lr, schedule="none", seed=seed)
            res = train(model, data, cfg, out_dir=args.runs / f"np_es_{args.model}" / rule / f"seed{seed}",
                        callbacks=[make(args.patience)], progress=False)
            rows.append({"seed": seed, "rule": rule, "epochs": len(res.history),
                         "test_acc": res.final["test_acc"], "val_acc": res.final["val_acc"],
                         "best_test_acc": max(h["test_acc"] for h in res.history),
                         "train_seconds": sum(h["seconds"] for h in res.history)})
            print(json.dumps(rows[-1]), flush=True)
    summary = {rule: {"epochs": [r["epochs"] for r in rows if r["rule"] == rule],
                      "test_acc": [r["test_acc"] for r in rows if r["rule"] == rule]} for rule in RULES}
    record = {
        "command": f"python benchmarks/np_early_stopping.py --model {args.model} --dataset {args.dataset} "
                   f"--max-epochs {args.max_epochs} --patience {args.patience} --lr {args.lr:g} "
                   f"--seeds {' '.join(map(str, args.seeds))}",
        **environment(), "seeds": args.seeds, "config": cfg.to_dict(), "runs": rows, "summary": summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "np_early_stopping.json").write_text(json.dumps(record, indent=2) + "\n")
    md = [f"# Early stopping: neural persistence vs validation loss ({args.model}, {args.dataset})", "",
          *provenance_lines(record),
          f"SGD lr {args.lr:g} constant, at most {args.max_epochs} epochs, patience {args.patience} for both rules.",
          "", "| rule | epochs used (mean ± std) | final test acc % (mean ± std) | per seed (epochs, acc) |",
          "|---|---:|---:|---|"]
    for rule, s in summary.items():
        per = ", ".join(f"({e}, {a:.2f})" for e, a in zip(s["epochs"], s["test_acc"]))
        md.append(f"| {rule} | {_pm(s['epochs'], 1)} | {_pm(s['test_acc'])} | {per} |")
    (args.out / "np_early_stopping.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
