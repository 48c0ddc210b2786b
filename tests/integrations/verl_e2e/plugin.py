"""Loaded by ``import verl`` in every process (``VERL_USE_EXTERNAL_MODULES=verl_e2e.plugin``).

Registers the CPU platform (``VERL_PLATFORM=cpu``), the ``hf`` async rollout, a gloo-only default
process group, and (with ``RANKGRAD_VERL_E2E_RECORD``) the recorders of :mod:`verl_e2e.record`.
"""

from __future__ import annotations

import functools

import torch.distributed as dist
from verl.plugin.platform.platform_manager import PlatformRegistry

from . import record
from .cpu_platform import PlatformCPU, shim_torch_cpu


def _gloo_only(init: callable) -> callable:
    """verl asks for ``cpu:gloo,{device}:{backend}``; with device cpu that is ``cpu:gloo,cpu:gloo``, which
    torch rejects (one backend per device). Map it to plain ``gloo``."""

    @functools.wraps(init)
    def wrapper(*args, **kwargs):
        backend = kwargs.get("backend", args[0] if args else None)
        if isinstance(backend, str) and {b.strip() for b in backend.split(",")} <= {"cpu:gloo", "gloo"}:
            if args:
                args = ("gloo", *args[1:])
            else:
                kwargs["backend"] = "gloo"
        return init(*args, **kwargs)

    wrapper._verl_e2e = True
    return wrapper


def _load_hf_replica() -> type:
    from .hf_rollout import HFReplica

    return HFReplica


def register_hf_rollout() -> None:
    """Register ``rollout.name=hf`` (async) in verl's rollout and replica registries. By name only: the
    Ray actors that import :mod:`verl_e2e.hf_rollout` first reach this module through ``import verl``."""
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    _ROLLOUT_REGISTRY[("hf", "async")] = f"{__package__}.hf_rollout.HFServerAdapter"
    RolloutReplicaRegistry.register("hf", _load_hf_replica)


def install() -> None:
    """Everything above, idempotent."""
    shim_torch_cpu()
    PlatformRegistry.register(platform="cpu")(PlatformCPU)
    if not getattr(dist.init_process_group, "_verl_e2e", False):
        dist.init_process_group = _gloo_only(dist.init_process_group)
    register_hf_rollout()
    record.install()


install()
