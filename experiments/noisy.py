"""Imperfect verifier: pass@K training on noisy 0/1 rewards, naive vs counts-level noise correction.

**Problem.** A softmax policy π = softmax(θ) over M = 3 *strategies*, shared by P = 8 prompts; strategy
m solves prompt j with known probability s[j, m] (``SUCCESS``). Six prompts are easy and two are hard:

* ``specialist`` solves the easy prompts 85–95% of the time and the hard ones almost never (0–2%);
* ``generalist`` solves the easy ones 35–45% of the time and the hard ones 20%;
* ``guess`` is worse at everything (10% / 5%); the policy starts uniform, so there is something to learn.

Prompt j's clean pass rate is p_j(θ) = Σ_m π_m s[j, m] and the objective is the clean
J(θ) = mean_j pass@K_j = mean_j [1 − (1 − p_j)^K], K = 4, which is concave in π. A verifier with
false-positive rate ρ0 and false-negative rate ρ1 reports a pass with probability p̃ = ρ0 + (1 − ρ0 − ρ1)p.
Ranking the observed rewards optimises the *noisy* objective J̃ = mean_j [1 − (1 − p̃_j)^K], whose
gradient is the clean one with prompt j weighted by (1 − ρ0 − ρ1)·((1 − p̃_j)/(1 − p_j))^(K−1): the
easy prompts (high p) are over-weighted, and the specialist is what the easy prompts want.

**Exact optima.** Both objectives are maximised by gradient ascent on θ (L-BFGS, torch autograd of
``rankgrad.exact.value``); optimality is certified by the Frank–Wolfe gap max_m ∂J/∂π_m − π·∇_πJ, an
upper bound on J* − J(π) for a concave J on the simplex (the optima lie on the simplex's boundary, where
θ runs off to infinity, so a gradient norm in θ would prove little).

**Sampled training.** Per step, for every prompt, N = 8 strategies are drawn from π, their true
correctness x ~ Bernoulli(s[j, m]) and the verifier's report flips with (ρ0, ρ1). The update is the LR
estimate (K_obj/N)·Σ_i a_i ∇log π(m_i) (∇_θ log π(m) = onehot(m) − π) averaged over prompts, all
prompts and seeds in one ``[seeds, P, N]`` call, Adam (lr 0.05) from uniform, per arm:

* ``naive``     — ``rankgrad.advantages(observed, "max@4")``: unbiased for ∇J̃ (the noisy objective);
* ``corrected`` — ``rankgrad.noisy.advantages(observed, "max@4", rho0=ρ0, rho1=ρ1)``: unbiased for ∇J;
* ``oracle``    — ``rankgrad.advantages(true, "max@4")``: clean labels, the best one can do;
* ``mean``      — ``rankgrad.advantages(observed, "mean", noise=(None, ρ1))`` (forward-corrected RLOO,
  K_obj = 1): pass@1 training, for reference (its optimum is the specialist alone).

The learning curves report the *exact* clean pass@4 of each seed's policy. At two fixed policies (the
uniform start, and the clean optimum with 1% uniform mixed in) ``check_draws`` independent steps'
estimates are averaged per arm and compared with the exact gradient each is unbiased for (z-scores),
and their total variance tr Cov(ĝ) is compared with the oracle's.

**Result** (default run, seed 0: 20 seeds × 500 steps, mean ± SE over seeds; ``docs/results/noisy.json``).
The optima differ: the clean pass@4 optimum mixes specialist 0.34 / generalist 0.66 (clean pass@4
0.834), while the noisy objective's optimum is specialist 0.72 at ρ = (0.05, 0.3) (clean pass@4 0.805)
and the specialist alone at ρ = (0.1, 0.5) and (0.3, 0.6) (0.760, *below* the uniform start's 0.765);
at the clean optimum the naive gradient over-weights the easy prompts relative to the hard ones by 2–3×,
3–5× and 5–9×. Every arm's mean estimate agrees with the exact gradient it targets (all |z| < 2.3,
40,000 draws at two policies). Final exact clean pass@4 (one untuned Adam learning rate, 0.05):

* ρ = (0.05, 0.3): corrected 0.830 ± 0.001 vs naive 0.802 ± 0.003 (oracle 0.832, paired difference
  +0.028 ± 0.003); the corrected step has 4.0× the oracle's variance (naive 1.4×).
* ρ = (0.1, 0.5): corrected 0.821 ± 0.002 vs naive 0.761 (naive ends below the start, where pass@1
  training also ends); variance 31× the oracle's.
* ρ = (0.3, 0.6): **the correction does not help.** Its weights grow like (1 − ρ0 − ρ1)^−K = 10⁴ and
  its variance is 5×10⁵× the oracle's; still unbiased, but Adam's steps are then noise: it ends at
  0.688 ± 0.029, below naive's 0.764 (which converges, to the wrong policy) and below the start, and it
  is below naive at the three smaller learning rates tried too (``lr_sweep``).

At the two milder settings the correction helps at every learning rate tried. This is a bandit with
exact values; whether 31× the variance is affordable for a language model is not measured here.

Run: ``python -m experiments.noisy [--quick] [--seed S] [--out DIR]`` (the default takes
about 15 s on one CPU thread; ``--quick`` about 3 s: the smoke test's run).
"""

