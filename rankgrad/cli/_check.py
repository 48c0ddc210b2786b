"""``rankgrad check``: Monte-Carlo test of each estimator's unbiasedness claim on a softmax bandit.

The policy is π = softmax(θ) over M arms. A group is N i.i.d. arms x_i ~ π with rewards R(x_i) (a fixed
reward per arm, or with ``--binary`` a Bernoulli reward with a per-arm success rate). The exact
gradient ∇_θ J_K is autograd of ``rankgrad.exact.value`` through softmax (torch), cross-checked against
the analytic K·Σ_atoms p ā (e_arm − π) from ``rankgrad.exact.advantages``. Each group's estimate is

    ĝ = c(N, K) · Σ_i a_i (onehot(x_i) − π)        (∇_θ log π(x) = onehot(x) − π),

with c the estimator's declared ``gradient_scale`` (``rankgrad.ESTIMATORS``). An estimator without a
scale (declared biased) is compared by direction only: the best multiple of ∇J is fitted and the
residual is tested.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import rankgrad
from rankgrad._src.exact import softmax
from rankgrad.cli._common import (
    EXIT_DATA,
    EXIT_OK,
    N_MAX,
    CliError,
    estimator_name,
    estimator_names,
    fmt_count,
    fmt_seconds,
    noise_arg,
    objective_arg,
    objective_k,
    positive_float,
    positive_int,
    seed_arg,
)

_ARMS_MAX = 10_000
_CHUNK_CELLS = 1 << 22  # sampled draws (groups × max(N, arms)) per batched call, at most

HELP = "Monte-Carlo check of every estimator's unbiasedness claim against the exact gradient"

DESCRIPTION = """\
Self-test on a random softmax bandit (seeded): M arms with random distinct rewards (or, with
--binary, 0/1 rewards with random per-arm success rates) and random logits theta. The exact
gradient of J_K(theta) comes from autograd of rankgrad.exact.value (torch), cross-checked against
the analytic K * E[a_bar * grad log p] from rankgrad.exact.advantages. Then SAMPLES groups of N
draws are sampled, every estimator's advantages are computed in one batched call per chunk, and each
group's gradient estimate  c(N,K) * sum_i a_i (onehot(x_i) - pi)  is averaged, c being the
estimator's declared gradient_scale.

Reported per estimator: max over coordinates of |mean - exact| / standard error, |mean - exact|
with the standard error of that norm, the cosine between mean and exact gradient, the total
variance of one group's estimate (trace of its covariance), and a verdict against the claim in
rankgrad.ESTIMATORS ("unbiased within T SE"). Estimators declared biased have no gradient scale:
they are judged by direction (the residual after fitting the best multiple of the exact gradient).
Estimators that do not apply to the objective or rewards are skipped with the library's reason
(`rankgrad estimators` lists the objectives each accepts).

With --noise RHO0,RHO1 (needs --binary) the estimators see rewards flipped by an imperfect
verifier; only "ordergrad+noise" (rankgrad.noisy) claims to be unbiased for the true objective.
For the mean objective "ordergrad+forward" (the forward correction, given only RHO1) is added: it
claims the clean direction, scaled by (1-RHO0-RHO1)/(1-RHO1) (unbiased when RHO0 = 0).

K: from the objective's @K suffix or --k; when both are given they must agree."""

