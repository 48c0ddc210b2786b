"""Brute-force reference: explicit enumeration over K-subsets and K-tuples, written from the
definitions only (no code shared with rankgrad)."""

from __future__ import annotations

import itertools

import numpy as np


def l_stat(sample: np.ndarray, w_top_first: np.ndarray) -> float:
    """Σ_j w_j · (j-th largest of the sample)."""
    return float(np.dot(np.sort(sample)[::-1], w_top_first))


def batch_value(y: np.ndarray, w: np.ndarray) -> float:
    k = len(w)
    return float(np.mean([l_stat(y[list(s)], w) for s in itertools.combinations(range(len(y)), k)]))


def include_one(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    n, k = len(y), len(w)
    subs = list(itertools.combinations(range(n), k))
    return np.array([np.mean([l_stat(y[list(s)], w) for s in subs if i in s]) for i in range(n)])


def leave_one_out(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    n = len(y)
    return np.array([batch_value(np.delete(y, i), w) for i in range(n)])


def order_statistics(y: np.ndarray, k: int) -> np.ndarray:
    subs = [np.sort(y[list(s)])[::-1] for s in itertools.combinations(range(len(y)), k)]
    return np.mean(subs, axis=0)


def maxpo_l2o(y: np.ndarray, k: int) -> np.ndarray:
    """MaxPO: expected max over K-subsets containing i, minus the leave-two-out baseline
    b_i = mean_{j≠i} (expected max over K-subsets of the batch without i that contain j)."""
    n = len(y)
    out = np.empty(n)
    for i in range(n):
        subs_i = [s for s in itertools.combinations(range(n), k) if i in s]
        q_i = np.mean([y[list(s)].max() for s in subs_i])
        others = [j for j in range(n) if j != i]
        b = []
        for j in others:
            subs_j = [s for s in itertools.combinations(others, k) if j in s]
            b.append(np.mean([y[list(s)].max() for s in subs_j]))
        out[i] = q_i - np.mean(b)
    return out


def exact_value(r: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """E[L-statistic] of K draws with replacement, by enumerating all M^K tuples."""
    k = len(w)
    tot = 0.0
    for tup in itertools.product(range(len(r)), repeat=k):
        tot += np.prod(p[list(tup)]) * l_stat(r[list(tup)], w)
    return tot


def exact_include_one(r: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    k = len(w)
    out = np.zeros(len(r))
    for b in range(len(r)):
        for tup in itertools.product(range(len(r)), repeat=k - 1):
            idx = [b, *tup]
            out[b] += np.prod(p[list(tup)]) * l_stat(r[idx], w)
    return out
