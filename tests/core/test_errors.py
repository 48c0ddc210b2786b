"""Bad input gets a ValueError (TypeError for a wrong type of objective) that names the argument."""

from __future__ import annotations

import numpy as np
import pytest

import rankgrad
from tests.backends import to_backend

Y = np.arange(12.0).reshape(2, 6)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda x: rankgrad.advantages(x * np.nan, "max@2"), "rewards: found 12 NaN"),
        (lambda x: rankgrad.advantages(x * 0 + float("inf"), "max@2"), "NaN or inf"),
        (lambda x: rankgrad.advantages(x, "max@6"), r"K=6 \(K <= N−1\) needs groups of at least 7"),
        (lambda x: rankgrad.advantages(x, "max@7"), "at least 8"),
        (lambda x: rankgrad.value(x, "max@7"), "value with K=7 needs groups of at least 7"),
        (lambda x: rankgrad.advantages(x[:, :1], "mean"), "at least 2 samples"),
        (lambda x: rankgrad.advantages(x[:, :1], "mean", estimator="grpo"), "at least 2 samples"),
        (lambda x: rankgrad.advantages(x[:, :0], "mean"), "N >= 1"),
        (lambda x: rankgrad.advantages(x, "max@0"), "K > 0"),
        (lambda x: rankgrad.advantages(x, "median@0"), "K >= 1"),
        (lambda x: rankgrad.advantages(x, "maxx@3"), "unknown objective 'maxx'.*Valid forms"),
        (lambda x: rankgrad.advantages(x, "cvar@3"), "needs a parameter"),
        (lambda x: rankgrad.advantages(x, "cvar:1.5@3"), r"level in \(0, 1\]"),
        (lambda x: rankgrad.advantages(x, "rank:4@3"), "1 <= r <= K=3"),
        (lambda x: rankgrad.advantages(x, "trim:2@4"), "2m < K=4"),
        (lambda x: rankgrad.advantages(x, "max@3", estimator="nope"), "estimator: unknown 'nope'"),
        (lambda x: rankgrad.advantages(x, "max@3", estimator="grpo"), "optimises the mean reward"),
        (lambda x: rankgrad.advantages(x, "cvar:0.5@3", estimator="pkpo_sloo1"), "max@K with K >= 2"),
        (lambda x: rankgrad.advantages(x, "max@3", estimator="chen_passk"), "binary 0/1 rewards"),
        (lambda x: rankgrad.advantages(x, "max@2", mask=np.ones((2, 5), bool)), "mask: expected the shape"),
        (lambda x: rankgrad.advantages(x, "max@2", mask=np.full((2, 6), 0.5)), "mask: expected a boolean"),
        (lambda x: rankgrad.advantages(x, "max@2", group_ids=np.zeros(12)), "flat rewards of shape"),
        (lambda x: rankgrad.advantages(x.reshape(-1), "max@2", group_ids=np.zeros(5)),
         r"group_ids: expected shape \(12,\)"),
        (lambda x: rankgrad.value(x, "max@2.5"), "fractional K"),
    ],
)
def test_bad_input(backend, call, match):
    x = to_backend(Y, backend)
    with pytest.raises(ValueError, match=match):
        call(x)


def test_objective_type_and_weights_errors():
    with pytest.raises(TypeError, match="objective: expected a preset string"):
        rankgrad.advantages(Y, 4)
    with pytest.raises(ValueError, match="expected length K=4"):
        rankgrad.Objective.from_weights([1, 0, 0], k=4)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        rankgrad.Objective.from_weights([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="finite"):
        rankgrad.Objective.from_weights([1, np.nan])
    with pytest.raises(ValueError, match="rewards: expected a numeric array"):
        rankgrad.advantages(np.array(["a", "b", "c"]), "mean")
    # a weight vector longer than the group is a K > N error, named as such
    with pytest.raises(ValueError, match="needs groups of at least 6"):
        rankgrad.advantages(np.arange(5.0), rankgrad.Objective.from_weights(np.ones(5) / 5))


def test_masked_nan_is_allowed():
    y = np.array([0.0, 1.0, np.nan, 2.0, 0.5])
    a = rankgrad.advantages(y, "max@2", mask=~np.isnan(y))
    assert a[2] == 0 and np.all(np.isfinite(a))
    np.testing.assert_allclose(a[[0, 1, 3, 4]], rankgrad.advantages(y[[0, 1, 3, 4]], "max@2"))


def test_huge_finite_rewards_are_not_mistaken_for_inf(backend):
    """The finiteness check sums first; a sum that overflows must not reject finite rewards."""
    y = np.full((2, 6), 3e38, dtype=np.float32)
    y[:, 0] = 1.0
    a = rankgrad.advantages(to_backend(y, backend, "float32"), "max@2")
    assert np.all(np.isfinite(np.asarray(a.tolist())))
