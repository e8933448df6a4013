"""A griffe extension for the documentation site: Sphinx cross-reference roles in docstrings
(``:func:`name```, ``:class:`~pkg.Name```) become plain code spans, so the API reference shows
``name`` instead of the raw role. mkdocs.yml loads it for the mkdocstrings Python handler."""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const):`~?\.?([^`]+)`")


def plain_roles(text: str) -> str:
    """``:role:`target``` -> ```target``` (a leading ``~`` or ``.`` dropped)."""
    return ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class SphinxRoles(Extension):
    """Rewrites every loaded object's docstring once the object tree is complete."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)
