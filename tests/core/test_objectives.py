"""Objectives: each preset, applied to exactly K values (N = K, so the U-statistic is the statistic
itself), equals an independent implementation (NumPy / SciPy); parser forms and errors."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from scipy import stats
from scipy.stats import mstats

import rankgrad
from rankgrad import objectives as O


def _on_sample(spec, x):
    return float(rankgrad.value(np.asarray(x, dtype=float), spec))


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 13])
def test_presets_equal_reference_statistics(k):
    rng = np.random.default_rng(k)
    for _ in range(5):
        x = rng.normal(size=k)
        assert _on_sample(f"max@{k}", x) == pytest.approx(x.max(), abs=1e-12)
        assert _on_sample(f"min@{k}", x) == pytest.approx(x.min(), abs=1e-12)
        assert _on_sample(f"median@{k}", x) == pytest.approx(np.median(x), abs=1e-12)
        assert _on_sample("mean", x[:1]) == pytest.approx(x[0], abs=1e-12)
        assert _on_sample(f"mean@{k}", x) == pytest.approx(x.mean(), abs=1e-12)
        for q in (0.0, 0.1, 0.25, 0.5, 0.77, 1.0):
            assert _on_sample(f"quantile:{q}@{k}", x) == pytest.approx(np.quantile(x, q), abs=1e-12)
        for r in range(1, k + 1):
            assert _on_sample(f"rank:{r}@{k}", x) == pytest.approx(np.sort(x)[::-1][r - 1], abs=1e-12)
        for m in range(1, k + 1):
            assert _on_sample(f"top:{m}@{k}", x) == pytest.approx(np.sort(x)[-m:].mean(), abs=1e-12)
            assert _on_sample(f"bottom:{m}@{k}", x) == pytest.approx(np.sort(x)[:m].mean(), abs=1e-12)
        for m in range(0, (k - 1) // 2 + 1):
            assert _on_sample(f"trim:{m}@{k}", x) == pytest.approx(
                stats.trim_mean(x, m / k) if m else x.mean(), abs=1e-12)
            w = np.asarray(mstats.winsorize(x, limits=(m / k, m / k)))
            assert _on_sample(f"winsor:{m}@{k}", x) == pytest.approx(w.mean(), abs=1e-12)
        if k >= 2:
            gmd = np.mean([abs(a - b) for a, b in itertools.permutations(x, 2)])
            assert _on_sample(f"gini@{k}", x) == pytest.approx(gmd, abs=1e-12)
            assert _on_sample(f"lmoment:2@{k}", x) == pytest.approx(gmd / 2, abs=1e-12)
        if k >= 3:
            for q in (0.1, 0.5, 0.9):
                hd = float(mstats.hdquantiles(x, prob=[q])[0])
                assert _on_sample(f"hd:{q}@{k}", x) == pytest.approx(hd, abs=1e-10)


def test_l_moments_are_unbiased_for_population_l_moments():
    """E[l_r over K uniform draws] = λ_r of U(0,1): 1/2, 1/6, 0, 0 (exact regime on a fine grid
    gives the discrete-uniform analogue; brute force over all K-subsets of a grid equals it)."""
    grid = np.linspace(0, 1, 201)
    p = np.full(grid.size, 1 / grid.size)
    for r, lam in [(1, 0.5), (2, 1 / 6), (3, 0.0), (4, 0.0)]:
        v = float(rankgrad.exact.value(grid, p, f"lmoment:{r}@6"))
        assert v == pytest.approx(lam, abs=2e-3)


def test_tail_counts_and_tolerance():
    assert np.count_nonzero(O.lower_tail(0.25, 8).weights) == 2
    assert np.count_nonzero(O.lower_tail(0.3, 10).weights) == 3  # 0.3·10 = 3.0000000000000004
    assert np.count_nonzero(O.lower_tail(0.31, 10).weights) == 4
    assert np.count_nonzero(O.lower_tail(0.01, 10).weights) == 1
    assert np.count_nonzero(O.upper_tail(0.7, 10).weights) == 7  # 0.7·10 = 7.000000000000001
    cvar = rankgrad.parse("cvar:0.25@8").weights
    np.testing.assert_array_equal(cvar, [0, 0, 0, 0, 0, 0, 0.5, 0.5])  # top-first: bottom ranks last


def test_parser_forms_and_constructors_agree():
    pairs = {
        "max@4": O.best_of_k(4), "pass@4": O.best_of_k(4), "min@3": O.worst_of_k(3),
        "median@5": O.median(5), "rank:2@5": O.rank(2, 5), "top:2@5": O.top_mean(2, 5),
        "bottom:2@5": O.bottom_mean(2, 5), "upper:0.4@5": O.upper_tail(0.4, 5),
        "cvar:0.4@5": O.lower_tail(0.4, 5), "lower:0.4@5": O.cvar(0.4, 5),
        "quantile:0.3@5": O.quantile(0.3, 5), "var:0.3@5": O.quantile(0.3, 5),
        "trim:1@5": O.trimmed_mean(1, 5), "winsor:1@5": O.winsorized_mean(1, 5),
        "hd:0.5@5": O.harrell_davis(0.5, 5), "gini@5": O.gini_mean_difference(5),
        "lmoment:3@5": O.l_moment(3, 5), "mean": O.mean(), " MAX@4 ": O.best_of_k(4),
    }
    for spec, obj in pairs.items():
        assert rankgrad.parse(spec) == obj, spec
        assert hash(rankgrad.parse(spec)) == hash(obj)
    # every registered name and alias is covered above: a new preset needs its constructor pair here
    heads = {spec.strip().lower().split("@")[0].split(":")[0] for spec in pairs}
    assert heads == {n for p in O.PRESETS.values() for n in (p.name, *p.aliases)}
    assert O.best_of_k(2.5).weights is None and O.best_of_k(2.5).k == 2.5
    assert rankgrad.Objective.from_weights([1, 0, 0, 0]) == O.best_of_k(4)


@pytest.mark.parametrize("bad", ["", "max", "max@", "max@-1", "max@2@3", "cvar:0.2", "median:1@3",
                                 "rank:0@3", "top:5@4", "quantile:1.5@3", "hd:1@3", "gini@1",
                                 "lmoment:5@4", "trim:0.5@4", "foo@3", "max@1e400"])
def test_ill_formed_presets(bad):
    with pytest.raises(ValueError, match="Valid forms"):
        rankgrad.parse(bad)


def test_weight_function_round_trip():
    obj = O.lower_tail(0.25, 8)
    w = obj.weight_function()
    np.testing.assert_allclose(w(np.array([0.01, 0.2, 0.3, 0.99])), [4, 4, 0, 0])
    back = rankgrad.Objective.from_function(w, 8)
    np.testing.assert_allclose(back.weights, obj.weights, atol=1e-12)
    # smooth function: α_j = ∫ cell, e.g. w(u) = 2u (weights increase to the top), Σα = 1
    lin = rankgrad.Objective.from_function(lambda u: 2 * u, 4)
    np.testing.assert_allclose(lin.low_first, [(2 * j - 1) / 16 for j in range(1, 5)], atol=1e-14)


# ------------------------------------------------------------------------------ the registry
def test_registry_is_read_only_and_drives_the_parser():
    import dataclasses

    with pytest.raises(TypeError):
        O.PRESETS["cvar"] = O.PRESETS["max"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        O.PRESETS["cvar"].example = "cvar:0.5@8"
    assert len(O.PRESET_FORMS) == len(O.PRESETS)
    table = O.presets_markdown().splitlines()
    assert len(table) == 2 + len(O.PRESETS)
    for (name, p), form, row in zip(O.PRESETS.items(), O.PRESET_FORMS, table[2:], strict=True):
        assert p.name == name and form.startswith(p.form) and f"`{p.example}`" in row
        assert row.count(" | ") == 4  # five cells: no stray bar inside one
        obj = rankgrad.parse(p.example)
        assert isinstance(obj, rankgrad.Objective) and obj.name.split("@")[0].split(":")[0] == name
        for alias in p.aliases:  # an alias builds the same objective, named canonically
            again = rankgrad.parse(p.example.replace(name, alias, 1))
            assert again == obj and again.name == obj.name
        assert rankgrad.parse(p.example_at(6)).k == 6
        with pytest.raises(ValueError, match=re.escape(form)):  # parse errors list every form
            rankgrad.parse(f"nope@{name}")
