"""The run store's manifest under hostile conditions: short writes and a cut-off last line."""

from __future__ import annotations

import os

import pytest

from topoprune.experiments.store import RunLocked, RunStore


def test_short_writes_still_append_whole_lines(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    for i in range(3):
        (tmp_path / f"f{i}.bin").write_bytes(bytes([i]) * 100)
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:7])))  # 7 bytes at a time
    store.seal("s", ["f0.bin", "f1.bin", "f2.bin"])
    monkeypatch.setattr(os, "write", real)
    assert sorted(store.manifest()) == ["f0.bin", "f1.bin", "f2.bin"]
    assert store.verify() == []


def test_a_line_cut_off_earlier_does_not_swallow_the_next_entry(tmp_path):
    store = RunStore(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"a")
    (tmp_path / "b.bin").write_bytes(b"b")
    store.seal("s", ["a.bin"])
    with open(tmp_path / "manifest.jsonl", "ab") as f:
        f.write(b'{"path": "half')  # what a failed write left
    store.seal("s", ["b.bin"])
    assert sorted(store.manifest()) == ["a.bin", "b.bin"]
    (tmp_path / "b.bin").write_bytes(b"c")
    assert [(d.path, d.reason) for d in store.verify()] == [("b.bin", "changed")]


def _sealed_damage_folder(root):
    """A damage-study folder's sealed layout: a baseline and two candidates with both stages."""
    store = RunStore(root)
    files = {"baseline/m": ["baseline/m/checkpoint.pt"]}
    for cid in ("a", "b"):
        files[f"candidates/s0.5/{cid}/prune"] = [f"candidates/s0.5/{cid}/candidate.json"]
        files[f"candidates/s0.5/{cid}/measure"] = [f"candidates/s0.5/{cid}/row.json",
                                                   f"candidates/s0.5/{cid}/recovery/checkpoint.pt"]
    for stage, paths in files.items():
        for p in paths:
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            (root / p).write_bytes(p.encode())
        store.seal(stage, paths)
    (root / "results.jsonl").write_text("{}\n")
    (root / "correlations.json").write_text("{}\n")
    return store


def test_damage_repair_redoes_the_candidate_a_damaged_file_belongs_to(tmp_path):
    import logging

    from topoprune.experiments.study.damage import _repair

    store = _sealed_damage_folder(tmp_path)
    (tmp_path / "candidates/s0.5/a/recovery/checkpoint.pt").write_bytes(b"tampered")
    _repair(store, store.verify(), logging.getLogger("test"))
    assert not (tmp_path / "candidates/s0.5/a").exists()  # its choice and its recovery go together
    assert (tmp_path / "candidates/s0.5/b/row.json").is_file() and (tmp_path / "baseline/m/checkpoint.pt").is_file()
    assert not (tmp_path / "results.jsonl").exists() and not (tmp_path / "correlations.json").exists()  # derived
    assert store.verify() == [] and not any(p.startswith("candidates/s0.5/a") for p in store.manifest())


def test_damage_repair_of_the_baseline_takes_every_candidate(tmp_path):
    import logging

    from topoprune.experiments.study.damage import _repair

    store = _sealed_damage_folder(tmp_path)
    unsealed = tmp_path / "candidates/s0.5/c/candidate.json"  # written, killed before its seal
    unsealed.parent.mkdir(parents=True)
    unsealed.write_text("{}")
    (tmp_path / "baseline/m/checkpoint.pt").unlink()
    _repair(store, store.verify(), logging.getLogger("test"))
    assert not (tmp_path / "baseline/m").exists() and not (tmp_path / "candidates/s0.5/a").exists()
    assert not (tmp_path / "candidates/s0.5/b").exists() and not unsealed.exists()
    assert store.manifest() == {} and store.verify() == []


def test_a_refusal_in_the_holders_first_instant_waits_for_its_name(tmp_path):
    """The lock is taken before the holder writes its name; a refusal in between (an empty file,
    or the record of a dead earlier holder) waits briefly for the live holder's record."""
    import json
    import socket
    import subprocess
    import sys
    import threading

    from topoprune.experiments.store import _live_holder

    lock = tmp_path / "run.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    lock.write_text(json.dumps({"pid": dead.pid, "host": here}))
    assert _live_holder(lock, wait=0.1) == {}  # a dead holder's record is never named
    me = {"pid": os.getpid(), "host": here, "started": "now"}
    timer = threading.Timer(0.2, lambda: lock.write_text(json.dumps(me)))
    timer.start()
    assert _live_holder(lock, wait=5.0) == me  # the live holder's record, once written
    timer.join()
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    assert _live_holder(lock, wait=0.1)["host"] == "elsewhere"  # another host's pid is not checked here


def test_the_lock_names_its_holder_while_held(tmp_path):
    store = RunStore(tmp_path)
    with store.locked("first"):
        with pytest.raises(RunLocked, match=f"in use by pid {os.getpid()} on "):
            with RunStore(tmp_path).locked("second"):
                pass
    assert (tmp_path / "run.lock").read_text() == ""
