"""Unstructured methods: one-shot magnitude and random masks, IMP and T-IMP.

IMP and T-IMP run through :func:`topoprune.pruning.schedules.imp` only, in one of two modes:

- without ``fraction``: from the trained dense model, ``rounds`` removals of
  ``1 - (1 - s)^(1/rounds)`` each (the last lands exactly on the cell's sparsity ``s``),
  fine-tuning ``epochs`` between rounds (or rewinding to the initialisation with
  ``rewind: init``); the recovery that follows trains the last round;
- with ``fraction``: one trajectory per (model, method, seed) from the saved initialisation
  (round 0 trains it), every round removing ``fraction`` of what remains, rewinding and
  retraining; the cell at sparsity ``s`` takes the first round that reaches it.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from ...errors import TopopruneError
from .base import ApplyRequest, Needs, PruneOutcome, UnstructuredMethod, register_method

if TYPE_CHECKING:
    import torch

__all__ = ["Magnitude", "RandomWeights", "IMP", "TIMP", "SynFlow"]

Scope = Literal["local", "global"]


def reaches(sparsity: float, target: float) -> bool:
    """Whether a round at ``sparsity`` reaches the cell's ``target``: its density (the share of
    weights left) is at most 1 % above the target's. Relative, not absolute: at 1000x compression
    an absolute 1e-3 would let a round at 0.998 (2x the weights) stand in for 0.999; the 1 % absorbs
    the rounding of counts and a target written to a few digits (0.893 for 1 - 0.8^10)."""
    return 1 - sparsity <= (1 - target) * 1.01 + 1e-12


def lands_on(sparsity: float, target: float) -> bool:
    """Whether a mask at ``sparsity`` measures the ``target``: it :func:`reaches` it and leaves at
    least 1/1.01 of the target's weights. The first round that reaches a target can overshoot it
    (rounds of 0.5 go from 0.75 to 0.875): a cell labelled 0.8 would then hold 0.875's weights."""
    return reaches(sparsity, target) and 1 - sparsity >= (1 - target) / 1.01 - 1e-12


class _OneShot(UnstructuredMethod):
    scope: Scope = Field("global", description="rank weights per layer (local) or across layers (global)")
    _selection: ClassVar[str]

    def apply(self, model: torch.nn.Module, request: ApplyRequest) -> PruneOutcome:
        from ..masks import prunable_layers, prune_weights

        _, rec = prune_weights(model, request.sparsity, method=self._selection, scope=self.scope,
                               seed=request.seed, preserve=getattr(self, "preserve", None), inplace=True)
        return PruneOutcome(model, {"rounds": [rec.to_dict()], "targets": list(prunable_layers(model)),
                                    "warnings": rec.warnings})


@register_method("magnitude")
class Magnitude(_OneShot):
    """One-shot magnitude pruning: the smallest ``|w|`` go."""

    summary: ClassVar[str] = "one-shot: the smallest |w| go (per layer or global), optionally keeping each layer's spanning tree"
    _selection: ClassVar[str] = "magnitude"
    preserve: Literal["mst"] | None = Field(
        None, description="mst: keep every layer's maximum spanning tree first (T-IMP's selection, one "
        "shot; Balwani & Krzyston 2022)")


@register_method("random-weights")
class RandomWeights(_OneShot):
    """One-shot random unstructured pruning, seeded: the baseline to beat."""

    summary: ClassVar[str] = "one-shot: seeded random weights go"
    _selection: ClassVar[str] = "random-weights"


