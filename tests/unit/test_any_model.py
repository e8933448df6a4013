"""Any model, any inputs: input structures, layer kinds, the first layer and classifier by data
flow, attention heads as units, and the surgeon on fused q/k/v layers (issue #14)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from topoprune import TopopruneError, prune_filters
from topoprune.metrics import count_macs, count_parameters
from topoprune.models.attention import find_attention, sync_head_counts
from topoprune.models.dataflow import find_ends
from topoprune.models.inputs import (as_inputs, batch_size, call_model, example_inputs_for, take_batch,
                                     without_cache)
from topoprune.pruning.units import UnitLayout


# --- inputs ---------------------------------------------------------------------------------------


def test_inputs_of_every_structure_are_called_as_given():
    class Takes(nn.Module):
        def forward(self, a, b=None, *, mask=None):
            return a.float().sum() + (0 if b is None else b.sum()) + (0 if mask is None else mask.sum())

    m = Takes()
    ids = torch.tensor([[1, 2]])
    assert call_model(m, ids).item() == 3
    assert call_model(m, (ids, torch.ones(2))).item() == 5
    assert call_model(m, {"a": ids, "mask": torch.ones(3)}).item() == 6
    assert batch_size({"a": torch.zeros(4, 2), "mask": torch.zeros(4, 2)}) == 4
    assert take_batch({"a": torch.zeros(4, 2), "flag": True}, 2)["a"].shape == (2, 2)


@pytest.mark.parametrize("bad", [[], (), {}, {"a": 1}, {1: torch.zeros(1)}, 3.0, "x", [1, 2]])
def test_bad_inputs_are_one_clear_line(bad):
    with pytest.raises(TopopruneError, match="must"):
        as_inputs(bad)


def test_token_ids_stay_integers_and_a_model_without_meta_needs_inputs():
    emb = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    ids = torch.tensor([[1, 2, 3]])
    assert example_inputs_for(emb, ids).dtype == torch.long
    assert count_macs(emb, example_inputs=ids) == 3 * 4 * 2  # three tokens through a 4->2 linear
    with pytest.raises(TopopruneError, match="example_inputs is required"):
        example_inputs_for(emb)


def test_tied_parameters_are_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, ids):
            return self.out(self.emb(ids))

    assert count_parameters(Tied()) == (40, 40)


# --- first layer and classifier by data flow ------------------------------------------------------


class HeadFirst(nn.Module):
    """The classifier is registered first and the stem last: registration order misleads."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 10)
        self.body = nn.Conv2d(6, 8, 3, padding=1)
        self.stem = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        return self.head(self.body(torch.relu(self.stem(x))).mean((2, 3)))


def test_first_layer_and_classifier_follow_the_data_not_registration():
    m = HeadFirst()
    ends = find_ends(m, torch.randn(2, 3, 8, 8))
    assert (ends.first_layer, ends.classifier) == ("stem", "head")
    pruned, info = prune_filters(m, torch.randn(2, 3, 8, 8), sparsity=0.5)
    assert [x.name for x in info.layers] == ["body"]
    assert pruned.head.out_features == 10 and pruned.stem.out_channels == 6
    assert pruned.body.out_channels == 4


def test_a_token_model_has_no_first_layer_to_protect():
    m = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    ends = find_ends(m, torch.tensor([[1, 2]]))
    assert ends.first_layer is None and ends.classifier == "3"


def test_a_prune_that_removes_nothing_warns_and_says_so_in_the_record():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.warns(UserWarning, match="removed nothing"):
        _, info = prune_filters(m, torch.randn(2, 4), config_list=[{"op_names": ["0"], "sparse_ratio": 0.2}])
    assert info.warnings and info.skipped == ["0"]


