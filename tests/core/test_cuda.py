"""CUDA: the same numbers on the GPU (skipped where torch sees no GPU, e.g. in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rankgrad

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("spec", ["max@4", "cvar:0.25@8", "median@5", "mean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(spec, dtype):
    rng = np.random.default_rng(0)
    y = torch.tensor(np.round(rng.normal(size=(512, 16)), 1), dtype=dtype)
    mask = torch.tensor(rng.random((512, 16)) < 0.9)
    mask[:, :10] = True
    for kw in ({}, {"mask": mask}):
        cpu = rankgrad.advantages(y, spec, **kw)
        gpu = rankgrad.advantages(y.cuda(), spec, **{k: v.cuda() for k, v in kw.items()})
        assert gpu.device.type == "cuda" and gpu.dtype == dtype
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=tol)
    flat = y.reshape(-1)
    ids = torch.arange(512).repeat_interleave(16)
    np.testing.assert_allclose(
        rankgrad.advantages(flat.cuda(), spec, group_ids=ids.cuda()).cpu().numpy(),
        rankgrad.advantages(y, spec).reshape(-1).numpy(), atol=1e-5,
    )
    v = rankgrad.value(y.cuda().requires_grad_(), spec)
    v.sum().backward()
