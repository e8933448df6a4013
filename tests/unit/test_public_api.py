"""The public API, pinned: every name in ``topoprune.__all__`` (and ``topoprune.topology``'s) with
its signature is recorded in ``tests/api_snapshot.txt``, so any change to it is a reviewed diff.

After a deliberate change (with its deprecation and CHANGELOG line), regenerate the snapshot:

    TOPOPRUNE_UPDATE_API=1 python -m pytest tests/unit/test_public_api.py

The other tests here pin the deprecation policy: every old name still works, and warns naming its
replacement.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import warnings
from pathlib import Path

import pytest
import torch

import topoprune as tp
import topoprune.topology as topology

SNAPSHOT = Path(__file__).resolve().parents[1] / "api_snapshot.txt"


def _describe(prefix: str, name: str, obj: object) -> list[str]:
    if inspect.ismodule(obj):
        return [f"{prefix}.{name}: module"]
    if inspect.isclass(obj):
        lines = []
        if dataclasses.is_dataclass(obj):
            fields = ", ".join(f.name for f in dataclasses.fields(obj))
            lines.append(f"{prefix}.{name}: dataclass({fields})")
        else:
            try:
                sig = str(inspect.signature(obj))
            except (TypeError, ValueError):
                sig = "(...)"
            lines.append(f"{prefix}.{name}: class{sig}")
        methods = sorted(m for m, v in vars(obj).items() if not m.startswith("_")
                         and (inspect.isfunction(v) or isinstance(v, property)))
        lines += [f"{prefix}.{name}.{m}" + (str(inspect.signature(getattr(obj, m)))
                                             if inspect.isfunction(vars(obj)[m]) else ": property")
                  for m in methods]
        return lines
    if callable(obj):
        return [f"{prefix}.{name}{inspect.signature(obj)}"]
    return [f"{prefix}.{name}: {type(obj).__name__}"]


def current_api() -> str:
    lines: list[str] = []
    for name in sorted(tp.__all__):
        lines += _describe("topoprune", name, getattr(tp, name))
    for name in sorted(topology.__all__):
        lines += _describe("topoprune.topology", name, getattr(topology, name))
    return "\n".join(lines) + "\n"


def test_public_api_matches_the_snapshot():
    now = current_api()
    if os.environ.get("TOPOPRUNE_UPDATE_API"):
        SNAPSHOT.write_text(now, encoding="utf-8")
    recorded = SNAPSHOT.read_text(encoding="utf-8")
    if now != recorded:
        import difflib

        diff = "\n".join(difflib.unified_diff(recorded.splitlines(), now.splitlines(), "api_snapshot.txt",
                                              "now", lineterm="", n=0))
        pytest.fail("the public API changed; if on purpose, add a deprecation and a CHANGELOG line, then "
                    f"regenerate with TOPOPRUNE_UPDATE_API=1:\n{diff}")


def test_every_exported_name_resolves_and_has_a_docstring():
    for name in tp.__all__:
        obj = getattr(tp, name)
        if callable(obj) and not isinstance(obj, type(tp)):
            assert (obj.__doc__ or "").strip(), f"topoprune.{name} has no docstring"


def test_every_result_type_is_named_result_and_has_to_dict():
    results = [n for n in tp.__all__ if n.endswith("Result")]
    assert {"StructuredResult", "UnstructuredResult", "PersistenceResult", "CriticalResult", "OverlapResult",
            "CollapseResult", "CostResult", "RecoveryResult", "IMPResult", "RecalibrationResult",
            "TrainResult"} <= set(results)
    for name in results:
        assert callable(getattr(getattr(tp, name), "to_dict", None)), f"{name} has no to_dict()"
    for name in tp.__all__:  # per-layer entries and metadata too
        obj = getattr(tp, name)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            assert callable(getattr(obj, "to_dict", None)), f"{name} has no to_dict()"


def _warns_naming(new: str):
    return pytest.warns(DeprecationWarning, match=new.replace("(", r"\(").replace(")", r"\)")
                        .replace("[", r"\[").replace("]", r"\]").replace(".", r"\."))


@pytest.mark.parametrize("old, new", [
    ("PersistenceReport", "PersistenceResult"), ("CriticalReport", "CriticalResult"),
    ("OverlapReport", "OverlapResult"), ("FilterPruneInfo", "StructuredResult"),
    ("UnstructuredRecord", "UnstructuredResult"), ("ModelCost", "CostResult"),
    ("BNRecalibration", "RecalibrationResult"),
])
def test_old_type_names_are_the_new_types_with_a_warning(old, new):
    with _warns_naming(new):
        assert getattr(tp, old) is getattr(tp, new)


@pytest.mark.parametrize("old, new", [
    ("neural_persistence", "neural_persistence_of_layer"),
    ("layer_neural_persistence", "neural_persistence_of_layer"),
    ("network_persistence", "neural_persistence_of_network"),
    ("layer_critical", "critical_compression_of_layer"),
    ("network_critical", "critical_compression_of_network"),
])
def test_old_topology_names_still_import(old, new):
    with _warns_naming(new):
        exec(f"from topoprune.topology import {old} as f", globals())  # noqa: S102 - the import statement is the point
    assert f is getattr(topology, new)  # noqa: F821 - bound by exec


def test_new_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in tp.__all__:
            getattr(tp, name)
        for name in topology.__all__:
            getattr(topology, name)


def test_list_methods_and_allocations():
    assert {"l1", "l2", "fpgm", "random", "topological", "magnitude", "random-weights", "imp", "timp",
            "synflow"} <= set(tp.list_methods())
    assert set(tp.list_methods("structured")).isdisjoint(tp.list_methods("unstructured"))
    allocations = tp.list_allocations()
    assert {"uniform", "global", "eagleeye", "topological-budget"} <= set(allocations)
    assert "topological" not in allocations  # the name of a method, not of an allocation


def test_old_allocation_name_resolves_with_a_warning():
    from topoprune.pruning.allocation import resolve_allocation

    with _warns_naming("'topological-budget'"):
        assert resolve_allocation("topological").name == "topological-budget"


def _mlp():
    """Linear layers "1" (the first layer), "3", "5" and "7" (the classifier)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 10),
                               torch.nn.ReLU(), torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_prune_units_copies_by_default_and_prunes_in_place_when_asked():
    model, x = _mlp(), torch.randn(4, 16)
    pruned, result = tp.prune_units(model, x, sparsity=0.5)
    assert isinstance(result, tp.StructuredResult)
    assert model[3].out_features == 10 and pruned[3].out_features == 5
    same, _ = tp.prune_units(model, x, sparsity=0.5, inplace=True)
    assert same is model and model[3].out_features == 5


