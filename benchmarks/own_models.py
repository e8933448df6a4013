"""topoprune beside torch-pruning on models neither library wrote, in one run.

The architectures are those of ``tests/e2e/test_architectures.py`` (defined once, in
``tests/e2e/architectures.py``): a ResNet-18 with option-B shortcuts, MobileNetV2 inverted
residual blocks, DenseNet concatenation, an SE-ResNet, and tiny Hugging Face BERT, ViT and GPT-2
built from configs (random weights). Both libraries get the same model, the same example inputs,
and the same settings: structured, uniform (every layer loses the same fraction), L1 magnitude,
sparsity 0.5, the first layer and the classifier left alone.

- topoprune: ``prune_filters(model, x, method="l1", sparsity=0.5, inplace=True)`` (its own
  MAC/FLOP counting included, as a user pays it).
- torch-pruning: ``MetaPruner(model, x, importance=MagnitudeImportance(p=1), pruning_ratio=0.5,
  ignored_layers=[first layer, classifier])`` then ``step()``; for transformers also
  ``num_heads={q/k/v layer: heads}, prune_num_heads=True, prune_head_dims=False,
  head_pruning_ratio=0.5``, the embeddings among the ignored layers (so the residual stream stays,
  as topoprune leaves it), and afterwards the head counts written back into the attention
  modules by hand, as torch-pruning's transformer examples do.

Parameters (tied weights once) and MACs (NNI's rule) are counted by ``topoprune.metrics`` on the
same example inputs for both, so the units match. Prune time: each library prunes a fresh copy,
alternating, ``--repeats`` times; the table gives the median and the ratio ours / theirs measured
in this run (speed is only ever a ratio of the same run). "works": the pruned model runs on the
example inputs with the original's output shape; otherwise the one-line error. GPT-2 gets a
second torch-pruning row with ``use_cache=False`` added to its inputs, the first thing a user would
try after the plain call fails (topoprune does this itself while tracing).

Run from the repository root: ``python benchmarks/own_models.py`` (about 30 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the architectures live beside the tests that use them

import torch_pruning as tpr  # noqa: E402

import topoprune as tp  # noqa: E402
from tests.e2e.architectures import ARCHS, logits  # noqa: E402
from topoprune.metrics import count_macs, count_parameters  # noqa: E402

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

RESULTS = Path(__file__).parent / "results"
# layers both libraries leave alone: the first layer and the classifier (and, for transformers,
# the embeddings, whose width is the residual stream)
IGNORED = {
    "resnet18b": ["stem", "fc"],
    "mobilenetv2": ["stem.0", "classifier"],
    "densenet": ["stem", "classifier"],
    "se_resnet": ["stem", "fc"],
    "bert": ["bert.embeddings.word_embeddings", "bert.embeddings.position_embeddings",
             "bert.embeddings.token_type_embeddings", "classifier"],
    "vit": ["vit.embeddings.patch_embeddings.projection", "classifier"],
    "gpt2": ["transformer.wte", "transformer.wpe", "lm_head"],
}
NO_CACHE = "torch-pruning, use_cache=False"
QKV = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"), ("c_attn",))
HEAD_ATTRS = ("num_attention_heads", "num_heads")


def run(model: nn.Module, x) -> torch.Tensor:
    with torch.no_grad():
        return logits(model(**x) if isinstance(x, dict) else model(x))


def one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {text}".replace("|", "/")


def attention_modules(model: nn.Module) -> list[tuple[nn.Module, str, list[nn.Module]]]:
    """(module, head attribute, q/k/v layers) of each attention module."""
    found = []
    for m in model.modules():
        attr = next((a for a in HEAD_ATTRS if isinstance(getattr(m, a, None), int)), None)
        if attr is None:
            continue
        for names in QKV:
            if all(isinstance(getattr(m, n, None), nn.Module) for n in names):
                found.append((m, attr, [getattr(m, n) for n in names]))
                break
    return found


def prune_topoprune(model: nn.Module, x) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned, _ = tp.prune_filters(model, x, method="l1", sparsity=0.5, inplace=True)
    return pruned


def prune_torch_pruning(model: nn.Module, x, arch, *, no_cache: bool = False) -> nn.Module:
    if no_cache:  # a decoder's key/value cache is a tuple torch-pruning cannot trace through
        x = {**x, "use_cache": False}
    modules = dict(model.named_modules())
    ignored = [modules[n] for n in IGNORED[arch.name]]
    kwargs = {}
    attention = attention_modules(model) if arch.transformer else []
    if attention:
        kwargs = dict(num_heads={p: getattr(m, attr) for m, attr, qkv in attention for p in qkv},
                      prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tpr.pruner.MetaPruner(model, x, importance=tpr.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=0.5, ignored_layers=ignored, **kwargs)
        pruner.step()
    for m, attr, qkv in attention:  # torch-pruning leaves the head counts to its user
        heads = pruner.num_heads[qkv[0]]
        old = getattr(m, attr)
        for width in ("all_head_size", "split_size"):
            if isinstance(getattr(m, width, None), int) and getattr(m, width) % old == 0:
                setattr(m, width, getattr(m, width) // old * heads)
        setattr(m, attr, heads)
    return model


def measure(arch, library: str) -> dict:
    """Prune a fresh model once with ``library``; its counts, time and whether it works."""
    model, x = arch.build(), arch.example()
    shape = tuple(run(model, x).shape)
    params0, macs0 = count_parameters(model)[0], count_macs(model, example_inputs=x)
    row = {"architecture": arch.name, "library": library, "params": [params0, None], "macs": [macs0, None],
           "seconds": [], "works": False, "error": None, "note": ""}
    t0 = time.perf_counter()
    try:
        if library == "topoprune":
            pruned = prune_topoprune(model, x)
        else:
            pruned = prune_torch_pruning(model, x, arch, no_cache=library == NO_CACHE)
    except Exception as exc:  # noqa: BLE001 - a failure is a result here
        row["error"] = one_line(exc)
        return row
    row["seconds"] = [time.perf_counter() - t0]
    try:
        out = run(pruned.eval(), x)
        if tuple(out.shape) != shape:
            raise RuntimeError(f"output shape {tuple(out.shape)}, expected {shape}")
        row["works"] = True
        row["params"][1] = count_parameters(pruned)[0]
        row["macs"][1] = count_macs(pruned, example_inputs=x)
        if row["params"][1] == params0:
            row["note"] = "nothing pruned"
    except Exception as exc:  # noqa: BLE001
        row["error"] = "pruned model: " + one_line(exc)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="prunes per library and architecture (median)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for arch in ARCHS:
        # one untimed prune each first: one-off costs (imports, first tracing) are not the method's
        libraries = ("topoprune", "torch-pruning") + ((NO_CACHE,) if arch.name == "gpt2" else ())
        for lib in libraries:
            measure(arch, lib)
        pair = {lib: {"seconds": []} for lib in libraries}
        for _ in range(args.repeats):  # alternate, so drift in machine load hits both alike
            for lib in pair:
                r = measure(arch, lib)
                pair[lib] = {**r, "seconds": pair[lib]["seconds"] + r["seconds"]}
        for lib, r in pair.items():
            r["median_s"] = statistics.median(r["seconds"]) if r["seconds"] else None
            rows.append(r)
            print(json.dumps(r), flush=True)
    record = {"command": f"python benchmarks/own_models.py --repeats {args.repeats}", "seed": 0,
              "torch_threads": 1,
              **environment(("topoprune", "torch", "torch-pruning", "transformers", "numpy")),
              "sparsity": 0.5, "method": "l1, structured, uniform", "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "own_models.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "own_models.md").write_text("\n".join(markdown(record)) + "\n")
    print("\n".join(markdown(record)))


def markdown(record: dict) -> list[str]:
    lines = ["# topoprune and torch-pruning on models neither wrote", "",
             *provenance_lines(record, ", torch threads 1"), "",
             "Structured L1 pruning at sparsity 0.5, uniform, first layer and classifier kept (for "
             "transformers: whole heads, MLP neurons, residual stream kept); see the script's docstring "
             "for each library's exact call. Parameters (tied weights once) and MACs (NNI rule) counted "
             "by `topoprune.metrics` on the same example inputs for both. Prune time: median of "
             f"{len(record['results'][0]['seconds']) or 'no'} alternating runs on one thread; ratio = "
             "topoprune / torch-pruning, same run.", "",
             "| architecture | library | params before | params after | MACs before | MACs after | prune s "
             "| time ratio (ours/theirs) | works |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    by = {(r["architecture"], r["library"]): r for r in record["results"]}
    for r in record["results"]:
        ours, theirs = by[(r["architecture"], "topoprune")], by[(r["architecture"], "torch-pruning")]
        ratio = (f"{ours['median_s'] / theirs['median_s']:.2f}"
                 if ours["median_s"] and theirs["median_s"] and r["library"] == "topoprune" else "")
        after = lambda v: f"{v:,}" if v is not None else "-"  # noqa: E731
        works = "works" if r["works"] else f"fails: {r['error']}"
        if r["note"]:
            works += f" ({r['note']})"
        s = f"{r['median_s']:.3f}" if r["median_s"] is not None else "-"
        lines.append(f"| {r['architecture']} | {r['library']} | {r['params'][0]:,} | {after(r['params'][1])} | "
                     f"{r['macs'][0]:,} | {after(r['macs'][1])} | {s} | {ratio} | {works} |")
    return lines


if __name__ == "__main__":
    main()
