"""Numbers in the docs come from stored JSON through placeholders, so that they cannot drift.

Syntax inside any page (prose, tables, code blocks)::

    {{ risk.arms.mean.mean | .2f }}                      a number from docs/results/risk.json
    {{ bestofk.table["max@4"]["pass@4"].mean | .3f }}    keys with dots, @ or spaces go in brackets
    {{ bestofk.comparisons.tuned["pass@4"].rloo.diff | +.3f }}
    {{ noisy.settings[2].checks.start.corrected.var_over_oracle | pow10 }}
    {{ derived.variance.ratio.pkpo_s.max | .0f }}        a quantity computed from the JSON (``derived``)
    {{ gen:estimators }}                                 a generated block (see ``docs/_gen/pages.py``)
    \\{{ not a placeholder }}                             a backslash escapes it: ``{{ not a placeholder }}``

A path starts with a source name: the stem of a ``docs/results/*.json`` file, ``bench`` for
``benchmarks/results/results.json``, or ``derived``. After ``|`` come filters, applied left to right:
``abs``, ``neg``, ``pct`` (× 100), ``pow10`` (``4.8×10⁵``) and finally one Python format spec
(``.3f``, ``+.2f``, ``,d``, ``.2g``). A path that does not resolve raises :class:`PlaceholderError`, so
a renamed key fails the strict build instead of printing a stale number.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["PlaceholderError", "PLACEHOLDER", "load_sources", "lookup", "format_value", "fill"]

PLACEHOLDER = re.compile(r"(?<!\\)\{\{\s*(?P<body>[^{}]+?)\s*\}\}")
_SEGMENT = re.compile(r"""\.?(?:\[\s*"(?P<quoted>[^"]*)"\s*\]   # ["key with . @ or spaces"]
                            |\[\s*(?P<index>-?\d+)\s*\]        # [0]
                            |(?P<bare>[^.\[\]\s]+))              # key""", re.VERBOSE)
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


class PlaceholderError(ValueError):
    """A placeholder names a path that is not in its JSON, or a filter that does not exist."""


def load_sources(root: Path) -> dict[str, Any]:
    """Every stored result under ``root``: ``{stem: json}`` for docs/results/*.json, plus ``bench``."""
    sources: dict[str, Any] = {}
    for path in sorted((root / "docs" / "results").glob("*.json")):
        sources[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    bench = root / "benchmarks" / "results" / "results.json"
    if bench.exists():
        sources["bench"] = json.loads(bench.read_text(encoding="utf-8"))
    return sources


def split_path(path: str) -> list[str | int]:
    """``'a.b["c.d"][0]'`` -> ``['a', 'b', 'c.d', 0]``."""
    parts: list[str | int] = []
    pos = 0
    path = path.strip()
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None or m.end() == pos:
            raise PlaceholderError(f"cannot parse the path {path!r} at {path[pos:]!r}")
        if m.group("quoted") is not None:
            parts.append(m.group("quoted"))
        elif m.group("index") is not None:
            parts.append(int(m.group("index")))
        else:
            parts.append(m.group("bare"))
        pos = m.end()
    return parts


def lookup(sources: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (see the module docstring); :class:`PlaceholderError` if it is missing."""
    node: Any = sources
    walked: list[str] = []
    for part in split_path(path):
        try:
            if isinstance(node, list) and isinstance(part, int):
                node = node[part]
            elif isinstance(node, Mapping) and isinstance(part, str):
                node = node[part]
            else:
                raise KeyError(part)
        except (KeyError, IndexError):
            where = ".".join(map(str, walked)) or "the sources"
            keys = sorted(node)[:12] if isinstance(node, Mapping) else f"a list of {len(node)}" \
                if isinstance(node, list) else type(node).__name__
            raise PlaceholderError(f"{path!r}: no {part!r} in {where} (has: {keys})") from None
        walked.append(str(part))
    return node


def _pow10(x: float) -> str:
    """``483000.0`` -> ``4.8×10⁵`` (one decimal in the mantissa, dropped when it is 0)."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    exp = math.floor(math.log10(abs(x)))
    mant = round(x / 10**exp, 1)
    if abs(mant) >= 10:
        mant, exp = mant / 10, exp + 1
    text = f"{mant:.1f}".removesuffix(".0")
    return f"{text}×10{str(exp).translate(_SUPERSCRIPT)}"


_FILTERS: dict[str, Callable[[Any], Any]] = {
    "abs": abs,
    "neg": lambda x: -x,
    "pct": lambda x: 100 * x,
    "pow10": _pow10,
}


def format_value(value: Any, filters: list[str]) -> str:
    """Apply ``filters`` (names from ``_FILTERS``, the last may be a format spec) to ``value``.

    Numbers print with a typographic minus (−), as in the prose around them.
    """
    spec = ""
    for i, name in enumerate(filters):
        if name in _FILTERS:
            value = _FILTERS[name](value)
        elif i == len(filters) - 1:
            spec = name
        else:
            raise PlaceholderError(f"unknown filter {name!r} (filters: {', '.join(_FILTERS)})")
    try:
        text = format(value, spec) if spec or not isinstance(value, float) else f"{value:g}"
    except (ValueError, TypeError) as err:
        raise PlaceholderError(f"format spec {spec!r} does not apply to {value!r}: {err}") from None
    return text.replace("-", "−") if isinstance(value, (int, float)) else text


def fill(text: str, sources: Mapping[str, Any],
         blocks: Mapping[str, Callable[..., str]] | None = None) -> str:
    """Replace every ``{{ ... }}`` in ``text``: numbers from ``sources``, ``gen:NAME ARGS`` from ``blocks``.

    A backslash before the braces (``\\{{``) keeps them as text.
    """
    def one(match: re.Match[str]) -> str:
        body = match.group("body")
        if body.startswith("gen:"):
            name, *args = body[4:].split()
            if blocks is None or name not in blocks:
                raise PlaceholderError(f"unknown generated block {name!r} (blocks: {sorted(blocks or {})})")
            return blocks[name](sources, *args)
        path, *filters = (p.strip() for p in body.split("|"))
        return format_value(lookup(sources, path), filters)

    return PLACEHOLDER.sub(one, text).replace("\\{{", "{{")
