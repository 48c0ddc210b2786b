"""The token-level batch the registry adapters' tests (verl, SkyRL) feed their framework: groups of
rollouts with right-padded responses, the reward on each response's last valid token.

A helper module (the leading underscore keeps it out of collection): each test wraps it in its
framework's container (verl's DataProto, SkyRL's tensors + uid list).
"""

from __future__ import annotations

import numpy as np

SIZES = (6, 9, 5, 11, 7)  # rollouts per prompt: unequal, as after filtering or in multi-turn batches
T = 7  # response length (padded)


def token_batch(
    sizes: tuple[int, ...] = SIZES, seed: int = 0, dense: bool = False, nan_rows: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(token_level_rewards [B, T] float32, response_mask [B, T] int64, uids [B] object array of str).

    Groups are interleaved (as after verl's balance_batch); rewards are in {0, 0.5, 1} (many ties);
    ``dense`` adds a small per-token term (e.g. a KL penalty folded into the rewards); ``nan_rows`` get
    a NaN reward.
    """
    rng = np.random.default_rng(seed)
    uids = np.array([f"prompt-{g}" for g, n in enumerate(sizes) for _ in range(n)], dtype=object)
    uids = uids[rng.permutation(uids.size)]
    b = uids.size
    lengths = rng.integers(1, T + 1, size=b)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    rewards = np.zeros((b, T), np.float32)
    rewards[np.arange(b), lengths - 1] = rng.integers(0, 3, size=b) / 2
    if dense:
        rewards += (rng.normal(size=(b, T)) * 0.1 * mask).astype(np.float32)
    for row in nan_rows:
        rewards[row, lengths[row] - 1] = np.nan
    return rewards, mask, uids
