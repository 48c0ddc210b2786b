"""Estimator accuracy: the mean of T batch estimates converges to the exact value and gradient like T^(-1/2).

Setting: a softmax bandit with M arms and logits θ. Each arm pays a *random* reward drawn from a few atoms on
a 0.1 grid (so rewards tie), i.e. the reward distribution is a known discrete mixture and
``rankgrad.exact.value`` gives J_K(θ) exactly; its torch autograd w.r.t. the logits is the exact gradient.

What is measured, per objective (mean, max@4, cvar:0.25@4, median@5, trim:1@6 by default):

* value: the batch U-statistic ``rankgrad.value`` of each group of N rewards, averaged over T groups,
  against ``rankgrad.exact.value``;
* gradient: the likelihood-ratio estimate (K/N)·Σ_i a_i ∇log π(x_i) with a = ``rankgrad.advantages``
  (∇_θ log π(x) = onehot(x) − π), averaged over T groups, against the exact gradient.

The error of the running mean is the root-mean-square over R independent replicates, relative to |J| or
‖∇J‖, at log-spaced T. For contrast, the *plug-in* estimates (J_K and its exact LR advantages evaluated on
the empirical distribution of each group, i.e. V-statistics) are run on the same samples: they are biased
at finite N, so their error stops falling (for the mean the plug-in value is the sample mean itself, which
is unbiased, but its gradient is still off by the factor (N − 1)/N).

Headline: for every objective the error of both rankgrad estimates falls like T^(-1/2) (fitted log-log
slope ≈ −0.5) down to the last T, with no plateau: the grand mean over all R·T groups is within a few
standard errors of the exact value (z-scores in the JSON), while the plug-in errors level off at their
bias.

Run: ``python -m experiments.accuracy [--quick] [--seed S] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

import rankgrad
from rankgrad.experiments import _common

NAME = "accuracy"


@dataclasses.dataclass
class Config:
    """Every knob of the accuracy experiment."""

    seed: int = 0
    objectives: tuple[str, ...] = ("mean", "max@4", "cvar:0.25@4", "median@5", "trim:1@6")
    arms: int = 6  # M
    atoms_per_arm: int = 3  # reward values per arm (1 = a fixed reward per arm)
    group_size: int = 8  # N (>= K + 1 for every objective)
    max_groups: int = 2**15  # T at the last point
    replicates: int = 24  # R independent runs, for the RMS error of the running mean
    points: int = 16  # log-spaced values of T
    fit_from: int = 16  # fit the slope on T >= fit_from
    plugin: bool = True  # also run the biased plug-in estimates for contrast

    @classmethod
    def quick(cls, seed: int = 0) -> Config:
        """A reduced run for the smoke tests (a couple of seconds)."""
        return cls(seed=seed, max_groups=2**11, replicates=16, points=10)


# ------------------------------------------------------------------ the bandit
@dataclasses.dataclass
class Bandit:
    """Softmax policy over arms, each arm a discrete reward distribution (values[b, c], probs[b, c])."""

    logits: np.ndarray  # [M]
    values: np.ndarray  # [M, C]
    probs: np.ndarray  # [M, C], rows sum to 1

    @property
    def pi(self) -> np.ndarray:
        e = np.exp(self.logits - self.logits.max())
        return e / e.sum()

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Arms x and rewards r of the given shape (inverse-CDF sampling, fully vectorised)."""
        m, c = self.values.shape
        x = np.searchsorted(np.cumsum(self.pi), rng.random(shape), side="right").clip(max=m - 1)
        cdf = np.cumsum(self.probs, axis=1)
        atom = (rng.random(shape)[..., None] >= cdf[x]).sum(-1).clip(max=c - 1)
        return x, self.values[x, atom]

    def exact(self, objective: str) -> tuple[float, np.ndarray]:
        """Exact J_K and ∇_logits J_K (torch autograd through ``rankgrad.exact.value``)."""
        import torch

        theta = torch.tensor(self.logits, dtype=torch.float64, requires_grad=True)
        p_atoms = (torch.softmax(theta, 0)[:, None] * torch.as_tensor(self.probs)).reshape(-1)
        j = rankgrad.exact.value(torch.as_tensor(self.values.reshape(-1)), p_atoms, objective)
        (grad,) = torch.autograd.grad(j, theta)
        return float(j.detach()), grad.numpy()


def make_bandit(rng: np.random.Generator, arms: int, atoms: int) -> Bandit:
    """Random logits ~ N(0, 1), atom values on a 0.1 grid in [0, 1] (ties on purpose), Dirichlet probs."""
    return Bandit(
        logits=rng.normal(size=arms),
        values=np.round(rng.random((arms, atoms)), 1),
        probs=rng.dirichlet(np.ones(atoms), size=arms),
    )


