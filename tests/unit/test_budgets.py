"""Pruning to a target count (issue #16): the cost model, the allocations, the Topological Pruner
v2 and the torch-pruning peer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.metrics import count_flops, count_parameters
from topoprune.pruning.targets import parse_target

from ..e2e.architectures import InvertedResidual, conv_bn


class SmallMobileNetV2(nn.Module):
    """MobileNetV2-style: inverted residuals (depthwise convs, residual adds), wide enough that
    single units are well under 1 % of the FLOPs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 1)
        self.blocks = nn.Sequential(InvertedResidual(16, 16, 1), InvertedResidual(16, 24, 2),
                                    InvertedResidual(24, 24, 1), InvertedResidual(24, 32, 2))
        self.last = conv_bn(32, 96, 1)
        self.classifier = nn.Linear(96, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu6(self.stem(x))
        x = nn.functional.relu6(self.last(self.blocks(x)))
        return self.classifier(x.mean((2, 3)))


def models():
    torch.manual_seed(0)
    return {
        "vgg16": (tp.create_model("vgg16", width=0.25, in_channels=1), torch.zeros(1, 1, 32, 32), []),
        "resnet56": (tp.create_model("resnet56", width=0.5), torch.zeros(1, 3, 32, 32), []),
        "mobilenetv2": (SmallMobileNetV2(), torch.zeros(1, 3, 32, 32), ["stem.0", "classifier"]),
    }


MODELS = models()
MEASURE = {"flops": lambda m, x: count_flops(m, example_inputs=x), "params": lambda m, x: count_parameters(m)[0]}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("metric", ["flops", "params"])
@pytest.mark.parametrize("allocation", ["uniform", "global", "topological-budget"])
def test_target_is_met_within_one_percent(name, metric, allocation):
    model, x, ignore = MODELS[name]
    for keep in (0.5, 0.25):
        pruned, info = tp.prune_filters(model, x, method="l1", target={f"{metric}_kept": keep}, allocation=allocation,
                                        exclude=ignore)
        measured = MEASURE[metric](pruned, x) / MEASURE[metric](model, x)
        assert abs(measured / keep - 1) <= 0.01, (name, metric, allocation, keep, measured)
        record = info.extra["budget"]
        assert record["met"] and record["predicted"] == pytest.approx(record["measured"])  # the model is exact
        layers = {x.name: x for x in info.layers}
        for leader, entry in record["layers"].items():  # the per-layer budget is recorded and applied
            assert layers[leader].before - layers[leader].after == entry["removed"]
            assert layers[leader].sparsity == pytest.approx(entry["removed"] / entry["units"])


def test_budgets_differ_between_layers_for_global_and_topological():
    model, x, _ = MODELS["vgg16"]
    fractions = {}
    for allocation in ("uniform", "global", "topological-budget"):
        _, info = tp.prune_filters(model, x, method="l1", target={"flops_kept": 0.5}, allocation=allocation)
        layers = info.extra["budget"]["layers"]
        fractions[allocation] = np.array([v["removed"] / v["units"] for v in layers.values()])
    assert np.ptp(fractions["uniform"]) < 0.1  # uniform: the same fraction, up to a few single units
    assert np.ptp(fractions["global"]) > 0.1 and np.ptp(fractions["topological-budget"]) > 0.1


@pytest.mark.parametrize("method,allocation", [("l1", "uniform"), ("fpgm", "global"), ("l1", "topological-budget"),
                                               ({"name": "topological-v2", "generations": 3, "population": 8},
                                                "uniform"), ("tp-global", "uniform")])
def test_every_strategy_is_deterministic_for_a_seed(method, allocation):
    model, x, _ = MODELS["resnet56"]
    runs = [tp.prune_filters(model, x, method=method, target={"flops_kept": 0.5}, allocation=allocation, seed=3)[1]
            for _ in range(2)]
    assert [r.kept for r in runs[0].layers] == [r.kept for r in runs[1].layers]


def test_eagleeye_needs_data_and_is_deterministic():
    model, x, _ = MODELS["vgg16"]
    with pytest.raises(TopopruneError, match="labelled_sample=\\(x, y\\)"):
        tp.prune_filters(model, x, method="l1", target={"flops_kept": 0.5}, allocation="eagleeye")
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(200, 1, 32, 32, generator=g), torch.randint(0, 10, (200,), generator=g))
    settings = {"name": "eagleeye", "candidates": 3, "batches": 2, "batch_size": 16, "eval_samples": 50}
    a = tp.prune_filters(model, x, method="l1", target={"flops_kept": 0.5}, allocation=settings, labelled_sample=data)[1]
    b = tp.prune_filters(model, x, method="l1", target={"flops_kept": 0.5}, allocation=settings, labelled_sample=data)[1]
    assert a.extra["budget"]["layers"] == b.extra["budget"]["layers"]
    details = a.extra["budget"]["details"]
    assert len(details["accuracies"]) == 3 and details["best_accuracy"] == max(details["accuracies"])
    assert a.extra["budget"]["met"]


