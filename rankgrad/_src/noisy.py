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

For the mean there is also a forward correction that needs only ρ1 (``rankgrad.noisy.forward_advantages``):
class-conditional noise shrinks the mean's gradient by the same factor for every prompt, so
reweighting the score-function terms by 1/(1 − ρ1) keeps the clean direction and is exact when the
verifier never passes a wrong answer. No such prompt-independent factor exists for K > 1.

Layering: this module transforms objectives and checks rates; it sits below the estimators and
imports nothing from them. The estimators apply the transform (``noise=`` of
:func:`rankgrad.advantages` and :func:`rankgrad.value`); ``rankgrad.noisy`` adds the keyword-rate
entry points on top.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankgrad._src.errors import InputTypeError
from rankgrad._src.objectives import Objective, ObjectiveLike, as_objective
from rankgrad._src.ops import get_ops, to_host
from rankgrad._src.weights import binomial_pmf

__all__ = [
    "corrected_objective", "flip_matrix", "estimate_rho1", "backward_rewards", "check_rates", "check_rho1",
    "parse_noise", "is_mean", "require_binary", "require_forward",
]


def is_mean(obj: Objective) -> bool:
    """Whether ``obj`` is the mean of K draws (equal weights 1/K): its estimators are RLOO's family."""
    if obj.weights is None:  # fractional K: not a mean of K draws
        return False
    return obj.k == 1 or bool(np.allclose(obj.weights, 1.0 / obj.k, rtol=0, atol=1e-15))


# ------------------------------------------------------------------------- rates
def _as_rate(v: Any, which: str, arg: str | None) -> float:
    """A flip rate as a float; a non-number is an :class:`InputTypeError` naming it."""
    msg = f"{arg + ': ' if arg else ''}{which}: expected a rate, a number in [0, 1), got {v!r}."
    if v is None or isinstance(v, (str, bytes, bool, np.bool_)):
        raise InputTypeError(msg)
    try:
        return float(v)
    except (TypeError, ValueError):
        raise InputTypeError(msg) from None


def check_rates(rho0: Any, rho1: Any, *, arg: str | None = None) -> tuple[float, float]:
    """The verifier's flip rates checked: 0 <= rho0, rho1 < 1 and rho0 + rho1 < 1 (NaN fails). The one
    checker of every entry point (with :func:`check_rho1` for the forward correction).

    Args:
      rho0, rho1: false-positive and false-negative rates.
      arg: the argument the caller wrote, named first in every message (``"noise"`` for
        ``noise=(rho0, rho1)``); None when the rates are the arguments ``rho0``, ``rho1`` themselves.

    Raises:
      InputTypeError: a rate that is not a number (None included).
      ValueError: a rate outside [0, 1), or rho0 + rho1 >= 1 (the verifier carries no signal).
    """
    r0, r1 = _as_rate(rho0, "rho0", arg), _as_rate(rho1, "rho1", arg)
    if not (0 <= r0 < 1 and 0 <= r1 < 1 and r0 + r1 < 1):
        who, got = (arg, f"{arg}=({rho0!r}, {rho1!r})") if arg else ("rho0, rho1", f"rho0={r0}, rho1={r1}")
        raise ValueError(
            f"{who}: expected false-positive and false-negative rates with 0 <= rho0, rho1 < 1 and "
            f"rho0 + rho1 < 1 (else the verifier carries no signal), got {got}."
        )
    return r0, r1


def check_rho1(rho1: Any, *, arg: str | None = None) -> float:
    """The false-negative rate alone (the forward correction, false-positive rate unknown): a number
    with 0 <= rho1 < 1; messages as :func:`check_rates` (``arg="noise"`` names ``noise=(None, rho1)``)."""
    r1 = _as_rate(rho1, "rho1", arg)
    if not 0 <= r1 < 1:
        who, got = (arg, f"{arg}=(None, {rho1!r})") if arg else ("rho1", f"rho1={r1}")
        raise ValueError(f"{who}: expected a false-negative rate with 0 <= rho1 < 1, got {got}.")
    return r1