def lr_gradients(x: np.ndarray, adv: np.ndarray, pi: np.ndarray, scale: float) -> np.ndarray:
    """Per-group LR gradients scale·Σ_i a_i (onehot(x_i) − π) w.r.t. softmax logits.

    x, adv: ``[..., T, N]`` arms and advantages; pi: ``[M]`` (or broadcastable to ``[..., 1, M]``).
    Returns ``[..., T, M]``.
    """
    m = pi.shape[-1]
    lead = x.shape[:-1]
    flat = (np.arange(math.prod(lead))[:, None] * m + x.reshape(-1, x.shape[-1])).reshape(-1)
    onehot_sum = np.bincount(flat, weights=adv.reshape(-1), minlength=math.prod(lead) * m).reshape(*lead, m)
    return scale * (onehot_sum - adv.sum(-1, keepdims=True) * pi)


def t_grid(max_groups: int, points: int) -> np.ndarray:
    """Distinct log-spaced integers from 1 to max_groups."""
    return np.unique(np.round(np.logspace(0, math.log10(max_groups), points)).astype(int))


def running_rms_error(est: np.ndarray, truth: np.ndarray | float, ts: np.ndarray) -> np.ndarray:
    """RMS over replicates of ‖mean of the first T estimates − truth‖ for T in ts; est is [R, T_max, ...]."""
    run = np.cumsum(est, axis=1)[:, ts - 1] / ts.reshape((1, -1) + (1,) * (est.ndim - 2))
    sq = (run - truth) ** 2
    if sq.ndim > 2:
        sq = sq.sum(axis=tuple(range(2, sq.ndim)))
    return np.sqrt(sq.mean(axis=0))


def fit_slope(ts: np.ndarray, err: np.ndarray, t_min: int) -> float:
    """Least-squares slope of log(err) on log(T) over T >= t_min."""
    keep = (ts >= t_min) & (err > 0)
    return float(np.polyfit(np.log(ts[keep]), np.log(err[keep]), 1)[0])


def z_scores(est: np.ndarray, truth: np.ndarray | float) -> np.ndarray:
    """(grand mean − truth)/SE over all groups of all replicates, per coordinate."""
    flat = est.reshape(-1, *est.shape[2:])
    se = flat.std(axis=0, ddof=1) / math.sqrt(flat.shape[0])
    diff = flat.mean(axis=0) - truth
    return np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)