def test_ga_v2_is_never_worse_than_its_best_seed():
    model, x, _ = MODELS["vgg16"]
    for keep in (0.5, 0.25):
        _, info = tp.prune_filters(model, x, method={"name": "topological-v2", "generations": 4, "population": 8},
                                   target={"flops_kept": keep})
        search = info.extra["budget"]["details"]["search"]
        assert set(search["seeds"]) == {"uniform", "global", "topological-budget"}
        assert search["objective"] <= min(search["seeds"].values()) + 1e-12
        assert search["best_by_generation"] == sorted(search["best_by_generation"], reverse=True)
        assert info.extra["budget"]["met"]


def test_ga_v2_objective_is_the_sum_of_its_layer_losses():
    """The reported objective is recomputed from the chosen units with the GA v1 fitness."""
    from topoprune.pruning import genetic

    model, x, _ = MODELS["vgg16"]
    _, info = tp.prune_filters(model, x, method={"name": "topological-v2", "generations": 2, "population": 6},
                               target={"flops_kept": 0.5})
    modules = dict(model.named_modules())
    total = 0.0
    for layer in info.layers:
        removed = sorted(set(range(layer.before)) - set(layer.kept))
        if removed:
            problem = genetic.layer_problems(model, modules, {layer.name: 0.5}, surgeon=x, inputs=None,
                                             fitness="diagram")[0]
            total += genetic.removal_loss(problem, "diagram")(removed)
    assert total == pytest.approx(info.extra["budget"]["details"]["search"]["objective"], rel=1e-9)


def test_the_peer_is_torch_prunings_own_global_choice():
    """tp-global removes, layer by layer, exactly what torch-pruning's MetaPruner removes itself at
    the pruning ratio it found (public API: MetaPruner, GroupMagnitudeImportance)."""
    import torch_pruning as tpr

    model, x, _ = MODELS["vgg16"]
    pruned, info = tp.prune_filters(model, x, method="tp-global", target={"flops_kept": 0.5})
    ratio = info.extra["budget"]["details"]["pruning_ratio"]
    theirs = copy.deepcopy(model)
    ignored = [theirs.features[0], theirs.classifier] if hasattr(theirs, "classifier") else [theirs.features[0]]
    names = {n for n, _ in theirs.named_modules()}
    assert {"features.0"} <= names
    pruner = tpr.pruner.MetaPruner(theirs, x, importance=tpr.importance.GroupMagnitudeImportance(p=2),
                                   global_pruning=True, pruning_ratio=ratio, max_pruning_ratio=0.9,
                                   ignored_layers=ignored)
    pruner.step()
    ours = {n: m.out_channels for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d)}
    their = {n: m.out_channels for n, m in theirs.named_modules() if isinstance(m, nn.Conv2d)}
    assert ours == their
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape


@pytest.mark.parametrize("target,match", [
    ({"latency": 0.5}, "unknown metric"), ({"flops": 1.5}, "bad value 1.5"), ({"flops": "0.5x"}, "reduction"),
    ({"flops": 0.5, "params": 0.5}, "one metric"), ([0.5], "one metric"), ({"flops": 0.001}, "cannot be met"),
])
def test_bad_targets_get_one_line(target, match):
    model, x, _ = MODELS["vgg16"]
    with pytest.raises(TopopruneError, match=match) as err:
        tp.prune_filters(model, x, method="l1", target=target)
    assert "\n" not in str(err.value)


def test_target_parsing_and_exclusive_arguments():
    assert parse_target({"flops": "4x"}).keep == pytest.approx(0.25)
    assert parse_target({"params": 0.5}).reduction == pytest.approx(2.0)
    model, x, _ = MODELS["vgg16"]
    with pytest.raises(TopopruneError, match="sparsity or target"):
        tp.prune_filters(model, x, sparsity=0.5, target={"flops_kept": 0.5})
    with pytest.raises(TopopruneError, match="give a target"):
        tp.prune_filters(model, x, method="topological-v2", sparsity=0.5)
    with pytest.raises(TopopruneError, match="allocation"):
        tp.prune_filters(model, x, target={"flops_kept": 0.5}, allocation="nope")
