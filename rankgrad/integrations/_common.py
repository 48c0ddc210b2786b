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

import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from rankgrad._src import ops as ops_lib
from rankgrad._src import types as T
from rankgrad._src.estimators import _check_eps, estimator_info, group_std
from rankgrad._src.estimators import advantages as _advantages
from rankgrad._src.layout import GroupCodes, backend_mask, check_real, group_codes, host_mask
from rankgrad._src.noisy import parse_noise
from rankgrad._src.objectives import Objective, parse
from rankgrad._src.types import ArrayLike

Array = Any


def _ops(x: Array) -> ops_lib.Ops:
    return ops_lib.get_ops(x)


def _as_array(x: Any) -> Array:
    """torch/jax arrays as they are; anything else (lists, numpy) as a numpy array."""
    return _ops(x).as_native(x)


def _shape_of(x: Any, arg: str) -> tuple:
    if hasattr(x, "shape"):
        return tuple(x.shape)
    if isinstance(x, (list, tuple)) and not any(isinstance(v, (list, tuple, np.ndarray)) for v in x[:1]):
        return (len(x),)  # a flat list: no array conversion just for its shape
    try:
        return tuple(np.shape(x))
    except ValueError:  # a ragged nested list
        raise ValueError(f"{arg}: expected a rectangular array, got a ragged nested list.") from None


def _label_at(uids: Any, i: int) -> Any:
    """The caller's label at position ``i`` as a Python value (for messages)."""
    v = uids[i]
    return v.item() if not ops_lib.is_host(v) or isinstance(v, np.generic) else v


def _is_half(dtype: Any) -> bool:
    """bfloat16 / float16 (any backend): computed in float32 here, returned in that dtype."""
    return "float16" in str(dtype)


