"""Attention that cannot lose heads is found before any removal and keeps its heads; the rest of
the model is pruned. timm's ``Attention`` (``vit_small_patch16_224``, ``deit_tiny``) sizes its
reshapes from the input's width, so removing a head breaks its forward; the same module written
to follow its head count loses heads as a Hugging Face one does.

Exactness: the pruned model computes what the original computes with the removed units masked,
where masking zeroes the input columns that read a removed unit (a removed MLP neuron in
``fc2``, a removed head's value features in ``proj``): nothing else reads them.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import topoprune as tp
from topoprune.models.attention import find_attention
from topoprune.pruning.head_trial import heads_that_stay

from .architectures import TimmViT, _images, timm_vit

HEADS, HEAD_DIM, HIDDEN = 4, 8, 64


def _prune(sizes: str):
    model, x = timm_vit(sizes), _images(2, 1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        pruned, info = tp.prune_units(model, x, sparsity=0.5)
    assert [str(w.message) for w in seen] == info.warnings  # each warning is in the result too
    return model, x, pruned.eval(), info


def _masked(model, info) -> torch.nn.Module:
    """The original with every input column that reads a removed unit zeroed."""
    masked = copy.deepcopy(model)
    rec = {r.name: r for r in info.layers}
    with torch.no_grad():
        for i, block in enumerate(masked.blocks):
            gone = sorted(set(range(HIDDEN)) - set(rec[f"blocks.{i}.mlp.fc1"].kept))
            block.mlp.fc2.weight[:, gone] = 0
            heads = sorted(set(range(HEADS)) - set(rec[f"blocks.{i}.attn.qkv"].kept))
            block.attn.proj.weight[:, [h * HEAD_DIM + j for h in heads for j in range(HEAD_DIM)]] = 0
    return masked


@pytest.mark.parametrize("sizes", ["input", "head_dim"])
def test_timm_attention_keeps_its_heads_and_its_mlp_is_pruned(sizes):
    model, x, pruned, info = _prune(sizes)
    rec = {r.name: r for r in info.layers}
    for i in range(2):
        qkv = rec[f"blocks.{i}.attn.qkv"]
        assert (qkv.unit, qkv.before, qkv.after) == ("head", HEADS, HEADS)
        assert "keeps its heads" in qkv.note and "fails with one head less" in qkv.note
        assert pruned.blocks[i].attn.qkv.out_features == 3 * HEADS * HEAD_DIM
        assert pruned.blocks[i].attn.num_heads == HEADS
        assert (rec[f"blocks.{i}.mlp.fc1"].before, rec[f"blocks.{i}.mlp.fc1"].after) == (HIDDEN, HIDDEN // 2)
        assert pruned.blocks[i].mlp.fc1.out_features == HIDDEN // 2
    assert info.heads == {f"blocks.{i}.attn": {"before": HEADS, "after": HEADS} for i in range(2)}
    assert len(info.warnings) == 1 and "blocks.0.attn, blocks.1.attn" in info.warnings[0]
    assert info.params[1] < info.params[0]
    masked = _masked(model, info)
    with torch.no_grad():
        assert not torch.allclose(masked(x), model(x)), "the mask changed nothing: a test that cannot fail"
        torch.testing.assert_close(pruned(x), masked(x), atol=1e-5, rtol=1e-4)


def test_attention_that_follows_its_head_count_loses_heads():
    model, x, pruned, info = _prune("attributes")
    rec = {r.name: r for r in info.layers}
    for i in range(2):
        qkv = rec[f"blocks.{i}.attn.qkv"]
        assert (qkv.before, qkv.after, qkv.note) == (HEADS, HEADS // 2, "")
        attn = pruned.blocks[i].attn
        assert (attn.num_heads, attn.head_dim) == (HEADS // 2, HEAD_DIM)
        assert attn.qkv.out_features == 3 * (HEADS // 2) * HEAD_DIM and attn.proj.in_features == (HEADS // 2) * HEAD_DIM
    assert not info.warnings
    masked = _masked(model, info)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), masked(x), atol=1e-5, rtol=1e-4)


def test_the_trial_names_only_the_attention_that_breaks_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = TimmViT("attributes").eval()
    model.blocks[1].attn.sizes = "input"  # one block of each kind
    state = {k: v.clone() for k, v in model.state_dict().items()}
    blocks = find_attention(model)
    assert [b.name for b in blocks] == ["blocks.0.attn", "blocks.1.attn"]
    stay = heads_that_stay(model, blocks, _images(2, 1), targets=["blocks.0.attn.qkv", "blocks.1.attn.qkv"])
    assert list(stay) == ["blocks.1.attn"] and "RuntimeError" in stay["blocks.1.attn"]
    assert model.blocks[0].attn.num_heads == HEADS and model.blocks[0].attn.qkv.out_features == 96
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # a block whose projections are not targeted is not tried
    assert heads_that_stay(model, blocks, _images(2, 1), targets=["blocks.0.attn.qkv"]) == {}


def test_excluding_the_projections_by_hand_still_works():
    model, x = timm_vit("input"), _images(2, 1)
    pruned, info = tp.prune_units(model, x, sparsity=0.5, exclude=["blocks.0.attn.qkv", "blocks.1.attn.qkv"])
    assert not info.warnings and {r.name for r in info.layers}.isdisjoint({"blocks.0.attn.qkv", "blocks.1.attn.qkv"})
    assert pruned(x).shape == (2, 10)
