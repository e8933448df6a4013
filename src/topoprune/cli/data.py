"""``topoprune data list`` and ``topoprune data fetch``: the datasets available locally, and
downloading the official files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import TopopruneError
from .app import app
from .common import check_folder, check_out, console
from .options import NoProgressBarOption


data_app = typer.Typer(help="Datasets: list what is available locally, fetch the official files.",
                       no_args_is_help=True, rich_markup_mode=None)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list_cmd(
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder to look in first.")] = None,
) -> None:
    """Show each dataset, whether it is available locally, and where."""
    from ..data import dataset_info, list_datasets, locate

    check_folder("--data-root", data_root)

    table = Table(title="topoprune datasets")
    for col in ("name", "shape", "classes", "available", "where / how to get it"):
        table.add_column(col)
    for name in list_datasets():
        info = dataset_info(name)
        where = "embedded (scikit-learn)" if name == "digits" else locate(name, data_root)
        table.add_row(name, "x".join(map(str, info.shape)), str(info.num_classes),
                      "yes" if where else "no", str(where) if where else info.how_to_get)
    console.print(table)


@data_app.command("fetch")
def data_fetch_cmd(
    name: Annotated[str, typer.Argument(help="Dataset to download.")],
    root: Annotated[Optional[Path], typer.Option("--root", help="Download into ROOT/NAME (default ~/.cache/topoprune/NAME).")] = None,
    mirror: Annotated[Optional[str], typer.Option("--mirror", help="Base URL serving the same file names.")] = None,
    quiet: NoProgressBarOption = False,
) -> None:
    """Download a dataset's official files, verifying each checksum."""
    from urllib.parse import urlsplit

    from ..data import dataset_info, fetch

    dataset_info(name)  # an unknown name first, with its did-you-mean
    if root is not None:
        check_out("--root", root)
    if mirror is not None:
        url = urlsplit(mirror)
        if url.scheme not in ("http", "https", "ftp", "file") or (url.scheme != "file" and not url.netloc):
            raise TopopruneError(f"--mirror {mirror!r} is not a URL; allowed: an http(s)://, ftp:// or "
                                 "file:// base URL serving the same file names")

    dest = fetch(name, root, progress=not quiet, mirror=mirror)
    console.print(f"{name}: checksums verified; files in {dest}")
