"""Metrics for training and evaluation: unbiased max@k / pass@k for every k, and the share of a batch
that carries no policy-gradient signal.

* :func:`max_at_k`, :func:`pass_at_k` — per group and averaged over groups, for k = 1..N at once: the
  U-statistic :func:`rankgrad.value` of ``"max@k"`` (the mean over the group's k-subsets of their best
  reward), unbiased for pass@k with 0/1 rewards. A bootstrap of k draws *with* replacement (verl's
  ``best@k``) is not: with 1 correct answer in 4, it reports 1 − (3/4)^4 ≈ 0.684 for best@4, where the
  only 4-subset of the data does pass (1.0), and its expectation differs from pass@k;
* :func:`min_at_k` — the same for the worst of k (``"min@k"``);
* :func:`advantage_stats` — fractions of zero advantages, of all-zero groups and of constant groups;
* :func:`training_metrics` — the flat ``{"rankgrad/...": float}`` dict both adapters log every step.

Policy: a group with fewer than k valid samples has no unbiased max@k; its entry is NaN and it is left
out of that k's mean (every other group weighs the same, as every prompt does). NaN/inf rewards are
errors unless masked out (``training_metrics`` drops them: they are unscorable rollouts).
"""

from rankgrad._src.metrics import (
    AdvantageStats,
    MaxAtK,
    advantage_stats,
    default_ks,
    max_at_k,
    min_at_k,
    pass_at_k,
    training_metrics,
)

__all__ = [
    "AdvantageStats",
    "MaxAtK",
    "advantage_stats",
    "default_ks",
    "max_at_k",
    "min_at_k",
    "pass_at_k",
    "training_metrics",
]
