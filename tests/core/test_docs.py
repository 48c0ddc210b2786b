"""The documentation: the site builds strictly, its numbers come from the stored JSON, its code runs.

* ``docs/_gen/render.py`` (the ``{{ ... }}`` placeholders) on hand-made sources;
* every page's placeholders resolve against the stored results (no mkdocs needed);
* ``mkdocs build --strict`` (skipped when mkdocs is not installed: ``pip install -e '.[docs]'``);
* the README: its links point at files of the docs that exist, every number in its prose is listed
  below with the JSON value it must equal, and its quick start runs;
* the python blocks of the docs marked ``<!-- docs-test: run -->`` run.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from docs._gen import pages, render

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

# --------------------------------------------------------------------------------------------- placeholders


def test_placeholders_fill_numbers_strings_and_blocks():
    sources = {"a": {"b": [0, 1.23456], "max@4": {"0.001": -0.5}, "name": "x"}, "n": {"count": 20000}}
    text = ('{{ a.b[1] | .2f }} {{ a["max@4"]["0.001"] | +.3f }} {{ a["max@4"]["0.001"] | abs | .1f }} '
            '{{ a.name }} {{ n.count | ,d }} {{ a.b[1] | pct | .0f }}% {{ gen:twice 21 }} \\{{ kept }}')
    blocks = {"twice": lambda src, x: str(2 * int(x))}
    assert render.fill(text, sources, blocks) == "1.23 −0.500 0.5 x 20,000 123% 42 {{ kept }}"


def test_placeholders_pow10_and_minus():
    assert render.format_value(545000.0, ["pow10"]) == "5.5×10⁵"
    assert render.format_value(0.000123, ["pow10"]) == "1.2×10⁻⁴"
    assert render.format_value(-20.5434, [".2f"]) == "−20.54"  # the typographic minus of the prose


@pytest.mark.parametrize("text, fragment", [
    ("{{ a.missing | .2f }}", "'missing'"),
    ("{{ a.b[5] }}", "5"),
    ("{{ a.b[0] | nosuchfilter | .2f }}", "unknown filter"),
    ("{{ a.name | .2f }}", "format spec"),
    ("{{ gen:nosuchblock }}", "unknown generated block"),
])
def test_placeholders_fail_loudly(text, fragment):
    with pytest.raises(render.PlaceholderError, match=re.escape(fragment)):
        render.fill(text, {"a": {"b": [1.0], "name": "x"}}, {})


def _all_sources() -> dict:
    sources = render.load_sources(ROOT)
    sources["derived"] = pages.derived(sources)
    return sources


def _doc_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_gen" not in p.parts)


def test_every_page_placeholder_resolves():
    sources = _all_sources()
    for path in _doc_pages():
        text = path.read_text(encoding="utf-8")
        filled = render.fill(text, sources, pages.BLOCKS)  # raises on any stale path
        assert "gen:" not in filled or "gen:NAME" in filled, path


def test_derived_ranges_match_the_json():
    """Spot-check ``derived`` against values read straight from the JSON (two settings by hand)."""
    sources = _all_sources()
    rows = {r["setting"]: r["estimators"] for r in sources["variance"]["results"]}
    m4 = rows["tabular M=4 P=0.5"]
    lo = sources["derived"]["variance"]["ratio"]["pkpo_sloo1"]["min"]
    assert lo <= m4["pkpo_sloo1"]["var_rel"] / m4["ordergrad"]["var_rel"] + 1e-15
    holds = sum(r["claim_holds"] for r in sources["variance"]["results"])
    assert sources["derived"]["variance"]["claim_holds"] == holds
    d = sources["derived"]["variance"]
    assert d["claim_holds"] + d["claim_fails"] + d["claim_unresolved"] == d["settings"] == 18


def test_k_variance_block_matches_a_hand_derived_case():
    """N = 2, K = 1, p = 1/2: ĝ = 1/2 with probability 1/2 (one pass, one fail), else 0.

    E ĝ = 1/4 = p(1 − p) and Var ĝ = 1/8 − 1/16 = 1/16, so Var / grad² = 1.
    """
    out = pages.k_variance_block({}, "2", "1", "0.5")
    assert out.splitlines()[-1] == "| `max@1` (= `mean`) | 0.50 | 1 |"


def test_estimators_block_scales_are_the_hand_derived_ones():
    """c(N, K) at N = 8, K = 4: K/N = 0.5 for ordergrad, 1/N = 0.125 for RLOO, 1/(N − 1) for Dr. GRPO."""
    rows = {line.split("|")[1].strip().split()[0]: [c.strip() for c in line.split("|")[1:-1]]
            for line in pages.estimators_block({}, "8", "4").splitlines()[2:]}
    assert rows["`ordergrad`"][3] == "0.5"
    assert rows["`rloo`"][3] == "0.125"
    assert rows["`dr_grpo`"][3] == f"{1 / 7:.4g}"
    assert rows["`grpo`"][1] == "**no**" and "biased" in rows["`grpo`"][3]


def test_risk_block_bolds_the_best_arm_per_column():
    sources = {"risk": {"config": {"tail_objective": "cvar:0.25@4", "tamar_alpha": 0.25}, "arms": {
        arm: {"mean": m, "mean_se": 0.01, "cvar25": c, "cvar25_se": 0.02, "bridge_fraction": b,
              "falls_per_episode": 0.0} for arm, m, c, b in
        [("mean", -9.5, -20.0, 1.0), ("tail", -14.0, -14.1, 0.0), ("tamar", -14.1, -14.2, 0.0)]}}}
    lines = pages.risk_block(sources).splitlines()
    assert "**−9.50 ± 0.01**" in lines[2] and "**" not in lines[2].split("|")[3]
    assert "**−14.10 ± 0.02**" in lines[3] and "**" not in lines[4]


def test_cli_block_has_every_command():
    from rankgrad.cli import build_parser

    text = pages.cli_block({})
    for name in pages._subcommands(build_parser()):
        assert f"### `rankgrad {name}`" in text
    assert "--objective" in text and text.count("```text") == text.count("### ")


# --------------------------------------------------------------------------------------------- the site


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.skipif(not _have("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"),
                    reason="mkdocs, mkdocs-material and mkdocstrings[python] are not installed "
                           "(pip install -e '.[docs]')")
def test_mkdocs_build_strict(tmp_path):
    """No broken link, unresolved reference, mkdocstrings warning or stale placeholder."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    built = (tmp_path / "site" / "experiments" / "risk" / "index.html").read_text(encoding="utf-8")
    assert "{{" not in built and "−20.67" in built


