"""``topoprune models`` and ``topoprune methods``: what the model and method registries hold."""

from __future__ import annotations

import json

from rich.table import Table

from .app import app
from .common import console
from .options import JsonOption


@app.command("models")
def models_cmd(as_json: JsonOption = False) -> None:
    """List the model registry with default input shapes and parameter counts."""
    from ..models import create_model, list_models, model_defaults

    rows = []
    for name in list_models():
        c, (h, w), desc = model_defaults(name)
        params = sum(p.numel() for p in create_model(name).parameters())
        rows.append({"name": name, "input_shape": [c, h, w], "params": params, "description": desc})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="topoprune models (10 classes, width 1)")
    for col in ("name", "input", "params", "description"):
        table.add_column(col, justify="right" if col == "params" else "left")
    for r in rows:
        table.add_row(r["name"], "x".join(map(str, r["input_shape"])), f"{r['params']:,}", r["description"])
    console.print(table)


@app.command("methods")
def methods_cmd(as_json: JsonOption = False) -> None:
    """List the registered pruning methods and allocations (per-layer budgets under --target), their
    kind and their settings (the config keys)."""
    from ..pruning.allocation import ALLOCATIONS
    from ..pruning.methods import METHODS

    rows = [{"name": name, "kind": "structured" if cls.structured else "unstructured",
             "settings": {f: (info.description or "") for f, info in cls.model_fields.items()},
             "summary": cls.summary} for name, cls in METHODS.items()]
    if as_json:  # methods only, as always (allocations: topoprune.pruning.allocation.list_allocations())
        print(json.dumps(rows, indent=2))
        return
    rows += [{"name": name, "kind": "allocation",
              "settings": {f: (info.description or "") for f, info in cls.model_fields.items()},
              "summary": cls.summary} for name, cls in ALLOCATIONS.items()]
    table = Table(title="topoprune pruning methods")
    for col in ("name", "kind", "settings", "what it does"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], ", ".join(r["settings"]) or "-", r["summary"])
    console.print(table)
