"""K and weight schedules against their definitions (exact rationals, the cosine formula), objective
templates and mixtures against brute-force enumeration, and every validation error."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rankgrad
from rankgrad import schedules as S
from rankgrad._src.errors import InputTypeError
from tests import brute

STEPS = st.integers(1, 400)
KS = st.integers(1, 64)


def _half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


# ------------------------------------------------------------------------------ K schedules
@settings(max_examples=150, deadline=None)
@given(KS, KS, STEPS)
def test_linear_k_is_the_rounded_line_exact_at_the_ends_and_monotone(start, end, steps):
    s = S.linear(start, end, steps)
    ts = range(0, steps + 3)
    got = [s(t) for t in ts]
    assert all(isinstance(k, int) for k in got)
    want = [_half_up(start + Fraction((end - start) * min(t, steps), steps)) for t in ts]
    assert got == want
    assert got[0] == start and got[steps] == end and got[-1] == end
    d = np.diff(got)
    assert (d <= 0).all() if end <= start else (d >= 0).all()


@settings(max_examples=150, deadline=None)
@given(KS, KS, STEPS)
def test_cosine_k_rounds_the_half_cosine_exact_at_the_ends_and_monotone(start, end, steps):
    s = S.cosine(start, end, steps)
    got = [s(t) for t in range(0, steps + 3)]
    assert got[0] == start and got[steps] == end and got[-1] == end
    for t, k in enumerate(got[: steps + 1]):
        x = end + (start - end) * (1 + math.cos(math.pi * t / steps)) / 2
        assert isinstance(k, int) and abs(k - x) <= 0.5 + 1e-9
    d = np.diff(got)
    assert (d <= 0).all() if end <= start else (d >= 0).all()


def test_k_schedules_by_hand():
    assert [S.linear(8, 2, 6)(t) for t in range(8)] == [8, 7, 6, 5, 4, 3, 2, 2]
    # 8 − 6·t/4 = 8, 6.5, 5, 3.5, 2: halves round up
    assert [S.linear(8, 2, 4)(t) for t in range(5)] == [8, 7, 5, 4, 2]
    assert [S.linear(2, 8, 4)(t) for t in range(5)] == [2, 4, 5, 7, 8]
    # cos at quarter points: 8 − 6·(1 − cos(π t / 4))/2 = 8, 7.12, 5, 2.88, 2
    assert [S.cosine(8, 2, 4)(t) for t in range(5)] == [8, 7, 5, 3, 2]
    assert S.constant(4)(0) == S.constant(4)(10**9) == 4
    assert S.linear(np.int64(8), 2, np.int32(3))(np.int64(3)) == 2  # numpy integers are integers


# ------------------------------------------------------------------------- weight schedules
@settings(max_examples=150, deadline=None)
@given(st.floats(-2, 2), st.floats(-2, 2), STEPS, st.sampled_from(["linear", "cosine"]))
def test_weight_schedules_exact_ends_monotone_and_on_the_curve(start, end, steps, kind):
    s = (S.linear_weight if kind == "linear" else S.cosine_weight)(start, end, steps)
    got = np.array([s(t) for t in range(0, steps + 3)])
    assert got[0] == start and got[steps] == end and got[-1] == end
    d = np.diff(got)
    assert (d <= 0).all() if end <= start else (d >= 0).all()
    for t in range(steps + 1):
        p = t / steps if kind == "linear" else (1 - math.cos(math.pi * t / steps)) / 2
        assert abs(got[t] - (start + (end - start) * p)) <= 1e-12


def test_weights_by_hand():
    assert [S.linear_weight(0.0, 1.0, 4)(t) for t in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert S.cosine_weight(1.0, 0.0, 2)(1) == pytest.approx(0.5, abs=1e-15)
    assert S.constant_weight(0.3)(7) == 0.3


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "make, err, match",
    [
        (lambda: S.linear(8, 2, 0), ValueError, r"^steps: expected steps >= 1"),
        (lambda: S.linear(8, 2, -5), ValueError, r"^steps: expected steps >= 1"),
        (lambda: S.cosine(8, 2, 10.0), InputTypeError, r"^steps: expected a positive integer"),
        (lambda: S.linear(0, 2, 10), ValueError, r"^start: expected K >= 1, got 0"),
        (lambda: S.linear(8, -1, 10), ValueError, r"^end: expected K >= 1"),
        (lambda: S.linear(8.0, 2, 10), InputTypeError, r"^start: expected an integer K"),
        (lambda: S.linear(8, 2.5, 10), InputTypeError, r"^end: expected an integer K"),
        (lambda: S.constant(True), InputTypeError, r"^start: expected an integer K"),
        (lambda: S.constant("4"), InputTypeError, r"^start: expected an integer K"),
        (lambda: S.linear_weight(0.0, float("nan"), 10), ValueError, r"^end: expected a finite number"),
        (lambda: S.linear_weight("a", 1.0, 10), InputTypeError, r"^start: expected a real number"),
        (lambda: S.linear(8, 2, 10)(-1), ValueError, r"^step: expected a step >= 0"),
        (lambda: S.linear(8, 2, 10)(1.0), InputTypeError, r"^step: expected an integer"),
        (lambda: S.linear(8, 2, 10)(True), InputTypeError, r"^step: expected an integer"),
        (lambda: S.Schedule("exp", 8, 2, 10, True), ValueError, r"^kind: expected one of"),
        (lambda: S.Schedule("constant", 8, 2, 10, True), ValueError, r"^end: a constant schedule"),
    ],
)
def test_bad_schedules_name_the_argument(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_from_config():
    s = S.from_config({"kind": "linear", "start": 8, "end": 2, "steps": 100}, arg="k_schedule")
    assert s == S.linear(8, 2, 100)
    assert S.from_config({"kind": "cosine", "start": 0.0, "end": 0.5, "steps": 10}, integer=False) == \
        S.cosine_weight(0.0, 0.5, 10)
    assert S.from_config(4) == S.constant(4)
    assert S.from_config({"kind": "constant", "value": 3}) == S.constant(3)
    assert S.from_config(0.25, integer=False) == S.constant_weight(0.25)
    cases = [
        ({"kind": "linear", "start": 8, "end": 2}, ValueError, r"k_schedule: kind 'linear' takes exactly.*"
                                                                r"missing \['steps'\]"),
        ({"kind": "linear", "start": 8, "end": 2, "steps": 9, "value": 3}, ValueError,
         r"not used \['value'\]"),
        ({"kind": "step", "start": 8}, ValueError, r"k_schedule\.kind: expected one of"),
        ({"kind": "linear", "start": 8, "end": 2, "step": 9}, ValueError, r"unknown key\(s\) \['step'\]"),
        ({"kind": "linear", "start": 8, "end": 2, "steps": 0}, ValueError, r"^k_schedule\.steps: expected"),
        ({"kind": "linear", "start": 8.5, "end": 2, "steps": 9}, InputTypeError, r"^k_schedule\.start:"),
        (2.5, InputTypeError, r"^k_schedule: expected a number or a mapping"),
        (0, ValueError, r"^k_schedule: start: expected K >= 1"),
        ("linear", InputTypeError, r"^k_schedule: expected a number or a mapping"),
        (S.linear_weight(0.0, 1.0, 3), ValueError, r"^k_schedule: expected an integer \(K\) schedule"),
    ]
    for spec, err, match in cases:
        with pytest.raises(err, match=match):
            S.from_config(spec, arg="k_schedule")


# ----------------------------------------------------------------------- objective schedules
def test_objective_template_follows_its_fields():
    s = S.objective("max@{k}", k=S.linear(8, 2, 6))
    assert [s(t).name for t in range(8)] == ["max@8", "max@7", "max@6", "max@5", "max@4", "max@3", "max@2",
                                             "max@2"]
    assert s(3) == rankgrad.parse("max@5") and s.values(3) == {"k": 5} and s.spec(3) == "max@5"
    assert s.horizon == 6 and s.k_range() == (2, 8)
    q = S.objective("cvar:{q}@{k}", q=S.linear_weight(0.5, 0.25, 4), k=8)
    assert q(0) == rankgrad.parse("cvar:0.5@8") and q(4) == rankgrad.parse("cvar:0.25@8")
    assert q.values(2) == {"q": 0.375, "k": 8}


@pytest.mark.parametrize(
    "make, err, match",
    [
        (lambda: S.objective("max@{k}"), ValueError, r"^template: 'max@\{k\}' has fields \['k'\]; missing"),
        (lambda: S.objective("max@4", k=2), ValueError, r"for fields it does not have: \['k'\]"),
        (lambda: S.objective("maxx@{k}", k=2), ValueError, r"objective schedule 'maxx@\{k\}' at step 0"),
        (lambda: S.objective("max@{k:d}", k=2), ValueError, r"^template: template fields are plain names"),
        (lambda: S.objective("max@{k", k=2), ValueError, r"^template: not a valid template"),
        (lambda: S.objective(4), InputTypeError, r"^template: expected a preset string"),
        (lambda: S.objective("top:{m}@{k}", m=3, k=2), ValueError, r"'top:\{m\}@\{k\}' at step 0"),
    ],
)
def test_bad_templates(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_mixture_value_is_the_blend_of_brute_force_values():
    """value(mixture(t)) = (1 − λ)·(brute max@4) + λ·(brute mean@4): linearity in the weights."""
    rng = np.random.default_rng(3)
    y = rng.normal(size=7)
    lam = S.linear_weight(0.0, 0.5, 4)
    s = S.mixture(S.objective("max@{k}", k=S.constant(4)), "mean@4", lam)
    w_max, w_mean = np.array([1.0, 0, 0, 0]), np.full(4, 0.25)
    for t in range(6):
        want = (1 - lam(t)) * brute.batch_value(y, w_max) + lam(t) * brute.batch_value(y, w_mean)
        assert float(rankgrad.value(y, s(t))) == pytest.approx(want, abs=1e-12)
        assert s.values(t) == {"k": 4, "mix_weight": lam(t)}
    assert s(0) == rankgrad.parse("max@4") and s.horizon == 4


def test_mixture_errors():
    with pytest.raises(ValueError, match=r"^second: advantages need an integer K"):
        S.mixture("max@4", "max@2.5", 0.5)
    with pytest.raises(ValueError, match=r"^weight: the mixture weight must stay within \[0, 1\]"):
        S.mixture("max@4", "mean@4", S.linear_weight(0.0, 1.5, 10))
    with pytest.raises(ValueError, match=r"^weight: expected a real-valued schedule"):
        S.mixture("max@4", "mean@4", S.linear(1, 2, 10))
    with pytest.raises(ValueError, match=r"^first: .*is a template"):
        S.mixture("max@{k}", "mean@4", 0.5)


def test_as_objective_schedule():
    fixed = S.as_objective_schedule("max@4")
    assert fixed(0) == fixed(123) == rankgrad.parse("max@4") and fixed.k_range() == (4, 4)
    obj = rankgrad.parse("cvar:0.25@8")
    assert S.as_objective_schedule(obj)(5) is obj
    s = S.objective("max@{k}", k=S.linear(4, 2, 2))
    assert S.as_objective_schedule(s) is s
    fn = S.as_objective_schedule(lambda step: "max@2" if step < 10 else rankgrad.parse("max@3"))
    assert fn(3).k == 2 and fn(10).k == 3 and fn.k_range() == (2, 2)
    with pytest.raises(ValueError, match=r"^objective: 'max@\{k\}' is a template"):
        S.as_objective_schedule("max@{k}")
    with pytest.raises(ValueError, match=r"^objective: advantages need an integer K"):
        S.as_objective_schedule("max@2.5")
    with pytest.raises(InputTypeError, match=r"^objective: expected a preset string"):
        S.as_objective_schedule(4)
    with pytest.raises(InputTypeError, match=r"^objective: a schedule callable must return"):
        S.as_objective_schedule(lambda step: 4)(0)
    with pytest.raises(ValueError, match=r"^objective: advantages need an integer K, the schedule gave"):
        S.as_objective_schedule(lambda step: "max@1.5")(0)
    with pytest.raises(ValueError, match=r"^objective: the schedule returned 'nope@2' at step 0"):
        S.as_objective_schedule(lambda step: "nope@2")(0)
    with pytest.raises(ValueError, match=r"^step: expected a step >= 0"):
        fixed(-1)
