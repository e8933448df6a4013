"""Reading user files: weight arrays (``.npy``/``.npz``) and model checkpoints.

Every failure names the file and what was expected, so a CLI user sees one clear line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError

__all__ = ["load_weights_file", "load_checkpoint_into"]

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
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TopopruneError(f"weight file {str(p)!r} is not a numpy .npy/.npz array file "
                             f"({first or type(exc).__name__})") from None


def _torch_load_problem(p: Path, exc: Exception) -> str:
    """Why ``torch.load(p, weights_only=True)`` failed, in words a user can act on."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    with p.open("rb") as f:
        head = f.read(4)
    allowed = "allowed: a state dict saved with torch.save(model.state_dict(), path)"
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
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    return _load_state(model, obj, str(p))


# --- pruned models -----------------------------------------------------------------------------
#
# A pruned-model folder holds:
#   pruned.json  {"format": "topoprune-pruned/1", "model": <create_model arguments>,
#                 "steps": [{"layer": name, "pruned": [unit indices at removal time]}, ...],
#                 "info": <prune_filters record>}
#   weights.pt   the pruned model's state_dict
# Loading rebuilds the registry architecture, replays the removals with torch-pruning (the same
# dependency graph, so BatchNorm and consumers shrink the same way), then loads the weights.
# No pickled modules, no edits to model code.

PRUNED_FORMAT = "topoprune-pruned/1"


def save_pruned(model: nn.Module, steps: list[dict], out_dir: str | Path, *, info: dict | None = None,
                spec: dict | None = None) -> Path:
    """Write a physically pruned registry model so :func:`load_model` can rebuild it."""
    import json

    from ..train.checkpoint import atomic_save, atomic_write_json

    meta = getattr(model, "meta", None)
    if spec is None:
        if meta is None:
            raise TopopruneError("save_pruned needs a registry model (with .meta) or an explicit spec")
        spec = meta.spec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(model.state_dict(), out / "weights.pt")
    atomic_write_json({"format": PRUNED_FORMAT, "model": spec, "steps": steps, "info": info or {}},
                      out / "pruned.json")
    json.loads((out / "pruned.json").read_text())  # fail here, not at load time, if unreadable
    return out


def load_model(path: str | Path) -> nn.Module:
    """Load a model saved by ``topoprune prune`` / :func:`save_pruned` (a folder), or a training
    checkpoint written by ``topoprune train`` (a ``checkpoint.pt``)."""
    import json

    from ..pruning import apply_steps

    p = _user_path("model", path)
    if p.is_dir() and (p / "pruned.json").is_file():
        where = p / "pruned.json"
        try:
            record = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise TopopruneError(f"{where} is unreadable: {first}") from None
        if not isinstance(record, dict):
            raise TopopruneError(f"{where}: expected a JSON object with format, model, steps; got "
                                 f"{type(record).__name__}")
        if record.get("format") != PRUNED_FORMAT:
            raise TopopruneError(f"{where}: unknown format {record.get('format')!r}; "
                                 f"expected {PRUNED_FORMAT!r}")
        spec, steps = record.get("model"), record.get("steps", [])
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TopopruneError(f"{where}: 'model' must be an object with the model's name and "
                                 f"create_model arguments, got {spec!r}"[:300])
        if not isinstance(steps, list) or not all(
            isinstance(x, dict) and isinstance(x.get("layer"), str) and isinstance(x.get("pruned"), list)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in x["pruned"]) for x in steps
        ):
            raise TopopruneError(f"{where}: 'steps' must be a list of {{\"layer\": name, \"pruned\": "
                                 "[unit indices]}")
        spec = dict(spec)
        name = spec.pop("name")
        model = _create(name, spec, where)
        sizes = {n: m.weight.shape[0] for n, m in model.named_modules()
                 if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.ndim >= 2}
        for step in steps:  # what the file names must exist in the fresh model
            n = sizes.get(step["layer"])
            bad = [i for i in step["pruned"] if n is not None and not 0 <= i < n]
            if bad:
                raise TopopruneError(f"{where}: a step removes units {bad[:5]} of {step['layer']!r}, "
                                     f"which has {n}")
        try:
            apply_steps(model, steps, torch.zeros(1, *model.meta.input_shape))
        except (IndexError, RuntimeError, ValueError) as exc:  # TopopruneError is a ValueError
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise TopopruneError(f"{where}: its steps do not replay on {name!r}: "
                                 f"{first}") from None
        return load_checkpoint_into(model, p / "weights.pt")
    if p.is_dir() and (p / "checkpoint.pt").is_file():
        p = p / "checkpoint.pt"
    if p.is_file():
        from ..train.checkpoint import load_training_checkpoint

        state = load_training_checkpoint(p)
        spec = state.get("model_spec")
        if not spec:
            raise TopopruneError(f"{p} records no model architecture (model_spec)")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TopopruneError(f"{p}: its model_spec must be a mapping with the model's name, got {spec!r}"[:300])
        spec = dict(spec)
        if "input_shape" in spec:  # checkpoints of topoprune train
            shape = spec.pop("input_shape")
            if not isinstance(shape, (list, tuple)) or len(shape) != 3:
                raise TopopruneError(f"{p}: model_spec input_shape must be [C, H, W], got {shape!r}")
            spec["in_channels"], spec["input_size"] = shape[0], tuple(shape[1:])
        model = _create(spec.pop("name"), spec, p)
        return _load_state(model, state["model"], str(p))
    if p.is_dir():
        raise TopopruneError(f"{p} is a folder without pruned.json or checkpoint.pt; allowed: a pruned-model "
                             "folder (pruned.json + weights.pt), a `topoprune train` run folder or its "
                             "checkpoint.pt")
    raise TopopruneError(f"{p} does not exist; allowed: a pruned-model folder (pruned.json + weights.pt), "
                         "a `topoprune train` run folder or its checkpoint.pt")


def _create(name: str, spec: dict, where: Path) -> nn.Module:
    """create_model from a saved spec; a bad spec names the file it came from."""
    from ..models import create_model

    try:
        return create_model(name, **spec)
    except TopopruneError as exc:
        raise TopopruneError(f"{where}: {exc}") from None