def test_prune_weights_copies_by_default_and_masks_in_place_when_asked():
    model = _mlp()
    masked, result = tp.prune_weights(model, 0.5)
    assert isinstance(result, tp.UnstructuredResult)
    assert not hasattr(model[1], "weight_mask") and hasattr(masked[1], "weight_mask")
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    same, _ = tp.prune_weights(model, 0.5, inplace=True)
    assert same is model and hasattr(model[1], "weight_mask")


def test_prune_weights_sparsity_is_the_fraction_pruned_afterwards_unlike_amount():
    model = _mlp()
    tp.prune_weights(model, 0.5, inplace=True)
    by_sparsity, r1 = tp.prune_weights(model, 0.75)  # of the total: 75 % pruned afterwards
    by_amount, r2 = tp.prune_weights(model, amount=0.75)  # torch's meaning: 75 % of what remains
    assert r1.sparsity == pytest.approx(0.75, abs=0.01)
    assert r2.sparsity == pytest.approx(1 - 0.5 * 0.25, abs=0.01)
    with pytest.raises(tp.TopopruneError, match="masks only shrink"):
        tp.prune_weights(by_sparsity, 0.5)
    with pytest.raises(tp.TopopruneError, match="exactly one"):
        tp.prune_weights(model, 0.5, amount=0.5)


def test_both_entry_points_take_layers_and_exclude():
    model, x = _mlp(), torch.randn(4, 16)
    pruned, result = tp.prune_units(model, x, sparsity=0.5, layers=["3"])
    assert [r.name for r in result.layers] == ["3"] and pruned[5].out_features == 8
    pruned, result = tp.prune_units(model, x, sparsity=0.5, exclude=["3"])
    assert [r.name for r in result.layers] == ["5"] and pruned[3].out_features == 10
    masked, result = tp.prune_weights(model, 0.5, exclude=["7"])
    assert [r.name for r in result.layers] == ["1", "3", "5"] and not hasattr(masked[7], "weight_mask")
    with pytest.raises(tp.TopopruneError, match="exclude names 'nope'"):
        tp.prune_weights(model, 0.5, exclude=["nope"])
    with pytest.raises(tp.TopopruneError, match="layers names 'nope'"):
        tp.prune_units(model, x, sparsity=0.5, layers=["nope"])


