"""Noise-corrected objectives for binary rewards from an imperfect verifier (see ``_src/noisy.py``)."""

from rankgrad._src.noisy import advantages, corrected_objective, estimate_rho1, flip_matrix, value

__all__ = ["advantages", "value", "corrected_objective", "flip_matrix", "estimate_rho1"]
