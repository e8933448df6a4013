"""NNI-style ``config_list``: which layers are pruned, and at what sparsity.

Each entry may hold ``op_types`` (class names: ``"Conv2d"``, ``"Conv1d"``, ``"Linear"``,
``"Conv1D"`` for Hugging Face's transposed linear layer in GPT-2, or ``"default"`` for Conv2d,
Linear and Conv1D), ``op_names``, ``exclude_op_names``, ``exclude: true``, and ``sparse_ratio`` (``sparsity`` is an
alias). An entry applies to the layers it matches; later entries override earlier ones, and an
excluding entry removes a layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from torch import nn

from ..errors import TopopruneError
from ..models.layers import is_hf_conv1d

__all__ = ["resolve_config_list", "check_sparsity"]

_KEYS = {"op_types", "op_names", "exclude_op_names", "exclude", "sparse_ratio", "sparsity"}
# op type -> does a module have it; "Conv1d" is torch's convolution, "Conv1D" Hugging Face's
# transposed linear layer (the names differ in case only, as the classes do)
_TYPES: dict[str, Callable[[nn.Module], bool]] = {
    "Conv2d": lambda m: isinstance(m, nn.Conv2d),
    "Conv1d": lambda m: isinstance(m, nn.Conv1d),
    "Linear": lambda m: isinstance(m, nn.Linear),
    "Conv1D": is_hf_conv1d,
}
_DEFAULT = ("Conv2d", "Linear", "Conv1D")


def check_sparsity(value: object, where: str = "sparsity") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise TopopruneError(f"{where} must be a fraction in [0, 1), got {value!r}")
    return float(value)


def resolve_config_list(
    model: nn.Module, config_list: Sequence[Mapping], candidates: Mapping[str, nn.Module]
) -> dict[str, float]:
    """Layer name -> sparsity for every layer the config selects (and does not exclude)."""
    names = dict(model.named_modules())
    listing = ", ".join(candidates) or "(none)"
    result: dict[str, float | None] = {}
    for k, entry in enumerate(config_list):
        if not isinstance(entry, Mapping):
            raise TopopruneError(f"config_list[{k}] must be a dict, got {type(entry).__name__}")
        unknown = set(entry) - _KEYS
        if unknown:
            raise TopopruneError(
                f"config_list[{k}] has unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}"
            )
        types = entry.get("op_types")
        op_names = entry.get("op_names")
        if types is None and op_names is None and "exclude_op_names" not in entry:
            raise TopopruneError(f"config_list[{k}] needs op_types or op_names")
        for key in ("op_names", "exclude_op_names"):
            value = entry.get(key)
            if value is not None and (isinstance(value, str) or not isinstance(value, Sequence)
                                      or not all(isinstance(x, str) for x in value)):
                raise TopopruneError(f"config_list[{k}] {key} must be a list of layer names, got {value!r}")
        for name in list(op_names or []) + list(entry.get("exclude_op_names") or []):
            if name not in names:
                raise TopopruneError(f"config_list[{k}] names layer {name!r}, which does not exist; "
                                     f"prunable layers: {listing}")
            if name not in candidates:
                raise TopopruneError(
                    f"config_list[{k}] names layer {name!r}, a {type(names[name]).__name__}, which "
                    f"cannot be pruned; prunable layers: {listing}"
                )
        allowed_types: tuple[Callable[[nn.Module], bool], ...] | None = None
        if types is not None:
            if isinstance(types, str) or not isinstance(types, Sequence):
                raise TopopruneError(f"config_list[{k}] op_types must be a list of type names, got "
                                     f"{types!r}; allowed: {sorted(_TYPES) + ['default']}")
            resolved = []
            for t in types:
                if t == "default":
                    resolved += [_TYPES[d] for d in _DEFAULT]
                elif isinstance(t, str) and t in _TYPES:
                    resolved.append(_TYPES[t])
                else:
                    raise TopopruneError(f"config_list[{k}] op_types has {t!r}; allowed: "
                                         f"{sorted(_TYPES) + ['default']}")
            allowed_types = tuple(resolved)
        ratio = entry.get("sparse_ratio", entry.get("sparsity"))
        excluding = bool(entry.get("exclude", False))
        if ratio is None and not excluding and "exclude_op_names" not in entry:
            raise TopopruneError(f"config_list[{k}] needs sparse_ratio (or sparsity) or exclude")
        if ratio is not None:
            ratio = check_sparsity(ratio, f"config_list[{k}] sparse_ratio")
        for name, module in candidates.items():
            if allowed_types is not None and not any(has(module) for has in allowed_types):
                continue
            if op_names is not None and name not in op_names:
                continue
            if name in (entry.get("exclude_op_names") or []) or excluding:
                result[name] = None
            elif ratio is not None:
                result[name] = ratio
        for name in entry.get("exclude_op_names") or []:
            result[name] = None
    return {n: r for n, r in result.items() if r is not None}
