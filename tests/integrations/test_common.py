"""Framework-free helpers: flat scores + uids → advantages → token advantages.

Reference: brute-force enumeration per group (tests/brute.py), computed on each uid's valid rollouts
sliced out by hand — no rankgrad code on the expected side.
"""

from __future__ import annotations

import numpy as np
import pytest

import rankgrad
from rankgrad.integrations import group_advantages, token_advantages
from tests import brute
from tests.backends import to_backend, to_numpy


def _expected(scores: np.ndarray, labels: np.ndarray, w: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros_like(scores)
    for lab in np.unique(labels):
        idx = np.flatnonzero((labels == lab) & valid)
        if idx.size >= len(w) + 1:
            y = scores[idx]
            out[idx] = brute.include_one(y, w) - brute.leave_one_out(y, w)
    return out


@pytest.mark.parametrize("objective", ["max@3", "cvar:0.5@4", "median@3", "mean"])
def test_matches_brute_force_on_shuffled_ragged_groups(backend: str, objective: str) -> None:
    rng = np.random.default_rng(0)
    sizes = {"p0": 5, "p1": 7, "p2": 6, "p3": 9}
    labels = np.array([lab for lab, n in sizes.items() for _ in range(n)], dtype=object)
    perm = rng.permutation(labels.size)
    labels = labels[perm]
    scores = np.round(rng.normal(size=labels.size), 1)  # rounding makes ties
    w = rankgrad.parse(objective).weights
    got = group_advantages(to_backend(scores, backend), labels, objective)
    np.testing.assert_allclose(to_numpy(got), _expected(scores, labels, w, np.ones(labels.size, bool)),
                               atol=1e-12)


def test_torch_uids_and_float32() -> None:
    import torch

    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float32)
    uids = torch.tensor([3, 3, 3, 3, 8, 8, 8, 8])
    got = group_advantages(scores, uids, "max@2")
    assert got.dtype == torch.float32
    want = _expected(scores.double().numpy(), uids.numpy(), np.array([1.0, 0.0]), np.ones(8, bool))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)


def test_unscorable_zero_drops_nan_from_its_group(backend: str) -> None:
    scores = np.array([1.0, np.nan, 0.0, 0.0, 0.5, 1.0, np.nan, 0.25, 0.0])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    got = to_numpy(group_advantages(to_backend(scores, backend), labels, "max@2", unscorable="zero"))
    valid = np.isfinite(scores)
    want = _expected(np.nan_to_num(scores), labels, np.array([1.0, 0.0]), valid)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.all(np.isfinite(got)) and got[1] == 0 and got[6] == 0


def test_unscorable_error_names_positions_and_option() -> None:
    scores = np.array([1.0, np.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"positions \[1\].*unscorable='zero'"):
        group_advantages(scores, [0, 0, 0, 0], "max@2")


def test_small_groups() -> None:
    scores = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    labels = np.array(["big"] * 4 + ["tiny"] * 3)
    with pytest.raises(ValueError, match=r"'tiny' has 3 valid.*at least 4.*small_groups='zero'"):
        group_advantages(scores, labels, "max@3")
    got = group_advantages(scores, labels, "max@3", small_groups="zero")
    want = _expected(scores, labels, np.array([1.0, 0.0, 0.0]), np.ones(7, bool))
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.all(got[4:] == 0)
    # NaN removal can make a group too small: both options compose.
    scores[1] = np.nan
    got = group_advantages(scores, labels, "max@3", unscorable="zero", small_groups="zero")
    assert np.all(got == 0)


def test_std_normalize_matches_grpo_for_the_mean() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=12)
    labels = np.repeat([0, 1, 2], 4)
    # RLOO advantage = N/(N−1)·(r − mean); GRPO = (r − mean)/(std + eps): the normalised RLOO is their
    # ratio N/(N−1) times GRPO.
    got = group_advantages(scores, labels, "mean", std_normalize=True, eps=1e-6)
    grpo = rankgrad.advantages(scores.reshape(3, 4), "mean", estimator="grpo", eps=1e-6).reshape(-1)
    g = scores.reshape(3, 4)
    manual = ((g - g.mean(1, keepdims=True)) / (g.std(1, ddof=1, keepdims=True) + 1e-6)).reshape(-1)
    np.testing.assert_allclose(got, 4 / 3 * manual, rtol=1e-10)
    np.testing.assert_allclose(grpo, manual, rtol=1e-10)


