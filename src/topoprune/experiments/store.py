"""The run folder as a store you can trust: a lock, a manifest of checksums, atomic writes and a
results file that heals itself.

- **Lock.** ``run.lock`` is held (``fcntl.flock``) while a run writes; a second run on the same
  folder is refused naming the holder (pid, host, start time). The kernel drops the lock when its
  process dies, even by SIGKILL, so a lock left behind by a killed run is simply taken over.
- **Manifest.** ``manifest.jsonl`` records each finished stage's files with their sha256
  (one JSON line per file, appended under a lock, so cells in parallel processes can seal their
  own stages; the last line for a path wins). :meth:`RunStore.verify` reports every changed,
  truncated or missing file by path; :meth:`RunStore.invalidate` removes a stage's files so the
  runner redoes it (``topoprune compare --repair``, ``topoprune study damage --repair``).
- **Results.** ``results.jsonl`` is a view of the cells' ``row.json`` files: a half-written or
  damaged line is dropped and rebuilt from its cell, and rows are unique by key.
- **Errors.** A damaged JSON file or a full disk is one line naming the path, never a traceback;
  the files already written stay consistent (every write is a temp file + rename), so the same
  command resumes once the cause is fixed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TopopruneError
from ..train.checkpoint import atomic_save, atomic_write_bytes
from .row import Row, row_key

__all__ = ["RunStore", "Damage", "RunLocked", "read_results", "run_log", "close_run_log", "disk_full", "run_session",
           "RESULTS", "MANIFEST", "PACKAGES", "package_versions"]

RESULTS = "results.jsonl"
MANIFEST = "manifest.jsonl"
LOCK = "run.lock"
REPAIR_HINT = "rerun the same command (`topoprune compare` or `topoprune study damage`) with --repair to redo what depends on it"


class RunLocked(TopopruneError):
    """Another live process is writing this run folder."""


@dataclass(frozen=True)
class Damage:
    """A sealed file that no longer matches the manifest."""

    path: str  # relative to the run folder
    stage: str
    reason: str  # "changed", "truncated", "missing"


def disk_full(exc: OSError, where: Path | str) -> TopopruneError | None:
    """The one-line error for a full disk (or quota), else ``None``."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    return TopopruneError(f"no space left on the device while writing {exc.filename or where}: free some "
                          "space and rerun the same command; every finished stage is kept")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json_file(path: Path, what: str = "file") -> Any:
    """Parsed JSON, ``None`` if absent; a damaged file is a one-line error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise TopopruneError(f"{what} {path} is damaged (not UTF-8 text); {REPAIR_HINT}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TopopruneError(f"{what} {path} is damaged ({exc.msg} at line {exc.lineno}); {REPAIR_HINT}") from None


class RunStore:
    """One run folder: paths, atomic writes, the lock, the manifest and the results file."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # --- files --------------------------------------------------------------------------------

    def path(self, rel: str | Path) -> Path:
        return self.root / rel

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def read_json(self, rel: str | Path) -> Any:
        """Parsed JSON of a file in the run folder, ``None`` if absent (damaged: one line)."""
        return read_json_file(self.path(rel))

    # Writes are atomic (temp file + rename); an OSError names its file, and the runner turns a
    # full disk into one line (:func:`disk_full`) wherever in a run it happens.

    def write_json(self, rel: str | Path, obj: Any) -> Path:
        return self.write_bytes(rel, (json.dumps(obj, indent=2) + "\n").encode())

    def write_bytes(self, rel: str | Path, data: bytes) -> Path:
        atomic_write_bytes(self.path(rel), data)
        return self.path(rel)

    def save_torch(self, rel: str | Path, obj: Any) -> Path:
        atomic_save(obj, self.path(rel))
        return self.path(rel)

    # --- lock ---------------------------------------------------------------------------------

    @contextmanager
    def locked(self, command: str = "") -> Iterator[dict | None]:
        """Hold the run folder's lock; yields what a previous, dead holder left (or None)."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(LOCK)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _live_holder(path)
            os.close(fd)
            who = (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
                   if holder else "another process")
            raise RunLocked(f"run folder {self.root} is in use by {who}; wait for it to finish, or "
                            "use another --out") from None
        previous = _holder(path)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": command}
        data = (json.dumps(me) + "\n").encode()
        os.pwrite(fd, data, 0)  # overwrite, then cut: a reader never sees the file empty
        os.ftruncate(fd, len(data))
        try:
            yield previous or None
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # --- manifest -----------------------------------------------------------------------------

    def seal(self, stage: str, paths: Iterable[str | Path]) -> None:
        """Record the sha256 of every file under ``paths`` (files or folders, relative) as the
        finished output of ``stage``."""
        lines = []
        for rel in paths:
            for f in self._files(rel):  # temp files of an atomic write (".name.tmp") are skipped
                lines.append({"path": self.rel(f), "sha256": sha256(f), "size": f.stat().st_size, "stage": stage})
        self._append_manifest(lines)

    def finish(self, stage: str, marker: str, record: Any, paths: Iterable[str | Path]) -> None:
        """End a stage: seal its files, then write its marker (the JSON record whose presence
        says "done") and seal that too. A kill before the marker leaves the stage to be redone;
        a kill after it leaves a sealed, verifiable stage."""
        paths = [p for p in paths if str(p) != marker]
        self.seal(stage, paths)
        self.write_json(marker, record)
        self.seal(stage, [marker])

    def done(self, stage: str, marker: str, paths: Iterable[str | Path], known: dict | None = None) -> Any:
        """The stage's record if it finished, else ``None``. A marker that is there but not in
        the manifest (a folder from before manifests, or a kill between the marker and its seal)
        has its files sealed now, so from here on they are verified. ``known``: the manifest,
        when the caller has read it already."""
        record = self.read_json(marker)
        if record is not None:
            known = self.manifest() if known is None else known
            unsealed = [r for p in [*paths, marker] for r in map(self.rel, self._files(p)) if r not in known]
            if unsealed:
                self.seal(stage, unsealed)
        return record

    def _files(self, rel: str | Path) -> list[Path]:
        p = self.path(rel)
        if p.is_dir():
            return sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith("."))
        return [p] if p.is_file() else []

    def _append_manifest(self, entries: list[dict]) -> None:
        if not entries:
            return
        import fcntl

        data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()
        path = self.path(MANIFEST)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a line cut short by an earlier failure stays apart
            view = memoryview(data)
            while view:  # a short write (a nearly full disk) must not seal half a line
                written = os.write(fd, view)
                if written == 0:
                    raise OSError(errno.ENOSPC, "No space left on device", str(path))
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def manifest(self) -> dict[str, dict]:
        """Path -> its latest entry (removed paths left out). A half-written line is skipped."""
        out: dict[str, dict] = {}
        try:
            text = self.path(MANIFEST).read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                path = entry["path"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            if entry.get("removed"):
                out.pop(path, None)
            else:
                out[path] = entry
        return out

    def verify(self) -> list[Damage]:
        """Every sealed file whose content no longer matches its checksum."""
        damaged = []
        for rel, entry in self.manifest().items():
            p = self.path(rel)
            if not p.is_file():
                damaged.append(Damage(rel, entry["stage"], "missing"))
            elif p.stat().st_size != entry["size"]:
                damaged.append(Damage(rel, entry["stage"], "truncated" if p.stat().st_size < entry["size"] else "changed"))
            elif sha256(p) != entry["sha256"]:
                damaged.append(Damage(rel, entry["stage"], "changed"))
        return damaged

    def claim_config(self, config: dict, *, repair: bool = False) -> list[Damage]:
        """Bind the run folder to ``config`` (a validated config's plain dict) and check it: refuse
        a folder that holds another config, write and seal ``config.json`` when it is missing (or,
        with ``repair``, damaged: it is derived from the config, so rewriting it loses nothing),
        and return the artefacts that still do not match the manifest."""
        try:
            saved = self.read_json("config.json")
        except TopopruneError:
            if not repair:
                raise
            saved = None
        if saved is not None and saved != config:
            raise TopopruneError(f"{self.root} holds another config; remove it or use another --out")
        damaged = self.verify()
        if saved is None or (repair and any(d.stage == "config" for d in damaged)):
            self.write_json("config.json", config)
            self.seal("config", ["config.json"])
            damaged = [d for d in damaged if d.stage != "config"]
        return damaged

    def invalidate(self, stage: str, paths: Iterable[str | Path] = ()) -> list[str]:
        """Remove a stage's sealed files and ``paths`` so it is redone; returns what went."""
        gone = []
        for rel, entry in self.manifest().items():
            if entry["stage"] == stage:
                self.path(rel).unlink(missing_ok=True)
                gone.append(rel)
        for rel in paths:
            p = self.path(rel)
            if p.is_dir():
                shutil.rmtree(p)
                gone.append(str(rel))
            elif p.exists():
                p.unlink()
                gone.append(str(rel))
        self._append_manifest([{"path": r, "removed": True} for r in gone])
        return gone

    # --- results ------------------------------------------------------------------------------

    def cell_rows(self) -> dict[tuple, dict]:
        """Every readable ``row.json`` under ``cells/``, by key."""
        rows = {}
        for p in sorted(self.path("cells").rglob("row.json")):
            try:
                row = Row.model_validate(read_json_file(p, "row")).to_dict()
            except Exception:  # noqa: BLE001 - a damaged row is redone by --repair, not read
                continue
            rows[row_key(row)] = row
        return rows

    def read_results(self) -> list[dict]:
        """The result rows. ``results.jsonl`` is a view of the cells' ``row.json`` files: where
        cells exist, they alone decide (a half-written, duplicated or stale line cannot reach a
        report); a folder without cells (an exported copy) is read from the file, dropping lines
        that are not whole, valid rows and keeping each key once."""
        cells = self.cell_rows()
        rows: dict[tuple, dict] = {}
        try:
            text = self.path(RESULTS).read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            try:  # a line that is not a whole, valid row is dropped (its cell's row.json restores it)
                row = Row.model_validate(json.loads(line)).to_dict()
            except (ValueError, TypeError):
                continue
            rows[row_key(row)] = row
        if not cells:
            return list(rows.values())
        # the cells decide which rows exist; the file (written in config order) their order
        order = [k for k in rows if k in cells] + [k for k in cells if k not in rows]
        return [cells[k] for k in order]

    def write_results(self, rows: list[dict]) -> None:
        self.write_bytes(RESULTS, "".join(json.dumps(r) + "\n" for r in rows).encode())


@contextmanager
def run_session(store: RunStore, command: str) -> Iterator[dict | None]:
    """One run on a folder: hold its lock (yielding what :meth:`RunStore.locked` yields), turn a
    full disk into one line, and close the folder's log afterwards, however the run ends."""
    try:
        with store.locked(command=command) as previous:
            yield previous
    except OSError as exc:
        full = disk_full(exc, store.root)
        if full is not None:
            raise full from None
        raise
    finally:
        close_run_log(store.root)


PACKAGES = ("topoprune", "torch", "torch-pruning", "numpy", "scipy", "numba")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` ("not installed" for a missing one), for the records
    of run folders and benchmarks (every number names the software that made it)."""
    from importlib import metadata

    out = {}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def run_log(run_dir: str | Path):
    """The run's logger, writing ``log.txt`` in the run folder (one handler per process)."""
    import logging

    run_dir = Path(run_dir)
    log = logging.getLogger(f"topoprune.run.{run_dir.resolve()}")
    if not log.handlers:
        handler = logging.FileHandler(run_dir / "log.txt")
        handler.handleError = lambda record: None  # a log line that cannot be written is not an artefact
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def close_run_log(run_dir: str | Path) -> None:
    """Close the run log's file (a library run must not keep files open after it returns)."""
    import logging

    log = logging.getLogger(f"topoprune.run.{Path(run_dir).resolve()}")
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def _live_holder(path: Path, *, wait: float = 2.0) -> dict:
    """Who holds a lock we were just refused. The holder writes its name right after taking the
    lock, so a refusal in that instant can read an empty file or the record of a dead previous
    holder; wait briefly for a record whose process is alive here (another host's: taken as is)."""
    deadline = time.monotonic() + wait
    while True:
        holder = _holder(path)
        if holder and (holder.get("host") != socket.gethostname() or _alive(holder.get("pid"))):
            return holder
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.02)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def read_results(run_dir: str | Path) -> list[dict]:
    """The result rows of a run folder (see :meth:`RunStore.read_results`)."""
    return RunStore(run_dir).read_results()
