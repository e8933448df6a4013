"""Experiments: configs in, run folders out.

- :mod:`.artifacts`: user files in and out (weight arrays, checkpoints, pruned models); the only
  names re-exported here.
- :mod:`.config`: the comparison config; :mod:`.runner` runs it, resumably, through the run
  folder's store (:mod:`.store`), the model-level stages (:mod:`.stages`: baseline, analysis)
  and the cells (:mod:`.cell`: prune, recover, measure), one :mod:`.row` per cell.
- :mod:`.report` and :mod:`.plots`: ``report.md`` / ``report.html`` from a run folder's rows.
- :mod:`.study`: the activation study (``topoprune study activations``).
"""

from .artifacts import load_checkpoint_into, load_model, load_weights_file, save_pruned

__all__ = ["load_checkpoint_into", "load_model", "load_weights_file", "save_pruned"]
