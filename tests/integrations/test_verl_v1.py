"""verl's v1 trainer (``trainer.use_v1=True``): multi-output sessions get one advantage per session.

v1 stores every output of an agent loop (turn, tool call) as a row keyed ``{uid}_{session_id}_{index}``
and deduplicates sessions for GRPO only. These tests run v1's own advantage function
(``verl.trainer.ppo.v1.utils.compute_advantage_for_multi_trajectories``, and the name the v1 trainer
module binds) on real ``DataProto`` batches with ragged numbers of outputs per session.

The reference works on sessions only: the final output's score (highest index) is the session's reward,
``rankgrad.advantages`` over each uid's sessions, the session's advantage copied by hand onto every row
of the session under its response mask.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

verl = pytest.importorskip("verl")
v1 = pytest.importorskip("verl.trainer.ppo.v1.utils", reason="the v1 trainer needs verl[verl-core]")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402

import rankgrad  # noqa: E402
import rankgrad.integrations.verl as rv  # noqa: E402

T = 6


def _algo(**options) -> OmegaConf:
    return OmegaConf.create({"adv_estimator": rv.NAME, "norm_adv_by_std_in_grpo": True, "rankgrad": options})


def _sessions(outputs: list[list[int]], seed: int):
    """Rows of v1 sessions: uid g has len(outputs[g]) sessions, session j has outputs[g][j] rows.
    The final output of a session carries its reward; earlier outputs carry other values (v1 copies the
    final reward to them when the agent loop scores it, not when a reward model scores each row).
    Returns the DataProto, the keys, per-session (uid, final reward) and each row's session."""
    rng = np.random.default_rng(seed)
    rows = [(g, j, i) for g, outs in enumerate(outputs) for j, m in enumerate(outs) for i in range(m)]
    rows = [rows[k] for k in rng.permutation(len(rows))]
    sessions = [(g, j) for g, outs in enumerate(outputs) for j in range(len(outs))]
    final_reward = {s: float(rng.integers(0, 3)) / 2 for s in sessions}
    b = len(rows)
    lengths = rng.integers(1, T + 1, size=b)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    rewards = np.zeros((b, T), np.float32)
    for r, (g, j, i) in enumerate(rows):
        last = i == outputs[g][j] - 1
        rewards[r, lengths[r] - 1] = final_reward[(g, j)] if last else float(rng.integers(-3, 3))
    uids = np.array([f"prompt{g}" for g, _, _ in rows], dtype=object)
    keys = [f"prompt{g}_{j}_{i}" for g, j, i in rows]
    data = DataProto.from_dict(
        tensors={"token_level_rewards": torch.from_numpy(rewards), "response_mask": torch.from_numpy(mask)},
        non_tensors={"uid": uids},
    )
    return data, keys, final_reward, rows


def _reference(data, final_reward, rows, objective: str) -> torch.Tensor:
    sessions = list(final_reward)
    scores = np.array([final_reward[s] for s in sessions])
    adv = rankgrad.advantages(scores, objective, group_ids=[g for g, _ in sessions])
    per_row = torch.tensor([adv[sessions.index((g, j))] for g, j, _ in rows], dtype=torch.float32)
    return per_row[:, None] * data.batch["response_mask"]


OUTPUTS = [[1, 3, 2, 4, 1, 2], [2, 2, 1, 1, 3], [4, 1, 1, 2, 1, 1, 2]]


@pytest.mark.parametrize("objective", ["max@4", "cvar:0.5@3", "mean"])
def test_one_advantage_per_session_through_v1(objective):
    data, keys, final_reward, rows = _sessions(OUTPUTS, seed=len(objective))
    out = v1.compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator=rv.NAME,
                                                      config=_algo(objective=objective))
    want = _reference(data, final_reward, rows, objective)
    torch.testing.assert_close(out.batch["advantages"], want, atol=1e-6, rtol=0)
    assert torch.equal(out.batch["advantages"], out.batch["returns"])
    assert want.abs().max() > 0.05


