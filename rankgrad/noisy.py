"""Noise-corrected objectives for binary rewards from an imperfect verifier.

The noise model and the corrected objective live in ``rankgrad/_src/noisy.py`` (below the estimators);
:func:`advantages`, :func:`value` and :func:`forward_advantages` here are the keyword-rate forms of
``rankgrad.advantages(..., noise=(rho0, rho1))`` and ``rankgrad.value(..., noise=...)``.
"""

from __future__ import annotations

from rankgrad._src.estimators import noisy_advantages, noisy_value
from rankgrad._src.noisy import (
    backward_rewards,
    check_rates,
    check_rho1,
    corrected_objective,
    estimate_rho1,
    flip_matrix,
)
from rankgrad._src.objectives import ObjectiveLike
from rankgrad._src.types import Array, ArrayLike

__all__ = [
    "advantages", "value", "corrected_objective", "flip_matrix", "estimate_rho1", "backward_rewards",
    "forward_advantages",
]


def advantages(
    rewards: ArrayLike,
    objective: ObjectiveLike,
    *,
    rho0: float,
    rho1: float,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Array:
    """Noise-corrected LR advantages: (K/N)·Σ a_i ∇log p(x_i) is unbiased for ∇J_K of the *true*
    rewards, given observed 0/1 rewards from a verifier with known rates ρ0 (false positive) and
    ρ1 (false negative). Same layouts and return as :func:`rankgrad.advantages`.

    Example:
      >>> import numpy as np
      >>> from rankgrad import noisy
      >>> r = np.array([1., 0., 0., 1., 0., 0., 0., 0.])
      >>> a = noisy.advantages(r, "mean", rho0=0.1, rho1=0.1)  # = RLOO / (1 − ρ0 − ρ1)
      >>> bool(np.allclose(a, (r - (r.sum() - r) / 7) / 0.8))
      True
    """
    r0, r1 = check_rates(rho0, rho1)
    return noisy_advantages(rewards, objective, r0, r1, group_ids=group_ids, mask=mask)


def value(
    rewards: ArrayLike,
    objective: ObjectiveLike,
    *,
    rho0: float,
    rho1: float,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Array:
    """Noise-corrected batch value per group, unbiased for the clean J_K (may leave [0, 1] for a
    small group: it is an unbiased estimate, not a probability).

    It is the value of the corrected weights w̃ plus the constant h̃(0) (:func:`corrected_objective`)
    for every group with at least one sample; a fully masked group gives 0, like
    :func:`rankgrad.value`. Same layouts and return as :func:`rankgrad.value`.
    """
    r0, r1 = check_rates(rho0, rho1)
    return noisy_value(rewards, objective, r0, r1, group_ids=group_ids, mask=mask)


def forward_advantages(
    rewards: ArrayLike,
    objective: ObjectiveLike = "mean",
    *,
    rho1: float,
    group_ids: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Array:
    """The forward correction for the mean objective: needs only the false-negative rate ρ1.

    With class-conditional flips the observed reward is r̃ = ρ0 + (1 − ρ0 − ρ1)·r + zero-mean noise
    given the sample, and E[∇log π] = 0, so the naive update E[r̃ ∇log π] = (1 − ρ0 − ρ1)·∇p already
    points along the clean gradient, shrunk by a factor that is the same for every prompt and every
    policy. The forward correction reweights the score-function terms by 1/(1 − ρ1), the rate at
    which true passes survive the verifier:

        a_i = (r̃_i − mean_{j≠i} r̃_j) / (1 − ρ1),
        E[(1/N)·Σ_i a_i ∇log π(x_i)] = (1 − ρ0 − ρ1)/(1 − ρ1) · ∇p

    (for a K-sample mean objective, the ordinary advantages of that objective / (1 − ρ1), with K/N).

    (Derived from the description in arXiv 2510.00915 — score-function terms reweighted so the expected
    update has the clean direction, using only the FN rate — not transcribed from its algorithm.)
    So it is unbiased for the clean mean when the verifier never passes a wrong answer (ρ0 = 0, the
    usual case for rule-based checkers), and otherwise short by the constant (1 − ρ0 − ρ1)/(1 − ρ1)
    <= 1: the direction of a whole batch's update is the clean one whatever ρ0 is, and ρ0 need not be
    known. Its variance is (1 − ρ1)^−2 times the naive RLOO's, against (1 − ρ0 − ρ1)^−2 for the
    backward correction (:func:`backward_rewards`), which is exactly unbiased but needs both rates.
    For the mean both are multiples of the naive update, so per unit of expected clean gradient their
    noise is the same: what the forward correction buys is not needing ρ0, not a lower variance.

    Only the mean has such a prompt-independent factor: for pass@K the noisy gradient is off by
    (1 − ρ0 − ρ1)·((1 − p̃)/(1 − p))^(K−1), which depends on the prompt's pass rate, so K > 1 needs the
    counts-level correction (:func:`advantages`, both rates).

    Args:
      rewards: observed 0/1 verifier outcomes; layouts as :func:`rankgrad.advantages`.
      objective: must be the mean (``"mean"``, or a K-sample mean such as ``"mean@4"``).
      rho1: false-negative rate, 0 <= ρ1 < 1 (see :func:`estimate_rho1`, with ``rho0=0``).
      group_ids, mask: as :func:`rankgrad.advantages`.

    Returns:
      Same shape, backend and float dtype as ``rewards``; zero-sum per group.

    Example:
      >>> import numpy as np
      >>> from rankgrad import noisy
      >>> r = np.array([1., 0., 0., 1., 0., 0., 0., 0.])
      >>> a = noisy.forward_advantages(r, rho1=0.2)  # = RLOO / (1 − ρ1)
      >>> bool(np.allclose(a, (r - (r.sum() - r) / 7) / 0.8))
      True
    """
    r1 = check_rho1(rho1)
    return noisy_advantages(rewards, objective, None, r1, group_ids=group_ids, mask=mask)
