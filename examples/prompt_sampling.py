"""Which prompts to roll out when training for pass@K: a simulated prompt pool.

Each of P prompts has a logit ℓ_i and pass rate p_i = sigmoid(ℓ_i); most start hard. Every step picks
B prompts with a `rankgrad.sampling.PromptSampler`, draws a group of N pass/fail rollouts per prompt,
computes max@K advantages with `rankgrad.advantages` and takes one policy-gradient step on the chosen
logits (the score of a Bernoulli outcome z is z − p). We count rollouts until the pool's mean pass@K
reaches a target, for three sampling scores: uniform, reward variance p(1−p) (the right signal for the
mean), and the pass@K gradient scale K(1−p)^(K−1)·p(1−p).

Measured (seeds 0-5, 400 prompts): on the default "mixed" pool (35% out of reach, 25% solved, 40%
learnable; target 0.55) the gradient score needed 20-38% fewer rollouts than uniform and 17-51% fewer
than variance sampling, in every seed. On a "hard" pool (one broad population; `--pool hard --target
0.6`) it is only level with uniform (from 4% fewer to 7% more rollouts), and both need 35-50% fewer
than variance sampling. The gain comes from not spending rollouts on prompts whose groups are all-fail
or all-pass; where there are few such prompts, uniform sampling is as good. With --quick (200 prompts)
the gradient score beat both in 7 of 8 seeds (seed 3: variance sampling 8% better).

Note: reweighting prompts changes which prompts the objective emphasises, not the unbiasedness of each
prompt's own gradient; the metric here is the plain average over the pool.

Run:  python examples/prompt_sampling.py [--seed 0] [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

import rankgrad
from rankgrad.sampling import PromptSampler

K, N = 4, 16  # train for pass@4 with groups of 16 rollouts
SCORES = ("uniform", "variance", "gradient")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16, help="prompts per step")
    parser.add_argument("--target", type=float, default=0.55, help="mean pass@K to reach")
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--pool", choices=("mixed", "hard"), default="mixed")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts = 200
    return args


def pool_pass_at_k(logits: np.ndarray) -> float:
    p = 1 / (1 + np.exp(-logits))
    return float(np.mean(1 - (1 - p) ** K))


def rollouts_to_target(score: str, args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)  # same pool and same rollout noise stream for each score
    if args.pool == "mixed":  # some prompts out of reach, some already solved, the rest learnable
        kind = rng.choice(3, size=args.prompts, p=[0.35, 0.25, 0.40])
        logits = np.choose(kind, [rng.normal(-9.0, 1.0, args.prompts), rng.normal(4.0, 1.0, args.prompts),
                                  rng.normal(-2.5, 1.0, args.prompts)])
    else:  # "hard": one broad population of mostly hard prompts
        logits = rng.normal(-3.0, 1.5, size=args.prompts)
    sampler = PromptSampler(args.prompts, score=score, objective=f"max@{K}", group_size=N,
                            prior=(0.5, 0.5), decay=0.9, uniform=0.1, seed=args.seed + 1)
    for step in range(args.max_steps):
        if pool_pass_at_k(logits) >= args.target:
            return step * args.batch * N
        ids = sampler.sample(args.batch)
        p = 1 / (1 + np.exp(-logits[ids]))
        z = (rng.random((args.batch, N)) < p[:, None]).astype(float)  # [B, N] pass/fail
        a = rankgrad.advantages(z, f"max@{K}")
        grad = (K / N) * (a * (z - p[:, None])).sum(-1)  # d pass@K / d logit, unbiased per prompt
        np.add.at(logits, ids, args.lr * grad)
        sampler.update(np.repeat(ids, N), z.reshape(-1))
    return args.max_steps * args.batch * N


def main(argv=None) -> dict:
    args = parse_args(argv)
    results = {score: rollouts_to_target(score, args) for score in SCORES}
    print(f"rollouts until mean pass@{K} >= {args.target} ({args.pool} pool of {args.prompts} prompts, "
          f"seed {args.seed}):")
    for score, n in results.items():
        print(f"  {score:>9}: {n:>8,}")
    return results


if __name__ == "__main__":
    main()