class _Iterative(UnstructuredMethod):
    rounds: int = Field(3, ge=1, le=1000, description="pruning rounds")
    scope: Scope = Field("global", description="rank weights per layer (local) or across layers (global)")
    rewind: Literal["none", "init"] | None = Field(
        None, description="after each removal: none (fine-tune) or init (rewind to the initialisation); "
        "default none without fraction, init with it")
    epochs: int | None = Field(None, ge=1, le=100_000, description="training epochs per round (default: the recovery's)")
    fraction: float | None = Field(None, gt=0, lt=1, description="share of the remaining weights removed per "
                                   "round; given, one trajectory per seed serves every sparsity")
    _preserve: ClassVar[str | None]

    def needs(self) -> Needs:
        trajectory = self.fraction is not None
        return Needs(training=True, trajectory=trajectory,
                     initialisation=not trajectory and self.rewind == "init")

    def check_sparsities(self, sparsities: Sequence[float]) -> str | None:
        """A trajectory (``fraction``) must reach every sparsity within its rounds."""
        if self.fraction is None:
            return None
        reach = 1 - (1 - self.fraction) ** self.rounds
        beyond = [s for s in sparsities if not reaches(reach, s)]
        if beyond:
            return (f"rounds: bad value {self.rounds}; allowed: enough rounds of {self.fraction:g} to reach "
                    f"sparsities {beyond} (these rounds reach {reach:.3f})")
        schedule = [1 - (1 - self.fraction) ** k for k in range(1, self.rounds + 1)]
        between = {s: next(r for r in schedule if reaches(r, s)) for s in sparsities}
        between = {s: r for s, r in between.items() if not lands_on(r, s)}
        if not between:
            return None
        first = ", ".join(f"{r:.4g}" for r in schedule[:4])
        s, r = next(iter(between.items()))
        return (f"fraction: bad value {self.fraction:g} for sparsities {list(between)}; allowed: a fraction "
                f"whose rounds land on every sparsity (rounds of {self.fraction:g} give {first}, ...: a cell "
                f"at sparsity {s:g} would be measured at {r:.4g}), or no fraction (each cell then prunes the "
                "trained model to exactly its sparsity)")

    def round_recipe(self, train_config, recovery_config):
        """The recipe every round trains with: a trajectory trains from the initialisation, as
        the dense baseline was (``train_config``); fine-tuning a trained model follows the
        recovery's (``recovery_config``); ``epochs`` per round is the setting, else the
        recovery's. ``None`` when a recipe is missing."""
        cfg = train_config if self.fraction is not None else recovery_config
        if cfg is None or recovery_config is None:
            return None
        epochs = self.epochs if self.epochs is not None else recovery_config.epochs
        return dataclasses.replace(cfg, epochs=epochs)  # both recipes carry the cell's seed

    def apply(self, model: torch.nn.Module, request: ApplyRequest) -> PruneOutcome:
        cfg = self.round_recipe(request.train_config, request.recovery_config)
        if request.data is None or cfg is None:
            raise TopopruneError(f"method {self.name!r} trains between rounds: it needs data and a "
                                 "training recipe")
        if self.fraction is None:
            return self._from_trained(model, request, cfg)
        return self._trajectory(model, request, cfg)

    def _from_trained(self, model, request: ApplyRequest, cfg) -> PruneOutcome:
        from ..masks import prunable_layers
        from ..schedules import imp

        rewind = self.rewind or "none"
        if rewind == "init" and request.init_state is None:
            raise TopopruneError(f"method {self.name!r} with rewind 'init' needs the dense model's "
                                 "initialisation, which this run did not save")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = imp(model, request.data, cfg, rounds=self.rounds, sparsity=request.sparsity,
                         scope=self.scope, rewind=rewind, preserve=self._preserve,
                         out_dir=None if request.workdir is None else request.workdir / "imp",
                         progress=request.progress, device=request.device, pretrained=True,
                         retrain_last=False, init=request.init_state)
        rounds = result.rounds[1:]
        return PruneOutcome(model, {"rounds": rounds,
                                    "targets": list(prunable_layers(model)),
                                    "warnings": [w for r in rounds for w in r["warnings"]]})

    def _trajectory(self, model, request: ApplyRequest, cfg) -> PruneOutcome:
        """Run (or resume) the seed's trajectory; return the first round reaching the sparsity."""
        import torch

        from ..masks import ensure_masks, prunable_layers
        from ..schedules import imp

        if request.shared_dir is None:
            raise TopopruneError(f"method {self.name!r} with fraction needs a trajectory folder")
        start = copy.deepcopy(model)
        if request.init_state is not None:
            start.load_state_dict(request.init_state)
        else:  # a loaded baseline has no saved initialisation: a fresh one, seeded by the cell
            for m in start.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        result = imp(start, request.data, cfg, rounds=self.rounds, per_round=self.fraction,
                     scope=self.scope, rewind=self.rewind or "init", preserve=self._preserve,
                     out_dir=request.shared_dir, progress=request.progress, device=request.device)
        k = next((i for i, rec in enumerate(result.rounds) if reaches(rec["sparsity"], request.sparsity)), None)
        if k is None:
            raise TopopruneError(f"the {self.name} trajectory ends at sparsity "
                                 f"{result.rounds[-1]['sparsity']:.3f}, below {request.sparsity}")
        state = torch.load(request.shared_dir / f"round{k:02d}" / "checkpoint.pt", map_location="cpu",
                           weights_only=True)["model"]
        pruned = copy.deepcopy(model)
        ensure_masks(prunable_layers(pruned).values())
        pruned.load_state_dict(state)
        records = result.rounds[: k + 1]
        return PruneOutcome(pruned, {"seconds": sum(r["train_seconds"] for r in records), "rounds": records,
                                     "targets": list(prunable_layers(pruned)), "trajectory": True,
                                     "warnings": [w for r in records for w in r["warnings"]]})


@register_method("imp")
class IMP(_Iterative):
    """Iterative magnitude pruning (Frankle & Carbin 2019)."""

    summary: ClassVar[str] = "iterative magnitude pruning with retraining or rewinding (Frankle & Carbin 2019)"
    _preserve: ClassVar[str | None] = None


@register_method("timp")
class TIMP(_Iterative):
    """Tree-preserving IMP (Balwani & Krzyston 2022): every layer's maximum spanning tree stays."""

    summary: ClassVar[str] = "IMP that keeps every layer's maximum spanning tree (Balwani & Krzyston 2022)"
    _preserve: ClassVar[str | None] = "mst"


@register_method("synflow")
class SynFlow(UnstructuredMethod):
    """SynFlow (Tanaka et al. 2020): data-free, iterative synaptic-flow pruning, global.

    ``iterations`` rounds on an exponential schedule (density after round k: ``d ** (k / n)``),
    each re-scoring ``|w * dR/dw|`` of the linearised network on an all-ones input (the model's
    ``meta.input_shape``, else the request's example inputs); ends exactly at the sparsity.
    """

    summary: ClassVar[str] = ("data-free iterative synaptic-flow pruning, global (Tanaka, Kunin, Yamins & "
                              "Ganguli, NeurIPS 2020)")
    iterations: int = Field(100, ge=1, le=10_000, description="pruning rounds, each re-scoring the weights")
    scope: Literal["global"] = Field("global", description="rank weights across layers (SynFlow's only scope)")

    def apply(self, model: torch.nn.Module, request: ApplyRequest) -> PruneOutcome:
        from ..masks import prunable_layers, prune_weights

        _, rec = prune_weights(model, request.sparsity, method="synflow", scope=self.scope,
                               iterations=self.iterations, example_inputs=request.example_inputs, inplace=True)
        return PruneOutcome(model, {"rounds": [rec.to_dict()], "iterations": self.iterations,
                                    "targets": list(prunable_layers(model)), "warnings": rec.warnings})
