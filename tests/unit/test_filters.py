"""Structured pruning: physical removal equals masking, exact counts, NNI config semantics,
agreement with torch-pruning's importances, save/load, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_pruning as tpr
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning import fpgm_scores, l1_scores, l2_scores, prune_filters
from topoprune.pruning.selection import filters_to_prune


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so equivalence tests see BN."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


def masked_equivalent(model: nn.Module, info) -> nn.Module:
    """The original model with the removed units zeroed: conv/linear weight rows, biases, and the
    following BatchNorm's affine parameters (so BN outputs exactly 0 there)."""
    masked = __import__("copy").deepcopy(model)
    modules = dict(masked.named_modules())
    names = list(modules)
    for rec in info.layers:
        gone = sorted(set(range(rec.before)) - set(rec.kept))
        if not gone:
            continue
        m = modules[rec.name]
        with torch.no_grad():
            m.weight[gone] = 0
            if m.bias is not None:
                m.bias[gone] = 0
            nxt = modules[names[names.index(rec.name) + 1]]
            if isinstance(nxt, nn.BatchNorm2d):
                nxt.weight[gone] = 0
                nxt.bias[gone] = 0
    return masked


@pytest.mark.parametrize(
    "name, kwargs, config",
    [
        ("vgg16", {"width": 0.25}, None),
        ("resnet20", {}, None),
        ("resnet20", {"shortcut": "B"}, None),
        ("lenet300", {}, [{"op_types": ["Linear"], "sparse_ratio": 0.5},
                          {"op_names": ["classifier"], "exclude": True}]),
    ],
)
@pytest.mark.parametrize("method", ["l1", "fpgm"])
def test_physical_pruning_equals_masking(name, kwargs, config, method):
    torch.manual_seed(0)
    model = randomize_bn(tp.create_model(name, **kwargs))
    pruned, info = prune_filters(model, method=method, sparsity=0.5, config_list=config)
    assert info.params[1] < info.params[0] and info.macs[1] < info.macs[0]
    x = torch.randn(4, *model.meta.input_shape)
    masked = masked_equivalent(model, info)
    torch.testing.assert_close(pruned.eval()(x), masked.eval()(x), atol=1e-5, rtol=1e-5)


def test_vgg16_l1_half_of_every_conv_is_vgg16_at_half_width():
    # Halving every conv layer's filters gives exactly the widths of vgg16(width=0.5).
    model = tp.create_model("vgg16")
    pruned, info = prune_filters(model, method="l1", sparsity=0.5,
                                 config_list=[{"op_types": ["Conv2d"], "sparse_ratio": 0.5}])
    widths = [32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 256, 256, 256]
    arithmetic = 256 * 10 + 10  # the head
    for c_in, c_out in zip([3] + widths[:-1], widths):
        arithmetic += 9 * c_in * c_out + c_out + 2 * c_out  # conv weight + bias, BN weight + bias
    assert arithmetic == 3_686_954
    assert info.params == (14_728_266, arithmetic)
    assert sum(p.numel() for p in pruned.parameters()) == arithmetic
    assert arithmetic == sum(p.numel() for p in tp.create_model("vgg16", width=0.5).parameters())
    # default targets skip the first conv: features.0 keeps its 64 filters
    _, default = prune_filters(model, method="l1", sparsity=0.5)
    assert default.layers[0].name == "features.3" and default.params[1] == 3_697_130


def test_num_prune_is_int_of_cout_times_sparsity_and_input_is_untouched():
    model = tp.create_model("vgg16", width=0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _, info = prune_filters(model, method="l2", sparsity=0.3)
    for rec in info.layers:
        assert rec.after == rec.before - int(rec.before * 0.3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_nni_rule_edge_cases():
    assert filters_to_prune([3.0, 1.0, 2.0, 0.5], 0.5) == [1, 3]
    assert filters_to_prune([1.0], 0.9) == []  # C_out < 2
    assert filters_to_prune([1.0, 2.0, 3.0], 0.2) == []  # int(0.6) < 1
    assert filters_to_prune([1.0, 1.0, 1.0, 1.0], 0.5) == [0, 1]  # ties: lower index first


def test_scores_follow_nni_definitions():
    w = torch.tensor([[[[1.0, -2.0]]], [[[0.0, 3.0]]], [[[1.0, 1.0]]]])
    assert l1_scores(w).tolist() == [3.0, 3.0, 2.0]
    assert l2_scores(w).tolist() == pytest.approx([5**0.5, 3.0, 2**0.5])
    d01, d02, d12 = (1 + 25) ** 0.5, 3.0, (1 + 4) ** 0.5
    assert fpgm_scores(w).tolist() == pytest.approx([d01 + d02, d01 + d12, d02 + d12])


@pytest.mark.parametrize("ours, theirs", [
    ("l1", lambda: tpr.importance.MagnitudeImportance(p=1, normalizer=None, group_reduction="first")),
    ("l2", lambda: tpr.importance.MagnitudeImportance(p=2, normalizer=None, group_reduction="first")),
    # torch-pruning's FPGM measures distances between |w|^p, NNI's between the raw filters: the
    # definitions agree for p = 1 on non-negative weights, which is what is compared.
    ("fpgm", lambda: tpr.importance.FPGMImportance(p=1, normalizer=None, group_reduction="first")),
])
def test_same_choice_as_torch_pruning_importances(ours, theirs):
    torch.manual_seed(3)
    layer = nn.Conv2d(8, 32, 3)
    if ours == "fpgm":
        layer.weight.data.abs_()
    model = nn.Sequential(layer)
    graph = tpr.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 8, 6, 6))
    group = graph.get_pruning_group(layer, tpr.prune_conv_out_channels, idxs=list(range(32)))
    their_scores = theirs()(group).detach().double().numpy()
    our_scores = {"l1": l1_scores, "l2": l2_scores, "fpgm": fpgm_scores}[ours](layer.weight).numpy()
    assert filters_to_prune(our_scores, 0.5) == filters_to_prune(their_scores, 0.5)


