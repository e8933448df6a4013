"""Experiments: files in and out (checkpoints, weight files); the runner and reports come later."""

from .artifacts import load_checkpoint_into, load_model, load_weights_file, save_pruned

__all__ = ["load_checkpoint_into", "load_model", "load_weights_file", "save_pruned"]