from __future__ import annotations

import dataclasses
import math
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

import rankgrad
from rankgrad._src.exact import softmax
from rankgrad.experiments import _common

NAME = "noisy"
ARMS = ("naive", "corrected", "oracle", "mean")
STRATEGIES = ("specialist", "generalist", "guess")
# s[j, m]: probability that strategy m solves prompt j (6 easy prompts, then 2 hard ones).
SUCCESS = (
    (0.95, 0.45, 0.10),
    (0.90, 0.40, 0.10),
    (0.90, 0.40, 0.10),
    (0.90, 0.40, 0.10),
    (0.90, 0.40, 0.10),
    (0.85, 0.35, 0.10),
    (0.02, 0.20, 0.05),
    (0.00, 0.20, 0.05),
)
Z_OK = 4.5  # |z| below this: the estimate's mean agrees with its exact target
# The second check point: the clean optimum with 1% uniform mixed in (at the optimum itself π_guess = 0
# to machine precision, and that coordinate of every estimate is 0 up to rounding).
NEAR_MIX = 0.01


@dataclasses.dataclass
class Config:
    """Every knob of the noisy-verifier experiment."""

    seed: int = 0
    k: int = 4  # pass@K
    group_size: int = 8  # N samples per prompt per step
    settings: tuple[tuple[float, float], ...] = ((0.05, 0.3), (0.1, 0.5), (0.3, 0.6))  # (rho0, rho1)
    steps: int = 500
    seeds: int = 20
    lr: float = 0.05  # Adam, every arm
    sweep_lrs: tuple[float, ...] = (0.005, 0.01, 0.02)  # naive and corrected rerun at these too
    eval_every: int = 10
    check_draws: int = 40_000  # independent steps' estimates per fixed policy for the unbiasedness check

    @classmethod
    def quick(cls, seed: int = 0) -> Config:
        """A reduced run for the smoke tests (a couple of seconds)."""
        return cls(seed=seed, steps=150, seeds=4, sweep_lrs=(0.01,), check_draws=4_000)


# ---------------------------------------------------------------- exact objectives
def success_table() -> np.ndarray:
    """s[j, m], shape [P, M]."""
    return np.array(SUCCESS, dtype=np.float64)


