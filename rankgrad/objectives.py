"""Objective constructors and the preset-string parser (weights are top-first everywhere)."""

from rankgrad._src.objectives import (
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
