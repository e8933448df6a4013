"""``prune_filters`` on architectures topoprune did not write (issue 14, "How we will know it works").

The matrix is architecture x method: a ResNet-18 with option-B shortcuts, MobileNetV2 inverted
residual (depthwise) blocks, DenseNet concatenation, a squeeze-excitation gate, and tiny Hugging
Face BERT, ViT and GPT-2 (random weights from configs), each through l1, fpgm, the topological GA
(kept small) and betti. For each: the pruned model runs on the same inputs with the same output
shape, parameters and MACs fall, the original is untouched, and the pruned model computes exactly
what the original computes with the removed units masked.

Masking, chosen so that the claim is exact for every architecture here: in a copy of the original,
every conv/linear layer's *input* columns that the pruned model no longer has are zeroed. A removed
unit's value may still be computed in the masked model (a removed filter still goes through its
BatchNorm, a removed head still attends), but every path from it to the output passes through a
weighted layer that now multiplies it by zero: channel-wise ops (BatchNorm, ReLU, pooling, the SE
gate's product, a depthwise conv, a residual addition, a concatenation) keep channels apart, and
attention keeps heads apart. Zeroing the removed *outputs* instead is exact only with every
BatchNorm after them zeroed too (a zeroed filter still gets its BatchNorm's shift, and so does the
depthwise conv it feeds), which needs the graph the library itself uses. Which input
columns are gone is read from the pruned weights themselves (each kept column of a pruned layer is
found, bit for bit, in the original), and which output rows are gone from ``info.layers[i].kept``,
so a record that names the wrong units fails too.
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import topoprune as tp

from .architectures import ARCHS, TRANSFORMERS, HeadFirst, get, logits

METHODS = {
    "l1": "l1",
    "fpgm": "fpgm",
    "topological": {"name": "topological", "population": 8, "generations": 5},
    "betti": {"name": "betti", "samples": 32},
}
HEADS = 4  # every tiny transformer here has 4 heads of size 8
HEAD_SIZE = 8


def _param(arch, method):
    return pytest.param(arch.name, method, id=f"{arch.name}-{method}")


MATRIX = [_param(a, m) for a in ARCHS for m in METHODS]


def run(model: nn.Module, x) -> torch.Tensor:
    with torch.no_grad():
        return logits(model(**x) if isinstance(x, dict) else model(x))


@dataclass
class Case:
    original: nn.Module
    state_before: dict[str, torch.Tensor]
    out_before: torch.Tensor
    x: object
    pruned: nn.Module
    info: object


@functools.lru_cache(maxsize=None)
def pruned_case(arch_name: str, method: str) -> Case:
    """Prune once per (architecture, method); the tests below only read the result."""
    arch = get(arch_name)
    if arch.transformer:
        pytest.importorskip("transformers")
    model, x = arch.build(), arch.example()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = run(model, x)
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unwrapped parameters")  # torch-pruning, on ViT
        pruned, info = tp.prune_filters(model, x, method=METHODS[method], sparsity=0.5, seed=0,
                                        data_sample=arch.sample())
    # numba's parallel spanning-tree kernels (the GA) can change OpenMP's thread count, which
    # torch shares; a grouped conv's result differs in the last bit between thread counts, so
    # the original's outputs are compared at the count they were computed with
    torch.set_num_threads(threads)
    return Case(model, state, out, x, pruned.eval(), info)


def is_conv1d(m: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a linear layer with its weight stored ``(in, out)``."""
    return type(m).__name__ == "Conv1D"


def weighted(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) or is_conv1d(m)}


def out_in(m: nn.Module) -> torch.Tensor:
    return m.weight.detach().t() if is_conv1d(m) else m.weight.detach()


def kept_rows(name: str, module: nn.Module, info) -> list[int]:
    """The original output features of ``name`` that the record says stay."""
    n = out_in(module).shape[0]
    rec = next((r for r in info.layers if r.name == name), None)
    if rec is None:
        return list(range(n))
    if rec.unit.startswith(("filter set of ", "neuron set of ")):  # one channel per group of a grouped conv
        groups = int(rec.unit.rsplit(" ", 1)[1])
        seg = n // groups
        return sorted(p * seg + u for p in range(groups) for u in rec.kept)
    if rec.unit != "head":
        return list(rec.kept)
    parts = 3 if is_conv1d(module) else 1  # GPT-2's c_attn computes q, k and v
    size = n // (parts * rec.before)
    seg = n // parts
    return [p * seg + h * size + j for p in range(parts) for h in rec.kept for j in range(size)]


