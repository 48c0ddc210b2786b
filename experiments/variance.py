"""Gradient variance / SNR of pass@K advantage estimators, against the exact gradient.

Setting: binary (pass/fail) rewards and the objective pass@K = max@K. A *prompt* is a softmax policy over M
arms (think: M distinct completions, a fixed subset of them correct). A prompt set is one prompt at a given
pass rate, or several prompts of mixed difficulty whose pass@K values are summed (J = Σ_q pass@K_q, one
group of N samples per prompt per batch). The policy is either

* tabular softmax: each prompt has its own logits θ_q ∈ R^M (parameter dimension Q·M), swept over M; or
* linear softmax: logits_q = Φ_q θ + b_q over ``linear_arms`` arms with one shared θ ∈ R^d (d − 1 random
  features and a "correct" indicator), swept over d; the fixed offsets b_q set each prompt's pass rate.

The exact gradient ∇J comes from torch autograd through ``rankgrad.exact.value``. Each estimator is applied
to the same groups (one batched call per estimator) and its per-batch gradient c·Σ_i a_i ∇_θ log π(x_i) is
formed with c = its registry ``gradient_scale``:

* ``ordergrad``  — a = q − v (centred; leave-two-out for max@K = MaxPO), c = K/N;
* ``pkpo_s``, ``pkpo_sloo``, ``pkpo_sloo1`` — PKPO's transformed rewards (unbiased, not centred), c = 1;
* ``reinforce``  — plain REINFORCE on the pass@K reward, no baseline: the N samples are split into N/K
  disjoint K-subsets and each sample's advantage is its subset's max (its pass@K reward), c = K/N;
* ``rloo_passk`` — the same subset rewards minus the mean of the other subsets, c = K/N (unbiased);
* ``grpo_passk`` — GRPO on the pass@K reward: subset rewards normalised by mean and std over the N/K
  subsets (Chen et al.'s "full sampling"); biased;
* ``chen_passk`` — Chen et al.'s analytic advantage (q − V)/σ; biased (the σ division);
* ``grpo``       — GRPO's (r − mean)/std on the raw 0/1 rewards, as in pass@1 training; biased.

Biased estimators have no gradient scale; each gets the *oracle* global scale c* that best fits its mean to
∇J, so the bias reported is the part no learning rate can remove. On a single prompt that part is tiny for
every estimator: pass@K = 1 − (1 − P)^K depends on θ only through the pass rate P, so ∇pass@K ∝ ∇pass@1 and
a GRPO-style estimator is off only by a per-prompt factor, which the oracle absorbs. Across prompts of mixed
difficulty the factors differ and the bias is real (the "mixed" rows).

Measured per setting and estimator: the normalised variance E‖g − E g‖² / ‖∇J‖² (= 1/SNR of one batch for
the unbiased ones), the SNR ‖E g‖²/E‖g − E g‖², the relative bias ‖E g − ∇J‖/‖∇J‖ with per-coordinate
z-scores of the mean against ∇J, and the MSE E‖g − ∇J‖²/‖∇J‖². Where the group's outcomes can be enumerated
(tabular, small M) the same moments are also computed exactly (``exact``), as a check of the Monte Carlo.

The published claim checked (MaxPO, arXiv 2606.06080): the centred leave-two-out advantage (ordergrad) has
lower gradient variance than the non-centred unbiased ones (PKPO's s, s_loo, s_loo-1; also plain
REINFORCE). Each comparison is a paired difference over the same groups, reported as holds / fails /
inconclusive at |z| >= 3; ``claim_holds`` per setting is True only if every comparison holds.

Headline (default run, seed 0, 18 settings): every unbiased estimator's mean matches the exact gradient
(to 1e-15 where the outcomes are enumerated). ordergrad's variance is below that of PKPO's s (by 3.4–100×),
s_loo (by 4–47%), REINFORCE (6–110×) and the disjoint-subset RLOO (5–11×) in every setting.
It is NOT always below PKPO's s_loo-1, so the published claim does not hold everywhere: with 4 arms per
prompt s_loo-1 is lower in all three prompt sets (at pass rate 0.5 by 2.6×: 0.26 vs 0.68 ‖∇J‖², exact by
enumeration), also for the 4-feature linear policy on mixed prompts, and the two are level at 16 arms with
P = 0.5 or mixed prompts; ordergrad is lowest in the other 12 settings (M >= 16 at P = 0.1, M = 64, every
linear policy except d = 4 on mixed prompts). The
biased Chen (q − V)/σ and plain GRPO have lower variance still (down to 0.3× and 0.09× ordergrad's), but
across prompts of mixed difficulty they are biased by 0.1–0.24 and 0.34–0.68 of ‖∇J‖ at the best global
scale (on a single prompt their mean is exactly proportional to ∇pass@K).

Run: ``python -m experiments.variance [--quick] [--seed S] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any

import numpy as np

import rankgrad
from experiments.accuracy import lr_gradients
from rankgrad.experiments import _common

NAME = "variance"

# name → (unbiased, centred, short description); the order is the table's.
ESTIMATORS: dict[str, tuple[bool, bool, str]] = {
    "ordergrad": (True, True, "q − v (MaxPO leave-two-out), c = K/N"),
    "pkpo_s": (True, False, "PKPO s = (K/N) q, c = 1"),
    "pkpo_sloo": (True, False, "PKPO s_loo, c = 1"),
    "pkpo_sloo1": (True, False, "PKPO s_loo-1, c = 1"),
    "reinforce": (True, False, "max of the sample's disjoint K-subset, no baseline, c = K/N"),
    "rloo_passk": (True, True, "disjoint-subset max minus mean of the other subsets, c = K/N"),
    "grpo_passk": (False, True, "GRPO on disjoint-subset max (Chen et al. full sampling), oracle c"),
    "chen_passk": (False, True, "Chen et al. analytic (q − V)/σ, oracle c"),
    "grpo": (False, True, "GRPO on the 0/1 rewards (pass@1 training), oracle c"),
}
ORDER_DEPENDENT = ("reinforce", "rloo_passk", "grpo_passk")  # depend on the split into subsets
CLAIM_VS = ("pkpo_s", "pkpo_sloo", "pkpo_sloo1", "reinforce")  # non-centred unbiased estimators
Z_SIGNIFICANT = 3.0
MIN_DRAWS = 30  # expected draws of an arm before its tabular gradient coordinate is z-tested
MIN_EVENTS = 30  # nonzero batches before a gradient coordinate is z-tested


@dataclasses.dataclass
class Config:
    """Every knob of the variance experiment."""

    seed: int = 0
    k: int = 4
    group_size: int = 16  # N, a multiple of K (for the disjoint-subset estimators)
    groups: int = 20_000  # Monte-Carlo groups per prompt and setting
    arms: tuple[int, ...] = (4, 16, 64)  # tabular softmax: M
    dims: tuple[int, ...] = (4, 16, 64)  # linear softmax: d
    linear_arms: int = 64
    prompt_sets: tuple[tuple[float, ...], ...] = ((0.1,), (0.5,), (0.03, 0.1, 0.3, 0.6, 0.9))  # pass rates
    correct_fraction: float = 0.25  # share of arms that are correct
    logit_scale: float = 1.0  # std of the random part of the logits
    exact_limit: int = 20_000  # enumerate a group's outcomes exactly when there are at most this many

    @classmethod
    def quick(cls, seed: int = 0) -> Config:
        """A reduced run for the smoke tests (a few seconds)."""
        return cls(seed=seed, groups=8_000, arms=(4, 32), dims=(8,), linear_arms=32,
                   prompt_sets=((0.1,), (0.5,), (0.05, 0.3, 0.8)))


# ------------------------------------------------------------------- policies
@dataclasses.dataclass
class Setting:
    """Q prompts, each a softmax over M arms: logits_q = θ_q + b_q (tabular) or Φ_q θ + b_q (linear)."""

    name: str
    kind: str  # "tabular" or "linear"
    phi: np.ndarray | None  # [Q, M, d] features (linear); None (tabular)
    theta: np.ndarray  # [Q·M] (tabular) or [d] (linear)
    offset: np.ndarray  # [Q, M] fixed logit offsets
    correct: np.ndarray  # [Q, M] bool
    targets: tuple[float, ...]

    def logits(self, theta: Any) -> Any:
        """Logits [Q, M] for a numpy or torch θ."""
        q, m = self.correct.shape
        if self.phi is None:
            return theta.reshape(q, m) + self.offset
        return (self.phi.reshape(q * m, -1) @ theta).reshape(q, m) + self.offset

    @property
    def pi(self) -> np.ndarray:
        z = self.logits(self.theta)
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    @property
    def pass_rates(self) -> np.ndarray:
        return (self.pi * self.correct).sum(-1)

    def exact(self, objective: str) -> tuple[float, np.ndarray]:
        """Exact J = Σ_q J_K(prompt q) and ∇_θ J (torch autograd through ``rankgrad.exact.value``)."""
        import torch

        theta = torch.tensor(self.theta, dtype=torch.float64, requires_grad=True)
        ph = None if self.phi is None else torch.as_tensor(self.phi)
        s = dataclasses.replace(self, phi=ph, offset=torch.as_tensor(self.offset))
        p = torch.softmax(s.logits(theta), -1)
        j = rankgrad.exact.value(torch.as_tensor(self.correct, dtype=torch.float64), p, objective).sum()
        (grad,) = torch.autograd.grad(j, theta)
        return float(j.detach()), grad.numpy()

    def gradients(self, x: np.ndarray, adv: np.ndarray, scale: float) -> np.ndarray:
        """Per-batch scale·Σ_q Σ_i a_i ∇_θ log π_q(x_i) for x, adv [Q, G, N] → [G, dim θ]."""
        h = lr_gradients(x, adv, self.pi[:, None, :], scale)  # [Q, G, M], w.r.t. each prompt's logits
        if self.phi is None:
            return h.transpose(1, 0, 2).reshape(h.shape[1], -1)
        return np.einsum("qgm,qmd->gd", h, self.phi)


def _offset_for(base: np.ndarray, correct: np.ndarray, target: float) -> float:
    """δ such that softmax(base + δ·1[correct]) puts mass ``target`` on the correct arms."""
    b = base - base.max()
    s_c, s_w = np.exp(b[correct]).sum(), np.exp(b[~correct]).sum()
    return float(np.log(target * s_w / ((1 - target) * s_c)))


def make_setting(rng: np.random.Generator, kind: str, size: int, targets: tuple[float, ...],
                 cfg: Config) -> Setting:
    """Tabular prompts over ``size`` arms, or linear ones with ``size`` features, at the target pass rates."""
    q = len(targets)
    m = size if kind == "tabular" else cfg.linear_arms
    correct = np.zeros((q, m), dtype=bool)
    for row in correct:
        row[rng.choice(m, size=max(1, round(cfg.correct_fraction * m)), replace=False)] = True
    rates = f"{targets[0]:g}" if q == 1 else f"{q} prompts {min(targets):g}..{max(targets):g}"
    if kind == "tabular":
        base = cfg.logit_scale * rng.normal(size=(q, m))
        shift = np.array([_offset_for(base[i], correct[i], t) for i, t in enumerate(targets)])
        theta = (base + shift[:, None] * correct).reshape(-1)
        return Setting(f"tabular M={m} P={rates}", kind, None, theta, np.zeros((q, m)), correct, targets)
    feats = rng.normal(size=(q, m, size - 1))
    phi = np.concatenate([feats, correct[..., None].astype(float)], axis=-1)
    theta = cfg.logit_scale * rng.normal(size=size) / math.sqrt(size)
    base = phi @ theta
    shift = np.array([_offset_for(base[i], correct[i], t) for i, t in enumerate(targets)])
    return Setting(f"linear d={size} M={m} P={rates}", kind, phi, theta, shift[:, None] * correct, correct,
                   targets)


# ----------------------------------------------------------------- estimators
def advantages(rewards: np.ndarray, k: int) -> dict[str, tuple[np.ndarray, float | None]]:
    """Every estimator's advantages ``[..., N]`` and gradient scale (None = biased) on 0/1 rewards."""
    n = rewards.shape[-1]
    obj = f"max@{k}"
    out: dict[str, tuple[np.ndarray, float | None]] = {}
    for name in ("ordergrad", "pkpo_s", "pkpo_sloo", "pkpo_sloo1", "chen_passk"):
        scale = rankgrad.ESTIMATORS[name].gradient_scale
        adv = rankgrad.advantages(rewards, obj, estimator=name)
        out[name] = (adv, None if scale is None else scale(n, k))
    # Disjoint K-subsets: each sample is credited with its subset's pass@K reward (max of the subset).
    subset_max = rewards.reshape(*rewards.shape[:-1], n // k, k).max(-1)  # [..., N/K]

    def per_sample(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, k, axis=-1)

    out["reinforce"] = (per_sample(subset_max), k / n)
    out["rloo_passk"] = (per_sample(rankgrad.advantages(subset_max, "mean", estimator="rloo")), k / n)
    out["grpo_passk"] = (per_sample(rankgrad.advantages(subset_max, "mean", estimator="grpo")), None)
    out["grpo"] = (rankgrad.advantages(rewards, "mean", estimator="grpo"), None)
    return {name: out[name] for name in ESTIMATORS}


def _oracle(mean: np.ndarray, truth: np.ndarray) -> float:
    mm = float(mean @ mean)
    return float(mean @ truth) / mm if mm > 0 else 0.0


def statistics(grads: np.ndarray, truth: np.ndarray, unbiased: bool,
               testable: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Variance, SNR, bias, z-scores and MSE of per-batch gradients [G, d] against the exact gradient.

    Biased estimators are first rescaled by the oracle c* = <mean, ∇J>/‖mean‖². z-scores are taken over the
    ``testable`` coordinates (all by default) that are nonzero in at least ``MIN_EVENTS`` batches: a mean
    made of a handful of rare events (an arm hardly ever drawn; a subset estimator that is almost always 0
    on an easy prompt) is unbiased but not normal, and its z-score means nothing. Returns the numbers and
    the (rescaled) gradients.
    """
    g = grads.shape[0]
    scale = 1.0 if unbiased else _oracle(grads.mean(0), truth)
    grads = grads * scale
    mean = grads.mean(0)
    norm2 = float(truth @ truth)
    var = float(((grads - mean) ** 2).sum(-1).mean()) * g / (g - 1)
    keep = (np.abs(grads) > 0).sum(0) >= MIN_EVENTS
    if testable is not None:
        keep &= testable
    se = grads.std(0, ddof=1)[keep] / math.sqrt(g)
    z = (mean[keep] - truth[keep]) / np.maximum(se, 1e-300)
    return {
        "var_rel": var / norm2,  # = 1/SNR for an unbiased estimator
        "snr": float(mean @ mean) / var if var > 0 else math.inf,
        "bias_rel": float(np.linalg.norm(mean - truth)) / math.sqrt(norm2),
        "bias_noise_rel": math.sqrt(var / g / norm2),  # the size of bias_rel from noise alone
        "max_abs_z": float(np.abs(z).max()) if z.size else 0.0,
        "chi2_per_dof": float((z**2).mean()) if z.size else 0.0,
        "z_coordinates": int(keep.sum()),
        "cosine": float(mean @ truth) / max(math.sqrt(float(mean @ mean) * norm2), 1e-300),
        "mse_rel": float(((grads - truth) ** 2).sum(-1).mean()) / norm2,
        "oracle_scale": None if unbiased else scale,
    }, grads


def paired(sq_other: np.ndarray, sq_ref: np.ndarray, norm2: float) -> dict[str, Any]:
    """mean(sq_other − sq_ref)/‖∇J‖² with SE and z; verdict for "ref has lower variance than other"."""
    d = (sq_other - sq_ref) / norm2
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    z = mean / se if se > 0 else (math.inf if mean > 0 else 0.0)
    verdict = "holds" if z >= Z_SIGNIFICANT else ("fails" if z <= -Z_SIGNIFICANT else "inconclusive")
    return {"diff_rel": mean, "se": se, "z": z, "verdict": verdict}


def _compositions(n: int, m: int) -> np.ndarray:
    """All count vectors of n samples over m arms, [C(n+m−1, m−1), m]."""
    rows = [np.diff((-1, *bars, n + m - 1)) - 1 for bars in itertools.combinations(range(n + m - 1), m - 1)]
    return np.array(rows, dtype=int)


def exact_moments(setting: Setting, truth: np.ndarray, cfg: Config) -> dict[str, dict[str, float]] | None:
    """Exact variance and MSE (per batch) of the order-free estimators, by enumerating every outcome of a
    group (counts per arm, multinomial weights); None when there are more than ``exact_limit`` outcomes."""
    q, m = setting.correct.shape
    n = cfg.group_size
    if math.comb(n + m - 1, m - 1) > cfg.exact_limit:
        return None
    counts = _compositions(n, m)  # [O, M]
    pi = setting.pi
    lgamma = np.vectorize(math.lgamma)
    log_coef = math.lgamma(n + 1) - lgamma(counts + 1.0).sum(1)  # multinomial coefficients
    w = np.exp(log_coef[None, :] + np.einsum("om,qm->qo", counts, np.log(pi)))  # [Q, O] probabilities
    x = np.stack([np.repeat(np.arange(m), c) for c in counts])  # [O, N], one ordering per outcome
    xq = np.broadcast_to(x, (q, *x.shape))
    rewards = np.take_along_axis(setting.correct[:, None, :], xq, axis=-1).astype(float)  # [Q, O, N]
    norm2 = float(truth @ truth)
    out = {}
    for name, (adv, scale) in advantages(rewards, cfg.k).items():
        if name in ORDER_DEPENDENT:
            continue
        h = lr_gradients(xq, adv, pi[:, None, :], 1.0 if scale is None else scale)  # [Q, O, M]
        g = np.einsum("qom,qmd->qod", h, setting.phi) if setting.phi is not None else h  # per prompt
        mean_q = np.einsum("qo,qod->qd", w, g)
        var = float(np.einsum("qo,qo->", w, ((g - mean_q[:, None, :]) ** 2).sum(-1)))
        mean = mean_q.reshape(-1) if setting.phi is None else mean_q.sum(0)
        c = 1.0 if scale is not None else _oracle(mean, truth)
        out[name] = {
            "var_rel": c * c * var / norm2,
            "mse_rel": (c * c * var + float(((c * mean - truth) ** 2).sum())) / norm2,
            "bias_rel": float(np.linalg.norm(c * mean - truth)) / math.sqrt(norm2),
        }
    return out


def measure(setting: Setting, cfg: Config, rng: np.random.Generator) -> dict[str, Any]:
    """All estimators on the same groups (``groups`` per prompt) of one setting."""
    j, truth = setting.exact(f"max@{cfg.k}")
    pi = setting.pi
    q, m = pi.shape
    u = rng.random((q, cfg.groups, cfg.group_size))
    x = np.stack([np.searchsorted(np.cumsum(pi[i]), u[i], side="right") for i in range(q)]).clip(max=m - 1)
    rewards = np.take_along_axis(setting.correct[:, None, :], x, axis=-1).astype(float)  # [Q, G, N]
    norm2 = float(truth @ truth)
    # z-test a tabular coordinate only if its arm is expected to be drawn >= MIN_DRAWS times in all groups.
    testable = None
    if setting.phi is None:
        testable = cfg.groups * cfg.group_size * pi.reshape(-1) >= MIN_DRAWS
    stats, sq = {}, {}
    for name, (adv, scale) in advantages(rewards, cfg.k).items():
        st, grads = statistics(setting.gradients(x, adv, 1.0 if scale is None else scale), truth,
                               ESTIMATORS[name][0], testable)
        stats[name] = st
        sq[name] = ((grads - truth) ** 2).sum(-1)  # E = var (+ bias²): paired comparisons
    comparisons = {other: paired(sq[other], sq["ordergrad"], norm2) for other in CLAIM_VS}
    verdicts = [c["verdict"] for c in comparisons.values()]
    correct_count = rewards.sum(-1)
    return {
        "setting": setting.name,
        "kind": setting.kind,
        "arms": m,
        "prompts": q,
        "dim": int(setting.theta.size),
        "target_pass_rates": setting.targets,
        "pass_rates": setting.pass_rates,
        "objective_value": j,
        "grad_norm": math.sqrt(norm2),
        "degenerate_groups": float(np.mean((correct_count == 0) | (correct_count == cfg.group_size))),
        "estimators": stats,
        "exact": exact_moments(setting, truth, cfg),
        "claim_vs_ordergrad": comparisons,
        "claim_holds": all(v == "holds" for v in verdicts),
        "claim_fails": [o for o, v in zip(CLAIM_VS, verdicts, strict=True) if v == "fails"],
        "claim_unresolved": [o for o, v in zip(CLAIM_VS, verdicts, strict=True) if v == "inconclusive"],
    }


def run(config: Config, out_dir: str, progress: bool = True) -> dict[str, Any]:
    """Measure every setting, print the table, write variance.png/json; returns the numbers written."""
    if config.group_size % config.k:
        raise ValueError(f"group_size: expected a multiple of k={config.k}, got {config.group_size}.")
    t0 = time.perf_counter()
    rng = _common.seed_everything(config.seed)
    plan = [(kind, size, ps) for ps in config.prompt_sets
            for kind, sizes in (("tabular", config.arms), ("linear", config.dims)) for size in sizes]
    results = [
        measure(make_setting(rng, kind, size, ps, config), config, rng)
        for kind, size, ps in _common.progress(plan, desc=NAME, enabled=progress)
    ]
    seconds = time.perf_counter() - t0
    _print_table(results, config)
    out = {
        "experiment": NAME,
        "config": config,
        "estimators": {k: {"unbiased": v[0], "centred": v[1], "what": v[2]} for k, v in ESTIMATORS.items()},
        "claim": (
            "MaxPO (arXiv 2606.06080): the centred leave-two-out advantage (ordergrad) has lower gradient "
            "variance than the non-centred unbiased ones (" + ", ".join(CLAIM_VS) + ")"
        ),
        "claim_holds_everywhere": all(r["claim_holds"] for r in results),
        "claim_failures": [f"{r['setting']}: ordergrad not lower than {', '.join(r['claim_fails'])}"
                           for r in results if r["claim_fails"]],
        "claim_unresolved": [
            f"{r['setting']}: vs {', '.join(r['claim_unresolved'])} within {Z_SIGNIFICANT} SE"
            for r in results if r["claim_unresolved"]
        ],
        "results": results,
        "seconds": seconds,
    }
    return _common.write_outputs(out_dir, NAME, out, plot=plot)


def _claim_text(r: dict[str, Any]) -> str:
    if r["claim_holds"]:
        return "holds"
    parts = []
    if r["claim_fails"]:
        parts.append("FAILS vs " + ",".join(r["claim_fails"]))
    if r["claim_unresolved"]:
        parts.append("unresolved vs " + ",".join(r["claim_unresolved"]))
    return "; ".join(parts)


def _print_table(results: list[dict[str, Any]], cfg: Config) -> None:
    names = list(ESTIMATORS)
    short = {n: n.replace("pkpo_", "").replace("_passk", "@K") + ("*" if not ESTIMATORS[n][0] else "")
             for n in names}
    print(
        f"variance: pass@{cfg.k}, N={cfg.group_size}, {cfg.groups} groups per prompt. Cells: "
        "E||g - E g||^2 / ||grad J||^2 per batch (= 1/SNR); * = biased, at the oracle scale (bias below)"
    )
    print(f"{'setting':<40}" + "".join(f"{short[n]:>11}" for n in names) + "  claim (ordergrad lowest)")
    for r in results:
        cells = "".join(f"{r['estimators'][n]['var_rel']:>11.3g}" for n in names)
        print(f"{r['setting']:<40}{cells}  {_claim_text(r)}")
        if r["exact"]:
            cells = "".join(f"{r['exact'][n]['var_rel']:>11.3g}" if n in r["exact"] else f"{'-':>11}"
                            for n in names)
            print(f"{'   (exact, by enumeration)':<40}{cells}")
    worst = max(
        (r["estimators"][n]["max_abs_z"], n, r["setting"]) for r in results for n in names if ESTIMATORS[n][0]
    )
    print(f"unbiased estimators' means vs the exact gradient: largest |z| = {worst[0]:.2f} "
          f"({worst[1]}, {worst[2]})")
    print("bias of the biased estimators at their oracle scale (||E g - grad J|| / ||grad J||; noise level):")
    for r in results:
        b = {n: r["estimators"][n] for n in names if not ESTIMATORS[n][0]}
        print(f"  {r['setting']:<38}" + ", ".join(f"{n} {v['bias_rel']:.3f}" for n, v in b.items())
              + f"  (noise ~{r['estimators']['ordergrad']['bias_noise_rel']:.3f})")


# one marker per estimator, so that curves lying on each other can still be told apart
MARKERS = {"ordergrad": "o", "pkpo_s": "s", "pkpo_sloo": "D", "pkpo_sloo1": "^", "reinforce": "v",
           "rloo_passk": "P", "grpo_passk": "x", "chen_passk": "+", "grpo": "*"}


@_common.styled
def plot(results: dict[str, Any]) -> Any:
    """Variance and bias of every estimator per prompt set (rows) and policy (tabular / linear), drawn from
    the results as ``variance.json`` stores them."""
    plt = _common.pyplot()
    cfg = results["config"]
    prompt_sets = [tuple(ps) for ps in cfg["prompt_sets"]]
    unbiased = {n: bool(v["unbiased"]) for n, v in results["estimators"].items()}
    names = list(unbiased)
    biased = [n for n in names if not unbiased[n]]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {n: colours[i % len(colours)] for i, n in enumerate(names)}
    rows = len(prompt_sets)
    fig, axes = plt.subplots(rows, 4, figsize=(18, 3.7 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": (1.35, 1, 1.35, 1)})
    handles: dict[str, Any] = {}
    for row, ps in enumerate(prompt_sets):
        rates = ", ".join(f"{t:g}" for t in ps)
        where = f"pass rate{'s' if len(ps) > 1 else ''} {rates}"
        for col, kind in enumerate(("tabular", "linear")):
            ax_v, ax_b = axes[row, 2 * col], axes[row, 2 * col + 1]
            rs = [r for r in results["results"]
                  if r["kind"] == kind and tuple(r["target_pass_rates"]) == ps]
            if not rs:
                ax_v.axis("off")
                ax_b.axis("off")
                continue
            xs = [r["arms"] if kind == "tabular" else r["dim"] for r in rs]
            for n in names:
                ys = [float(r["estimators"][n]["var_rel"]) for r in rs]
                (h,) = ax_v.loglog(xs, ys, "-" if unbiased[n] else "--", marker=MARKERS.get(n, "o"),
                                   color=colour[n], ms=6 if n == "ordergrad" else 5, mfc="none",
                                   lw=2.6 if n == "ordergrad" else 1.2, zorder=3 if n == "ordergrad" else 2)
                handles.setdefault(n, h)
            # bias at the oracle scale; an unbiased estimator measures only noise, of about bias_noise_rel
            noise = [2 * float(r["estimators"]["ordergrad"]["bias_noise_rel"]) for r in rs]
            band = ax_b.fill_between(xs, 1e-4, noise, color="0.85", lw=0, zorder=1)
            handles.setdefault("noise", band)
            for n in biased:
                ys = [max(float(r["estimators"][n]["bias_rel"]), 1e-4) for r in rs]
                ax_b.loglog(xs, ys, "--", marker=MARKERS.get(n, "o"), color=colour[n], ms=5, mfc="none",
                            lw=1.2)
            (h,) = ax_b.loglog(xs, [float(r["estimators"]["ordergrad"]["bias_rel"]) for r in rs], "-",
                               marker="o", color=colour["ordergrad"], ms=4, lw=1.0, alpha=0.8)
            ax_b.set_ylim(1e-3, 1.5)
            xlabel = "arms M per prompt" if kind == "tabular" else f"feature dim d (M={rs[0]['arms']})"
            for ax in (ax_v, ax_b):
                ax.set_xticks(xs, [str(v) for v in xs])
                ax.minorticks_off()
                ax.set_xlabel(xlabel)
                ax.grid(True, which="major", alpha=0.3)
            ax_v.set_ylabel("variance  E‖g − E g‖² / ‖∇J‖²")
            ax_b.set_ylabel("bias  ‖E g − ∇J‖ / ‖∇J‖")
            ax_v.set_title(f"{kind} softmax, {where}: variance")
            ax_b.set_title(f"{kind}, {where}: bias")
    labels = {n: n + ("" if unbiased[n] else " (biased; oracle scale)") for n in names}
    labels["noise"] = "bias not resolved: below 2 × the Monte-Carlo error of the mean"
    order = [*names, "noise"]
    _common.legend_below(fig, [handles[n] for n in order], [labels[n] for n in order], ncol=4, y=0.045)
    fig.suptitle(
        f"Per-batch gradient variance (lower is better) and bias for pass@{cfg['k']}, N={cfg['group_size']}, "
        f"{cfg['groups']} groups per prompt. Biased estimators are rescaled by the best global factor; their "
        "bias does not average out over batches.\ngrpo_passk (×) lies on rloo_passk (P) in the variance "
        "panels; in the bias panels the thin solid line is ordergrad's measured bias (noise only).",
        fontsize=10.5,
    )
    fig.tight_layout(rect=(0, 0.045, 1, 1))
    return fig


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: ``python -m experiments.variance [--quick] [--seed S] [--out DIR]``, or
    ``--replot variance.json`` (redraws variance.png from the stored numbers; returns ``{"png": path}``)."""
    return _common.run_command_line(argv, doc=__doc__, name=NAME, config=Config, run=run, plot=plot)


if __name__ == "__main__":
    main()
