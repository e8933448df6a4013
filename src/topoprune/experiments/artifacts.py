"""User files in and out: weight arrays (``.npy``/``.npz``), checkpoints, example inputs, whole
model files (TorchScript, pickled modules), and pruned-model folders (:func:`save_pruned`,
:func:`load_model`).

Every failure names the file and what was expected, so a CLI user sees one clear line (messages
quoted from torch are stripped of terminal colour codes).
"""

from __future__ import annotations

import numbers
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError
from ..models.inputs import Inputs, as_inputs, describe_inputs, move_inputs
from ..models.layers import out_units, weighted_layers
from .factory import build_from_factory, check_kwargs, class_path, parse_factory

__all__ = ["load_weights_file", "load_checkpoint_into", "load_inputs_file", "load_model", "save_pruned",
           "read_pruned", "PrunedFolder", "require_python_model", "PRUNED_FORMAT"]

# torch.load warns before it refuses a TorchScript archive under weights_only=True
_TORCHSCRIPT_WARNING = r".*looks like a TorchScript archive"


def load_weights_file(path: str | Path) -> dict[str, np.ndarray]:
    """Load ``.npy`` (one layer) or ``.npz`` (one layer per array, in file order).

    Raises:
        TopopruneError: missing or unreadable file, a suffix other than .npy/.npz.
    """
    p = _user_path("weight file", path)
    if p.is_dir():
        raise TopopruneError(f"weight file {str(p)!r} is a folder; allowed: a .npy or .npz file")
    if not p.is_file():
        raise TopopruneError(f"weight file {str(p)!r} does not exist")
    if p.suffix not in (".npy", ".npz"):
        raise TopopruneError(f"weight file {str(p)!r}: expected a .npy or .npz file")
    magic = {".npy": (b"\x93NUMPY",), ".npz": (b"PK\x03\x04", b"PK\x05\x06")}[p.suffix]
    with p.open("rb") as f:
        head = f.read(6)
    if not head.startswith(magic):  # numpy would call any other file "pickled data"
        what = "empty" if not head else "not a numpy file (no numpy header)" if p.suffix == ".npy" \
            else "not a zip archive"
        raise TopopruneError(f"weight file {str(p)!r} is {what}; allowed: a {p.suffix} file written by "
                             f"numpy.{'save' if p.suffix == '.npy' else 'savez'}")
    try:
        if p.suffix == ".npy":
            return {p.stem: np.load(p, allow_pickle=False)}
        with np.load(p, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a bad file (EOFError, ...)
        first = _first_line(exc)
        raise TopopruneError(f"weight file {str(p)!r} is not a numpy .npy/.npz array file "
                             f"({first or type(exc).__name__})") from None


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, without terminal colour codes (torch puts some
    in its weights-only message)."""
    text = _ANSI.sub("", str(exc)).strip()
    return (text.splitlines() or [""])[0][:limit] or type(exc).__name__


def _torch_load_problem(p: Path, exc: Exception,
                        allowed: str = "allowed: a state dict saved with torch.save(model.state_dict(), path)") -> str:
    """Why ``torch.load(p, weights_only=True)`` failed, in words a user can act on."""
    first = _first_line(exc, 10_000)
    with p.open("rb") as f:
        head = f.read(4)
    if not head:
        return f"is empty; {allowed}"
    if "torchscript" in first.lower():
        return f"is a TorchScript archive, not a state dict; {allowed}"
    if "weights only load failed" in first.lower() and (head.startswith(b"PK") or head[:1] == b"\x80"):
        return ("holds pickled Python objects besides tensors (e.g. a whole nn.Module saved with "
                f"torch.save(model)), which torch.load(weights_only=True) refuses to run; {allowed}")
    return f"is corrupt or not a torch file ({first[:120]}); {allowed}"


def _user_path(what: str, path: object) -> Path:
    """``path`` as a Path, or a one-line error naming what was given."""
    if isinstance(path, bool) or not isinstance(path, (str, Path)) or not str(path):
        raise TopopruneError(f"{what}: expected a file path, got {path!r}")
    return Path(path)


def _load_state(model: nn.Module, state: object, where: str) -> nn.Module:
    """``model.load_state_dict(state)`` with a one-line error naming the file."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TopopruneError(f"checkpoint {where!r} holds no state dict of tensors")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise TopopruneError(
            f"checkpoint {where!r} does not fit the model: {' '.join(first[:3])}"
        ) from None
    return model


