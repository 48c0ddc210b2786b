"""Tables (plain text and Markdown) and the results files of a benchmark run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Column", "SECTIONS", "markdown_table", "render_markdown", "write_results", "to_jsonable"]

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Row], str]


def _num(key: str, digits: int = 3) -> Callable[[Row], str]:
    def cell(row: Row) -> str:
        v = row.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"

    return cell


def _text(key: str) -> Callable[[Row], str]:
    return lambda row: str(row.get(key, "–"))


def _check(row: Row) -> str:
    if "check_diff" not in row:
        return "–"
    mark = "ok" if row["check_ok"] else "FAIL"
    return f"{row['check_diff']:.1e} {mark}"


def _targets(row: Row) -> str:
    if row.get("status", "ok") != "ok":
        return row["status"]
    ts = row.get("targets") or []
    return "; ".join(f"{t['target']}: {'ok' if t['ok'] else 'MISS'}" for t in ts) or "–"


def _sort(row: Row) -> str:
    base = _num("sort_ms")(row)
    alt = row.get("argsort_default_kind_ms")
    return base if alt is None else f"{base} ({alt:.3g})"


def _peak(row: Row) -> str:
    v = row.get("peak_mb")
    return "–" if v is None else f"{v:.1f}"


_CASE, _BACKEND = Column("case", _text("case")), Column("backend", _text("backend"))

SECTIONS: dict[str, tuple[str, list[Column]]] = {
    "small_groups": (
        "1. Many small groups (max@K, float32)",
        [
            _CASE,
            _BACKEND,
            Column("rankgrad ms", _num("ms")),
            Column("sort ms", _sort),
            Column("ratio", _num("ratio", 2)),
            Column("compile/cold ms", _num("cold_ms")),
            Column("peak MB", _peak),
            Column("check (f64 vs naive)", _check),
            Column("f32 err", lambda r: "–" if "f32_err" not in r else f"{r['f32_err']:.1e}"),
            Column("recompiles", lambda r: "–" if r.get("recompiles") is None else str(r["recompiles"])),
            Column("targets", _targets),
        ],
    ),
    "huge_group": (
        "2. One huge group (float32)",
        [
            _CASE,
            _BACKEND,
            Column("cold ms (prep+call)", _num("cold_ms")),
            Column("warm ms", _num("ms")),
            Column("sort ms", _sort),
            Column("warm/sort", _num("ratio", 2)),
            Column("peak MB", _peak),
            Column("check (f64 vs naive)", _check),
            Column("targets", _targets),
        ],
    ),
    "ragged": (
        "3. Ragged flat input + group_ids vs padded [G, 64] + mask (objective mean, float32)",
        [
            _CASE,
            _BACKEND,
            Column("flat ms", _num("ms")),
            Column("padded ms", _num("padded_ms")),
            Column("flat/padded", _num("ratio", 2)),
            Column("check (f64 vs naive)", _check),
            Column("targets", _targets),
        ],
    ),
    "cache": (
        "4. Cold (all rankgrad caches cleared) vs warm, eager",
        [
            _CASE,
            _BACKEND,
            Column("cold ms", _num("cold_ms")),
            Column("warm ms", _num("ms")),
            Column("cold/warm", _num("ratio", 2)),
            Column("sort ms", _num("sort_ms")),
            Column("status", lambda r: r.get("status", "ok")),
        ],
    ),
    "mixed": (
        "5. Mixed group sizes, flat group_ids (float32, shuffled ids)",
        [
            _CASE,
            _BACKEND,
            Column("ms", _num("ms")),
            Column("peak MB", _peak),
            Column("padded layout MB", _num("padded_mb")),
            Column("check (f64 vs naive)", _check),
            Column("targets", _targets),
        ],
    ),
    "flat_uids": (
        "6. Flat uids: group_advantages on shuffled string uids vs dense [P, N] + one dict factorisation",
        [
            _CASE,
            _BACKEND,
            Column("flat ms", _num("ms")),
            Column("dense ms", _num("dense_ms")),
            Column("factorise ms", _num("factorise_ms")),
            Column("flat/(dense+factorise)", _num("ratio", 2)),
            Column("check (f64 vs naive)", _check),
            Column("targets", _targets),
        ],
    ),
}


def markdown_table(rows: list[Row], columns: list[Column]) -> str:
    """A Markdown table (also readable as plain text)."""
    cells = [[c.header for c in columns]] + [[c.cell(r) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def _errors(results: dict[str, Any]) -> list[str]:
    """Failed checks and backends that raised."""
    out = []
    for key, rows in results["sections"].items():
        for r in rows:
            where = f"- {key} / {r['case']} / {r['backend']}"
            if r.get("status", "ok") != "ok":
                out.append(f"{where}: {r['status']} — {r.get('error', '')}")
            elif r.get("check_ok") is False:
                out.append(f"{where}: CHECK FAILED (diff {r['check_diff']:.2e} > {r['check_tol']:.1e})")
            if r.get("padded_check_ok") is False:
                out.append(f"{where}: padded CHECK FAILED (diff {r['padded_check_diff']:.2e})")
    return out


def _missed(results: dict[str, Any]) -> list[str]:
    """Targets not met."""
    out = []
    for key, rows in results["sections"].items():
        for r in rows:
            for t in r.get("targets") or []:
                if not t["ok"]:
                    out.append(f"- {key} / {r['case']} / {r['backend']}: {t['target']}")
    return out


def render_markdown(results: dict[str, Any]) -> str:
    """The whole report: machine, method notes, one table per section, problems found."""
    m = results["machine"]
    parts = [
        "# rankgrad benchmarks",
        "",
        f"- Date: {m['date']}",
        f"- Command: `{m['command']}`" + (" (quick mode)" if results["quick"] else ""),
        f"- CPU: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), {m['memory_gib']} GiB RAM",
        f"- Software: Python {m['python']}, numpy {m['numpy']}, torch {m['torch']} "
        f"({m['torch_threads']} threads), jax {m['jax']} / jaxlib {m['jaxlib']}, scipy {m['scipy']}",
        f"- rankgrad {m['rankgrad']} at git {m['git_commit']}, rankgrad/ worktree {m['rankgrad_worktree']}",
        f"- Total run time: {results['elapsed_s']:.0f} s",
        "",
        "## Method",
        "",
        *(f"- {note}" for note in results["notes"]),
        "",
    ]
    for key, (title, columns) in SECTIONS.items():
        rows = results["sections"].get(key)
        if rows is None:
            continue
        parts += [f"## {title}", "", markdown_table(rows, columns), ""]
    errors, missed = _errors(results), _missed(results)
    parts += ["## Problems found", "", *(errors or ["- none (every check passed, every backend ran)"]), ""]
    parts += ["## Targets missed", "", *(missed or ["- none"]), ""]
    return "\n".join(parts)


def to_jsonable(x: Any) -> Any:
    """NaN/inf → None, numpy scalars → Python, recursively."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "results.json", out_dir / "results.md"
    js.write_text(json.dumps(to_jsonable(results), indent=2) + "\n")
    md.write_text(render_markdown(results))
    return js, md