# --------------------------------------------------------------------------------------------- the README

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def test_readme_links_point_into_the_docs_and_exist():
    text = README.read_text(encoding="utf-8")
    targets = _LINK.findall(text)
    assert len(targets) >= 10
    for target in targets:
        assert not target.startswith(("http://", "https://")), f"README links into the docs, not {target}"
        path = target.split("#")[0]
        assert path.startswith("docs/") or path == "LICENSE", f"README link outside the docs: {target}"
        assert (ROOT / path).is_file(), f"README links to a missing file: {target}"


# Every number in the README's prose (outside code blocks) and the JSON value it states.
README_NUMBERS: dict[str, tuple[str, str]] = {
    "+0.040": ("passk_rg_countdown.primary.result.diff", "+.3f"),
    "+0.014": ("passk_rg_countdown.primary.result.ci95[0]", "+.3f"),
    "+0.065": ("passk_rg_countdown.primary.result.ci95[1]", "+.3f"),
    "−0.039": ('passk_rg_countdown.comparisons["max@4"]["pass@1"].diff', "+.3f"),
    "+0.007": ("passk_add3.primary.result.diff", "+.3f"),
    "+0.004": ("passk_rg_chain_sum.primary.result.diff", "+.3f"),
    "0.826": ('bestofk.table["max@4"]["pass@4"].mean', ".3f"),
    "0.802": ('bestofk.table.rloo["pass@4"].mean', ".3f"),
    "+0.024": ('bestofk.comparisons.tuned["pass@4"].rloo.diff', "+.3f"),
    "0.002": ('bestofk.comparisons.tuned["pass@4"].rloo.se', ".3f"),
    "0.504": ('bestofk.table["max@4"]["pass@1"].mean', ".3f"),
    "0.533": ('bestofk.table.rloo["pass@1"].mean', ".3f"),
    "−9.67": ("risk.arms.mean.mean", ".2f"),
    "−20.67": ("risk.arms.mean.cvar25", ".2f"),
    "−14.13": ("risk.arms.tail.cvar25", ".2f"),
    "−14.15": ("risk.arms.tamar.cvar25", ".2f"),
    "0.830": ("noisy.settings[0].curves.corrected.final[0]", ".3f"),
    "0.05": ("noisy.settings[0].rho0", "g"),
    "0.3": ("noisy.settings[0].rho1", "g"),
    "0.688": ("noisy.settings[2].curves.corrected.final[0]", ".3f"),
    "0.764": ("noisy.settings[2].curves.naive.final[0]", ".3f"),
    "0.6": ("noisy.settings[2].rho1", "g"),
}
# The same value twice ("0.802" is also naive's final pass@4 at (0.05, 0.3)) is checked here too.
README_ALSO = {"0.802": ("noisy.settings[0].curves.naive.final[0]", ".3f"),
               "0.3": ("noisy.settings[2].rho0", "g")}
_NUMBER = re.compile(r"(?<![\w.@:/-])[+−-]?\d+\.\d+(?!\w|\.\d)")


