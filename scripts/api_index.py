"""Write the table of docs/api/index.md from ``topoprune.__all__``: every public name, the module
that defines it, and the API page that documents that module. Run after changing the public API:

    python scripts/api_index.py

``tests/e2e/test_docs_site.py`` checks that the page is what this script writes.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "docs" / "api" / "index.md"
BEGIN, END = "<!-- api-table: begin (scripts/api_index.py) -->", "<!-- api-table: end -->"


def pages() -> dict[str, str]:
    """Module -> the API page that renders it (``::: module``)."""
    out = {}
    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        for module in re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), flags=re.M):
            out[module] = page.name
    return out


def defining_module(name: str) -> str:
    import topoprune as tp

    obj = getattr(tp, name)
    if inspect.ismodule(obj):
        return obj.__name__
    return getattr(obj, "__module__", None) or tp._EXPORTS[name]


def table() -> str:
    import topoprune as tp

    where = pages()
    rows: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name in tp.__all__:
        if name == "__version__":
            continue
        module = defining_module(name)
        page = where.get(module)
        if page is None:
            raise SystemExit(f"topoprune.{name} is defined in {module}, which no page of docs/api renders "
                             "(add '::: {module}' to one)")
        rows[(page, module)].append(name)
    lines = ["| `topoprune.` name | defined in | page |", "| --- | --- | --- |"]
    for (page, module), names in sorted(rows.items()):
        title = page.removesuffix(".md").replace("-", " ").capitalize()
        lines.append(f"| {', '.join(f'`{n}`' for n in sorted(names))} | `{module}` | [{title}]({page}) |")
    return "\n".join(lines)


def render() -> str:
    text = INDEX.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{table()}\n{END}"
    if BEGIN in text:
        return re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    return text.rstrip("\n") + "\n\n" + block + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    INDEX.write_text(render(), encoding="utf-8")
    print(f"wrote {INDEX.relative_to(ROOT)}")
