"""Experiments: configs in, run folders out.

- :mod:`.artifacts`: user files in and out (weight arrays, checkpoints, example inputs, model
  files, pruned models); the only names re-exported here. :mod:`.factory`: models built by the
  user's own ``pkg.module:function``; :mod:`.export`: ONNX / TorchScript / ``torch.export``
  files, checked against the eager model.
- :mod:`.config`: the comparison config; :mod:`.runner` runs it, resumably, through the run
  folder's store (:mod:`.store`), the model-level stages (:mod:`.stages`: baseline, analysis)
  and the cells (:mod:`.cell`: prune, recover, measure), one :mod:`.row` per cell.
- :mod:`.report` and :mod:`.plots`: ``report.md`` / ``report.html`` from a run folder's rows.
- :mod:`.study`: the activation study (``topoprune study activations``).
"""

from typing import Any

# Re-exported lazily (PEP 562): artifacts imports torch, and the CLI imports experiments.config
# (torch-free) to build its options; an eager import here cost every command ~1.5 s of start-up.
__all__ = ["PrunedFolder", "load_checkpoint_into", "load_inputs_file", "load_model", "load_weights_file",
           "read_pruned", "require_python_model", "save_pruned"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
