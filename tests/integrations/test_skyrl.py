"""rankgrad's SkyRL advantage estimators through SkyRL's own code (CPU; no GPU, no model).

Runs only where SkyRL is installed (``.venv-skyrl``, Python >= 3.12); the main venv skips it.
Batches are built here as SkyRL's trainer has them: outcome rewards on the last response token,
right-padded response masks, string uids in shuffled order with unequal group sizes.

The reference everywhere is ``rankgrad.advantages(scores, objective, group_ids=uids)`` with scores the
row sums of ``token_level_rewards``, broadcast under the response mask, or values derived by hand /
enumerated over K-subsets (tests/brute.py). One test starts a local Ray instance (one CPU) to check
the registry SkyRL shares with its workers.
"""

from __future__ import annotations

import importlib
import math
import os
import subprocess
import sys
import types

import pytest

skyrl = pytest.importorskip("skyrl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from skyrl.backends.skyrl_train.training_batch import TrainingInputBatch  # noqa: E402
from skyrl.backends.skyrl_train.utils import ppo_utils  # noqa: E402
from skyrl.backends.skyrl_train.utils.ppo_utils import AdvantageEstimatorRegistry  # noqa: E402
from skyrl.train.config import AlgorithmConfig, SkyRLTrainConfig  # noqa: E402

import rankgrad  # noqa: E402
import rankgrad.integrations.skyrl as rs  # noqa: E402
from tests import brute  # noqa: E402
from tests.integrations._token_batches import SIZES, T, token_batch  # noqa: E402


# ------------------------------------------------------------------------------ fixtures
def _batch(sizes=SIZES, seed: int = 0, dense: bool = False, nan_rows=()):
    """(token_level_rewards [B, T] float32, response_mask [B, T] int64, uids: list of str)."""
    rewards, mask, uids = token_batch(sizes, seed, dense, tuple(nan_rows))
    return torch.from_numpy(rewards), torch.from_numpy(mask), uids.tolist()


def _skyrl(name: str, rewards, mask, uids, **kw):
    """SkyRL's ``ppo_utils.compute_advantages_and_returns`` as its trainer calls it (SkyRL's GRPO
    knobs set to values that would change a GRPO result, to show they are ignored)."""
    config = AlgorithmConfig(advantage_estimator=name, grpo_norm_by_std=True)
    adv, ret = ppo_utils.compute_advantages_and_returns(
        token_level_rewards=rewards, response_mask=mask, index=uids, adv_estimator=name, config=config,
        values=None, grpo_norm_by_std=True, gamma=0.5, lambd=0.5, **kw,
    )
    assert adv.shape == rewards.shape and adv.dtype == rewards.dtype
    assert torch.equal(adv, ret)
    assert torch.all(adv[mask == 0] == 0)
    return adv


def _reference(rewards, mask, uids, objective: str, **kw) -> torch.Tensor:
    scores = rewards.sum(-1)
    return rankgrad.advantages(scores, objective, group_ids=uids, **kw)[:, None] * mask


# ------------------------------------------------------------- registration at import
def test_presets_are_registered_on_import():
    available = AdvantageEstimatorRegistry.list_available()
    assert set(rs.PRESETS) <= set(available)
    assert rs.PRESETS == {"rankgrad_max@2": "max@2", "rankgrad_max@4": "max@4", "rankgrad_max@8": "max@8",
                          "rankgrad_max@16": "max@16"}
    for name, objective in rs.PRESETS.items():
        fn = AdvantageEstimatorRegistry.get(name)
        assert isinstance(fn, rs.SkyRLEstimator) and fn.name == name
        assert rs.registered_options(name) == rs.SkyRLOptions(objective)
    for builtin in ("grpo", "rloo", "gae"):  # SkyRL's own estimators are still there
        assert builtin in available and not rs.is_registered(builtin)


def test_self_check_through_skyrl():
    report = rs.self_check()
    assert report["name"] == "rankgrad_max@4" and report["skyrl_version"] == skyrl.__version__
    assert report["max_abs_error"] <= 1e-6


def test_module_main_runs_the_self_check_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "rankgrad.integrations.skyrl"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '"max_abs_error"' in out.stdout and "rankgrad_max@16 (max@16)" in out.stdout


def test_without_skyrl_the_import_error_names_the_extra():
    code = "import sys; sys.modules['skyrl'] = None\nimport rankgrad.integrations.skyrl\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "pip install 'rankgrad[skyrl]'" in out.stderr


# ------------------------------------------------------------------------ the numbers
@pytest.mark.parametrize("name", sorted(rs.PRESETS, key=lambda n: int(n.split("@")[1])))
def test_presets_equal_rankgrad_advantages_under_the_mask(name):
    k = int(name.split("@")[1])
    sizes = tuple(n + k - 4 for n in SIZES) if k > 4 else SIZES  # every group has > K rollouts
    rewards, mask, uids = _batch(sizes, seed=k, dense=k > 4)  # dense: distinct scores at the top
    got = _skyrl(name, rewards, mask, uids)
    want = _reference(rewards, mask, uids, rs.PRESETS[name])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert got.abs().max() > 1e-3  # a real signal, not all zeros


def test_dense_token_rewards_are_summed_per_rollout():
    rewards, mask, uids = _batch(seed=3, dense=True)
    got = _skyrl("rankgrad_max@4", rewards, mask, uids)
    torch.testing.assert_close(got, _reference(rewards, mask, uids, "max@4"), rtol=0, atol=1e-6)


@pytest.mark.parametrize("n,c,k", [(8, 3, 4), (5, 1, 4), (6, 2, 2), (9, 0, 8), (17, 5, 16), (3, 3, 2)])
def test_binary_rewards_closed_form(n, c, k):
    """0/1 rewards, max@K (docs/math.md): a_correct = C(N−c, K)/C(N−1, K),
    a_wrong = C(N−c−1, K)/C(N−1, K) − C(N−c−1, K−1)/C(N−1, K−1)."""
    rewards = torch.zeros(n, 3)
    rewards[:c, 2] = 1.0
    mask = torch.ones(n, 3, dtype=torch.int64)
    got = _skyrl(f"rankgrad_max@{k}", rewards, mask, ["q"] * n)
    comb = math.comb
    a_right = comb(n - c, k) / comb(n - 1, k)  # 0 for c = N: a constant group
    a_wrong = 0.0  # (no wrong rollout when c = N)
    if c < n:
        a_wrong = comb(n - c - 1, k) / comb(n - 1, k) - comb(n - c - 1, k - 1) / comb(n - 1, k - 1)
    want = torch.tensor([a_right] * c + [a_wrong] * (n - c), dtype=torch.float32)[:, None].expand(n, 3)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("objective", ["cvar:0.5@4", "median@3", "min@2", "mean@3"])
def test_registered_objectives_against_enumeration(objective):
    """a_i = q_i − v_i: include-one minus leave-one-out, enumerated over K-subsets (tests/brute.py)."""
    name = f"rankgrad_test_{objective}"
    rs.register(name, objective)
    w = rankgrad.parse(objective).weights
    rng = np.random.default_rng(7)
    groups = [rng.normal(size=n) for n in (5, 7, 6)]
    order = rng.permutation(sum(g.size for g in groups))
    scores = np.concatenate(groups)[order]
    uids = np.repeat(["x", "y", "z"], [g.size for g in groups])[order].tolist()
    rewards = torch.zeros(scores.size, 4, dtype=torch.float64)
    rewards[:, 0] = torch.from_numpy(scores)
    mask = torch.ones(scores.size, 4, dtype=torch.bool)
    got = _skyrl(name, rewards, mask, uids)
    want = np.concatenate([brute.include_one(g, w) - brute.leave_one_out(g, w) for g in groups])[order]
    np.testing.assert_allclose(got.numpy(), np.repeat(want[:, None], 4, axis=1), rtol=0, atol=1e-10)


def test_float_and_bool_masks_and_int_uids():
    rewards, mask, uids = _batch(seed=5)
    codes = {u: i for i, u in enumerate(dict.fromkeys(uids))}
    int_uids = np.array([codes[u] for u in uids])
    want = _reference(rewards, mask, uids, "max@4")
    for m in (mask.float(), mask.bool()):
        torch.testing.assert_close(_skyrl("rankgrad_max@4", rewards, m, int_uids), want, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------- the trainer
def _trainer_batch(rewards, mask, uids, **metadata):
    data = TrainingInputBatch({"rewards": rewards, "response_mask": mask, "values": None})
    data.metadata = {"uids": uids, "avg_response_length": float(mask.sum(-1).float().mean()), **metadata}
    return data


def test_trainer_compute_advantages_and_returns_with_a_cli_config():
    """SkyRL's ``RayPPOTrainer.compute_advantages_and_returns`` (the trainer step), the estimator chosen
    by a command-line override parsed by SkyRL."""
    from skyrl.train import trainer  # needs the skyrl extra's torchdata, aiohttp, orjson, pybase64
    cfg = SkyRLTrainConfig.from_cli_overrides(["trainer.algorithm.advantage_estimator=rankgrad_max@4"])
    assert cfg.trainer.algorithm.advantage_estimator == "rankgrad_max@4"
    rewards, mask, uids = _batch(seed=11)
    host = types.SimpleNamespace(cfg=cfg, all_metrics={})
    out = trainer.RayPPOTrainer.compute_advantages_and_returns(host, _trainer_batch(rewards, mask, uids))
    want = _reference(rewards, mask, uids, "max@4")
    torch.testing.assert_close(out["advantages"], want, rtol=0, atol=1e-6)
    torch.testing.assert_close(out["returns"], want, rtol=0, atol=1e-6)


def test_trainer_step_wise_trajectories_one_sample_per_trajectory():
    """``generator.step_wise_trajectories``: SkyRL calls the estimator on each trajectory's last step
    and broadcasts its advantage to the trajectory's steps; the trajectories are the samples."""
    from skyrl.train import trainer  # needs the skyrl extra's torchdata, aiohttp, orjson, pybase64
    cfg = SkyRLTrainConfig.from_cli_overrides(
        ["trainer.algorithm.advantage_estimator=rankgrad_max@2", "generator.step_wise_trajectories=true"]
    )
    rng = np.random.default_rng(2)
    traj_uid = ["p"] * 4 + ["q"] * 3  # 7 trajectories of two prompts
    traj_score = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0], np.float32)
    steps = rng.integers(1, 4, size=len(traj_uid))  # 1-3 steps (turns) each
    rows = np.repeat(np.arange(len(traj_uid)), steps)
    is_last = np.r_[rows[1:] != rows[:-1], True]
    b = rows.size
    lengths = rng.integers(1, T + 1, size=b)
    mask = torch.from_numpy((np.arange(T)[None, :] < lengths[:, None]).astype(np.int64))
    rewards = torch.zeros(b, T)
    last_tok = mask.sum(-1) - 1
    rewards[torch.arange(b), last_tok] = torch.from_numpy(np.where(is_last, traj_score[rows], 0.3))
    data = _trainer_batch(rewards, mask, [traj_uid[r] for r in rows], is_last_step=is_last.tolist())
    host = types.SimpleNamespace(cfg=cfg, all_metrics={})
    out = trainer.RayPPOTrainer.compute_advantages_and_returns(host, data)
    per_traj = rankgrad.advantages(torch.from_numpy(traj_score), "max@2", group_ids=traj_uid)
    torch.testing.assert_close(out["advantages"], per_traj[rows][:, None] * mask, rtol=0, atol=1e-6)
    # by hand: max@2, p = {1,0,0,1}: +1/3, −1/3; q = {0,1,0}: +1, −1/2
    torch.testing.assert_close(per_traj, torch.tensor([1 / 3, -1 / 3, -1 / 3, 1 / 3, -0.5, 1.0, -0.5]),
                               rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ options
def test_small_groups_zero():
    rs.register("rankgrad_test_small", "max@6", small_groups="zero")
    rewards, mask, uids = _batch(seed=4)  # groups of 6, 9, 5, 11, 7: two have <= K rollouts
    got = _skyrl("rankgrad_test_small", rewards, mask, uids)
    small = np.array([uids.count(u) < 7 for u in uids])
    assert small.sum() == 11 and torch.all(got[torch.from_numpy(small)] == 0)
    keep = [i for i in range(len(uids)) if not small[i]]
    want = _reference(rewards[keep], mask[keep], [uids[i] for i in keep], "max@6")
    torch.testing.assert_close(got[keep], want, rtol=0, atol=1e-6)


def test_unscorable_zero_drops_the_rollout_from_its_group():
    rs.register("rankgrad_test_nan", "max@4", unscorable="zero")
    rewards, mask, uids = _batch(seed=6, nan_rows=(3,))
    got = _skyrl("rankgrad_test_nan", rewards, mask, uids)
    assert torch.all(got[3] == 0) and torch.isfinite(got).all()
    keep = [i for i in range(len(uids)) if i != 3]
    want = _reference(rewards[keep], mask[keep], [uids[i] for i in keep], "max@4")
    torch.testing.assert_close(got[keep], want, rtol=0, atol=1e-6)


def test_loss_scale_multiplies_each_group_by_k_over_n():
    rs.register("rankgrad_test_scale", "max@4", loss_scale=True)
    rewards, mask, uids = _batch(seed=8)
    got = _skyrl("rankgrad_test_scale", rewards, mask, uids)
    scale = torch.tensor([4 / uids.count(u) for u in uids])[:, None]
    torch.testing.assert_close(got, scale * _reference(rewards, mask, uids, "max@4"), rtol=0, atol=1e-6)


def test_other_estimator_by_name():
    rs.register("rankgrad_test_rloo", "mean@4", estimator="rloo")
    rewards, mask, uids = _batch(seed=9)
    got = _skyrl("rankgrad_test_rloo", rewards, mask, uids)
    want = rankgrad.advantages(rewards.sum(-1), "mean@4", group_ids=uids, estimator="rloo")[:, None] * mask
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


# ------------------------------------------------------------------ idempotence, conflicts
def test_register_is_idempotent_and_refuses_changed_options():
    first = rs.register("rankgrad_test_idem", "max@4", small_groups="zero")
    assert rs.register("rankgrad_test_idem", "max@4", small_groups="zero") is first
    with pytest.raises(ValueError, match=r"other options \(objective: 'max@4' -> 'max@8', "
                                         r"small_groups: 'zero' -> 'error'\).*replace=True"):
        rs.register("rankgrad_test_idem", "max@8")
    assert AdvantageEstimatorRegistry.get("rankgrad_test_idem") is first
    second = rs.register("rankgrad_test_idem", "max@8", replace=True)
    assert AdvantageEstimatorRegistry.get("rankgrad_test_idem") is second
    assert rs.registered_options("rankgrad_test_idem") == rs.SkyRLOptions("max@8")


def test_a_reimported_module_reregisters_as_a_no_op():
    before = {name: AdvantageEstimatorRegistry.get(name) for name in rs.PRESETS}
    importlib.reload(rs)  # a second copy of the module runs its import-time registration again
    for name in rs.PRESETS:
        assert AdvantageEstimatorRegistry.get(name) is before[name] and rs.is_registered(name)
    assert rs.register("rankgrad_max@4", "max@4") is before["rankgrad_max@4"]


def test_a_name_taken_by_another_estimator_is_refused():
    owner = r"skyrl\.backends\.skyrl_train\.utils\.ppo_utils\.compute_grpo_outcome_advantage"
    with pytest.raises(ValueError, match=rf"'grpo' is already registered to {owner}; rankgrad will not"):
        rs.register("grpo", "max@4")
    assert not rs.is_registered("grpo")


@pytest.mark.parametrize("args,kwargs,message", [
    (("rankgrad_bad", "max@"), {}, r"objective='max@'"),
    (("rankgrad_bad", "maximum@4"), {}, r"objective='maximum@4'"),
    (("rankgrad_bad", 4), {}, r"objective: expected a preset string"),
    (("rankgrad_bad", "max@4"), {"small_group": "zero"}, r"unknown option\(s\) \['small_group'\]"),
    (("rankgrad_bad", "max@4"), {"small_groups": "skip"}, r"small_groups: expected 'error' or 'zero'"),
    (("rankgrad_bad", "max@4"), {"std_normalize": 1}, r"std_normalize: expected True or False"),
    (("rankgrad_bad", "max@4"), {"estimator": "ppo"}, r"estimator: unknown 'ppo'"),
    (("rankgrad_bad", "max@4"), {"eps": -1}, r"eps: expected a finite number >= 0"),
    (("rankgrad_bad", "max@4"), {"noise": 0.1}, r"noise: expected \(rho0, rho1\)"),
    (("rankgrad_bad", "max@4"), {"noise": (0.6, 0.5)}, r"noise: .*rho0 \+ rho1 < 1"),
    (("rankgrad_bad", "max@4"), {"estimator": "grpo", "loss_scale": True}, r"loss_scale"),
    ((" rankgrad_bad", "max@4"), {}, r"name: expected a non-empty string"),
    (("", "max@4"), {}, r"name: expected a non-empty string"),
])
def test_bad_registration_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rs.register(*args, **kwargs)
    assert "rankgrad_bad" not in AdvantageEstimatorRegistry.list_available()


# ---------------------------------------------------------------------- errors at a step
def test_a_group_smaller_than_k_plus_one_names_the_estimator_and_the_fix():
    rewards, mask, uids = _batch(seed=1)  # a group of 5 rollouts; max@8 needs 9
    with pytest.raises(ValueError, match=r"advantage_estimator='rankgrad_max@8'.*needs at least 9.*"
                                         r"small_groups='zero'"):
        _skyrl("rankgrad_max@8", rewards, mask, uids)


def test_nan_scores_are_an_error_by_default():
    rewards, mask, uids = _batch(seed=1, nan_rows=(2,))
    with pytest.raises(ValueError, match=r"rankgrad_max@4"):
        _skyrl("rankgrad_max@4", rewards, mask, uids)


def test_bad_masks_shapes_and_missing_index():
    rewards, mask, uids = _batch(seed=1)
    fn = AdvantageEstimatorRegistry.get("rankgrad_max@4")
    with pytest.raises(ValueError, match=r"response_mask"):
        fn(token_level_rewards=rewards, response_mask=mask * 0.5, index=uids)
    with pytest.raises(ValueError, match=r"equal shape \[B, T\]"):
        fn(token_level_rewards=rewards, response_mask=mask[:, :-1], index=uids)
    with pytest.raises(ValueError, match=r"uids: expected one label per score"):
        fn(token_level_rewards=rewards, response_mask=mask, index=uids[:-1])
    with pytest.raises(ValueError, match=r"no index"):
        fn(token_level_rewards=rewards, response_mask=mask, index=None)


# ---------------------------------------------------------------------------------- Ray
def test_registry_reaches_ray_workers():
    """SkyRL's ``sync_registries`` pushes the driver's estimators to its named registry actor; a Ray
    worker looks them up through SkyRL's registry, also one registered only in the driver."""
    import ray
    rs.register("rankgrad_test_ray_cvar", "cvar:0.5@3")  # registered in this process only
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    try:
        ppo_utils.sync_registries()

        @ray.remote
        def in_worker(name, rewards, mask, uids):
            from skyrl.backends.skyrl_train.utils import ppo_utils as remote_utils

            fn = remote_utils.AdvantageEstimatorRegistry.get(name)
            adv, _ = remote_utils.compute_advantages_and_returns(
                token_level_rewards=rewards, response_mask=mask, index=uids, adv_estimator=name, config=None
            )
            return type(fn).__module__, type(fn).__qualname__, fn.options.objective, adv

        rewards, mask, uids = _batch(seed=12)
        for name, objective in (("rankgrad_max@4", "max@4"), ("rankgrad_test_ray_cvar", "cvar:0.5@3")):
            module, qualname, got_objective, adv = ray.get(in_worker.remote(name, rewards, mask, uids),
                                                           timeout=240)
            assert (module, qualname, got_objective) == ("rankgrad.integrations.skyrl", "SkyRLEstimator",
                                                         objective)
            torch.testing.assert_close(adv, _reference(rewards, mask, uids, objective), rtol=0, atol=1e-6)
    finally:
        ray.shutdown()
        AdvantageEstimatorRegistry._ray_actor = None  # SkyRL's registry re-creates its actor next session
        AdvantageEstimatorRegistry._synced_to_actor = False
