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

Configuration (a ``rankgrad`` block inside ``algorithm``; with Hydra add it with ``+``)::

    algorithm.adv_estimator=rankgrad
    +algorithm.rankgrad.objective=max@4        # required: any rankgrad preset ("cvar:0.25@8", ...)
    +algorithm.rankgrad.estimator=ordergrad    # optional; any name in rankgrad.ESTIMATORS

Keys (see :class:`VerlOptions`): ``objective`` (required), ``k``, ``estimator``, ``unscorable``,
``small_groups``, ``std_normalize``, ``loss_scale``, ``eps``, ``noise``. Unknown keys are errors.
verl's ``algorithm.norm_adv_by_std_in_grpo`` (default True) is *not* used: std normalisation is
``rankgrad.std_normalize`` (default False), because it biases the gradient.

References: OrderGrad (arXiv 2606.06096), MaxPO (arXiv 2606.06080), verl (HybridFlow, arXiv 2409.19256).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

import rankgrad
from rankgrad.integrations import group_advantages, token_advantages

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
    "options_from_config",
    "register",
    "is_registered",
    "self_check",
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
      objective: rankgrad preset string, e.g. ``"max@4"`` (pass@4 for 0/1 rewards), ``"cvar:0.25@8"``.
        Required. Every group needs at least K + 1 rollouts (``actor_rollout_ref.rollout.n > K``).
      k: optional K appended to an ``objective`` written without one (``objective=max``, ``k=4``).
      estimator: advantage estimator name (``rankgrad.ESTIMATORS``), default ``"ordergrad"``.
      unscorable: ``"error"`` (default) or ``"zero"``: NaN/inf scores leave their group, advantage 0.
      small_groups: ``"error"`` (default) or ``"zero"``: groups with < K + 1 valid rollouts get 0.
      std_normalize: GRPO-style division by the group reward std + ``eps`` (biased; default False).
      loss_scale: multiply each group by its gradient scale c(N_g, K) (K/N_g for ordergrad), so that
        unequal group sizes weigh as in the unbiased Σ_groups (K/N_g)·Σ_i a_i ∇log π (default False).
      eps: the std offset.
      noise: ``[rho0, rho1]`` verifier flip rates for 0/1 rewards (``rankgrad.noisy``), or None;
        ``[null, rho1]`` = false-positive rate unknown: forward correction, mean objective only.
    """

    objective: str
    k: int | None = None
    estimator: str = "ordergrad"
    unscorable: str = "error"
    small_groups: str = "error"
    std_normalize: bool = False
    loss_scale: bool = False
    eps: float = 1e-6
    noise: tuple[float | None, float] | None = None

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
        """``objective`` with ``@k`` appended when ``k`` is given."""
        return self.objective if self.k is None else f"{self.objective}@{self.k}"


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
      The checked :class:`VerlOptions` (the objective string is parsed once to catch typos early).

    Example:
      >>> from rankgrad.integrations.verl import options_from_config
      >>> options_from_config({"rankgrad": {"objective": "max", "k": 4}}).full_objective
      'max@4'
      >>> options_from_config({"rankgrad": {"objective": "cvar:0.25@8", "estimator": "pkpo_sloo"}}).estimator
      'pkpo_sloo'

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
        if "@" in objective:
            raise ValueError(
                f"{_where('k')}={k} given, but {_where('objective')}={objective!r} already names K; "
                "give K once."
            )
    for key in ("std_normalize", "loss_scale"):
        if key in raw and not isinstance(raw[key], bool):
            raise ValueError(f"{_where(key)}: expected true or false, got {raw[key]!r}.")
    for key, allowed in (("unscorable", ("error", "zero")), ("small_groups", ("error", "zero"))):
        if key in raw and raw[key] not in allowed:
            raise ValueError(f"{_where(key)}: expected one of {list(allowed)}, got {raw[key]!r}.")
    if "eps" in raw:
        if isinstance(raw["eps"], bool) or not isinstance(raw["eps"], (int, float)) or raw["eps"] < 0:
            raise ValueError(f"{_where('eps')}: expected a non-negative number, got {raw['eps']!r}.")
        raw["eps"] = float(raw["eps"])
    if raw.get("noise") is not None:
        noise = raw["noise"]
        if not isinstance(noise, (list, tuple)) or len(noise) != 2:
            raise ValueError(
                f"{_where('noise')}: expected [rho0, rho1] ([null, rho1]: false-positive rate unknown, "
                f"forward correction of the mean), got {noise!r}."
            )
        raw["noise"] = (None if noise[0] is None else float(noise[0]), float(noise[1]))
    if "estimator" in raw and not isinstance(raw["estimator"], str):
        got = raw["estimator"]
        raise ValueError(f"{_where('estimator')}: expected a name like 'ordergrad', got {got!r}.")
    options = VerlOptions(**raw)
    try:
        rankgrad.parse(options.full_objective)
    except ValueError as err:
        raise ValueError(f"{_where('objective')}={options.full_objective!r}: {err}") from err
    return options


# ------------------------------------------------------------------------ estimator
def compute_rankgrad_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Any = None,
    **unused: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl advantage estimator: rankgrad's group advantages of the outcome scores, per token.

    s_b = Σ_t token_level_rewards[b, t]; a = group_advantages(s, index, objective, ...) (a_i = q_i − v_i
    per uid group for the default ``ordergrad``); advantages[b, t] = returns[b, t] = a_b · mask[b, t].

    Args:
      token_level_rewards: ``[B, T]`` float rewards per response token (outcome rewards sit on the
        last valid token; with ``use_kl_in_reward`` the per-token KL penalty is included in the sum).
      response_mask: ``[B, T]`` 1 on response tokens, 0 on padding.
      index: ``[B]`` group labels, verl's ``non_tensor_batch["uid"]`` (strings or ints; groups may
        differ in size, e.g. multi-turn or filtered batches).
      config: the ``algorithm`` config holding the ``rankgrad`` block (:func:`options_from_config`).
      **unused: other keyword arguments verl may pass (e.g. ``reward_baselines``); ignored.

    Returns:
      ``(advantages, returns)``, both ``[B, T]`` in ``token_level_rewards``' dtype and device, equal,
      0 off the response mask.

    Raises:
      ValueError: bad or missing config, no ``uid``, shape mismatch, groups smaller than K + 1 or
        non-finite scores (unless ``small_groups`` / ``unscorable`` say ``"zero"``).
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
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        try:
            adv = group_advantages(scores, index, options.full_objective, **options.group_kwargs())
        except ValueError as err:
            raise ValueError(f"adv_estimator={NAME!r} with {_where()}={options}: {err}") from err
        advantages = token_advantages(adv, response_mask)
    return advantages, advantages


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
    """True for this module's estimator, also from a re-imported copy of this module."""
    return fn is compute_rankgrad_advantage or (
        getattr(fn, "__qualname__", None) == compute_rankgrad_advantage.__qualname__
        and getattr(fn, "__module__", None) == compute_rankgrad_advantage.__module__
    )


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
    if existing is compute_rankgrad_advantage:
        return existing
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


