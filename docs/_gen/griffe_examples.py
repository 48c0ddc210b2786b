"""griffe extensions for the API pages.

``ExamplesSection``: read a Google-style ``Example:`` section as ``Examples:``. The library's docstrings
head their doctests ``Example:``, which Google style treats as an admonition (markdown, where
``m["a"]["b"]`` looks like a reference link); ``Examples:`` renders them as code.

Sphinx roles (``:func:`value```) become plain inline code.

``NamespaceSrc``: the public modules re-export functions from ``rankgrad/_src/*.py``. While that folder
has no ``__init__.py``, griffe does not load it and every re-export stays an unresolved alias (an empty
API page, without a warning); this loads its modules by hand. It does nothing once the file exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|mod|class|data|meth|attr|exc|obj):`~?([^`]+)`")


class ExamplesSection(griffe.Extension):
    """Rename ``Example:`` headers to ``Examples:`` and Sphinx roles to plain code, before parsing."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(r"`\1`", text)


class NamespaceSrc(griffe.Extension):
    """Load ``rankgrad._src`` when it is a folder without ``__init__.py``."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "rankgrad" or "_src" in pkg.members or pkg.filepath is None:
            return
        src = Path(str(pkg.filepath)).parent / "_src"
        if not src.is_dir():
            return
        pkg.set_member("_src", loader._create_module("_src", [src]))  # a namespace subpackage
        for path in sorted(src.glob("*.py")):
            loader._load_submodule(pkg, ("_src", path.stem), path)
