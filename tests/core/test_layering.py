"""One-way layers inside ``rankgrad/_src``: no import cycles, no upward imports.

Every ``import`` of every module under ``rankgrad/_src`` is read from its source (``ast``: module-level
and function-level imports alike, ``TYPE_CHECKING`` blocks included); the resulting graph must be
acyclic and respect the declared layer order, and nothing in ``_src`` may import the public façade
(``rankgrad``, ``rankgrad.noisy``...), the integrations, the CLI or the experiments. A new module
must be given a layer here.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "rankgrad" / "_src"
PACKAGE = "rankgrad._src"

# Bottom first. A module may import modules of lower layers only (not of its own layer).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "types"}),  # leaves: exceptions, type aliases
    frozenset({"weights"}),  # binomial rank-weight tables (numpy)
    frozenset({"objectives"}),  # objectives, presets, the string parser
    frozenset({"ops"}),  # the backend shim (numpy, torch, jax)
    frozenset({"layout"}),  # caller layouts <-> padded groups
    frozenset({"noisy"}),  # noise correction: a transform of the objective
    frozenset({"estimators"}),  # advantages, values, the estimator registry
    frozenset({"exact", "metrics", "sampling", "schedules"}),  # built on the above, independent
)
# Packages above every _src module: importing them from _src is always an upward import (the
# repository's top-level experiments, benchmarks, tests and examples are not even installed).
FORBIDDEN_PREFIXES = ("rankgrad.integrations", "rankgrad.cli", "rankgrad.experiments")
OUTSIDE = ("experiments", "benchmarks", "tests", "examples")
TRACKED = ("rankgrad", *OUTSIDE)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")[: -node.level]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, source: str) -> set[str]:
    """Every ``rankgrad`` module (or module of the repository's top-level experiments, benchmarks,
    tests, examples) that ``source`` (the text of ``module``) imports, at any depth.

    ``from rankgrad._src import x`` counts as importing ``rankgrad._src.x``; ``from rankgrad import x``
    as importing ``rankgrad.x`` (a public module) — both are what runs at import.
    """
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] in TRACKED}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.split(".")[0] not in TRACKED:
                continue
            if target in ("rankgrad", PACKAGE):
                out |= {f"{target}.{a.name}" for a in node.names}
            else:
                out.add(target)
    return out


def source_graph() -> dict[str, set[str]]:
    """``{module stem: the rankgrad modules it imports}`` for every module of ``rankgrad/_src``."""
    return {
        f.stem: imports_of(f"{PACKAGE}.{f.stem}", f.read_text(encoding="utf-8"))
        for f in sorted(SRC.glob("*.py"))
        if f.stem != "__init__"
    }


def violations(graph: dict[str, set[str]], layers: tuple[frozenset[str], ...]) -> list[str]:
    """Every broken rule of ``graph`` (module stem → absolute imports), as readable lines; empty if
    the graph is layered: undeclared modules, imports of the same or a higher layer, imports of the
    public package or of integrations/cli/experiments, and import cycles."""
    layer_of = {m: i for i, layer in enumerate(layers) for m in layer}
    problems = [f"{m}: not in any layer of tests/core/test_layering.py (declare it)"
                for m in sorted(graph) if m not in layer_of]
    edges: dict[str, set[str]] = {m: set() for m in graph}
    for m in sorted(graph):
        for target in sorted(graph[m]):
            if target.startswith(f"{PACKAGE}."):
                dep = target[len(PACKAGE) + 1:].split(".")[0]
                edges[m].add(dep)
                if m in layer_of and dep in layer_of and layer_of[dep] >= layer_of[m]:
                    how = "its own" if layer_of[dep] == layer_of[m] else "a higher"
                    problems.append(f"{m} imports {dep}, of {how} layer")
            elif target.startswith(FORBIDDEN_PREFIXES) or target.split(".")[0] in OUTSIDE:
                problems.append(f"{m} imports {target}: _src never imports integrations, cli, experiments, "
                                "benchmarks, tests or examples")
            else:
                problems.append(f"{m} imports {target}: _src never imports the public package")
    problems += [f"import cycle: {' -> '.join(c)}" for c in _cycles(edges)]
    return problems


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected part that has one, by depth-first search."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    found: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                found.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return found


# ------------------------------------------------------------------ the real tree
def test_real_tree_is_layered():
    graph = source_graph()
    assert {"errors", "ops", "layout", "noisy", "estimators"} <= set(graph)  # the walk found the tree
    assert f"{PACKAGE}.noisy" in graph["estimators"]  # estimators apply the noise transform
    assert violations(graph, LAYERS) == []


def test_noisy_does_not_import_estimators_at_any_depth():
    src = (SRC / "noisy.py").read_text(encoding="utf-8")
    assert f"{PACKAGE}.estimators" not in imports_of(f"{PACKAGE}.noisy", src)


# -------------------------------------------------- the checker on synthetic graphs
TOY = (frozenset({"low"}), frozenset({"mid"}), frozenset({"top", "peer"}))


def test_checker_accepts_downward_imports():
    graph = {"low": set(), "mid": {f"{PACKAGE}.low"}, "top": {f"{PACKAGE}.mid", f"{PACKAGE}.low"},
             "peer": {f"{PACKAGE}.low"}}
    assert violations(graph, TOY) == []


def test_checker_flags_an_upward_import_and_the_cycle_it_makes():
    graph = {"low": {f"{PACKAGE}.mid"}, "mid": {f"{PACKAGE}.low"}, "top": set(), "peer": set()}
    found = violations(graph, TOY)
    assert "low imports mid, of a higher layer" in found
    assert "import cycle: low -> mid -> low" in found


def test_checker_flags_same_layer_imports_and_undeclared_modules():
    graph = {"low": set(), "mid": set(), "top": {f"{PACKAGE}.peer"}, "peer": set(), "new": set()}
    assert violations(graph, TOY) == [
        "new: not in any layer of tests/core/test_layering.py (declare it)",
        "top imports peer, of its own layer",
    ]


@pytest.mark.parametrize(
    "target",
    ["rankgrad.integrations._common", "rankgrad.cli", "rankgrad.experiments.risk", "experiments.noisy",
     "tests.brute"],
)
def test_checker_flags_imports_of_the_layers_above_src(target):
    graph = {"low": {target}, "mid": set(), "top": set(), "peer": set()}
    assert violations(graph, TOY) == [
        f"low imports {target}: _src never imports integrations, cli, experiments, benchmarks, tests or "
        "examples"
    ]


def test_function_level_relative_and_package_imports_are_read():
    """An upward import hidden in a function, written relative, or as ``from rankgrad._src import x``
    is still an edge; so is ``from rankgrad import noisy`` (the public façade)."""
    src = (
        "import numpy as np\n"
        "from rankgrad._src import weights as W\n"
        "def f():\n"
        "    from . import estimators\n"
        "    from .noisy import is_mean\n"
        "    import rankgrad.cli\n"
        "    from rankgrad import noisy\n"
    )
    got = imports_of(f"{PACKAGE}.objectives", src)
    assert got == {f"{PACKAGE}.weights", f"{PACKAGE}.estimators", f"{PACKAGE}.noisy", "rankgrad.cli",
                   "rankgrad.noisy"}
    graph = {"low": set(), "mid": got, "top": set(), "peer": set()}
    layers = (frozenset({"weights"}), frozenset({"low"}), frozenset({"mid"}),
              frozenset({"estimators", "noisy", "top", "peer"}))
    found = violations({**graph, "weights": set(), "estimators": set(), "noisy": set()}, layers)
    assert "mid imports estimators, of a higher layer" in found
    assert "mid imports noisy, of a higher layer" in found
    assert any(line.startswith("mid imports rankgrad.cli: _src never imports") for line in found)
    assert "mid imports rankgrad.noisy: _src never imports the public package" in found
    assert not any("weights" in line for line in found)


# ---------------------------------------------------------- backends stay in the shim
PACKAGE_ROOT = SRC.parent


def backend_branches(source: str) -> list[str]:
    """Comparisons with a backend's name (``ops.name == "torch"``, ``"jax" != kind``...) and calls of
    the shim's private backend tests, as ``line: text``: backend-specific code belongs in
    ``rankgrad/_src/ops.py``."""
    names = {"numpy", "torch", "jax"}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Constant) and s.value in names for s in sides):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("_is_torch", "_is_jax", "is_torch", "is_jax"):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_backend_name_branches_outside_the_shim():
    shim = SRC / "ops.py"
    found = {
        str(f.relative_to(PACKAGE_ROOT.parent)): hits
        for f in sorted(PACKAGE_ROOT.rglob("*.py"))
        if f != shim and (hits := backend_branches(f.read_text(encoding="utf-8")))
    }
    assert found == {}
    assert backend_branches(shim.read_text(encoding="utf-8"))  # the scan does see the shim's own


def test_backend_branch_scan_on_examples():
    src = (
        "if ops.name == 'torch':\n    pass\n"
        "ok = 'jax' != kind\n"
        "if is_torch(x) or ops_lib.is_jax(y):\n    pass\n"
        "fine = ops.name == other and label == 'numpyish'\n"
    )
    assert sorted(line.split(":")[0] for line in backend_branches(src)) == ["1", "3", "4", "4"]