def test_option_a_residual_stream_is_left_alone_and_says_why():
    _, info = prune_filters(tp.create_model("resnet20"), method="l1", sparsity=0.5)
    by_name = {x.name: x for x in info.layers}
    assert by_name["layer1.0.conv1"].after == 8
    assert by_name["layer1.0.conv2"].after == 16 and "zero-padding shortcut" in by_name["layer1.0.conv2"].note


def test_option_b_couples_residual_layers():
    _, info = prune_filters(tp.create_model("resnet20", shortcut="B"), method="l1", sparsity=0.5)
    by_name = {x.name: x for x in info.layers}
    assert by_name["layer2.0.conv2"].after == 16
    assert by_name["layer2.1.conv2"].after == 16
    assert "pruned together with" in by_name["layer2.1.conv2"].note
    assert by_name["layer1.0.conv2"].after == 16 and "conv1" in by_name["layer1.0.conv2"].note


def test_config_list_overrides_and_excludes():
    model = tp.create_model("vgg16", width=0.25)
    config = [{"op_types": ["Conv2d"], "sparsity": 0.5},
              {"op_names": ["features.3"], "sparse_ratio": 0.25},
              {"op_types": ["Conv2d"], "exclude_op_names": ["features.7"]}]
    _, info = prune_filters(model, config_list=config)
    by_name = {x.name: x for x in info.layers}
    assert by_name["features.0"].after == 8 and by_name["features.3"].after == 12
    assert "features.7" not in by_name


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(tp.create_model("resnet20", shortcut="B", width=0.5))
    pruned, info = prune_filters(model, method="fpgm", sparsity=0.4)
    tp.save_pruned(pruned, info.steps, tmp_path / "p", info=info.to_dict())
    loaded = tp.load_model(tmp_path / "p")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), pruned.eval()(x))
    assert [p.shape for p in loaded.parameters()] == [p.shape for p in pruned.parameters()]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sparsity": 1.0}, r"sparsity must be a fraction in \[0, 1\)"),
        ({"sparsity": -0.5}, r"sparsity must be a fraction in \[0, 1\)"),
        ({"method": "hrank"}, "unknown pruning method 'hrank'; available: betti, fpgm, group-norm"),
        ({"config_list": [{"op_names": ["features.99"], "sparse_ratio": 0.5}]},
         "names layer 'features.99', which does not exist; prunable layers: features.0"),
        ({"config_list": [{"op_names": ["features.1"], "sparse_ratio": 0.5}]},
         "a BatchNorm2d, which cannot be pruned"),
        ({"config_list": [{"op_types": ["Conv2d"], "sparse_ratio": 2}]}, "sparse_ratio must be"),
        ({"config_list": [{"op_types": ["LSTM"], "sparse_ratio": 0.5}]}, "op_types has 'LSTM'"),
        ({"exclude": ["pool"]}, "exclude names 'pool', not a prunable layer"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(TopopruneError, match=message):
        prune_filters(tp.create_model("vgg16", width=0.25), **kwargs)


def test_random_method_is_seeded():
    model = tp.create_model("vgg16", width=0.25)
    _, a = prune_filters(model, method="random", seed=1)
    _, b = prune_filters(model, method="random", seed=1)
    _, c = prune_filters(model, method="random", seed=2)
    assert [x.kept for x in a.layers] == [x.kept for x in b.layers] != [x.kept for x in c.layers]
    assert np.isfinite(a.seconds)


@pytest.mark.parametrize("method", ["l1", {"name": "topological", "population": 6, "generations": 2, "workers": 2}])
def test_inplace_prunes_the_given_model_otherwise_it_is_untouched(method):
    torch.manual_seed(0)
    model = tp.create_model("vgg11", width=0.125)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned_copy, info = prune_filters(model, method=method, sparsity=0.5)
    assert pruned_copy is not model and info.params[1] < info.params[0]
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], v) for k, v in after.items())

    same, inplace = prune_filters(model, method=method, sparsity=0.5, inplace=True)
    assert same is model
    assert inplace.steps == info.steps
    assert sum(p.numel() for p in model.parameters()) == inplace.params[1] == info.params[1]
    pruned = pruned_copy.state_dict()
    assert model.state_dict().keys() == pruned.keys()
    assert all(torch.equal(v, pruned[k]) for k, v in model.state_dict().items())
