"""Reading user files: weight arrays (``.npy``/``.npz``) and model checkpoints.

Every failure names the file and what was expected, so a CLI user sees one clear line.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError

__all__ = ["load_weights_file", "load_checkpoint_into"]


def load_weights_file(path: str | Path) -> dict[str, np.ndarray]:
    """Load ``.npy`` (one layer) or ``.npz`` (one layer per array, in file order).

    Raises:
        TopopruneError: missing or unreadable file, a suffix other than .npy/.npz.
    """
    p = Path(path)
    if not p.is_file():
        raise TopopruneError(f"weight file {str(p)!r} does not exist")
    if p.suffix not in (".npy", ".npz"):
        raise TopopruneError(f"weight file {str(p)!r}: expected a .npy or .npz file")
    try:
        if p.suffix == ".npy":
            return {p.stem: np.load(p, allow_pickle=False)}
        with np.load(p, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TopopruneError(f"weight file {str(p)!r} could not be read: {exc}") from None


def load_checkpoint_into(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict into ``model``. Accepts a bare state dict, or a dict holding one under
    ``"model"``, ``"state_dict"`` or ``"model_state"`` (what ``topoprune train`` writes).

    Raises:
        TopopruneError: missing or corrupt file, or keys/shapes that do not fit the model.
    """
    p = Path(path)
    if not p.is_file():
        raise TopopruneError(f"checkpoint {str(p)!r} does not exist")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if "weights only load failed" in first.lower():
            first = "torch.load(weights_only=True) refused it: only tensors and plain containers load"
        raise TopopruneError(
            f"checkpoint {str(p)!r} is corrupt or not a torch state-dict file ({first})"
        ) from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TopopruneError(f"checkpoint {str(p)!r} holds no state dict of tensors")
    try:
        model.load_state_dict(obj)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise TopopruneError(
            f"checkpoint {str(p)!r} does not fit the model: {' '.join(first[:3])}"
        ) from None
    return model


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


def save_pruned(model: nn.Module, steps: list[dict], out_dir: str | Path, info: dict | None = None,
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

    from ..models import create_model
    from ..pruning import apply_steps

    p = Path(path)
    if p.is_dir() and (p / "pruned.json").is_file():
        try:
            record = json.loads((p / "pruned.json").read_text())
        except (OSError, ValueError) as exc:
            raise TopopruneError(f"{p / 'pruned.json'} is unreadable: {exc}") from None
        if record.get("format") != PRUNED_FORMAT:
            raise TopopruneError(f"{p / 'pruned.json'}: unknown format {record.get('format')!r}; "
                                 f"expected {PRUNED_FORMAT!r}")
        spec = dict(record["model"])
        model = create_model(spec.pop("name"), **spec)
        apply_steps(model, record["steps"], torch.zeros(1, *model.meta.input_shape))
        return load_checkpoint_into(model, p / "weights.pt")
    if p.is_dir() and (p / "checkpoint.pt").is_file():
        p = p / "checkpoint.pt"
    if p.is_file():
        from ..train.checkpoint import load_training_checkpoint

        state = load_training_checkpoint(p)
        spec = state.get("model_spec")
        if not spec:
            raise TopopruneError(f"{p} records no model architecture (model_spec)")
        spec = dict(spec)
        if "input_shape" in spec:  # checkpoints of topoprune train
            shape = spec.pop("input_shape")
            spec["in_channels"], spec["input_size"] = shape[0], tuple(shape[1:])
        model = create_model(spec.pop("name"), **spec)
        model.load_state_dict(state["model"])
        return model
    raise TopopruneError(f"{p} is neither a pruned-model folder (pruned.json + weights.pt) nor a "
                         "training checkpoint")
