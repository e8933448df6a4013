"""Models from the user's own code: ``"pkg.module:function"`` plus JSON keyword arguments.

A factory string names an importable callable (a function or an ``nn.Module`` class) that
returns an ``nn.Module``; the same form as console-script entry points and ``uvicorn app:app``.
It is what lets the CLI (``--model pkg.module:build``), compare configs (``model: {factory:
...}``) and a saved pruned folder (``pruned.json``) name an architecture topoprune did not write,
without pickling code.

Naming a factory runs code: the module is imported and the callable called with the given
keyword arguments, so a config or a pruned folder naming a factory deserves the trust one gives a
script. Modules of Python's standard library are refused (they build no models, and
``os:system`` is not a factory).

Every failure is one :class:`~topoprune.errors.TopopruneError` line naming what was wrong and
what is allowed.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import TopopruneError, closest

__all__ = ["is_factory", "parse_factory", "resolve_factory", "build_from_factory", "check_kwargs",
           "parse_kwargs", "class_path", "factory_key"]

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_FACTORY = re.compile(rf"^({_DOTTED}):({_DOTTED})$")
_ALLOWED = ("allowed: 'pkg.module:function' (or 'pkg.module:Class'), an importable callable that "
            "returns a torch.nn.Module")


def is_factory(text: object) -> bool:
    """Whether ``text`` has the form of a factory string (``module:attribute``), imported or not."""
    return isinstance(text, str) and _FACTORY.match(text) is not None


def parse_factory(text: object, what: str = "factory") -> tuple[str, str]:
    """``(module, attribute path)`` of ``"pkg.module:function"``; a malformed string is an error."""
    if not isinstance(text, str):
        raise TopopruneError(f"{what} must be a string 'pkg.module:function', got {type(text).__name__}")
    m = _FACTORY.match(text.strip())
    if m is None:
        why = ("has no colon" if ":" not in text else "has more than one colon" if text.count(":") > 1
               else "is not two dotted Python names around a colon")
        raise TopopruneError(f"{what} {text!r} {why}; {_ALLOWED}")
    return m.group(1), m.group(2)


def _add_working_directory(top: str) -> bool:
    """Put the working directory on ``sys.path`` when it holds the module ``top`` (``top.py`` or a
    package folder) and is not there yet, as ``python -m`` does; True if that happened. So a
    config naming ``mycnn:my_cnn`` finds ``./mycnn.py`` from the library as from the CLI (spawned
    worker processes inherit the path)."""
    cwd = Path.cwd()
    if not ((cwd / f"{top}.py").is_file() or (cwd / top / "__init__.py").is_file()):
        return False
    if any(p in ("", ".") or Path(p).resolve() == cwd.resolve() for p in sys.path if isinstance(p, str)):
        return False  # already importable from there: the module itself is missing something
    sys.path.insert(0, str(cwd))
    importlib.invalidate_caches()
    return True


def resolve_factory(text: object, what: str = "factory", *, allowed: str = _ALLOWED,
                    wanted: Callable[[Any], bool] | None = None, kind: str = "callables") -> Callable[..., Any]:
    """Import the module of ``"pkg.module:function"`` and return the callable it names (looking
    in the working directory too, as the CLI and ``python -m`` do). ``allowed`` is what a refusal
    says is allowed; a missing name lists the module's ``kind`` (the objects ``wanted`` keeps;
    by default every public callable)."""
    module_name, attr_path = parse_factory(text, what)
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        raise TopopruneError(f"{what} {text!r} names Python's standard library ({top}); {allowed}")
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != top or not _add_working_directory(top):
                raise
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise TopopruneError(f"{what} {text!r}: module {module_name!r} is not importable (no module named "
                             f"{missing!r}); allowed: a module that is installed, on PYTHONPATH or in the "
                             f"working directory ({Path.cwd()})") from None
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything on import
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TopopruneError(f"{what} {text!r}: importing module {module_name!r} failed: "
                             f"{type(exc).__name__}: {first}") from None
    obj: Any = module
    done = module_name
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            keep = wanted or callable
            names = [n for n in dir(obj) if not n.startswith("_") and keep(getattr(obj, n, None))]
            hint = closest(part, names)
            mean = f"did you mean {hint!r}? " if hint else ""
            raise TopopruneError(f"{what} {text!r}: {done!r} has no attribute {part!r}; {mean}{kind} "
                                 f"there: {', '.join(sorted(names)[:12]) or 'none'}")
        obj = getattr(obj, part)
        done = f"{done}.{part}"
    if not callable(obj):
        raise TopopruneError(f"{what} {text!r} is a {type(obj).__name__}, not callable; {allowed}")
    return obj


def check_kwargs(kwargs: object, what: str = "factory kwargs") -> dict[str, Any]:
    """``kwargs`` as a plain dict of JSON data (they are written to pruned.json and configs)."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise TopopruneError(f"{what} must be a mapping of argument names to JSON values, got "
                             f"{type(kwargs).__name__}")
    try:
        return json.loads(json.dumps(dict(kwargs), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TopopruneError(f"{what} must hold only JSON data (strings, numbers, booleans, null, "
                             f"lists, mappings) so that they can be saved: {exc}") from None


def parse_kwargs(text: str | None, what: str = "--model-kwargs") -> dict[str, Any]:
    """A JSON object given on the command line (``'{"num_classes": 3}'``)."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TopopruneError(f"{what} {text!r} is not JSON ({exc}); allowed: a JSON object such as "
                             "'{\"num_classes\": 3}'") from None
    if not isinstance(value, dict):
        raise TopopruneError(f"{what} {text!r} is a JSON {type(value).__name__}; allowed: a JSON object "
                             "such as '{\"num_classes\": 3}'")
    return check_kwargs(value, what)


def build_from_factory(text: str, kwargs: Mapping[str, Any] | None = None, *,
                       what: str = "factory") -> nn.Module:
    """Call the factory ``"pkg.module:function"`` with ``kwargs``; the result must be an
    ``nn.Module``. Draws from torch's global generator as building any model does; callers that
    must not (loading weights over it) wrap it in ``torch.random.fork_rng``."""
    fn = resolve_factory(text, what)
    kwargs = check_kwargs(kwargs, f"{what} kwargs")
    try:
        model = fn(**kwargs)
    except TypeError as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        given = f"its keyword arguments {sorted(kwargs)}" if kwargs else "a call without arguments"
        raise TopopruneError(f"{what} {text!r} refused {given}: {first}; allowed: the arguments the "
                             "callable takes") from None
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TopopruneError(f"{what} {text!r} failed: {type(exc).__name__}: {first}") from None
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"{what} {text!r} returned an object of type {type(model).__name__}, not a torch.nn.Module; "
                             f"{_ALLOWED}")
    return model


def class_path(model: nn.Module) -> str | None:
    """``"module:QualName"`` of the model's class when a fresh process can import it there (not a
    class defined in ``__main__`` or inside a function), else None."""
    cls = type(model)
    module, qual = cls.__module__, cls.__qualname__
    if module == "__main__" or "<locals>" in qual or not is_factory(f"{module}:{qual}"):
        return None
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except Exception:  # noqa: BLE001 - not importable, whatever the reason
        return None
    return f"{module}:{qual}" if obj is cls else None


def factory_key(text: str) -> str:
    """A folder-safe name for a factory model (its callable's name, lower case), used where a
    registry model would use its name."""
    _, attr = parse_factory(text)
    key = re.sub(r"[^a-z0-9._-]+", "-", attr.lower()).strip("-._") or "model"
    return key[:40]
