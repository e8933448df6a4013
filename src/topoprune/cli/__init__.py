"""The ``topoprune`` command line: parse, call the library, print.

Bad input ends in one line on stderr (``topoprune: error: ...``) naming the bad value and what
is allowed, exit code 2, and no traceback.

One module per command group, each registering its commands on the one application
(:mod:`.app`, which also holds the entry point and the error handling): :mod:`.registries`
(models, methods), :mod:`.topology` (critical, persistence), :mod:`.train`, :mod:`.data` (data
list, data fetch), :mod:`.prune`, :mod:`.experiments` (compare, report), :mod:`.evaluate`, :mod:`.study` (study
activations, study damage) and :mod:`.version`. Options several commands share are declared
once in :mod:`.options`; the helpers they share (model loading, option checks) are in
:mod:`.common`. Importing the CLI does not import torch.
"""

from __future__ import annotations

# Importing a command module registers its commands; `topoprune --help` lists them in this order.
from . import registries, topology, train, data, prune, experiments, evaluate, study, version  # noqa: F401
from .app import app, main

__all__ = ["app", "main"]
