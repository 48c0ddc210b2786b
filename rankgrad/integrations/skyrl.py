"""SkyRL adapter: rankgrad advantage estimators in SkyRL's ``AdvantageEstimatorRegistry``.

SkyRL (``pip install skyrl``, Python >= 3.12) looks advantage estimators up by name in
``skyrl.backends.skyrl_train.utils.ppo_utils.AdvantageEstimatorRegistry`` and calls them with verl's
signature (``token_level_rewards``, ``response_mask``, ``index``, ``config``, ...). The registry is
shared with SkyRL's Ray workers through a named Ray actor: SkyRL's ``initialize_ray`` pushes every
estimator registered in the launching process, and the workers unpickle them (which imports this
module there, registering the same estimators again, a no-op).

SkyRL's config is a closed dataclass (``trainer.algorithm`` is an ``AlgorithmConfig``; unknown keys are
errors), so the objective is part of the estimator's *name*. Importing this module registers::

    rankgrad_max@2   rankgrad_max@4   rankgrad_max@8   rankgrad_max@16    (pass@K for 0/1 rewards)

and :func:`register` adds any other (name, objective, options)::

    import rankgrad.integrations.skyrl as rg
    rg.register("rankgrad_cvar@8", "cvar:0.25@8")
    rg.register("rankgrad_max@4_zero", "max@4", small_groups="zero")

Use it in the launching script, before SkyRL's ``initialize_ray`` (as SkyRL's own custom-estimator
example does), then select it on the command line::

    trainer.algorithm.advantage_estimator=rankgrad_max@4

What an estimator computes, per batch of B rollouts (``token_level_rewards`` and ``response_mask`` are
``[B, T]``, ``index`` the ``[B]`` prompt uids, a list of strings in SkyRL's trainer)::

    s_b     = Σ_t token_level_rewards[b, t]                          (the outcome score, as SkyRL's GRPO)
    a       = rankgrad.integrations.group_advantages(s, index, objective, ...)              [B]
    A[b, t] = a_b · response_mask[b, t]                              (advantages = returns, [B, T])

With the default options a is exactly ``rankgrad.advantages(s, objective, group_ids=index)``: per group
g of N_g rollouts of one prompt (groups may differ in size), a_i = q_i − v_i, and
(K/N_g)·Σ_{i∈g} a_i ∇log π(y_i) is an unbiased estimate of ∇J_K, with log π(y_i) the *sequence*
log-probability. SkyRL's ``trainer.algorithm.loss_reduction`` decides how token losses are summed:
``seq_mean_token_sum_norm`` divides by a constant (batch size · ``max_seq_len``) and keeps the gradient
unbiased up to scale; ``token_mean`` (SkyRL's default) divides by the mini-batch's token count, a factor
common to its rollouts that varies with their lengths; ``sequence_mean`` reweights each rollout by
1/its length and ``prompt_mean`` each prompt by 1/its token count. SkyRL's ``grpo_norm_by_std`` is
not used (``std_normalize`` is an option here, off by default: it biases the gradient); leave
``advantage_batch_normalize`` and ``zero_variance_filter`` off, they change the advantages after the
estimator. With ``generator.step_wise_trajectories`` SkyRL calls the estimator on the last step of
each trajectory (one score per trajectory, which is the sample) and broadcasts the advantage to the
trajectory's steps.

No maths lives here: it is all in :mod:`rankgrad.integrations`. :func:`self_check` (also
``python -m rankgrad.integrations.skyrl``) runs SkyRL's own ``compute_advantages_and_returns`` on a
hand-computed case.

References: OrderGrad (arXiv 2606.06096), SkyRL (github.com/NovaSky-AI/SkyRL).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

import rankgrad
from rankgrad.integrations import group_advantages, token_advantages
from rankgrad.integrations._check_case import check_case
from rankgrad.integrations._common import check_options

_MISSING = (
    "rankgrad.integrations.skyrl needs SkyRL and PyTorch, but {} is not installed: "
    "pip install 'rankgrad[skyrl]' (Python >= 3.12)"
)
try:
    import torch
except ImportError as _err:
    raise ImportError(_MISSING.format("'torch'")) from _err
if importlib.util.find_spec("skyrl") is None:
    raise ImportError(_MISSING.format("'skyrl'"))

__all__ = [
    "PRESETS",
    "SkyRLEstimator",
    "SkyRLOptions",
    "is_registered",
    "options",
    "register",
    "registered_options",
    "self_check",
]

PRESETS: dict[str, str] = {f"rankgrad_max@{k}": f"max@{k}" for k in (2, 4, 8, 16)}
"""The estimators registered on import: name → objective (default options)."""

_CHECK_NAME = "rankgrad_max@4"

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class SkyRLOptions:
    """What one registered estimator computes (passed on to :func:`group_advantages`).

    Attributes:
      objective: rankgrad preset string, e.g. ``"max@4"`` (pass@4 for 0/1 rewards) or ``"cvar:0.25@8"``.
        Every group needs at least K + 1 rollouts (``generator.n_samples_per_prompt > K``).
      estimator: advantage estimator name (``rankgrad.ESTIMATORS``), default ``"ordergrad"``.
      unscorable: ``"error"`` (default) or ``"zero"``: NaN/inf scores leave their group, advantage 0.
      small_groups: ``"error"`` (default) or ``"zero"``: groups with < K + 1 valid rollouts get 0.
      std_normalize: GRPO-style division by the group reward std + ``eps`` (biased; default False).
      loss_scale: multiply each group by its gradient scale c(N_g, K) (K/N_g for ordergrad), so that
        unequal group sizes weigh as in the unbiased Σ_groups (K/N_g)·Σ_i a_i ∇log π (default False).
      eps: the std offset, a finite number >= 0.
      noise: ``(rho0, rho1)`` verifier flip rates for 0/1 rewards (``rankgrad.noisy``), or None;
        ``(None, rho1)`` = false-positive rate unknown: forward correction, mean objective only.
    """

    objective: str
    estimator: str = "ordergrad"
    unscorable: str = "error"
    small_groups: str = "error"
    std_normalize: bool = False
    loss_scale: bool = False
    eps: float = 1e-6
    noise: tuple[float | None, float] | None = None

    def group_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`rankgrad.integrations.group_advantages` besides the objective."""
        out = asdict(self)
        del out["objective"]
        return out


