"""The exception users see for bad input: it names the bad value and what is allowed.

It subclasses ``ValueError`` so callers that catch ``ValueError`` keep working; the CLI prints it
as a one-line error with a non-zero exit and no traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class TopopruneError(ValueError):
    """Bad input to topoprune: the message names the bad value and what is allowed."""


def closest(name: object, names: Iterable[str]) -> str | None:
    """The name in ``names`` closest to ``name`` if one is close (a typo), else ``None``."""
    if not isinstance(name, str):
        return None
    import difflib

    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_name(what: str, name: object, allowed: Iterable[str]) -> TopopruneError:
    """An error for a name that is not in a registry, listing the names that are and the closest
    one."""
    allowed = sorted(allowed)
    hint = closest(name, allowed)
    mean = f"did you mean {hint!r}? " if hint else ""
    return TopopruneError(f"unknown {what} {name!r}; {mean}available: {', '.join(allowed)}")