def exact_value(pi: Any, objective: str = "max@4", rho0: float = 0.0, rho1: float = 0.0) -> Any:
    """mean_j J of the reward the verifier reports for prompt j (``rankgrad.exact.value`` of the 0/1 law with
    P(1) = ρ0 + (1 − ρ0 − ρ1)·p_j); ρ0 = ρ1 = 0 is the clean objective. ``pi`` [..., M], numpy or torch
    (differentiable); returns [...]."""
    s = success_table()
    if hasattr(pi, "detach"):  # torch
        import torch

        s = torch.as_tensor(s, dtype=pi.dtype)
        p = pi @ s.T
        pt = rho0 + (1.0 - rho0 - rho1) * p
        probs = torch.stack([1.0 - pt, pt], -1)
        atoms = torch.tensor([0.0, 1.0], dtype=pi.dtype).expand_as(probs)
    else:
        p = np.asarray(pi, dtype=np.float64) @ s.T
        pt = rho0 + (1.0 - rho0 - rho1) * p
        probs = np.stack([1.0 - pt, pt], -1)
        atoms = np.broadcast_to(np.array([0.0, 1.0]), probs.shape)
    return rankgrad.exact.value(atoms, probs, objective).mean(-1)


def exact_gradient(theta: np.ndarray, objective: str = "max@4", rho0: float = 0.0, rho1: float = 0.0,
                   wrt: str = "theta") -> np.ndarray:
    """∇ of :func:`exact_value` w.r.t. the logits θ (``wrt="theta"``) or π itself (``wrt="pi"``), autograd."""
    import torch

    th = torch.tensor(np.asarray(theta, dtype=np.float64), requires_grad=True)
    pi = torch.softmax(th, -1)
    if wrt == "pi":
        pi = pi.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(exact_value(pi, objective, rho0, rho1).sum(), th if wrt == "theta" else pi)
    return g.numpy()