def test_prune_unstructured_keeps_its_old_behaviour_with_a_warning():
    model = _mlp()
    with _warns_naming("prune_weights"):
        record = tp.prune_unstructured(model, 0.5, method="random", seed=1)
    assert isinstance(record, tp.UnstructuredResult) and hasattr(model[1], "weight_mask")  # in place


def test_prune_filters_is_prune_units_and_takes_the_old_keywords_with_warnings():
    model, x = _mlp(), torch.randn(4, 16)
    expected, _ = tp.prune_units(model, x, sparsity=0.5, exclude=["3"])
    with _warns_naming("exclude="):
        got, info = tp.prune_filters(model, x, sparsity=0.5, ignore=["3"])
    assert isinstance(info, tp.StructuredResult)
    assert [p.shape for p in got.parameters()] == [p.shape for p in expected.parameters()]
    with _warns_naming("data_sample=x"):
        tp.prune_filters(model, x, sparsity=0.5, context={"inputs": x})
    with pytest.raises(tp.TopopruneError, match="give exclude= only"):
        tp.prune_filters(model, x, sparsity=0.5, ignore=["3"], exclude=["3"])


def test_targets_say_kept_or_reduction_and_the_bare_fraction_warns():
    from topoprune.pruning.targets import parse_target

    assert parse_target({"flops_kept": 0.25}).keep == pytest.approx(0.25)
    assert parse_target({"flops": "4x"}).keep == pytest.approx(0.25)
    with _warns_naming("{'flops_kept': 0.25}"):
        assert parse_target({"flops": 0.25}).keep == pytest.approx(0.25)
    with pytest.raises(tp.TopopruneError, match="fraction kept"):
        parse_target({"flops_kept": 4})


def test_imp_old_keywords_warn(tmp_path):
    from topoprune.pruning.schedules import imp

    with _warns_naming("per_round="), pytest.raises(tp.TopopruneError, match="per_round must be in"):
        imp(_mlp(), None, tp.TrainConfig(), fraction=1.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        imp(_mlp(), None, tp.TrainConfig(), nope=1)


def test_collapse_report_is_typed_and_the_dict_reading_warns():
    model = _mlp()
    tp.prune_weights(model, 0.9, inplace=True, scope="global")
    result = tp.collapse_report(model, example_inputs=torch.randn(2, 16))
    assert isinstance(result, tp.CollapseResult)
    assert result.to_dict()["layers"] == result.layers
    with _warns_naming(".exact"):
        assert result["exact"] is result.exact


def test_save_pruned_old_positional_order_still_works(tmp_path):
    model = tp.create_model("lenet300", width=0.1)
    pruned, info = tp.prune_units(model, sparsity=0.5)
    with _warns_naming("save_pruned(model, folder, steps=...,"):
        tp.save_pruned(pruned, info.steps, tmp_path / "old", info.to_dict())
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(tp.load_model(tmp_path / "old")(x), pruned.eval()(x))


def test_load_model_returns_eval_mode_and_the_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    model = tp.create_model("vgg11", width=0.125, in_channels=1, input_size=16)
    model.train()
    x = torch.randn(8, 1, 16, 16)
    for _ in range(3):  # give BatchNorm running statistics that differ from batch statistics
        model(x * 3 + 1)
    pruned, info = tp.prune_units(model, sparsity=0.5)
    tp.save_pruned((pruned, info), tmp_path / "p")
    loaded = tp.load_model(tmp_path / "p")
    assert not loaded.training
    pruned.eval()
    assert torch.equal(loaded(x), pruned(x))


def test_the_api_reference_index_lists_every_public_name():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "api_index.py"
    spec = importlib.util.spec_from_file_location("api_index", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.INDEX.read_text(encoding="utf-8") == module.render(), \
        "docs/api/index.md is out of date: run python scripts/api_index.py"
