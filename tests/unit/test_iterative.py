"""Iterative structured pruning (``schedule: {steps, epochs}`` and
``tp.prune_units_iteratively``): the geometric schedule, the last step meeting the one-shot
count exactly, resuming, and the equal total training of the one-shot cells beside it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.experiments.config import parse_config
from topoprune.pruning.iterative import step_counts, step_fraction_kept


def test_step_counts_by_hand():
    # 16 filters to 75 %: 1 - 0.25^(1/3) = 0.370 -> 5; 1 - 0.25^(2/3) = 0.603 -> 9; then exactly 12
    assert step_counts(16, 0.75, 3) == [5, 9, 12]
    assert step_counts(10, 0.5, 2) == [2, 5]  # 1 - sqrt(0.5) = 0.293 -> 2
    assert step_counts(4, 0.5, 3) == [0, 1, 2]
    assert step_counts(3, 0.99, 2) == [2, 2]  # never the whole layer


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2048), st.floats(0.01, 0.99), st.integers(2, 12))
def test_step_counts_never_decrease_and_end_on_the_one_shot_count(units, sparsity, steps):
    counts = step_counts(units, sparsity, steps)
    assert len(counts) == steps and counts == sorted(counts)
    assert counts[-1] == min(int(units * sparsity), units - 1)


def test_fraction_kept_is_geometric_and_exact_at_the_end():
    assert step_fraction_kept(0.25, 1, 2) == pytest.approx(0.5)
    assert step_fraction_kept(0.25, 2, 2) == 0.25


def test_the_last_step_meets_the_one_shot_count_and_resumes(digits, tmp_path):
    model = tp.create_model("mnist-conv", num_classes=10, in_channels=1, input_size=8, width=0.5)
    config = tp.TrainConfig(batch_size=64)
    small, result = tp.prune_units_iteratively(model, digits, method="l1", steps=3, epochs=1, sparsity=0.75,
                                               config=config, out_dir=tmp_path)
    one, info = tp.prune_units(model, sparsity=0.75)
    assert [(x.name, x.after) for x in info.layers] == [("conv2", 4)]
    assert [r["layers"][0]["after"] for r in result.records] == [11, 7, 4]  # 16 - [5, 9, 12]
    assert tp.model_cost(small).params == tp.model_cost(one).params
    assert result.records[0]["acc_after_tuning"] is not None and result.records[-1]["acc_after_tuning"] is None
    assert sum(s["layer"] == "conv2" for s in result.removals) == 3  # one removal per step, replayable
    again, resumed = tp.prune_units_iteratively(model, digits, method="l1", steps=3, epochs=1, sparsity=0.75,
                                                config=config, out_dir=tmp_path)
    assert resumed.records == result.records
    assert all(a.equal(b) for a, b in zip(again.state_dict().values(), small.state_dict().values()))


def test_a_target_is_met_step_by_step(digits):
    model = tp.create_model("mnist-conv", num_classes=10, in_channels=1, input_size=8, width=1.0)
    small, result = tp.prune_units_iteratively(model, digits, method="l1", steps=2, epochs=0, target={"flops": "2x"})
    kept = tp.model_cost(small).flops / tp.model_cost(model).flops
    assert 0.45 < kept <= 0.5 + 1e-9
    assert len(result.records) == 2 and result.records[0]["dense_count"] == tp.model_cost(model).flops
    budget = result.cumulative_info()["extra"]["budget"]  # the whole schedule, against the dense count
    assert budget["measured_fraction"] == pytest.approx(kept) and budget["target"]["keep"] == 0.5


@pytest.mark.parametrize("kwargs, expect", [
    ({"steps": 1, "epochs": 1, "sparsity": 0.5}, "steps: bad value 1"),
    ({"steps": 2, "epochs": -1, "sparsity": 0.5}, "epochs: bad value -1"),
    ({"steps": 2, "epochs": 1}, "exactly one"),
    ({"steps": 2, "epochs": 1, "sparsity": 1.5}, "sparsity: bad value 1.5"),
])
def test_bad_arguments_are_refused(digits, kwargs, expect):
    with pytest.raises(TopopruneError, match=expect):
        tp.prune_units_iteratively(tp.create_model("mnist-fc", input_size=8), digits, **kwargs)


BASE = {"dataset": "digits", "model": "mnist-conv", "sparsities": [0.5], "recovery": {"epochs": 2}}


def test_one_shot_cells_recover_as_long_as_the_iterative_ones_train_after_their_first_removal():
    config = parse_config({**BASE, "methods": ["l1", {"name": "fpgm", "schedule": {"steps": 3, "epochs": 2}}],
                           "controls": ["magnitude-at-budget"], "controls_of": ["fpgm"]})
    assert config.recovery_epochs("fpgm") == 2  # plus 2 x 2 epochs of fine-tuning between its 3 removals
    assert config.recovery_epochs("l1") == 6
    assert config.recovery_epochs("fpgm", "magnitude-at-budget") == 6
    assert config.to_dict()["methods"][1]["schedule"] == {"steps": 3, "epochs": 2}
    plain = parse_config({**BASE, "methods": ["l1"]})
    assert plain.recovery_epochs("l1") == 2 and "schedule" not in plain.to_dict()["methods"][0]


@pytest.mark.parametrize("entry, expect", [
    ({"name": "magnitude", "schedule": {"steps": 2, "epochs": 1}}, "is unstructured"),
    ({"name": "l1", "schedule": {"steps": 1, "epochs": 1}}, "schedule.steps: bad value 1"),
    ({"name": "l1", "schedule": {"steps": 2}}, "schedule: bad value"),
    ({"name": "l1", "schedule": {"steps": 2, "epochs": 1.5}}, "schedule.epochs: bad value 1.5"),
])
def test_a_bad_schedule_is_refused_in_one_line(entry, expect):
    with pytest.raises(TopopruneError, match=expect):
        parse_config({**BASE, "methods": [entry]})
