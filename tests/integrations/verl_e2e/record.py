"""Record what the ``rankgrad`` estimator produced and what verl's policy loss consumed.

Active when ``RANKGRAD_VERL_E2E_RECORD`` names a folder. Each call writes one ``torch.save`` file there,
named ``{kind}-{pid}-{n}.pt``:

- ``estimator``: ``token_level_rewards`` [B, T], ``response_mask`` [B, T], ``uid`` (list of B),
  ``advantages`` [B, T] of the call (the function verl resolves for ``adv_estimator=rankgrad``, wrapped).
- ``loss``: ``advantages`` [b, T] and ``response_mask`` [b, T] of one micro-batch, padded exactly as
  ``verl.workers.utils.losses.ppo_loss`` pads them before the policy loss.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ENV = "RANKGRAD_VERL_E2E_RECORD"
_counter = itertools.count()


def folder() -> Path | None:
    """The record folder, or None when recording is off."""
    path = os.environ.get(ENV, "").strip()
    return Path(path) if path else None


def save(kind: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as ``{kind}-{pid}-{n}.pt`` in the record folder."""
    out = folder()
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{kind}-{os.getpid()}-{next(_counter)}.pt"
    torch.save(payload, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)


def recording_estimator(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> Callable[..., Any]:
    """Wrap a verl advantage estimator so that each call is saved (kind ``estimator``)."""

    @functools.wraps(fn)
    def wrapper(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: Any = None,
                *args: Any, **kwargs: Any):
        adv, ret = fn(token_level_rewards, response_mask, index, *args, **kwargs)
        save("estimator", {
            "token_level_rewards": token_level_rewards.detach().cpu().clone(),
            "response_mask": response_mask.detach().cpu().clone(),
            "uid": [str(u) for u in np.asarray(index, dtype=object).tolist()],
            "advantages": adv.detach().cpu().clone(),
        })
        return adv, ret

    return wrapper


def recording_loss(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``ppo_loss(config, model_output, data, dp_group)`` so that each micro-batch's advantages and
    response mask are saved (kind ``loss``) as the loss reads them."""

    @functools.wraps(fn)
    def wrapper(config: Any, model_output: Any, data: Any, *args: Any, **kwargs: Any):
        padded = data.select("response_mask", "advantages").to_padded_tensor()
        save("loss", {
            "advantages": padded["advantages"].detach().cpu().clone(),
            "response_mask": padded["response_mask"].detach().cpu().clone(),
        })
        return fn(config, model_output, data, *args, **kwargs)

    return wrapper


def install() -> None:
    """Wrap rankgrad's registered estimator and verl's ``ppo_loss`` (no-op when recording is off)."""
    if folder() is None:
        return
    from verl.trainer.ppo import core_algos
    from verl.workers.utils import losses

    import rankgrad.integrations.verl as rv  # registers (and self-checks) the estimator first

    registry = core_algos.ADV_ESTIMATOR_REGISTRY
    if not getattr(registry[rv.NAME], "_verl_e2e", False):
        registry[rv.NAME] = recording_estimator(registry[rv.NAME])
        registry[rv.NAME]._verl_e2e = True
    if not getattr(losses.ppo_loss, "_verl_e2e", False):
        losses.ppo_loss = recording_loss(losses.ppo_loss)
        losses.ppo_loss._verl_e2e = True
        engine_workers = __import__("sys").modules.get("verl.workers.engine_workers")
        if engine_workers is not None:  # imported before us: patch its own reference too
            engine_workers.ppo_loss = losses.ppo_loss
