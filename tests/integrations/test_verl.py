"""The ``rankgrad`` verl advantage estimator through verl's own code (CPU; no Ray cluster, no GPU).

Runs only where verl is installed (``.venv-verl``); the main venv skips it. Ray is imported by verl but
never started. Batches are real ``verl.DataProto`` objects built here: outcome rewards on the last
response token, right-padded response masks, string uids in shuffled order with unequal group sizes.

The reference everywhere is ``rankgrad.advantages(scores, objective, group_ids=uids)`` with scores the
row sums of ``token_level_rewards``, broadcast under the response mask.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

verl = pytest.importorskip("verl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402

import rankgrad  # noqa: E402
import rankgrad.integrations.verl as rv  # noqa: E402
from rankgrad.integrations import group_advantages  # noqa: E402
from tests.integrations._token_batches import SIZES, T, token_batch  # noqa: E402


# ------------------------------------------------------------------------------ fixtures
def _batch(sizes=SIZES, seed: int = 0, dense: bool = False, nan_rows=()) -> DataProto:
    """A DataProto as verl's trainer has it before ``compute_advantage``."""
    rewards, mask, uids = token_batch(sizes, seed, dense, tuple(nan_rows))
    return DataProto.from_dict(
        tensors={"token_level_rewards": torch.from_numpy(rewards), "response_mask": torch.from_numpy(mask)},
        non_tensors={"uid": uids},
    )


def _algo(**options) -> OmegaConf:
    """The ``algorithm`` node as verl passes it (a DictConfig), with a ``rankgrad`` block."""
    return OmegaConf.create({"adv_estimator": rv.NAME, "norm_adv_by_std_in_grpo": True, "rankgrad": options})


def _reference(data: DataProto, objective: str, **kw) -> torch.Tensor:
    scores = data.batch["token_level_rewards"].sum(-1)
    adv = rankgrad.advantages(scores, objective, group_ids=data.non_tensor_batch["uid"], **kw)
    return adv[:, None] * data.batch["response_mask"]


def _run(data: DataProto, algo) -> torch.Tensor:
    out = compute_advantage(data, adv_estimator=algo.adv_estimator, config=algo)
    adv, ret = out.batch["advantages"], out.batch["returns"]
    assert adv.shape == data.batch["token_level_rewards"].shape and adv.dtype == torch.float32
    assert torch.equal(adv, ret)
    assert torch.all(adv[data.batch["response_mask"] == 0] == 0)
    return adv


# ------------------------------------------------------------- entry point, registration
def test_entry_point_is_declared_and_loading_it_registers():
    (ep,) = [e for e in entry_points(group="verl.plugins") if e.name == rv.NAME]
    assert ep.value == "rankgrad.integrations.verl:register"
    assert ep.load() is rv.register and ep.load() is rv.register  # loading twice is harmless
    assert rv.is_registered()
    assert core_algos.get_adv_estimator_fn(rv.NAME) is rv.compute_rankgrad_advantage
    assert rv.register() is rv.register() is rv.compute_rankgrad_advantage  # idempotent


def test_plain_import_verl_registers_in_a_fresh_process():
    """What each Ray worker does: ``import verl`` alone, no rankgrad import in user code."""
    code = (
        "import verl\n"
        "from verl.trainer.ppo import core_algos\n"
        "fn = core_algos.get_adv_estimator_fn('rankgrad')\n"
        "print(fn.__module__, fn.__name__)\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "rankgrad"}  # the explicit allow-list form
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["rankgrad.integrations.verl", "compute_rankgrad_advantage"]


def test_without_verl_the_import_error_names_the_extra():
    code = "import sys; sys.modules['verl'] = None\nimport rankgrad.integrations.verl\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "pip install 'rankgrad[verl]'" in out.stderr


def test_a_name_taken_by_another_estimator_is_refused():
    with pytest.raises(ValueError, match=r"'grpo' is already registered to verl\.trainer\.ppo\.core_algos"):
        rv.register("grpo")
    assert core_algos.get_adv_estimator_fn("grpo") is core_algos.compute_grpo_outcome_advantage


def _reload_plugin() -> None:
    importlib.reload(rv)  # re-runs the registration done at import (the entry point's path)


@pytest.fixture
def restore_registration():
    yield
    core_algos.ADV_ESTIMATOR_REGISTRY.pop(rv.NAME, None)
    _reload_plugin()
    assert rv.is_registered() and core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] is rv.compute_rankgrad_advantage