@pytest.mark.parametrize("scale", [1.0, 2.0**-1000, 1e200])
def test_std_normalize_on_ragged_dropped_and_huge_scores(backend: str, scale: float) -> None:
    """GRPO's std (ddof=1) over each group's kept rollouts, ragged groups with an unscorable (NaN) one
    dropped, by hand on the host; the same for scores near the float64 limits (their squares would
    overflow or underflow: the std is computed on an exact power-of-two scale)."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=11)
    labels = np.array([3, 1, 3, 1, 1, 3, 2, 2, 2, 3, 1])
    base[4] = np.nan
    want = np.zeros(11)
    for lab in np.unique(labels):
        idx = np.flatnonzero((labels == lab) & np.isfinite(base))
        y = base[idx]
        n = y.size
        want[idx] = n / (n - 1) * (y - y.mean()) / y.std(ddof=1)  # RLOO of the mean, over the std
    got = group_advantages(to_backend(base * scale, backend), labels, "mean", std_normalize=True, eps=0.0,
                           unscorable="zero")
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-12)


def test_mask_excludes_rollouts() -> None:
    scores = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    labels = np.zeros(6, int)
    mask = np.array([1, 1, 1, 1, 0, 1], bool)
    got = group_advantages(scores, labels, "max@2", mask=mask)
    np.testing.assert_allclose(got, _expected(scores, labels, np.array([1.0, 0.0]), mask), atol=1e-12)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="uids: expected one label per score"):
        group_advantages(np.zeros(4), [0, 0, 0], "max@2")
    with pytest.raises(ValueError, match=r"scores: expected flat \[B\]"):
        group_advantages(np.zeros((2, 4)), [0, 0], "max@2")
    with pytest.raises(ValueError, match="unscorable: expected"):
        group_advantages(np.zeros(4), [0] * 4, "max@2", unscorable="drop")


def test_token_advantages(backend: str) -> None:
    adv = to_backend(np.array([0.5, -0.25, 0.0]), backend)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    got = to_numpy(token_advantages(adv, to_backend(mask, backend)))
    np.testing.assert_array_equal(got, np.array([0.5, -0.25, 0.0])[:, None] * mask)
    with pytest.raises(ValueError, match="response_mask: expected shape"):
        token_advantages(adv, to_backend(mask[:2], backend))


def test_loss_scale_gives_the_unbiased_batch_gradient_weights() -> None:
    # Groups of sizes 5 and 8 with max@3: each group's advantages times K/N_g.
    rng = np.random.default_rng(2)
    scores = rng.normal(size=13)
    labels = np.array([0] * 5 + [1] * 8)
    got = group_advantages(scores, labels, "max@3", loss_scale=True)
    raw = _expected(scores, labels, np.array([1.0, 0.0, 0.0]), np.ones(13, bool))
    np.testing.assert_allclose(got, raw * np.where(labels == 0, 3 / 5, 3 / 8), atol=1e-12)
    got = group_advantages(scores, labels, "mean", estimator="dr_grpo", loss_scale=True)
    np.testing.assert_allclose(got[:5], (scores[:5] - scores[:5].mean()) / 4, atol=1e-12)
    with pytest.raises(ValueError, match="loss_scale: estimator 'grpo' is biased"):
        group_advantages(scores, labels, "mean", estimator="grpo", loss_scale=True)


def test_noise_options_pass_through() -> None:
    rng = np.random.default_rng(3)
    scores = (rng.random(30) < 0.4).astype(np.float64)
    uids = np.array([f"u{i % 4}" for i in range(30)])
    np.testing.assert_allclose(group_advantages(scores, uids, "mean", noise=(None, 0.2)),
                               rankgrad.advantages(scores, "mean", group_ids=uids) / 0.8, atol=1e-14)
    want = rankgrad.noisy.advantages(scores, "max@3", rho0=0.05, rho1=0.2, group_ids=uids)
    np.testing.assert_allclose(group_advantages(scores, uids, "max@3", noise=(0.05, 0.2)), want, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("kind", ["object array", "list", "str array"])
def test_equal_groups_with_shuffled_string_uids_match_brute_force(backend: str, kind: str) -> None:
    """The verl batch shape: P prompts × N rollouts, 0/1 rewards, string uids in shuffled order."""
    rng = np.random.default_rng(9)
    p, n = 7, 6
    labels = np.array([f"{g:04x}-uid" for g in range(p) for _ in range(n)], dtype=object)
    labels = labels[rng.permutation(p * n)]
    scores = rng.integers(0, 2, p * n).astype(float)
    uids = {"object array": labels, "list": labels.tolist(), "str array": labels.astype(str)}[kind]
    got = to_numpy(group_advantages(to_backend(scores, backend), uids, "max@3"))
    want = _expected(scores, labels, np.array([1.0, 0.0, 0.0]), np.ones(p * n, bool))
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_string_uids_next_to_other_kinds_stay_apart() -> None:
    scores = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    uids = ["1", "1", 1, 1, b"1", b"1"]  # three groups: str, int, bytes
    got = group_advantages(scores, uids, "mean")
    np.testing.assert_allclose(got, [1.0, -1.0, -1.0, 1.0, 1.0, -1.0], atol=1e-12)
    from rankgrad._src.errors import InputTypeError

    with pytest.raises(InputTypeError, match=r"uids: .*got list \[1\] at position 1"):
        group_advantages(scores[:2], ["a", [1]], "mean")


def test_check_options_normalises_and_names_each_option_by_its_config_path():
    """The adapters' configuration check: aliases resolved, eps a float, noise checked rates; errors
    named by the adapter's path, with the library's own messages and error types."""
    from rankgrad._src.errors import InputTypeError
    from rankgrad.integrations._common import check_options

    opts = check_options({"estimator": "maxpo", "eps": 0, "noise": [None, 0.25], "small_groups": "zero"})
    assert opts == {"estimator": "ordergrad", "eps": 0.0, "noise": (None, 0.25), "small_groups": "zero"}
    where = "cfg.{}".format
    cases = [
        ({"std_normalize": "yes"}, ValueError, r"^cfg\.std_normalize: expected true or false"),
        ({"unscorable": "skip"}, ValueError, r"^cfg\.unscorable: expected 'error' or 'zero'"),
        ({"estimator": "ppo"}, ValueError, r"^cfg\.estimator='ppo': estimator: unknown 'ppo'"),
        ({"estimator": 3}, InputTypeError, r"^cfg\.estimator=3: "),
        ({"eps": -1.0}, ValueError, r"^cfg\.eps: expected a finite number >= 0"),
        ({"noise": (0.6, 0.5)}, ValueError, r"^cfg\.noise: .*rho0 \+ rho1 < 1.* HINT$"),
    ]
    for opts, kind, match in cases:
        with pytest.raises(kind, match=match):
            check_options(opts, where, booleans="true or false", noise_hint="HINT")
