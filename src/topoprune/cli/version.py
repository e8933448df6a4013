"""``topoprune version``."""

from __future__ import annotations

from .._version import __version__
from .app import app


@app.command("version")
def version_cmd() -> None:
    """Print the topoprune version."""
    print(__version__)