def test_import_with_the_name_taken_logs_an_error_and_stays_usable(caplog, restore_registration):
    def someone_elses(**kwargs):
        raise AssertionError("not called")

    core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] = someone_elses
    with caplog.at_level(logging.ERROR, logger=rv.__name__):
        _reload_plugin()
    assert "could not register verl adv_estimator='rankgrad'" in caplog.text
    assert "already registered to" in caplog.text and "someone_elses" in caplog.text
    assert core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] is someone_elses and not rv.is_registered()


def test_a_failing_self_check_unregisters_and_is_loud(caplog, monkeypatch, restore_registration):
    import rankgrad.integrations

    monkeypatch.setattr(rankgrad.integrations, "group_advantages", lambda s, *a, **k: s * 0)  # a broken build
    core_algos.ADV_ESTIMATOR_REGISTRY.pop(rv.NAME)
    with caplog.at_level(logging.ERROR, logger=rv.__name__), pytest.raises(RuntimeError, match="off by"):
        _reload_plugin()
    assert "FAILED its self-check and was unregistered" in caplog.text
    assert rv.NAME not in core_algos.ADV_ESTIMATOR_REGISTRY
    monkeypatch.undo()


def test_register_under_another_name_and_self_check():
    try:
        assert rv.register("rankgrad_alt") is rv.compute_rankgrad_advantage
        report = rv.self_check("rankgrad_alt")
        assert report["name"] == "rankgrad_alt" and report["max_abs_error"] <= 1e-6
    finally:
        core_algos.ADV_ESTIMATOR_REGISTRY.pop("rankgrad_alt", None)
    with pytest.raises(RuntimeError, match="does not know adv_estimator='rankgrad_alt'"):
        rv.self_check("rankgrad_alt")
    assert rv.self_check()["verl_version"] == verl.__version__


@pytest.mark.parametrize("kind", ["functools.wraps", "lambda"])
def test_self_check_runs_a_wrapped_registry_entry(kind, caplog, restore_registration):
    """A tracing / profiling wrapper in verl's registry is still rankgrad: the check runs what the
    registry returns, and re-loading the plugin keeps the wrapper registered."""
    import functools

    calls = []

    if kind == "lambda":
        traced = lambda **kw: calls.append(1) or rv.compute_rankgrad_advantage(**kw)  # noqa: E731
    else:
        @functools.wraps(rv.compute_rankgrad_advantage)
        def traced(**kw):
            calls.append(1)
            return rv.compute_rankgrad_advantage(**kw)

    core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] = traced
    report = rv.self_check()
    assert calls == [1] and report["max_abs_error"] <= 1e-6
    assert rv.pop_metrics() == {}  # the check is not a training step
    if kind == "functools.wraps":
        assert rv.is_registered() and rv.register() is traced
        with caplog.at_level(logging.ERROR, logger=rv.__name__):
            _reload_plugin()  # what the entry point does in a process where the wrapper is already in place
        assert "FAILED" not in caplog.text and "could not register" not in caplog.text
        assert core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] is traced and len(calls) == 2


def test_self_check_rejects_a_registry_entry_that_computes_something_else(restore_registration):
    fn = rv.compute_rankgrad_advantage
    core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] = lambda **kw: tuple(2 * a for a in fn(**kw))
    with pytest.raises(RuntimeError, match=r"resolved to <function .*<lambda>.*off by"):
        rv.self_check()
    core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] = lambda **kw: core_algos.compute_grpo_outcome_advantage(
        kw["token_level_rewards"], kw["response_mask"], kw["index"])
    with pytest.raises(RuntimeError, match=r"off by"):
        rv.self_check()
    core_algos.ADV_ESTIMATOR_REGISTRY[rv.NAME] = lambda token_level_rewards: None
    with pytest.raises(RuntimeError, match=r"failed on the check case \(TypeError"):
        rv.self_check()