def load_checkpoint_into(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict into ``model``. Accepts a bare state dict, or a dict holding one under
    ``"model"``, ``"state_dict"`` or ``"model_state"`` (what ``topoprune train`` writes).

    Raises:
        TopopruneError: missing or corrupt file, or keys/shapes that do not fit the model.
    """
    p = _user_path("checkpoint", path)
    if p.is_dir():
        raise TopopruneError(f"checkpoint {str(p)!r} is a folder; allowed: a state-dict file")
    if not p.is_file():
        raise TopopruneError(f"checkpoint {str(p)!r} does not exist")
    try:
        with warnings.catch_warnings():  # a TorchScript file is refused below, with a clearer word
            warnings.filterwarnings("ignore", message=_TORCHSCRIPT_WARNING)
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise TopopruneError(f"checkpoint {str(p)!r} {_torch_load_problem(p, exc)}") from None
    return _load_state(model, _state_of(obj), str(p))


def _state_of(obj: object) -> object:
    """The state dict inside a checkpoint that wraps it (``model``/``state_dict``/``model_state``)."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state"):
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


# --- pruned models -----------------------------------------------------------------------------
#
# A pruned-model folder holds:
#   pruned.json         {"format": "topoprune-pruned/2",
#                        the architecture, exactly one of:
#                          "model": <create_model arguments of a registry model>,
#                          "factory": "pkg.module:function", "kwargs": {JSON keyword arguments},
#                          "needs": "<what load_model needs to rebuild it>",
#                        "model_class": "pkg.module:Class" (informative), "inputs": "<description>",
#                        "example_inputs": "example_inputs.pt" or null,
#                        "steps": [{"layer": name, "pruned": [unit indices at removal time]}, ...],
#                        "info": <prune_units record>}
#   weights.pt          the pruned model's state_dict
#   example_inputs.pt   the inputs the removals were traced with (a tensor, tuple or dict)
# Loading builds the unpruned architecture (registry, factory, or a fresh instance the caller
# passes), replays the removals with torch-pruning (the same dependency graph, so BatchNorm,
# consumers and attention head counts follow), then loads the weights strictly. No pickled
# modules, no edits to model code. Format 1 (registry models only, no example inputs) is still read.

PRUNED_FORMAT = "topoprune-pruned/2"
_READABLE = ("topoprune-pruned/1", PRUNED_FORMAT)
_INPUTS_FILE = "example_inputs.pt"


@dataclass(frozen=True)
class PrunedFolder:
    """What a pruned-model folder's ``pruned.json`` says (validated): the architecture (a
    registry ``spec``, a ``factory`` with its ``factory_kwargs``, or ``needs``: why the folder
    cannot rebuild it alone), the removals, and where the example inputs are."""

    path: Path
    format: str
    spec: dict | None
    factory: str | None
    factory_kwargs: dict
    needs: str | None
    model_class: str | None
    steps: list[dict]
    example_inputs: Path | None
    info: dict

    def source(self) -> dict:
        """The keyword arguments of :func:`save_pruned` that name the same architecture."""
        if self.spec is not None:
            return {"spec": dict(self.spec)}
        if self.factory is not None:
            return {"factory": self.factory, "factory_kwargs": dict(self.factory_kwargs)}
        return {}


def _valid_steps(steps: object) -> bool:
    return isinstance(steps, list) and all(
        isinstance(x, dict) and isinstance(x.get("layer"), str) and isinstance(x.get("pruned"), list)
        and all(isinstance(i, int) and not isinstance(i, bool) for i in x["pruned"]) for x in steps)


