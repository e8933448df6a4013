"""The run store's manifest under hostile conditions: short writes and a cut-off last line."""

from __future__ import annotations

import os

from topoprune.experiments.store import RunStore


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