# --------------------------------------------------------- verl's compute_advantage path
@pytest.mark.parametrize(
    "objective, estimator",
    [("max@4", "ordergrad"), ("cvar:0.5@4", "ordergrad"), ("median@3", "ordergrad"), ("mean", "rloo"),
     ("max@4", "pkpo_sloo")],
)
@pytest.mark.parametrize("dense", [False, True])
def test_compute_advantage_matches_rankgrad(objective, estimator, dense):
    data = _batch(dense=dense, seed=len(objective))
    adv = _run(data, _algo(objective=objective, estimator=estimator))
    want = _reference(data, objective, estimator=estimator)
    torch.testing.assert_close(adv, want, atol=1e-6, rtol=0)
    assert adv.abs().max() > 0.05  # not trivially zero


def test_hydra_overrides_reach_the_estimator():
    """The command-line form documented in examples/verl_passk.md, composed with verl's own config."""
    from hydra import compose, initialize_config_dir

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    overrides = [
        "algorithm.adv_estimator=rankgrad",
        "+algorithm.rankgrad.objective=max",
        "+algorithm.rankgrad.k=4",
        "+algorithm.rankgrad.estimator=maxpo",
    ]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides)
    data = _batch(seed=3)
    adv = _run(data, cfg.algorithm)
    torch.testing.assert_close(adv, _reference(data, "max@4"), atol=1e-6, rtol=0)


def test_the_documented_command_composes_validates_and_runs():
    """examples/verl_passk.md's command line: verl's config accepts it and it reaches the estimator."""
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    text = (Path(__file__).resolve().parents[2] / "examples" / "verl_passk.md").read_text()
    (block,) = [b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "verl.trainer.main_ppo" in b]
    tokens = shlex.split(block.replace("\\\n", " "))
    overrides = tokens[tokens.index("verl.trainer.main_ppo") + 1 :]
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides)
    with pytest.warns(UserWarning, match="Disabled critic"):
        use_critic = need_critic(cfg)
    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=use_critic)
    objective = cfg.algorithm.rankgrad.objective
    assert cfg.actor_rollout_ref.rollout.n >= rankgrad.parse(objective).k + 1
    data = _batch(sizes=(cfg.actor_rollout_ref.rollout.n,) * 4, seed=4)
    torch.testing.assert_close(_run(data, cfg.algorithm), _reference(data, objective), atol=1e-6, rtol=0)


def test_multi_trajectory_path_of_the_v1_trainer():
    """verl's default (v1) trainer calls compute_advantage through this wrapper."""
    v1 = pytest.importorskip("verl.trainer.ppo.v1.utils", reason="the v1 trainer needs verl[verl-core]")
    data = _batch(seed=5)
    keys = [f"{u}_{i}_0" for i, u in enumerate(data.non_tensor_batch["uid"])]  # one output per session
    algo = _algo(objective="max@4")
    out = v1.compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator=rv.NAME,
                                                      config=algo)
    torch.testing.assert_close(out.batch["advantages"], _reference(data, "max@4"), atol=1e-6, rtol=0)


