"""Objective constructors and the preset-string parser (weights are top-first everywhere).

Presets are listed once, in :data:`PRESETS` (name → :class:`Preset`: aliases, parameter and its range,
constructor, an example and a one-line help); the parser, :data:`PRESET_FORMS`, ``rankgrad objectives``
and :func:`presets_markdown` (the docs table) are generated from it. Objectives combine across K:
``0.5 * mean() + 0.5 * best_of_k(8)`` or ``parse("0.5*mean + 0.5*max@8")`` (see :class:`Objective`).

Limits: presets take K <= ``MAX_K`` (``Objective.from_weights`` takes a vector of any length), L-moments
an order r <= ``MAX_LMOMENT_ORDER``, and ``parse`` a string of at most ``MAX_SPEC_LENGTH`` characters.
"""

from rankgrad._src.objectives import (
    MAX_K,
    MAX_LMOMENT_ORDER,
    MAX_SPEC_LENGTH,
    PRESET_FORMS,
    PRESETS,
    Objective,
    Preset,
    PresetParam,
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
    preset_terms,
    presets_markdown,
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
    "PRESETS",
    "Objective",
    "Preset",
    "PresetParam",
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
    "preset_terms",
    "presets_markdown",
    "quantile",
    "rank",
    "top_mean",
    "trimmed_mean",
    "upper_tail",
    "winsorized_mean",
    "worst_of_k",
]
