"""Hugging Face layers and inputs in analysis and unstructured pruning (issue #14): GPT-2's
``Conv1D`` is a linear layer (weight stored ``(in, out)``), tied weights count once and are not
masked by default, example inputs of any structure are used as given, and every NP row has a
role."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.models.introspect import extract_layers, layer_graph, layer_roles, tied_layers
from topoprune.models.layers import weighted_layers
from topoprune.pruning import prune_weights
from topoprune.pruning.config import resolve_config_list
from topoprune.topology import neural_persistence_of_layer

transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()  # the tiny vocabularies make it chatty

GPT2_LAYERS = [f"transformer.h.{i}.{n}" for i in range(2)
               for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
GPT2_PRUNABLE = 2 * (32 * 96 + 32 * 32 + 32 * 128 + 128 * 32)  # the Conv1D weights: 24,576


def gpt2(seed=0, **kwargs):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=4, **kwargs)
    return transformers.GPT2LMHeadModel(config)


def bert(seed=0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=32, num_labels=3)
    return transformers.BertForSequenceClassification(config)


def token_ids(seed=0):
    return torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(seed))


def hf_conv1d(n_in, n_out):
    from transformers.pytorch_utils import Conv1D

    return Conv1D(n_out, n_in)  # Conv1D(nf=out features, nx=in features)


# --- neural persistence and critical compression -------------------------------------------

def test_gpt2_conv1d_layers_are_in_np_one_row_per_projection_with_roles():
    model = gpt2()
    report = tp.neural_persistence(model)
    rows = {x.name: x for x in report.layers}
    assert list(rows) == GPT2_LAYERS + ["lm_head"]
    roles = [rows[n].role for n in GPT2_LAYERS[:4]]
    assert roles == ["attention.qkv", "attention.out", "mlp", "mlp"]
    assert rows["lm_head"].role == "linear"  # an LM head is not told apart without model.meta
    assert rows["transformer.h.0.attn.c_attn"].n_vertices == 32 + 96
    # the graph is the (out, in) one: NP is the matrix NP of the stored weight transposed
    w = model.transformer.h[0].mlp.c_fc.weight.detach().numpy()  # stored (in=32, out=128)
    assert layer_graph(model.transformer.h[0].mlp.c_fc).shape == (128, 32)
    assert rows["transformer.h.0.mlp.c_fc"].np == pytest.approx(neural_persistence_of_layer(w.T))
    assert report.to_dict()["layers"][0]["role"] == "attention.qkv"


def test_bert_np_roles_per_attention_projection_and_mlp():
    roles = {x.name: x.role for x in tp.neural_persistence(bert()).layers}
    block = "bert.encoder.layer.1."
    assert {k[len(block):]: v for k, v in roles.items() if k.startswith(block)} == {
        "attention.self.query": "attention.q", "attention.self.key": "attention.k",
        "attention.self.value": "attention.v", "attention.output.dense": "attention.out",
        "intermediate.dense": "mlp", "output.dense": "mlp"}
    assert roles["bert.pooler.dense"] == "linear" and roles["classifier"] == "linear"
    assert len(roles) == 2 * 6 + 2


def test_roles_of_a_plain_torch_transformer_block_and_of_a_registry_model():
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_heads = 2
            self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn, self.fc1, self.fc2 = Attention(), nn.Linear(8, 16), nn.Linear(16, 8)

    model = nn.Sequential(nn.Conv2d(3, 8, 3), Block(), nn.Linear(8, 4))
    assert layer_roles(model) == {"0": "conv", "1.attn.qkv": "attention.qkv", "1.attn.proj": "attention.out",
                                  "1.fc1": "mlp", "1.fc2": "mlp", "2": "linear"}
    lenet = tp.create_model("lenet300", width=0.25)
    assert [x.role for x in tp.neural_persistence(lenet).layers] == ["linear", "linear", "classifier"]
    assert {x.role for x in tp.neural_persistence(nn.LSTM(3, 4)).layers} == {"recurrent"}


def test_critical_compression_runs_bert_on_a_dict_and_gpt2_on_token_ids():
    ids = token_ids()
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    r = tp.critical_compression(bert(), inputs)
    assert len(r.layers) == 14
    assert r.final == pytest.approx(sum(x.edges for x in r.layers) / sum(x.tree_size for x in r.layers))
    q = r.layers[0]
    assert (q.edges, q.tree_size) == (32 * 32, 63)
    assert inputs["input_ids"].dtype == torch.int64  # used as given, never replaced by float zeros
    g = tp.critical_compression(gpt2(), ids)
    assert [x.name for x in g.layers] == GPT2_LAYERS + ["lm_head"]
    assert g.layers[0].edges == 32 * 96
    with pytest.raises(tp.TopopruneError, match=r"does not run on the example inputs \(dict"):
        tp.critical_compression(bert(), {"input_ids": ids.float()})


def test_example_inputs_size_convs_of_a_model_without_meta():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    r = tp.critical_compression(conv, torch.zeros(2, 3, 32, 32))
    assert r.layers[0].ratio == pytest.approx(4.22946, abs=1e-4)
    assert tp.critical_compression(conv, (3, 16, 16), "paper").layers[0].ratio == pytest.approx(3.97927, abs=1e-4)

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 2, 3), nn.Conv2d(1, 2, 3)

        def forward(self, x, y):
            return self.a(x).sum() + self.b(y).sum()

    x, y = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 12, 12)
    layers = extract_layers(TwoInputs(), example_inputs=(x, y))
    assert [lay.input_size for lay in layers] == [(8, 8), (12, 12)]
    tz = tp.neural_persistence(TwoInputs(), conv_graph="toeplitz", example_inputs=(x, y))
    assert [lay.n_vertices for lay in tz.layers] == [64 + 2 * 36, 144 + 2 * 100]
    with pytest.raises(tp.TopopruneError, match="pass example_inputs .* or input_shape"):
        tp.critical_compression(conv)
    with pytest.raises(tp.TopopruneError, match="not both"):
        extract_layers(conv, (3, 8, 8), example_inputs=torch.zeros(1, 3, 8, 8))
    with pytest.raises(tp.TopopruneError, match="example_inputs must be a tensor"):
        tp.neural_persistence(conv, example_inputs="pixels")


def test_a_weight_shared_by_two_layers_counts_once():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    model = nn.Sequential(a, nn.ReLU(), b)
    assert tied_layers(model) == {"0": ("2",), "2": ("0",)}
    assert [x.name for x in extract_layers(model)] == ["0"]
    assert tp.critical_compression(model).layers[0].edges == 16
    assert len(tp.critical_compression(model).layers) == 1
    with pytest.raises(tp.TopopruneError, match="no layers to prune .*'0': weight tied to '2'"):
        prune_weights(model, amount=0.5, inplace=True)[1]


# --- unstructured pruning ------------------------------------------------------------------

def test_global_08_on_gpt2_prunes_08_of_the_conv1d_weights_and_leaves_the_tied_head():
    model = gpt2()
    dense = {n: m.weight.detach().abs().clone() for n, m in weighted_layers(model).items()}
    embedding = model.transformer.wte.weight.detach().clone()
    rec = prune_weights(model, amount=0.8, scope="global", inplace=True)[1]
    assert [x.name for x in rec.layers] == GPT2_LAYERS
    assert sum(x.total for x in rec.layers) == GPT2_PRUNABLE
    zeros = sum(int((weighted_layers(model)[n].weight == 0).sum()) for n in GPT2_LAYERS)
    assert zeros == round(0.8 * GPT2_PRUNABLE)
    assert rec.sparsity == pytest.approx(0.8, abs=1 / GPT2_PRUNABLE)
    kept = torch.cat([dense[n][weighted_layers(model)[n].weight_mask.bool()] for n in GPT2_LAYERS])
    gone = torch.cat([dense[n][~weighted_layers(model)[n].weight_mask.bool()] for n in GPT2_LAYERS])
    assert kept.min() >= gone.max()  # global: every kept |w| >= every pruned |w|
    # the tied head is not a default target: the tie and the embedding are untouched
    assert rec.skipped == {"lm_head": "weight tied to 'transformer.wte'"}
    assert rec.to_dict()["skipped"] == rec.skipped
    assert not hasattr(model.lm_head, "weight_mask")
    assert model.lm_head.weight is model.transformer.wte.weight
    assert torch.equal(model.transformer.wte.weight, embedding)
    assert model(token_ids()).logits.shape == (2, 8, 100)


def test_a_tied_head_is_refused_when_named_and_pruned_once_untied():
    with pytest.raises(tp.TopopruneError, match="'lm_head' cannot be pruned unstructured: its weight is "
                                                "tied to 'transformer.wte'.*tie_word_embeddings=False"):
        prune_weights(gpt2(), amount=0.5, layers=["lm_head"], inplace=True)[1]
    with pytest.raises(tp.TopopruneError, match="layers must be a list of layer names, got 'lm_head'"):
        prune_weights(gpt2(), amount=0.5, layers="lm_head", inplace=True)[1]
    untied = gpt2(tie_word_embeddings=False)
    rec = prune_weights(untied, amount=0.5, layers=["lm_head"], inplace=True)[1]
    assert rec.layers[0].remaining_after == 1600 and not rec.skipped
    assert prune_weights(gpt2(tie_word_embeddings=False), amount=0.5, inplace=True)[1].layers[-1].name == "lm_head"


@pytest.mark.parametrize("kwargs", [
    {"method": "random", "seed": 3},
    {"method": "magnitude"},                      # ties broken by flat index in (out, in) order
    {"method": "magnitude", "preserve": "mst"},
    {"method": "magnitude", "preserve": "mst", "scope": "global"},
])
def test_conv1d_is_pruned_exactly_like_the_linear_it_stands_for(kwargs):
    torch.manual_seed(0)
    conv = nn.Sequential(hf_conv1d(5, 7), nn.ReLU(), hf_conv1d(7, 3))
    with torch.no_grad():  # a coarse grid of values: many equal magnitudes
        for m in conv[::2]:
            m.weight.copy_(torch.round(torch.randn_like(m.weight) * 2) / 2)
    linear = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    with torch.no_grad():
        for c, lin in zip(conv[::2], linear[::2]):
            lin.weight.copy_(c.weight.t())
            lin.bias.copy_(c.bias)
    for _ in range(2):  # the second round starts from the masks of the first
        rc = prune_weights(conv, amount=0.6, **kwargs, inplace=True)[1]
        rl = prune_weights(linear, amount=0.6, **kwargs, inplace=True)[1]
        for c, lin in zip(conv[::2], linear[::2]):
            assert c.weight_mask.shape == (lin.in_features, lin.out_features)  # stored layout
            assert torch.equal(c.weight_mask.t(), lin.weight_mask)
        assert [x.tree_kept for x in rc.layers] == [x.tree_kept for x in rl.layers]
    x = torch.randn(4, 5)
    assert torch.allclose(conv(x), linear(x), atol=1e-6)


def test_nni_op_types_accept_hf_conv1d():
    model = gpt2()
    layers = weighted_layers(model)
    assert list(resolve_config_list(model, [{"op_types": ["Conv1D"], "sparse_ratio": 0.5}], layers)) == GPT2_LAYERS
    assert list(resolve_config_list(model, [{"op_types": ["Linear"], "sparse_ratio": 0.5}], layers)) == ["lm_head"]
    assert len(resolve_config_list(model, [{"op_types": ["default"], "sparse_ratio": 0.5}], layers)) == 9
    with pytest.raises(tp.TopopruneError, match=r"op_types has 'conv1D'; allowed: \['Conv1D', 'Conv1d'"):
        resolve_config_list(model, [{"op_types": ["conv1D"], "sparse_ratio": 0.5}], layers)
    with pytest.raises(tp.TopopruneError, match="op_types must be a list"):
        resolve_config_list(model, [{"op_types": "Conv1D", "sparse_ratio": 0.5}], layers)
    with pytest.raises(tp.TopopruneError, match="op_names must be a list of layer names"):
        resolve_config_list(model, [{"op_names": "lm_head", "sparse_ratio": 0.5}], layers)


def test_np_of_a_masked_gpt2_reads_the_masked_transposed_weight():
    model = gpt2()
    prune_weights(model, amount=0.5, preserve="mst", inplace=True)[1]
    layer = model.transformer.h[1].attn.c_proj
    w = (layer.weight_orig * layer.weight_mask).detach().numpy().T
    row = next(x for x in tp.neural_persistence(model).layers if x.name == "transformer.h.1.attn.c_proj")
    assert row.np == pytest.approx(neural_persistence_of_layer(w))
    assert row.n_tree_edges == 32 + 32 - 1  # the tree was kept: still one component
    assert np.count_nonzero(w) == 512
