"""Where dataset files are found, and how they are downloaded.

Search order for a dataset's files: the explicit ``root`` (``--data-root``), ``$TOPOPRUNE_DATA``,
``~/.cache/topoprune/<name>``, then well-known system paths (Debian's ``dataset-fashion-mnist``
installs to ``/usr/share/datasets/fashion-mnist/``). A root may hold the files directly or in a
``<name>/`` subfolder.

Downloads stream to a temporary file beside the target with a progress bar, check the official
MD5, and only then rename into place: a corrupt or interrupted download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from ..errors import TopopruneError

__all__ = ["RemoteFile", "search_roots", "download_file", "ChecksumError"]


class ChecksumError(TopopruneError):
    """A downloaded file did not match its published checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One official file: where it is served and its published MD5."""

    filename: str
    url: str
    md5: str


def search_roots(name: str, root: str | Path | None = None, system: Sequence[str] = ()) -> list[Path]:
    """The directories to look in, in order (see the module docstring)."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root).expanduser())
    env = os.environ.get("TOPOPRUNE_DATA")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(default_cache(name).parent)
    out: list[Path] = []
    for r in roots:
        out += [r / name, r]
    out += [Path(s) for s in system]
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def default_cache(name: str) -> Path:
    """``~/.cache/topoprune/<name>`` (honouring ``$XDG_CACHE_HOME``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "topoprune" / name


def download_file(url: str, dest: str | Path, md5: str | None, *, progress: bool = True,
                  timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``md5``.

    The bytes go to a temporary file in ``dest``'s folder; on a checksum mismatch or any error
    it is deleted and nothing is left at ``dest``.

    Raises:
        ChecksumError: the file's MD5 differs from ``md5``.
        TopopruneError: the server could not be reached or answered with an error.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), disable=not progress, transient=True,
            ) as bar:
                task = bar.add_task(dest.name, total=total)
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.advance(task, len(chunk))
        digest = h.hexdigest()
        if md5 is not None and digest != md5:
            raise ChecksumError(
                f"checksum mismatch for {dest.name} from {url}: got md5 {digest}, expected {md5}; "
                "the download was deleted"
            )
        os.replace(tmp, dest)
        return dest
    except (urllib.error.URLError, OSError) as exc:
        raise TopopruneError(f"could not download {url}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def extract_tar(archive: Path, dest_dir: Path, member_root: str) -> Path:
    """Extract ``member_root/`` from a tar archive into ``dest_dir`` atomically (extract to a
    temporary folder, then rename)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract.", dir=dest_dir))
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(member_root)]
            tar.extractall(tmp, members=members, filter="data")
        final = dest_dir / member_root
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp / member_root, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
