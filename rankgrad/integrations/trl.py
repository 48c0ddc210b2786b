"""TRL adapters: :class:`RankGradGRPOTrainer` and :class:`RankGradRLOOTrainer`, TRL's ``GRPOTrainer`` and
``RLOOTrainer`` with rankgrad advantages.

TRL computes GRPO's advantage (r_i − mean_g)/(std_g + 1e-4) (RLOO's: r_i − mean of the group's other
rewards) inline in the private method ``_generate_and_score_completions`` and offers no hook for another
one. Both trainers have the same structure in trl 1.16, so one adapter serves both: the subclass keeps
everything TRL does (generation, reward functions, gathering across processes, importance sampling,
the loss, logging) and replaces only ``output["advantages"]``:

1. it overrides ``_calculate_rewards``, calls TRL's version and keeps its return value: the
   ``[B, F]`` per-reward-function rewards *already gathered across processes* (B = all processes'
   rollouts of this generation batch, F = number of reward functions; NaN where a function returned
   ``None``);
2. it overrides ``_generate_and_score_completions``: calls TRL's version, then aggregates those
   rewards exactly as TRL does (``nansum`` of ``rewards_per_func · reward_weights`` over functions; NaN
   where every function returned ``None``: an *unscorable* rollout), groups them as TRL does
   (contiguous blocks of ``num_generations`` rollouts, ``num_generations_eval`` in evaluation),
   computes :func:`rankgrad.integrations.group_advantages` over all B rollouts, takes this process's
   share with TRL's slice ``[process_index · b, (process_index + 1) · b)`` (b = local rollouts) and
   writes it into ``output["advantages"]``.

Capturing the return value of ``_calculate_rewards`` is the least fragile hook available: it is the
one place the gathered rewards exist as a value (the weighted ``rewards`` are a local variable), it is
called exactly once per generation batch, and its contract ("returns the gathered ``[B, F]`` rewards")
is what TRL's own grouping relies on. The adapter checks that contract at runtime (the method was
called, B is num_processes × local rollouts and a multiple of the group size, the output holds a
``[b]`` ``"advantages"`` tensor) and raises a ``RuntimeError`` naming what changed otherwise.

The maths (none of it lives here): per group of N rollouts of one prompt, rankgrad's default
``ordergrad`` advantage is a_i = q_i − v_i (include-one minus leave-one-out U-statistic of the
objective), and (K/N)·Σ_i a_i ∇log π(y_i) is an unbiased estimate of ∇J_K, e.g. ∇pass@K for 0/1
rewards and ``objective="max@K"``. On-policy (``num_iterations=1``, ratio 1) TRL's loss turns that
into: ``loss_type="dr_grpo"`` (token sum / (b · max_completion_length), a constant) — exactly
constant × Σ_i a_i ∇log π(y_i), the recommended setting; ``"dapo"`` (TRL's default) and ``"bnpo"`` —
the same sum divided by the batch's token count, a data-dependent scale shared by all rollouts;
``"grpo"`` — each rollout divided by its own length, a 1/|y_i| reweighting that is no longer unbiased
for ∇J_K. TRL's ``scale_rewards`` is ignored (its advantages are replaced); ``std_normalize=True`` is
the explicit, biased GRPO-style scaling.

Example (see ``examples/trl_passk.py``)::

    from rankgrad.integrations.trl import RankGradGRPOTrainer

    trainer = RankGradGRPOTrainer(            # was: GRPOTrainer(
        model=model, reward_funcs=passes, args=GRPOConfig(num_generations=8, loss_type="dr_grpo", ...),
        train_dataset=dataset, processing_class=tokenizer,
        objective="max@4",                    # pass@4 for 0/1 rewards; any rankgrad objective
    )
    trainer.train()

K schedules: ``objective`` may also be a schedule (:mod:`rankgrad.schedules`), e.g.
``rankgrad.schedules.objective("max@{k}", k=rankgrad.schedules.linear(8, 2, 200))``: the objective of a
generation batch is the schedule's value at ``trainer.state.global_step`` (optimiser steps already
taken, 0 at the first), and the K in force is logged as ``rankgrad/objective_k``.

Several processes (``accelerate launch --num_processes P``): nothing to configure.
Every process gets the same gathered ``[B, F]`` rewards from TRL, computes the same ``[B]`` advantages and
keeps its own slice, so a group whose rollouts live on two processes is still ranked as one group.
Tested with a real 2-process CPU (gloo) run of both trainers
(``tests/integrations/test_trl_multiprocess.py``). On a machine without GPUs, launch the processes with
accelerate's multi-process launcher (``--multi_gpu --num_processes 2``, or ``distributed_type:
MULTI_GPU`` in the config file) and ``use_cpu=True`` in the trainer's config: accelerate then selects
MULTI_CPU with gloo. Its ``--cpu`` flag selects the single-process launcher.

RLOO (:class:`RankGradRLOOTrainer`): the same hooks, the same arguments and metrics. RLOO's loss is
per sequence (one ratio per rollout, mean over rollouts), so on-policy it is exactly a constant times
Σ_i a_i ∇log π(y_i) with no ``loss_type`` to choose. RLOO's ``beta`` must be 0 (it would subtract a
KL penalty from the rewards before ranking, and the KL is not visible to the adapter) and
``normalize_advantages`` must stay off (the advantages are replaced); ``reward_clip_range`` is applied
before ranking as TRL does. Both are checked before TRL builds anything.

``trl.experimental.async_grpo`` (``AsyncGRPOTrainer``) is not supported, and an ``AsyncGRPOConfig``
passed to either adapter raises a ``TypeError`` (``InputTypeError``) that says so. AsyncGRPOTrainer is
not a ``GRPOTrainer`` subclass (it derives from TRL's base trainer) and has neither hook: generation and
scoring run in a child process spawned by ``AsyncRolloutWorker`` on rank 0, whose
``_AsyncRolloutLoop._score_group`` computes the advantage of one complete group (all N rollouts of a
prompt, rewards ``nansum``-ed over the reward functions) as (r − mean)/(std + 1e-8) and stamps it on
each ``RolloutSample``; the trainer only reads ``advantage`` from the queue. Supporting it would need an
``_AsyncRolloutLoop`` subclass whose ``_score_group`` calls :func:`rankgrad.integrations.group_advantages`
on the group's rewards (one group at a time, so no gathering is involved), plugged in through an
``AsyncRolloutWorker`` subclass's ``_loop_cls`` and passed as ``rollout_worker=``. That path needs a
vLLM server and cannot be tested here, so it is not provided; the metrics and schedules of this module
would also need a different home (they run in the trainer, the scoring in the child process).

References: OrderGrad (arXiv 2606.06096), MaxPO (arXiv 2606.06080), GRPO (arXiv 2402.03300),
Dr. GRPO (arXiv 2503.20783).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

try:
    import torch
    import trl
    from packaging.version import Version
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer
except ImportError as err:  # pragma: no cover - exercised in the main venv, which has no trl
    raise ImportError(
        "rankgrad.integrations.trl needs TRL (trl>=1.16) and PyTorch: pip install 'rankgrad[trl]'"
        f" (import failed with: {err})."
    ) from err

import rankgrad
from rankgrad._src.errors import InputTypeError
from rankgrad.integrations import group_advantages
from rankgrad.metrics import training_metrics
from rankgrad.schedules import ObjectiveScheduleBase, as_objective_schedule

__all__ = ["RankGradGRPOTrainer", "RankGradRLOOTrainer", "MIN_TRL_VERSION"]

MIN_TRL_VERSION = "1.16"

# What the adapter relies on in TRL's GRPOTrainer and RLOOTrainer (checked at construction).
_METHODS = ("_generate_and_score_completions", "_calculate_rewards")
_ATTRIBUTES = ("num_generations", "num_generations_eval", "reward_weights", "_metrics", "accelerator")


def _check_trl_contract(base: type, adapter: str) -> None:
    """Raise ``RuntimeError`` if the installed TRL is older than 1.16 or ``base`` (TRL's ``GRPOTrainer`` or
    ``RLOOTrainer``) lacks the private methods the adapter overrides (``_generate_and_score_completions``
    and ``_calculate_rewards``)."""
    found = getattr(trl, "__version__", "unknown")
    if Version(str(found)).release < Version(MIN_TRL_VERSION).release:
        raise RuntimeError(
            f"{adapter} needs trl>={MIN_TRL_VERSION}, found trl {found}: pip install -U 'rankgrad[trl]'."
        )
    name = base.__name__
    for method in _METHODS:
        if not callable(getattr(base, method, None)):
            raise RuntimeError(
                f"trl {found}: {name}.{method} no longer exists. {adapter} replaces the advantages by "
                f"overriding {name}._calculate_rewards (returns the rewards gathered across processes) and "
                f"{name}._generate_and_score_completions (returns the batch dict with 'advantages'); pin trl "
                f"to a version that has both (tested with trl {MIN_TRL_VERSION}) or update the adapter."
            )


def _check_config_type(config: Any, expected: type, adapter: str) -> None:
    """``args`` must be the config class of the adapted trainer (``InputTypeError`` otherwise); an
    ``AsyncGRPOConfig`` gets its own message (see the module docstring's ``async_grpo`` section)."""
    if config is None or isinstance(config, expected):
        return
    kind = type(config)
    if kind.__name__ == "AsyncGRPOConfig" or kind.__module__.startswith("trl.experimental.async_grpo"):
        raise InputTypeError(
            f"args: {adapter} got an AsyncGRPOConfig, but trl.experimental.async_grpo is not supported: "
            "AsyncGRPOTrainer is not a GRPOTrainer, and it computes its advantages in the rollout worker's "
            "child process (_AsyncRolloutLoop._score_group, one group at a time), which this adapter cannot "
            f"reach. Use {adapter} with a {expected.__name__} (vLLM generation is available there through "
            "use_vllm=True), or see rankgrad.integrations.trl's docstring for what async GRPO would need."
        )
    raise InputTypeError(
        f"args: {adapter} adapts trl.{expected.__name__[:-6]}Trainer and needs a trl.{expected.__name__}, "
        f"got {kind.__module__}.{kind.__qualname__}; build args with trl.{expected.__name__}(...)."
    )


def _check_group_size(k: int, n: int | None, what: str) -> None:
    """K <= N − 1 for the training group size (a smaller group has no leave-one-out baseline)."""
    if n is not None and n < k + 1:
        raise ValueError(
            f"objective needs K <= {what} - 1: K={k} but {what}={n}. Sample at least K + 1 = {k + 1} "
            f"completions per prompt ({what}={k + 1} or more) or use a smaller K."
        )


class _RankGradAdapter:
    """The adapter shared by :class:`RankGradGRPOTrainer` and :class:`RankGradRLOOTrainer`: it must come
    before the TRL trainer in the bases. Subclasses set the TRL trainer and config classes, the
    attributes read from the trainer, and :meth:`_rankgrad_check_settings` for the trainer's own knobs."""

    _trl_trainer: type
    _trl_config: type
    _trl_attributes: tuple[str, ...] = _ATTRIBUTES

    def __init__(
        self,
        *trainer_args: Any,
        objective: str | rankgrad.Objective | ObjectiveScheduleBase,
        estimator: str = "ordergrad",
        std_normalize: bool = False,
        unscorable: Literal["error", "zero"] = "error",
        small_groups: Literal["error", "zero"] = "error",
        eps: float = 1e-6,
        noise: tuple[float | None, float] | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        adapter, base = type(self).__name__, self._trl_trainer
        _check_trl_contract(base, adapter)
        schedule = as_objective_schedule(objective)
        obj = schedule(0)
        self.rankgrad_schedule = schedule
        self.rankgrad_objective = obj
        self._rankgrad_options = dict(
            estimator=estimator, std_normalize=std_normalize, unscorable=unscorable,
            small_groups=small_groups, eps=eps, noise=noise,
        )
        # Fail on bad names or estimator/objective pairs before TRL loads a model: one tiny group per end
        # of the schedule.
        for end in {obj, schedule(schedule.horizon)}:
            probe = np.zeros(end.k + 1)
            group_advantages(probe, np.zeros(end.k + 1, dtype=np.int64), end, **self._rankgrad_options)
        k_max = schedule.k_range()[1]

        config = _bound_config(base, trainer_args, trainer_kwargs)
        _check_config_type(config, self._trl_config, adapter)
        if config is not None:
            _check_group_size(k_max, getattr(config, "num_generations", None), "num_generations")
        # TRL's settings, before TRL builds anything (args=None: the config class's defaults).
        self._rankgrad_check_settings(config if config is not None else _config_defaults(self._trl_config))
        self.last_advantages: torch.Tensor | None = None
        self.last_rewards: torch.Tensor | None = None
        self._rankgrad_rewards_per_func: torch.Tensor | None = None

        super().__init__(*trainer_args, **trainer_kwargs)

        missing = [name for name in self._trl_attributes if not hasattr(self, name)]
        if missing:
            raise RuntimeError(
                f"trl {trl.__version__}: {base.__name__} no longer sets {', '.join(missing)}, which "
                f"{adapter} reads to group and weight the rewards; pin trl or update the adapter."
            )
        _check_group_size(k_max, self.num_generations, "num_generations")
        self._rankgrad_check_settings(self)
        if self.num_generations_eval < k_max + 1:
            warnings.warn(
                f"num_generations_eval={self.num_generations_eval} < K + 1 = {k_max + 1} for {obj.name!r}"
                f"{' (the largest K of the schedule)' if k_max != obj.k else ''}: evaluation advantages will "
                "be 0 while K >= num_generations_eval (eval rewards are still logged by TRL).",
                stacklevel=2,
            )

    def _rankgrad_check_settings(self, settings: Any) -> None:
        """Raise ``ValueError`` for a TRL setting that would change what the advantages mean; ``settings``
        is the config (before TRL's constructor) or the trainer (after it): the names are the same."""

    # ------------------------------------------------------------------ hooks into TRL
    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """TRL's rewards, kept: ``[B, F]`` gathered across processes (NaN where a function gave None)."""
        rewards_per_func = super()._calculate_rewards(*args, **kwargs)
        self._rankgrad_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's batch dict with ``"advantages"`` ``[b]`` replaced by rankgrad's (this process's share)."""
        name, version = self._trl_trainer.__name__, trl.__version__
        self._rankgrad_rewards_per_func = None
        output = super()._generate_and_score_completions(inputs)
        rewards_per_func, self._rankgrad_rewards_per_func = self._rankgrad_rewards_per_func, None
        if rewards_per_func is None:
            raise RuntimeError(
                f"trl {version}: {name}._generate_and_score_completions did not call _calculate_rewards, "
                f"so {type(self).__name__} cannot see the gathered rewards; pin trl (tested with "
                f"{MIN_TRL_VERSION}) or update the adapter."
            )
        if not isinstance(output, dict) or "advantages" not in output:
            raise RuntimeError(
                f"trl {version}: {name}._generate_and_score_completions no longer returns a dict with an "
                f"'advantages' entry; {type(self).__name__} cannot replace the advantages."
            )
        trl_adv = output["advantages"]
        if not isinstance(trl_adv, torch.Tensor) or trl_adv.dim() != 1:
            raise RuntimeError(
                f"trl {version}: expected output['advantages'] to be a [b] tensor (one per local "
                f"rollout), got {type(trl_adv).__name__} of shape {tuple(getattr(trl_adv, 'shape', ()))}."
            )

        mode = "train" if self.model.training else "eval"  # TRL's own rule
        n = self.num_generations if mode == "train" else self.num_generations_eval
        local = trl_adv.shape[0]
        world = self.accelerator.num_processes
        total = rewards_per_func.shape[0]
        if rewards_per_func.dim() != 2 or total != local * world or total % n != 0:
            raise RuntimeError(
                f"trl {version}: _calculate_rewards returned shape {tuple(rewards_per_func.shape)}; "
                f"expected [num_processes * local rollouts = {world} * {local}, num reward functions] in "
                f"whole groups of {n}. {type(self).__name__} relies on TRL gathering rewards in process "
                "order."
            )

        step = int(self.state.global_step)
        obj = self.rankgrad_schedule(step)
        if mode == "train":
            _check_group_size(obj.k, n, "num_generations")
        self.rankgrad_objective = obj
        rewards = self._rankgrad_rewards(rewards_per_func)
        adv = self._rankgrad_advantages(rewards, n)
        start = self.accelerator.process_index * local
        output["advantages"] = adv[start : start + local].to(device=trl_adv.device, dtype=trl_adv.dtype)
        self.last_rewards, self.last_advantages = rewards.detach(), adv.detach()
        self._rankgrad_log(mode, rewards, adv, n, step)
        return output

    # ------------------------------------------------------------------ pieces
    def _rankgrad_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        """``[B, F]`` → ``[B]``: TRL's aggregation, Σ_f w_f · r_f ignoring NaN; NaN if every r_f is NaN."""
        weights = self.reward_weights.to(device=rewards_per_func.device, dtype=rewards_per_func.dtype)
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        return torch.where(torch.isnan(rewards_per_func).all(dim=1), torch.nan, rewards)

    def _rankgrad_advantages(self, rewards: torch.Tensor, n: int) -> torch.Tensor:
        """``[B]`` advantages for contiguous groups of ``n`` rollouts (all processes)."""
        options = dict(self._rankgrad_options)
        if n < self.rankgrad_objective.k + 1:  # small num_generations_eval (warned in __init__)
            options["small_groups"] = "zero"
        uids = np.arange(rewards.shape[0]) // n
        return group_advantages(rewards, uids, self.rankgrad_objective, **options)

    def _rankgrad_log(
        self, mode: str, rewards: torch.Tensor, adv: torch.Tensor, n: int, step: int = 0
    ) -> None:
        """Metrics of the rewards and of the advantages actually used
        (:func:`rankgrad.metrics.training_metrics`) and the scheduled numbers in force; the completions
        table gets the advantages too."""
        metrics = self._metrics[mode]
        a = adv.detach().float()
        uids = np.arange(rewards.shape[0]) // n
        noise = self._rankgrad_options["noise"]
        values = training_metrics(rewards.detach(), uids, self.rankgrad_objective, a, noise=noise)
        scheduled = self.rankgrad_schedule.values(step)
        values.update({f"rankgrad/schedule/{k}": float(v) for k, v in scheduled.items()})
        for key, value in values.items():
            metrics[key].append(value)
        logs = getattr(self, "_logs", None)  # TRL appended its own advantages for the completions table
        column = logs.get("advantages") if isinstance(logs, dict) else None
        if column is not None and hasattr(column, "pop"):
            for _ in range(min(len(column), a.numel())):
                column.pop()
            column.extend(a.tolist())

    def _rankgrad_objective_value(self, grouped: torch.Tensor) -> float | None:
        """Mean over groups with >= K valid rewards of the U-statistic of J_K (``rankgrad.value``)."""
        valid = torch.isfinite(grouped)
        keep = valid.sum(dim=1) >= self.rankgrad_objective.k
        if not bool(keep.any()):
            return None
        r, m = torch.where(valid, grouped, 0.0)[keep], valid[keep]
        noise = self._rankgrad_options["noise"]
        if noise is not None:
            rho0 = 0.0 if noise[0] is None else noise[0]  # forward correction: exact when rho0 = 0
            v = rankgrad.noisy.value(r, self.rankgrad_objective, rho0=rho0, rho1=noise[1], mask=m)
        else:
            v = rankgrad.value(r, self.rankgrad_objective, mask=m)
        return v.float().mean().item()


class RankGradGRPOTrainer(_RankGradAdapter, GRPOTrainer):
    """``trl.GRPOTrainer`` whose advantages are rankgrad's L-statistic advantages.

    Everything but ``output["advantages"]`` is TRL's. Per generation batch, with r the ``[B]`` rewards
    gathered across processes (``nansum`` over reward functions of ``reward_weights`` × reward, NaN if
    every function returned ``None``) and groups the contiguous blocks of N = ``num_generations``
    rollouts (``num_generations_eval`` in evaluation):

        a = group_advantages(r, arange(B) // N, objective, estimator=..., ...)      # [B]

    e.g. ``ordergrad``: a_i = q_i − v_i, so (K/N)·Σ_i a_i ∇log π(y_i) is unbiased for ∇J_K; then this
    process keeps ``a[process_index · b : (process_index + 1) · b]`` (b local rollouts), exactly TRL's
    slice. See the module docstring for why the rewards are captured from ``_calculate_rewards``.

    Args:
      *trainer_args, **trainer_kwargs: passed to ``trl.GRPOTrainer`` unchanged (``model``,
        ``reward_funcs``, ``args``, ``train_dataset``, ``processing_class``, ...).
      objective: preset string (``"max@4"``, ``"pass@8"``, ``"cvar:0.25@8"``...),
        :class:`rankgrad.Objective`, or a schedule (:mod:`rankgrad.schedules`, or any callable
        ``step -> preset | Objective``) evaluated at ``state.global_step`` for each generation batch;
        needs K <= ``args.num_generations`` − 1 at every step (checked at construction at the first and
        last step of a :mod:`rankgrad.schedules` schedule, and at run time for every batch).
      estimator: any ``rankgrad.ESTIMATORS`` name (default ``"ordergrad"``).
      std_normalize: divide each group's advantages by its reward std (ddof=1) + ``eps`` like GRPO.
        Off by default: it makes the gradient a biased estimate of ∇J_K.
      unscorable: ``"error"`` (default) raises if a rollout's reward is NaN (every reward function
        returned ``None``) or inf; ``"zero"`` drops it from its group (N shrinks) with advantage 0, which is
        what TRL does for its own advantages.
      small_groups: ``"error"`` (default) raises when a training group has fewer than K + 1 valid
        rollouts (only possible with ``unscorable="zero"``); ``"zero"`` gives such groups advantage 0.
        Evaluation groups smaller than K + 1 (``num_generations_eval`` <= K) always get 0, with a warning
        at construction: the eval loss then carries no policy-gradient term.
      eps: the std offset for ``std_normalize`` and for ``estimator="grpo"`` (TRL's is 1e-4).
      noise: ``(rho0, rho1)`` verifier false-positive/false-negative rates for 0/1 rewards
        (:mod:`rankgrad.noisy`); ``(None, rho1)``: forward correction of the mean (the logged
        objective then assumes rho0 = 0).

    Attributes:
      rankgrad_objective: the :class:`rankgrad.Objective` in force: of the last generation batch, the
        schedule's first before any (``objective`` is taken by HF Trainer's hyperparameter search).
      rankgrad_schedule: the objective schedule (constant for a string or an Objective).
      last_advantages: ``[B]`` float32 advantages of the last generation batch, all processes (what the
        loss uses, before TRL shuffles and splits the batch), or None before the first batch.
      last_rewards: ``[B]`` the rewards they were computed from (NaN = unscorable).

    Logged into TRL's metrics (``self._metrics[mode]``, averaged per logging step): the dict of
      :func:`rankgrad.metrics.training_metrics` — ``rankgrad/objective`` (mean over groups with >= K
      valid rollouts of the U-statistic of J_K, e.g. pass@K) and ``rankgrad/objective_k`` (the K in
      force), ``rankgrad/max@k`` (unbiased max@k / pass@k of the rewards for k = 1, 2, 4, ..., N),
      ``rankgrad/advantage_mean_abs``, ``rankgrad/advantage_max_abs``, ``rankgrad/frac_zero_advantage``
      (rollouts with a = 0: constant or saturated groups, unscorable, skipped groups),
      ``rankgrad/frac_zero_advantage_groups``, ``rankgrad/frac_constant_groups``,
      ``rankgrad/frac_unscorable`` — and, for a schedule, ``rankgrad/schedule/<field>`` (e.g. ``k``,
      ``mix_weight``). The completions table's ``advantage`` column shows these advantages, not TRL's.

    Raises:
      ValueError: unknown objective/estimator, K >= ``num_generations``,
        ``multi_objective_aggregation="normalize_then_sum"``; at run time NaN rewards with
        ``unscorable="error"`` or small groups with ``small_groups="error"``.
      InputTypeError: ``args`` is not a ``GRPOConfig`` (e.g. an ``AsyncGRPOConfig``: see the module
        docstring); a ``TypeError`` and a ``ValueError``.
      RuntimeError: trl < 1.16, or the private TRL methods/attributes the adapter uses have changed.
    """

    _trl_trainer = GRPOTrainer
    _trl_config = GRPOConfig
    _trl_attributes = (*_ATTRIBUTES, "multi_objective_aggregation")

    def _rankgrad_check_settings(self, settings: Any) -> None:
        """Only TRL's ``"sum_then_normalize"`` aggregation ranks the weighted sum of the raw rewards."""
        aggregation = getattr(settings, "multi_objective_aggregation", "sum_then_normalize")
        if aggregation != "sum_then_normalize":
            raise ValueError(
                f"multi_objective_aggregation={aggregation!r}: RankGradGRPOTrainer "
                "ranks the weighted sum of the raw rewards (TRL's 'sum_then_normalize' aggregation); "
                "per-function group normalisation would change the objective. Use "
                "multi_objective_aggregation='sum_then_normalize' (the default)."
            )


class RankGradRLOOTrainer(_RankGradAdapter, RLOOTrainer):
    """``trl.RLOOTrainer`` whose advantages are rankgrad's L-statistic advantages.

    The same adapter as :class:`RankGradGRPOTrainer` (same arguments, attributes, logged metrics and
    errors; see its docstring): RLOOTrainer computes its leave-one-out advantage r_i − mean_{j≠i} r_j
    inline in ``_generate_and_score_completions`` from the ``[B, F]`` rewards that ``_calculate_rewards``
    gathers across processes, then keeps this process's slice; this subclass replaces that
    ``output["advantages"]`` by ``group_advantages`` of the gathered rewards, sliced the same way.
    ``objective="mean"`` with ``estimator="rloo"`` reproduces RLOO's own advantage.

    RLOO's loss is per sequence (summed log-probabilities, one importance ratio per rollout, mean over
    the local rollouts), so on-policy (``num_iterations=1``) it is exactly −(1/b)·Σ_i a_i log π(y_i):
    a constant times the unbiased Σ_i a_i ∇log π(y_i), with no per-token reweighting to choose.

    RLOO settings the adapter handles:

    * ``reward_clip_range=(lo, hi)``: the weighted reward is clamped to [lo, hi] before ranking, as TRL
      does (the objective is then J_K of the clipped reward).
    * ``beta`` must be 0 (RLOOConfig's default is 0.05): RLOO subtracts β·KL(π‖π_ref) of each rollout
      *from its reward*, which would make rankgrad rank KL-shaped rewards (J_K of r − β·KL, no longer
      e.g. pass@K), and the KL values are not visible to the adapter. Raises ``ValueError``; use
      ``beta=0.0``, or :class:`RankGradGRPOTrainer`, whose ``beta`` is a separate loss term.
    * ``normalize_advantages=True`` (batch-wide standardisation after RLOO's advantage) raises
      ``ValueError``: the advantages are replaced, so it would be silently ignored; ``std_normalize=True``
      is the adapter's (biased, per-group) scaling.

    Example::

        trainer = RankGradRLOOTrainer(model=model, reward_funcs=passes, train_dataset=dataset,
                                      args=RLOOConfig(num_generations=8, beta=0.0, ...),
                                      processing_class=tokenizer, objective="max@4")
    """

    _trl_trainer = RLOOTrainer
    _trl_config = RLOOConfig
    _trl_attributes = (*_ATTRIBUTES, "beta", "normalize_advantages", "reward_clip_range")

    def _rankgrad_check_settings(self, settings: Any) -> None:
        """``beta`` = 0 and ``normalize_advantages`` off (see the class docstring)."""
        beta = getattr(settings, "beta", 0.0)
        if beta != 0.0:
            raise ValueError(
                f"beta={beta}: RLOOTrainer subtracts beta * KL from each rollout's reward, which "
                "would make RankGradRLOOTrainer rank KL-shaped rewards (the objective would no longer be J_K "
                "of the task reward). Use RLOOConfig(beta=0.0, ...) (RLOOConfig's default is 0.05), or "
                "RankGradGRPOTrainer, whose beta is a separate loss term."
            )
        if getattr(settings, "normalize_advantages", False):
            raise ValueError(
                "normalize_advantages=True: RankGradRLOOTrainer replaces RLOO's advantages, so TRL's batch "
                "normalisation would be ignored. Use RLOOConfig(normalize_advantages=False) (the default), "
                "and std_normalize=True for GRPO-style per-group scaling."
            )

    def _rankgrad_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        """TRL's RLOO aggregation: the weighted sum, clamped to ``reward_clip_range`` when it is set."""
        rewards = super()._rankgrad_rewards(rewards_per_func)
        if self.reward_clip_range:
            rewards = rewards.clamp(min=self.reward_clip_range[0], max=self.reward_clip_range[1])
        return rewards

def _config_defaults(config_class: type) -> SimpleNamespace:
    """The default value of each field of a TRL config dataclass (what ``args=None`` gives)."""
    fields = getattr(config_class, "__dataclass_fields__", {})
    defaults = {name: f.default for name, f in fields.items() if f.default is not dataclasses.MISSING}
    return SimpleNamespace(**defaults)


def _bound_config(base: type, args: tuple, kwargs: dict) -> Any:
    """The ``args`` (GRPOConfig / RLOOConfig) argument of a ``base`` trainer call, positional or keyword,
    if given."""
    try:
        bound = inspect.signature(base.__init__).bind_partial(None, *args, **kwargs)
    except TypeError:
        return None  # let GRPOTrainer report the bad call
    return bound.arguments.get("args")
