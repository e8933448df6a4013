"""Iterative magnitude pruning (Frankle & Carbin 2019) and its tree-preserving variant T-IMP
(Balwani & Krzyston 2022).

Round 0 trains the dense model. Each later round removes ``per_round`` of the remaining weights
(smallest ``|w|``, per layer or across layers; T-IMP keeps each layer's maximum spanning tree
first), rewinds the survivors (to initialisation, to epoch K, or not at all = fine-tuning) and
retrains. Every round records per-layer sparsity, accuracy, neural persistence and the
tree/top-k overlap beside the paper's bound and chance.

With ``out_dir`` every round trains in its own resumable folder and finished rounds are stored
in ``imp.json``: rerunning after a crash continues where it stopped.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import DataSplits
from ..errors import TopopruneError
from ..models.introspect import effective_weight, layer_graph
from ..topology import mst_overlap
from ..train import Callback, TrainConfig, evaluate, train
from ..train.checkpoint import atomic_save, atomic_write_json
from ..train.loop import evaluate_validation
from .masks import current_mask, ensure_masks, prunable_layers, prune_weights

__all__ = ["imp", "IMPResult", "parse_rewind", "rewind_weights", "remaining_fraction"]


def parse_rewind(rewind: str, epochs: int) -> int | None:
    """``"init"`` -> 0, ``"epoch:K"`` -> K, ``"none"`` -> None (fine-tune)."""
    if rewind == "init":
        return 0
    if rewind == "none":
        return None
    if rewind.startswith("epoch:"):
        try:
            k = int(rewind.split(":", 1)[1])
        except ValueError:
            k = -1
        if 0 <= k < epochs:
            return k
    raise TopopruneError(f"rewind must be 'init', 'none' or 'epoch:K' with 0 <= K < {epochs}, got {rewind!r}")


@dataclass
class IMPResult:
    """One record per round (round 0 is the dense model)."""

    rounds: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rounds": self.rounds}


class _Snapshot(Callback):
    """Keeps the weights after epoch ``k`` of the dense training (rewinding to epoch K)."""

    def __init__(self, k: int, path: Path | None):
        self.k, self.path, self.state = k, path, None

    def on_epoch_end(self, model, record, history):
        if record["epoch"] == self.k:
            self.state = copy.deepcopy(model.state_dict())
            if self.path is not None:
                atomic_save(self.state, self.path)
        return False


def rewind_weights(model: nn.Module, targets: dict[str, nn.Module], state: dict) -> None:
    """Load ``state`` (a dense state dict) into the masked model: weights into ``weight_orig``,
    everything else as it is; masks stay."""
    from ..models.layers import weight_key

    weights = {weight_key(n, m) for n, m in targets.items()}  # "<layer>.weight", "<mha>.in_proj_weight"
    mapped = {}
    for key, value in state.items():
        if key in weights:
            mapped[f"{key}_orig"] = value
        elif not key.endswith("weight_mask"):
            mapped[key] = value
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected:
        raise TopopruneError(f"rewind state does not fit the model: unexpected {unexpected[:3]}")


def _measure(model: nn.Module, targets: dict[str, nn.Module], final: dict, rnd: int,
             warnings: Sequence[str]) -> dict:
    from ..analysis import neural_persistence

    layer_sparsity, overlap = {}, {}
    for name, m in targets.items():
        w = effective_weight(m).detach().cpu().numpy()
        layer_sparsity[name] = float((w == 0).mean())
        graph = layer_graph(m)
        if graph.any():
            o = mst_overlap(graph)
            overlap[name] = {"measured": o.measured, "bound": o.bound, "random": o.random,
                             "alpha": o.alpha, "density": o.density}
    total = sum(effective_weight(m).numel() for m in targets.values())
    zeros = sum(int((effective_weight(m) == 0).sum()) for m in targets.values())
    report = neural_persistence(model)
    return {
        "round": rnd, "sparsity": zeros / total, "remaining": 1 - zeros / total,
        "layer_sparsity": layer_sparsity,
        "test_acc": final["test_acc"], "val_acc": final["val_acc"],
        "np": {x.name: x.normalized for x in report.layers}, "np_mean": report.mean_normalized,
        "overlap": overlap, "warnings": list(warnings),
        "train_seconds": final.get("seconds_total", 0.0),
    }


def imp(
    model: nn.Module,
    data: DataSplits,
    config: TrainConfig,
    *,
    rounds: int = 10,
    per_round: float = 0.2,
    sparsity: float | None = None,
    scope: str = "global",
    rewind: str = "init",
    preserve: str | None = None,
    layers: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device | None = None,
    pretrained: bool = False,
    retrain_last: bool = True,
    init: Mapping[str, torch.Tensor] | None = None,
    **deprecated: Any,
) -> IMPResult:
    """Run IMP (``preserve=None``) or T-IMP (``preserve="mst"``) **in place** on ``model``.

    Args:
        model: the dense model. Untrained (its current weights are the initialisation; when
            resuming from ``out_dir`` the saved initialisation is used instead), or trained with
            ``pretrained=True``.
        data: dataset splits.
        config: the training recipe of every round.
        rounds: pruning rounds after the dense round 0.
        per_round: the share of the *remaining* weights removed in each round, in (0, 1)
            (torch's ``amount`` meaning).
        sparsity: instead of ``per_round``, the overall sparsity (fraction of the targeted weights
            removed) to reach after ``rounds`` rounds: each round removes
            ``1 - (1 - sparsity)^(1/rounds)`` of what remains and the last one lands exactly on it.
        scope: ``"global"`` (ranked across layers) or ``"local"`` (per layer).
        rewind: ``"init"``, ``"epoch:K"`` or ``"none"`` (fine-tune without rewinding).
        preserve: ``None`` (IMP) or ``"mst"`` (T-IMP).
        layers: layer names to prune (default: as :func:`~topoprune.pruning.prune_weights`,
            every Linear, Conv and Hugging Face ``Conv1D`` layer without tied weights).
        out_dir: folder for per-round checkpoints and ``imp.json``; rerun to resume.
        callbacks: passed to every round's training.
        device: where every round trains (see :func:`~topoprune.train.train`); masks and
            measurements stay with the model on its own device.
        pretrained: the model is already trained: round 0 only measures it.
        retrain_last: train after the last removal too (``False``: the caller recovers it).
        init: the weights ``rewind="init"`` returns to (default: the model's at the call).

    The old keywords ``fraction=`` and ``target=`` still work, with a ``DeprecationWarning``.
    """
    if deprecated:
        from .._deprecation import renamed_kwargs

        unknown = sorted(set(deprecated) - {"fraction", "target"})
        if unknown:
            raise TypeError(f"imp() got an unexpected keyword argument {unknown[0]!r}")
        given = renamed_kwargs("imp", deprecated, {"fraction": "per_round", "target": "sparsity"})
        if "sparsity" in given and sparsity is not None:
            raise TopopruneError("imp(): give sparsity= only (target= is its deprecated spelling)")
        per_round = given.get("per_round", per_round)
        sparsity = given.get("sparsity", sparsity)
    fraction, target = per_round, sparsity
    if not isinstance(rounds, int) or rounds < 0:
        raise TopopruneError(f"rounds must be an integer >= 0, got {rounds!r}")
    if target is not None:
        if not 0 < target < 1:
            raise TopopruneError(f"sparsity must be in (0, 1), got {target!r}")
        if rounds < 1:
            raise TopopruneError(f"a sparsity to reach needs rounds >= 1, got {rounds!r}")
        fraction = 1 - (1 - target) ** (1 / rounds)
    if not 0 < fraction < 1:
        raise TopopruneError(f"per_round must be in (0, 1), got {fraction!r}")
    if pretrained and rewind != "none" and rewind != "init":
        raise TopopruneError(f"a pretrained model can rewind to 'init' or 'none', got {rewind!r}")
    k = parse_rewind(rewind, config.epochs)
    settings = _settings(config, rounds, fraction, scope, rewind, preserve, layers,
                         target=target, pretrained=pretrained, retrain_last=retrain_last)
    targets = prunable_layers(model, layers)
    out = Path(out_dir) if out_dir is not None else None
    store = out / "imp.json" if out is not None else None
    result = IMPResult()
    if store is not None and store.exists():
        import json

        try:
            saved = json.loads(store.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise TopopruneError(f"{store} is damaged (not JSON): move it away to redo this IMP "
                                 "trajectory from its last round checkpoint") from None
        if saved.get("settings") != settings:
            raise TopopruneError(f"{store} was written with other IMP settings; use another out_dir")
        result.rounds = saved["rounds"]
    init = copy.deepcopy(dict(init) if init is not None else model.state_dict())
    if out is not None:  # the initialisation every rewind returns to survives a crash
        if (out / "init.pt").exists():
            init = torch.load(out / "init.pt", map_location="cpu", weights_only=True)
            if not pretrained:
                model.load_state_dict(init)
        else:
            atomic_save(init, out / "init.pt")
    snap = _Snapshot(k, out / "rewind.pt" if out is not None else None) if k and not pretrained else None

    for rnd in range(rounds + 1):
        round_dir = out / f"round{rnd:02d}" if out is not None else None
        done = rnd < len(result.rounds)
        resuming = round_dir is not None and (round_dir / "checkpoint.pt").exists()
        trains = not (rnd == 0 and pretrained) and (retrain_last or rnd < rounds)
        warnings: list[str] = []
        if rnd > 0:
            if done and not trains:  # an untrained round: its masked weights are in pruned.pt
                ensure_masks(targets.values())
                model.load_state_dict(torch.load(round_dir / "pruned.pt", map_location="cpu",
                                                 weights_only=True) if round_dir is not None else {})
                continue
            if done or resuming:
                ensure_masks(targets.values())  # the round's checkpoint holds its masks and weights
            else:
                amount = fraction
                if target is not None and rnd == rounds:  # land exactly on the target
                    amount = remaining_fraction(model, target, targets)
                _, rec = prune_weights(model, amount=amount, method="magnitude", scope=scope, preserve=preserve,
                                       layers=list(targets), inplace=True)
                warnings = rec.warnings
                if k is not None and trains:
                    rewind_state = init if k == 0 else (
                        snap.state if snap is not None and snap.state is not None
                        else torch.load(out / "rewind.pt", map_location="cpu", weights_only=True))
                    rewind_weights(model, targets, rewind_state)
        if not trains:
            if done:
                continue
            test = evaluate(model, data.test_x, data.test_y)[1]
            val = evaluate_validation(model, data)[1]  # None when validation is off
            final = {"test_acc": test, "val_acc": val, "seconds_total": 0.0}
            if round_dir is not None and rnd > 0:
                atomic_save(model.state_dict(), round_dir / "pruned.pt")
        else:
            cbs = list(callbacks) + ([snap] if (rnd == 0 and snap is not None) else [])
            res = train(model, data, config, out_dir=round_dir, callbacks=cbs, progress=progress,
                        description=f"IMP round {rnd}/{rounds}", device=device)
            if done:
                continue
            final = dict(res.final)
            final["seconds_total"] = sum(h["seconds"] for h in res.history)
        result.rounds.append(_measure(model, targets, final, rnd, warnings))
        if store is not None:
            atomic_write_json({"settings": settings, "rounds": result.rounds}, store)
    return result


def remaining_fraction(model: nn.Module, target: float, targets: Mapping[str, nn.Module] | None = None) -> float:
    """The fraction of the remaining weights to remove so that the overall sparsity of
    ``targets`` (default: every prunable layer) is ``target``."""
    layers = (targets if targets is not None else prunable_layers(model)).values()
    total = sum(effective_weight(m).numel() for m in layers)
    alive = sum(int(current_mask(m).sum()) for m in layers)
    keep = round((1 - target) * total)
    return max(0.0, min(0.999999, (alive - keep) / alive)) if alive else 0.0


def _settings(config, rounds, fraction, scope, rewind, preserve, layers, **options) -> dict:
    """What ``imp.json`` must match to resume; options at their defaults are left out, so
    trajectories written before they existed still resume."""
    defaults = {"target": None, "pretrained": False, "retrain_last": True}
    extra = {k: v for k, v in options.items() if v != defaults[k]}
    return {"train": config.to_dict(), "rounds": rounds, "fraction": fraction, "scope": scope,
            "rewind": rewind, "preserve": preserve, "layers": list(layers) if layers else None, **extra}
