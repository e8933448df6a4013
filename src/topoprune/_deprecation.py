"""Deprecations, in one place: old public names keep working for at least one minor release.

The policy (docs/stability.md): a public name, parameter or meaning that changes keeps working
for at least one minor release after the one that changed it, and each use warns with a
``DeprecationWarning`` that names the replacement. Every change is listed in ``CHANGELOG.md``.

Three helpers cover every case:

- :func:`warn_deprecated` for a call site that took an old spelling;
- :func:`renamed_kwargs` for keyword arguments that were renamed;
- :func:`deprecated_module_names` for a module whose old attribute names now point to new ones
  (it returns the module's ``__getattr__``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ._version import __version__

__all__ = ["REMOVED_IN", "warn_deprecated", "renamed_kwargs", "deprecated_module_names"]

#: The release in which the names deprecated in this one may be removed.
REMOVED_IN = "0.3.0"


def warn_deprecated(old: str, new: str) -> None:
    """Warn that ``old`` is deprecated, naming ``new``, the spelling to use instead.

    The warning is attributed to the first frame outside topoprune (and outside pydantic and the
    import machinery, which run our validators and module ``__getattr__``), so Python's default
    filters show it in a user's ``__main__`` and a test runner points at the user's line, however
    deep inside the package the old spelling was noticed."""
    warnings.warn(f"{old} is deprecated since topoprune 0.2.0 and will be removed in {REMOVED_IN}; "
                  f"use {new}", DeprecationWarning, stacklevel=_outside_level())


def _outside_level() -> int:
    """The ``stacklevel`` of the first caller outside topoprune, seen from :func:`warn_deprecated`."""
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(2), 2  # level 1 is warn_deprecated itself
    while frame is not None:
        name = frame.f_code.co_filename
        inside = (os.path.abspath(name).startswith(here + os.sep) or "pydantic" in name
                  or name.startswith("<frozen importlib"))
        if not inside:
            return level
        frame, level = frame.f_back, level + 1
    return 2


def renamed_kwargs(function: str, kwargs: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """``kwargs`` with each old keyword (``renames``: old -> new) under its new name, warning once
    for each old name used. Giving both spellings at once is an error."""
    from .errors import TopopruneError

    out = {k: v for k, v in kwargs.items() if k not in renames}
    for old, new in renames.items():
        if old not in kwargs:
            continue
        if new in kwargs:
            raise TopopruneError(f"{function}(): give {new}= only ({old}= is its deprecated spelling)")
        warn_deprecated(f"{function}({old}=...)", f"{new}=")
        out[new] = kwargs[old]
    return out


def deprecated_module_names(module: str, aliases: Mapping[str, tuple[str, Callable[[], Any]]],
                            fallback: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` for old names: ``aliases`` maps each old name to
    ``(new spelling for the message, loader of the object)``. Other names go to ``fallback`` (a
    lazy-export ``__getattr__``) or raise ``AttributeError``."""

    def __getattr__(name: str) -> Any:
        alias = aliases.get(name)
        if alias is not None:
            new, load = alias
            warn_deprecated(f"{module}.{name}", new)
            return load()
        if fallback is not None:
            return fallback(name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
