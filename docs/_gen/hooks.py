"""mkdocs hook (``hooks:`` in mkdocs.yml): fills ``{{ ... }}`` placeholders in every page.

Numbers come from the stored results and generated blocks from ``docs/_gen/pages.py`` (see
``docs/_gen/render.py`` for the syntax). A placeholder that does not resolve stops the build.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The hook runs from the mkdocs script: make `docs._gen` and `benchmarks` importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from docs._gen import pages, render  # noqa: E402

_SOURCES: dict[str, Any] = {}

def on_pre_build(config: Any, **kwargs: Any) -> None:
    if str(ROOT) not in sys.path:  # mkdocs restores sys.path after loading the hook; the blocks import lazily
        sys.path.insert(0, str(ROOT))
    _SOURCES.clear()
    _SOURCES.update(render.load_sources(ROOT))
    _SOURCES["derived"] = pages.derived(_SOURCES)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    try:
        return render.fill(markdown, _SOURCES, pages.BLOCKS)
    except render.PlaceholderError as err:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_uri}: {err}") from None