def test_readme_numbers_come_from_the_json():
    sources = render.load_sources(ROOT)
    for table in (README_NUMBERS, README_ALSO):
        for text, (path, spec) in table.items():
            assert render.format_value(render.lookup(sources, path), [spec]) == text, (text, path)
    prose = _FENCE.sub("", README.read_text(encoding="utf-8"))
    prose = re.sub(r"`[^`]*`", "", prose)  # inline code: commands and objective strings, not results
    prose = re.sub(r"arXiv \d+\.\d+", "", prose)
    found = set(_NUMBER.findall(prose))
    listed = set(README_NUMBERS)
    assert found <= listed, f"numbers in README.md without a JSON source: {found - listed}"
    assert listed <= found, f"listed but no longer in README.md: {listed - found}"


def test_readme_passk_verdicts_match_the_json():
    """The README's words on the pre-registered study: max@4 wins on countdown only, and the other two
    intervals include 0."""
    sources = render.load_sources(ROOT)
    text = README.read_text(encoding="utf-8")
    assert "max@4 wins only on countdown" in text
    tasks = ("add3", "rg_chain_sum", "rg_countdown")
    decisions = {t: sources[f"passk_{t}"]["primary"]["decision"] for t in tasks}
    assert decisions == {"add3": "no difference shown", "rg_chain_sum": "no difference shown",
                         "rg_countdown": "max@4 wins"}
    for t in ("add3", "rg_chain_sum"):
        lo, hi = sources[f"passk_{t}"]["primary"]["result"]["ci95"]
        assert lo < 0 < hi


def test_readme_keeps_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert re.search(r"^make demo\b", text, re.MULTILINE) and re.search(r"^make test\b", text, re.MULTILINE)
    assert "pip install rankgrad" in text


# --------------------------------------------------------------------------------------------- runnable code

def _python_blocks(text: str, marked_only: bool) -> list[str]:
    blocks = []
    pattern = re.compile(r"(?P<mark><!-- docs-test: run -->\s*\n)?```python\n(?P<code>.*?)^```", re.S | re.M)
    for m in pattern.finditer(text):
        if m.group("mark") or not marked_only:
            blocks.append(m.group("code"))
    return blocks


def _run(code: str, where: str) -> dict:
    namespace: dict = {"__name__": "__docs_test__"}
    exec(compile(code, where, "exec"), namespace)
    return namespace


def test_readme_quick_start_runs():
    pytest.importorskip("torch")
    blocks = _python_blocks(README.read_text(encoding="utf-8"), marked_only=False)
    assert blocks, "README.md has no python block"
    ns = _run(blocks[0], "README.md quick start")
    import torch

    adv, rewards, prompt_ids = ns["adv"], ns["rewards"], ns["prompt_ids"]
    assert adv.shape == rewards.shape and not adv.requires_grad
    for g in range(int(ns["num_prompts"])):  # centred per group, as the quick start says
        assert abs(float(adv[prompt_ids == g].sum())) < 1e-5
    assert ns["logits"].grad is not None and torch.isfinite(ns["logits"].grad).all()


def test_marked_docs_blocks_run():
    marked = [(path, code) for path in _doc_pages()
              for code in _python_blocks(path.read_text(encoding="utf-8"), marked_only=True)]
    assert len(marked) >= 2  # the quick-start page has two
    for path, code in marked:
        if "import torch" in code and importlib.util.find_spec("torch") is None:
            continue
        _run(code, str(path.relative_to(ROOT)))


def test_quick_start_gradient_is_the_exact_one_on_average():
    """The quick start's loss is unbiased: its expected gradient equals ∇ pass@4 exactly.

    One prompt, a 2-answer policy with p = P(correct); enumerating every count c of correct answers in
    a group of N gives E[∂loss/∂θ] over c ~ Binomial(N, p), against d/dθ [1 − (1 − p)^K].
    """
    torch = pytest.importorskip("torch")
    import rankgrad

    N, K, theta = 8, 4, 0.3
    p = 1 / (1 + math.exp(-theta))
    expected = 0.0
    for c in range(N + 1):
        th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        x = torch.tensor([1.0] * c + [0.0] * (N - c), dtype=torch.float64)
        logp = torch.where(x == 1, torch.nn.functional.logsigmoid(th), torch.nn.functional.logsigmoid(-th))
        adv = rankgrad.advantages(x, "max@4", group_ids=torch.zeros(N, dtype=torch.int64))
        (K / N * adv * logp).sum().backward()  # the quick start's loss is minus this, per prompt
        expected += math.comb(N, c) * p**c * (1 - p) ** (N - c) * float(th.grad)
    exact = K * (1 - p) ** (K - 1) * p * (1 - p)
    assert expected == pytest.approx(exact, rel=1e-12)
