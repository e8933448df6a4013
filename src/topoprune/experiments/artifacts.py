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