def kept_columns(name: str, rows: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Which original input columns the pruned layer kept: each pruned column must be one of the
    original's (rows already restricted to the kept outputs), bit for bit and in order."""
    found, k = [], 0
    for j in range(after.shape[1]):
        while k < rows.shape[1] and not torch.equal(rows[:, k], after[:, j]):
            k += 1
        assert k < rows.shape[1], f"{name}: pruned input column {j} is not a column of the original"
        found.append(k)
        k += 1
    return found


def masked_original(case: Case) -> nn.Module:
    """A copy of the original with the input columns the pruned model lost set to zero (see the
    module docstring), after checking that every pruned layer is the original's kept block."""
    masked = copy.deepcopy(case.original)
    after = weighted(case.pruned)
    for name, m in weighted(masked).items():
        assert name in after, f"layer {name} disappeared"
        p = after[name]
        rows = kept_rows(name, m, case.info)
        w, wp = out_in(m)[rows], out_in(p)
        assert w.shape[0] == wp.shape[0], (f"{name}: {wp.shape[0]} outputs after pruning, "
                                           f"but the record keeps {w.shape[0]}")
        cols = kept_columns(name, w, wp)
        if getattr(m, "bias", None) is not None:
            assert torch.equal(m.bias.detach()[rows], p.bias.detach()), f"{name}: bias is not the kept rows"
        gone = sorted(set(range(w.shape[1])) - set(cols))
        if gone:
            with torch.no_grad():
                if is_conv1d(m):
                    m.weight[gone, :] = 0
                else:
                    m.weight[:, gone] = 0
    return masked


def head_counts(model: nn.Module) -> dict[str, tuple[int, list[int]]]:
    """Each attention module's head count attribute and its q/k/v widths (fused GPT-2: one)."""
    found = {}
    for name, m in model.named_modules():
        for attr in ("num_attention_heads", "num_heads"):
            heads = getattr(m, attr, None)
            if isinstance(heads, int) and not isinstance(m, nn.MultiheadAttention):
                projections = [getattr(m, p) for p in ("query", "key", "value", "q_proj", "k_proj", "v_proj", "c_attn")
                               if isinstance(getattr(m, p, None), nn.Module)]
                if projections:
                    found[name] = (heads, [out_in(p).shape[0] for p in projections])
                break
    return found


@pytest.mark.parametrize("arch, method", MATRIX)
def test_pruned_model_runs_is_smaller_and_leaves_the_original_alone(arch, method):
    case = pruned_case(arch, method)
    out = run(case.pruned, case.x)
    assert out.shape == case.out_before.shape == get(arch).out_shape
    assert torch.isfinite(out).all()
    assert case.info.params[1] < case.info.params[0]
    assert case.info.macs[1] < case.info.macs[0]
    # the counts are the pruned model's own, not a copy of the "before" numbers
    assert case.info.params[1] == sum(p.numel() for p in {id(p): p for p in case.pruned.parameters()}.values())
    assert tp.metrics.count_macs(case.pruned, example_inputs=case.x) == case.info.macs[1]
    # the original: same tensors, same outputs
    state = case.original.state_dict()
    assert state.keys() == case.state_before.keys()
    changed = [k for k, v in state.items() if not torch.equal(v, case.state_before[k])]
    assert not changed, f"prune_filters changed the original's {changed[:5]}"
    assert torch.equal(run(case.original, case.x), case.out_before)


@pytest.mark.parametrize("arch, method", MATRIX)
def test_physically_pruned_equals_masked_original(arch, method):
    case = pruned_case(arch, method)
    masked = masked_original(case)
    assert not torch.equal(run(masked, case.x), case.out_before), "the mask changed nothing: a test that cannot fail"
    torch.testing.assert_close(run(case.pruned, case.x), run(masked, case.x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch, method", [_param(a, m) for a in TRANSFORMERS for m in METHODS])
def test_whole_heads_go_and_the_head_count_follows(arch, method):
    case = pruned_case(arch, method)
    before, after = head_counts(case.original), head_counts(case.pruned)
    assert len(after) == 2 and after.keys() == before.keys()  # two layers, one attention module each
    left = HEADS - int(HEADS * 0.5)
    for name, (heads, widths) in after.items():
        parts = 3 if len(widths) == 1 else 1  # GPT-2's c_attn computes q, k and v
        assert before[name] == (HEADS, [parts * HEADS * HEAD_SIZE] * len(widths))
        assert (heads, widths) == (left, [parts * left * HEAD_SIZE] * len(widths)), name
        assert case.info.heads[name] == {"before": HEADS, "after": left}
    assert sum(r.unit == "head" and r.after == left for r in case.info.layers) >= 2


def test_gpt2_conv1d_layers_lose_neurons_and_heads():
    case = pruned_case("gpt2", "l1")
    for i, block in enumerate(case.pruned.transformer.h):
        orig = case.original.transformer.h[i]
        assert type(block.mlp.c_fc).__name__ == "Conv1D"
        assert orig.mlp.c_fc.weight.shape == (32, 128) and orig.mlp.c_fc.nf == 128
        assert block.mlp.c_fc.weight.shape == (32, 64) and block.mlp.c_fc.nf == 64
        assert block.mlp.c_proj.weight.shape == (64, 32) and block.mlp.c_proj.nx == 64
        assert block.attn.c_attn.weight.shape == (32, 3 * 16) and block.attn.c_proj.weight.shape == (16, 32)
        assert block.attn.split_size == 16 and block.attn.embed_dim == 32  # the residual stream stays
        rec = next(r for r in case.info.layers if r.name == f"transformer.h.{i}.mlp.c_fc")
        assert (rec.unit, rec.before, rec.after) == ("neuron", 128, 64)
    assert case.info.classifier == "lm_head"


def test_head_registered_first_keeps_its_outputs_and_the_stem_is_not_pruned():
    # Regression: the classifier was guessed as the last-registered layer, so a head registered
    # first lost half its outputs (10 -> 5) and the stem was pruned.
    torch.manual_seed(0)
    model = HeadFirst().eval()
    x = torch.randn(2, 3, 16, 16)
    pruned, info = tp.prune_filters(model, x, method="l1", sparsity=0.5)
    assert (info.first_layer, info.classifier) == ("stem", "head")
    assert pruned.head.out_features == 10 and pruned(x).shape == (2, 10)
    assert torch.equal(pruned.stem.weight, model.stem.weight)
    assert [pruned.body[0].out_channels, pruned.body[3].out_channels] == [16, 16]  # the body was pruned
    assert pruned.head.in_features == 16
    assert {r.name for r in info.layers} == {"body.0", "body.3"}


def test_a_prune_that_removes_nothing_warns():
    torch.manual_seed(0)
    model = HeadFirst().eval()
    with pytest.warns(UserWarning, match="removed nothing"):
        pruned, info = tp.prune_filters(model, torch.randn(2, 3, 16, 16), method="l1", sparsity=0.01)
    assert info.steps == [] and info.params[0] == info.params[1]
    assert info.warnings and "removed nothing" in info.warnings[0]
    assert all("int(32 * 0.01) < 1" in r.note for r in info.layers)


@pytest.mark.parametrize("arch, method", [_param(a, m) for a in ARCHS for m in ("l1", "betti")])
def test_recorded_steps_rebuild_the_pruned_architecture(arch, method):
    # What save_pruned/load_model rely on: the removals in info.steps, replayed on a fresh model,
    # give the pruned model's shapes and head counts, and with its weights, its outputs.
    case = pruned_case(arch, method)
    fresh = get(arch).build()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unwrapped parameters")
        tp.pruning.apply_steps(fresh, case.info.steps, get(arch).example())
    shapes = {k: tuple(v.shape) for k, v in case.pruned.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in fresh.state_dict().items()} == shapes
    assert head_counts(fresh) == head_counts(case.pruned)
    fresh.load_state_dict(case.pruned.state_dict())
    assert torch.equal(run(fresh.eval(), case.x), run(case.pruned, case.x))


def test_a_model_with_nothing_to_prune_warns():
    # regression: with only a first layer and a classifier nothing is targeted; that used to be silent
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.warns(UserWarning):
        _, info = tp.prune_filters(model, torch.randn(2, 4), method="l1", sparsity=0.5)
    assert info.warnings


def test_torch_multihead_attention_is_left_alone_with_a_note():
    # regression: nn.MultiheadAttention's out_proj is not in torch-pruning's graph; it used to end
    # in a raw ValueError
    # attention.py: nn.MultiheadAttention is not handled, "its projections are left alone, and the
    # pruning record says so"; the MLP around it is still pruned.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, dropout=0.0),
                          nn.Linear(16, 3)).eval()
    x = torch.randn(2, 5, 4)
    pruned, info = tp.prune_filters(model, x, method="l1", sparsity=0.5)
    assert pruned(x).shape == (2, 5, 3)
    notes = {r.name: r.note for r in info.layers}
    assert notes["1.self_attn.out_proj"] and pruned[1].self_attn.out_proj.out_features == 16


def test_grouped_convs_keep_as_many_channels_per_layer_as_torch_pruning():
    """RegNetY's grouped 3x3 convs: every group loses the same number of channels (whole
    position sets), so the pruned model has torch-pruning's own MetaPruner's shapes at the same
    ratio (the stem and the head left alone by both), and the groups stay."""
    import torch_pruning as tpr

    arch = get("regnet")
    model, x = arch.build(), arch.example()
    pruned, info = tp.prune_filters(model, x, method="l1", sparsity=0.5)
    ref = arch.build()
    tpr.pruner.MetaPruner(ref, x, importance=tpr.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
                          ignored_layers=[ref.stem[0], ref.fc]).step()

    def shapes(m: nn.Module) -> dict:
        return {n: (c.in_channels, c.out_channels, c.groups) for n, c in m.named_modules() if isinstance(c, nn.Conv2d)}

    assert shapes(pruned) == shapes(ref)
    assert shapes(pruned)["block1.b.0"] == (16, 16, 4) and shapes(pruned)["block2.b.0"] == (32, 32, 8)
    rec = next(r for r in info.layers if r.name == "block2.a.0")
    assert (rec.unit, rec.before, rec.after) == ("filter set of 8", 8, 4)
    assert run(pruned, x).shape == (2, 10)
