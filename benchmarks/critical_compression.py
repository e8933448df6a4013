"""Topologically critical compression (Balwani & Krzyston 2022) of every
registry model in both conventions, with the paper's values beside ours where it has the same
setting. The ratio depends on the layer graphs only (edges over spanning-tree size), not on the
weights, so no training is needed.

Run (``make bench`` runs it; seconds):
    python benchmarks/critical_compression.py

Results in ``benchmarks/results/critical_compression.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import topoprune as tp

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

HERE = Path(__file__).parent

# The paper's published values, by (model, input shape): per layer and final.
PAPER = {
    ("mnist-fc", (1, 28, 28)): {"layers": [88.78822, 50.25126, 50.25126, 50.25126, 50.25126, 9.17431],
                                "final": 66.77852},
    ("mnist-conv", (1, 28, 28)): {"layers": [4.19251, 4.19251, 9.99641], "final": 9.31005},
}
# A 3x3 pad-1 conv at 32x32 and at 16x16 (paper convention): every such layer in our models.
PAPER_CONV = {(3, 3, 1, 32): 4.22946, (3, 3, 1, 16): 3.97927}


def _paper_layer_value(layer) -> float | None:
    """The paper's value for a square 3x3, stride-1, pad-1 conv at 32x32 or 16x16, else None."""
    if layer.kind != "conv" or layer.stride != (1, 1) or layer.padding[0] != layer.padding[1]:
        return None
    h, w = layer.require_input_size()
    if h != w:
        return None
    return PAPER_CONV.get((*layer.kernel_size, layer.padding[0], h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    from topoprune.models.introspect import default_input_shape, extract_layers

    models = []
    for name in tp.list_models():
        model = tp.create_model(name)
        shape = tuple(default_input_shape(model))
        layers = extract_layers(model, shape)
        entry = {"model": name, "input_shape": list(shape), "conventions": {}}
        for conv in ("paper", "exact"):
            r = tp.critical_compression(model, shape, convention=conv)
            entry["conventions"][conv] = {"final": r.final,
                                          "layers": [{"name": x.name, "kind": x.kind, "ratio": x.ratio}
                                                     for x in r.layers]}
        paper = PAPER.get((name, shape))
        entry["paper"] = paper
        entry["paper_layers"] = paper["layers"] if paper else [_paper_layer_value(x) for x in layers]
        models.append(entry)
    record = {"command": "python benchmarks/critical_compression.py", **environment(), "seeds": [],
              "models": models}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "critical_compression.json").write_text(json.dumps(record, indent=2) + "\n")
    md = ["# Topologically critical compression of every registry model", "", *provenance_lines(record),
          "Deterministic (no seeds): the ratio depends on the layer graphs only. *paper* = Balwani & "
          "Krzyston's one-channel Toeplitz convention; *exact* = the full multichannel unrolled graph.",
          "", "| model | input | final (paper conv.) | final (exact) | paper's final | layers matching a paper value |",
          "|---|---|---:|---:|---:|---|"]
    for m in models:
        ours = m["conventions"]["paper"]["layers"]
        checks = [(x["ratio"], p) for x, p in zip(ours, m["paper_layers"]) if p is not None]
        agree = sum(abs(a - p) < 1e-4 for a, p in checks)
        md.append(f"| {m['model']} | {'x'.join(map(str, m['input_shape']))} | "
                  f"{m['conventions']['paper']['final']:.5f} | {m['conventions']['exact']['final']:.5f} | "
                  f"{m['paper']['final']:.5f} | " if m["paper"] else
                  f"| {m['model']} | {'x'.join(map(str, m['input_shape']))} | "
                  f"{m['conventions']['paper']['final']:.5f} | {m['conventions']['exact']['final']:.5f} | — | ")
        md[-1] += f"{agree}/{len(checks)} |" if checks else "— |"
    md += ["", "Per layer (paper convention, exact convention, the paper's value where it has one):", ""]
    for m in models:
        md.append(f"- **{m['model']}**: " + "; ".join(
            f"{x['name']} {x['ratio']:.4f} / {y['ratio']:.4f}" + (f" (paper {p:.5f})" if p is not None else "")
            for x, y, p in zip(m["conventions"]["paper"]["layers"], m["conventions"]["exact"]["layers"],
                               m["paper_layers"])))
    (args.out / "critical_compression.md").write_text("\n".join(md) + "\n")
    print("\n".join(md[:12 + len(models)]))


if __name__ == "__main__":
    main()