def parse_noise(noise: Any) -> tuple[float | None, float]:
    """``noise=(rho0, rho1)`` of the estimators, checked (:func:`check_rates` naming ``noise``):
    ``rho0`` may be None (unknown false-positive rate: forward correction), ``rho1`` may not."""
    try:
        rho0, rho1 = noise
    except (TypeError, ValueError):
        raise ValueError(
            f"noise: expected (rho0, rho1), the verifier's false-positive and false-negative rates "
            f"(rho0=None if unknown: forward correction, mean only), got {noise!r}."
        ) from None
    if rho1 is None:
        raise InputTypeError(
            f"noise: the false-negative rate rho1 is needed (only rho0 may be None, for the forward "
            f"correction), got noise={noise!r}; estimate it with rankgrad.noisy.estimate_rho1."
        )
    if rho0 is None:
        return None, check_rho1(rho1, arg="noise")
    return check_rates(rho0, rho1, arg="noise")


def require_forward(obj: Objective) -> None:
    """The forward correction (``rho0`` unknown) exists for the mean only: a clear error otherwise."""
    if not is_mean(obj):
        raise ValueError(
            f"objective: the forward correction (noise with rho0=None) exists for the mean only, got "
            f"{obj.name!r}; for K > 1 the noisy gradient's factor depends on each prompt's pass rate. "
            "Give the false-positive rate too (rho0=0 if the verifier never passes a wrong answer) to "
            "use the counts-level correction."
        )


def flip_matrix(k: int, rho0: float, rho1: float) -> np.ndarray:
    """T[s, t] = P(t observed passes | s true passes among k draws), shape [k+1, k+1]."""
    r0, r1 = check_rates(rho0, rho1)
    t = np.zeros((k + 1, k + 1))
    for s in range(k + 1):
        t[s] = np.convolve(binomial_pmf(s, 1 - r1), binomial_pmf(k - s, r0))
    return t


def corrected_objective(objective: ObjectiveLike, rho0: float, rho1: float) -> tuple[Objective, float]:
    """The L-statistic of observed 0/1 rewards whose expectation is the clean objective J_K.

    Returns:
      (objective with top-first weights w̃, constant h̃(0)): for any policy, E[value of w̃ on K
      observed rewards] + h̃(0) = J_K of the true rewards.
    """
    obj = as_objective(objective)
    obj.require_integral("noisy")
    assert obj.weights is not None  # an integral K has its weights
    h = np.concatenate([[0.0], np.cumsum(obj.weights)])  # h[s]: s passes among K
    h_tilde = np.linalg.solve(flip_matrix(int(obj.k), rho0, rho1), h)
    name = f"{obj.name}|noise({rho0:g},{rho1:g})"
    return Objective.from_weights(np.diff(h_tilde), name=name), float(h_tilde[0])


def require_binary(rewards: Any, mask: Any = None) -> None:
    """A clear error unless the kept ``rewards`` (any backend) are all 0 or 1. Skipped under a trace;
    rewards or masks that are not numbers, or masks of another shape, are left to the layout check,
    which names them. Masked-out entries are never read (they may be NaN)."""
    if get_ops(rewards).is_traced(rewards) or (mask is not None and get_ops(mask).is_traced(mask)):
        return
    try:
        r = np.asarray(to_host(rewards), dtype=np.float64)
        if mask is not None:
            m = to_host(mask)
            if m.shape != r.shape:
                return
            r = np.where(m.astype(bool), r, 0.0)
    except (TypeError, ValueError):
        return
    if not np.all((r == 0) | (r == 1)):
        raise ValueError(
            "rewards: the noise correction is for binary 0/1 verifier outcomes; got other values."
        )


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
    r0, r1 = check_rates(rho0, rho1)
    require_binary(rewards, None)
    ops = get_ops(rewards)
    r = ops.float_like(rewards)
    return (r - r0) / (1.0 - r0 - r1)


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
