"""The documentation site: it builds with ``mkdocs build --strict``, works offline (no style sheet,
script or font from another host), and renders in a browser.

The build (a few seconds) runs in the default suite, where the ``docs`` extra is installed
(``make setup`` installs it); the browser check is slow and needs Debian's ``chromium``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REMOTE = re.compile(r"^\s*(?:https?:)?//", re.I)
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None
                                or importlib.util.find_spec("mkdocstrings_handlers") is None,
                                reason='the docs extra is not installed: pip install -e ".[docs]"')


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out


class _Assets(HTMLParser):
    """The URLs a page loads as a style sheet, script, font or icon, and its inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and a.get("href") and "canonical" not in (a.get("rel") or ""):
            self.urls.append(a["href"])
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def remote_assets(site_dir: Path) -> list[str]:
    """Every ``file: url`` by which a built page (or its CSS) would reach another host."""
    found = []
    for page in sorted(site_dir.rglob("*.html")):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        rel = page.relative_to(site_dir)
        found += [f"{rel}: {u}" for u in parser.urls if REMOTE.match(u)]
        found += [f"{rel}: {u}" for css in parser.styles for u in CSS_URL.findall(css)]
    for sheet in sorted(site_dir.rglob("*.css")):
        found += [f"{sheet.relative_to(site_dir)}: {u}" for u in CSS_URL.findall(sheet.read_text(encoding="utf-8"))]
    return found


def test_the_offline_check_sees_a_remote_font_and_script(tmp_path):
    (tmp_path / "index.html").write_text(
        '<html><head><link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
        '<script src="//cdn.example.org/x.js"></script><style>@import "https://x.org/a.css";</style>'
        '<link rel="stylesheet" href="assets/local.css"></head></html>')
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "local.css").write_text("@font-face{src:url(https://x.org/f.woff2)} a{background:url(img.png)}")
    found = remote_assets(tmp_path)
    assert len(found) == 4, found
    assert not any("local.css" in f and "img.png" in f for f in found)


def test_the_site_builds_strict_and_loads_nothing_from_elsewhere(site):
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    for page in ("index.html", "glossary.html", "guide/prune.html", "guide/analyse.html",
                 "design-notes.html", "changelog.html", "api/pruning.html", "api/analysis.html"):
        assert page in pages, f"{page} not built"
    assert remote_assets(site) == []
    assert "fonts.googleapis" not in (site / "index.html").read_text(encoding="utf-8")


def test_the_api_reference_is_generated_from_the_defining_modules(site):
    pruning = (site / "api" / "pruning.html").read_text(encoding="utf-8")
    analysis = (site / "api" / "analysis.html").read_text(encoding="utf-8")
    assert 'id="topoprune.pruning.filters.prune_filters"' in pruning
    assert 'id="topoprune.pruning.masks.prune_unstructured"' in pruning
    assert 'id="topoprune.analysis.neural_persistence"' in analysis
    # Sphinx roles in docstrings are shown as code, not as ":func:`...`"
    assert not re.search(r":(?:func|class|mod|meth):", pruning + analysis)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(*args: str, profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")   # Chromium refuses to run as root with its sandbox
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs headless Chromium: apt-get install chromium")
@pytest.mark.parametrize("page,headings", [
    ("index.html", ["topoprune", "Install", "A first look", "Where to go next"]),
    ("api/pruning.html", ["Pruning", "topoprune.pruning.filters", "prune_filters", "prune_unstructured"]),
])
def test_pages_render_in_a_browser(site, tmp_path, page, headings):
    url = (site / page).as_uri()
    shot = tmp_path / "page.png"
    proc = _browser("--window-size=1280,900", f"--screenshot={shot}", url, profile=tmp_path / "profile")
    assert shot.is_file(), proc.stderr[-2000:]
    assert _png_size(shot) == (1280, 900)
    assert shot.stat().st_size > 20_000, "a blank page"   # text, navigation and colours, not one flat colour

    proc = _browser("--dump-dom", url, profile=tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = re.sub(r"<[^>]+>", " ", " ".join(re.findall(r"<h[1-3][^>]*>(.*?)</h[1-3]>", proc.stdout, flags=re.S)))
    for heading in headings:
        assert heading in text, f"{heading!r} not among the headings of {page}: {' '.join(text.split())[:500]}"
