"""Experiments: files in and out (checkpoints, weight files, here), comparison configs
(:mod:`.config`), the resumable runner (:mod:`.runner`), its report (:mod:`.report`,
:mod:`.plots`) and the activation study (:mod:`.study`). Import those modules directly; only the
file helpers are re-exported."""

from .artifacts import load_checkpoint_into, load_model, load_weights_file, save_pruned

__all__ = ["load_checkpoint_into", "load_model", "load_weights_file", "save_pruned"]
