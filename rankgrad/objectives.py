"""Objective constructors and the preset-string parser (weights are top-first everywhere).

Limits: presets take K <= ``MAX_K`` (``Objective.from_weights`` takes a vector of any length), L-moments
an order r <= ``MAX_LMOMENT_ORDER``, and ``parse`` a string of at most ``MAX_SPEC_LENGTH`` characters.
"""

from rankgrad._src.objectives import (
    MAX_K,
    MAX_LMOMENT_ORDER,
    MAX_SPEC_LENGTH,
    PRESET_FORMS,
    Objective,
    as_objective,
    best_of_k,
    bottom_mean,
    gini_mean_difference,
    harrell_davis,
    l_moment,
    lower_tail,
    mean,
    median,
    parse,
    quantile,
    rank,
    top_mean,
    trimmed_mean,
    upper_tail,
    winsorized_mean,
    worst_of_k,
)

cvar = lower_tail
max_at = best_of_k
min_at = worst_of_k

__all__ = [
    "MAX_K",
    "MAX_LMOMENT_ORDER",
    "MAX_SPEC_LENGTH",
    "PRESET_FORMS",
    "Objective",
    "as_objective",
    "best_of_k",
    "bottom_mean",
    "cvar",
    "gini_mean_difference",
    "harrell_davis",
    "l_moment",
    "lower_tail",
    "max_at",
    "mean",
    "median",
    "min_at",
    "parse",
    "quantile",
    "rank",
    "top_mean",
    "trimmed_mean",
    "upper_tail",
    "winsorized_mean",
    "worst_of_k",
]
