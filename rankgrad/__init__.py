"""rankgrad: policy gradients for what you deploy — best-of-K, pass@K, CVaR, quantiles, trimmed
means — as finite-K L-statistics of a group's rewards.

Public API (groups on the last axis ``[..., N]``, or flat ``[B]`` + ``group_ids``; weights top-first):

* :func:`advantages` — per-sample advantages (default a_i = q_i − v_i; gradient (K/N)·Σ a_i ∇log p_i);
* :func:`value` — the batch L-value per group (differentiable: the pathwise estimator);
* :data:`ESTIMATORS` (read-only) and :func:`estimator_info` — the advantage estimators and their claims;
* :func:`include_one`, :func:`leave_one_out`, :func:`order_statistics` — the pieces;
* :mod:`rankgrad.exact` — the same quantities for a known discrete distribution;
* :mod:`rankgrad.noisy` — noise-corrected objectives for 0/1 rewards from an imperfect verifier;
* :mod:`rankgrad.sampling` — objective-aware prompt sampling;
* :mod:`rankgrad.metrics` — unbiased max@k / pass@k for every k, zero-advantage and constant-group shares;
* :mod:`rankgrad.schedules` — K and mixture-weight schedules (constant, linear, cosine) and objectives
  built from them;
* :class:`Objective` and :mod:`rankgrad.objectives` — presets, strings, weight vectors.

Only NumPy is imported here; torch and jax load when you pass their arrays.
"""

from rankgrad import exact, metrics, noisy, objectives, sampling, schedules
from rankgrad._src.errors import InputTypeError
from rankgrad._src.estimators import (
    ESTIMATORS,
    EstimatorInfo,
    advantages,
    estimator_info,
    include_one,
    leave_one_out,
    order_statistics,
    value,
)
from rankgrad._src.objectives import Objective, parse
from rankgrad._version import __version__

__all__ = [
    "ESTIMATORS",
    "EstimatorInfo",
    "InputTypeError",
    "Objective",
    "advantages",
    "estimator_info",
    "exact",
    "include_one",
    "leave_one_out",
    "metrics",
    "noisy",
    "objectives",
    "order_statistics",
    "parse",
    "sampling",
    "schedules",
    "value",
    "__version__",
]
