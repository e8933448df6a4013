"""Training callbacks: neural-persistence tracking and early stopping.

A callback sees each finished epoch's record (a dict it may add fields to) and may ask to stop.
Its state goes into the checkpoint, so a resumed run continues the same counters.
"""

from __future__ import annotations

import math

from torch import nn

__all__ = ["BettiTracker", "Callback", "NPEarlyStopping", "NeuralPersistenceTracker", "ValLossEarlyStopping"]


class Callback:
    """Base class: override what you need."""

    def on_epoch_end(self, model: nn.Module, record: dict, history: list[dict]) -> bool:
        """Called after each epoch's evaluation; return True to stop training."""
        return False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class NeuralPersistenceTracker(Callback):
    """Record every layer's normalized neural persistence after each epoch (Rieck et al.).

    Adds ``record["np"]`` (layer name -> normalized NP) and ``record["np_mean"]``.
    """

    def __init__(self, p: float = 2.0, normalization: str = "layer", conv_graph: str = "channel"):
        self.p, self.normalization, self.conv_graph = p, normalization, conv_graph

    def on_epoch_end(self, model, record, history):
        from ..analysis import neural_persistence

        report = neural_persistence(model, p=self.p, normalization=self.normalization,
                                    conv_graph=self.conv_graph)
        record["np"] = {x.name: x.normalized for x in report.layers}
        record["np_mean"] = report.mean_normalized
        return False


class NPEarlyStopping(Callback):
    """Stop when mean normalized NP stops rising (Rieck et al. 2019).

    At each check: if NP rose by more than ``min_delta`` over the previous check, the counter is
    reset, otherwise incremented; training stops once it reaches ``patience``. The first
    ``burn_in`` checks are ignored. Uses ``record["np_mean"]``, computing it if no
    :class:`NeuralPersistenceTracker` ran before this callback.
    """

    def __init__(self, patience: int = 3, *, min_delta: float = 0.0, burn_in: int = 0, p: float = 2.0):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience, self.min_delta, self.burn_in = patience, min_delta, burn_in
        self._tracker = NeuralPersistenceTracker(p=p)
        self.checks, self.counter, self.previous = 0, 0, -math.inf

    def on_epoch_end(self, model, record, history):
        if "np_mean" not in record:
            self._tracker.on_epoch_end(model, record, history)
        value = record["np_mean"]
        self.checks += 1
        rose = value - self.previous > self.min_delta
        self.previous = value
        if self.checks <= self.burn_in:
            return False
        self.counter = 0 if rose else self.counter + 1
        record["np_patience"] = self.counter
        return self.counter >= self.patience

    def state_dict(self):
        return {"checks": self.checks, "counter": self.counter, "previous": self.previous}

    def load_state_dict(self, state):
        self.checks, self.counter, self.previous = state["checks"], state["counter"], state["previous"]


class ValLossEarlyStopping(Callback):
    """The usual baseline: stop when validation loss has not improved by ``min_delta`` on its best
    for ``patience`` epochs."""

    def __init__(self, patience: int = 3, min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience, self.min_delta = patience, min_delta
        self.best, self.counter = math.inf, 0

    def on_epoch_end(self, model, record, history):
        loss = record.get("val_loss")
        if loss is None:
            return False
        if loss < self.best - self.min_delta:
            self.best, self.counter = loss, 0
        else:
            self.counter += 1
        return self.counter >= self.patience

    def state_dict(self):
        return {"best": self.best, "counter": self.counter}

    def load_state_dict(self, state):
        self.best, self.counter = state["best"], state["counter"]


class BettiTracker(Callback):
    """Betti numbers of each class's representation after every layer, at chosen epochs
    (Kochar et al. 2021): how the network changes the topology of the data while it learns.

    Adds ``record["betti"]`` = ``{layer: {class: [b0, b1, ...]}}`` (see
    :func:`topoprune.analysis.betti_by_layer`) at the epochs in ``epochs`` (every epoch if
    ``None``). Keep ``inputs`` to a few hundred points per class: the cost is one Vietoris-Rips
    computation per class and layer.
    """

    def __init__(self, inputs, labels, epochs=None, *, max_dim: int = 1, method: str = "knn-geodesic",
                 k: int = 10, quantile: float = 0.1, layers=None):
        if epochs is not None and any((not isinstance(e, int)) or e < 1 for e in epochs):
            raise ValueError(f"epochs must be integers >= 1 (epoch numbers start at 1), got {list(epochs)}")
        self.inputs, self.labels = inputs, labels
        self.epochs = None if epochs is None else set(epochs)
        self.options = {"max_dim": max_dim, "method": method, "k": k, "quantile": quantile, "layers": layers}

    def on_epoch_end(self, model, record, history):
        if self.epochs is None or record["epoch"] in self.epochs:
            from ..analysis import betti_by_layer

            record["betti"] = betti_by_layer(model, self.inputs, self.labels, **self.options)
        return False
