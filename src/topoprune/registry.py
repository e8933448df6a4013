"""One small registry type for everything users name: models, pruning methods, importances,
activations and datasets.

A registry maps names to objects. Registering a name twice is an error (two plug-ins must not
silently shadow each other), names can be listed with a filter, and an unknown name is refused
with the names that exist and, where one is close, a "did you mean" hint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar, overload

from .errors import TopopruneError, unknown_name

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects of one kind (``kind`` names it in messages, e.g. ``"pruning method"``).

    Use it as a decorator (``@registry.register("name")``) or directly
    (``registry.register("name", obj)``); look names up with ``registry.get(name)``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._renamed: dict[str, str] = {}  # deprecated name -> its current name

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None):  # type: ignore[no-untyped-def]
        """Add ``obj`` under ``name``; without ``obj``, a decorator that does so."""
        if not isinstance(name, str) or not name:
            raise TopopruneError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def add(value: T) -> T:
            if name in self._items:
                raise TopopruneError(f"{self.kind} {name!r} is already registered; pick another name "
                                     f"(registered: {', '.join(sorted(self._items))})")
            self._items[name] = value
            return value

        return add if obj is None else add(obj)

    @contextmanager
    def replaced(self, name: str, obj: T) -> Iterator[T]:
        """Swap an entry for the duration of a ``with`` block (tests, temporary overrides); the
        original comes back afterwards. Yields the original."""
        old = self.get(name)
        self._items[name] = obj
        try:
            yield old
        finally:
            self._items[name] = old

    def unregister(self, name: str) -> T:
        """Remove a name (tests and plug-ins that replace an entry on purpose)."""
        return self._items.pop(self._check(name))

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name lists what exists."""
        return self._items[self._check(name)]

    def rename(self, old: str, new: str) -> None:
        """Keep ``old`` working as a deprecated name of ``new`` (a ``DeprecationWarning`` names
        ``new`` on each use); it is not listed by :meth:`names`."""
        self._check(new)
        self._renamed[old] = new

    def canonical(self, name: object) -> object:
        """``name``, or the current name of a deprecated one (with its warning)."""
        if isinstance(name, str) and name not in self._items and name in self._renamed:
            from ._deprecation import warn_deprecated

            new = self._renamed[name]
            warn_deprecated(f"the {self.kind} name {name!r}", repr(new))
            return new
        return name

    def _check(self, name: object) -> str:
        name = self.canonical(name)
        if not isinstance(name, str) or name not in self._items:
            raise unknown_name(self.kind, name, self._items)
        return name

    def names(self, where: Callable[[T], bool] | None = None) -> list[str]:
        """Registered names in registration order, optionally only those whose object passes
        ``where``."""
        return [n for n, v in self._items.items() if where is None or where(v)]

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._renamed

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"
