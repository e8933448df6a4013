"""The result row of one cell (model, method, sparsity, seed): what ``results.jsonl`` holds.

Pairs are ``[dense, pruned]``. Rows written by older versions load too (unknown keys are kept;
rows without BN recalibration have no recalibrated accuracy), so a report can always be rebuilt from
a run folder.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Row", "RowKey", "row_key"]

RowKey = tuple[str, str, float, int]


class Row(BaseModel):
    """One finished cell."""

    model_config = ConfigDict(extra="allow", strict=False)

    model: str
    method: str  # the method's key: its label if the config gives one, else its name
    kind: Literal["structured", "unstructured"]
    algorithm: str | None = None  # the registered method, when ``method`` is a label
    sparsity: float
    seed: int
    params: list[int]
    nonzero_params: list[int]
    macs: list[int]
    flops: list[int]
    latency_ms: list[dict[Any, float] | None]  # per batch size, dense and pruned
    dense_acc: float
    acc_after_prune: float  # right after pruning, before BatchNorm recalibration (= acc_pruned_raw)
    acc_pruned_raw: float | None = None  # the same, under the name that pairs it with the next
    acc_pruned_recal: float | None = None  # after BatchNorm recalibration: recovery's start (curve[0])
    bn_recalibration: dict[str, Any] | None = None  # what recalibrate_bn did (layers, batches, note)
    acc_after_recovery: float
    recovery_curve: list[float]
    epochs_to_recover: int | None
    seconds_to_recover: float | None
    prune_seconds: float
    np_dense: dict[str, float]
    np_after: dict[str, float]
    np_retained: float | None
    compression: dict[str, float]
    diagram_layer: str
    diagram_deaths: list[float]
    ga: dict[str, Any] | None = None
    imp_rounds: list[dict[str, Any]] | None = None
    warnings: list[str] = []
    # unstructured cells: collapse, connectivity, tree kept, vs critical ratio (analysis.collapse_report)
    collapse: dict[str, Any] | None = None
    # budget comparisons: the target, the allocation, units removed per layer, the count met
    budget: dict[str, Any] | None = None
    # the speed options the cell's recovery ran with (precision, channels_last, compile), after any
    # fallback on the machine that ran it; None in rows written before they were recorded
    train_settings: dict[str, Any] | None = None
    # a control cell: the control and the method whose layer budget it fills (``method`` is "<of>+<control>")
    control: str | None = None
    control_of: str | None = None
    train_seed: int | None = None  # the training seed of the baseline this cell started from
    # provenance: the topoprune commit ("+dirty": tracked files changed; None: not a git checkout),
    # package versions, and when the cell started (its prune stage) and finished (ISO 8601)
    commit: str | None = None
    versions: dict[str, str] | None = None
    started: str | None = None
    finished: str | None = None
    # torch's intra-op threads in the process that finished the cell: its latency and its timings
    # depend on them (``--workers N`` gives each worker its share of the cores)
    threads: int | None = None

    @property
    def key(self) -> RowKey:
        return (self.model, self.method, self.sparsity, self.seed)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; ``algorithm`` only for a labelled variant, as rows always were."""
        d = self.model_dump(mode="json")
        if d.get("algorithm") is None:
            d.pop("algorithm", None)
        for key in ("budget", "control", "control_of"):  # only where they apply
            if d.get(key) is None:
                d.pop(key, None)
        return d


def row_key(row: dict) -> RowKey:
    return (row["model"], row["method"], row["sparsity"], row["seed"])
