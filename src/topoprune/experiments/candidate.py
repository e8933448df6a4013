"""The method ``topoprune evaluate`` tests: a user's class, an instance, or a registered name.

A class given as ``pkg.module:MyMethod`` is imported (the working directory too, as for model
factories). A class that ``@register_method`` registered keeps its name; one that is only
importable is registered while the evaluation runs (:func:`registered`) under a name made from
its class name (``MyMethod`` -> ``my-method``), unless that name belongs to another method.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TopopruneError
from ..pruning.methods import METHODS, Method, StructuredMethod, UnstructuredMethod, method_class

__all__ = ["Candidate", "resolve_candidate", "registered", "class_registrations", "register_classes"]


@dataclass(frozen=True)
class Candidate:
    """The method under test: its registry name, its settings (a config entry) and its class."""

    name: str
    method: Method
    source: str  # "pkg.module:Class", or the registered name it was given as
    label: str | None = None  # how the leaderboard names it, when not by its registry name

    @property
    def key(self) -> str:
        """The name rows and the leaderboard use: the label if given, else the registry name."""
        return self.label or self.name

    @property
    def structured(self) -> bool:
        return bool(self.method.structured)

    @property
    def class_name(self) -> str:
        return type(self.method).__name__

    def entry(self) -> dict[str, Any]:
        """The candidate as a config method entry (its explicitly given settings)."""
        return {"name": self.name, **({"label": self.label} if self.label else {}), **self.method.settings()}

    def code_digest(self) -> str | None:
        """The sha256 of the source file that defines the method's class, so that an evaluation
        can tell when a method's code changed between two calls; ``None`` for topoprune's own
        methods (every row records the topoprune commit) and for a class without a source file."""
        import sys

        module = type(self.method).__module__
        if module == "topoprune" or module.startswith("topoprune."):
            return None
        path = getattr(sys.modules.get(module), "__file__", None)
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
        except OSError:
            return None


def _kebab(name: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()
    return (re.sub(r"[^a-z0-9-]+", "-", text).strip("-") or "candidate")[:40]


def _is_method_class(obj: object) -> bool:
    """A pruning-method class a user could name (not the base classes themselves)."""
    return (isinstance(obj, type) and issubclass(obj, (StructuredMethod, UnstructuredMethod))
            and obj not in (StructuredMethod, UnstructuredMethod))


def resolve_candidate(method: object, label: str | None = None) -> Candidate:
    """A :class:`Candidate` from ``"pkg.module:Class"``, a registered name, a :class:`Method`
    subclass or an instance. Refused in one line: a path that does not import, an object that is
    not a pruning method, a class whose settings have no defaults (pass an instance)."""
    source = method if isinstance(method, str) else None
    if isinstance(method, str) and ":" in method:
        import sys

        from .factory import resolve_factory

        allowed = "allowed: 'pkg.module:Class', a StructuredMethod or UnstructuredMethod subclass"
        top = method.split(":", 1)[0].split(".")[0]
        if top in sys.stdlib_module_names:
            raise TopopruneError(f"method {method!r} names Python's standard library ({top}); {allowed}")

        method = resolve_factory(method, "method", allowed=allowed, wanted=_is_method_class, kind="method classes")
    elif isinstance(method, str):
        cls = method_class(method)  # an unknown name: one line listing the registered ones
        return Candidate(method, cls(), method, _label(label))
    if isinstance(method, Method):
        instance = method
    elif isinstance(method, type) and issubclass(method, (StructuredMethod, UnstructuredMethod)):
        try:
            instance = method()
        except Exception as exc:  # noqa: BLE001 - a pydantic error: settings without defaults
            first = (str(exc).strip().splitlines() or [""])[0]
            raise TopopruneError(f"method {source or method.__name__}: {method.__name__}() cannot be built with its "
                                 f"defaults ({first}); allowed: a class whose settings all have defaults, or "
                                 "an instance from Python (tp.evaluate_method(MyMethod(k=3)))") from None
    else:
        what = method.__name__ if isinstance(method, type) else type(method).__name__
        raise TopopruneError(f"method {source or what}: {what} is not a pruning method; allowed: a subclass of "
                             "topoprune.StructuredMethod or topoprune.UnstructuredMethod (see `topoprune methods`)")
    cls = type(instance)
    if not isinstance(instance, (StructuredMethod, UnstructuredMethod)):
        raise TopopruneError(f"method {source or cls.__name__}: {cls.__name__} derives from Method but is neither "
                             "a StructuredMethod nor an UnstructuredMethod; allowed: one of those two")
    name = cls.name if cls.name and cls.name in METHODS and METHODS.get(cls.name) is cls else None
    if name is None:
        name = _kebab(cls.__name__)
        if name in METHODS and METHODS.get(name) is not cls:
            raise TopopruneError(f"method {source or cls.__name__}: its name {name!r} (from the class name) belongs to "
                                 f"another method; allowed: register it under a name of its own with "
                                 f"@register_method('my-name')")
    return Candidate(name, instance, source or f"{cls.__module__}:{cls.__qualname__}", _label(label))


@contextmanager
def registered(candidates: Sequence[Candidate]) -> Iterator[None]:
    """Within the block, every candidate's class is in the method registry under its name (configs
    name methods by it); the ones registered here are removed again afterwards."""
    added, renamed = [], []
    missing = object()
    for c in candidates:
        cls = type(c.method)
        if c.name not in METHODS:
            METHODS.register(c.name, cls)
            added.append(c.name)
        if cls.name != c.name:  # e.g. a subclass of L1 inherits name "l1": configs must name it as registered
            renamed.append((cls, cls.__dict__.get("name", missing)))
            cls.name = c.name
    try:
        yield
    finally:
        for name in added:
            METHODS.unregister(name)
        for cls, old in reversed(renamed):
            if old is missing:
                del cls.name
            else:
                cls.name = old


Registration = tuple[str, str, str]  # (registry name, module, qualified class name)


def class_registrations(methods: Sequence[Method]) -> tuple[Registration, ...]:
    """Where each method's class lives and the name the registry knows it by, so that a worker
    process can repeat what :func:`registered` did here (:func:`register_classes`). A class a
    worker cannot import (defined in a script's ``__main__``, a notebook or a function) is refused
    in one line."""
    out = []
    for method in methods:
        cls = type(method)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            raise TopopruneError(f"method {method.name!r} ({cls.__qualname__}) is defined in the main script, a "
                                 "notebook or a function, which worker processes cannot import; allowed: one "
                                 "worker, or the class defined at the top of an importable module")
        out.append((method.name, cls.__module__, cls.__qualname__))
    return tuple(dict.fromkeys(out))


def register_classes(registrations: Sequence[Registration]) -> None:
    """In a worker process: import each class and register it under its name where its module's
    import did not (an only-importable candidate), for the life of the process."""
    import importlib

    for name, module, qualname in registrations:
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if name not in METHODS:
            METHODS.register(name, cls)
        if cls.name != name:  # as registered() does: configs name the class as registered
            cls.name = name


def _label(label: str | None) -> str | None:
    """A label as configs accept it (it names folders), or None."""
    if label is None:
        return None
    from .config import LABEL_PATTERN

    if not (isinstance(label, str) and re.fullmatch(LABEL_PATTERN, label)):
        raise TopopruneError(f"label: bad value {label!r}; allowed: 1-40 characters from a-z, 0-9, '.', '_', '-', "
                             "starting with a letter or digit")
    return label