EPILOG = """\
examples:
  rankgrad check --objective max@4 --n 8
  rankgrad check --objective cvar:0.25 --k 8 --n 16 --samples 50000 --seed 1
  rankgrad check --objective mean --n 6 --estimators rloo,dr_grpo,grpo
  rankgrad check --objective pass@4 --n 8 --binary --noise 0.1,0.2
  rankgrad check --objective mean --n 8 --binary --noise 0.1,0.3
  rankgrad check --objective max@4 --format json > check.json

An estimator that returns a non-finite advantage fails its claim. In --format json, a number that is
not finite (the cosine of a zero mean) is written as null. N is at most 100000, arms at most 10000.

exit status: 0 every claim holds; 1 an estimator declared unbiased is biased, returns non-finite
advantages (or the two exact gradients disagree); 2 bad arguments."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", "-O", required=True, metavar="SPEC",
                   help="objective, e.g. max@4 or cvar:0.25 (with --k)")
    p.add_argument("--k", type=positive_int, help="K, for an objective given without @K")
    p.add_argument("--n", type=positive_int, help="group size N > K (default: max(2K, K + 4))")
    p.add_argument("--arms", type=positive_int, default=6, help="number of arms M (default: 6)")
    p.add_argument("--samples", type=positive_int, default=20_000, help="number of groups (default: 20000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed, 0 <= S < 2**64 (default: 0)")
    p.add_argument("--estimators", default="all", metavar="LIST",
                   help=f"comma-separated estimator names (at least one) from {estimator_names()}, or "
                        "'all' (default)")
    p.add_argument("--binary", action="store_true",
                   help="0/1 rewards (Bernoulli per arm), for pass@K and chen_passk")
    p.add_argument("--noise", type=noise_arg, metavar="RHO0,RHO1",
                   help="flip the observed 0/1 rewards (false-positive rate RHO0, false-negative rate RHO1); "
                        "needs --binary")
    p.add_argument("--tolerance", type=positive_float, default=4.0, metavar="T",
                   help="bias threshold in standard errors, a finite number > 0 (default: 4)")
    p.add_argument("--batch", type=positive_int, default=10_000,
                   help="groups per batched call (default: 10000)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output (default: text)")
    p.set_defaults(func=run)


@dataclass
class Bandit:
    pi: np.ndarray  # [M] policy
    arm_reward: np.ndarray  # [M] reward per arm (non-binary)
    success: np.ndarray | None  # [M] success rate per arm (binary)
    atoms_r: np.ndarray  # reward atoms for rankgrad.exact
    atoms_arm: np.ndarray  # arm of each atom
    atoms_w: np.ndarray  # p(atom) / π(arm)


def _bandit(rng: np.random.Generator, m: int, binary: bool) -> tuple[Bandit, np.ndarray]:
    theta = rng.normal(0.0, 1.0, m)
    pi = softmax(theta)
    if binary:
        s = rng.uniform(0.05, 0.95, m)
        b = Bandit(pi, np.zeros(m), s, np.r_[np.zeros(m), np.ones(m)], np.r_[np.arange(m), np.arange(m)],
                   np.r_[1.0 - s, s])
    else:
        r = rng.normal(0.0, 1.0, m)
        while np.unique(r).size < m:  # distinct arm rewards (practically always already)
            r = rng.normal(0.0, 1.0, m)
        b = Bandit(pi, r, None, r, np.arange(m), np.ones(m))
    return b, theta


def exact_gradient(b: Bandit, theta: np.ndarray, obj: rankgrad.Objective) -> tuple[np.ndarray, str, float]:
    """(∇_θ J_K, how it was computed, max |autograd − analytic|; NaN when torch is missing)."""
    m = theta.size
    p_atoms = b.pi[b.atoms_arm] * b.atoms_w
    abar = np.asarray(rankgrad.exact.advantages(b.atoms_r, p_atoms, obj), dtype=np.float64)
    weighted = np.bincount(b.atoms_arm, weights=p_atoms * abar, minlength=m)
    analytic = obj.k * (weighted - b.pi * weighted.sum())
    try:
        import torch
    except ImportError:
        return analytic, "analytic K * sum_atoms p a_bar (e_arm - pi) (torch not installed)", math.nan
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    pi_t = torch.softmax(th, 0)
    p_t = pi_t[torch.as_tensor(b.atoms_arm)] * torch.as_tensor(b.atoms_w)
    (grad,) = torch.autograd.grad(rankgrad.exact.value(torch.as_tensor(b.atoms_r), p_t, obj), th)
    auto = grad.numpy().copy()
    how = "torch autograd of rankgrad.exact.value through softmax"
    return auto, how, float(np.abs(auto - analytic).max())


@dataclass
class Row:
    name: str
    claim: str  # "unbiased", "biased", "biased (noisy rewards)"
    scale: float | None
    s1: np.ndarray  # Σ (ĝ − g)
    s2: np.ndarray  # Σ (ĝ − g)²
    count: int = 0
    nonfinite: int = 0  # advantages that were NaN or ±inf (a failure of any claim)


def _estimate(a: np.ndarray, x: np.ndarray, pi: np.ndarray, scale: float) -> np.ndarray:
    """Per-group c · Σ_i a_i (onehot(x_i) − π), [G, M], without a loop over groups."""
    g, m = a.shape[0], pi.size
    rows = np.repeat(np.arange(g), a.shape[1])
    hits = np.bincount(rows * m + x.reshape(-1), weights=a.reshape(-1), minlength=g * m).reshape(g, m)
    return scale * (hits - a.sum(1, keepdims=True) * pi[None, :])


def _estimator_list(text: str) -> list[str]:
    """``--estimators``: 'all', or comma-separated names (no empty entries, at least one)."""
    if text.strip() == "all":
        return list(rankgrad.ESTIMATORS)
    parts = [e.strip() for e in text.split(",")]
    if not any(parts) or "" in parts:
        raise CliError(f"--estimators {text!r}: an empty name; give comma-separated names from "
                       f"{estimator_names()}, or all.")
    names = [estimator_name(e) for e in parts]
    return list(dict.fromkeys(names))  # once each, in the order given


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    k = objective_k(args.objective, args.k)
    if args.n is not None and args.n > N_MAX:
        raise CliError(f"--n: at most {N_MAX}, got {args.n}.")
    if k >= N_MAX:
        raise CliError(f"--objective: K = {k} needs groups of N > K, but N is at most {N_MAX}.")
    if args.arms > _ARMS_MAX:
        raise CliError(f"--arms: at most {_ARMS_MAX}, got {args.arms}.")
    obj = objective_arg(args.objective, args.k)
    n = args.n if args.n is not None else min(max(2 * k, k + 4), N_MAX)
    if n <= k:
        raise CliError(f"--n: the estimators need groups larger than K (N >= K + 1 = {k + 1}), got N = {n}.")
    if args.noise is not None and not args.binary:
        raise CliError("--noise flips 0/1 rewards: add --binary.")
    if args.noise is not None and args.noise[0] is None:
        raise CliError("--noise: check simulates the verifier, so it needs both rates (e.g. 0.1,0.2); with "
                       "the mean objective it also checks the forward correction, which is given only RHO1.")
    if args.samples < 2:
        raise CliError("--samples: need at least 2 groups for a standard error.")
    names = _estimator_list(args.estimators)
    batch = max(1, min(args.batch, _CHUNK_CELLS // max(n, args.arms)))
    rng = np.random.default_rng(args.seed)
    bandit, theta = _bandit(rng, args.arms, args.binary)
    g_exact, how, agree = exact_gradient(bandit, theta, obj)

    entries: list[tuple[str, str, dict[str, Any]]] = []  # (label, estimator, kwargs)
    if args.noise is not None:
        entries.append(("ordergrad+noise", "ordergrad", {"noise": args.noise}))
        if k == 1:
            entries.append(("ordergrad+forward", "ordergrad", {"noise": (None, args.noise[1])}))
    entries += [(e, e, {}) for e in names]
    rows: dict[str, Row] = {}
    skipped: dict[str, str] = {}
    done = 0
    while done < args.samples:
        g = min(batch, args.samples - done)
        x, rewards = _sample(rng, bandit, g, n, args.noise)
        for label, est, kw in entries:
            if label in skipped:
                continue
            info = rankgrad.ESTIMATORS[est]
            try:
                a = np.asarray(rankgrad.advantages(rewards, obj, estimator=est, **kw), dtype=np.float64)
            except ValueError as err:
                why = str(err).split("\n")[0]
                skipped[label] = why + (" (try --binary)" if "0/1" in why and not args.binary else "")
                continue
            finite = np.isfinite(a)
            if label not in rows:
                claim = "unbiased" if info.unbiased else "biased"
                if label == "ordergrad+forward":  # the clean direction, scale (1−ρ0−ρ1)/(1−ρ1)
                    claim = "unbiased" if args.noise[0] == 0 else "aligned"
                elif args.noise is not None and label != "ordergrad+noise":
                    claim = "biased (noisy rewards)" if info.gradient_scale is not None else "biased"
                scale = None if info.gradient_scale is None else float(info.gradient_scale(n, k))
                rows[label] = Row(label, claim, scale, np.zeros(args.arms), np.zeros(args.arms))
            row = rows[label]
            if not finite.all():
                row.nonfinite += int((~finite).sum())
                a = np.where(finite, a, 0.0)
            d = _estimate(a, x, bandit.pi, 1.0 if row.scale is None else row.scale) - g_exact
            row.s1 += d.sum(0)
            row.s2 += (d * d).sum(0)
            row.count += g
        done += g

    results = [_summarise(r, g_exact, args.tolerance) for r in rows.values()]
    failed = [r["estimator"] for r in results if r["fails_claim"]]
    exact_ok = not (agree > 1e-9 * (1.0 + float(np.abs(g_exact).max())))
    report = {
        "objective": obj.name, "k": k, "n": n, "arms": args.arms, "samples": args.samples, "seed": args.seed,
        "rewards": "binary" if args.binary else "gaussian", "noise": args.noise,
        "tolerance_se": args.tolerance,
        "exact_gradient": g_exact.tolist(), "exact_method": how,
        "exact_autograd_vs_analytic": None if math.isnan(agree) else agree,
        "policy": bandit.pi.tolist(), "results": results, "skipped": skipped,
        "failed": failed + ([] if exact_ok else ["exact gradient cross-check"]),
        "seconds": time.perf_counter() - t0,
    }
    if args.format == "json":
        print(json.dumps(_finite_or_null(report), indent=2, allow_nan=False))
    else:
        print(_text(report))
    return EXIT_OK if not report["failed"] else EXIT_DATA


def _finite_or_null(v: Any) -> Any:
    """The report with every non-finite float as None (JSON null): JSON has no NaN or infinity."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite_or_null(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_or_null(x) for x in v]
    return v


