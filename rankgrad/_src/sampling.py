"""Objective-aware prompt sampling.

A group whose rewards are all equal gives zero gradient, so RL loops waste rollouts on prompts that are
always solved or never solved. Which prompts are worth sampling depends on the objective: reward
variance p(1−p) (MMR1, arXiv 2509.21268) is the signal for the mean; for pass@K the gradient of
1 − (1−p)^K with respect to a prompt's logit is K(1−p)^(K−1)·p(1−p), which favours hard prompts.

For 0/1 rewards any L-statistic is J(p) = Σ_s Bin(s; K, p)·h(s) with h(s) = sum of the top s weights,
so dJ/dp = K·Σ_{s<K} Bin(s; K−1, p)·w_top[s] and the logit-gradient scale is |dJ/dp|·p(1−p).

Reweighting prompts changes the prompt mixture of the objective (hard prompts count more), not the
unbiasedness of each prompt's own gradient estimate. Keep a uniform share so every prompt stays
reachable and its estimate stays fresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankgrad._src.objectives import ObjectiveLike, as_objective
from rankgrad._src.types import ArrayLike
from rankgrad._src.weights import binomial_pmf

__all__ = ["prompt_scores", "PromptSampler", "SCORES"]

SCORES = ("uniform", "variance", "nondegenerate", "gradient")


def _objective_slope(p: np.ndarray, objective: ObjectiveLike) -> np.ndarray:
    """dJ/dp for 0/1 rewards: K Σ_{s<K} C(K−1, s) p^s (1−p)^(K−1−s) w_top[s] (only the s with a
    nonzero weight: one term for max@K)."""
    obj = as_objective(objective)
    obj.require_integral("prompt_scores")
    k, w = int(obj.k), obj.weights
    assert w is not None  # an integral K has its weights
    s = np.flatnonzero(w)
    return k * (binomial_pmf(k - 1, p, s) * w[s]).sum(-1)


def prompt_scores(
    p: ArrayLike, score: str = "gradient", *, objective: ObjectiveLike = "max@4", group_size: int = 16
) -> np.ndarray:
    """Sampling scores for prompts with pass rates ``p`` (array in [0, 1]).

    Args:
      score: ``"uniform"``; ``"variance"`` p(1−p); ``"nondegenerate"`` 1 − p^N − (1−p)^N (the chance a
        group of N is not all-equal); ``"gradient"`` |dJ/dp|·p(1−p), the expected gradient scale of
        ``objective`` (for max@K: K(1−p)^(K−1)·p(1−p)).
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    if score == "uniform":
        return np.ones_like(p)
    if score == "variance":
        return p * (1 - p)
    if score == "nondegenerate":
        return 1 - p**group_size - (1 - p) ** group_size
    if score == "gradient":
        return np.abs(_objective_slope(p, objective)) * p * (1 - p)
    raise ValueError(f"score: expected one of {', '.join(SCORES)}, got {score!r}.")


class PromptSampler:
    """Samples prompt indices in proportion to a score of each prompt's running pass-rate estimate.

    The estimate of prompt i is (a + successes_i) / (a + b + trials_i) (Beta(a, b) smoothing); each
    time prompt i gets new results its old counts are first multiplied by ``decay``, so stale results
    fade as the policy moves while unvisited prompts keep what is known of them. Probabilities are
    (1 − uniform)·score/Σscore + uniform/P.

    Example:
      >>> s = PromptSampler(4, score="gradient", objective="max@4", seed=0)
      >>> s.update([0, 0, 1, 1], [1.0, 1.0, 0.0, 1.0])
      >>> s.probabilities().round(3).tolist()
      [0.052, 0.316, 0.316, 0.316]
    """

    def __init__(
        self,
        num_prompts: int,
        *,
        score: str = "gradient",
        objective: ObjectiveLike = "max@4",
        group_size: int = 16,
        prior: tuple[float, float] = (1.0, 1.0),
        decay: float = 1.0,
        uniform: float = 0.1,
        seed: int | None = None,
    ) -> None:
        if num_prompts < 1:
            raise ValueError(f"num_prompts: expected >= 1, got {num_prompts}.")
        if not 0 <= uniform <= 1:
            raise ValueError(f"uniform: expected a share in [0, 1], got {uniform}.")
        if not 0 < decay <= 1:
            raise ValueError(f"decay: expected 0 < decay <= 1, got {decay}.")
        if score not in SCORES:
            raise ValueError(f"score: expected one of {', '.join(SCORES)}, got {score!r}.")
        self.score, self.objective, self.group_size = score, objective, group_size
        self.prior, self.decay, self.uniform = prior, decay, uniform
        self.successes = np.zeros(num_prompts)
        self.trials = np.zeros(num_prompts)
        self.rng = np.random.default_rng(seed)

    @property
    def pass_rates(self) -> np.ndarray:
        a, b = self.prior
        return (a + self.successes) / (a + b + self.trials)

    def update(self, prompt_ids: Any, rewards: Any) -> None:
        """Record rewards in [0, 1] (pass/fail) for the given prompt indices (flat, same length)."""
        ids = np.asarray(prompt_ids, dtype=np.int64).reshape(-1)
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if ids.shape != r.shape:
            raise ValueError(f"rewards: expected shape {ids.shape} like prompt_ids, got {r.shape}.")
        if np.any((r < 0) | (r > 1)) or not np.all(np.isfinite(r)):
            raise ValueError("rewards: expected pass rates or 0/1 outcomes in [0, 1].")
        seen = np.unique(ids)
        self.successes[seen] *= self.decay
        self.trials[seen] *= self.decay
        np.add.at(self.successes, ids, r)
        np.add.at(self.trials, ids, 1.0)

    def probabilities(self) -> np.ndarray:
        s = prompt_scores(self.pass_rates, self.score, objective=self.objective, group_size=self.group_size)
        total = s.sum()
        share = s / total if total > 0 else np.full_like(s, 1 / s.size)
        return (1 - self.uniform) * share + self.uniform / s.size

    def sample(self, size: int, *, replace: bool = True) -> np.ndarray:
        """``size`` prompt indices drawn from :meth:`probabilities`."""
        return self.rng.choice(self.trials.size, size=size, replace=replace, p=self.probabilities())

    def torch_sampler(self, batch_prompts: int, num_batches: int) -> Any:
        """A ``torch.utils.data.Sampler`` yielding ``num_batches × batch_prompts`` indices, drawn
        afresh from the current probabilities each batch (call :meth:`update` between batches)."""
        from torch.utils.data import Sampler

        outer = self

        class _Sampler(Sampler[int]):
            def __iter__(self):
                for _ in range(num_batches):
                    yield from outer.sample(batch_prompts).tolist()

            def __len__(self) -> int:
                return batch_prompts * num_batches

        return _Sampler()