_KEYS = tuple(f.name for f in fields(SkyRLOptions))


def options(objective: str, **kwargs: Any) -> SkyRLOptions:
    """Check an objective and options and return them as :class:`SkyRLOptions`.

    Args:
      objective: a rankgrad preset string (``"max@4"``, ``"cvar:0.25@8"``, ...).
      **kwargs: any of ``estimator``, ``unscorable``, ``small_groups``, ``std_normalize``,
        ``loss_scale``, ``eps``, ``noise`` (see :class:`SkyRLOptions`).

    Returns:
      The checked options (the objective is parsed once, so typos fail here, not at the first step).

    Example:
      >>> from rankgrad.integrations.skyrl import options
      >>> options("max@4", small_groups="zero").small_groups
      'zero'

    Raises:
      ValueError: unknown keys, wrong types or values; each message names the argument.
    """
    unknown = sorted(set(kwargs) - set(_KEYS[1:]))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; expected some of {list(_KEYS[1:])}.")
    if not isinstance(objective, str) or not objective:
        raise ValueError(f"objective: expected a preset string like 'max@4', got {objective!r}.")
    try:
        obj = rankgrad.parse(objective)
    except ValueError as err:
        raise ValueError(f"objective={objective!r}: {err}") from err
    check_options(kwargs)
    out = SkyRLOptions(objective=objective, **kwargs)
    k = obj.k
    if k < 4096:  # one dry run on a group of K + 1 zeros: estimator/objective/noise combinations
        try:
            zeros = np.zeros(k + 1)
            group_advantages(zeros, zeros.astype(np.int64), obj, **out.group_kwargs())
        except ValueError as err:
            raise ValueError(f"objective={objective!r} with {out.group_kwargs()}: {err}") from err
    return out