def test_the_v1_trainer_binds_the_session_aware_function():
    from verl.trainer.ppo.v1 import trainer_base

    bound = trainer_base.compute_advantage_for_multi_trajectories
    assert bound is v1.compute_advantage_for_multi_trajectories
    data, keys, final_reward, rows = _sessions(OUTPUTS, seed=1)
    out = trainer_base.compute_advantage_for_multi_trajectories(
        data, batch_keys=keys, adv_estimator=rv.NAME, gamma=1.0, lam=1.0, num_repeat=4,
        norm_adv_by_std_in_grpo=True, config=_algo(objective="max@4"))
    torch.testing.assert_close(out.batch["advantages"], _reference(data, final_reward, rows, "max@4"),
                               atol=1e-6, rtol=0)


def test_without_the_session_rule_groups_count_rows():
    """verl's own function (unwrapped) gives rankgrad every row: the prompts' groups are too large and
    the advantages are not the per-session ones (this is what the session rule fixes)."""
    original = v1.compute_advantage_for_multi_trajectories.__rankgrad_wrapped__
    data, keys, final_reward, rows = _sessions(OUTPUTS, seed=2)
    out = original(data, batch_keys=keys, adv_estimator=rv.NAME, config=_algo(objective="mean"))
    want = _reference(data, final_reward, rows, "mean")
    assert not torch.allclose(out.batch["advantages"], want, atol=1e-3)


def test_a_wrapped_registry_entry_still_gets_sessions():
    """A tracing wrapper around rankgrad in verl's registry: still rankgrad, still one row per session."""
    import functools

    fn = core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME]
    calls = []

    @functools.wraps(fn)
    def traced(**kwargs):
        calls.append(kwargs["token_level_rewards"].shape[0])
        return fn(**kwargs)

    core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] = traced
    try:
        data, keys, final_reward, rows = _sessions(OUTPUTS, seed=3)
        out = v1.compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator=rv.NAME,
                                                          config=_algo(objective="max@3"))
    finally:
        core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] = fn
    assert calls == [sum(len(o) for o in OUTPUTS)]  # one row per session reached the estimator
    torch.testing.assert_close(out.batch["advantages"], _reference(data, final_reward, rows, "max@3"),
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("estimator", ["grpo", "rloo"])
def test_other_estimators_are_untouched(estimator):
    original = v1.compute_advantage_for_multi_trajectories.__rankgrad_wrapped__
    data, keys, _, _ = _sessions(OUTPUTS, seed=4)
    config = OmegaConf.create({"adv_estimator": estimator, "norm_adv_by_std_in_grpo": True})
    want = original(data.select_idxs(list(range(len(data)))), batch_keys=keys, adv_estimator=estimator,
                    config=config).batch["advantages"]
    got = v1.compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator=estimator,
                                                      config=config).batch["advantages"]
    assert torch.equal(got, want)


def test_bad_keys_are_a_clear_error():
    data, keys, _, _ = _sessions(OUTPUTS, seed=5)
    keys[3] = "no-session-here"
    msg = r"batch_keys: expected verl v1 keys '\{uid\}_\{session_id\}_\{index\}', "
    msg += r"got 'no-session-here' at row 3"
    with pytest.raises(ValueError, match=msg):
        v1.compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator=rv.NAME,
                                                    config=_algo(objective="mean"))


def test_plain_import_verl_hooks_v1_in_a_fresh_process():
    """What the trainer process does: ``import verl`` (the plugin loads), then the v1 trainer module."""
    code = (
        "import verl\n"
        "import sys\n"
        "assert 'verl.trainer.ppo.v1.utils' not in sys.modules\n"
        "from verl.trainer.ppo.v1 import trainer_base, utils\n"
        "f = trainer_base.compute_advantage_for_multi_trajectories\n"
        "print(f is utils.compute_advantage_for_multi_trajectories, hasattr(f, '__rankgrad_wrapped__'))\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "rankgrad"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-2:] == ["True", "True"]
