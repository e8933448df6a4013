"""Machine, versions and date for benchmark records (every number names where it came from)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpu() -> str | None:
    """The visible CUDA GPU's name, or None (CPU-only torch, or no GPU)."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - a broken driver must not stop a CPU benchmark
        return None


def _git_commit() -> str:
    """The short commit, with ``+dirty`` when tracked code differs from it (the numbers then come
    from code that no commit holds). Markdown and the results folder are outputs and docs, not
    code: exporting one run must not mark the next. Paths are taken from the repository's top,
    whatever the working directory."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "diff", "--quiet", "HEAD", "--", ":(top)",
                                ":(top,exclude)benchmarks/results", ":(top,exclude,glob)**/*.md"],
                               capture_output=True).returncode == 1
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment(packages: tuple[str, ...] = ("topoprune", "numpy", "scipy", "numba", "torch", "torch-pruning",
                                            "scikit-learn", "networkx")) -> dict:
    """A JSON-ready record of the machine, the versions and the date."""
    from topoprune.experiments.store import package_versions  # here: the report script needs no torch

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            **({"gpu": gpu} if (gpu := _gpu()) else {}),
        },
        "python": platform.python_version(),
        "versions": package_versions(packages),
        "git_commit": _git_commit(),
    }


def provenance_lines(record: dict, threads: str = "") -> list[str]:
    """The two Markdown lines every results file starts with: the command (with seed, date and
    commit) and the machine with its versions."""
    m = record["machine"]
    seed = f" · seed {record['seed']}" if "seed" in record else ""
    return [
        f"Command: `{record['command']}`{seed} · {record['date']} · {commit_text(record)}",
        f"Machine: {m['cpu']}, {m['cores']} cores{threads}"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "") + f", {m['platform']}; python {record['python']}, "
        + ", ".join(f"{k} {v}" for k, v in record["versions"].items()),
    ]


def commit_text(record: dict) -> str:
    """``commit X`` for a benchmark script's own measurement; for the export of a run folder
    (``run_dir`` in the record) ``exported at commit X``: a resumed run's rows may come from
    earlier sessions and commits, which the exporter cannot know."""
    if "run_dir" in record:
        return f"exported at commit {record['git_commit']}"
    return f"commit {record['git_commit']}"



def dense_text(record: dict) -> str:
    """The dense accuracy of a run's export in words: one trained network's, or the mean ± std of
    one network per seed (``train.seed: each``), naming the training seeds. The results files and
    the benchmark pages both say it this way."""
    per = record.get("dense_per_train_seed")
    acc = record["dense"]["test_acc"]
    if not per:
        config = record.get("config") or {}
        seed = (config.get("experiment", config).get("train") or {}).get("seed", 0)
        return f"{acc:.2f}% test accuracy (one trained network, train seed {seed})"
    if len(per) == 1:
        return (f"{acc:.2f}% test accuracy (train seed {next(iter(per))}: so far the only one of the networks "
                "trained one per seed)")
    accs = list(per.values())
    return (f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f}% test accuracy (one network per seed, "
            f"train seeds {', '.join(per)})")


def run_execution(run_dir: Path | None, rows: Sequence[dict]) -> dict:
    """How a run was started: the executor of each start its log records, in order (repeats in
    a row counted once; a start that found nothing left to do counts too), and the torch thread
    counts its rows record (latency and timings depend on them; some rows may not record it).
    ``run_dir`` None: rows without their folder here (carried from an earlier export), no starts."""
    log = run_dir / "log.txt" if run_dir is not None else None
    starts = re.findall(r": start \((.*), training on ", log.read_text()) if log is not None and log.exists() else []
    return {"executors": [e for i, e in enumerate(starts) if i == 0 or starts[i - 1] != e],
            "threads": sorted({r["threads"] for r in rows if r.get("threads") is not None}),
            "rows_without_threads": sum(r.get("threads") is None for r in rows)}


def execution_text(execution: dict) -> str:
    """:func:`run_execution` in one sentence."""
    threads = execution["threads"]
    said = (f"; its rows were measured with {' or '.join(map(str, threads))} torch thread(s) per cell" if threads
            else "")
    missing = execution["rows_without_threads"]
    if threads and missing:
        said += f" ({missing} row(s) do not record it)"
    return f"The run was started with: {', then '.join(execution['executors'])}{said}."