def _sample(rng: np.random.Generator, b: Bandit, g: int, n: int, noise: tuple[float, float] | None
            ) -> tuple[np.ndarray, np.ndarray]:
    x = rng.choice(b.pi.size, size=(g, n), p=b.pi)
    if b.success is None:
        return x, b.arm_reward[x]
    true = (rng.random((g, n)) < b.success[x]).astype(np.float64)
    if noise is None:
        return x, true
    rho0, rho1 = noise
    u = rng.random((g, n))
    observed = np.where(true == 1.0, (u >= rho1).astype(np.float64), (u < rho0).astype(np.float64))
    return x, observed


def _summarise(r: Row, g: np.ndarray, tol: float) -> dict[str, Any]:
    s = r.count
    bias = r.s1 / s
    mean = g + bias
    var = np.maximum(r.s2 - s * bias * bias, 0.0) / (s - 1)
    se = np.sqrt(var / s)
    gg = float(g @ g)
    fitted = None
    if r.scale is None or r.claim == "aligned":  # compare directions, after the best multiple of ∇J
        fitted = float(mean @ g) / gg if gg > 0 else 0.0
        bias = mean - fitted * g
    z = _max_z(bias, se, float(np.sqrt(gg)))
    norm = float(np.linalg.norm(mean)) * math.sqrt(gg)
    cos = float(mean @ g) / norm if norm > 0 else math.nan
    total_var = float(var.sum()) / (fitted**2 if fitted else 1.0)  # biased: in units of ∇J
    detected = not z <= tol  # NaN (a broken estimate) counts as detected
    if r.nonfinite:
        verdict = f"FAILED: {r.nonfinite} non-finite advantage(s)"
    elif r.claim == "unbiased":
        verdict = f"BIASED: claim fails ({z:.1f} SE)" if detected else f"unbiased within {tol:g} SE"
    elif r.claim == "aligned":
        verdict = f"MISALIGNED: claim fails ({z:.1f} SE)" if detected else \
            f"clean direction within {tol:g} SE, {fitted:.3g} x grad J"
    elif r.claim.startswith("biased (noisy"):
        verdict = "biased for the true rewards (as expected)" if detected else "no bias detected at this size"
    elif detected:
        verdict = "biased direction (as claimed)"
    else:
        verdict = "no bias detected at this size (claimed biased)"
    return {
        "estimator": r.name, "claim": r.claim, "gradient_scale": r.scale, "fitted_scale": fitted,
        "max_bias_over_se": z, "bias_norm": float(np.linalg.norm(bias)),
        "bias_norm_se": float(np.sqrt((se * se).sum())), "cosine": cos,
        "total_variance": total_var,
        "mean": mean.tolist(), "se": se.tolist(), "verdict": verdict,
        "nonfinite_advantages": r.nonfinite,
        "fails_claim": bool(r.nonfinite or (r.claim in ("unbiased", "aligned") and detected)),
    }


