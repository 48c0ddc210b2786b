"""The public namespace, lazy optional imports, and the registry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import rankgrad


def test_public_names_resolve():
    for name in rankgrad.__all__:
        assert getattr(rankgrad, name) is not None
    for name in rankgrad.exact.__all__ + rankgrad.objectives.__all__:
        assert hasattr(rankgrad.exact, name) or hasattr(rankgrad.objectives, name)
    assert set(rankgrad.ESTIMATORS) == {
        "ordergrad", "rloo", "dr_grpo", "grpo", "pkpo_s", "pkpo_sloo", "pkpo_sloo1", "chen_passk",
        "gopo",
    }


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
