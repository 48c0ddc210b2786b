"""Generated blocks of the documentation site: ``{{ gen:NAME ARGS }}`` in a page calls ``BLOCKS[NAME]``.

Each block is a pure function of the stored results (and of the installed library, for the registries
and the command-line reference) that returns markdown. ``derived(sources)`` computes the few
quantities that prose quotes but no JSON stores directly (ranges over settings, ratios).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["BLOCKS", "derived", "table"]

Sources = Mapping[str, Any]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A markdown table; ``align`` is one letter per column (``l``/``r``), left by default."""
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    marks = [("---:" if a == "r" else "---") for a in align.ljust(len(header), "l")]
    lines = ["| " + " | ".join(map(cell, header)) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def _num(x: float, spec: str) -> str:
    return format(x, spec).replace("-", "−")


# ---------------------------------------------------------------------------------------------- registries

def objectives_block(sources: Sources) -> str:
    """The objective presets, as the registry in rankgrad/_src/objectives.py renders them."""
    import rankgrad.objectives

    render = getattr(rankgrad.objectives, "presets_markdown", None)
    if callable(render):
        return str(render())
    return "\n".join(f"- `{form}`" for form in rankgrad.objectives.PRESET_FORMS)  # the grammar alone


def estimators_block(sources: Sources, n: str = "8", k: str = "4") -> str:
    """``rankgrad.ESTIMATORS``: claims and the gradient scale c(N, K) at one (N, K)."""
    import rankgrad
    from rankgrad._src.estimators import _ALIASES

    nn, kk = int(n), int(k)
    aliases: dict[str, list[str]] = {}
    for alias, name in _ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    rows = []
    for name, info in rankgrad.ESTIMATORS.items():
        scale = "– (biased)" if info.gradient_scale is None else f"{float(info.gradient_scale(nn, kk)):.4g}"
        alias = ", ".join(f"`{a}`" for a in sorted(aliases.get(name, [])))
        rows.append([f"`{name}`" + (f" ({alias})" if alias else ""), "yes" if info.unbiased else "**no**",
                     "yes" if info.centred else "no", scale, info.objectives, info.summary])
    return table(["`estimator=`", "unbiased", "centred", f"c(N={nn}, K={kk})", "objectives", "what it is"],
                 rows, "lllrll")


def k_variance_block(sources: Sources, n: str = "16", ks: str = "1,2,4,8,12,15",
                     ps: str = "0.05,0.2,0.5") -> str:
    """Exact per-group variance of the pass@K gradient vs K, by enumerating every outcome of a group.

    A prompt with pass rate p = sigmoid(θ); a group of N 0/1 rewards with c passes has probability
    Binomial(c; N, p), and ĝ = (K/N)·Σ_i a_i (x_i − p) with a = ``rankgrad.advantages(·, "max@K")``.
    The table gives Var(ĝ) / (∂pass@K/∂θ)², the squared coefficient of variation of one group's
    estimate (its inverse is the signal-to-noise ratio), and checks E[ĝ] = ∂pass@K/∂θ exactly.
    """
    import math

    import numpy as np

    import rankgrad

    nn = int(n)
    k_list = [int(k) for k in ks.split(",")]
    p_list = [float(p) for p in ps.split(",")]
    rows = []
    for k in k_list:
        row = [f"`max@{k}`" + (" (= `mean`)" if k == 1 else ""), f"{k / nn:.2f}"]
        for p in p_list:
            c = np.arange(nn + 1)
            groups = (np.arange(nn)[None, :] < c[:, None]).astype(float)  # c passes first, then fails
            adv = rankgrad.advantages(groups, f"max@{k}") if k > 1 else rankgrad.advantages(groups, "mean")
            g = (k / nn) * (adv * (groups - p)).sum(axis=1)
            prob = np.array([math.comb(nn, int(ci)) * p**ci * (1 - p) ** (nn - ci) for ci in c])
            grad = k * (1 - p) ** (k - 1) * p * (1 - p)
            mean = float(prob @ g)
            if not math.isclose(mean, grad, rel_tol=1e-9, abs_tol=1e-15):
                raise ValueError(f"k_variance: E[g] = {mean} but the exact gradient is {grad} (K={k}, p={p})")
            var = float(prob @ (g - mean) ** 2)
            row.append(f"{var / grad**2:.3g}")
        rows.append(row)
    return table(["objective", "K/N"] + [f"p = {p:g}" for p in p_list], rows, "l" + "r" * (len(p_list) + 1))


# ---------------------------------------------------------------------------------------------- CLI

def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_block(sources: Sources) -> str:
    """Every command's ``--help``, from the parser that ``rankgrad`` runs (rankgrad.cli.build_parser)."""
    from rankgrad.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal: a fixed width fits the page
    try:
        parser = build_parser()
        parts = ["### `rankgrad`\n", "```text\n" + parser.format_help().rstrip() + "\n```\n"]
        for name, sub in _subcommands(parser).items():
            parts.append(f"### `rankgrad {name}`\n")
            parts.append("```text\n" + sub.format_help().rstrip() + "\n```\n")
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- experiments

def accuracy_block(sources: Sources) -> str:
    """Per objective: fitted error slopes, final relative errors and max |z| of the estimates."""
    rows = []
    for r in sources["accuracy"]["results"]:
        v, g, pv, pg = r["value"], r["gradient"], r["plugin_value"], r["plugin_gradient"]
        rows.append([f"`{r['objective']}`", _num(v["slope"], ".2f"), _num(g["slope"], ".2f"),
                     _num(v["max_abs_z"], ".2f"), _num(g["max_abs_z"], ".2f"),
                     _num(pv["error_over_noise"], ".1f"), _num(pg["error_over_noise"], ".1f")])
    return table(["objective", "value slope", "gradient slope", "value max abs z", "gradient max abs z",
                  "plug-in value error / noise", "plug-in gradient error / noise"], rows, "lrrrrrr")


_VAR_ESTIMATORS = ("pkpo_s", "pkpo_sloo", "pkpo_sloo1", "reinforce", "rloo_passk", "grpo_passk",
                   "chen_passk", "grpo")


def variance_block(sources: Sources) -> str:
    """Per setting: ordergrad's variance / ‖∇J‖² and every other estimator's variance relative to it."""
    rows = []
    for r in sources["variance"]["results"]:
        est = r["estimators"]
        base = est["ordergrad"]["var_rel"]
        rows.append([r["setting"], _num(base, ".3g")] + [_num(est[e]["var_rel"] / base, ".2f")
                                                          for e in _VAR_ESTIMATORS]
                    + ["yes" if r["claim_holds"] else "**no**"])
    return ("Each estimator's column is its variance ÷ ordergrad's in the same setting.\n\n"
            + table(["setting", "ordergrad var/‖∇J‖²"] + list(_VAR_ESTIMATORS) + ["claim holds"], rows,
                    "l" + "r" * (len(_VAR_ESTIMATORS) + 1) + "l"))


def variance_bias_block(sources: Sources) -> str:
    """Per setting: relative bias ‖E g − ∇J‖/‖∇J‖ of the biased estimators at their oracle scale."""
    biased = [e for e, info in sources["variance"]["estimators"].items() if not info["unbiased"]]
    rows = [[r["setting"], r["prompts"]] + [_num(r["estimators"][e]["bias_rel"], ".3f") for e in biased]
            for r in sources["variance"]["results"]]
    return table(["setting", "prompts"] + [f"{e} bias" for e in biased], rows, "lr" + "r" * len(biased))


def risk_block(sources: Sources) -> str:
    """Deployed returns of each arm (mean ± s.e. over seeds)."""
    d = sources["risk"]
    names = {"mean": "`mean` (RLOO)", "tail": f"`{d['config']['tail_objective']}`",
             "tamar": f"Tamar CVaR_{d['config']['tamar_alpha']}"}
    best = {m: max(d["arms"], key=lambda a, m=m: d["arms"][a][m]) for m in ("mean", "cvar25")}
    rows = []
    for arm, a in d["arms"].items():
        cell = {m: f"{_num(a[m], '.2f')} ± {a[m + '_se']:.2f}" for m in ("mean", "cvar25")}
        cell = {m: (f"**{c}**" if best[m] == arm else c) for m, c in cell.items()}
        rows.append([names.get(arm, arm), cell["mean"], cell["cvar25"], f"{a['bridge_fraction']:.3f}",
                     f"{a['falls_per_episode']:.3f}"])
    return table(["trained for", "mean return", "CVaR₂₅", "bridge share", "falls per episode"], rows, "lrrrr")


def risk_reference_block(sources: Sources) -> str:
    """Fixed routes simulated: pure bridge, pure detour and blends."""
    ref = sources["risk"]["reference"]
    rows = [["bridge", _num(ref["bridge"]["mean"], ".2f"), _num(ref["bridge"]["cvar25"], ".2f")],
            ["detour", _num(ref["detour"]["mean"], ".2f"), _num(ref["detour"]["cvar25"], ".2f")]]
    for share, r in ref.get("blend", {}).items():
        rows.append([f"blend, bridge share {share}", _num(r["mean"], ".2f"), _num(r["cvar25"], ".2f")])
    return table(["route", "mean return", "CVaR₂₅"], rows, "lrr")


def bestofk_block(sources: Sources) -> str:
    """Test pass@1 / pass@4 per arm and learning rate (mean ± s.e. over seeds); bold: chosen on validation."""
    d = sources["bestofk"]
    rows = []
    for arm, by_lr in d["sweep"].items():
        row = [f"`{arm}`"]
        for lr, r in by_lr.items():
            cells = []
            for metric in d["metrics"]:
                t = r["test"][metric]
                c = f"{t['mean']:.3f} ± {t['se']:.3f}"
                cells.append(f"**{c}**" if d["best_lr"][arm][metric] == lr else c)
            row.append(" / ".join(cells))
        rows.append(row)
    lrs = list(next(iter(d["sweep"].values())))
    return table(["arm"] + [f"lr {float(lr):g}: " + " / ".join(d["metrics"]) for lr in lrs], rows)


def pathwise_block(sources: Sources) -> str:
    """Per reward, objective and σ: each estimator's variance / ‖∇J‖², their ratio and max |z|."""
    rows = []
    for s in sources["pathwise"]["sweep"]:
        pw, lr = s["pathwise"], s["lr"]
        z = max(abs(x) for x in pw["z"] + lr["z"])
        rows.append([s["reward"], f"`{s['objective']}`", f"{s['sigma']:g}", f"{pw['var_rel']:.3g}",
                     f"{lr['var_rel']:.3g}", f"{s['variance_ratio_lr_over_pathwise']:.3g}",
                     s["lower_variance"], f"{z:.2f}"])
    header = ["reward", "objective", "σ", "pathwise var", "LR var", "LR ÷ pathwise", "lower", "max abs z"]
    return table(header, rows, "lllrrrlr")


def noisy_block(sources: Sources) -> str:
    """Final exact clean pass@K per arm and setting (mean ± s.e. over seeds), variance vs the oracle."""
    d = sources["noisy"]
    rows = []
    for s in d["settings"]:
        c = s["curves"]
        cells = [f"{c[a]['final'][0]:.3f} ± {c[a]['final'][1]:.3f}"
                 for a in ("naive", "corrected", "oracle", "mean")]
        var = s["checks"]["start"]["corrected"]["var_over_oracle"]
        rows.append([f"({s['rho0']:g}, {s['rho1']:g})"] + cells
                    + [f"{s['clean_optimum']['clean_value']:.3f}", f"{s['noisy_optimum']['clean_value']:.3f}",
                       f"{var:.3g}", s["correction"]])
    return table(["(ρ0, ρ1)", "naive", "corrected", "oracle", "mean (forward)", "clean optimum",
                  "noisy optimum (clean value)", "corrected var ÷ oracle", "correction"], rows, "lrrrrrrrl")


def noisy_sweep_block(sources: Sources) -> str:
    """Final exact clean pass@K of naive and corrected at the smaller learning rates (``lr_sweep``)."""
    d = sources["noisy"]
    lrs = list(d["settings"][0]["lr_sweep"])
    rows = []
    for s in d["settings"]:
        cells = [" / ".join(f"{s['lr_sweep'][lr][arm][0]:.3f}" for arm in ("naive", "corrected"))
                 for lr in lrs]
        rows.append([f"({s['rho0']:g}, {s['rho1']:g})"] + cells)
    return table(["(ρ0, ρ1)"] + [f"lr {float(lr):g}: naive / corrected" for lr in lrs], rows)


def performance_block(sources: Sources) -> str:
    """The benchmark report (benchmarks/report.py) of benchmarks/results/results.json, headings demoted."""
    from benchmarks.report import render_markdown

    text = render_markdown(sources["bench"])
    lines = []
    for line in text.splitlines():
        if line.startswith("# "):
            continue  # the page has its own title
        lines.append("#" + line if line.startswith("#") else line)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- derived

def _span(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "max": max(values)}


def derived(sources: Sources) -> dict[str, Any]:
    """Quantities prose quotes that no JSON stores directly: ranges over settings and ratios."""
    out: dict[str, Any] = {}
    if "variance" in sources:
        res = sources["variance"]["results"]
        ratio = {e: _span([r["estimators"][e]["var_rel"] / r["estimators"]["ordergrad"]["var_rel"]
                           for r in res]) for e in _VAR_ESTIMATORS}
        mixed = [r for r in res if r["prompts"] > 1]
        single = [r for r in res if r["prompts"] == 1]
        out["variance"] = {
            "ratio": ratio,
            "settings": len(res),
            "claim_holds": sum(bool(r["claim_holds"]) for r in res),
            "claim_fails": len(sources["variance"]["claim_failures"]),
            "claim_unresolved": len(sources["variance"]["claim_unresolved"]),
            "bias_mixed": {e: _span([r["estimators"][e]["bias_rel"] for r in mixed])
                           for e in ("chen_passk", "grpo")},
            "bias_single": {e: _span([r["estimators"][e]["bias_rel"] for r in single])
                            for e in ("chen_passk", "grpo")},
            "by_setting": {r["setting"]: {e: v["var_rel"] for e, v in r["estimators"].items()} for r in res},
        }
    if "accuracy" in sources:
        res = sources["accuracy"]["results"]
        out["accuracy"] = {
            "slope": _span([r[q]["slope"] for r in res for q in ("value", "gradient")]),
            "max_abs_z": max(r[q]["max_abs_z"] for r in res for q in ("value", "gradient")),
            "plugin_gradient_error_over_noise": _span([r["plugin_gradient"]["error_over_noise"]
                                                       for r in res]),
            "max_groups": sources["accuracy"]["config"]["max_groups"],
        }
    if "pathwise" in sources:
        sw = sources["pathwise"]["sweep"]
        out["pathwise"] = {
            "smooth_narrow": _span([s["variance_ratio_lr_over_pathwise"] for s in sw
                                    if s["reward"] == "smooth" and s["sigma"] <= 0.25]),
            "rough_lr_wins": _span([1 / s["variance_ratio_lr_over_pathwise"] for s in sw
                                    if s["reward"] == "rough" and s["lower_variance"] == "lr"]),
            "rough_lr_count": sum(s["reward"] == "rough" and s["lower_variance"] == "lr" for s in sw),
            "rough_count": sum(s["reward"] == "rough" for s in sw),
        }
    if "bench" in sources:  # rows by section, case and backend, so that a page never indexes by position
        out["bench"] = {name: {} for name in sources["bench"]["sections"]}
        for name, rows in sources["bench"]["sections"].items():
            for row in rows:
                out["bench"][name].setdefault(row["case"], {})[row["backend"]] = row
    if "noisy" in sources:
        out["noisy"] = {"var_over_oracle": [s["checks"]["start"]["corrected"]["var_over_oracle"]
                                            for s in sources["noisy"]["settings"]]}
    return out


BLOCKS: dict[str, Callable[..., str]] = {
    "objectives": objectives_block,
    "estimators": estimators_block,
    "k_variance": k_variance_block,
    "cli": cli_block,
    "accuracy": accuracy_block,
    "variance": variance_block,
    "variance_bias": variance_bias_block,
    "risk": risk_block,
    "risk_reference": risk_reference_block,
    "bestofk": bestofk_block,
    "pathwise": pathwise_block,
    "noisy": noisy_block,
    "noisy_sweep": noisy_sweep_block,
    "performance": performance_block,
}