def read_pruned(path: str | Path) -> PrunedFolder:
    """Read and check a pruned-model folder's ``pruned.json`` (nothing is built or loaded)."""
    import json

    p = _user_path("pruned-model folder", path)
    where = p / "pruned.json"
    if not where.is_file():
        raise TopopruneError(f"{p} holds no pruned.json; allowed: a folder written by topoprune prune "
                             "or save_pruned")
    try:
        record = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TopopruneError(f"{where} is unreadable: {_first_line(exc)}") from None
    if not isinstance(record, dict):
        raise TopopruneError(f"{where}: expected a JSON object with format, model, steps; got "
                             f"{type(record).__name__}")
    fmt = record.get("format")
    if fmt not in _READABLE:
        raise TopopruneError(f"{where}: unknown format {fmt!r}; expected one of {', '.join(_READABLE)}")
    spec = record.get("model")
    factory, kwargs, needs = record.get("factory"), record.get("kwargs") or {}, record.get("needs")
    if fmt == _READABLE[0] or (factory is None and needs is None):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TopopruneError(f"{where}: 'model' must be an object with the model's name and "
                                 f"create_model arguments, got {spec!r}"[:300])
    elif spec is not None or (factory is not None and needs is not None):
        raise TopopruneError(f"{where}: give exactly one of 'model' (a registry model), 'factory' or "
                             "'needs'")
    if factory is not None:
        parse_factory(factory, f"{where}: factory")
        kwargs = check_kwargs(kwargs, f"{where}: kwargs")
    if needs is not None and not isinstance(needs, str):
        raise TopopruneError(f"{where}: 'needs' must be a sentence, got {type(needs).__name__}")
    steps = record.get("steps", [])
    if not _valid_steps(steps):
        raise TopopruneError(f"{where}: 'steps' must be a list of {{\"layer\": name, \"pruned\": "
                             "[unit indices]}")
    inputs = record.get("example_inputs")
    if inputs is not None and inputs != _INPUTS_FILE:
        raise TopopruneError(f"{where}: 'example_inputs' must be {_INPUTS_FILE!r} or null, got {inputs!r}"[:300])
    info = record.get("info") or {}
    return PrunedFolder(p, fmt, spec, factory, kwargs if factory is not None else {}, needs,
                        record.get("model_class") if isinstance(record.get("model_class"), str) else None,
                        steps, p / inputs if inputs else None, info if isinstance(info, dict) else {})


