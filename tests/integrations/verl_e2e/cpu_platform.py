"""A CPU platform for verl 0.9.1 (``VERL_PLATFORM=cpu``): device "cpu", gloo, no-op memory calls.

verl resolves every device question through ``verl.plugin.platform.get_platform()``; 0.9.1 registers only
CUDA, ROCm and NPU, so ``trainer.device=cpu`` falls back to CUDA. The Ray resource stays ``GPU``: the run
declares one logical GPU (``+ray_kwargs.ray_init.num_gpus=1``) so that verl's resource pools can be placed.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase

_BIG = 1 << 40  # bytes "free" / "total" reported by mem_get_info


def _zero(*_args: Any, **_kwargs: Any) -> int:
    return 0


def _none(*_args: Any, **_kwargs: Any) -> None:
    return None


def shim_torch_cpu() -> ModuleType:
    """Give ``torch.cpu`` the CUDA memory / RNG calls verl makes on its device module (missing ones only).

    Returns: ``torch.cpu``, with memory_allocated & co returning 0, mem_get_info (2^40, 2^40), empty_cache
    and friends doing nothing, and the RNG calls mapped to the CPU generator.
    """
    mod = torch.cpu
    defaults = {
        "memory_allocated": _zero, "memory_reserved": _zero, "max_memory_allocated": _zero,
        "max_memory_reserved": _zero, "reset_peak_memory_stats": _none, "reset_max_memory_allocated": _none,
        "empty_cache": _none, "ipc_collect": _none, "set_device": _none,
        "mem_get_info": lambda *_a, **_k: (_BIG, _BIG),
        "memory_stats": lambda *_a, **_k: {},
        "manual_seed": torch.manual_seed, "manual_seed_all": torch.manual_seed,
        "get_rng_state": torch.get_rng_state, "set_rng_state": torch.set_rng_state,
        "is_available": lambda: True,
    }
    for name, fn in defaults.items():
        if not hasattr(mod, name):
            setattr(mod, name, fn)
    return mod


class PlatformCPU(PlatformBase):
    """verl platform for processes without an accelerator: every tensor stays on ``"cpu"``."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return shim_torch_cpu()

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return False  # selected only through VERL_PLATFORM=cpu, never auto-detected

    def current_device(self) -> str:  # type: ignore[override]
        return "cpu"  # verl calls model.to(current_device()): an index would mean cuda:0

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