# The known case: max@4, 0/1 rewards, two groups of different sizes. For c correct out of N
# (docs/math.md, "Binary rewards, max@K"): a_correct = C(N−c, K)/C(N−1, K),
# a_wrong = C(N−c−1, K)/C(N−1, K) − C(N−c−1, K−1)/C(N−1, K−1).
# N=8, c=3: +5/35, −3/35.  N=5, c=1: +1, −1/4.
_CHECK_REWARDS = [1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0]
_CHECK_UIDS = ["a"] * 8 + ["b"] * 5
_CHECK_EXPECTED = [5 / 35, -3 / 35, -3 / 35, 5 / 35, -3 / 35, -3 / 35, 5 / 35, -3 / 35, -1 / 4, 1.0, -1 / 4,
                   -1 / 4, -1 / 4]


def self_check(name: str = NAME) -> dict[str, Any]:
    """Check that verl resolves ``name`` to rankgrad and that it computes a hand-computed case.

    Looks the estimator up through verl's own ``core_algos.get_adv_estimator_fn`` and runs it on a
    13-rollout batch (two uid groups of sizes 8 and 5, 0/1 outcome rewards on the last valid token,
    right-padded responses) with ``objective="max@4"``; compares with the closed-form binary max@K
    advantages (+5/35, −3/35 for 3 of 8 correct; +1, −1/4 for 1 of 5).

    Args:
      name: the registered estimator name to check.

    Returns:
      ``{"name", "verl_version", "rankgrad_version", "max_abs_error"}``.

    Raises:
      RuntimeError: not registered, or a wrong result (the message says which).
    """
    import verl

    core_algos = _core_algos()
    try:
        fn = core_algos.get_adv_estimator_fn(name)
    except ValueError as err:
        raise RuntimeError(f"rankgrad self-check: verl does not know adv_estimator={name!r}: {err}") from err
    if not _is_ours(fn):
        raise RuntimeError(f"rankgrad self-check: adv_estimator={name!r} resolves to {fn!r}, not rankgrad's.")
    b, t = len(_CHECK_REWARDS), 5
    lengths = torch.tensor([1 + i % t for i in range(b)])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(torch.int64)
    rewards = torch.zeros(b, t, dtype=torch.float32)
    rewards[torch.arange(b), lengths - 1] = torch.tensor(_CHECK_REWARDS, dtype=torch.float32)
    uids = np.array(_CHECK_UIDS, dtype=object)
    config = {CONFIG_KEY: {"objective": "max@4"}}
    adv, ret = fn(token_level_rewards=rewards, response_mask=mask, index=uids, config=config)
    want = torch.tensor(_CHECK_EXPECTED, dtype=torch.float32)[:, None] * mask
    if tuple(adv.shape) != (b, t) or adv.dtype != torch.float32 or not torch.equal(adv, ret):
        raise RuntimeError(
            f"rankgrad self-check: expected equal float32 advantages and returns of shape {(b, t)}, got "
            f"{tuple(adv.shape)} {adv.dtype} and {tuple(ret.shape)} {ret.dtype}."
        )
    err = float((adv - want).abs().max())
    if not err <= 1e-6:
        raise RuntimeError(f"rankgrad self-check: max@4 advantages off by {err:.3g} from the closed form.")
    return {
        "name": name,
        "verl_version": getattr(verl, "__version__", "?"),
        "rankgrad_version": rankgrad.__version__,
        "max_abs_error": err,
    }


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


if __name__ == "__main__":  # python -m rankgrad.integrations.verl: load as verl would, then check
    import json

    from rankgrad.integrations import verl as _plugin  # the importable copy registers itself

    print(json.dumps(_plugin.self_check(), indent=2))
else:
    _register_on_import()
