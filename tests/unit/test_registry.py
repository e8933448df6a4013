"""One Registry type for models, methods, importances, activations and datasets; methods as typed
classes; no import cycles; the runner knows no method by name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning import methods as M
from topoprune.registry import Registry

SRC = Path(tp.__file__).resolve().parent


def test_registry_refuses_duplicates_lists_with_filters_and_suggests():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)

    @reg.register("beta")
    def beta():  # decorator form returns the object
        return 2

    assert beta() == 2 and reg.get("alpha") == 1 and "beta" in reg and len(reg) == 2
    with pytest.raises(TopopruneError, match="widget 'alpha' is already registered"):
        reg.register("alpha", 3)
    assert reg.names() == ["alpha", "beta"]
    assert reg.names(lambda v: v == 1) == ["alpha"]
    with pytest.raises(TopopruneError, match=r"unknown widget 'alpa'; did you mean 'alpha'\? available: alpha, beta"):
        reg.get("alpa")
    with pytest.raises(TopopruneError, match="unknown widget 'zzz'; available"):
        reg.get("zzz")
    with reg.replaced("alpha", 7) as old:
        assert old == 1 and reg.get("alpha") == 7
    assert reg.get("alpha") == 1  # back after the block
    assert reg.unregister("alpha") == 1 and reg.names() == ["beta"]


@pytest.mark.parametrize("lookup, misspelt, hint", [
    (lambda n: M.method_class(n), "fgpm", "fpgm"),
    (lambda n: tp.create_model(n), "vgg61", "vgg16"),
    (lambda n: tp.prepare_data(n), "fashion-mnst", "fashion-mnist"),
])
def test_every_registry_suggests_the_close_name(lookup, misspelt, hint):
    with pytest.raises(TopopruneError, match=f"did you mean '{hint}'"):
        lookup(misspelt)


def test_builtin_methods_are_typed_registered_classes():
    assert M.list_methods("structured") == ["l1", "l2", "fpgm", "random", "topological", "betti",
                                            "topological-v2", "tp-global", "taylor", "group-norm"]
    assert M.list_methods("unstructured") == ["magnitude", "random-weights", "imp", "timp", "synflow",
                                              "lamp", "snip", "phew"]
    for name in M.list_methods():
        cls = M.method_class(name)
        assert issubclass(cls, M.Method) and cls.name == name and cls.summary
    assert M.resolve_method("fpgm") == M.FPGM()
    assert M.resolve_method({"name": "topological", "fitness": "np"}) == M.Topological(fitness="np")
    assert M.Topological(fitness="activation").needs().sample == 256
    assert M.Topological().needs().sample == 0
    assert M.IMP(fraction=0.2).needs().trajectory and not M.IMP().needs().trajectory
    assert M.Betti(samples=64).needs().sample == 64


@pytest.mark.parametrize("settings, message", [
    ({"name": "topological", "population": "x"}, "population: bad value 'x'"),
    ({"name": "topological", "popultion": 4}, "popultion: unknown setting"),
    ({"name": "topological", "tournament": 30}, "tournament"),
    ({"name": "topological", "fitness": "foo"}, "fitness: bad value 'foo'; allowed: 'diagram', 'np' or 'activation'"),
    ({"name": "betti", "quantile": 1.5}, "quantile: bad value 1.5"),
    ({"name": "betti", "samples": True}, "samples: bad value True"),
    ({"name": "imp", "rounds": 0}, "rounds: bad value 0"),
    ({"name": "imp", "fraction": float("nan")}, "fraction: bad value nan"),
    ({"name": "magnitude", "scope": "both"}, "scope: bad value 'both'"),
])
def test_method_settings_are_validated_by_name(settings, message):
    with pytest.raises(TopopruneError, match=re.escape(message)):
        M.resolve_method(settings)


def test_prune_filters_takes_a_name_an_object_or_a_user_class():
    model = tp.create_model("mnist-conv", width=0.5)
    _, by_name = tp.prune_filters(model, method="fpgm", sparsity=0.5)
    _, by_object = tp.prune_filters(model, method=M.FPGM(), sparsity=0.5)
    assert by_name.steps == by_object.steps and by_name.method == "fpgm"

    @M.register_method("test-last-units")
    class LastUnits(M.StructuredMethod):
        def choose(self, ctx, layer):
            c = layer.module.weight.shape[0]
            return list(range(c - int(c * layer.sparsity), c))

    try:
        pruned, info = tp.prune_filters(model, method="test-last-units", sparsity=0.5)
        conv2 = next(x for x in info.layers if x.name == "conv2")
        assert conv2.kept == list(range(conv2.before // 2 + conv2.before % 2)) and info.method == "test-last-units"
        assert pruned(torch.zeros(2, *model.meta.input_shape)).shape == (2, 10)
    finally:
        M.METHODS.unregister("test-last-units")
    with pytest.raises(TopopruneError, match="method 'magnitude' is not structured"):
        tp.prune_filters(model, method="magnitude")
    with pytest.raises(TopopruneError, match="needs a data sample|pass a data sample"):
        tp.prune_filters(model, method="betti")
    with pytest.raises(TypeError):
        tp.prune_filters(model, None, "l1")  # keyword-only past the example inputs


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("topoprune"):
                out.add(mod)
                out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("topoprune"))
    return out


def test_the_package_has_no_import_cycle():
    modules = {}
    for p in SRC.rglob("*.py"):
        name = ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = p
    graph = {m: {d for d in _imports(p) if d in modules and d != m} for m, p in modules.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle between rooms
    for m in graph:
        graph[m] = {d for d in graph[m] if not (d.startswith(m + ".") or m.startswith(d + ".") and
                                                 modules[d].name == "__init__.py")}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(graph[m]):
            visit(d)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, cycles[:3]


def test_the_experiments_room_knows_no_method_by_name():
    pattern = re.compile(r"method\.name ==|method ==|\.name in \(|== \"(l1|l2|fpgm|random|topological|betti|"
                         r"magnitude|random-weights|imp|timp|synflow)\"")
    hits = [f"{p.name}:{i}" for p in (SRC / "experiments").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_topology_never_imports_torch():
    for p in (SRC / "topology").rglob("*.py"):
        assert not any(m == "torch" or m.startswith("torch.") for m in _imports(p)), p
        assert "import torch" not in p.read_text(), p


def test_a_method_class_is_taken_as_its_defaults_registered_or_not():
    import torch
    from torch import nn

    import topoprune as tp
    from topoprune.pruning.methods import resolve_method

    from tests.e2e.evaluate_methods import LowVariance, NotAMethod

    assert isinstance(resolve_method(LowVariance), LowVariance)  # not registered: built with its defaults
    assert resolve_method(M.FPGM) == M.FPGM()
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 3))
    small, result = tp.prune_units(model, torch.zeros(1, 1, 10, 10), method=LowVariance, sparsity=0.5)
    assert result.params[1] < result.params[0]
    with pytest.raises(TopopruneError, match="must be a name, a Method subclass or object, or a mapping"):
        resolve_method(NotAMethod)
    from topoprune.pruning.methods.unstructured import _OneShot

    for abstract in (tp.StructuredMethod, tp.UnstructuredMethod, _OneShot):  # bases that prune nothing
        with pytest.raises(TopopruneError, match="must be a name, a Method subclass or object"):
            resolve_method(abstract)