def load_inputs_file(path: str | Path, what: str = "example inputs") -> Inputs:
    """The example inputs in a file written with ``torch.save``: a tensor, a tuple of tensors or
    a dict of keyword inputs. Read with ``weights_only=True`` (no code runs)."""
    p = _user_path(f"{what} file", path)
    if p.is_dir():
        raise TopopruneError(f"{what} file {str(p)!r} is a folder; allowed: a file written by torch.save")
    if not p.is_file():
        raise TopopruneError(f"{what} file {str(p)!r} does not exist")
    allowed = ("allowed: a tensor, a tuple of tensors or a dict of tensors saved with "
               "torch.save(inputs, path)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_TORCHSCRIPT_WARNING)
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise TopopruneError(f"{what} file {str(p)!r} {_torch_load_problem(p, exc, allowed)}") from None
    if isinstance(obj, torch.nn.Module) or (isinstance(obj, dict) and obj and all(
            isinstance(v, torch.Tensor) for v in obj.values()) and any("." in k for k in obj)):
        raise TopopruneError(f"{what} file {str(p)!r} holds model weights (a state dict), not inputs; {allowed}")
    try:
        return as_inputs(obj, f"{what} file {str(p)!r}")
    except TopopruneError as exc:
        raise TopopruneError(f"{exc}; {allowed}") from None


def _check_module(model: object, what: str) -> nn.Module:
    if isinstance(model, torch.jit.ScriptModule):
        raise TopopruneError(f"{what} is a TorchScript module: its layers are compiled code, which "
                             "topoprune cannot change; allowed: the model as Python code (an nn.Module)")
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"{what} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _shape_mismatch(rebuilt: nn.Module, model: nn.Module) -> str | None:
    """The first difference between two models' state dicts (keys or shapes), in words."""
    a, b = _shapes(rebuilt), _shapes(model)
    if a.keys() != b.keys():
        extra, missing = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        return (f"the rebuilt model has {'extra keys ' + ', '.join(extra[:3]) if extra else ''}"
                f"{'; ' if extra and missing else ''}{'lacks ' + ', '.join(missing[:3]) if missing else ''}")
    for k in a:
        if a[k] != b[k]:
            return f"{k} is {a[k]} rebuilt and {b[k]} in the model"
    return None


def _rebuild(factory: str, kwargs: dict, steps: list[dict], inputs: Inputs | None,
             what: str) -> nn.Module:
    """``factory(**kwargs)`` with the removals replayed; the caller's random generator untouched."""
    from ..pruning import apply_steps

    with torch.random.fork_rng(devices=[]):
        model = build_from_factory(factory, kwargs, what=what)
    if steps:
        apply_steps(model, steps, inputs)
    return model


def save_pruned(model: nn.Module | tuple, folder: str | Path | list, *legacy: object,
                steps: list[dict] | None = None, info: object = None, spec: dict | None = None,
                factory: str | None = None, factory_kwargs: dict | None = None,
                original: nn.Module | None = None, example_inputs: Inputs | None = None) -> Path:
    """Write a (physically pruned) model into ``folder`` so :func:`load_model` can rebuild it.

    Args:
        model: the pruned model, or the ``(model, info)`` pair ``prune_units`` returns.
        folder: where to write ``pruned.json``, ``weights.pt`` and ``example_inputs.pt``. The
            older positional order ``save_pruned(model, steps, folder, info, spec)`` still works,
            with a ``DeprecationWarning``.
        steps: the recorded removals (default: ``info``'s).
        info: the ``prune_units`` record (a ``StructuredResult`` or its ``to_dict()``), kept in
            ``pruned.json``.
        spec: ``create_model`` arguments of a registry model (default: ``model.meta.spec()``).
        factory: for a model outside the registry, ``"pkg.module:function"`` (or ``:Class``)
            that builds the unpruned model from ``factory_kwargs`` (JSON data). Checked here:
            its model, with the removals replayed, must have the pruned model's shapes.
        original: the unpruned model, when there is no factory: its class is recorded as the
            factory if it can be rebuilt with no arguments (checked as above). Otherwise the
            folder is written anyway and says what ``load_model`` needs: a fresh, unpruned
            instance, ``load_model(folder, model=...)``.
        example_inputs: the inputs the removals were traced with (a tensor, tuple or dict;
            required outside the registry when there are removals to replay).

    Nothing is pickled: the architecture comes from the registry, the factory or the caller.
    """
    from ..pruning import StructuredResult
    from ..train.checkpoint import atomic_save, atomic_write_json

    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], nn.Module):
        model, pair_info = model
        info = pair_info if info is None else info
    model = _check_module(model, "save_pruned's model")
    if isinstance(folder, (list, tuple)):  # the older order: save_pruned(model, steps, folder, info, spec)
        if not legacy or len(legacy) > 3 or steps is not None:
            raise TopopruneError("save_pruned(model, folder, steps=...): give the folder second (the "
                                 "older order is save_pruned(model, steps, folder, info, spec))")
        from .._deprecation import warn_deprecated

        warn_deprecated("save_pruned(model, steps, folder, info, spec)",
                        "save_pruned(model, folder, steps=..., info=..., spec=...) or save_pruned((model, info), folder)")
        steps, folder = list(folder), legacy[0]
        if len(legacy) > 1:
            info = legacy[1] if info is None else info
        if len(legacy) > 2:
            spec = legacy[2] if spec is None else spec
    elif legacy:
        raise TopopruneError(f"save_pruned takes one folder, then keywords (steps=, info=, spec=, factory=); "
                             f"got {folder!r} and {legacy!r}")
    out = _user_path("save_pruned folder", folder)
    if isinstance(info, StructuredResult):
        if example_inputs is None:  # the inputs prune_units traced with
            example_inputs = info.example_inputs
        info = info.to_dict()
    if info is not None and not isinstance(info, dict):
        raise TopopruneError(f"info must be prune_units' record (StructuredResult or a dict), got "
                             f"{type(info).__name__}")
    info = dict(info or {})
    if steps is None:
        steps = info.get("steps", [])
    if isinstance(steps, (list, tuple)):  # numpy/torch integers become plain ints for JSON
        steps = [{**s, "pruned": [int(i) if isinstance(i, numbers.Integral) else i for i in s["pruned"]]}
                 if isinstance(s, dict) and isinstance(s.get("pruned"), (list, tuple)) else s for s in steps]
    if not _valid_steps(steps):
        raise TopopruneError("steps must be a list of {'layer': name, 'pruned': [unit indices]} (info.steps)")
    inputs = None if example_inputs is None else move_inputs(as_inputs(example_inputs), "cpu")
    meta = getattr(model, "meta", None)
    if factory is not None and spec is not None:
        raise TopopruneError("save_pruned: give one of spec (a registry model) and factory, not both")
    if factory is None and factory_kwargs:
        raise TopopruneError("save_pruned: factory_kwargs needs factory='pkg.module:function'")
    record: dict = {"format": PRUNED_FORMAT, "model": None, "factory": None, "kwargs": {}, "needs": None,
                    "model_class": class_path(original if original is not None else model)}
    if spec is not None or (factory is None and meta is not None):
        spec = spec if spec is not None else meta.spec()
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TopopruneError(f"spec must be create_model arguments with the model's name, got {spec!r}"[:300])
        record["model"] = spec
    else:
        needs_inputs = bool(steps) and inputs is None
        if needs_inputs:
            raise TopopruneError(
                f"save_pruned needs example_inputs for a {type(model).__name__} (a model outside the "
                "registry): its removals are replayed by tracing the model on them when it is loaded")
        if factory is not None:
            kwargs = check_kwargs(factory_kwargs, "factory_kwargs")
            rebuilt = _rebuild(factory, kwargs, steps, inputs, "factory")
            problem = _shape_mismatch(rebuilt, model)
            if problem:
                raise TopopruneError(f"factory {factory!r} with kwargs {kwargs} does not rebuild this model "
                                     f"after its {len(steps)} removal(s): {problem}; allowed: the factory "
                                     "and kwargs that built the unpruned model")
            record.update(factory=factory, kwargs=kwargs)
        else:
            record.update(_class_factory(original if original is not None else model, model, steps, inputs))
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(model.state_dict(), out / "weights.pt")
    if inputs is not None:
        atomic_save(inputs, out / _INPUTS_FILE)
    elif (out / _INPUTS_FILE).exists():  # a stale file from an earlier save into this folder
        (out / _INPUTS_FILE).unlink()
    record.update(example_inputs=_INPUTS_FILE if inputs is not None else None,
                  inputs=describe_inputs(inputs) if inputs is not None else "", steps=steps, info=info)
    atomic_write_json(record, out / "pruned.json")
    read_pruned(out)  # fail here, not at load time, if unreadable
    return out


