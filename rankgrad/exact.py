"""Exact regime: known discrete reward distributions (arm rewards r, probabilities p).

``value`` is J_K (differentiable: the ground-truth gradient), ``include_one`` the conditional values
q̄_b, ``advantages`` ā_b = q̄_b − J_K, ``order_statistics`` the expected order statistics (top-first).
"""

from rankgrad._src.exact import advantages, include_one, order_statistics, value

__all__ = ["value", "advantages", "include_one", "order_statistics"]