# ------------------------------------------------------------------------ estimator
@dataclass(frozen=True)
class SkyRLEstimator:
    """A SkyRL advantage estimator: rankgrad's group advantages of the outcome scores, per token.

    A frozen dataclass (picklable by reference to this module, so SkyRL's Ray registry actor hands the
    same estimator to every worker). Call signature as SkyRL's ``compute_advantages_and_returns``
    calls it.

    Attributes:
      name: the registry name (for error messages).
      options: what it computes.
    """

    name: str
    options: SkyRLOptions

    def __call__(
        self,
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: Any = None,
        **unused: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """s_b = Σ_t token_level_rewards[b, t]; a = group_advantages(s, index, objective, ...);
        advantages[b, t] = returns[b, t] = a_b · response_mask[b, t].

        Args:
          token_level_rewards: ``[B, T]`` float rewards per response token (SkyRL puts an outcome
            reward on the last response token; with ``use_kl_in_reward`` the KL penalty is included).
          response_mask: ``[B, T]`` 1 on response tokens, 0 on padding (bool, or 0/1 ints or floats).
          index: ``[B]`` prompt uids (a list or array of strings or ints; groups may differ in size).
          **unused: what else SkyRL passes (``config``, ``values``, ``gamma``, ``lambd``,
            ``grpo_norm_by_std``); ignored.

        Returns:
          ``(advantages, returns)``, both ``[B, T]`` in ``token_level_rewards``' dtype and device,
          equal, 0 off the response mask.

        Raises:
          ValueError: no index, shape mismatch, groups smaller than K + 1 or non-finite scores
            (unless ``small_groups`` / ``unscorable`` say ``"zero"``), bad mask values.
        """
        where = f"trainer.algorithm.advantage_estimator={self.name!r}"
        if index is None:
            raise ValueError(
                f"{where}: SkyRL passed no index; rankgrad needs the rollouts' prompt uids "
                "(SkyRL's trainer passes data.metadata['uids'])."
            )
        if token_level_rewards.ndim != 2 or tuple(response_mask.shape) != tuple(token_level_rewards.shape):
            raise ValueError(
                f"{where}: expected token_level_rewards and response_mask of equal shape [B, T], got "
                f"{tuple(token_level_rewards.shape)} and {tuple(response_mask.shape)}."
            )
        with torch.no_grad():
            scores = token_level_rewards.sum(dim=-1)
            try:
                adv = group_advantages(scores, index, self.options.objective, **self.options.group_kwargs())
                advantages = token_advantages(adv, response_mask)
            except ValueError as err:
                raise ValueError(f"{where} ({self.options}): {err}") from err
        return advantages, advantages


# ----------------------------------------------------------------------- registration
def _registry() -> Any:
    try:
        from skyrl.backends.skyrl_train.utils.ppo_utils import AdvantageEstimatorRegistry
    except ImportError as err:
        raise ImportError(
            f"rankgrad.integrations.skyrl: skyrl is installed but its advantage-estimator registry "
            f"(skyrl.backends.skyrl_train.utils.ppo_utils) failed to import ({err}); it needs ray, "
            "jaxtyping, loguru, omegaconf and skyrl-gym: pip install 'rankgrad[skyrl]'."
        ) from err
    return AdvantageEstimatorRegistry


def _is_ours(fn: Any) -> bool:
    """True for a :class:`SkyRLEstimator`, also one of a re-imported copy of this module."""
    cls = type(fn)
    return cls is SkyRLEstimator or (
        cls.__qualname__ == SkyRLEstimator.__qualname__ and cls.__module__ == SkyRLEstimator.__module__
    )


def _lookup(name: str) -> Any:
    registry = _registry()
    return registry.get(name) if name in registry.list_available() else None


def registered_options(name: str) -> SkyRLOptions | None:
    """The options of rankgrad estimator ``name`` in SkyRL's registry; None if ``name`` is not
    registered or not rankgrad's."""
    fn = _lookup(name)
    return SkyRLOptions(**asdict(fn.options)) if fn is not None and _is_ours(fn) else None


def is_registered(name: str) -> bool:
    """Whether SkyRL's registry maps ``name`` to a rankgrad estimator."""
    return registered_options(name) is not None


def register(name: str, objective: str, *, replace: bool = False, **kwargs: Any) -> SkyRLEstimator:
    """Register a rankgrad estimator under ``name`` in SkyRL's ``AdvantageEstimatorRegistry``.

    Idempotent: registering the same name with the same objective and options again (in this process,
    from a re-imported copy of this module, or in a Ray worker that already synced it) is a no-op.
    Call it in the script that launches SkyRL, before ``initialize_ray`` (which shares the registry
    with the workers); after it, SkyRL's registry also pushes it to its Ray actor.

    Args:
      name: the ``trainer.algorithm.advantage_estimator`` value, e.g. ``"rankgrad_cvar@8"``.
      objective: a rankgrad preset string (``"max@4"``, ``"cvar:0.25@8"``, ...).
      replace: replace a rankgrad estimator already registered under ``name`` with other options.
      **kwargs: options of :class:`SkyRLOptions` (``estimator``, ``small_groups``, ...).

    Returns:
      The registered :class:`SkyRLEstimator`.

    Example:
      >>> import rankgrad.integrations.skyrl as rg
      >>> rg.register("rankgrad_median@5", "median@5").options.objective
      'median@5'
      >>> rg.is_registered("rankgrad_median@5")
      True

    Raises:
      ValueError: bad name, objective or options; ``name`` taken by another estimator (SkyRL's or
        another package's); ``name`` registered by rankgrad with other options (the message names what
        differs) and ``replace`` is False.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"name: expected a non-empty string without surrounding spaces, got {name!r}.")
    wanted = options(objective, **kwargs)
    registry = _registry()
    existing = _lookup(name)
    if existing is not None and not _is_ours(existing):
        owner = f"{getattr(existing, '__module__', '?')}.{getattr(existing, '__qualname__', repr(existing))}"
        raise ValueError(
            f"SkyRL advantage estimator {name!r} is already registered to {owner}; rankgrad will not replace "
            f"it. Register rankgrad's under another name: "
            f"rankgrad.integrations.skyrl.register('rankgrad_...', {objective!r})."
        )
    if existing is not None:
        have = SkyRLOptions(**asdict(existing.options))
        if have == wanted:
            return existing
        if not replace:
            changed = ", ".join(
                f"{k}: {getattr(have, k)!r} -> {getattr(wanted, k)!r}"
                for k in _KEYS if getattr(have, k) != getattr(wanted, k)
            )
            raise ValueError(
                f"SkyRL advantage estimator {name!r} is already registered by rankgrad with other options "
                f"({changed}). Use another name, or pass replace=True to replace it."
            )
        registry.unregister(name)
    estimator = SkyRLEstimator(name=name, options=wanted)
    registry.register(name, estimator)
    return estimator


def _check_case(fn: Any) -> float:
    return check_case(fn, f"SkyRL estimator {getattr(fn, 'name', fn)!r}")


def self_check(name: str = _CHECK_NAME) -> dict[str, Any]:
    """Check that SkyRL resolves ``name`` to a rankgrad max@4 estimator and that it computes a
    hand-computed case.

    Runs SkyRL's own ``ppo_utils.compute_advantages_and_returns`` (registry lookup included) on a
    13-rollout batch (two uid groups of sizes 8 and 5, 0/1 outcome rewards on the last valid token,
    right-padded responses) and compares with the closed-form binary max@4 advantages (+5/35, −3/35
    for 3 of 8 correct; +1, −1/4 for 1 of 5).

    Args:
      name: a registered rankgrad estimator whose objective is ``max@4`` with default options.

    Returns:
      ``{"name", "skyrl_version", "rankgrad_version", "max_abs_error"}``.

    Raises:
      RuntimeError: not registered, not a default max@4 estimator, or a wrong result.
    """
    import skyrl
    from skyrl.backends.skyrl_train.utils import ppo_utils
    from skyrl.train.config import AlgorithmConfig

    found = registered_options(name)
    if found != SkyRLOptions("max@4"):
        raise RuntimeError(
            f"rankgrad self-check: SkyRL's registry maps {name!r} to {found!r}, not rankgrad's max@4 "
            f"with default options (registered: {_registry().list_available()})."
        )
    config = AlgorithmConfig(advantage_estimator=name)

    def call(**kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return ppo_utils.compute_advantages_and_returns(adv_estimator=name, config=config, **kw)

    err = _check_case(call)
    return {
        "name": name,
        "skyrl_version": getattr(skyrl, "__version__", "?"),
        "rankgrad_version": rankgrad.__version__,
        "max_abs_error": err,
    }


def _register_on_import() -> None:
    """Check the maths on the known case, then register :data:`PRESETS`; failures are logged at ERROR.

    A preset name taken by another estimator is logged, not raised, so that the module stays
    importable for :func:`register` under other names.
    """
    try:
        _check_case(SkyRLEstimator(_CHECK_NAME, SkyRLOptions("max@4")))
    except Exception:
        _log.error("rankgrad: the SkyRL estimators FAILED their self-check; none registered.", exc_info=True)
        raise
    for name, objective in PRESETS.items():
        try:
            register(name, objective)
        except ValueError:
            _log.error("rankgrad: could not register SkyRL advantage estimator %r.", name, exc_info=True)


def _describe(presets: Mapping[str, str]) -> str:
    return ", ".join(f"{k} ({v})" for k, v in presets.items())


if __name__ == "__main__":  # python -m rankgrad.integrations.skyrl: register as an import would, then check
    import json

    from rankgrad.integrations import skyrl as _module  # the importable copy registers the presets

    print(json.dumps(_module.self_check(), indent=2))
    print(f"registered: {_describe(_module.PRESETS)}")
else:
    _register_on_import()
