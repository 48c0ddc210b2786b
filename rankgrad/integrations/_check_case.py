"""The known case that the estimator-registry adapters (verl, SkyRL) check themselves with.

max@4 on 0/1 rewards in two uid groups of different sizes (8 and 5), each rollout's reward on the last
valid token of a right-padded ``[B, T]`` response. For c correct out of N (docs/math.md, "Binary
rewards, max@K"): a_correct = C(N−c, K)/C(N−1, K), a_wrong = C(N−c−1, K)/C(N−1, K) −
C(N−c−1, K−1)/C(N−1, K−1); N=8, c=3: +5/35, −3/35; N=5, c=1: +1, −1/4.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["REWARDS", "UIDS", "EXPECTED", "check_case"]

REWARDS = [1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0]
UIDS = ["a"] * 8 + ["b"] * 5
EXPECTED = [5 / 35, -3 / 35, -3 / 35, 5 / 35, -3 / 35, -3 / 35, 5 / 35, -3 / 35, -1 / 4, 1.0, -1 / 4, -1 / 4,
            -1 / 4]


def check_case(
    fn: Callable[..., Any], label: str, *, index: Callable[[list], Any] = list, **extra: Any
) -> float:
    """Run ``fn(token_level_rewards=[B, T], response_mask=[B, T], index=uids, **extra)`` (verl's and
    SkyRL's estimator signature) on the known case and return the max error against the closed form.

    Args:
      fn: the estimator as the framework's registry returns it (rankgrad's, or a wrapper around it).
      label: what ``fn`` is, for the messages (e.g. ``"adv_estimator='rankgrad' (resolved to ...)"``).
      index: builds the uid container the framework passes (a list; verl: an object array).
      extra: further keyword arguments of the framework's call (verl: ``config``).

    Raises:
      RuntimeError: ``fn`` failed on the case, returned the wrong shape/dtype, advantages and returns
        that differ, or advantages more than 1e-6 off the closed form.
    """
    b, t = len(REWARDS), 5
    lengths = torch.tensor([1 + i % t for i in range(b)])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(torch.int64)
    rewards = torch.zeros(b, t, dtype=torch.float32)
    rewards[torch.arange(b), lengths - 1] = torch.tensor(REWARDS, dtype=torch.float32)
    try:
        adv, ret = fn(token_level_rewards=rewards, response_mask=mask, index=index(UIDS), **extra)
    except Exception as err:
        raise RuntimeError(
            f"rankgrad self-check: {label} failed on the check case ({type(err).__name__}: {err}); is it "
            "rankgrad's estimator (or a wrapper around it)?"
        ) from err
    want = torch.tensor(EXPECTED, dtype=torch.float32)[:, None] * mask
    if tuple(adv.shape) != (b, t) or adv.dtype != torch.float32 or not torch.equal(adv, ret):
        raise RuntimeError(
            f"rankgrad self-check: {label}: expected equal float32 advantages and returns of shape {(b, t)}, "
            f"got {tuple(adv.shape)} {adv.dtype} and {tuple(ret.shape)} {ret.dtype}."
        )
    off = float((adv - want).abs().max())
    if not off <= 1e-6:
        raise RuntimeError(
            f"rankgrad self-check: {label}: max@4 advantages off by {off:.3g} from the closed form."
        )
    return off
