"""Schedules of K and of mixture weights over training steps, and the objectives built from them.

A *step* is the number of optimiser steps already taken: 0 during the first one (TRL's
``state.global_step``; verl's ``global_steps − 1``). Calling a schedule with a step gives the value in
force then.

Numbers (monotone, exact endpoints, ``end`` from step ``steps`` on):

* :func:`constant`, :func:`linear`, :func:`cosine` — an integer K >= 1 per step (rounded, halves up);
* :func:`constant_weight`, :func:`linear_weight`, :func:`cosine_weight` — a real number per step;
* :func:`from_config` — either kind from a config mapping ``{kind, start, end, steps}`` or a number.

Objectives (callable ``step -> rankgrad.Objective``; both adapters accept them as ``objective``):

* :func:`objective` — a preset template and a schedule per field: ``objective("max@{k}", k=linear(8, 2,
  200))``;
* :func:`mixture` — (1 − λ)·first + λ·second for two objectives of any K (the smaller K is lifted to
  the larger, see :class:`rankgrad.Objective`), λ a weight schedule (e.g. ``"mean"``, i.e. pass@1,
  blended into max@K);
* :func:`as_objective_schedule` — what the adapters call on their ``objective`` argument.

When to anneal K. PKPO (arXiv 2505.15201) trains with a larger K early and lowers it toward the K the
model is deployed with, and reports that this helped in its experiments: a large K rewards a success on
a prompt the policy rarely solves (one success in a group of failures gets a large advantage) and
ignores prompts it already solves, which keeps exploring; a small K then sharpens what is sampled most
often. This is a heuristic, not a result with a guarantee. What does hold: at every step the
advantages are unbiased for the gradient of *that step's* J_K, so an annealed run follows a moving
objective, and its end point is judged by the deployment K. Watch ``rankgrad/frac_zero_advantage``
(:func:`rankgrad.metrics.training_metrics`): with 0/1 rewards and max@K, a group with at least N − K + 1
successes has every advantage exactly 0 (every K-subset already passes), so a large K stops teaching on
easy prompts as accuracy rises; that fraction climbing toward 1 is a sign that K is too large for the
current policy.
"""

from rankgrad._src.schedules import (
    KINDS,
    Mixture,
    ObjectiveSchedule,
    ObjectiveScheduleBase,
    Schedule,
    as_objective_schedule,
    check_step,
    constant,
    constant_weight,
    cosine,
    cosine_weight,
    from_config,
    linear,
    linear_weight,
    mixture,
    objective,
)

__all__ = [
    "KINDS",
    "Mixture",
    "ObjectiveSchedule",
    "ObjectiveScheduleBase",
    "Schedule",
    "as_objective_schedule",
    "check_step",
    "constant",
    "constant_weight",
    "cosine",
    "cosine_weight",
    "from_config",
    "linear",
    "linear_weight",
    "mixture",
    "objective",
]