def _class_factory(original: nn.Module, model: nn.Module, steps: list[dict], inputs: Inputs | None) -> dict:
    """``{"factory": "module:Class"}`` when the original's class, built with no arguments and
    with the removals replayed, has the pruned model's shapes; else ``{"needs": why}``."""
    cls = type(original).__name__
    how = (f"load it with topoprune.load_model(folder, model={cls}(...)), passing a fresh, unpruned "
           "instance built as the original was; or save with factory='pkg.module:function'")
    path = class_path(original)
    if path is None:
        where = type(original).__module__
        why = (f"its class {cls} is defined in {'the main script' if where == '__main__' else 'a function'}"
               ", which another process cannot import")
        return {"needs": f"the architecture: {why}; {how}"}
    try:
        rebuilt = _rebuild(path, {}, steps, inputs, "class")
    except TopopruneError as exc:
        return {"needs": f"the architecture: {path} could not be rebuilt with no arguments ({exc}); {how}"}
    problem = _shape_mismatch(rebuilt, model)
    if problem:
        return {"needs": f"the architecture: {path}() with no arguments is not this model ({problem}); {how}"}
    return {"factory": path, "kwargs": {}}


def load_model(path: str | Path, *, model: nn.Module | None = None, trust_pickle: bool = False) -> nn.Module:
    """Load a model from a file or folder, **in evaluation mode** (``model.eval()``), as Hugging
    Face's ``from_pretrained`` does: BatchNorm uses its stored statistics and dropout is off, so
    a reloaded model gives the saved model's outputs. Call ``.train()`` to fine-tune it.

    Reads:
        - a pruned-model folder (``topoprune prune`` / :func:`save_pruned`): the architecture is
          built (registry, factory, or ``model``: a fresh, unpruned instance you pass), the
          recorded removals are replayed, the weights loaded strictly;
        - a ``topoprune train`` checkpoint or run folder (registry models; with ``model``, any);
        - a state dict, loaded into ``model``;
        - a TorchScript archive (``torch.jit.save``): returned as is; it runs and exports, but
          cannot be pruned structurally (its layers are compiled code);
        - a whole model saved with ``torch.save(model)``, only with ``trust_pickle=True``:
          unpickling runs code stored in the file.

    Raises:
        TopopruneError: one line naming the file, what is wrong, and what is allowed.
    """
    p = _user_path("model", path)
    if model is not None:
        model = _check_module(model, "load_model's model=")
    if p.is_dir() and (p / "pruned.json").is_file():
        return _load_pruned(read_pruned(p), model).eval()
    if p.is_dir() and (p / "checkpoint.pt").is_file():
        p = p / "checkpoint.pt"
    if p.is_file():
        return _load_file(p, model, trust_pickle).eval()
    if p.is_dir():
        raise TopopruneError(f"{p} is a folder without pruned.json or checkpoint.pt; allowed: a pruned-model "
                             "folder (pruned.json + weights.pt), a `topoprune train` run folder or its "
                             "checkpoint.pt")
    raise TopopruneError(f"{p} does not exist; allowed: a pruned-model folder (pruned.json + weights.pt), "
                         "a `topoprune train` run folder or its checkpoint.pt, a model file")


