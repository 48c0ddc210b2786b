"""The public namespace, lazy optional imports, and the registry."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import rankgrad
from rankgrad import InputTypeError
from rankgrad._src.estimators import _ALIASES


def test_public_names_resolve():
    for name in rankgrad.__all__:
        assert getattr(rankgrad, name) is not None
    for name in rankgrad.exact.__all__ + rankgrad.objectives.__all__:
        assert hasattr(rankgrad.exact, name) or hasattr(rankgrad.objectives, name)


# ------------------------------------------------------------------ the estimator registry
ALIASES = dict(_ALIASES)


def test_registry_is_read_only():
    fake = rankgrad.ESTIMATORS["ordergrad"]
    with pytest.raises(TypeError):
        rankgrad.ESTIMATORS["mine"] = fake
    with pytest.raises(TypeError):
        rankgrad.ESTIMATORS["grpo"] = fake
    with pytest.raises(TypeError):
        del rankgrad.ESTIMATORS["grpo"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rankgrad.ESTIMATORS["grpo"].unbiased = True
    assert "mine" not in rankgrad.ESTIMATORS and rankgrad.ESTIMATORS["grpo"].unbiased is False


def test_every_registered_name_is_its_own_entry_and_runs():
    """Each entry is keyed by its own name, resolves to itself, and ``advantages`` accepts it; a
    centred estimator gives zero-sum groups (the registry's claim, checked on 0/1 rewards)."""
    y = np.array([[1.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0, 1.0]])
    assert len(rankgrad.ESTIMATORS) >= 2
    for name, info in rankgrad.ESTIMATORS.items():
        assert info.name == name and rankgrad.estimator_info(name) is info
        spec = "mean" if info.objectives == "mean" else "max@2"
        a = rankgrad.advantages(y, spec, estimator=name)
        assert a.shape == y.shape and np.all(np.isfinite(a))
        if info.centred:
            np.testing.assert_allclose(a.sum(-1), 0.0, atol=1e-12)


def test_aliases_resolve_to_their_estimator():
    y = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    assert ALIASES and set(ALIASES.values()) <= set(rankgrad.ESTIMATORS)
    for alias, name in ALIASES.items():
        assert rankgrad.estimator_info(alias) is rankgrad.ESTIMATORS[name]
        assert rankgrad.estimator_info(alias.upper().replace("_", "-")) is rankgrad.ESTIMATORS[name]
        spec = "mean" if rankgrad.ESTIMATORS[name].objectives == "mean" else "max@2"
        if name == "chen_passk":
            continue  # 0/1 rewards only: checked below
        np.testing.assert_array_equal(rankgrad.advantages(y, spec, estimator=alias),
                                      rankgrad.advantages(y, spec, estimator=name))
    b = np.array([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(rankgrad.advantages(b, "max@2", estimator="chen"),
                                  rankgrad.advantages(b, "max@2", estimator="chen_passk"))


def test_unknown_name_lists_every_accepted_name():
    with pytest.raises(ValueError, match=r"^estimator: unknown 'ppo'") as err:
        rankgrad.advantages(np.arange(4.0), "mean", estimator="ppo")
    for name in [*rankgrad.ESTIMATORS, *ALIASES]:
        assert name in str(err.value)
    with pytest.raises(InputTypeError, match=r"^estimator: .*string"):
        rankgrad.estimator_info(3)


def test_rank_is_an_objective_not_an_estimator():
    """'rank' names the objective rank:r@K; as an estimator it used to mean gopo. Now it is an error
    that gives the fix."""
    for name in ("rank", "RANK"):
        with pytest.raises(ValueError, match=r"^estimator: .*objective.*estimator='gopo' \(or 'midrank'\)"):
            rankgrad.estimator_info(name)
        with pytest.raises(ValueError, match="estimator='gopo'"):
            rankgrad.advantages(np.arange(4.0), "mean", estimator=name)
    assert rankgrad.estimator_info("midrank").name == "gopo"


@pytest.mark.parametrize("name", ["mean", "max", "Median", "cvar", "max@4", "cvar:0.25@8"])
def test_an_objective_given_as_estimator_says_so(name):
    with pytest.raises(ValueError, match=r"^estimator: .* names an objective, not an estimator; pass it as"):
        rankgrad.advantages(np.arange(6.0), "mean", estimator=name)


def test_no_estimator_name_is_an_objective():
    """No estimator name or alias parses as an objective (bare, with @K, or with a parameter), so a
    name never means two things."""
    for name in [*rankgrad.ESTIMATORS, *ALIASES]:
        for spec in (name, f"{name}@4", f"{name}:0.5@4", f"{name}:1@4"):
            with pytest.raises(ValueError):
                rankgrad.parse(spec)


def test_input_type_error_is_public_and_both_a_type_and_a_value_error():
    """Wrong types raise rankgrad.InputTypeError, which callers can catch as TypeError or ValueError."""
    for exc in (rankgrad.InputTypeError, TypeError, ValueError):
        try:
            rankgrad.advantages(np.array([1.0 + 1j, 2.0, 3.0]), "mean")
        except exc as err:
            assert type(err) is rankgrad.InputTypeError and "rewards" in str(err)
        else:
            raise AssertionError("complex rewards were accepted")


def test_import_needs_numpy_only():
    code = (
        "import sys, numpy as np, rankgrad\n"
        "a = rankgrad.advantages(np.arange(6.0), 'max@2')\n"
        "v = rankgrad.exact.value([0., 1.], [.5, .5], 'max@2')\n"
        "import rankgrad.integrations, rankgrad.cli\n"
        "a = rankgrad.integrations.group_advantages(np.arange(6.0), [0, 0, 0, 1, 1, 1], 'max@2')\n"
        "heavy = ('torch', 'jax', 'scipy', 'trl', 'verl', 'transformers', 'matplotlib', 'pyarrow')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_line_swap_for_grpo_loops():
    """The quick-start shape: flat rewards + prompt ids in, per-sample advantages out."""
    rewards = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    prompt = np.array([7, 7, 7, 7, 9, 9, 9, 9])
    a = rankgrad.advantages(rewards, "max@2", group_ids=prompt)
    np.testing.assert_allclose(a[:4], rankgrad.advantages(rewards[:4], "max@2"))
    np.testing.assert_allclose(a[4:], rankgrad.advantages(rewards[4:], "max@2"))
    np.testing.assert_allclose(rankgrad.value(rewards, "max@2", group_ids=prompt), [5 / 6, 1.0])
