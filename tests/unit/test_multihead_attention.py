"""``nn.MultiheadAttention``: its packed q/k/v projection ``in_proj_weight`` ``(3E, E)`` is one
layer, ``<module>.in_proj``, for neural persistence, critical compression and unstructured masks
(through ``torch.nn.utils.prune``, which masks ``in_proj_weight`` by name); structured pruning
leaves its heads and width alone and says why."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import topoprune as tp
from topoprune.models.layers import maskable_layers, weight_attr, weight_key
from topoprune.pruning.masks import ensure_masks

E, HEADS, FF = 16, 4, 32
IN_PROJ = "1.self_attn.in_proj"


def encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, E), nn.TransformerEncoderLayer(E, HEADS, FF, batch_first=True, dropout=0.0),
                         nn.Linear(E, 3)).eval()


def x() -> torch.Tensor:
    return torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(1))


def test_the_packed_projection_is_one_named_layer():
    model = encoder()
    layers = maskable_layers(model)
    assert list(layers) == ["0", IN_PROJ, "1.self_attn.out_proj", "1.linear1", "1.linear2", "2"]
    mha = model[1].self_attn
    assert layers[IN_PROJ] is mha and weight_attr(mha) == "in_proj_weight"
    assert weight_key(IN_PROJ, mha) == "1.self_attn.in_proj_weight"
    bare = nn.MultiheadAttention(8, 2)
    assert list(maskable_layers(bare)) == ["in_proj", "out_proj"] and weight_key("in_proj", bare) == "in_proj_weight"
    # kdim/vdim other than embed_dim: three separate q/k/v weights, not listed
    assert list(maskable_layers(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))) == ["out_proj"]


def test_neural_persistence_and_critical_compression_see_in_proj():
    model = encoder()
    result = tp.neural_persistence(model)
    rows = {r.name: r for r in result.layers}
    assert [r.name for r in result.layers] == list(maskable_layers(model))
    assert {n: rows[n].role for n in rows} == {"0": "linear", IN_PROJ: "attention.qkv",
                                              "1.self_attn.out_proj": "attention.out", "1.linear1": "mlp",
                                              "1.linear2": "mlp", "2": "linear"}
    # the same number as the (3E, E) weight analysed as an array
    alone = tp.neural_persistence({"w": model[1].self_attn.in_proj_weight.detach().numpy()}).layers[0]
    assert rows[IN_PROJ].np == pytest.approx(alone.np) and rows[IN_PROJ].np > 0
    crit = {r.name: r for r in tp.critical_compression(model, x()).layers}
    # a dense (3E, E) graph: 3E * E edges, a spanning tree of 3E + E - 1
    assert (crit[IN_PROJ].edges, crit[IN_PROJ].tree_size) == (3 * E * E, 4 * E - 1)


def test_prune_weights_masks_in_proj_through_torch_prune():
    model = encoder()
    pruned, result = tp.prune_weights(model, 0.5)
    rec = {r.name: r for r in result.layers}
    assert rec[IN_PROJ].total == 3 * E * E and rec[IN_PROJ].remaining_after == 3 * E * E // 2
    mha = pruned[1].self_attn
    mask = mha.in_proj_weight_mask
    assert isinstance(mha.in_proj_weight_orig, nn.Parameter) and mask.shape == (3 * E, E)
    assert int(mask.sum()) == 3 * E * E // 2
    # magnitude: every kept weight is at least as large as every removed one
    w = mha.in_proj_weight_orig.detach().abs()
    assert w[mask.bool()].min() >= w[~mask.bool()].max()
    assert not hasattr(model[1].self_attn, "in_proj_weight_mask")  # the original is untouched
    # the masked model computes with the masked weight
    dense = copy.deepcopy(model)
    with torch.no_grad():
        dense[1].self_attn.in_proj_weight.mul_(mask)
        for name in ("0", "1.self_attn.out_proj", "1.linear1", "1.linear2", "2"):
            layer = dict(dense.named_modules())[name]
            layer.weight.mul_(dict(pruned.named_modules())[name].weight_mask)
        torch.testing.assert_close(pruned(x()), dense(x()))
        assert not torch.allclose(pruned(x()), model(x()))
    prune.remove(mha, "in_proj_weight")  # torch makes it permanent as for any layer
    assert isinstance(mha.in_proj_weight, nn.Parameter) and float((mha.in_proj_weight == 0).float().mean()) == 0.5


def test_in_proj_by_name_exclude_and_reload_of_a_masked_state():
    model = encoder()
    only, result = tp.prune_weights(model, 0.75, layers=[IN_PROJ])
    assert [r.name for r in result.layers] == [IN_PROJ]
    assert not hasattr(only[1].linear1, "weight_mask")
    _, rest = tp.prune_weights(model, 0.5, exclude=[IN_PROJ])
    assert IN_PROJ not in {r.name for r in rest.layers} and len(rest.layers) == 5
    # a state dict with in_proj_weight_orig/_mask loads into a fresh model given masks of ones
    fresh = encoder()
    ensure_masks(tp.pruning.prunable_layers(fresh, [IN_PROJ]).values())
    fresh.load_state_dict(only.state_dict())
    with torch.no_grad():
        fresh(x())  # torch's hook recomputes in_proj_weight from _orig and _mask
        torch.testing.assert_close(fresh(x()), only(x()))


def test_collapse_report_reads_the_in_proj_mask():
    pruned, _ = tp.prune_weights(encoder(), 0.5)
    report = tp.collapse_report(pruned, example_inputs=x())
    data = report.to_dict()
    assert IN_PROJ in data["layers"] and data["weights_left"][IN_PROJ] == 3 * E * E // 2
    assert data["critical"]["layers"][IN_PROJ]["sparsity"] == 0.5


def test_structured_pruning_keeps_the_heads_and_says_why():
    model = encoder()
    pruned, info = tp.prune_units(model, x(), sparsity=0.5)
    notes = {r.name: r.note for r in info.layers}
    assert "keeps its heads" in notes["1.self_attn.out_proj"] and "embed_dim" in notes["1.self_attn.out_proj"]
    assert "embedding width of nn.MultiheadAttention '1.self_attn'" in notes["1.linear2"]
    assert info.heads["1.self_attn"] == {"before": HEADS, "after": HEADS}
    mha = pruned[1].self_attn
    assert (mha.embed_dim, mha.num_heads, mha.head_dim) == (E, HEADS, E // HEADS)
    assert pruned[1].linear1.out_features == FF // 2
    # exact: the pruned model is the original with linear2's inputs from the removed neurons zeroed
    kept = next(r for r in info.layers if r.name == "1.linear1").kept
    masked = copy.deepcopy(model)
    with torch.no_grad():
        masked[1].linear2.weight[:, sorted(set(range(FF)) - set(kept))] = 0
        torch.testing.assert_close(pruned(x()), masked(x()), atol=1e-5, rtol=1e-4)


def test_a_layer_feeding_the_attention_keeps_the_attention_width():
    # the residual stream here starts at a targeted layer: torch-pruning would narrow embed_dim
    # (and with it every head_dim and the attention scale); it is left alone instead
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, E),
                          nn.TransformerEncoderLayer(E, HEADS, FF, batch_first=True, dropout=0.0),
                          nn.Linear(E, 3)).eval()
    pruned, info = tp.prune_units(model, x(), sparsity=0.5)
    assert pruned[3].self_attn.embed_dim == E and pruned[2].out_features == E
    notes = {r.name: r.note for r in info.layers}
    assert "nn.MultiheadAttention '3.self_attn'" in notes["2"]
    assert pruned(x()).shape == (2, 5, 3)
    assert np.isfinite(pruned(x()).detach().numpy()).all()


def test_imp_rewind_puts_the_dense_in_proj_back_under_its_mask():
    from topoprune.pruning.schedules import rewind_weights

    model = encoder()
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    pruned, _ = tp.prune_weights(model, 0.5, inplace=True)
    mha = pruned[1].self_attn
    mask = mha.in_proj_weight_mask.clone()
    with torch.no_grad():
        mha.in_proj_weight_orig.add_(1.0)  # as after training
    rewind_weights(pruned, tp.pruning.prunable_layers(pruned), dense)
    assert torch.equal(mha.in_proj_weight_orig, dense["1.self_attn.in_proj_weight"])
    assert torch.equal(mha.in_proj_weight_mask, mask)
