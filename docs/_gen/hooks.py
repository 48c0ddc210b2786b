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

# Pages the nav names that another part of the project provides; until they exist, a short page that
# points to the API keeps the site whole.
_FALLBACK_PAGES = {
    "guides/mixtures.md": (
        "# Mixtures and schedules\n\n"
        "`rankgrad.schedules` anneals K (`constant`, `linear`, `cosine`: an integer K per step, exact"
        " endpoints) and mixture weights; `objective(\"max@{k}\", k=linear(8, 2, 200))` is a schedule, and"
        " the TRL, verl and SkyRL adapters take one as `objective=`. Each step's advantages are unbiased"
        " for that step's J_K."
        " See the [rankgrad.schedules API](../api/schedules.md).\n"
    ),
    "experiments/passk-study.md": (
        "# pass@K study: results\n\n"
        "The runs of this study have not been reported yet. What will be run, and how it will be judged, is"
        " fixed in advance in the [protocol](../protocols/passk-study.md).\n"
    ),
}


def on_pre_build(config: Any, **kwargs: Any) -> None:
    if str(ROOT) not in sys.path:  # mkdocs restores sys.path after loading the hook; the blocks import lazily
        sys.path.insert(0, str(ROOT))
    _SOURCES.clear()
    _SOURCES.update(render.load_sources(ROOT))
    _SOURCES["derived"] = pages.derived(_SOURCES)


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    from mkdocs.structure.files import File

    for src_uri, content in _FALLBACK_PAGES.items():
        if files.get_file_from_path(src_uri) is None:
            files.append(File.generated(config, src_uri, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    try:
        return render.fill(markdown, _SOURCES, pages.BLOCKS)
    except render.PlaceholderError as err:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_uri}: {err}") from None
