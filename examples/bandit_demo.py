"""Train for what you deploy: one stochastic bandit, three objectives, three different policies.

A tabular softmax policy picks one of four arms; each arm pays a *random* reward:

* ``safe``    — always 0.5;
* ``lottery`` — 4.0 with probability 0.1, else 0 (mean 0.4, but a big upper tail);
* ``steady``  — 1.0 with probability 0.9, else -1.0 (best mean, 0.8, but a bad lower tail);
* ``coin``    — 1.0 or 0.0 with probability 0.5 each (a distractor).

Which arm is "best" depends on how the policy is deployed:

* ``mean``        — the expected reward of one draw: ``steady`` wins;
* ``max@4``       — the best of 4 draws (best-of-K / pass@K style): ``lottery`` (1.376) beats every other
  single arm, and a mix is better still — the optimum is about 71% lottery / 29% steady (1.566): when
  only the best of 4 counts, a few safe-ish draws beside the lottery tickets raise the floor of the max;
* ``cvar:0.25@4`` — the worst of 4 draws (the bottom ceil(0.25 * 4) = 1): ``safe`` wins.

We train one policy per objective from uniform logits with ``rankgrad.advantages``: each step samples
G groups of N arms, samples their rewards, and ascends the unbiased likelihood-ratio gradient

    grad J_K  ~=  (K / N) * mean_groups sum_i a_i * (onehot(x_i) - pi),   a = rankgrad.advantages(R, obj)

(with the softmax score grad_logits log pi(x) = onehot(x) - pi). Each trained policy is then scored
exactly on all three deployment metrics with ``rankgrad.exact.value`` over the policy's reward atoms
(value v with probability pi[arm] * P(v | arm)). The headline: each column's best entry is on the
diagonal — the policy trained for a metric is the one that scores best on it.

Run:  python examples/bandit_demo.py [--steps 300] [--seed 0] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rankgrad

# Arms: (name, reward values, reward probabilities).
ARMS = [
    ("safe", [0.5], [1.0]),
    ("lottery", [4.0, 0.0], [0.1, 0.9]),
    ("steady", [1.0, -1.0], [0.9, 0.1]),
    ("coin", [1.0, 0.0], [0.5, 0.5]),
]
OBJECTIVES = ["mean", "max@4", "cvar:0.25@4"]  # trained for (rows) and deployed on (columns)
GROUPS, GROUP_SIZE = 64, 8  # G groups of N samples per step (K <= N - 1 for every objective)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="gradient steps per objective")
    parser.add_argument("--seed", type=int, default=0, help="numpy RNG seed")
    parser.add_argument("--quick", action="store_true", help="fewer steps (for tests / smoke runs)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate on the logits")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = min(args.steps, 120)
    return args


def atoms(pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten a policy over arms into one list of (reward value, probability) atoms."""
    r = np.concatenate([np.asarray(vals, dtype=float) for _, vals, _ in ARMS])
    p = np.concatenate([pi[a] * np.asarray(probs, dtype=float) for a, (_, _, probs) in enumerate(ARMS)])
    return r, p


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def main(argv=None) -> dict:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n_arms = len(ARMS)
    # Padded reward tables for vectorised sampling: values[arm, atom], cumulative probs[arm, atom].
    width = max(len(vals) for _, vals, _ in ARMS)
    values = np.zeros((n_arms, width))
    cdf = np.ones((n_arms, width))
    for a, (_, vals, probs) in enumerate(ARMS):
        values[a, : len(vals)] = vals
        cdf[a, : len(probs)] = np.cumsum(probs)

    def sample_rewards(arms: np.ndarray) -> np.ndarray:
        u = rng.random(arms.shape)
        idx = (u[..., None] >= cdf[arms]).sum(-1).clip(max=width - 1)
        return values[arms, idx]

    print(f"arms: {', '.join(name for name, _, _ in ARMS)}   steps={args.steps} G={GROUPS} N={GROUP_SIZE}")
    policies, t0 = {}, time.perf_counter()
    for objective in OBJECTIVES:
        k = rankgrad.parse(objective).k
        logits = np.zeros(n_arms)
        m, v = np.zeros(n_arms), np.zeros(n_arms)  # Adam moments
        b1, b2, eps = 0.9, 0.999, 1e-8
        for step in range(1, args.steps + 1):
            pi = softmax(logits)
            arms = rng.choice(n_arms, size=(GROUPS, GROUP_SIZE), p=pi)  # [G, N]
            rewards = sample_rewards(arms)  # [G, N]
            adv = rankgrad.advantages(rewards, objective)  # [G, N], a_i = q_i - v_i
            score = np.eye(n_arms)[arms] - pi  # [G, N, arms]: grad_logits log pi(x_i)
            grad = (k / GROUP_SIZE) * np.einsum("gn,gna->a", adv, score) / GROUPS
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad**2
            logits += args.lr * (m / (1 - b1**step)) / (np.sqrt(v / (1 - b2**step)) + eps)  # ascent
        policies[objective] = softmax(logits)
    train_seconds = time.perf_counter() - t0

    table = {
        trained: {metric: float(rankgrad.exact.value(*atoms(pi), metric)) for metric in OBJECTIVES}
        for trained, pi in policies.items()
    }
    best = {metric: max(OBJECTIVES, key=lambda t: table[t][metric]) for metric in OBJECTIVES}
    diagonal_wins = all(best[metric] == metric for metric in OBJECTIVES)

    arm_names = " ".join(name for name, _, _ in ARMS)
    print(f"\n{'trained for':<14}" + "".join(f"{m:>15}" for m in OBJECTIVES) + f"   policy ({arm_names})")
    for trained in OBJECTIVES:
        cells = "".join(f"{table[trained][m]:>14.4f}{'*' if best[m] == trained else ' '}" for m in OBJECTIVES)
        print(f"{trained:<14}{cells}   " + " ".join(f"{x:.3f}" for x in policies[trained]))
    print("(* = best in column; exact values from rankgrad.exact.value)")
    verdict = "yes" if diagonal_wins else "NO"
    print(
        f"\ndiagonal wins (each policy is best on the metric it was trained for): {verdict}"
        f"   [training {train_seconds:.1f}s]"
    )
    return {
        "table": table,
        "diagonal_wins": diagonal_wins,
        "policies": {t: pi.tolist() for t, pi in policies.items()},
        "arms": [name for name, _, _ in ARMS],
        "steps": args.steps,
        "train_seconds": train_seconds,
    }


if __name__ == "__main__":
    main()
