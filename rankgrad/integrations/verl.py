"""verl adapter: the ``rankgrad`` advantage estimator (``algorithm.adv_estimator=rankgrad``).

verl looks advantage estimators up by name in ``verl.trainer.ppo.core_algos.ADV_ESTIMATOR_REGISTRY``
(filled by the ``register_adv_est`` decorator) and, on ``import verl``, imports every entry point of
the group ``verl.plugins`` (``verl/__init__.py``; ``VERL_USE_EXTERNAL_PLUGINS`` = ``auto`` (default),
``none`` or a comma-separated list of entry-point names). rankgrad declares::

    [project.entry-points."verl.plugins"]
    rankgrad = "rankgrad.integrations.verl:register"

verl only *loads* the entry point (imports this module and fetches ``register``; it does not call
it), so importing this module registers the estimator, in every process that imports verl: the
driver / ``TaskRunner`` Ray actor that computes advantages and every Ray worker, with no code change.
verl swallows plugin import errors (logged at DEBUG), so a failure here is logged at ERROR level by
this module itself, and :func:`self_check` (also ``python -m rankgrad.integrations.verl``) verifies
the registration and one hand-computed case.

What the estimator computes, per batch of B rollouts (verl's ``compute_advantage`` passes the
``[B, T]`` ``token_level_rewards`` and ``response_mask``, ``index`` = ``non_tensor_batch["uid"]`` and
``config`` = the ``algorithm`` config)::

    s_b   = Σ_t token_level_rewards[b, t]                      (the outcome score, as verl's GRPO)
    a     = rankgrad.integrations.group_advantages(s, uid, objective, ...)          [B]
    A[b, t] = a_b · response_mask[b, t]                         (advantages = returns, [B, T])

With the defaults a is exactly ``rankgrad.advantages(s, objective, group_ids=uid)``: per group g of
N_g rollouts of one prompt (groups may differ in size), a_i = q_i − v_i, and
(K/N_g)·Σ_{i∈g} a_i ∇log π(y_i) is an unbiased estimate of ∇J_K, with log π(y_i) the *sequence*
log-probability. verl's ``actor.loss_agg_mode`` decides how that sum is normalised (a constant for
``seq-mean-token-sum(-norm)``/``token-sum``; ``seq-mean-token-mean`` reweights rollouts by 1/length);
see ``examples/verl_passk.md``. No maths lives here: it is all in :mod:`rankgrad.integrations`.

Multi-turn rollouts in verl's v1 trainer (``trainer.use_v1=True``): v1 stores each output of an agent
loop (turn, tool call) as its own row, keyed ``{uid}_{session_id}_{index}``, and deduplicates sessions
for GRPO only, so any other estimator would see a session with more outputs as more rollouts. This module
wraps v1's ``compute_advantage_for_multi_trajectories`` (when verl imports it) so that rankgrad gets v1's
GRPO rule: the final output of each session carries the session's reward, the advantages are computed on
those rows (N_g = #sessions of the prompt) and each session's advantage is broadcast to all its rows.
A custom loop with several rows per rollout passes ``trajectory_ids`` to the estimator instead.

Configuration (a ``rankgrad`` block inside ``algorithm``; with Hydra add it with ``+``)::

    algorithm.adv_estimator=rankgrad
    +algorithm.rankgrad.objective=max@4        # required: any rankgrad preset ("cvar:0.25@8", ...)
    +algorithm.rankgrad.estimator=ordergrad    # optional; any name in rankgrad.ESTIMATORS

Keys (see :class:`VerlOptions`): ``objective`` (required), ``k``, ``k_schedule``, ``mix_objective``,
``mix_weight``, ``estimator``, ``unscorable``, ``small_groups``, ``std_normalize``, ``loss_scale``,
``eps``, ``noise``, ``metrics``, ``metric_ks``. Unknown keys are errors. verl's
``algorithm.norm_adv_by_std_in_grpo`` (default True) is *not* used: std normalisation is
``rankgrad.std_normalize`` (default False), because it biases the gradient.

K schedules (:mod:`rankgrad.schedules`), on the command line (a template such as ``max@{k}`` or
``cvar:0.25@{k}`` needs Hydra's inner quotes: ``"+algorithm.rankgrad.objective='cvar:0.25@{k}'"``)::

    +algorithm.rankgrad.objective=max
    '+algorithm.rankgrad.k_schedule={kind: linear, start: 8, end: 2, steps: 200}'

verl passes an advantage estimator no step, so the step comes from verl's own step counter: both of
verl's trainers (``RayPPOTrainer.fit`` and the v1 trainer) call ``verl.utils.skip.SkipManager.set_step``
with ``global_steps`` (1 at the first step) in the driver process that computes advantages; the
schedule is evaluated at ``global_steps − 1`` (optimiser steps already taken, as TRL counts). A custom
loop without it calls :func:`set_step` (which also takes precedence); a varying schedule with no step
known is an error, never a silent K.

Metrics: every call records :func:`rankgrad.metrics.training_metrics` (``rankgrad/objective``,
``rankgrad/objective_k``, ``rankgrad/max@k``, ``rankgrad/frac_zero_advantage``,
``rankgrad/frac_constant_groups``...) and the scheduled numbers (``rankgrad/schedule/k``...). verl gives
an estimator no way to return metrics, so they reach the step's metrics dict through verl's
``compute_data_metrics``, which both trainers call after the advantages in the same step: on its first
call the estimator wraps the ``compute_data_metrics`` names of the loaded trainer modules so that they
add (and clear) the recorded metrics, averaged over the step's calls. ``metrics: false`` turns this
off; :func:`pop_metrics` returns them to a custom loop.

Validation: verl's ``best@N/mean`` is a bootstrap of N draws *with replacement* from each prompt's
responses, a biased estimate of pass@N (1 correct of 4: 1 − (3/4)^4 ≈ 0.684 for best@4, where the one
4-subset of the data passes). :func:`validation_metrics` gives the unbiased ``best@N/unbiased`` and
``worst@N/unbiased`` (the U-statistics of max@N and min@N) for the same N; :func:`use_unbiased_validation`
(or ``RANKGRAD_VERL_VALIDATION=unbiased`` in the environment of the trainer process, read when verl loads
the plugin) makes verl's validation report them instead of its bootstrap best/worst.

References: OrderGrad (arXiv 2606.06096), MaxPO (arXiv 2606.06080), verl (HybridFlow, arXiv 2409.19256).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

import rankgrad
from rankgrad import schedules
from rankgrad.integrations import group_advantages, token_advantages
from rankgrad.integrations._check_case import check_case
from rankgrad.integrations._common import check_options
from rankgrad.metrics import MaxAtK, max_at_k, min_at_k, training_metrics

_MISSING = (
    "rankgrad.integrations.verl needs verl and PyTorch, but {} is not installed: pip install 'rankgrad[verl]'"
)
try:
    import torch
except ImportError as _err:
    raise ImportError(_MISSING.format("'torch'")) from _err
# verl itself is imported by register() at the end of this module, not here: when verl loads this module
# as its plugin, `import verl` is still running (see the module docstring).
if importlib.util.find_spec("verl") is None:
    raise ImportError(_MISSING.format("'verl'"))

__all__ = [
    "NAME",
    "CONFIG_KEY",
    "VerlOptions",
    "compute_rankgrad_advantage",
    "current_step",
    "options_from_config",
    "pop_metrics",
    "process_validation_metrics",
    "register",
    "is_registered",
    "self_check",
    "set_step",
    "use_unbiased_validation",
    "validation_metrics",
]

NAME = "rankgrad"
"""The ``algorithm.adv_estimator`` value the entry point registers."""

CONFIG_KEY = "rankgrad"
"""The block inside verl's ``algorithm`` config that holds the options."""

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class VerlOptions:
    """The ``algorithm.rankgrad`` options, checked (passed on to :func:`group_advantages`).

    Attributes:
      objective: rankgrad preset string, e.g. ``"max@4"`` (pass@4 for 0/1 rewards), ``"cvar:0.25@8"``,
        or a template with ``{k}`` (``"max@{k}"``) when K comes from ``k`` or ``k_schedule``. Required.
        Every group needs at least K + 1 rollouts (``actor_rollout_ref.rollout.n > K``) at every step.
      k: optional constant K, appended to an ``objective`` written without one (``objective=max``,
        ``k=4``) or filling its ``{k}``.
      k_schedule: optional K per step: ``{kind: linear|cosine, start, end, steps}``, ``{kind: constant,
        value}`` or an int (:func:`rankgrad.schedules.from_config`); like ``k``, appended or filling
        ``{k}``. Held here as a :class:`rankgrad.schedules.Schedule`.
      mix_objective: optional second objective (may use ``{k}``), blended in with ``mix_weight``:
        (1 − λ)·objective + λ·mix_objective, of any K (the smaller K is lifted to the larger;
        :func:`rankgrad.schedules.mixture`).
      mix_weight: λ in [0, 1]: a number or a weight schedule mapping; required with ``mix_objective``.
      estimator: advantage estimator name (``rankgrad.ESTIMATORS``), default ``"ordergrad"``.
      unscorable: ``"error"`` (default) or ``"zero"``: NaN/inf scores leave their group, advantage 0.
      small_groups: ``"error"`` (default) or ``"zero"``: groups with < K + 1 valid rollouts get 0.
      std_normalize: GRPO-style division by the group reward std + ``eps`` (biased; default False).
      loss_scale: multiply each group by its gradient scale c(N_g, K) (K/N_g for ordergrad), so that
        unequal group sizes weigh as in the unbiased Σ_groups (K/N_g)·Σ_i a_i ∇log π (default False).
      eps: the std offset.
      noise: ``[rho0, rho1]`` verifier flip rates for 0/1 rewards (``rankgrad.noisy``), or None;
        ``[null, rho1]`` = false-positive rate unknown: forward correction, mean objective only.
      metrics: record :func:`rankgrad.metrics.training_metrics` for verl's metrics dict (default True).
      metric_ks: the k of the logged ``rankgrad/max@k`` (default 1, 2, 4, ... and the group size).
    """

    objective: str
    k: int | None = None
    k_schedule: schedules.Schedule | None = None
    mix_objective: str | None = None
    mix_weight: schedules.Schedule | None = None
    estimator: str = "ordergrad"
    unscorable: str = "error"
    small_groups: str = "error"
    std_normalize: bool = False
    loss_scale: bool = False
    eps: float = 1e-6
    noise: tuple[float | None, float] | None = None
    metrics: bool = True
    metric_ks: tuple[int, ...] | None = None

    def group_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`rankgrad.integrations.group_advantages` besides the objective."""
        return {
            "estimator": self.estimator,
            "unscorable": self.unscorable,
            "small_groups": self.small_groups,
            "std_normalize": self.std_normalize,
            "loss_scale": self.loss_scale,
            "eps": self.eps,
            "noise": self.noise,
        }

    @property
    def full_objective(self) -> str:
        """``objective`` with ``@k`` appended or ``{k}`` filled when ``k`` is given (the template, with
        ``{k}``, under a ``k_schedule``)."""
        text = _with_k(self.objective, self.k is not None or self.k_schedule is not None)
        return text if self.k is None else text.replace("{k}", str(self.k))

    def objective_schedule(self) -> schedules.ObjectiveScheduleBase:
        """The objective in force at each step (constant without ``k_schedule`` / ``mix_weight``)."""
        k = self.k_schedule if self.k_schedule is not None else self.k
        main = _template(self.objective, k)
        if self.mix_objective is None:
            return main
        second = _template(self.mix_objective, k)
        return schedules.mixture(main, second, self.mix_weight)


def _with_k(objective: str, has_k: bool) -> str:
    if has_k and "{k}" not in objective and "@" not in objective:
        return f"{objective}@{{k}}"
    return objective


def _template(objective: str, k: schedules.Schedule | int | None) -> schedules.ObjectiveScheduleBase:
    """A preset or ``{k}`` template with K from ``k`` (a schedule or an int), as an objective schedule."""
    text = _with_k(objective, k is not None)
    if "{k}" in text:
        return schedules.objective(text, k=k)
    return schedules.as_objective_schedule(text)


_KEYS = tuple(f.name for f in fields(VerlOptions))


def _where(key: str | None = None) -> str:
    return f"algorithm.{CONFIG_KEY}" + (f".{key}" if key else "")


def _plain(section: Any) -> dict[str, Any]:
    """An OmegaConf node / mapping as a plain dict (interpolations resolved)."""
    from omegaconf import DictConfig, OmegaConf  # a verl dependency

    if isinstance(section, DictConfig):
        return dict(OmegaConf.to_container(section, resolve=True))
    if isinstance(section, Mapping):
        return dict(section)
    raise ValueError(
        f"{_where()}: expected a mapping of options such as {{objective: max@4}}, got "
        f"{type(section).__name__} {section!r}."
    )


def _example() -> str:
    return f"algorithm.adv_estimator={NAME} +{_where('objective')}=max@4"


def options_from_config(config: Any) -> VerlOptions:
    """Read and check the ``rankgrad`` block of verl's ``algorithm`` config.

    Args:
      config: what verl passes as ``config`` to an advantage estimator: the ``algorithm`` node
        (``omegaconf.DictConfig`` in verl's trainers), an ``AlgoConfig``, a plain dict, or None.
        Its ``rankgrad`` entry is a mapping with the keys of :class:`VerlOptions`.

    Returns:
      The checked :class:`VerlOptions` (the objective schedule is built once to catch typos early).

    Example:
      >>> from rankgrad.integrations.verl import options_from_config
      >>> options_from_config({"rankgrad": {"objective": "max", "k": 4}}).full_objective
      'max@4'
      >>> options_from_config({"rankgrad": {"objective": "cvar:0.25@8", "estimator": "pkpo_sloo"}}).estimator
      'pkpo_sloo'
      >>> s = {"objective": "max@{k}", "k_schedule": {"kind": "linear", "start": 8, "end": 2, "steps": 100}}
      >>> options_from_config({"rankgrad": s}).objective_schedule()(50).name
      'max@5'

    Raises:
      ValueError: no ``rankgrad`` block or no ``objective``, unknown keys, wrong types or values; each
        message names the config key and shows a working Hydra override.
    """
    section = None if config is None else config.get(CONFIG_KEY, None)
    if section is None:
        raise ValueError(
            f"{_where()}: missing. adv_estimator={NAME!r} needs at least an objective; on the command "
            f"line: {_example()} (the '+' adds a key Hydra's config does not declare)."
        )
    raw = _plain(section)
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise ValueError(f"{_where()}: unknown key(s) {unknown}; expected some of {list(_KEYS)}.")
    if raw.get("objective") in (None, ""):
        raise ValueError(f"{_where('objective')}: missing; e.g. {_example()}.")
    objective, k = raw["objective"], raw.get("k")
    if not isinstance(objective, str):
        raise ValueError(f"{_where('objective')}: expected a preset string like 'max@4', got {objective!r}.")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{_where('k')}: expected a positive integer, got {k!r}.")
        if raw.get("k_schedule") is not None:
            raise ValueError(f"{_where('k')} and {_where('k_schedule')} both given; give K once.")
    k_key = "k" if k is not None else "k_schedule"
    if raw.get("k_schedule") is not None:
        try:
            raw["k_schedule"] = schedules.from_config(raw["k_schedule"], arg=_where("k_schedule"))
        except ValueError as err:
            raise ValueError(str(err)) from None
    has_k = k is not None or raw.get("k_schedule") is not None
    for key in ("objective", "mix_objective"):
        text = raw.get(key)
        if key == "mix_objective" and text is None:
            continue
        if not isinstance(text, str):
            raise ValueError(f"{_where(key)}: expected a preset string like 'mean@4', got {text!r}.")
        if has_k and "@" in text and "{k}" not in text:
            raise ValueError(
                f"{_where(k_key)} given, but {_where(key)}={text!r} already names K; give K once "
                f"(write {text.split('@')[0]!r} or {text.split('@')[0] + '@{k}'!r})."
            )
        if "{k}" in text and not has_k:
            raise ValueError(
                f"{_where(key)}={text!r} has a {{k}} field but no K is given; add +{_where('k')}=4 or "
                f"'+{_where('k_schedule')}={{kind: linear, start: 8, end: 2, steps: 100}}'."
            )
    if (raw.get("mix_objective") is None) != (raw.get("mix_weight") is None):
        raise ValueError(
            f"{_where('mix_objective')} and {_where('mix_weight')} go together; give both or neither."
        )
    if raw.get("mix_weight") is not None:
        try:
            raw["mix_weight"] = schedules.from_config(raw["mix_weight"], integer=False,
                                                      arg=_where("mix_weight"))
        except ValueError as err:
            raise ValueError(str(err)) from None
    if "metrics" in raw and not isinstance(raw["metrics"], bool):
        raise ValueError(f"{_where('metrics')}: expected true or false, got {raw['metrics']!r}.")
    check_options(
        raw, _where, booleans="true or false",
        noise_hint="In the config: [rho0, rho1], or [null, rho1] when the false-positive rate is unknown "
                   "(forward correction of the mean).",
    )
    if raw.get("metric_ks") is not None:
        ks = raw["metric_ks"]
        ok = isinstance(ks, (list, tuple)) and ks and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in ks)
        if not ok:
            raise ValueError(f"{_where('metric_ks')}: expected integers >= 1 like [1, 4, 8], got {ks!r}.")
        raw["metric_ks"] = tuple(ks)
    options = VerlOptions(**raw)
    try:
        options.objective_schedule()
    except ValueError as err:
        raise ValueError(f"{_where('objective')}={options.full_objective!r}: {err}") from err
    return options


# --------------------------------------------------------------------------------- step
_STEP: list[int | None] = [None]


def set_step(step: int | None) -> None:
    """Set the step the K schedule is evaluated at (optimiser steps already taken, 0 at the first), for
    loops that do not run verl's trainers; it takes precedence over verl's counter. None clears it.

    Raises:
      ValueError: a negative step; InputTypeError: a non-integer one.
    """
    _STEP[0] = None if step is None else schedules.check_step(step)


def current_step() -> int | None:
    """The step schedules are evaluated at: :func:`set_step`'s value if set, else verl's
    ``SkipManager.step − 1`` (verl's trainers set it to ``global_steps``, 1 at the first step) once a
    trainer has started, else None."""
    if _STEP[0] is not None:
        return _STEP[0]
    try:
        from verl.utils.skip import SkipManager
    except ImportError:
        return None
    step = getattr(SkipManager, "step", -1)
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool) and step >= 1:
        return int(step) - 1
    return None


# ------------------------------------------------------------------------------ metrics
_PENDING: list[dict[str, float]] = []
_PENDING_CAP = 64  # calls kept when nothing consumes them (a loop that never asks for metrics)
_TRAINER_MODULES = ("verl.trainer.ppo.metric_utils", "verl.trainer.ppo.ray_trainer",
                    "verl.trainer.ppo.v1.trainer_base")


def pop_metrics() -> dict[str, float]:
    """The metrics recorded since the last call, each averaged over the estimator calls that recorded
    it (one per step in verl's trainers), and clear them."""
    sums: dict[str, list[float]] = {}
    for entry in _PENDING:
        for key, value in entry.items():
            sums.setdefault(key, []).append(value)
    _PENDING.clear()
    return {key: float(np.mean(values)) for key, values in sums.items()}


def _with_rankgrad_metrics(fn: Callable[..., dict]) -> Callable[..., dict]:
    @functools.wraps(fn)
    def compute_data_metrics(*args: Any, **kwargs: Any) -> dict:
        out = fn(*args, **kwargs)
        extra = pop_metrics()
        return {**out, **extra} if extra else out

    compute_data_metrics.__rankgrad_wrapped__ = fn
    return compute_data_metrics


def _hook_metrics() -> None:
    """Wrap ``compute_data_metrics`` in the loaded verl trainer modules (once each)."""
    for name in _TRAINER_MODULES:
        module = sys.modules.get(name)
        fn = getattr(module, "compute_data_metrics", None)
        if callable(fn) and not hasattr(fn, "__rankgrad_wrapped__"):
            module.compute_data_metrics = _with_rankgrad_metrics(fn)


def _record(values: dict[str, float]) -> None:
    _PENDING.append(values)
    del _PENDING[:-_PENDING_CAP]
    _hook_metrics()


# ------------------------------------------------------------------------ estimator
def compute_rankgrad_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Any = None,
    trajectory_ids: Any = None,
    **unused: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl advantage estimator: rankgrad's group advantages of the outcome scores, per token.

    s_b = Σ_t token_level_rewards[b, t]; a = group_advantages(s, index, objective, ...) (a_i = q_i − v_i
    per uid group for the default ``ordergrad``); advantages[b, t] = returns[b, t] = a_b · mask[b, t].
    With a schedule the objective is the one in force at :func:`current_step`; the metrics of the call
    are recorded for verl's metrics dict (module docstring) unless ``metrics: false``.

    Args:
      token_level_rewards: ``[B, T]`` float rewards per response token (outcome rewards sit on the
        last valid token; with ``use_kl_in_reward`` the per-token KL penalty is included in the sum).
      response_mask: ``[B, T]`` 1 on response tokens, 0 on padding.
      index: ``[B]`` group labels, verl's ``non_tensor_batch["uid"]`` (strings or ints; groups may
        differ in size, e.g. multi-turn or filtered batches).
      config: the ``algorithm`` config holding the ``rankgrad`` block (:func:`options_from_config`).
      trajectory_ids: optional ``[B]`` trajectory labels for loops that store several rows (turns,
        tool calls) per rollout: one advantage per trajectory, broadcast to its rows
        (:func:`rankgrad.integrations.group_advantages`; each trajectory's rows carry its reward). verl
        does not pass it; its v1 trainer gets the same rule from this module (one row per session).
      **unused: other keyword arguments verl may pass (e.g. ``reward_baselines``); ignored.

    Returns:
      ``(advantages, returns)``, both ``[B, T]`` in ``token_level_rewards``' dtype and device, equal,
      0 off the response mask.

    Raises:
      ValueError: bad or missing config, no ``uid``, shape mismatch, groups smaller than K + 1 or
        non-finite scores (unless ``small_groups`` / ``unscorable`` say ``"zero"``), a varying schedule
        with no step known.
    """
    options = options_from_config(config)
    if index is None:
        raise ValueError(
            f"adv_estimator={NAME!r}: verl passed no group index; rankgrad needs the rollouts' prompt ids "
            "(data.non_tensor_batch['uid'], set by verl's trainers before generation)."
        )
    if token_level_rewards.ndim != 2 or tuple(response_mask.shape) != tuple(token_level_rewards.shape):
        raise ValueError(
            f"adv_estimator={NAME!r}: expected token_level_rewards and response_mask of equal shape [B, T], "
            f"got {tuple(token_level_rewards.shape)} and {tuple(response_mask.shape)}."
        )
    schedule = options.objective_schedule()
    step = 0
    if schedule.horizon > 0:
        known = current_step()
        if known is None:
            raise ValueError(
                f"adv_estimator={NAME!r}: {_where()} schedules the objective, but no training step is "
                "known: verl's trainers publish it (SkipManager.set_step) once training starts; in another "
                "loop call rankgrad.integrations.verl.set_step(step) before computing advantages."
            )
        step = known
    objective = schedule(step)
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        try:
            adv = group_advantages(scores, index, objective, trajectory_ids=trajectory_ids,
                                   **options.group_kwargs())
        except ValueError as err:
            raise ValueError(
                f"adv_estimator={NAME!r} with {_where()}={options} (objective {objective.name!r} at step "
                f"{step}): {err}"
            ) from err
        advantages = token_advantages(adv, response_mask)
    if options.metrics:
        m_scores, m_index, m_adv = scores, index, adv
        if trajectory_ids is not None:  # one sample per trajectory: its first row
            first = _first_rows(trajectory_ids, scores.shape[0])
            m_scores, m_adv = scores[first], adv[first]
            m_index = index[first] if torch.is_tensor(index) else np.asarray(index)[first.numpy()]
        values = training_metrics(m_scores, m_index, objective, m_adv, ks=options.metric_ks,
                                  noise=options.noise)
        values.update({f"rankgrad/schedule/{k}": float(v) for k, v in schedule.values(step).items()})
        if schedule.horizon > 0:
            values["rankgrad/schedule/step"] = float(step)
        _record(values)
    return advantages, advantages


def _first_rows(trajectory_ids: Any, b: int) -> torch.Tensor:
    """The first row of each trajectory, in order of first appearance, as a CPU index tensor."""
    from rankgrad._src.layout import group_codes

    codes = group_codes(trajectory_ids, b, arg="trajectory_ids").codes
    first = np.full(int(codes.max()) + 1, b, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(b))
    return torch.from_numpy(first)


# ----------------------------------------------------------------------------- validation
_VALIDATION_ENV = "RANKGRAD_VERL_VALIDATION"


def _gen_ns(n: int) -> list[int]:
    """verl's subset sizes for a prompt with n responses: 2, 4, ... below n, then n (none for n <= 1)."""
    if n <= 1:
        return []
    out, k = [], 2
    while k < n:
        out.append(k)
        k *= 2
    return [*out, n]


def _numeric(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """A validation variable as (float64 values, valid mask), None/NaN missing; None if not numeric."""
    present = [v for v in values if v is not None]
    if not present or isinstance(present[0], (str, bytes)):
        return None
    try:
        x = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return x, np.isfinite(x)


def validation_metrics(
    data_sources: Sequence[str],
    sample_uids: Sequence[Any],
    infos_dict: Mapping[str, Sequence[Any]],
    expected_acc_counts: Mapping[tuple[str, Any], int] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Unbiased best@N and worst@N of a validation run, in verl's nested form.

    For each data source, numeric variable (``reward``, ``acc``, ...; strings and ``None`` skipped, as
    verl does) and prompt with n scored responses, for verl's sizes N = 2, 4, ..., n: the U-statistics
    of max@N and min@N (:func:`rankgrad.metrics.max_at_k`, :func:`~rankgrad.metrics.min_at_k`), then
    their mean over the prompts that have that N, as verl averages its metrics.

    Args:
      data_sources, sample_uids, infos_dict: what verl passes to its ``process_validation_metrics``:
        ``[B]`` sources, ``[B]`` prompt uids, variable name → ``[B]`` values.
      expected_acc_counts: verl's ``(data_source, uid) → expected responses``: missing ``acc`` values
        count as 0 (and ``acc_success_only`` keeps the observed ones), as in verl.

    Returns:
      ``{data_source: {variable: {"best@N/unbiased": float, "worst@N/unbiased": float, ...}}}``.

    Example:
      >>> from rankgrad.integrations.verl import validation_metrics
      >>> m = validation_metrics(["gsm8k"] * 4, ["q"] * 4, {"acc": [1, 0, 0, 0]})
      >>> m["gsm8k"]["acc"]["best@4/unbiased"], m["gsm8k"]["acc"]["best@2/unbiased"]
      (1.0, 0.5)
    """
    sources = np.asarray(list(data_sources), dtype=object)
    uids = list(sample_uids)
    if len(uids) != sources.shape[0]:
        raise ValueError(f"sample_uids: expected one per sample ({sources.shape[0]}), got {len(uids)}.")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for source in dict.fromkeys(sources.tolist()):
        rows = np.flatnonzero(sources == source).tolist()
        ids = [uids[i] for i in rows]
        variables = {name: ([values[i] for i in rows], ids) for name, values in infos_dict.items()}
        if expected_acc_counts and any(v is not None for v in variables.get("acc", ([], []))[0]):
            _add_missing_acc(source, variables, expected_acc_counts)
        for name, (values, labels) in variables.items():
            parsed = _numeric(values)
            if parsed is None or not parsed[1].any():
                continue
            out.setdefault(source, {})[name] = _best_worst(*parsed, labels)
    return out


def _add_missing_acc(
    source: str, variables: dict[str, tuple[list, list]], expected: Mapping[tuple[str, Any], int]
) -> None:
    """verl's rule for prompts with an expected number of sessions: the sessions that produced no
    ``acc`` count as 0 in ``acc``; ``acc_success_only`` keeps the observed values of those prompts."""
    values, ids = variables["acc"]
    want = {uid: int(count) for (src, uid), count in expected.items() if src == source}
    have: dict[Any, int] = {}
    for v, u in zip(values, ids, strict=True):
        if v is not None:
            have[u] = have.get(u, 0) + 1
    extra = [u for u, count in want.items() for _ in range(max(count - have.get(u, 0), 0))]
    variables["acc"] = (values + [0.0] * len(extra), ids + extra)
    kept = [(v, u) for v, u in zip(values, ids, strict=True) if u in want]
    variables["acc_success_only"] = ([v for v, _ in kept], [u for _, u in kept])


def _best_worst(x: np.ndarray, valid: np.ndarray, ids: list) -> dict[str, float]:
    best = max_at_k(x, ks=_all_ns(valid, ids), group_ids=ids, mask=valid)
    worst = min_at_k(x, ks=best.ks, group_ids=ids, mask=valid)
    out: dict[str, float] = {}
    out.update(_verl_means(best, "best"))
    out.update(_verl_means(worst, "worst"))
    return out


def _all_ns(valid: np.ndarray, ids: list) -> list[int]:
    counts: dict[Any, int] = {}
    for u, ok in zip(ids, valid.tolist(), strict=True):
        counts[u] = counts.get(u, 0) + int(ok)
    ns = sorted({n for c in counts.values() for n in _gen_ns(c)})
    return ns or [1]


def _verl_means(m: MaxAtK, label: str) -> dict[str, float]:
    """Mean over the prompts whose verl size list holds N (a prompt with n responses has 2, 4, ..., n)."""
    out = {}
    for j, n in enumerate(m.ks):
        use = np.array([n in _gen_ns(int(c)) for c in m.sizes])
        if use.any():
            out[f"{label}@{n}/unbiased"] = float(m.per_group[use, j].mean())
    return out


_BOOTSTRAP = ("best@", "worst@")


def process_validation_metrics(
    data_sources: Sequence[str],
    sample_uids: Sequence[Any],
    infos_dict: Mapping[str, Sequence[Any]],
    seed: int = 42,
    expected_acc_counts: Mapping[tuple[str, Any], int] | None = None,
    *,
    keep_bootstrap: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """verl's ``process_validation_metrics`` with unbiased best@N / worst@N: a drop-in replacement.

    Calls verl's own function (means, stds, majority votes unchanged), drops its bootstrap
    ``best@N/mean|std`` and ``worst@N/mean|std`` (unless ``keep_bootstrap``) and adds
    ``best@N/unbiased`` and ``worst@N/unbiased`` from :func:`validation_metrics`. verl's trainer then
    files ``best@N/unbiased`` of its core variable under ``val-core`` as it did the bootstrap.
    """
    from verl.trainer.ppo import metric_utils

    original = getattr(metric_utils.process_validation_metrics, "__rankgrad_wrapped__",
                       metric_utils.process_validation_metrics)
    kwargs = {"seed": seed}
    if expected_acc_counts is not None:
        kwargs["expected_acc_counts"] = expected_acc_counts
    base = original(data_sources, sample_uids, infos_dict, **kwargs)
    ours = validation_metrics(data_sources, sample_uids, infos_dict, expected_acc_counts)
    for source, variables in ours.items():
        for name, metrics in variables.items():
            target = base[source][name]
            if not keep_bootstrap:
                for key in [k for k in target if k.startswith(_BOOTSTRAP)]:
                    del target[key]
            target.update(metrics)
    return base


def _replacement(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return process_validation_metrics(*args, **kwargs)

    wrapped.__rankgrad_wrapped__ = original
    return wrapped


def use_unbiased_validation(enable: bool = True) -> None:
    """Make verl's validation report unbiased best@N / worst@N (:func:`process_validation_metrics`)
    instead of its bootstrap, or restore verl's (``enable=False``).

    Replaces ``process_validation_metrics`` in ``verl.trainer.ppo.metric_utils`` (imported here) and in
    the trainer modules already loaded, which bind the name when they are imported; call it in the
    process that runs the trainer before validation, or set ``RANKGRAD_VERL_VALIDATION=unbiased`` in that
    process's environment (read when verl loads the plugin).
    """
    import verl.trainer.ppo.metric_utils  # noqa: F401  (trainers imported later bind the replacement)

    for name in _TRAINER_MODULES:
        module = sys.modules.get(name)
        fn = getattr(module, "process_validation_metrics", None)
        if not callable(fn):
            continue
        original = getattr(fn, "__rankgrad_wrapped__", None)
        if enable and original is None:
            module.process_validation_metrics = _replacement(fn)
        elif not enable and original is not None:
            module.process_validation_metrics = original


# ----------------------------------------------------------------------- registration
def _registry() -> dict[str, Any]:
    return _core_algos().ADV_ESTIMATOR_REGISTRY


def _core_algos() -> Any:
    try:
        from verl.trainer.ppo import core_algos
    except ImportError as err:
        raise ImportError(
            f"rankgrad.integrations.verl: verl is installed but verl.trainer.ppo.core_algos failed to "
            f"import ({err}); reinstall with pip install 'rankgrad[verl]'."
        ) from err
    if not hasattr(core_algos, "ADV_ESTIMATOR_REGISTRY") or not hasattr(core_algos, "register_adv_est"):
        raise ImportError(
            "rankgrad.integrations.verl: this verl has no advantage-estimator registry "
            "(core_algos.register_adv_est / ADV_ESTIMATOR_REGISTRY); rankgrad needs verl>=0.9."
        )
    return core_algos


def _is_ours(fn: Any) -> bool:
    """True for this module's estimator, also from a re-imported copy of this module or behind
    ``functools.wraps`` wrappers (followed through ``__wrapped__``)."""
    for _ in range(32):  # a wrapper chain, never a cycle
        if fn is compute_rankgrad_advantage or (
            getattr(fn, "__qualname__", None) == compute_rankgrad_advantage.__qualname__
            and getattr(fn, "__module__", None) == compute_rankgrad_advantage.__module__
        ):
            return True
        fn = getattr(fn, "__wrapped__", None)
        if fn is None:
            return False
    return False


def register(name: str = NAME) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Register :func:`compute_rankgrad_advantage` as verl advantage estimator ``name``.

    Idempotent: registering again (or from a re-imported copy of this module) is a no-op/refresh.
    Importing this module calls ``register()``; the ``verl.plugins`` entry point does that in every
    process that imports verl.

    Args:
      name: the ``algorithm.adv_estimator`` value (default ``"rankgrad"``).

    Returns:
      The registered function.

    Raises:
      ValueError: ``name`` is already taken by another estimator (verl's or another plugin's).
      ImportError: verl's ``core_algos`` cannot be imported or has no registry.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}.")
    core_algos = _core_algos()
    registry = core_algos.ADV_ESTIMATOR_REGISTRY
    existing = registry.get(name)
    if existing is compute_rankgrad_advantage or (hasattr(existing, "__wrapped__") and _is_ours(existing)):
        return existing  # ours, possibly behind a tracing / profiling wrapper: left in place
    if existing is not None and not _is_ours(existing):
        owner = f"{getattr(existing, '__module__', '?')}.{getattr(existing, '__qualname__', repr(existing))}"
        raise ValueError(
            f"verl advantage estimator {name!r} is already registered to {owner}; rankgrad will not "
            f"replace it. Register rankgrad under another name (rankgrad.integrations.verl.register('...')) "
            "or remove the other plugin (VERL_USE_EXTERNAL_PLUGINS lists the plugins verl loads)."
        )
    if existing is None:
        core_algos.register_adv_est(name)(compute_rankgrad_advantage)
    else:  # a re-imported copy of this module: verl's decorator refuses a different object
        registry[name] = compute_rankgrad_advantage
    return compute_rankgrad_advantage


def is_registered(name: str = NAME) -> bool:
    """Whether verl's registry maps ``name`` to rankgrad's estimator."""
    return _is_ours(_registry().get(name))


def self_check(name: str = NAME) -> dict[str, Any]:
    """Check that what verl resolves ``name`` to computes rankgrad's advantages on a hand-computed case.

    Looks the estimator up through verl's own ``core_algos.get_adv_estimator_fn`` and runs whatever it
    returns (rankgrad's function, or a tracing / profiling wrapper around it: the check is on what the
    registry entry computes, not on its identity) on a 13-rollout batch (two uid groups of sizes 8 and
    5, 0/1 outcome rewards on the last valid token, right-padded responses) with ``objective="max@4"``;
    compares with the closed-form binary max@K advantages (+5/35, −3/35 for 3 of 8 correct; +1, −1/4
    for 1 of 5).

    Args:
      name: the registered estimator name to check.

    Returns:
      ``{"name", "verl_version", "rankgrad_version", "max_abs_error"}``.

    Raises:
      RuntimeError: not registered, an entry that fails on the case, or a wrong result (the message
        says which).
    """
    import verl

    core_algos = _core_algos()
    try:
        fn = core_algos.get_adv_estimator_fn(name)
    except ValueError as err:
        raise RuntimeError(f"rankgrad self-check: verl does not know adv_estimator={name!r}: {err}") from err
    config = {CONFIG_KEY: {"objective": "max@4", "metrics": False}}  # a check, not a training step
    err = check_case(fn, f"adv_estimator={name!r} (resolved to {fn!r})",
                     index=lambda u: np.array(u, dtype=object), config=config)
    return {
        "name": name,
        "verl_version": getattr(verl, "__version__", "?"),
        "rankgrad_version": rankgrad.__version__,
        "max_abs_error": err,
    }


# --------------------------------------------------------------------------- v1 trainer
_V1_UTILS = "verl.trainer.ppo.v1.utils"
_V1_USERS = ("verl.trainer.ppo.v1.trainer_base",)  # modules that bind the name at import


def _session_rows(batch_keys: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """verl v1's keys ``{uid}_{session_id}_{index}`` → the row of each session's final output (highest
    index; sessions in order of first appearance) and each row's session number ``[B]``."""
    final: dict[str, tuple[int, int]] = {}
    session_of = np.empty(len(batch_keys), dtype=np.int64)
    number: dict[str, int] = {}
    for row, key in enumerate(batch_keys):
        fields = str(key).rsplit("_", 2)
        if len(fields) != 3 or not fields[2].lstrip("-").isdigit():
            raise ValueError(
                f"batch_keys: expected verl v1 keys '{{uid}}_{{session_id}}_{{index}}', got {key!r} at "
                f"row {row}."
            )
        session, index = f"{fields[0]}_{fields[1]}", int(fields[2])
        session_of[row] = number.setdefault(session, len(number))
        if session not in final or final[session][0] < index:
            final[session] = (index, row)
    return [row for _, row in final.values()], session_of


def _is_rankgrad_estimator(adv_estimator: Any) -> bool:
    name = getattr(adv_estimator, "value", adv_estimator)
    return isinstance(name, str) and _is_ours(_registry().get(name))


def _v1_multi_trajectories(original: Callable[..., Any]) -> Callable[..., Any]:
    """verl v1's ``compute_advantage_for_multi_trajectories``, with rankgrad treated as v1 treats GRPO.

    v1 stores each output of an agent loop (turns, tool calls) as its own row, keyed
    ``{uid}_{session_id}_{index}``, and deduplicates sessions for GRPO only; any other estimator sees
    every row, so a session with more outputs would count as more rollouts of its prompt. For an
    estimator that resolves to rankgrad this runs v1's GRPO rule: the advantages of the final output of
    each session (its reward is the trajectory's), computed by verl's ``compute_advantage`` on those
    rows (groups = sessions of a uid), broadcast to every row of the session under its response mask.
    Every other estimator goes to verl's function unchanged.
    """

    @functools.wraps(original)
    def compute_advantage_for_multi_trajectories(data: Any, batch_keys: Sequence[str], adv_estimator: Any,
                                                 *args: Any, **kwargs: Any) -> Any:
        if not _is_rankgrad_estimator(adv_estimator):
            return original(data, batch_keys, adv_estimator, *args, **kwargs)
        if len(batch_keys) != len(data):
            raise ValueError(f"batch_keys: expected one key per row ({len(data)}), got {len(batch_keys)}.")
        final_rows, session_of = _session_rows(batch_keys)
        compute = getattr(sys.modules.get(_V1_UTILS), "compute_advantage", None)
        if compute is None:
            from verl.trainer.ppo.ray_trainer import compute_advantage as compute
        final = compute(data.select_idxs(final_rows), adv_estimator, *args, **kwargs)
        mask = final.batch["response_mask"]
        first = mask.argmax(dim=1)  # advantages = a · mask: a sits on every response token
        per_session = final.batch["advantages"][torch.arange(len(final_rows)), first]
        rows_mask = data.batch["response_mask"]
        adv = per_session[torch.as_tensor(session_of)].unsqueeze(-1) * rows_mask.to(per_session.dtype)
        data.batch["advantages"] = adv
        data.batch["returns"] = adv
        return data

    compute_advantage_for_multi_trajectories.__rankgrad_wrapped__ = original
    return compute_advantage_for_multi_trajectories


def _patch_v1(module: Any) -> None:
    """Wrap ``compute_advantage_for_multi_trajectories`` of a loaded v1 utils module (and of the loaded
    modules that imported the name), once."""
    fn = getattr(module, "compute_advantage_for_multi_trajectories", None)
    if not callable(fn):
        return
    original = getattr(fn, "__rankgrad_wrapped__", fn)
    if fn is original:
        module.compute_advantage_for_multi_trajectories = fn = _v1_multi_trajectories(original)
    for name in _V1_USERS:
        user = sys.modules.get(name)
        if getattr(user, "compute_advantage_for_multi_trajectories", None) is original:
            user.compute_advantage_for_multi_trajectories = fn


class _PatchingLoader(importlib.abc.Loader):
    """Runs a module's own loader, then :func:`_patch_v1` on it."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        try:
            _patch_v1(module)
        except Exception:  # never break verl's import
            _log.error("rankgrad: could not hook verl's v1 advantage computation.", exc_info=True)

    def __getattr__(self, attr: str) -> Any:  # get_code, get_source, is_package... for tools
        return getattr(self._loader, attr)


class _V1Finder(importlib.abc.MetaPathFinder):
    """Patches verl's v1 utils when it is imported (it is not imported by ``import verl``, when the
    plugin loads, and importing it here would pull in the whole trainer stack)."""

    rankgrad_v1_hook = True

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _V1_UTILS:
            return None
        for finder in sys.meta_path:
            if finder is self or getattr(finder, "rankgrad_v1_hook", False):
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def _hook_v1() -> None:
    """Make verl's v1 trainer give rankgrad one advantage per session (:func:`_v1_multi_trajectories`):
    patch the module now if it is loaded, else when it is imported."""
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "rankgrad_v1_hook", False)]
    module = sys.modules.get(_V1_UTILS)
    if module is not None:
        _patch_v1(module)
    else:
        sys.meta_path.insert(0, _V1Finder())


def _register_on_import() -> None:
    """Register + self-check, logging failures at ERROR (verl hides plugin errors at DEBUG).

    A name taken by another estimator is logged, not raised, so that the module stays importable for
    ``register("another_name")``; any other failure is logged and raised.
    """
    try:
        register()
    except ValueError:
        _log.error("rankgrad: could not register verl adv_estimator=%r.", NAME, exc_info=True)
        return
    except Exception:
        _log.error("rankgrad: could not register verl adv_estimator=%r.", NAME, exc_info=True)
        raise
    try:
        report = self_check()
    except Exception:
        registry = _registry()
        if _is_ours(registry.get(NAME)):
            del registry[NAME]  # never train with an estimator that failed its check
        _log.error(
            "rankgrad: verl adv_estimator=%r FAILED its self-check and was unregistered.", NAME, exc_info=True
        )
        raise
    _log.info("rankgrad: registered verl adv_estimator=%r (self-check passed: %s).", NAME, report)


def _validation_from_env() -> None:
    """``RANKGRAD_VERL_VALIDATION=unbiased``: switch verl's validation to unbiased best/worst@N."""
    setting = os.environ.get(_VALIDATION_ENV, "").strip().lower()
    if setting in ("", "0", "false", "bootstrap"):
        return
    if setting not in ("1", "true", "unbiased"):
        _log.error("rankgrad: %s=%r not understood; expected 'unbiased' (or unset).", _VALIDATION_ENV,
                   setting)
        return
    try:
        use_unbiased_validation()
    except Exception:
        _log.error("rankgrad: %s=%s: could not switch verl's validation metrics.", _VALIDATION_ENV, setting,
                   exc_info=True)
        raise


if __name__ == "__main__":  # python -m rankgrad.integrations.verl: load as verl would, then check
    import json

    from rankgrad.integrations import verl as _plugin  # the importable copy registers itself

    print(json.dumps(_plugin.self_check(), indent=2))
else:
    _register_on_import()
    _hook_v1()
    _validation_from_env()
