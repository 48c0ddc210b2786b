"""Multi-turn / agentic rollouts: ``group_advantages(..., trajectory_ids=...)``.

A trajectory (one rollout of a prompt) spans several rows (turns, tool calls). The reference works on
trajectories only: one reward per trajectory, brute-force enumeration over K-subsets of each uid's
trajectories (tests/brute.py), then the trajectory's advantage copied onto each of its rows by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rankgrad
from rankgrad.integrations import group_advantages
from tests import brute
from tests.backends import to_backend, to_numpy


def _brute(y: np.ndarray, objective: str) -> np.ndarray:
    w = rankgrad.parse(objective).weights
    return brute.include_one(y, w) - brute.leave_one_out(y, w)


def _rows(traj_rewards: list[list[float]], turns: list[list[int]], rng: np.random.Generator):
    """Rows of trajectories: uid g, trajectory (g, j) with turns[g][j] rows, all carrying its reward;
    rows shuffled. Returns scores, uids, trajectory ids (strings) and the per-row (g, j)."""
    rows = [(g, j) for g, ts in enumerate(turns) for j, n in enumerate(ts) for _ in range(n)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    scores = np.array([traj_rewards[g][j] for g, j in rows])
    uids = np.array([f"prompt-{g}" for g, _ in rows], dtype=object)
    traj = np.array([f"prompt-{g}/session-{j}" for g, j in rows], dtype=object)
    return scores, uids, traj, rows


def _expected(traj_rewards, rows, objective, keep=None) -> np.ndarray:
    """Per-row advantages from per-trajectory brute force; ``keep[g][j]`` False = trajectory left out."""
    per = {}
    for g, ys in enumerate(traj_rewards):
        idx = [j for j in range(len(ys)) if keep is None or keep[g][j]]
        a = _brute(np.asarray([ys[j] for j in idx], dtype=float), objective)
        per.update({(g, j): v for j, v in zip(idx, a, strict=True)})
    return np.array([per.get(r, 0.0) for r in rows])


@st.composite
def _ragged(draw):
    n_groups = draw(st.integers(1, 3))
    turns = [draw(st.lists(st.integers(1, 4), min_size=4, max_size=6)) for _ in range(n_groups)]
    rewards = [[draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])) for _ in ts] for ts in turns]
    return turns, rewards, draw(st.integers(0, 2**31 - 1))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("objective", ["max@3", "cvar:0.5@2", "mean"])
@settings(max_examples=25, deadline=None)
@given(case=_ragged())
def test_ragged_turns_match_per_trajectory_brute_force(backend: str, objective: str, case) -> None:
    turns, traj_rewards, seed = case
    scores, uids, traj, rows = _rows(traj_rewards, turns, np.random.default_rng(seed))
    got = to_numpy(group_advantages(to_backend(scores, backend), uids, objective, trajectory_ids=traj))
    np.testing.assert_allclose(got, _expected(traj_rewards, rows, objective), atol=1e-12)


def test_more_turns_do_not_weigh_more() -> None:
    """Two successes, one of 1 turn and one of 5: the same advantage per row (a row-level call would
    treat the 5-turn trajectory as 5 successes)."""
    traj_rewards = [[1.0, 1.0, 0.0, 0.0]]
    turns = [[1, 5, 1, 2]]
    scores, uids, traj, rows = _rows(traj_rewards, turns, np.random.default_rng(0))
    got = group_advantages(scores, uids, "max@2", trajectory_ids=traj)
    # binary max@K, c of N correct (docs/math.md): a_correct = C(N−c, K)/C(N−1, K) = C(2,2)/C(3,2) = 1/3,
    # a_wrong = C(N−c−1, K)/C(N−1, K) − C(N−c−1, K−1)/C(N−1, K−1) = 0 − 1/3.
    want = np.array([1 / 3 if traj_rewards[0][j] else -1 / 3 for _, j in rows])
    np.testing.assert_allclose(got, want, atol=1e-12)
    rowwise = group_advantages(scores, uids, "max@2")  # the turn-level bias this keyword removes
    assert not np.allclose(rowwise, want)


def test_torch_float32_and_int_trajectory_ids() -> None:
    import torch

    traj_rewards = [[1.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    turns = [[2, 1, 3, 1, 2], [1, 1, 4, 2]]
    scores, uids, _, rows = _rows(traj_rewards, turns, np.random.default_rng(3))
    tid = torch.tensor([10 * g + j for g, j in rows])
    got = group_advantages(torch.tensor(scores, dtype=torch.float32), uids, "max@2", trajectory_ids=tid)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), _expected(traj_rewards, rows, "max@2"), atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_mask_drops_rows_and_whole_trajectories(backend: str) -> None:
    traj_rewards = [[1.0, 0.0, 0.5, 0.0, 1.0], [0.0, 2.0, 1.0, 0.0]]
    turns = [[2, 3, 1, 2, 2], [3, 1, 2, 2]]
    scores, uids, traj, rows = _rows(traj_rewards, turns, np.random.default_rng(5))
    mask = np.ones(len(rows), bool)
    # prompt-0 session-1: one of its rows masked (the trajectory stays, that row gets 0);
    # prompt-1 session-3: every row masked (the trajectory leaves its group).
    first_01 = next(i for i, r in enumerate(rows) if r == (0, 1))
    mask[first_01] = False
    mask[[i for i, r in enumerate(rows) if r == (1, 3)]] = False
    # a masked row may carry any score (it is not read)
    scores = scores.copy()
    scores[first_01] = 7.0
    got = to_numpy(group_advantages(to_backend(scores, backend), uids, "max@2", mask=mask,
                                    trajectory_ids=traj))
    keep = [[True] * 5, [True, True, True, False]]
    want = _expected(traj_rewards, rows, "max@2", keep) * mask
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert want[[i for i, r in enumerate(rows) if r == (0, 1)]].any()  # the kept rows of (0, 1) are not 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_unscorable_trajectory_is_dropped_whole(backend: str) -> None:
    traj_rewards = [[1.0, 0.0, 0.0, 1.0, 0.5]]
    turns = [[2, 3, 1, 2, 1]]
    scores, uids, traj, rows = _rows(traj_rewards, turns, np.random.default_rng(7))
    scores = scores.copy()
    scores[next(i for i, r in enumerate(rows) if r == (0, 1))] = np.nan  # one turn of session 1
    with pytest.raises(ValueError, match=r"scores: 1 non-finite value\(s\) at positions \[\d+\].*unscorable"):
        group_advantages(to_backend(scores, backend), uids, "max@2", trajectory_ids=traj)
    got = to_numpy(group_advantages(to_backend(scores, backend), uids, "max@2", trajectory_ids=traj,
                                    unscorable="zero"))
    want = _expected(traj_rewards, rows, "max@2", [[True, False, True, True, True]])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_small_groups_count_trajectories_not_rows() -> None:
    # prompt-0: 3 trajectories over 9 rows (too few for max@3, which needs 4); prompt-1: 4 trajectories
    traj_rewards = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.5]]
    turns = [[3, 3, 3], [1, 1, 1, 1]]
    scores, uids, traj, rows = _rows(traj_rewards, turns, np.random.default_rng(1))
    with pytest.raises(ValueError, match=r"uids: group 'prompt-0' \(trajectory 'prompt-0/session-\d'\) has 3 "
                                         r"valid rollout\(s\).*needs at least 4.*small_groups='zero'"):
        group_advantages(scores, uids, "max@3", trajectory_ids=traj)
    got = group_advantages(scores, uids, "max@3", trajectory_ids=traj, small_groups="zero")
    want = _expected(traj_rewards, rows, "max@3", [[False] * 3, [True] * 4])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_loss_scale_and_std_normalize_count_trajectories() -> None:
    traj_rewards = [[1.0, 0.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.0, 0.0]]
    turns = [[1, 4, 2, 1, 3], [2, 2, 1, 5]]
    scores, uids, traj, rows = _rows(traj_rewards, turns, np.random.default_rng(2))
    base = _expected(traj_rewards, rows, "max@2")
    n_traj = np.array([len(traj_rewards[g]) for g, _ in rows])
    std = np.array([np.std(traj_rewards[g], ddof=1) for g, _ in rows])
    got = group_advantages(scores, uids, "max@2", trajectory_ids=traj, loss_scale=True, std_normalize=True)
    np.testing.assert_allclose(got, base * (2 / n_traj) / (std + 1e-6), atol=1e-9)


def test_trajectory_across_two_uids_is_an_error() -> None:
    scores = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    uids = ["a", "a", "b", "a", "b", "b"]
    traj = ["t0", "t0", "t0", "t1", "t2", "t3"]  # t0 has rows in a and b
    with pytest.raises(ValueError, match=r"trajectory_ids: trajectory 't0' has rows in two uid groups "
                                         r"\('a' at position 0, 'b' at position 2\)"):
        group_advantages(scores, uids, "mean", trajectory_ids=traj)


def test_rows_of_a_trajectory_with_different_scores_are_an_error() -> None:
    scores = np.array([1.0, 0.0, 0.0, 1.0, 0.0])
    traj = ["t0", "t0", "t1", "t2", "t3"]  # t0: 1 then 0
    msg = r"scores: trajectory 't0' has different scores on its rows \(1\.0 at position 0, 0\.0 at position 1"
    with pytest.raises(ValueError, match=msg + ".*final turn"):
        group_advantages(scores, ["a"] * 5, "mean", trajectory_ids=traj)
    # the same rows with one of them masked out are consistent
    got = group_advantages(scores, ["a"] * 5, "mean", trajectory_ids=traj, mask=[1, 0, 1, 1, 1])
    # mean@1 advantage with N=4 trajectories {1, 0, 1, 0}: q_i = y_i, v_i = mean of the other 3
    want = np.array([1 - 1 / 3, 0.0, 0 - 2 / 3, 1 - 1 / 3, 0 - 2 / 3])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_bad_trajectory_ids_shape_and_labels() -> None:
    with pytest.raises(ValueError, match=r"trajectory_ids: expected one trajectory label per row, shape \[3\]"
                       ):
        group_advantages(np.zeros(3), ["a"] * 3, "mean", trajectory_ids=["t0", "t1"])
    with pytest.raises(ValueError, match=r"trajectory_ids: found the label None at position 1"):
        group_advantages(np.zeros(3), ["a"] * 3, "mean", trajectory_ids=["t0", None, "t2"])


def test_one_row_per_trajectory_is_the_row_level_call() -> None:
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 2, 24).astype(float)
    uids = rng.permutation(np.repeat(np.arange(4), 6))
    got = group_advantages(scores, uids, "max@3", trajectory_ids=np.arange(24)[::-1])
    np.testing.assert_allclose(got, rankgrad.advantages(scores, "max@3", group_ids=uids), atol=1e-12)
