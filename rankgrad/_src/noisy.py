"""Noise-corrected L-statistics of binary rewards under an imperfect verifier.

A verifier flips labels class-conditionally (arXiv 2510.00915): a wrong answer passes with
probability ρ0 (false positive), a right one fails with probability ρ1 (false negative), independently
of the instance. The observed pass rate is p̃ = ρ0 + (1 − ρ0 − ρ1)·p.

For 0/1 rewards an L-statistic of K draws depends only on the number s of passes among them:
h(s) = sum of the top s weights. Ranking the *observed* rewards therefore estimates the objective of
the noisy rewards, whose gradient is the clean one times a prompt-dependent factor (for pass@K,
(1 − ρ0 − ρ1)·((1 − p̃)/(1 − p))^(K−1): easy prompts are over-weighted).

The fix works at the level of counts. Let T[s, t] = P(t observed passes | s true passes among K)
(kept passes ~ Bin(s, 1 − ρ1) plus false passes ~ Bin(K − s, ρ0)). The corrected kernel h̃ = T⁻¹h
satisfies E[h̃(S̃)] = E[h(S)] for any distribution of the true count S, in particular Bin(K, p). As a
function of the observed count, h̃ is again an L-statistic of the observed 0/1 rewards, with top-first
weights w̃_r = h̃(r) − h̃(r − 1) plus the constant h̃(0). So the corrected estimators are the ordinary
ones with those weights: same batching, same unbiasedness proof, now for the *clean* objective J_K.

Cost: T is inverted exactly, but the weights grow like (1 − ρ0 − ρ1)^−K, and so does the variance.
Conditions: binary rewards, K <= N − 1, known ρ0 + ρ1 < 1, noise independent of the instance.
For K = 1 (the mean) this is the backward correction (r̃ − ρ0)/(1 − ρ0 − ρ1).

For the mean there is also a forward correction that needs only ρ1 (:func:`forward_advantages`):
class-conditional noise shrinks the mean's gradient by the same factor for every prompt, so
reweighting the score-function terms by 1/(1 − ρ1) keeps the clean direction and is exact when the
verifier never passes a wrong answer. No such prompt-independent factor exists for K > 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankgrad._src.errors import InputTypeError
from rankgrad._src.estimators import _is_mean, _value
from rankgrad._src.estimators import advantages as _advantages
from rankgrad._src.objectives import Objective, ObjectiveLike, as_objective
from rankgrad._src.ops import get_ops
from rankgrad._src.weights import binomial_pmf

__all__ = [
    "corrected_objective", "advantages", "value", "flip_matrix", "estimate_rho1", "backward_rewards",
    "forward_advantages",
]


def _as_rate(v: Any, name: str) -> float:
    """A flip rate as a float; a non-number is an :class:`InputTypeError` naming it."""
    if v is None or isinstance(v, (str, bytes, bool, np.bool_)):
        raise InputTypeError(f"{name}: expected a rate, a number in [0, 1), got {v!r}.")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise InputTypeError(f"{name}: expected a rate, a number in [0, 1), got {v!r}.") from None


def _check_rho1(rho1: float) -> float:
    rho1 = _as_rate(rho1, "rho1")
    if not 0 <= rho1 < 1:  # NaN fails too
        raise ValueError(f"rho1: expected a false-negative rate with 0 <= rho1 < 1, got rho1={rho1}.")
    return rho1


def _check_rates(rho0: float, rho1: float) -> tuple[float, float]:
    rho0, rho1 = _as_rate(rho0, "rho0"), _as_rate(rho1, "rho1")
    if not (0 <= rho0 < 1 and 0 <= rho1 < 1 and rho0 + rho1 < 1):  # NaN fails too
        raise ValueError(
            f"rho0, rho1: expected false-positive and false-negative rates with 0 <= rho < 1 and "
            f"rho0 + rho1 < 1 (else the verifier carries no signal), got rho0={rho0}, rho1={rho1}."
        )
    return rho0, rho1


def flip_matrix(k: int, rho0: float, rho1: float) -> np.ndarray:
    """T[s, t] = P(t observed passes | s true passes among k draws), shape [k+1, k+1]."""
    rho0, rho1 = _check_rates(rho0, rho1)
    t = np.zeros((k + 1, k + 1))
    for s in range(k + 1):
        t[s] = np.convolve(binomial_pmf(s, 1 - rho1), binomial_pmf(k - s, rho0))
    return t


def corrected_objective(objective: ObjectiveLike, rho0: float, rho1: float) -> tuple[Objective, float]:
    """The L-statistic of observed 0/1 rewards whose expectation is the clean objective J_K.

    Returns:
      (objective with top-first weights w̃, constant h̃(0)): for any policy, E[value of w̃ on K
      observed rewards] + h̃(0) = J_K of the true rewards.
    """
    obj = as_objective(objective)
    obj.require_integral("noisy")
    h = np.concatenate([[0.0], np.cumsum(obj.weights)])  # h[s]: s passes among K
    h_tilde = np.linalg.solve(flip_matrix(obj.k, rho0, rho1), h)
    name = f"{obj.name}|noise({rho0:g},{rho1:g})"
    return Objective.from_weights(np.diff(h_tilde), name=name), float(h_tilde[0])


def _require_binary(rewards: Any, mask: Any) -> None:
    ops = get_ops(rewards)
    if ops.is_traced(rewards) or (mask is not None and get_ops(mask).is_traced(mask)):
        return
    try:
        r = np.asarray(ops.to_numpy(rewards) if ops.name != "numpy" else rewards, dtype=np.float64)
        if mask is not None:
            m = np.asarray(get_ops(mask).to_numpy(mask) if get_ops(mask).name != "numpy" else mask)
            if m.shape != r.shape:
                return  # the layout check names the shape mismatch
            r = np.where(m.astype(bool), r, 0.0)  # masked-out entries are never read (may be NaN)
    except (TypeError, ValueError):
        return  # not numbers: the layout check names the type
    if not np.all((r == 0) | (r == 1)):
        raise ValueError(
            "rewards: the noise correction is for binary 0/1 verifier outcomes; got other values."
        )


def advantages(
    rewards: Any,
    objective: ObjectiveLike,
    *,
    rho0: float,
    rho1: float,
    group_ids: Any = None,
    mask: Any = None,
) -> Any:
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
    _require_binary(rewards, mask)
    obj, _ = corrected_objective(objective, rho0, rho1)
    return _advantages(rewards, obj, group_ids=group_ids, mask=mask)


def value(
    rewards: Any,
    objective: ObjectiveLike,
    *,
    rho0: float,
    rho1: float,
    group_ids: Any = None,
    mask: Any = None,
) -> Any:
    """Noise-corrected batch value per group, unbiased for the clean J_K (may leave [0, 1] for a
    small group: it is an unbiased estimate, not a probability).

    It is the value of the corrected weights w̃ plus the constant h̃(0) (:func:`corrected_objective`)
    for every group with at least one sample; a fully masked group gives 0, like
    :func:`rankgrad.value`. Same layouts and return as :func:`rankgrad.value`.
    """
    _require_binary(rewards, mask)
    obj, offset = corrected_objective(objective, rho0, rho1)
    return _value(rewards, obj, group_ids=group_ids, mask=mask, offset=offset)


def backward_rewards(rewards: Any, *, rho0: float, rho1: float) -> Any:
    """The backward correction: surrogate rewards r̂ = (r̃ − ρ0)/(1 − ρ0 − ρ1) with E[r̂ | true r] = r.

    Feed r̂ to any reward-linear estimator of the mean (REINFORCE, RLOO, Dr. GRPO) to make it unbiased
    for the clean mean reward; ``rankgrad.noisy.advantages(r, "mean", ...)`` is RLOO on r̂. Note that
    GRPO's per-group standardisation undoes any affine map of the rewards, this one included.
    Observed passes become (1 − ρ0)/(1 − ρ0 − ρ1) > 1 and observed fails −ρ0/(1 − ρ0 − ρ1) < 0.

    Args:
      rewards: observed 0/1 verifier outcomes, any shape (numpy, torch or jax).
      rho0, rho1: the verifier's false-positive and false-negative rates, ρ0 + ρ1 < 1.

    Returns:
      r̂, same shape and backend, float.
    """
    rho0, rho1 = _check_rates(rho0, rho1)
    _require_binary(rewards, None)
    ops = get_ops(rewards)
    r = ops.float_like(rewards)
    return (r - rho0) / (1.0 - rho0 - rho1)


def forward_advantages(
    rewards: Any,
    objective: ObjectiveLike = "mean",
    *,
    rho1: float,
    group_ids: Any = None,
    mask: Any = None,
) -> Any:
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
    rho1 = _check_rho1(rho1)
    obj = as_objective(objective)
    if not _is_mean(obj):
        raise ValueError(
            f"objective: the forward correction (noise with rho0=None) exists for the mean only, got "
            f"{obj.name!r}; for K > 1 the noisy gradient's factor depends on each prompt's pass rate. "
            "Give the false-positive rate too (rho0=0 if the verifier never passes a wrong answer) to "
            "use the counts-level correction."
        )
    _require_binary(rewards, mask)
    return _advantages(rewards, obj, group_ids=group_ids, mask=mask) * (1.0 / (1.0 - rho1))


def estimate_rho1(
    observed_pass_rate: float, rechecked: int, rechecked_correct: int, *, rho0: float = 0.0
) -> float:
    """False-negative rate from re-checked negatives (an "appeal" with a trusted checker).

    Re-check a uniform sample of ``rechecked`` outcomes that the verifier failed and find
    ``rechecked_correct`` of them actually correct: f = P(true pass | observed fail) = ρ1·p/(1 − p̃).
    With p̃ the observed pass rate of the same population and p = (p̃ − ρ0)/(1 − ρ0 − ρ1), solving
    for ρ1 gives

        ρ1 = f (1 − p̃)(1 − ρ0) / (p̃ − ρ0 + f (1 − p̃)).

    A plug-in estimate: consistent as both samples grow, not unbiased at small counts. With ρ0 = 0 it
    is (true passes among observed fails) / (all true passes).
    """
    if rechecked < 1 or not 0 <= rechecked_correct <= rechecked:
        raise ValueError(
            f"rechecked, rechecked_correct: expected 0 <= rechecked_correct <= rechecked and "
            f"rechecked >= 1, got {rechecked_correct} of {rechecked}."
        )
    pt, rho0 = float(observed_pass_rate), float(rho0)
    if not (0 <= rho0 < 1 and rho0 <= pt < 1):
        raise ValueError(
            f"observed_pass_rate: expected rho0 <= p~ < 1 (the observed rate cannot be below the "
            f"false-positive floor), got p~={pt}, rho0={rho0}."
        )
    f = rechecked_correct / rechecked
    denom = pt - rho0 + f * (1 - pt)
    return 0.0 if denom == 0 else f * (1 - pt) * (1 - rho0) / denom