def test_trajectory_ids_give_one_advantage_per_trajectory():
    """A custom loop with several rows per trajectory (turns) passes trajectory_ids to the estimator."""
    rng = np.random.default_rng(12)
    turns = [[1, 3, 2, 1, 4, 2], [2, 1, 1, 3, 1]]  # rows per trajectory, per prompt
    traj_rewards = [[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0]]
    rows = [(g, j) for g, ts in enumerate(turns) for j, n in enumerate(ts) for _ in range(n)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    b = len(rows)
    lengths = rng.integers(1, T + 1, size=b)
    mask = torch.from_numpy((np.arange(T)[None, :] < lengths[:, None]).astype(np.int64))
    rewards = torch.zeros(b, T)
    last = torch.from_numpy(lengths - 1)
    rewards[torch.arange(b), last] = torch.tensor([traj_rewards[g][j] for g, j in rows])
    uids = np.array([f"p{g}" for g, _ in rows], dtype=object)
    traj = np.array([f"p{g}-t{j}" for g, j in rows], dtype=object)
    rv.pop_metrics()
    adv, _ = rv.compute_rankgrad_advantage(rewards, mask, index=uids, config=_algo(objective="max@2"),
                                           trajectory_ids=traj)
    per_traj = {}
    for g, ys in enumerate(traj_rewards):
        a = rankgrad.advantages(np.array(ys), "max@2")
        per_traj.update({(g, j): a[j] for j in range(len(ys))})
    want = torch.tensor([per_traj[r] for r in rows], dtype=torch.float32)[:, None] * mask
    torch.testing.assert_close(adv, want, atol=1e-6, rtol=0)
    metrics = rv.pop_metrics()  # per trajectory: 2 of 6 and 1 of 5 succeed
    assert metrics["rankgrad/max@1"] == pytest.approx((2 / 6 + 1 / 5) / 2)


@pytest.mark.parametrize(
    "options",
    [
        {"std_normalize": True, "eps": 1e-3},
        {"loss_scale": True},
        {"small_groups": "zero"},
        {"unscorable": "zero"},
        {"noise": [0.05, 0.1]},
    ],
)
def test_options_are_passed_to_group_advantages(options):
    sizes = (6, 9, 4, 11, 7) if "small_groups" in options else SIZES  # a group of 4 is too small for K=4
    data = _batch(sizes=sizes, seed=7, nan_rows=(0, 3) if "unscorable" in options else ())
    data.batch["token_level_rewards"] = (data.batch["token_level_rewards"] > 0).float()  # 0/1 for noise
    adv = _run(data, _algo(objective="max@4", **options))
    scores = data.batch["token_level_rewards"].sum(-1)
    kw = {**options, "noise": tuple(options["noise"])} if "noise" in options else options
    want = group_advantages(scores, data.non_tensor_batch["uid"], "max@4", **kw)[:, None]
    torch.testing.assert_close(adv, want * data.batch["response_mask"], atol=1e-6, rtol=0)


def test_forward_noise_correction_from_a_null_false_positive_rate():
    """``noise: [null, rho1]`` (YAML null) = forward correction of the mean: RLOO / (1 − rho1)."""
    data = _batch(seed=11)
    data.batch["token_level_rewards"] = (data.batch["token_level_rewards"] > 0).float()
    adv = _run(data, _algo(objective="mean", noise=[None, 0.25]))
    torch.testing.assert_close(adv, _reference(data, "mean") / 0.75, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "config, match",
    [
        (None, r"algorithm\.rankgrad: missing.*\+algorithm\.rankgrad\.objective=max@4"),
        (OmegaConf.create({"adv_estimator": "rankgrad"}), r"algorithm\.rankgrad: missing"),
        (_algo(estimator="ordergrad"), r"algorithm\.rankgrad\.objective: missing"),
        (_algo(objective="max@4", objetive="max@4"), r"unknown key\(s\) \['objetive'\]"),
        (_algo(objective="best@4"), r"algorithm\.rankgrad\.objective='best@4'.*unknown objective"),
        (_algo(objective="max@4", k=4), r"already names K"),
        (_algo(objective="max@4", estimator="ppo"), r"estimator: unknown 'ppo'"),
        (_algo(objective="max@4", std_normalize="yes"), r"std_normalize: expected true or false"),
        (_algo(objective="max@4", small_groups="skip"), r"small_groups: expected 'error' or 'zero'"),
        (_algo(objective="max@8"), r"needs at least 9.*small_groups='zero'"),
        (_algo(objective="max@4", eps=-1), r"algorithm\.rankgrad\.eps: expected a finite number >= 0"),
        (_algo(objective="max@4", noise=[0.6, 0.5]), r"algorithm\.rankgrad\.noise: .*rho0 \+ rho1 < 1"),
        (_algo(objective="max@4", noise=[0.1]), r"algorithm\.rankgrad\.noise: .*\[null, rho1\]"),
        (_algo(objective="max@4", noise=[0.1, None]), r"algorithm\.rankgrad\.noise: .*rho1 is needed"),
    ],
)
def test_bad_config_gives_a_clear_error(config, match):
    data = _batch(seed=1)
    with pytest.raises(ValueError, match=match):
        compute_advantage(data, adv_estimator=rv.NAME, config=config)


def test_missing_uid_and_unscorable_scores_are_errors_by_default():
    data = _batch(seed=2)
    data.non_tensor_batch.pop("uid")
    with pytest.raises(ValueError, match=r"no group index.*uid"):
        compute_advantage(data, adv_estimator=rv.NAME, config=_algo(objective="max@4"))
    with pytest.raises(ValueError, match=r"non-finite.*unscorable='zero'"):
        compute_advantage(_batch(seed=2, nan_rows=(1,)), adv_estimator=rv.NAME,
                          config=_algo(objective="max@4"))
