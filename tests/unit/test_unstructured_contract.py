"""What an unstructured method's cell must hold: masks that remove the share of weights asked
for (a row compares methods at one number of weights), and an iterative schedule whose rounds
land on the targets instead of passing them."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from topoprune.errors import TopopruneError
from topoprune.pruning.apply import checked_outcome
from topoprune.pruning.methods import PruneOutcome
from topoprune.pruning.methods.global_unstructured import LAMP
from topoprune.pruning.methods.unstructured import IMP, TIMP, Magnitude, SynFlow, lands_on, reaches


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 4))  # 80 + 32 = 112 weights


def _masked(keep_first: dict[int, int]) -> nn.Module:
    """The net with layer i keeping its first ``keep_first[i]`` weights (flat order)."""
    model = _net()
    for i, k in keep_first.items():
        mask = torch.zeros_like(model[i].weight).flatten()
        mask[:k] = 1
        prune.custom_from_mask(model[i], "weight", mask.view_as(model[i].weight))
    return model


def test_a_round_lands_on_a_target_only_within_one_percent_of_its_weights():
    # hand-computed: rounds of 0.5 give 0.5, 0.75, 0.875; 0.8 is passed between 0.75 and 0.875
    assert reaches(0.875, 0.8) and not lands_on(0.875, 0.8)  # 12.5 % of the weights, not 20 %
    assert lands_on(0.875, 0.875) and lands_on(0.7379, 0.738)  # 1 - 0.8^6 = 0.737856, written 0.738
    assert not lands_on(0.75, 0.8)  # does not reach it at all
    assert lands_on(0.9990234375, 0.9990234375) and not lands_on(0.998046875, 0.9990234375)
    assert not lands_on(0.9990234375, 0.999)  # 1024x for 1000x: 2.4 % fewer weights than asked


def test_a_trajectory_that_passes_a_target_between_rounds_is_refused_in_one_line():
    problem = TIMP(rounds=8, fraction=0.5).check_sparsities([0.5, 0.8, 0.9, 0.95])
    assert problem is not None and problem.startswith("fraction: bad value 0.5 for sparsities [0.8, 0.9, 0.95]")
    assert "a cell at sparsity 0.8 would be measured at 0.875" in problem and "or no fraction" in problem
    assert "\n" not in problem
    assert TIMP(rounds=8, fraction=0.5).check_sparsities([0.5, 0.75, 0.875, 0.9375]) is None
    assert IMP(rounds=10, fraction=0.2).check_sparsities([0.36, 0.59, 0.738, 0.832, 0.893]) is None
    assert IMP(rounds=3).check_sparsities([0.8, 0.9]) is None  # no trajectory: each cell lands exactly
    assert IMP(rounds=2, fraction=0.5).check_sparsities([0.875]).startswith("rounds: bad value 2")


def test_a_config_with_such_a_trajectory_is_refused_before_any_work():
    from topoprune.experiments.config import parse_config

    data = {"name": "t", "dataset": "digits", "model": {"name": "mnist-fc", "width": 0.25},
            "train": {"epochs": 1}, "sparsities": [0.8], "seeds": [0],
            "methods": [{"name": "timp", "rounds": 4, "fraction": 0.5, "epochs": 1}]}
    with pytest.raises(TopopruneError, match=r"config field methods\[0\]\.fraction: bad value 0\.5 for sparsities \[0\.8\]"):
        parse_config(data)
    parse_config({**data, "sparsities": [0.75]})


def test_masks_that_remove_the_share_asked_for_pass():
    method = Magnitude()
    exact = _masked({0: 40, 2: 16})  # 56 of 112 kept: sparsity 0.5
    assert checked_outcome(method, PruneOutcome(exact, {}), sparsity=0.5).record["targets"] == ["0", "2"]
    checked_outcome(method, PruneOutcome(_masked({0: 40, 2: 17}), {}), sparsity=0.5)  # one weight of rounding
    checked_outcome(method, PruneOutcome(_masked({0: 40, 2: 16}), {}))  # no sparsity given: shapes only


def test_masks_that_remove_another_share_are_refused_naming_the_class():
    method = Magnitude()
    with pytest.raises(TopopruneError) as e:
        checked_outcome(method, PruneOutcome(_masked({0: 40, 2: 32}), {}), sparsity=0.5)  # 72 kept: 0.357
    assert str(e.value) == ("method 'magnitude' (Magnitude) left 72 of 112 weights (sparsity 0.3571) where 0.5 "
                            "was asked; allowed: masks that remove that share of the weights of its layers, within 1 % (or half a weight "
                            "per layer)")
    with pytest.raises(TopopruneError, match=r"left 14 of 112 weights \(sparsity 0\.8750\) where 0\.8 was asked"):
        checked_outcome(method, PruneOutcome(_masked({0: 10, 2: 4}), {}), sparsity=0.8)  # too many go
    with pytest.raises(TopopruneError, match="masked no layer where sparsity 0.5 was asked"):
        checked_outcome(method, PruneOutcome(_net(), {}), sparsity=0.5)


def test_the_share_is_counted_over_the_layers_the_method_names():
    """A method that prunes one layer and says so is measured on that layer alone."""
    model = _masked({0: 40, 2: 32})  # layer "0": 40 of 80 kept (0.5); layer "2": all 32 kept
    checked_outcome(Magnitude(), PruneOutcome(model, {"targets": ["0"]}), sparsity=0.5)
    with pytest.raises(TopopruneError, match="left 72 of 112"):
        checked_outcome(Magnitude(), PruneOutcome(model, {"targets": ["0", "2"]}), sparsity=0.5)


def test_each_layers_rounding_is_allowed_but_no_more():
    """Per-layer counts (local scope, torch's amount) round each layer by up to half a weight:
    ten 3x3 layers at 0.5 keep 5 of 9 each (round(4.5) = 4 go), 50 of 90 where 45 are asked."""
    from topoprune.pruning.apply import apply_method
    from topoprune.pruning.methods import ApplyRequest

    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(3, 3) for _ in range(10)])
    apply_method(Magnitude(scope="local"), model, ApplyRequest(sparsity=0.5, seed=0))
    assert sum(int(m.weight_mask.sum()) for m in model) == 50
    ten = nn.Sequential(*[nn.Linear(3, 3) for _ in range(10)])
    for i, m in enumerate(ten):  # 51 kept: 6 weights off, more than half a weight per layer
        mask = torch.zeros(9)
        mask[: 6 if i == 0 else 5] = 1
        prune.custom_from_mask(m, "weight", mask.view(3, 3))
    with pytest.raises(TopopruneError, match="left 51 of 90 weights"):
        checked_outcome(Magnitude(), PruneOutcome(ten, {}), sparsity=0.5)


@pytest.mark.parametrize("method", [Magnitude(), Magnitude(scope="local"), SynFlow(iterations=3), LAMP()])
def test_a_one_shot_method_prunes_a_masked_model_to_the_sparsity_of_all_its_weights(method):
    """The cell's sparsity is the share of the targeted weights removed, not of those remaining:
    a model already at 0.5 pruned at 0.8 keeps 20 % of its weights, as every method does."""
    from topoprune.pruning.apply import apply_method
    from topoprune.pruning.masks import prune_weights
    from topoprune.pruning.methods import ApplyRequest

    model = _net()
    prune_weights(model, sparsity=0.5, inplace=True)
    apply_method(method, model, ApplyRequest(sparsity=0.8, seed=0, example_inputs=torch.ones(1, 10)))
    kept = sum(int(m.weight_mask.sum()) for m in (model[0], model[2]))
    assert abs(kept - 0.2 * 112) <= 1  # 22 or 23 of 112, not 0.1 * 112
