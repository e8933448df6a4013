"""Experiments: files in and out (checkpoints, weight files); the runner and reports come later."""

from .artifacts import load_checkpoint_into, load_weights_file

__all__ = ["load_checkpoint_into", "load_weights_file"]