# --- attention heads ------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """BERT-shaped attention: separate q/k/v, the head count as an attribute, -1 in the view."""

    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.num_attention_heads, self.attention_head_size = heads, dim // heads
        self.all_head_size = dim
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, -1, self.attention_head_size).transpose(1, 2)
                   for f in (self.query, self.key, self.value))
        a = torch.softmax(q @ k.transpose(-1, -2) / self.attention_head_size ** 0.5, -1) @ v
        return self.out(a.transpose(1, 2).reshape(b, t, self.num_attention_heads * self.attention_head_size))


class FusedAttention(nn.Module):
    """GPT-2-shaped attention: one q/k/v layer split in three, ``num_heads``/``split_size``."""

    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.num_heads, self.head_dim, self.split_size = heads, dim // heads, dim
        self.c_attn, self.c_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (y.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
                   for y in self.c_attn(x).split(self.split_size, dim=2))
        a = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        return self.c_proj(a.transpose(1, 2).reshape(b, t, -1))


class Encoder(nn.Module):
    def __init__(self, attn):
        super().__init__()
        self.inp = nn.Linear(5, 16)
        self.attn = attn
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 16)
        self.cls = nn.Linear(16, 3)

    def forward(self, x):
        h = self.inp(x)
        h = h + self.attn(h)
        h = h + self.fc2(torch.relu(self.fc1(h)))
        return self.cls(h.mean(1))


@pytest.mark.parametrize("attn", [SelfAttention, FusedAttention])
def test_heads_go_as_whole_units_and_the_head_count_follows(attn):
    torch.manual_seed(0)
    model = Encoder(attn()).eval()
    x = torch.randn(3, 7, 5)
    (block,) = find_attention(model)
    assert block.heads == 4 and block.head_dim == 4 and block.fused == (attn is FusedAttention)
    pruned, info = prune_filters(model, x, method="l1", sparsity=0.5)
    assert info.heads == {"attn": {"before": 4, "after": 2}}
    heads = pruned.attn.num_attention_heads if attn is SelfAttention else pruned.attn.num_heads
    assert heads == 2
    assert pruned(x).shape == (3, 3)
    lead = next(x for x in info.layers if x.unit == "head")
    assert lead.before == 4 and lead.after == 2
    # the removed heads' value features are gone from the output projection's inputs; zeroing
    # them in the original (value rows and bias) gives the pruned model's output exactly
    masked = Encoder(attn()).eval()
    masked.load_state_dict(model.state_dict())
    gone = sorted(set(range(4)) - set(lead.kept))
    with torch.no_grad():
        for h in gone:
            if attn is SelfAttention:
                rows = slice(4 * h, 4 * h + 4)
                masked.attn.value.weight[rows] = 0
                masked.attn.value.bias[rows] = 0
            else:
                rows = slice(32 + 4 * h, 32 + 4 * h + 4)
                masked.attn.c_attn.weight[rows] = 0
                masked.attn.c_attn.bias[rows] = 0
        for n, fc1 in ((info.layers, masked.fc1),):
            rec = next(r for r in n if r.name == "fc1")
            drop = sorted(set(range(rec.before)) - set(rec.kept))
            fc1.weight[drop] = 0
            fc1.bias[drop] = 0
    torch.testing.assert_close(pruned(x), masked(x), atol=1e-5, rtol=1e-5)


def test_sync_head_counts_updates_derived_widths():
    attn = FusedAttention()
    (block,) = find_attention(nn.Sequential(attn))
    with torch.no_grad():
        attn.c_attn = nn.Linear(16, 24)  # 2 heads of 4, times q/k/v
    sync_head_counts(nn.Sequential(attn), [block])
    assert (attn.num_heads, attn.split_size) == (2, 8)


def test_unit_layout_of_fused_heads_maps_units_to_features_and_rows():
    layout = UnitLayout("head", features=24, size=2, parts=3)  # 4 heads of 2, q/k/v fused
    assert layout.count == 4
    assert layout.features_of([1]) == [2, 3, 10, 11, 18, 19]
    w = torch.arange(24 * 5, dtype=torch.float32).reshape(24, 5)
    m = nn.Linear(5, 24)
    with torch.no_grad():
        m.weight.copy_(w)
    rows = layout.weight(m)
    assert rows.shape == (4, 5, 6)
    # head 1's block holds exactly the weights of its six features
    assert sorted(rows[1].flatten().tolist()) == sorted(w[[2, 3, 10, 11, 18, 19]].flatten().tolist())
    out = torch.randn(2, 3, 24)  # (sample, token, features): six points
    pts = layout.points(out, torch.tensor([1, 1, 0, 1, 1, 1]).bool())
    assert pts.shape == (5, 4, 6)


