"""Run folders you can trust: the lock, the manifest (tamper -> named, --repair -> the
uninterrupted rows), a damaged results file, damaged JSON, a full disk, and a user's own method
named in a config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from topoprune.cli import main
from topoprune.errors import TopopruneError
from topoprune.experiments.config import parse_config
from topoprune.experiments.runner import run_dir_for, run_experiment
from topoprune.experiments.store import RunStore, read_results

BASE = {
    "name": "trust",
    "dataset": "digits",
    "model": {"name": "mnist-conv", "width": 0.25},
    "train": {"epochs": 2, "lr": 0.1, "batch_size": 64},
    "methods": ["l1", "magnitude"],
    "sparsities": [0.5],
    "seeds": [0],
    "recovery": {"epochs": 1, "batch_size": 64},
    "analyses": {"latency": False},
}
# when and where a cell ran, not what it computed
TIMING = {"prune_seconds", "seconds_to_recover", "latency_ms", "started", "finished", "threads"}


def _strip(rows):
    """Rows without their timings (also the training seconds inside IMP round records)."""
    def clean(r):
        out = {k: v for k, v in r.items() if k not in TIMING}
        if out.get("imp_rounds"):
            out["imp_rounds"] = [{k: v for k, v in x.items() if k != "train_seconds"} for x in out["imp_rounds"]]
        return out
    return sorted((clean(r) for r in rows), key=lambda r: (r["method"], r["sparsity"]))


def _cli(*args):
    """``topoprune ARGS`` in this process (a subprocess would pay torch's import every time):
    its exit code and what it wrote to stderr."""
    import contextlib
    import io
    import types

    err, out = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as exc:
                code = exc.code
    finally:
        torch.set_num_threads(threads)  # the CLI sets torch's threads once, as an entry point does
    return types.SimpleNamespace(returncode=code, stderr=err.getvalue(), stdout=out.getvalue())


def _flip(path: Path, at: int | None = None, count: int = 1) -> None:
    """Tamper with a file without changing its size: invert ``count`` bytes at ``at`` (default:
    the middle), so only the checksum can tell."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at:at + count] = bytes(b ^ 0xFF for b in data[at:at + count])
    path.write_bytes(bytes(data))


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("topoprune: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run: (config file, its run folder, its rows)."""
    root = tmp_path_factory.mktemp("ref")
    config = root / "trust.yaml"
    config.write_text(yaml.safe_dump(BASE))
    run_dir = run_experiment(parse_config(BASE, name="trust"), root / "runs", quiet=True, report=False)
    return config, run_dir, read_results(run_dir)


def _copy(reference, tmp_path) -> Path:
    import shutil

    _, run_dir, _ = reference
    out = tmp_path / "runs"
    shutil.copytree(run_dir, out / run_dir.name)
    return out


HOLDER = """
import sys, time
from topoprune.experiments.store import RunStore
with RunStore(sys.argv[1]).locked(command="holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold(run_dir: Path) -> subprocess.Popen:
    """A process that holds the run folder's lock until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_compare_is_refused_then_takes_over_after_sigkill(reference, tmp_path):
    import signal

    config, ref_dir, ref_rows = reference
    out = _copy(reference, tmp_path)
    run_dir = out / ref_dir.name
    holder = _hold(run_dir)
    try:
        files = [p for p in run_dir.rglob("*") if p.is_file() and p.name != "run.lock"]
        before = {p: p.stat().st_mtime_ns for p in files}
        line = _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
        assert f"in use by pid {holder.pid} on " in line and "started" in line
        assert {p: p.stat().st_mtime_ns for p in files} == before  # the refused run touched nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel dropped the dead holder's lock; its pid is still in the file, and is taken over
    assert json.loads((run_dir / "run.lock").read_text())["pid"] == holder.pid
    done = _cli("compare", config, "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert f"took over the lock left by pid {holder.pid}" in (run_dir / "log.txt").read_text()
    assert (run_dir / "run.lock").read_text() == ""  # released at the end
    assert _strip(read_results(run_dir)) == _strip(ref_rows)


def test_two_compares_started_together_one_runs_one_is_refused(tmp_path):
    """Two processes on one folder at once: the one that takes the lock runs (a long recovery keeps
    it running), the other is refused in one line naming it; then the runner is stopped."""
    import signal

    config = tmp_path / "race.yaml"
    config.write_text(yaml.safe_dump({**BASE, "methods": ["l1"],
                                      "recovery": {"epochs": 500, "batch_size": 16}}))
    out = tmp_path / "runs"
    procs = [subprocess.Popen([sys.executable, "-m", "topoprune.cli", "compare", str(config), "--out", str(out),
                               "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}) for _ in range(2)]
    try:
        deadline = time.time() + 120
        while time.time() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.1)
        ended = [p for p in procs if p.poll() is not None]
        assert len(ended) == 1, "neither run ended: no refusal within 120 s"
        refused, running = ended[0], next(p for p in procs if p is not ended[0])
        err = refused.stderr.read()
        assert refused.returncode == 2 and f"in use by pid {running.pid}" in err, err
        assert running.poll() is None  # the other is still writing the folder
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()


def test_tampered_checkpoint_is_named_and_repair_restores_the_rows(reference, tmp_path):
    config, ref_dir, ref_rows = reference
    out = _copy(reference, tmp_path)
    run_dir = out / ref_dir.name
    weights = run_dir / "cells/mnist-conv-w0.25/l1/s0.5/seed0/pruned/weights.pt"
    _flip(weights, count=4)

    line = _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
    assert "cells/mnist-conv-w0.25/l1/s0.5/seed0/pruned/weights.pt (changed)" in line and "--repair" in line

    repaired = _cli("compare", config, "--out", out, "--quiet", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert _strip(read_results(run_dir)) == _strip(ref_rows)
    assert RunStore(run_dir).verify() == []
    log = (run_dir / "log.txt").read_text()
    assert "repair: removed cells/mnist-conv-w0.25/l1/s0.5/seed0/prune" in log
    assert "repair: removed cells/mnist-conv-w0.25/magnitude" not in log  # only what depended on it


def test_tampered_baseline_redoes_everything_of_that_model(reference, tmp_path):
    config, ref_dir, ref_rows = reference
    out = _copy(reference, tmp_path)
    run_dir = out / ref_dir.name
    ckpt = run_dir / "baseline/mnist-conv-w0.25/checkpoint.pt"
    _flip(ckpt, at=len(ckpt.read_bytes()) - 2000)  # one byte of one weight
    line = _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
    assert "baseline/mnist-conv-w0.25/checkpoint.pt (changed)" in line
    init = run_dir / "baseline/mnist-conv-w0.25/init.pt"
    init.write_bytes(init.read_bytes()[:-100])
    line = _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
    assert "init.pt (truncated)" in line
    assert _cli("compare", config, "--out", out, "--quiet", "--repair").returncode == 0
    assert _strip(read_results(run_dir)) == _strip(ref_rows)


def test_damaged_json_is_one_line_and_repairable(reference, tmp_path):
    config, ref_dir, ref_rows = reference
    out = _copy(reference, tmp_path)
    run_dir = out / ref_dir.name
    prune = run_dir / "cells/mnist-conv-w0.25/magnitude/s0.5/seed0/prune.json"
    prune.write_text(prune.read_text()[:40])
    line = _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
    assert "magnitude/s0.5/seed0/prune.json" in line
    (run_dir / "config.json").write_bytes(b"\xff\xfe{")
    line = _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
    assert "config.json is damaged" in line
    assert _cli("compare", config, "--out", out, "--quiet", "--repair").returncode == 0
    assert _strip(read_results(run_dir)) == _strip(ref_rows)
    assert json.loads((run_dir / "config.json").read_text())["name"] == "trust"


def test_damaged_analysis_is_one_line_in_report_and_compare_and_repairable(reference, tmp_path):
    config, ref_dir, ref_rows = reference
    out = _copy(reference, tmp_path)
    run_dir = out / ref_dir.name
    analysis = run_dir / "analysis/mnist-conv-w0.25.json"
    analysis.write_text(analysis.read_text().replace("{", "[", 1))  # same size, not the same JSON
    assert "analysis" in _one_line_error(_cli("report", run_dir))
    line = _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
    assert "analysis/mnist-conv-w0.25.json (changed)" in line
    assert _cli("compare", config, "--out", out, "--quiet", "--repair").returncode == 0
    assert json.loads(analysis.read_text())["model"] == "mnist-conv-w0.25"
    assert _strip(read_results(run_dir)) == _strip(ref_rows)


def test_a_stage_killed_between_marker_and_seal_is_sealed_on_resume(reference, tmp_path):
    """What a kill right after a marker's write leaves: the marker and files, no manifest lines.
    The rerun seals them, so they are verified from then on."""
    config, ref_dir, ref_rows = reference
    out = _copy(reference, tmp_path)
    run_dir = out / ref_dir.name
    manifest = run_dir / "manifest.jsonl"
    kept = [x for x in manifest.read_text().splitlines() if "/l1/s0.5/seed0/prune" not in x]
    manifest.write_text("\n".join(kept) + "\n")
    assert _cli("compare", config, "--out", out, "--quiet").returncode == 0
    sealed = RunStore(run_dir).manifest()
    assert "cells/mnist-conv-w0.25/l1/s0.5/seed0/prune.json" in sealed
    assert "cells/mnist-conv-w0.25/l1/s0.5/seed0/pruned/weights.pt" in sealed
    weights = run_dir / "cells/mnist-conv-w0.25/l1/s0.5/seed0/pruned/weights.pt"
    _flip(weights)
    assert "pruned/weights.pt (changed)" in _one_line_error(_cli("compare", config, "--out", out, "--quiet"))


def test_repair_rewrites_a_reformatted_config_json(reference, tmp_path):
    config, ref_dir, _ = reference
    out = _copy(reference, tmp_path)
    run_dir = out / ref_dir.name
    path = run_dir / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text())))  # same content, other bytes
    assert "config.json" in _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
    assert _cli("compare", config, "--out", out, "--quiet", "--repair").returncode == 0
    assert _cli("compare", config, "--out", out, "--quiet").returncode == 0  # no loop


def test_half_written_and_duplicated_results_lines_are_healed(reference, tmp_path):
    config, ref_dir, ref_rows = reference
    out = _copy(reference, tmp_path)
    run_dir = out / ref_dir.name
    results = run_dir / "results.jsonl"
    lines = results.read_text().splitlines()
    # a duplicate of the first row, then a line cut off mid-write
    results.write_text("\n".join([lines[0], lines[0], lines[1][: len(lines[1]) // 2]]))
    rows = read_results(run_dir)
    assert len(rows) == 2 and _strip(rows) == _strip(ref_rows)  # rebuilt from the cells' row.json
    report = _cli("report", run_dir)
    assert report.returncode == 0, report.stderr
    assert "Traceback" not in report.stderr
    assert _cli("compare", config, "--out", out, "--quiet").returncode == 0
    healed = [json.loads(x) for x in results.read_text().splitlines()]
    assert len(healed) == 2 and _strip(healed) == _strip(ref_rows)
    # a copy holding only the results file (no cells): the file alone is read, and healed
    export = tmp_path / "export"
    export.mkdir()
    lines = results.read_text().splitlines()
    (export / "results.jsonl").write_text("\n".join([lines[0], lines[0], '{"model": "x"}', lines[1][:50]]))
    assert _strip(read_results(export)) == _strip([json.loads(lines[0])])


def test_disk_full_is_one_line_and_the_run_resumes(reference, tmp_path):
    config, ref_dir, ref_rows = reference
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                             capture_output=True).returncode == 0
    try:
        if mounted:  # a real full disk: a 256 KiB tmpfs holds the config and the baseline, not the cells
            line = _one_line_error(_cli("compare", config, "--out", mount / "runs", "--quiet"))
            assert "no space left on the device while writing" in line and str(mount) in line
            assert subprocess.run(["mount", "-o", "remount,size=64m", str(mount)]).returncode == 0
            done = _cli("compare", config, "--out", mount / "runs", "--quiet")
            assert done.returncode == 0, done.stderr
            run_dir = mount / "runs" / ref_dir.name
        else:  # simulated: the first artefact write after the baseline fails with ENOSPC
            pytest.skip("no tmpfs here (not root); the simulated case below covers the logic")
        assert _strip(read_results(run_dir)) == _strip(ref_rows)
        assert RunStore(run_dir).verify() == []
    finally:
        if mounted:  # every file on it must be closed by now: a busy mount would be a leak
            assert subprocess.run(["umount", str(mount)]).returncode == 0


def test_disk_full_simulated(reference, tmp_path, monkeypatch, capsys):
    """The same without a tmpfs: ``os.replace`` fails with ENOSPC from the 6th atomic write on."""
    import errno

    config, ref_dir, ref_rows = reference
    real = os.replace
    calls = {"n": 0}

    def full(src, dst):
        calls["n"] += 1
        if calls["n"] >= 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(config), "--out", str(tmp_path / "runs"), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on the device while writing" in err[0] and str(tmp_path) in err[0]
    monkeypatch.setattr(os, "replace", real)
    run_dir = run_experiment(parse_config(BASE, name="trust"), tmp_path / "runs", quiet=True, report=False)
    assert _strip(read_results(run_dir)) == _strip(ref_rows)


USER_METHOD = '''
from typing import ClassVar
from pydantic import Field
from topoprune.cli import main
from topoprune.pruning.methods import ScoreMethod, StructuredMethod, register_method
from topoprune.pruning.selection import filters_to_prune


@register_method("first-units")
class FirstUnits(StructuredMethod):
    """Removes the first units of each layer (a test method with one setting)."""

    summary: ClassVar[str] = "the first units go"
    offset: int = Field(0, ge=0)

    def choose(self, ctx, layer):
        n = int(layer.module.weight.shape[0] * layer.sparsity)
        return list(range(self.offset, self.offset + n))


main()
'''


def test_a_registered_user_method_runs_from_a_yaml_config(tmp_path):
    script = tmp_path / "mine.py"
    script.write_text(USER_METHOD)
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({**BASE, "methods": ["l1", {"name": "first-units", "offset": 1}],
                                      "recovery": {"epochs": 1, "batch_size": 64}}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "methods": [{"name": "first-units", "offset": -1}]}))
    line = _one_line_error(subprocess.run([sys.executable, str(script), "compare", str(bad), "--out",
                                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=120))
    assert "methods[0].offset: bad value -1" in line and not (tmp_path / "runs").exists()
    proc = subprocess.run([sys.executable, str(script), "compare", str(config), "--out", str(tmp_path / "runs"),
                           "--quiet"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    rows = {r["method"]: r for r in read_results(run_dir)}
    assert set(rows) == {"l1", "first-units"}
    kept = json.loads((run_dir / "cells/mnist-conv-w0.25/first-units/s0.5/seed0/prune.json").read_text())
    conv1 = next(x for x in kept["info"]["layers"] if x["name"] == "conv2")
    assert conv1["kept"][0] == 0 and 1 not in conv1["kept"]  # units 1.. went, unit 0 stayed (offset 1)
    assert "| first-units | 0.5 |" in (run_dir / "report.md").read_text().replace("mnist-conv-w0.25 | ", "")
    # worker processes cannot import a class defined in the script: refused up front, one line
    other = tmp_path / "other"
    line = _one_line_error(subprocess.run([sys.executable, str(script), "compare", str(config), "--out", str(other),
                                           "--workers", "2"], capture_output=True, text=True, timeout=120))
    assert "--workers 2: method(s) first-units are defined in the main script" in line and not other.exists()


def test_bad_config_leaves_no_run_folder_and_digests_are_stable(tmp_path):
    from topoprune.experiments.config import load_config

    with pytest.raises(TopopruneError, match=r"seeds\[0\]: bad value True"):
        run_experiment(parse_config({**BASE, "seeds": [True, 1]}), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    # the shipped configs' digests (run folder names) change only on purpose: quickstart's last when
    # recovery.recalibrate_bn (default 50) joined every config (before it:
    # 7d1e7a31180d, which the content without it still gives); the benchmark configs' last when they
    # moved to one network per seed, controls and explicit training settings
    root = Path(__file__).resolve().parents[2] / "configs"
    assert load_config(root / "quickstart.yaml").digest() == "9c93c7c3b3c1"
    assert load_config(root / "fmnist-lenet300-imp.yaml").digest() == "bee366890b5f"
    assert load_config(root / "fmnist-vgg16q-filters.yaml").digest() == "4d5b54b67934"
    assert run_dir_for(load_config(root / "quickstart.yaml"), "runs") == Path("runs/quickstart-9c93c7c3b3c1")
    assert _digest_before_recalibration(load_config(root / "quickstart.yaml")) == "7d1e7a31180d"
    # the table-1 baseline that fmnist-vgg16q-topo-fitness reuses lives in the current run folder
    fitness = yaml.safe_load((root / "fmnist-vgg16q-topo-fitness.yaml").read_text())
    assert "fmnist-vgg16q-filters-4d5b54b67934/baseline/vgg16-w0.25/seed0" in fitness["model"]["checkpoint"]


def _digest_before_recalibration(config) -> str:
    """The digest the config had before issue #15 added ``recovery.recalibrate_bn``: the same
    content without that key (so nothing else in the digest moved)."""
    import hashlib

    data = config.to_dict()
    data["recovery"] = {k: v for k, v in data["recovery"].items() if k != "recalibrate_bn"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


DIGEST_BASE = {"name": "dg", "dataset": "digits", "model": {"name": "mnist-conv", "width": 0.25},
               "train": {"epochs": 2, "lr": 0.1}, "methods": ["l1", {"name": "topological", "population": 6}],
               "sparsities": [0.5], "seeds": [0], "recovery": {"epochs": 2}}


@pytest.mark.parametrize("change, digest", [
    # computed with the dataclass configs of c902654 (before pydantic): apart from the key
    # recovery.recalibrate_bn that issue #15 added to every config, the content is unchanged
    ({}, "ce30720a11b6"),
    ({"recovery": {"epochs": 2, "tolerance": 1}}, "327a11c78936"),
    ({"train": {"lr": 1, "epochs": 2}}, "1c7813dd3511"),
    ({"dataset": {"name": "digits", "val_fraction": 0}}, "d65a35ed721e"),
    ({"methods": [{"name": "betti", "threshold": 2, "samples": 16}]}, "e06bcc6e6a2d"),
    ({"train": {"momentum": 0}}, "b6ecff78461e"),
    ({"model": {"name": "mnist-conv", "width": 1}}, "e1be8817429d"),
    ({"train": {"schedule": "multistep", "milestones": [0.5]}}, "02eaf2a2d1d1"),
    ({"methods": [{"name": "topological", "label": "topo-np", "fitness": "np"}]}, "19112d159db5"),
])
def test_digests_match_the_configs_before_pydantic(change, digest):
    assert _digest_before_recalibration(parse_config({**DIGEST_BASE, **change})) == digest


@pytest.mark.parametrize("recovery, digest", [
    ({"epochs": 2}, "f629a20c1653"),  # the default, 50 batches: the digest every config has now
    ({"epochs": 2, "recalibrate_bn": 50}, "f629a20c1653"),  # written or not, the same cells
    ({"epochs": 2, "recalibrate_bn": 0}, "3225b66deaa9"),  # off: another computation, another folder
])
def test_recalibration_enters_every_digest(recovery, digest):
    cfg = parse_config({**DIGEST_BASE, "recovery": recovery})
    assert cfg.digest() == digest and parse_config(cfg.to_dict()) == cfg


def test_imp_trajectory_files_are_sealed_and_repairable(tmp_path):
    """IMP with ``fraction``: the trajectory shared by a seed's cells is in the manifest; a
    changed round checkpoint is named, and --repair redoes the trajectory and its cells."""
    data = {**BASE, "model": {"name": "mnist-fc", "width": 0.25}, "sparsities": [0.5, 0.75],
            "methods": [{"name": "imp", "rounds": 2, "fraction": 0.5, "epochs": 1}]}
    config = tmp_path / "traj.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "runs"
    assert _cli("compare", config, "--out", out, "--quiet").returncode == 0
    run_dir = next(out.iterdir())
    rows = read_results(run_dir)
    sealed = RunStore(run_dir).manifest()
    traj = "trajectories/mnist-fc-w0.25/imp/seed0"
    assert f"{traj}/imp.json" in sealed and f"{traj}/round02/checkpoint.pt" in sealed
    ckpt = run_dir / traj / "round01/checkpoint.pt"
    _flip(ckpt)
    assert f"{traj}/round01/checkpoint.pt (changed)" in _one_line_error(_cli("compare", config, "--out", out, "--quiet"))
    assert _cli("compare", config, "--out", out, "--quiet", "--repair").returncode == 0
    assert _strip(read_results(run_dir)) == _strip(rows)
    assert RunStore(run_dir).verify() == []


def test_cell_workers_die_with_the_run(tmp_path):
    """SIGKILL the run while two cell workers train: they must not go on writing a folder whose
    lock is gone (``PR_SET_PDEATHSIG``)."""
    import signal

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump({**BASE, "methods": ["l1", "l2", "fpgm", "random"], "seeds": [0, 1],
                                      "recovery": {"epochs": 30, "batch_size": 16}}))
    run = subprocess.Popen([sys.executable, "-m", "topoprune.cli", "compare", str(config), "--out",
                            str(tmp_path / "runs"), "--quiet", "--workers", "2"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})

    def children() -> list[int]:
        """The run's cell workers (spawned pool processes; not multiprocessing's resource tracker)."""
        found = subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True).stdout
        pids = [int(x) for x in found.split()]
        return [p for p in pids if b"spawn_main" in open(f"/proc/{p}/cmdline", "rb").read()]

    def alive(pid: int) -> bool:
        try:
            return open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z"
        except OSError:
            return False

    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/cells/*/*/*/seed*")):
        time.sleep(0.2)  # cells have started in the workers
    workers = children()
    assert len(workers) >= 2, workers
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(alive(p) for p in workers)


@pytest.mark.slow
def test_ctrl_c_stops_a_run_with_workers_in_one_line_and_it_resumes(tmp_path):
    """Ctrl-C reaches the whole process group, as a terminal sends it: the run stops with
    "aborted" and exit code 130, idle and busy workers alike print no traceback, no process is
    left, and the same command then finishes the run."""
    import signal

    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump({**BASE, "methods": ["l1", "l2", "fpgm", "random"], "seeds": [0, 1],
                                      "recovery": {"epochs": 3, "batch_size": 16}}))
    command = [sys.executable, "-m", "topoprune.cli", "compare", str(config), "--out", str(tmp_path / "runs"),
               "--quiet", "--workers", "2"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/cells/*/*/*/seed*")):
        time.sleep(0.2)  # cells have started in the workers
    os.killpg(run.pid, signal.SIGINT)
    err = run.communicate(timeout=120)[1]
    assert run.returncode == 130 and err.strip() == "topoprune: aborted", err
    deadline = time.time() + 20
    while time.time() < deadline and subprocess.run(["pgrep", "-g", str(run.pid)]).returncode == 0:
        time.sleep(0.2)
    assert subprocess.run(["pgrep", "-g", str(run.pid)]).returncode == 1  # no worker outlives the run
    done = _cli("compare", config, "--out", tmp_path / "runs", "--quiet")
    assert done.returncode == 0, done.stderr
    run_dir = next((tmp_path / "runs").glob("trust-*"))
    assert len(read_results(run_dir)) == 8 and RunStore(run_dir).verify() == []