def optimum(k: int, rho0: float, rho1: float) -> dict[str, Any]:
    """Maximise mean_j pass@K of the reported rewards by L-BFGS on θ (exact autograd gradient)."""
    import torch

    objective = f"max@{k}"
    th = torch.zeros(len(STRATEGIES), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([th], lr=1.0, max_iter=500, tolerance_grad=1e-15, tolerance_change=0.0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -exact_value(torch.softmax(th, -1), objective, rho0, rho1)
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(closure)
    theta = th.detach().numpy().copy()
    pi = softmax(theta)
    g_pi = exact_gradient(theta, objective, rho0, rho1, wrt="pi")
    return {
        "theta": theta,
        "pi": pi,
        "value": float(exact_value(pi, objective, rho0, rho1)),  # of the objective it maximises
        "clean_value": float(exact_value(pi, objective)),  # clean pass@K there
        "fw_gap": float(g_pi.max() - pi @ g_pi),  # >= J* − J(π) (concave J on the simplex)
        "grad_theta_norm": float(np.linalg.norm(exact_gradient(theta, objective, rho0, rho1))),
    }


def weight_factor(p: Any, k: int, rho0: float, rho1: float) -> Any:
    """How much more the noisy pass@K gradient weights a prompt of clean pass rate p than the clean one."""
    pt = rho0 + (1 - rho0 - rho1) * p
    return (1 - rho0 - rho1) * ((1 - pt) / (1 - p)) ** (k - 1)


# ---------------------------------------------------------------- sampled estimates
def sample(rng: np.random.Generator, pi: np.ndarray, n: int, rho0: float,
           rho1: float) -> tuple[np.ndarray, ...]:
    """For policies pi [B, M]: strategies [B, P, N], true 0/1 correctness and the verifier's report."""
    s = success_table()
    b, (p, m) = pi.shape[0], s.shape
    u = rng.random((b, p, n, 1))
    arms = np.minimum((u > np.cumsum(pi, -1)[:, None, None, :]).sum(-1), m - 1)
    true = (rng.random((b, p, n)) < s[np.arange(p)[None, :, None], arms]).astype(np.float64)
    flip = rng.random((b, p, n))
    observed = np.where(true == 1.0, flip >= rho1, flip < rho0).astype(np.float64)
    return arms, true, observed


def advantages(arm: str, true: np.ndarray, observed: np.ndarray, k: int, rho0: float,
               rho1: float) -> tuple[np.ndarray, int]:
    """The arm's advantages [B, P, N] (one batched call) and the K of its LR estimator."""
    if arm == "naive":
        return rankgrad.advantages(observed, f"max@{k}"), k
    if arm == "corrected":
        return rankgrad.noisy.advantages(observed, f"max@{k}", rho0=rho0, rho1=rho1), k
    if arm == "oracle":
        return rankgrad.advantages(true, f"max@{k}"), k
    if arm == "mean":
        return rankgrad.advantages(observed, "mean", noise=(None, rho1)), 1
    raise ValueError(f"arm: expected one of {ARMS}, got {arm!r}.")


def lr_gradient(arms: np.ndarray, adv: np.ndarray, k_obj: int, pi: np.ndarray) -> np.ndarray:
    """(K/N)·Σ_i a_i (onehot(m_i) − π), averaged over prompts: [B, M] for policies pi [B, M]."""
    n, m = arms.shape[-1], pi.shape[-1]
    score = np.eye(m)[arms] - pi[:, None, None, :]
    return (k_obj / n) * np.einsum("bpn,bpnm->bm", adv, score) / arms.shape[1]


def gradient_estimates(arm: str, theta: np.ndarray, draws: int, cfg: Config, rates: tuple[float, float],
                       rng: np.random.Generator) -> np.ndarray:
    """``draws`` independent one-step estimates [draws, M] of the arm at the fixed logits θ [M]."""
    pi = np.broadcast_to(softmax(np.asarray(theta, dtype=np.float64)), (draws, len(STRATEGIES)))
    arms, true, observed = sample(rng, pi, cfg.group_size, *rates)
    adv, k_obj = advantages(arm, true, observed, cfg.k, *rates)
    return lr_gradient(arms, adv, k_obj, pi)


def targets(theta: np.ndarray, k: int, rho0: float, rho1: float) -> dict[str, np.ndarray]:
    """The exact gradient each arm's estimate is unbiased for, at logits θ."""
    clean = exact_gradient(theta, f"max@{k}")
    return {
        "naive": exact_gradient(theta, f"max@{k}", rho0, rho1),
        "corrected": clean,
        "oracle": clean,
        "mean": exact_gradient(theta, "mean", rho0, rho1) / (1 - rho1),  # forward correction: E = ∇J̃/(1−ρ1)
    }


def check(theta: np.ndarray, cfg: Config, rates: tuple[float, float], rng_seed: list[int]) -> dict[str, Any]:
    """Every arm's mean estimate at θ over the same ``check_draws`` samples, against its exact target."""
    tg = targets(theta, cfg.k, *rates)
    clean = tg["corrected"]
    out: dict[str, Any] = {"theta": theta, "pi": softmax(theta), "clean_gradient": clean}
    for arm in ARMS:
        g = gradient_estimates(arm, theta, cfg.check_draws, cfg, rates, np.random.default_rng(rng_seed))
        mean, se = g.mean(0), g.std(0, ddof=1) / math.sqrt(g.shape[0])
        out[arm] = {
            "mean": mean,
            "se": se,
            "target": tg[arm],
            "max_abs_z": float(np.abs((mean - tg[arm]) / se).max()),
            "max_abs_z_vs_clean": float(np.abs((mean - clean) / se).max()),
            "trace_cov": float(g.var(0, ddof=1).sum()),
            "mean_sq_norm": float((g**2).sum(-1).mean()),
        }
    for arm in ARMS:
        out[arm]["var_over_oracle"] = out[arm]["trace_cov"] / out["oracle"]["trace_cov"]
    return out


# ---------------------------------------------------------------- training
def train(arm: str, cfg: Config, rates: tuple[float, float], rng_seed: list[int],
          lr: float | None = None) -> dict[str, Any]:
    """Adam (``cfg.lr`` unless ``lr``) on θ [seeds, M] from uniform; exact clean pass@K every
    ``eval_every`` steps."""
    lr = cfg.lr if lr is None else lr
    rng = np.random.default_rng(rng_seed)  # the same seed for every arm: common draws while policies agree
    m = len(STRATEGIES)
    theta = np.zeros((cfg.seeds, m))
    mom, sec = np.zeros_like(theta), np.zeros_like(theta)
    b1, b2, eps = 0.9, 0.999, 1e-8
    evals, curve, sq = [], [], []
    for step in range(cfg.steps + 1):
        pi = softmax(theta)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            evals.append(step)
            curve.append(exact_value(pi, f"max@{cfg.k}"))
        if step == cfg.steps:
            break
        arms, true, observed = sample(rng, pi, cfg.group_size, *rates)
        adv, k_obj = advantages(arm, true, observed, cfg.k, *rates)
        g = lr_gradient(arms, adv, k_obj, pi)  # ascent direction
        sq.append((g**2).sum(-1))
        t = step + 1
        mom = b1 * mom + (1 - b1) * g
        sec = b2 * sec + (1 - b2) * g * g
        theta = theta + lr * (mom / (1 - b1**t)) / (np.sqrt(sec / (1 - b2**t)) + eps)
    values = np.stack(curve, axis=1)  # [seeds, evals]
    final_pi = softmax(theta)
    return {
        "steps": evals,
        "mean": values.mean(0),
        "se": values.std(0, ddof=1) / math.sqrt(cfg.seeds) if cfg.seeds > 1 else np.zeros(len(evals)),
        "final_values": values[:, -1],
        "final": _common.mean_spread(values[:, -1]),
        "final_pi": final_pi,
        "final_pi_mean": final_pi.mean(0),
        "mean_sq_norm": float(np.mean(sq)),  # E‖ĝ‖² per step, over the run and the seeds
    }


def run_setting(index: int, rates: tuple[float, float], cfg: Config) -> dict[str, Any]:
    """Exact optima, unbiasedness checks and training for one (ρ0, ρ1)."""
    rho0, rho1 = rates
    t0 = time.perf_counter()
    clean_opt, noisy_opt = optimum(cfg.k, 0.0, 0.0), optimum(cfg.k, rho0, rho1)
    start = np.zeros(len(STRATEGIES))
    near = np.log((1 - NEAR_MIX) * clean_opt["pi"] + NEAR_MIX / len(STRATEGIES))
    checks = {
        "start": check(start, cfg, rates, [cfg.seed, index, 1]),
        "near_clean_optimum": check(near, cfg, rates, [cfg.seed, index, 2]),
    }
    t_check = time.perf_counter() - t0
    curves = {arm: train(arm, cfg, rates, [cfg.seed, index, 0]) for arm in ARMS}
    sweep = {}
    for lr in cfg.sweep_lrs:
        runs = {arm: train(arm, cfg, rates, [cfg.seed, index, 0], lr) for arm in ("naive", "corrected")}
        sweep[f"{lr:g}"] = {arm: c["final"] for arm, c in runs.items()}
    diff = curves["corrected"]["final_values"] - curves["naive"]["final_values"]  # paired by seed
    d_mean, d_se = _common.mean_spread(diff)
    # the verdict: a paired difference over seeds of more than 2 standard errors either way (one seed has
    # no standard error, so no verdict)
    verdict = "helps" if d_mean > 2 * d_se else ("hurts" if d_mean < -2 * d_se else "level")
    if diff.size < 2:
        verdict = "undetermined (1 seed)"
    p_opt = success_table() @ clean_opt["pi"]
    return {
        "rho0": rho0,
        "rho1": rho1,
        "clean_optimum": clean_opt,
        "noisy_optimum": noisy_opt,
        "start_value": float(exact_value(softmax(start), f"max@{cfg.k}")),
        "mean_optimum_clean_value": float(exact_value(np.eye(len(STRATEGIES))[
            int(np.argmax(success_table().mean(0)))], f"max@{cfg.k}")),
        "factor_at_clean_optimum": weight_factor(p_opt, cfg.k, rho0, rho1),
        "corrected_weight_scale": (1 - rho0 - rho1) ** -cfg.k,
        "checks": checks,
        "curves": curves,
        "lr_sweep": sweep,  # final clean pass@K (mean, SE) of naive and corrected at other learning rates
        "corrected_minus_naive": (d_mean, d_se),
        "correction": verdict,
        "seconds_checks": t_check,
        "seconds_training": time.perf_counter() - t0 - t_check,
    }


def run(config: Config, out_dir: str, progress: bool = True) -> dict[str, Any]:
    """All settings; writes ``noisy.png`` and ``noisy.json`` to ``out_dir``."""
    t0 = time.perf_counter()
    _common.seed_everything(config.seed)
    results = [run_setting(i, tuple(r), config) for i, r in
               _common.progress(list(enumerate(config.settings)), desc=NAME, enabled=progress)]
    seconds = time.perf_counter() - t0
    _print_table(results, config, seconds)
    headline = "; ".join(
        f"rho=({r['rho0']:g},{r['rho1']:g}): clean pass@{config.k} corrected "
        f"{r['curves']['corrected']['final'][0]:.3f} vs naive {r['curves']['naive']['final'][0]:.3f} "
        f"(oracle {r['curves']['oracle']['final'][0]:.3f}, optima {r['clean_optimum']['clean_value']:.3f} / "
        f"{r['noisy_optimum']['clean_value']:.3f}): correction {r['correction']}"
        for r in results
    )
    out = {
        "experiment": NAME,
        "config": config,
        "strategies": STRATEGIES,
        "success": success_table(),
        "headline": headline,
        "max_abs_z": max(c[a]["max_abs_z"] for r in results for c in r["checks"].values() for a in ARMS),
        "settings": results,
        "seconds": seconds,
    }
    return _common.write_outputs(out_dir, NAME, out, plot=plot)


def _print_table(results: list[dict[str, Any]], cfg: Config, seconds: float) -> None:
    k = cfg.k
    print(f"imperfect verifier, pass@{k}: {len(SUCCESS)} prompts x N={cfg.group_size}, "
          f"{_common.seeds_text(cfg.seeds)} x "
          f"{cfg.steps} Adam steps (lr {cfg.lr}); clean pass@{k} exact"
          + (", mean ± SE over seeds" if cfg.seeds > 1 else ""))
    for r in results:
        co, no = r["clean_optimum"], r["noisy_optimum"]
        print(f"\nrho0={r['rho0']:g} rho1={r['rho1']:g}  (corrected weights ~ (1-rho0-rho1)^-{k} = "
              f"{r['corrected_weight_scale']:.3g}; start {r['start_value']:.4f})")
        for name, o in (("clean optimum", co), ("noisy optimum", no)):
            print(f"  {name:<14} pi={np.array2string(o['pi'], precision=3, suppress_small=True)}  clean "
                  f"pass@{k} {o['clean_value']:.4f}  (FW gap {o['fw_gap']:.1e})")
        print(f"  {'arm':<10}{'final clean pass@' + str(k):>24}{'final pi (mean)':>24}{'E|g|^2/step':>13}"
              f"{'|z| start':>10}{'|z| ~opt':>9}{'Var/oracle':>12}")
        for arm in ARMS:
            c, ck = r["curves"][arm], r["checks"]
            f = c["final"]
            pi = np.array2string(c["final_pi_mean"], precision=2, suppress_small=True)
            final = _common.fmt_spread(f[0], f[1], cfg.seeds, 4)
            print(f"  {arm:<10}{final:>24}{pi:>24}{c['mean_sq_norm']:>13.3g}"
                  f"{ck['start'][arm]['max_abs_z']:>10.2f}{ck['near_clean_optimum'][arm]['max_abs_z']:>9.2f}"
                  f"{ck['start'][arm]['var_over_oracle']:>12.3g}")
        d = r["corrected_minus_naive"]
        zn = r["checks"]["near_clean_optimum"]["naive"]["max_abs_z_vs_clean"]
        sweep = ", ".join(f"lr {lr}: {v['corrected'][0]:.3f} vs {v['naive'][0]:.3f}"
                          for lr, v in r["lr_sweep"].items())
        print(f"  other learning rates, corrected vs naive: {sweep}")
        diff = f"{d[0]:+.4f} ± {d[1]:.4f} (paired over seeds)" if cfg.seeds > 1 else f"{d[0]:+.4f} (1 seed)"
        print(f"  corrected - naive: {diff} -> correction "
              f"{r['correction']}; naive vs the clean gradient near the clean optimum: |z| = {zn:.1f}")
    print(f"\n(|z|: each arm's mean estimate at a fixed policy vs the exact gradient it is unbiased for, "
          f"{cfg.check_draws} draws, at the start and near (~) the clean optimum; Var/oracle: tr Cov of "
          "the step estimate at the start)")
    print(f"total {seconds:.1f} s")


@_common.styled
def plot(payload: dict[str, Any]) -> Any:
    """The noisy/clean weight of a prompt and each setting's learning curves, drawn from the results as
    ``noisy.json`` stores them."""
    plt = _common.pyplot()
    cfg = SimpleNamespace(**payload["config"])
    results = payload["settings"]
    success = np.asarray(payload["success"], dtype=float)
    n = len(results)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.8 * (n + 1), 5.0))
    ax = axes[0]
    p = np.linspace(0.0, 0.95, 400)
    rho_colours = ("C4", "C1", "C9", "C5")  # not the arms' colours
    for i, r in enumerate(results):
        ax.semilogy(p, weight_factor(p, cfg.k, r["rho0"], r["rho1"]), color=rho_colours[i % len(rho_colours)],
                    label=f"ρ0={r['rho0']:g}, ρ1={r['rho1']:g}")
    p_opt = success @ np.asarray(results[0]["clean_optimum"]["pi"], dtype=float)
    for x in p_opt:
        ax.axvline(x, color="grey", lw=0.6, ls=":")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("clean pass rate p of a prompt")
    ax.set_ylabel("noisy / clean gradient weight")
    ax.set_title(f"noisy/clean weight of a prompt, (1−ρ0−ρ1)((1−p̃)/(1−p))^{cfg.k - 1}\n"
                 "(dotted: the prompts' p at the clean optimum)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left")
    colours = {"naive": "C3", "corrected": "C0", "oracle": "C2", "mean": "C7"}
    low = min(min(np.asarray(c["mean"], dtype=float) - np.asarray(c["se"], dtype=float))
              for r in results for c in r["curves"].values())
    top = max(r["clean_optimum"]["clean_value"] for r in results)
    for ax, r in zip(axes[1:], results, strict=True):
        for arm in ARMS:
            c = r["curves"][arm]
            steps = np.asarray(c["steps"])
            m, se = np.asarray(c["mean"], dtype=float), np.asarray(c["se"], dtype=float)
            ax.plot(steps, m, color=colours[arm], label="mean (pass@1 training)" if arm == "mean" else arm)
            ax.fill_between(steps, m - se, m + se, color=colours[arm], alpha=0.2)
        ax.axhline(r["clean_optimum"]["clean_value"], color="k", lw=1, label="clean optimum")
        ax.axhline(r["noisy_optimum"]["clean_value"], color="k", lw=1, ls="--", label="noisy optimum")
        spread = f"mean ± SE of {cfg.seeds} seeds" if cfg.seeds > 1 else "1 seed"
        ax.set_title(f"ρ0={r['rho0']:g}, ρ1={r['rho1']:g}: exact clean pass@{cfg.k}\n{spread}")
        ax.set_xlabel(f"Adam step ({len(success)} prompts × {cfg.group_size} samples)")
        ax.set_ylim(min(low, 0.74) - 0.01, top + 0.015)
        ax.grid(True, alpha=0.3)
    axes[1].set_ylabel(f"clean pass@{cfg.k}")
    handles, labels = axes[1].get_legend_handles_labels()
    _common.legend_below(fig, handles, labels, ncol=len(labels), y=0.02)
    fig.suptitle(f"pass@{cfg.k} training with an imperfect verifier: naive vs rankgrad.noisy.advantages")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: ``python -m experiments.noisy [--quick] [--seed S] [--out DIR]``, or
    ``--replot noisy.json`` (redraws noisy.png from the stored numbers; returns ``{"png": path}``)."""
    import torch

    torch.set_num_threads(1)  # torch only handles 3-parameter problems here: more threads only add overhead
    return _common.run_command_line(argv, doc=__doc__, name=NAME, config=Config, run=run, plot=plot)


if __name__ == "__main__":
    main()