def test_tracing_turns_off_the_key_value_cache_only_where_the_model_takes_it():
    class Decoder(nn.Module):
        def forward(self, input_ids, use_cache=True):
            return input_ids

    ids = torch.zeros(1, 2, dtype=torch.long)
    assert without_cache(Decoder(), ids) == {"input_ids": ids, "use_cache": False}
    assert without_cache(Decoder(), {"input_ids": ids, "use_cache": True})["use_cache"] is True
    assert without_cache(nn.Linear(2, 2), ids) is ids


def test_a_channel_shuffle_or_concat_of_unequal_widths_is_left_alone_with_a_reason():
    class Shuffle(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.a, self.c = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)
            self.d, self.head = nn.Conv2d(8, 8, 1), nn.Linear(8, 10)

        def forward(self, x):
            x1, x2 = self.stem(x).chunk(2, dim=1)
            x = torch.cat([x1, self.c(torch.relu(self.a(x2)))], 1)
            b, c, h, w = x.shape
            x = x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
            return self.head(self.d(x).mean((2, 3)))

    m = Shuffle().eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(UserWarning, match="unpruned"):
        pruned, info = prune_filters(m, x, config_list=[{"op_types": ["Conv2d"], "sparse_ratio": 0.5}])
    notes = {r.name: r.note for r in info.layers}
    assert "channel shuffle" in notes["c"]
    assert pruned(x).shape == (2, 10)


def test_the_classifier_is_the_layer_that_wrote_the_output_every_time():
    # regression: output ids were matched against freed tensors' ids, which Python reuses, so a
    # conv could be taken for the classifier (and the real head pruned) in most runs
    class LogSoftmaxNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(32, 10)
            self.stem, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
            self.c3 = nn.Conv2d(32, 32, 3, padding=1)

        def forward(self, x):
            x = torch.relu(self.c3(torch.relu(self.c2(torch.relu(self.stem(x))))))
            return torch.log_softmax(self.head(x.mean((2, 3))), -1)

    m = LogSoftmaxNet().eval()
    x = torch.randn(2, 3, 16, 16)
    assert {find_ends(m, x).classifier for _ in range(20)} == {"head"}  # found as the last to run
    small, _ = prune_filters(m, x, sparsity=0.5)
    assert small(x).shape == (2, 10)


def test_a_layer_tied_to_an_embedding_is_not_pruned_structurally():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 8)
            self.mid = nn.Linear(8, 8)
            self.out = nn.Linear(8, 20, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, ids):
            return self.out(torch.relu(self.mid(self.emb(ids))))

    m = Tied()
    ids = torch.randint(0, 20, (2, 5))
    with pytest.warns(UserWarning):
        small, info = prune_filters(m, ids, config_list=[{"op_types": ["Linear"], "sparse_ratio": 0.5}])
    notes = {r.name: r.note for r in info.layers}
    assert "tied" in notes["out"] and "tied" in notes["mid"]  # mid's units are out's inputs
    assert small.out.weight is small.emb.weight


def test_a_decoder_exports_with_token_ids_alone(tmp_path):
    pytest.importorskip("onnxruntime")
    transformers = pytest.importorskip("transformers")
    from topoprune import export_model

    gpt = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)).eval()
    ids = torch.randint(0, 50, (2, 6))
    small, _ = prune_filters(gpt, ids, sparsity=0.5)
    result = export_model(small, ids, tmp_path / "gpt.onnx", format="onnx")
    assert result.ok and result.max_abs_diff <= 1e-5
