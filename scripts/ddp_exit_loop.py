"""Count two-rank DDP runs that fail: the check behind the DDP exit race's numbers.

Each run trains mnist-conv width 0.25 on scikit-learn's digits for one epoch with ``nproc=2``
(gloo), seed = run index. A rank that let the interpreter finalize could abort ("terminate called
without an active exception"); a finished rank now leaves with ``os._exit(0)``, and
docs/design-notes.md quotes this loop's counts with and without it.

Run: ``python scripts/ddp_exit_loop.py 100`` (about 8 s per run on 2 cores).
"""

from __future__ import annotations

import argparse
import time

from topoprune.data import prepare_data
from topoprune.errors import TopopruneError
from topoprune.models import create_model
from topoprune.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=int, help="two-rank runs to make")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("runs must be at least 1")
    data = prepare_data("digits")
    failures = 0
    for seed in range(args.runs):
        model = create_model("mnist-conv", width=0.25, in_channels=data.input_shape[0],
                             input_size=data.input_shape[1:], num_classes=data.num_classes)
        t0 = time.perf_counter()
        try:
            train(model, data, TrainConfig(epochs=1, lr=0.1, batch_size=64, seed=seed), progress=False, nproc=2)
            outcome = "ok"
        except TopopruneError as exc:
            failures += 1
            outcome = f"FAIL {exc}"
        print(f"{seed} {time.perf_counter() - t0:.1f}s {outcome}", flush=True)
    print(f"failed {failures} of {args.runs}", flush=True)


if __name__ == "__main__":
    main()