def _load_pruned(rec: PrunedFolder, model: nn.Module | None) -> nn.Module:
    from ..pruning import apply_steps

    where = rec.path / "pruned.json"
    if model is not None:
        name = type(model).__name__
    elif rec.spec is not None:
        spec = dict(rec.spec)
        name = spec.pop("name")
        model = _create(name, spec, where)
    elif rec.factory is not None:
        name = rec.factory
        with torch.random.fork_rng(devices=[]):  # the weights come from the folder
            model = build_from_factory(rec.factory, rec.factory_kwargs, what=f"{where}: factory")
    else:
        raise TopopruneError(f"{rec.path} cannot rebuild its model alone; it needs {rec.needs} (CLI: "
                             f"--model pkg.module:factory --checkpoint {rec.path})")
    inputs = load_inputs_file(rec.example_inputs) if rec.example_inputs is not None else None
    if rec.steps:
        sizes = {n: out_units(m) for n, m in weighted_layers(model).items()}
        for step in rec.steps:  # what the file names must exist in the fresh model
            n = sizes.get(step["layer"])
            bad = [i for i in step["pruned"] if n is not None and not 0 <= i < n]
            if bad:
                raise TopopruneError(f"{where}: a step removes units {bad[:5]} of {step['layer']!r}, "
                                     f"which has {n}")
        if inputs is None and getattr(model, "meta", None) is None:
            raise TopopruneError(f"{where}: {len(rec.steps)} removal(s) to replay on a {name}, and no "
                                 f"{_INPUTS_FILE} to trace it with; allowed: a folder written by "
                                 "save_pruned(..., example_inputs=...)")
        try:
            apply_steps(model, rec.steps, inputs)
        except (IndexError, RuntimeError, ValueError) as exc:  # TopopruneError is a ValueError
            raise TopopruneError(f"{where}: its steps do not replay on {name!r}: {_first_line(exc)}") from None
    return load_checkpoint_into(model, rec.path / "weights.pt")


