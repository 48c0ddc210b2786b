"""griffe extension: read a Google-style ``Example:`` section as ``Examples:``.

The library's docstrings head their doctests ``Example:``, which Google style treats as an admonition
(markdown, where ``m["a"]["b"]`` looks like a reference link); ``Examples:`` renders them as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExamplesSection(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` before the docstring is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
