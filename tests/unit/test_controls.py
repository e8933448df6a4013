"""Controls keep a method's layer budget and replace its choice inside layers."""

from __future__ import annotations

import pytest
import torch

import topoprune as tp
from topoprune.pruning.controls import apply_control, control_coincides_with, layer_counts


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return tp.create_model("vgg11", width=0.125, in_channels=1, input_size=16)


def _kept(result):
    return {x.name: x.kept for x in result.layers}


@pytest.mark.parametrize("control", ["shuffle", "magnitude-at-budget"])
def test_structured_control_keeps_every_layers_count(vgg, control):
    pruned, result = tp.prune_units(vgg, method="fpgm", sparsity=0.5)
    other, out = apply_control(vgg, result, control, seed=1)
    assert layer_counts(out) == layer_counts(result) and layer_counts(result)
    assert out.method == f"fpgm+{control}"
    assert [p.shape for p in other.parameters()] == [p.shape for p in pruned.parameters()]
    assert other(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_magnitude_at_budget_of_l1_is_l1_itself(vgg):
    _, result = tp.prune_units(vgg, method="l1", sparsity=0.5)
    _, out = apply_control(vgg, result, "magnitude-at-budget")
    assert _kept(out) == _kept(result)


def test_structured_shuffle_is_seeded_and_not_the_method(vgg):
    _, result = tp.prune_units(vgg, method="l1", sparsity=0.5)
    a = _kept(apply_control(vgg, result, "shuffle", seed=1)[1])
    b = _kept(apply_control(vgg, result, "shuffle", seed=1)[1])
    c = _kept(apply_control(vgg, result, "shuffle", seed=2)[1])
    assert a == b and a != c and a != _kept(result)


def test_structured_control_follows_a_non_uniform_budget(vgg):
    _, result = tp.prune_units(vgg, method="l1", target={"flops": "2x"}, allocation="global")
    counts = layer_counts(result)
    assert len(set(counts.values())) > 1  # the budget differs between layers
    _, out = apply_control(vgg, result, "shuffle", seed=0)
    assert layer_counts(out) == counts


class _Residual(torch.nn.Module):
    """Two convolutions added together (their outputs coupled), then one that reads the sum."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.a, self.b = torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.Conv2d(8, 16, 1)
        self.h = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.a(x) + self.b(x))
        return self.head(torch.relu(self.h(x)).mean((2, 3)))


def test_structured_control_on_coupled_residual_layers():
    torch.manual_seed(0)
    model, x = _Residual(), torch.randn(2, 1, 8, 8)
    pruned, result = tp.prune_units(model, x, method="l2", sparsity=0.5)
    assert any(x.coupled_with for x in result.layers) and pruned.a.out_channels == 8 == pruned.b.out_channels
    for control in ("shuffle", "magnitude-at-budget"):
        other, out = apply_control(model, result, control, seed=0)
        assert layer_counts(out) == layer_counts(result)
        assert (other.a.out_channels, other.b.out_channels, other.h.out_channels) == (8, 8, 8)
        assert other(x).shape == (2, 3)


def test_structured_control_on_a_resnet_with_padding_shortcuts():
    torch.manual_seed(0)
    model = tp.create_model("resnet20", width=0.25)
    _, result = tp.prune_units(model, method="l2", sparsity=0.5)
    _, out = apply_control(model, result, "shuffle", seed=0)
    counts = layer_counts(result)
    assert layer_counts(out) == counts and counts
    assert {x.name: x.after for x in out.layers} == {x.name: x.after for x in result.layers if x.name in counts}


@pytest.fixture()
def lenet():
    torch.manual_seed(0)
    return tp.create_model("lenet300", width=0.25)


@pytest.mark.parametrize("scope", ["global", "local"])
def test_magnitude_at_budget_of_magnitude_is_the_same_mask(lenet, scope):
    masked, result = tp.prune_weights(lenet, 0.9, scope=scope)
    other, out = apply_control(lenet, result, "magnitude-at-budget")
    mine = dict(masked.named_buffers())
    assert all(torch.equal(b, mine[n]) for n, b in other.named_buffers())
    assert out.method == "magnitude+magnitude-at-budget"


def test_unstructured_shuffle_keeps_each_layers_count_at_random_positions(lenet):
    masked, result = tp.prune_weights(lenet, 0.9, scope="global")
    other, out = apply_control(lenet, result, "shuffle", seed=4)
    again, _ = apply_control(lenet, result, "shuffle", seed=4)
    assert layer_counts(out) == layer_counts(result)
    ours, theirs, repeat = dict(masked.named_buffers()), dict(other.named_buffers()), dict(again.named_buffers())
    for name, mask in theirs.items():
        assert int(mask.sum()) == int(ours[name].sum())
        assert torch.equal(mask, repeat[name])
    assert any(not torch.equal(m, ours[n]) for n, m in theirs.items())
    assert not hasattr(lenet.layers.fc1, "weight_mask")  # the dense model is left alone


def test_unstructured_control_draws_only_among_weights_still_alive(lenet):
    tp.prune_weights(lenet, 0.5, inplace=True)
    before = {n: b.clone() for n, b in lenet.named_buffers()}
    _, result = tp.prune_weights(lenet, 0.8)
    other, _ = apply_control(lenet, result, "shuffle", seed=0)
    for name, mask in other.named_buffers():
        assert not bool((mask > before[name]).any())  # masks only shrink


def test_bad_inputs_are_refused_in_one_line(lenet, vgg):
    _, result = tp.prune_weights(lenet, 0.5)
    with pytest.raises(tp.TopopruneError, match="control: bad value 'permute'; allowed: shuffle, magnitude-at-budget"):
        apply_control(lenet, result, "permute")
    with pytest.raises(tp.TopopruneError, match="allowed: the StructuredResult"):
        apply_control(lenet, {"layers": []}, "shuffle")
    other = tp.create_model("lenet300", width=0.5)
    with pytest.raises(tp.TopopruneError, match="pass the model the result was pruned from"):
        apply_control(other, result, "shuffle")


def test_which_controls_coincide_with_a_method_already_run():
    from topoprune.pruning.methods import resolve_method

    assert control_coincides_with(resolve_method("fpgm"), "shuffle") == "random"
    assert control_coincides_with(resolve_method("fpgm"), "shuffle", allocation="global") is None
    assert control_coincides_with(resolve_method("l1"), "magnitude-at-budget") == "self"
    assert control_coincides_with(resolve_method("l2"), "magnitude-at-budget") is None
    assert control_coincides_with(resolve_method("magnitude"), "magnitude-at-budget") == "self"
    assert control_coincides_with(resolve_method({"name": "magnitude", "preserve": "mst"}),
                                  "magnitude-at-budget") is None
    assert control_coincides_with(resolve_method("imp"), "shuffle") is None


def test_a_cells_saved_masks_are_found_for_attention_in_proj_too(tmp_path):
    """A control reading its method's masks from ``masked.pt`` finds every targeted layer's mask,
    nn.MultiheadAttention's ``<module>.in_proj`` (whose mask is ``<module>.in_proj_weight_mask``) too."""
    from types import SimpleNamespace

    from topoprune.experiments.control_cell import _saved_masks
    from topoprune.pruning.masks import prunable_layers, prune_weights

    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
            self.fc = torch.nn.Linear(8, 3)

    model = Attention()
    prune_weights(model, sparsity=0.5, inplace=True)
    torch.save(model.state_dict(), tmp_path / "masked.pt")
    store = SimpleNamespace(path=lambda rel: tmp_path / rel.split("/")[-1])
    targets = list(prunable_layers(model))
    masks = _saved_masks(store, SimpleNamespace(folder="cell"), {"targets": targets})
    assert list(masks) == ["attn.in_proj", "attn.out_proj", "fc"]
    assert torch.equal(masks["attn.in_proj"], model.attn.in_proj_weight_mask)
