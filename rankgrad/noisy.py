"""Noise-corrected objectives for binary rewards from an imperfect verifier (see ``_src/noisy.py``)."""

from rankgrad._src.noisy import (
    advantages,
    backward_rewards,
    corrected_objective,
    estimate_rho1,
    flip_matrix,
    forward_advantages,
    value,
)

__all__ = [
    "advantages", "value", "corrected_objective", "flip_matrix", "estimate_rho1", "backward_rewards",
    "forward_advantages",
]
