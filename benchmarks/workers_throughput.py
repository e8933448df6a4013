"""Cells at a time on a small CPU: the training steps per second a machine gives one process
using every core, against one process per core with one thread each, in one run.

``compare --workers N`` and ``evaluate --workers N`` run N cells at once, each with its share of
the cores; the default runs one cell with all of them. Which is faster depends on how well a
model's training step uses several threads. For each model (VGG-16 at width 0.25 dense, the same
network after L1 filter pruning to 2x fewer FLOPs, and LeNet-300-100), with the settings table 1
trains with (channels_last + bf16 for VGG-16, fp32 for LeNet), this script runs:

- ``one process``: one process with every usable core as torch threads;
- ``per core``: one process per core, one thread each, all at once;

each for ``--seconds`` of training steps on a fixed random batch of 128, after a warm-up, in
``--rounds`` rounds whose order alternates. It reports the summed steps per second of each
arrangement (median over rounds, and each round's), their ratio, and each model's step time on
one thread alone (how much a 2x-FLOPs network saves per step). Writes
``results/workers_throughput.{json,md}``.

Run on an idle machine: ``python benchmarks/workers_throughput.py`` (about 4 minutes).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from pathlib import Path

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

HERE = Path(__file__).parent
BATCH = 128
# key: (registry name, width, input shape, setting, FLOPs target of an L1 prune or None)
MODELS = {
    "vgg16-w0.25": ("vgg16", 0.25, (1, 32, 32), "channels_last+bf16", None),
    "vgg16-w0.25, L1 to 2x fewer FLOPs": ("vgg16", 0.25, (1, 32, 32), "channels_last+bf16", "2x"),
    "lenet300": ("lenet300", 1.0, (1, 28, 28), "fp32", None),
}


def _build(key: str):
    """The model of ``key`` (seed 0), pruned when its entry names a FLOPs target, with its batch."""
    import torch

    import topoprune as tp

    name, width, shape, _, target = MODELS[key]
    torch.manual_seed(0)
    model = tp.create_model(name, width=width, in_channels=shape[0], input_size=shape[1:])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, *shape, generator=g)
    y = torch.randint(0, 10, (BATCH,), generator=g)
    if target is not None:
        model, _ = tp.prune_units(model.eval(), x[:8], method="l1", target={"flops": target})
    return model, x, y


def _steps(args) -> dict:
    """In a fresh process: ``threads`` torch threads, a warm-up, then as many training steps as fit
    in ``seconds`` once every process of the arrangement is ready (the barrier)."""
    key, threads, seconds, barrier = args
    import torch

    try:
        from train_speed import Stepper
    except ImportError:
        from benchmarks.train_speed import Stepper

    torch.set_num_threads(threads)
    model, x, y = _build(key)
    stepper = Stepper(model, MODELS[key][3], torch.device("cpu"))
    stepper.run(x, y, 3)  # warm-up: allocations, kernel choice
    barrier.wait()
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        stepper.run(x, y, 1)
        steps += 1
    elapsed = time.perf_counter() - t0
    return {"steps": steps, "seconds": elapsed, "threads": torch.get_num_threads()}


def arrangement(key: str, processes: int, threads: int, seconds: float) -> dict:
    """``processes`` spawned processes of ``threads`` threads each, training ``key`` at once;
    their summed steps per second."""
    ctx = multiprocessing.get_context("spawn")
    with multiprocessing.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            runs = pool.map(_steps, [(key, threads, seconds, barrier)] * processes)
    return {"steps_per_second": sum(r["steps"] / r["seconds"] for r in runs), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=12.0, help="training time of each arrangement per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (the arrangements' order alternates)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if args.seconds <= 0 or args.rounds < 1:
        raise SystemExit("workers_throughput.py: --seconds must be > 0 and --rounds >= 1")
    from topoprune.train.scoped import usable_cores

    cores = usable_cores()
    if cores < 2:
        raise SystemExit("workers_throughput.py: needs at least 2 usable cores (one process per core against one)")
    arrangements = {"one process": (1, cores), "per core": (cores, 1)}
    results: dict = {}
    for key in MODELS:
        per = {name: [] for name in arrangements}
        for r in range(args.rounds):
            for name in (list(arrangements) if r % 2 == 0 else list(reversed(arrangements))):
                per[name].append(arrangement(key, *arrangements[name], args.seconds)["steps_per_second"])
            print(f"{key}: round {r + 1}: " + ", ".join(f"{n} {v[-1]:.2f} steps/s" for n, v in per.items()),
                  flush=True)
        alone = arrangement(key, 1, 1, args.seconds)["steps_per_second"]
        median = {name: statistics.median(v) for name, v in per.items()}
        results[key] = {"steps_per_second": per, "median": median, "ratio": median["per core"] / median["one process"],
                        "one_thread_step_ms": 1000 / alone, "setting": MODELS[key][3]}
    record = {"command": "python benchmarks/workers_throughput.py"
              + (f" --seconds {args.seconds:g}" if args.seconds != 12.0 else "")
              + (f" --rounds {args.rounds}" if args.rounds != 3 else ""),
              **environment(), "seeds": [0],  # the weights and the batch: seed 0
              "cores": cores, "batch": BATCH, "seconds": args.seconds, "rounds": args.rounds,
              "models": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "workers_throughput.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# One process on every core, or one process per core?", "", *provenance_lines(record), "",
             f"Summed training steps per second (batch {BATCH}, a fixed random batch), median of {args.rounds} rounds "
             f"of {args.seconds:g} s each: one process with {cores} torch threads, against {cores} processes with one "
             "thread each at once; and the step time of each model on one thread alone.", "",
             "| model | setting | one process | per core | per core / one process | rounds (one process; per core) "
             "| step on one thread alone |", "|---|---|---:|---:|---:|---|---:|"]
    for key, r in results.items():
        rounds = "; ".join(", ".join(f"{v:.2f}" for v in r["steps_per_second"][n]) for n in arrangements)
        lines.append(f"| {key} | {r['setting']} | {r['median']['one process']:.2f} | {r['median']['per core']:.2f} "
                     f"| {r['ratio']:.2f}x | {rounds} | {r['one_thread_step_ms']:.1f} ms |")
    (args.out / "workers_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