def group_advantages(
    scores: ArrayLike,
    uids: ArrayLike,
    objective: str | Objective,
    *,
    estimator: str = "ordergrad",
    unscorable: Literal["error", "zero"] = "error",
    small_groups: Literal["error", "zero"] = "error",
    std_normalize: bool = False,
    loss_scale: bool = False,
    eps: float = 1e-6,
    noise: tuple[float | None, float] | None = None,
    mask: ArrayLike | None = None,
    trajectory_ids: ArrayLike | None = None,
) -> T.Array:
    """Per-rollout advantages from flat scores and prompt ids.

    With the defaults this is exactly ``rankgrad.advantages(scores, objective, group_ids=uids)``:
    a_i = q_i − v_i within each uid's group, and the unbiased gradient of J_K is
    (K/N_g)·Σ_{i∈g} a_i ∇log p(y_i) per group g (see docs/guides/loss-scaling.md).

    Args:
      scores: ``[B]`` rewards (numpy, torch CPU/CUDA or jax). NaN marks an unscorable rollout.
      uids: ``[B]`` group labels: ints, strings, bytes, bools, finite floats or a mix (any order;
        groups may differ in size). Labels of different kinds are different groups (``"1"`` ≠ ``1``);
        numbers compare by value (``1 == 1.0``); ``None`` and NaN are rejected.
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
      eps: the std offset (and GRPO's, for ``estimator="grpo"``): a finite number >= 0.
      noise: ``(rho0, rho1)`` verifier flip rates for 0/1 scores (see :mod:`rankgrad.noisy`);
        ``(None, rho1)``: forward correction (mean objective only).
      mask: optional ``[B]`` bool (or 0/1 numbers), False = not part of any group (advantage 0).
      trajectory_ids: optional ``[B]`` labels (same kinds as ``uids``) of the trajectory each row
        belongs to, for multi-turn / agentic rollouts where one trajectory spans several rows (turns,
        tool calls). Then the trajectory, not the row, is the sample: a group of uid g has N_g =
        #trajectories, each trajectory τ gets one advantage a_τ, broadcast to all its rows, so a
        trajectory with more rows weighs no more than one with fewer; Σ_rows a_τ ∇log p(row) =
        a_τ ∇log p(τ). Rules: every row of a trajectory has the same uid; the trajectory's reward is
        its rows' score, which must be the same on all its rows kept by ``mask`` (give every row the
        trajectory's final reward); a trajectory with a non-finite row score is unscorable
        (``unscorable`` decides); rows with ``mask`` False get 0 and carry no score, and a trajectory
        with no kept row is not part of its group. ``small_groups``, ``loss_scale`` and
        ``std_normalize`` count and weigh trajectories.

    Returns:
      ``[B]`` advantages, same backend, device and float dtype as ``scores``; 0 where excluded.
      bfloat16 / float16 scores are computed in float32 and returned in their own dtype.

    Raises:
      InputTypeError: complex or non-numeric scores, a mask that is not boolean or numeric, labels
        of an unsupported type.
      ValueError: mismatched shapes, non-finite scores (``unscorable="error"``), groups too small
        (``small_groups="error"``), unknown names, ``None``/NaN labels, mask values other than 0/1,
        a negative or non-finite ``eps``, a trajectory whose rows disagree on their uid or score.

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
    _check_policy(unscorable, "unscorable")
    _check_policy(small_groups, "small_groups")
    eps = _check_eps(eps)
    scores = _as_array(scores)
    ops = _ops(scores)
    check_real(ops, scores, "scores")
    caller_dtype = ops.float_like(scores).dtype
    half = _is_half(caller_dtype)
    work = ops.compute(scores) if half else ops.float_like(scores)
    host = ops.to_host(work)  # float32/float64 (a view of CPU torch/numpy scores: no copy)
    if host.ndim != 1:
        raise ValueError(f"scores: expected flat [B] scores, got shape {host.shape}; use rankgrad.advantages "
                         "for [..., N] groups.")
    b = host.shape[0]
    if b == 0:
        raise ValueError("scores: got no rollouts (B = 0).")
    uid_shape = _shape_of(uids, "uids")
    if uid_shape != (b,):
        raise ValueError(f"uids: expected one label per score, shape [{b}], got shape {uid_shape}.")
    groups = group_codes(uids, b, arg="uids")
    valid = np.ones(b, dtype=bool)
    if mask is not None:
        m_shape = _shape_of(mask, "mask")
        if m_shape != (b,):
            raise ValueError(f"mask: expected shape [{b}] like scores, got {m_shape}.")
        valid &= host_mask(mask, (b,), "mask")
    grouped = functools.partial(_grouped, obj=obj, estimator=estimator, unscorable=unscorable,
                                small_groups=small_groups, std_normalize=std_normalize,
                                loss_scale=loss_scale, eps=eps, noise=noise)
    if trajectory_ids is None:
        adv = grouped(ops, work, host, groups, valid, lambda i: repr(_label_at(uids, i)))
        return ops.cast(adv, caller_dtype) if half else adv

    t_shape = _shape_of(trajectory_ids, "trajectory_ids")
    if t_shape != (b,):
        raise ValueError(
            f"trajectory_ids: expected one trajectory label per row, shape [{b}], got shape {t_shape}."
        )
    traj = group_codes(trajectory_ids, b, arg="trajectory_ids")
    if unscorable == "error":
        _check_finite(host, valid)
    rep, t_groups, t_valid = _trajectories(host, groups, traj, valid, uids, trajectory_ids)
    t_work = ops.take_first(work, rep)
    adv_t = grouped(ops, t_work, host[rep], t_groups, t_valid,
                    lambda j: f"{_label_at(uids, int(rep[j]))!r} (trajectory "
                              f"{_label_at(trajectory_ids, int(rep[j]))!r})")
    adv = ops.take_first(adv_t, traj.codes)
    if not valid.all():
        adv = ops.where(ops.asarray(valid, adv, cast=False), adv, ops.asarray(np.zeros(b), adv))
    return ops.cast(adv, caller_dtype) if half else adv


def _check_policy(value: Any, name: str) -> None:
    if value not in ("error", "zero"):
        raise ValueError(f"{name}: expected 'error' or 'zero', got {value!r}.")


def check_options(
    opts: dict[str, Any],
    where: Callable[[str], str] = str,
    *,
    booleans: str = "True or False",
    noise_hint: str = "",
) -> dict[str, Any]:
    """Check and normalise, in place, the :func:`group_advantages` options present in ``opts``
    (``estimator`` resolved to its registry name, ``unscorable``, ``small_groups``, ``std_normalize``,
    ``loss_scale``, ``eps`` as a float, ``noise`` as checked rates), so that an adapter rejects a bad
    configuration when it reads it rather than at the first step. Returns ``opts``.

    Each error names the option as ``where(key)`` (an adapter's config path) and keeps its type
    (``InputTypeError`` for wrong types); ``booleans`` spells true/false as the adapter's users write
    them, and ``noise_hint`` is appended to a ``noise`` error.
    """
    for key in ("std_normalize", "loss_scale"):
        if key in opts and not isinstance(opts[key], bool):
            raise ValueError(f"{where(key)}: expected {booleans}, got {opts[key]!r}.")
    for key in ("unscorable", "small_groups"):
        if key in opts:
            _check_policy(opts[key], where(key))
    if "estimator" in opts:  # aliases resolved; an unknown name lists every accepted one
        got = opts["estimator"]
        try:
            opts["estimator"] = estimator_info(got).name
        except ValueError as err:
            raise type(err)(f"{where('estimator')}={got!r}: {err}") from None
    if "eps" in opts:
        try:
            opts["eps"] = _check_eps(opts["eps"])
        except ValueError as err:
            raise type(err)(f"{where('eps')}: {str(err).removeprefix('eps: ')}") from None
    if opts.get("noise") is not None:
        try:
            opts["noise"] = parse_noise(opts["noise"])
        except ValueError as err:
            msg = f"{where('noise')}: {str(err).removeprefix('noise: ')}"
            raise type(err)(f"{msg} {noise_hint}" if noise_hint else msg) from None
    return opts


def _check_finite(host: np.ndarray, valid: np.ndarray) -> None:
    bad = valid & ~np.isfinite(host)
    if bad.any():
        where = np.flatnonzero(bad)
        raise ValueError(
            f"scores: {where.size} non-finite value(s) at positions {where[:8].tolist()}"
            f"{' ...' if where.size > 8 else ''}; fix the reward function, or pass unscorable='zero' "
            "to drop unscorable rollouts from their groups (advantage 0)."
        )


def _first_rows(codes: np.ndarray, order: np.ndarray, t: int, b: int) -> np.ndarray:
    """``[t]``: the smallest ``order`` among the rows of each code 0..t−1, ``b`` for a code with none."""
    out = np.full(t, b, dtype=np.int64)
    np.minimum.at(out, codes, order)
    return out


def _trajectories(
    host: np.ndarray, groups: GroupCodes, traj: GroupCodes, valid: np.ndarray, uids: Any, trajectory_ids: Any
) -> tuple[np.ndarray, GroupCodes, np.ndarray]:
    """Rows → trajectories: a representative row per trajectory ``rep[T]`` (its first kept row, else its
    first row), the trajectories' group codes and whether each has a kept row; checks that the rows of
    a trajectory share their uid and (over kept rows) their score. Non-finite kept scores make the
    representative non-finite (the trajectory is then unscorable)."""
    t, codes = traj.count, traj.codes
    b = codes.size
    order = np.arange(b)
    first = _first_rows(codes, order, t, b)
    kept_first = _first_rows(codes[valid], order[valid], t, b)
    t_valid = kept_first < b
    rep = np.where(t_valid, kept_first, first)
    g_of = groups.codes[rep]
    other = np.flatnonzero(groups.codes != g_of[codes])
    if other.size:
        i = int(other[0])
        j = int(rep[codes[i]])
        raise ValueError(
            f"trajectory_ids: trajectory {_label_at(trajectory_ids, i)!r} has rows in two uid groups "
            f"({_label_at(uids, j)!r} at position {j}, {_label_at(uids, i)!r} at position {i}); every row "
            "of a trajectory answers the same prompt: give it one uid, or give the rows distinct "
            "trajectories."
        )
    finite = np.isfinite(host)
    bad_rows = valid & ~finite
    t_bad = np.zeros(t, dtype=bool)
    t_bad[codes[bad_rows]] = True
    if t_bad.any():  # a non-finite kept row stands for its trajectory
        rep = np.where(t_bad, _first_rows(codes[bad_rows], order[bad_rows], t, b), rep)
    check = valid & finite & ~t_bad[codes]
    differ = np.flatnonzero(check & (host != host[rep[codes]]))
    if differ.size:
        i = int(differ[0])
        j = int(rep[codes[i]])
        raise ValueError(
            f"scores: trajectory {_label_at(trajectory_ids, i)!r} has different scores on its rows "
            f"({float(host[j])!r} at position {j}, {float(host[i])!r} at position {i}); a trajectory has one "
            "reward: give every row of it the trajectory's reward (e.g. the final turn's score)."
        )
    return rep, GroupCodes(codes=g_of, count=groups.count), t_valid


def _grouped(
    ops: ops_lib.Ops,
    work: Array,
    host: np.ndarray,
    groups: GroupCodes,
    valid: np.ndarray,
    label_of: Any,
    *,
    obj: Objective,
    estimator: str,
    unscorable: str,
    small_groups: str,
    std_normalize: bool,
    loss_scale: bool,
    eps: float,
    noise: Any,
) -> Array:
    """The advantages of samples ``work[B]`` in groups ``groups`` over the ``valid`` ones (0 elsewhere),
    in ``work``'s backend and dtype; ``label_of(i)`` names sample i's group in messages."""
    b = host.shape[0]
    inverse = groups.codes
    finite = np.isfinite(host)
    all_valid = bool(valid.all()) and bool(finite.all())  # the common case: no per-sample masks below
    if not all_valid:
        bad = valid & ~finite
        if unscorable == "error" and bad.any():
            _check_finite(host, valid)
        valid = valid & finite

    if all_valid:
        counts = groups.sizes()
    else:
        counts = np.bincount(inverse, weights=valid, minlength=groups.count)
    need = max(obj.k + 1, 2)
    if ((counts > 0) & (counts < need)).any():  # groups too small: decided per sample
        small = valid & (counts[inverse] < need)
        if small_groups == "error":
            first = int(np.flatnonzero(small)[0])
            label = label_of(first)
            raise ValueError(
                f"uids: group {label} has {int(counts[inverse[first]])} valid rollout(s), but "
                f"objective {obj.name!r} (K={obj.k}) needs at least {need}; sample more rollouts per "
                "prompt, use a smaller K, or pass small_groups='zero' to skip such groups (advantage 0)."
            )
        valid = valid & ~small
        all_valid = False

    clean = work
    if not all_valid:
        if not valid.any():
            zero = ops.asarray(np.zeros(b), clean)
            return ops.where(ops.asarray(valid, clean, cast=False), clean, zero)
        if valid.all():
            all_valid = True
        else:  # excluded entries may be NaN: keep them out of the arithmetic too
            zero = ops.asarray(np.zeros(b), clean)
            clean = ops.where(ops.asarray(valid, clean, cast=False), clean, zero)
    adv = _advantages(
        clean,
        obj,
        group_ids=groups,
        mask=None if all_valid else ops.asarray(valid, clean, cast=False),
        estimator=estimator,
        eps=eps,
        noise=noise,
    )
    if not (loss_scale or std_normalize):
        return adv
    factor = np.ones(b)
    if loss_scale:
        info = estimator_info(estimator)
        if info.gradient_scale is None:
            raise ValueError(
                f"loss_scale: estimator {info.name!r} is biased and has no gradient scale; pass "
                "loss_scale=False, or an unbiased estimator such as 'ordergrad'."
            )
        k = int(obj.k)  # an integer: the advantages above reject fractional K
        per_group = np.array([info.gradient_scale(int(n), k) if n else 0.0 for n in counts])
        factor *= np.where(valid, per_group[inverse], 0.0)
    if std_normalize:  # excluded entries (NaN, groups too small) are masked out, never read
        den = group_std(host.astype(np.float64), group_ids=groups, mask=valid) + eps
        factor = np.where(valid & (den > 0), factor / np.where(den > 0, den, 1.0), 0.0)
    if loss_scale or std_normalize:
        adv = adv * ops.asarray(factor, adv)
    return adv


def token_advantages(adv: ArrayLike, response_mask: ArrayLike) -> T.Array:
    """Broadcast per-rollout advantages over response tokens: ``adv[:, None] * response_mask``.

    Args:
      adv: ``[B]`` per-rollout advantages (any float dtype, bfloat16 and float16 included).
      response_mask: ``[B, T]`` True/1 on response tokens, False/0 on padding and prompt: boolean, or
        integers/floats that are exactly 0 or 1 (numpy or a list also with torch/jax ``adv``).

    Returns:
      ``[B, T]`` in ``adv``'s dtype and backend; 0 off the mask.

    Raises:
      InputTypeError: a complex ``adv``, or a mask that is not boolean or numeric.
      ValueError: mismatched shapes, mask values other than 0 and 1.
    """
    a = _as_array(adv)
    ops = _ops(a)
    check_real(ops, a, "adv")
    shape = _shape_of(response_mask, "response_mask")
    if shape[:1] != tuple(a.shape) or len(shape) != 2:
        raise ValueError(
            f"response_mask: expected shape [B, T] with B = {tuple(a.shape)[0] if a.shape else '?'} "
            f"(one row per advantage), got {shape}."
        )
    m = backend_mask(ops, response_mask, shape, a, arg="response_mask")
    return a[:, None] * ops.cast(m, a.dtype)
