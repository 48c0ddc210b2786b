"""Framework-free glue for RL training loops: flat scores + uids → advantages → token advantages.

The shapes every GRPO-style loop has (TRL, verl, OpenRLHF, hand-written ones):

* ``scores``: ``[B]`` one scalar reward per rollout (B = #prompts × rollouts, in any order);
* ``uids``: ``[B]`` the prompt each rollout answers (verl's ``index``/``uid``, TRL's contiguous
  blocks of ``num_generations``); groups may differ in size (multi-turn, filtered rollouts);
* ``response_mask``: ``[B, T]`` 1 on the response tokens the loss sees.

Nothing here re-derives maths: the advantages are :func:`rankgrad.advantages` on the flat layout
with a validity mask. This module only decides which rollouts count (unscorable rewards, groups too
small for K) and, when asked explicitly, applies GRPO's std normalisation.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from rankgrad._src import ops as ops_lib
from rankgrad._src.estimators import ESTIMATORS, _estimator_name
from rankgrad._src.estimators import advantages as _advantages
from rankgrad._src.objectives import Objective, parse

Array = Any


def _ops(x: Array) -> ops_lib.Ops:
    return ops_lib.get_ops(x)


def _labels(uids: Any, b: int) -> np.ndarray:
    """Any [B] labels (list, numpy incl. object/str, torch/jax ints) as a numpy array."""
    if ops_lib.is_torch(uids):
        arr = uids.detach().cpu().numpy()
    else:
        arr = np.asarray(uids)
    if arr.ndim != 1 or arr.shape[0] != b:
        raise ValueError(f"uids: expected one label per score, shape [{b}], got shape {arr.shape}.")
    return arr


def group_advantages(
    scores: Array,
    uids: Any,
    objective: str | Objective,
    *,
    estimator: str = "ordergrad",
    unscorable: Literal["error", "zero"] = "error",
    small_groups: Literal["error", "zero"] = "error",
    std_normalize: bool = False,
    loss_scale: bool = False,
    eps: float = 1e-6,
    noise: tuple[float | None, float] | None = None,
    mask: Any = None,
) -> Array:
    """Per-rollout advantages from flat scores and prompt ids.

    With the defaults this is exactly ``rankgrad.advantages(scores, objective, group_ids=uids)``:
    a_i = q_i − v_i within each uid's group, and the unbiased gradient of J_K is
    (K/N_g)·Σ_{i∈g} a_i ∇log p(y_i) per group g (see the README's "Scaling the loss").

    Args:
      scores: ``[B]`` rewards (numpy, torch CPU/CUDA or jax). NaN marks an unscorable rollout.
      uids: ``[B]`` group labels (ints or strings; any order; groups may differ in size).
      objective: preset string (``"max@4"``, ``"cvar:0.25@8"``...) or :class:`rankgrad.Objective`.
      estimator: any name in ``rankgrad.ESTIMATORS`` (default ``"ordergrad"``).
      unscorable: ``"error"`` (default) raises on NaN/inf scores; ``"zero"`` drops them from their group
        (the group is then smaller) and gives them advantage 0 — TRL's "reward function returned None".
      small_groups: ``"error"`` (default) raises when a group has fewer than K + 1 valid rollouts;
        ``"zero"`` gives every rollout of such a group advantage 0 (no gradient from that prompt).
      std_normalize: divide each group's advantages by its reward standard deviation (ddof=1) + ``eps``,
        as GRPO does. Off by default: it re-weights prompts by 1/std, so the gradient is no longer an
        unbiased estimate of ∇J_K (it is a different, data-dependent objective).
      loss_scale: multiply each group's advantages by its estimator's gradient scale c(N_g, K)
        (K/N_g for ``"ordergrad"``; see ``rankgrad.ESTIMATORS``), so that Σ_i a_i ∇log p(y_i) summed
        over the *whole batch* is the unbiased gradient of Σ_prompts J_K even when group sizes differ.
        Without it a larger group weighs more. Errors for estimators with no such scale (biased ones).
      eps: the std offset (and GRPO's, for ``estimator="grpo"``).
      noise: ``(rho0, rho1)`` verifier flip rates for 0/1 scores (see :mod:`rankgrad.noisy`);
        ``(None, rho1)``: forward correction (mean objective only).
      mask: optional ``[B]`` bool, False = not part of any group (advantage 0).

    Returns:
      ``[B]`` advantages, same backend, device and float dtype as ``scores``; 0 where excluded.

    Raises:
      ValueError: mismatched shapes, non-finite scores (``unscorable="error"``), groups too small
        (``small_groups="error"``), unknown names.

    Example:
      >>> import numpy as np
      >>> from rankgrad.integrations import group_advantages
      >>> s = np.array([1., 0., float("nan"), 0., 1., 1., 0., 0.])
      >>> uid = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
      >>> a = group_advantages(s, uid, "max@2", unscorable="zero")  # group "a" is {1, 0, 0}: N = 3
      >>> np.round(a * 6, 6)  # a: +1 for the success, −1/2 per failure; b: ±1/3; NaN rollout: 0
      array([ 6., -3.,  0., -3.,  2.,  2., -2., -2.])
    """
    obj = objective if isinstance(objective, Objective) else parse(objective)
    if unscorable not in ("error", "zero"):
        raise ValueError(f"unscorable: expected 'error' or 'zero', got {unscorable!r}.")
    if small_groups not in ("error", "zero"):
        raise ValueError(f"small_groups: expected 'error' or 'zero', got {small_groups!r}.")
    ops = _ops(scores)
    host = np.asarray(ops.to_numpy(ops.float_like(scores)), dtype=np.float64)
    if host.ndim != 1:
        raise ValueError(f"scores: expected flat [B] scores, got shape {host.shape}; use rankgrad.advantages "
                         "for [..., N] groups.")
    b = host.shape[0]
    if b == 0:
        raise ValueError("scores: got no rollouts (B = 0).")
    labels = _labels(uids, b)
    valid = np.ones(b, dtype=bool)
    if mask is not None:
        m = mask.detach().cpu().numpy() if ops_lib.is_torch(mask) else np.asarray(mask)
        if m.shape != (b,):
            raise ValueError(f"mask: expected shape [{b}] like scores, got {m.shape}.")
        valid &= m.astype(bool)

    bad = valid & ~np.isfinite(host)
    if bad.any():
        if unscorable == "error":
            where = np.flatnonzero(bad)
            raise ValueError(
                f"scores: {where.size} non-finite value(s) at positions {where[:8].tolist()}"
                f"{' ...' if where.size > 8 else ''}; fix the reward function, or pass unscorable='zero' "
                "to drop unscorable rollouts from their groups (advantage 0)."
            )
        valid &= ~bad

    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, weights=valid)
    need = max(obj.k + 1, 2)
    small = valid & (counts[inverse] < need)
    if small.any():
        if small_groups == "error":
            first = int(np.flatnonzero(small)[0])
            label = labels[first].item() if isinstance(labels[first], np.generic) else labels[first]
            raise ValueError(
                f"uids: group {label!r} has {int(counts[inverse[first]])} valid rollout(s), but "
                f"objective {obj.name!r} (K={obj.k}) needs at least {need}; sample more rollouts per "
                "prompt, use a smaller K, or pass small_groups='zero' to skip such groups (advantage 0)."
            )
        valid &= ~small

    clean = ops.float_like(scores)
    if not valid.all():  # excluded entries may be NaN: keep them out of the arithmetic too
        zero = ops.convert(np.zeros(b), clean)
        clean = ops.where(ops.asarray(valid, clean), clean, zero)
    if not valid.any():
        return clean
    adv = _advantages(
        clean,
        obj,
        group_ids=inverse,
        mask=None if valid.all() else ops.asarray(valid, scores),
        estimator=estimator,
        eps=eps,
        noise=noise,
    )
    factor = np.ones(b)
    if loss_scale:
        info = ESTIMATORS[_estimator_name(estimator)]
        if info.gradient_scale is None:
            raise ValueError(
                f"loss_scale: estimator {info.name!r} is biased and has no gradient scale; pass "
                "loss_scale=False, or an unbiased estimator such as 'ordergrad'."
            )
        sizes = counts[inverse]
        factor *= np.where(valid, [info.gradient_scale(int(n), obj.k) if n else 0.0 for n in sizes], 0.0)
    if std_normalize:
        factor /= _group_std(host, inverse, valid) + eps
    if loss_scale or std_normalize:
        adv = adv * ops.convert(factor, adv)
    return adv


def _group_std(x: np.ndarray, inverse: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-rollout std (ddof=1) of its group's valid scores, float64 on the host."""
    w = valid.astype(np.float64)
    xv = np.where(valid, x, 0.0)
    n = np.bincount(inverse, weights=w)
    mean = np.bincount(inverse, weights=xv) / np.maximum(n, 1)
    ss = np.bincount(inverse, weights=w * (xv - mean[inverse]) ** 2)
    std = np.sqrt(ss / np.maximum(n - 1, 1))
    return std[inverse]


def token_advantages(adv: Array, response_mask: Array) -> Array:
    """Broadcast per-rollout advantages over response tokens: ``adv[:, None] * response_mask``.

    Args:
      adv: ``[B]`` per-rollout advantages.
      response_mask: ``[B, T]`` 1/True on response tokens, 0/False on padding and prompt.

    Returns:
      ``[B, T]`` in ``adv``'s dtype and backend; 0 off the mask.
    """
    ops = _ops(adv)
    m = ops.convert(response_mask, adv)
    if tuple(m.shape[:1]) != tuple(adv.shape) or len(m.shape) != 2:
        raise ValueError(
            f"response_mask: expected shape [B, T] with B = {tuple(adv.shape)[0] if adv.shape else '?'} "
            f"(one row per advantage), got {tuple(m.shape)}."
        )
    return adv[:, None] * ops.cast(m, adv.dtype)