def _zip_kind(p: Path) -> str | None:
    """``"torchscript"`` or ``"exported"`` (a torch.export .pt2) for such zip archives, else None."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as z:
            names = {n.split("/", 1)[-1] for n in z.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "constants.pkl" in names and "data.pkl" in names:
        return "torchscript"
    if "archive_format" in names:
        return "exported"
    return None


_NOT_PRUNABLE = ("it runs and exports, but cannot be pruned or analysed layer by layer: its layers are "
                 "compiled code, which topoprune cannot change; allowed: the model as Python code "
                 "(a registry name, --model pkg.module:factory with --checkpoint weights, or a whole "
                 "model saved with torch.save(model), with --trust-pickle)")


def _load_file(p: Path, model: nn.Module | None, trust_pickle: bool) -> nn.Module:
    kind = _zip_kind(p)
    if kind == "torchscript":
        if model is not None:
            raise TopopruneError(f"checkpoint {str(p)!r} is a TorchScript archive, not a state dict; "
                                 "allowed: a state dict saved with torch.save(model.state_dict(), path)")
        try:
            with warnings.catch_warnings():  # torch.jit is deprecated; such files still exist
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(p), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad archive
            raise TopopruneError(f"{p} is a damaged TorchScript archive: {_first_line(exc)}") from None
    if kind == "exported":
        raise TopopruneError(f"{p} is a torch.export archive (.pt2); load it with "
                             "torch.export.load(path).module(); an exported program " + _NOT_PRUNABLE[3:])
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_TORCHSCRIPT_WARNING)
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
        if not _holds_pickled_objects(p, exc):
            raise TopopruneError(f"checkpoint {str(p)!r} {_torch_load_problem(p, exc)}") from None
        if not trust_pickle:
            raise TopopruneError(
                f"{str(p)!r} holds pickled Python objects (a whole model saved with torch.save(model)?): "
                "loading it runs code stored in the file, so it is refused unless you trust the file: "
                "load_model(path, trust_pickle=True) (CLI: --trust-pickle); or save model.state_dict() "
                "and load it into the architecture") from None
        obj = _unpickle(p)
        if isinstance(obj, nn.Module):
            return obj if model is None else _load_state(model, obj.state_dict(), str(p))
    if isinstance(obj, dict) and "model" in obj and "epoch" in obj:  # a `topoprune train` checkpoint
        if model is not None:
            return _load_state(model, obj["model"], str(p))
        spec = obj.get("model_spec")
        if not spec:
            raise TopopruneError(f"{p} records no model architecture (model_spec): it holds the weights of "
                                 "a model outside the registry; give the architecture: load_model(path, "
                                 "model=fresh_model) (CLI: --model pkg.module:factory --checkpoint PATH)")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TopopruneError(f"{p}: its model_spec must be a mapping with the model's name, got {spec!r}"[:300])
        spec = dict(spec)
        if "input_shape" in spec:  # checkpoints of topoprune train
            shape = spec.pop("input_shape")
            if not isinstance(shape, (list, tuple)) or len(shape) != 3:
                raise TopopruneError(f"{p}: model_spec input_shape must be [C, H, W], got {shape!r}")
            spec["in_channels"], spec["input_size"] = shape[0], tuple(shape[1:])
        built = _create(spec.pop("name"), spec, p)
        return _load_state(built, obj["model"], str(p))
    if model is not None:
        return _load_state(model, _state_of(obj), str(p))
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TopopruneError(f"{p} is a state dict: weights without an architecture; allowed: "
                             "load_model(path, model=fresh_model) (CLI: --model NAME_OR_FACTORY "
                             "--checkpoint PATH)")
    raise TopopruneError(f"{p} is not a topoprune training checkpoint (a dict with model and epoch); "
                         f"it holds {type(obj).__name__}")


def _holds_pickled_objects(p: Path, exc: Exception) -> bool:
    """torch.load(weights_only=True) refused the file because it pickles more than tensors."""
    with p.open("rb") as f:
        head = f.read(4)
    return "weights only load failed" in str(exc).lower() and (head.startswith(b"PK") or head[:1] == b"\x80")


def _unpickle(p: Path) -> object:
    """``torch.load(weights_only=False)``: only on the caller's explicit trust."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(p, map_location="cpu", weights_only=False)  # noqa: S614 - trust_pickle=True
    except (AttributeError, ModuleNotFoundError, ImportError) as exc:
        raise TopopruneError(f"{p} pickles a model whose class is not importable here ({_first_line(exc)}); "
                             "a pickle stores where the class is, not its code: run where that module is "
                             "importable, or save model.state_dict() instead") from None
    except Exception as exc:  # noqa: BLE001 - unpickling raises many types
        raise TopopruneError(f"{p} could not be unpickled: {_first_line(exc)}") from None


def require_python_model(model: nn.Module, source: str) -> nn.Module:
    """Refuse a model topoprune cannot change (a TorchScript module), naming where it came from."""
    if isinstance(model, torch.jit.ScriptModule):
        raise TopopruneError(f"{source} is a TorchScript archive: " + _NOT_PRUNABLE)
    return model


def _create(name: str, spec: dict, where: Path) -> nn.Module:
    """create_model from a saved spec; a bad spec names the file it came from."""
    from ..models import create_model

    try:
        return create_model(name, **spec)
    except TopopruneError as exc:
        raise TopopruneError(f"{where}: {exc}") from None