def _max_z(bias: np.ndarray, se: np.ndarray, scale: float) -> float:
    tiny = 1e-12 * (1.0 + scale)
    degenerate = np.where(np.abs(bias) <= tiny, 0.0, np.inf)
    z = np.where(se > 0, np.abs(bias) / np.where(se > 0, se, 1.0), degenerate)
    return float(z.max())


def _text(rep: dict[str, Any]) -> str:
    rewards = "0/1 Bernoulli" if rep["rewards"] == "binary" else "Gaussian distinct"
    noise = "" if rep["noise"] is None else \
        f", verifier noise rho0={rep['noise'][0]:g} rho1={rep['noise'][1]:g}"
    agree = rep["exact_autograd_vs_analytic"]
    lines = [
        f"rankgrad check: {rep['objective']} (K={rep['k']}), groups of N={rep['n']} from a {rep['arms']}-arm "
        f"softmax bandit, {rewards} rewards{noise}, {fmt_count(rep['samples'])} groups, seed {rep['seed']}",
        f"exact gradient: {rep['exact_method']}"
        + ("" if agree is None else f" (analytic K*E[a_bar grad log p] agrees to {agree:.1e})")
        + f"; |grad J| = {float(np.linalg.norm(rep['exact_gradient'])):.4g}",
        "",
        f"{'estimator':<17} {'claim':<9} {'scale':>9} {'max|bias|/SE':>12} {'|bias| (SE)':>21} {'cos':>7} "
        f"{'tr Cov':>10}  verdict",
    ]
    for r in rep["results"]:
        if r["gradient_scale"] is not None:
            scale = f"{r['gradient_scale']:.4g}"
        else:
            scale = f"fit {r['fitted_scale']:.3g}"
        claim = "biased" if r["claim"].startswith("biased") else r["claim"]
        bias = f"{r['bias_norm']:.2e} ({r['bias_norm_se']:.1e})"
        lines.append(f"{r['estimator']:<17} {claim:<9} {scale:>9} {r['max_bias_over_se']:>12.2f} {bias:>21} "
                     f"{r['cosine']:>7.4f} {r['total_variance']:>10.3e}  {r['verdict']}")
    lines.append("")
    lines.append("scale: the declared gradient_scale c(N,K); 'fit' (estimators declared biased): the best "
                 "multiple of grad J,\nthe bias is then the residual direction and tr Cov is divided by "
                 "fit^2. tr Cov: variance of one group's estimate.")
    for label, why in rep["skipped"].items():
        lines.append(f"skipped {label}: {why}")
    if rep["failed"]:
        lines.append(f"FAILED: {', '.join(rep['failed'])}")
    else:
        lines.append(f"ok: every estimator declared unbiased is within {rep['tolerance_se']:g} SE "
                     f"({fmt_seconds(rep['seconds'])})")
    return "\n".join(lines)