# ----------------------------------------------------------------- experiment
def measure(bandit: Bandit, objective: str, cfg: Config, rng: np.random.Generator) -> dict[str, Any]:
    """Errors of the running means of the value and LR-gradient estimates for one objective."""
    k = rankgrad.parse(objective).k
    n, r_, t_max = cfg.group_size, cfg.replicates, cfg.max_groups
    pi = bandit.pi
    j_exact, g_exact = bandit.exact(objective)
    x, rewards = bandit.sample(rng, (r_, t_max, n))

    values = rankgrad.value(rewards, objective)  # [R, T]
    adv = rankgrad.advantages(rewards, objective)  # [R, T, N]
    grads = lr_gradients(x, adv, pi, k / n)  # [R, T, M]
    ts = t_grid(t_max, cfg.points)
    out: dict[str, Any] = {"objective": objective, "K": k, "exact_value": j_exact, "exact_gradient": g_exact}
    curves = {
        "value": (values, j_exact, abs(j_exact)),
        "gradient": (grads, g_exact, float(np.linalg.norm(g_exact))),
    }
    if cfg.plugin:
        uniform = np.full(n, 1.0 / n)
        # One call per replicate (each batched over its T groups) keeps the [T, N, N] temporaries small.
        pv = np.stack([rankgrad.exact.value(rw, np.broadcast_to(uniform, rw.shape), objective)
                       for rw in rewards])
        pa = np.stack([rankgrad.exact.advantages(rw, np.broadcast_to(uniform, rw.shape), objective)
                       for rw in rewards])
        curves["plugin_value"] = (pv, j_exact, abs(j_exact))
        curves["plugin_gradient"] = (lr_gradients(x, pa, pi, k / n), g_exact, float(np.linalg.norm(g_exact)))
    out["T"] = ts
    for name, (est, truth, norm) in curves.items():
        err = running_rms_error(est, truth, ts) / norm
        # Spread of one group's estimate: the 1/sqrt(T) error a bias-free estimator must reach.
        spread = math.sqrt(float(((est - est.mean(axis=(0, 1))) ** 2).reshape(r_ * t_max, -1).sum(-1).mean()))
        z = z_scores(est, truth)
        out[name] = {
            "rel_error": err,
            "slope": fit_slope(ts, err, cfg.fit_from),
            "slope_last_decade": fit_slope(ts, err, max(1, ts[-1] // 10)),
            "final_rel_error": float(err[-1]),
            # error at T_max / (spread/sqrt(T_max)): about 1 without bias, >> 1 once bias dominates
            "error_over_noise": float(err[-1] * norm / (spread / math.sqrt(t_max))),
            "max_abs_z": float(np.max(np.abs(z))),
            "z": z,
        }
    return out


def run(config: Config, out_dir: str, progress: bool = True) -> dict[str, Any]:
    """Measure every objective, print the table, write accuracy.png/json; returns the numbers written."""
    t0 = time.perf_counter()
    rng = _common.seed_everything(config.seed)
    bandit = make_bandit(rng, config.arms, config.atoms_per_arm)
    results = [
        measure(bandit, obj, config, rng)
        for obj in _common.progress(config.objectives, desc=NAME, enabled=progress)
    ]
    summary = {
        r["objective"]: {
            key: {
                "slope": r[key]["slope"],
                "final_rel_error": r[key]["final_rel_error"],
                "error_over_noise": r[key]["error_over_noise"],
                "max_abs_z": r[key]["max_abs_z"],
            }
            for key in ("value", "gradient", "plugin_value", "plugin_gradient")
            if key in r
        }
        for r in results
    }
    seconds = time.perf_counter() - t0
    _print_table(summary, config)
    out = {
        "experiment": NAME,
        "config": config,
        "bandit": {"logits": bandit.logits, "values": bandit.values, "probs": bandit.probs, "pi": bandit.pi},
        "headline": (
            "error of the running mean of T batch estimates (value U-statistic and LR gradient) vs the "
            "exact value / gradient falls like T^-1/2 with no plateau; plug-in (V-statistic) estimates "
            "plateau at their bias"
        ),
        "summary": summary,
        "results": results,
        "seconds": seconds,
    }
    return _common.write_outputs(out_dir, NAME, out, plot=plot)


def _print_table(summary: dict[str, Any], cfg: Config) -> None:
    print(
        f"accuracy: M={cfg.arms} arms x {cfg.atoms_per_arm} reward atoms, N={cfg.group_size}, "
        f"T up to {cfg.max_groups}, R={cfg.replicates} replicates"
    )
    head = f"{'objective':<13}{'estimate':<17}{'slope':>7}{'rel.err@Tmax':>14}{'err/noise':>11}{'max|z|':>8}"
    print(head)
    for obj, rows in summary.items():
        for key, row in rows.items():
            print(
                f"{obj:<13}{key:<17}{row['slope']:>7.3f}{row['final_rel_error']:>14.2e}"
                f"{row['error_over_noise']:>11.2f}{row['max_abs_z']:>8.2f}"
            )
    print("(slope: log-log fit of RMS error vs T, expect -0.5; err/noise ~ 1 without bias; "
          "z: grand mean vs exact)")


@_common.styled
def plot(results: dict[str, Any]) -> Any:
    """Relative RMS error of the running mean vs T, value and gradient, drawn from the results as
    ``accuracy.json`` stores them."""
    plt = _common.pyplot()
    cfg = results["config"]
    rs = results["results"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key, title in zip(axes, ("value", "gradient"), ("value J_K", "gradient ∇J_K (LR)"), strict=True):
        firsts = []
        for i, r in enumerate(rs):
            c = colours[i % len(colours)]
            ts, err = np.asarray(r["T"], dtype=float), np.asarray(r[key]["rel_error"], dtype=float)
            ax.loglog(ts, err, "-o", ms=3, color=c, label=f"{r['objective']} (slope {r[key]['slope']:.2f})")
            if f"plugin_{key}" in r:
                plug = np.asarray(r[f"plugin_{key}"]["rel_error"], dtype=float)
                ax.loglog(ts, plug, "--", color=c, alpha=0.7)
            firsts.append(err[0])
        ts = np.asarray(rs[0]["T"], dtype=float)
        ref = math.exp(np.mean(np.log(firsts))) * ts**-0.5
        ax.loglog(ts, ref, ":", color="k", lw=2, label="∝ T^-1/2")
        ax.plot([], [], "--", color="0.4", label="plug-in (same colour)")
        ax.set_xlabel("T (groups averaged)")
        ax.set_ylabel("relative RMS error of the running mean")
        ax.set_title(f"{title}: rankgrad (solid) vs plug-in (dashed)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
    fig.suptitle(
        f"Accuracy vs exact values: softmax bandit, M={cfg['arms']}, {cfg['atoms_per_arm']} atoms/arm, "
        f"N={cfg['group_size']}, R={cfg['replicates']} replicates (slopes fitted on T ≥ {cfg['fit_from']})\n"
        "for the mean the plug-in value is the sample mean itself: its dashed line lies under the solid one"
    )
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: ``python -m experiments.accuracy [--quick] [--seed S] [--out DIR]``, or
    ``--replot accuracy.json`` (redraws accuracy.png from the stored numbers; returns ``{"png": path}``)."""
    return _common.run_command_line(argv, doc=__doc__, name=NAME, config=Config, run=run, plot=plot)


if __name__ == "__main__":
    main()
