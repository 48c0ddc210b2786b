"""The verl adapter's K schedules, training metrics and unbiased validation metrics, through verl's own
code (CPU; no Ray cluster). Fixtures are test_verl.py's.

The references: K per step worked out by hand from the schedule; max@k by enumeration over all
k-subsets; pass@k of a policy with success rate p by its definition 1 − (1 − p)^k. verl's own
``best@k`` (a bootstrap of k draws with replacement) is shown to differ on the same data.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from itertools import combinations, product

import pytest

verl = pytest.importorskip("verl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import metric_utils, ray_trainer  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402
from verl.utils.skip import SkipManager  # noqa: E402

import rankgrad.integrations.verl as rv  # noqa: E402
from tests.integrations.test_verl import _algo, _batch, _reference  # noqa: E402

LINEAR = {"kind": "linear", "start": 4, "end": 2, "steps": 4}  # K = 4, 4, 3, 3, 2 at steps 0..4 (halves up)


def _enum_max(y, k: int) -> float:
    y = list(y)
    if len(y) < k:
        return math.nan
    return float(np.mean([max(y[i] for i in c) for c in combinations(range(len(y)), k)]))


@pytest.fixture
def verl_step():
    """Set verl's step counter as its trainers do (SkipManager.set_step(global_steps)); restore after."""
    before = SkipManager.step
    rv.set_step(None)
    rv.pop_metrics()  # what earlier calls (other test files) recorded
    yield SkipManager.set_step
    SkipManager.step = before
    rv.set_step(None)
    rv.pop_metrics()


def _full_batch(seed: int) -> DataProto:
    """test_verl's batch plus the tensors verl's compute_data_metrics reads."""
    data = _batch(seed=seed)
    b, t = data.batch["response_mask"].shape
    data.batch["token_level_scores"] = data.batch["token_level_rewards"].clone()
    data.batch["prompts"] = torch.ones(b, 3, dtype=torch.int64)
    data.batch["responses"] = torch.ones(b, t, dtype=torch.int64)
    prompt = torch.ones(b, 3, dtype=torch.int64)
    data.batch["attention_mask"] = torch.cat([prompt, data.batch["response_mask"]], 1)
    return data


# ------------------------------------------------------------------------------ K schedules
@pytest.mark.parametrize("global_steps, k", [(1, 4), (2, 4), (3, 3), (4, 3), (5, 2), (50, 2)])
def test_k_schedule_follows_verls_step_counter(verl_step, global_steps, k):
    verl_step(global_steps)
    data = _batch(seed=global_steps)
    out = compute_advantage(data, adv_estimator=rv.NAME, config=_algo(objective="max@{k}", k_schedule=LINEAR))
    torch.testing.assert_close(out.batch["advantages"], _reference(data, f"max@{k}"), atol=1e-6, rtol=0)
    logged = rv.pop_metrics()
    assert logged["rankgrad/objective_k"] == k and logged["rankgrad/schedule/k"] == k
    assert logged["rankgrad/schedule/step"] == global_steps - 1


def test_hydra_command_line_forms_reach_the_schedule(verl_step):
    """The overrides the module docstring shows, composed with verl's own config."""
    from hydra import compose, initialize_config_dir

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    k_schedule = "+algorithm.rankgrad.k_schedule={kind: linear, start: 4, end: 2, steps: 4}"
    forms = [["+algorithm.rankgrad.objective=max", k_schedule],
             ["+algorithm.rankgrad.objective='max@{k}'", k_schedule]]
    verl_step(3)  # step 2: K = 3
    data = _batch(seed=9)
    for overrides in forms:
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            cfg = compose(config_name="ppo_trainer",
                          overrides=["algorithm.adv_estimator=rankgrad", *overrides])
        out = compute_advantage(data, adv_estimator=rv.NAME, config=cfg.algorithm)
        torch.testing.assert_close(out.batch["advantages"], _reference(data, "max@3"), atol=1e-6, rtol=0)


def test_set_step_takes_precedence_and_no_step_is_an_error(verl_step):
    algo = _algo(objective="max", k_schedule={"kind": "cosine", "start": 4, "end": 2, "steps": 2})
    data = _batch(seed=3)
    with pytest.raises(ValueError, match=r"schedules the objective, but no training step is known.*set_step"):
        compute_advantage(data, adv_estimator=rv.NAME, config=algo)
    verl_step(1)  # step 0: K = 4
    rv.set_step(2)  # K = 2 wins
    out = compute_advantage(data, adv_estimator=rv.NAME, config=algo)
    torch.testing.assert_close(out.batch["advantages"], _reference(data, "max@2"), atol=1e-6, rtol=0)
    rv.set_step(None)
    out = compute_advantage(data, adv_estimator=rv.NAME, config=algo)
    torch.testing.assert_close(out.batch["advantages"], _reference(data, "max@4"), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"^step: expected a step >= 0"):
        rv.set_step(-1)


def test_mixture_weight_schedule(verl_step):
    verl_step(3)  # step 2 of 4: λ = 0.25
    algo = _algo(objective="max@{k}", k=4, mix_objective="mean@{k}",
                 mix_weight={"kind": "linear", "start": 0.0, "end": 0.5, "steps": 4})
    data = _batch(seed=8)
    out = compute_advantage(data, adv_estimator=rv.NAME, config=algo)
    mixed = 0.75 * _reference(data, "max@4") + 0.25 * _reference(data, "mean@4")  # advantages are linear in w
    torch.testing.assert_close(out.batch["advantages"], mixed, atol=1e-6, rtol=0)
    assert rv.pop_metrics()["rankgrad/schedule/mix_weight"] == 0.25


@pytest.mark.parametrize(
    "options, match",
    [
        ({"objective": "max@{k}"}, r"objective='max@\{k\}' has a \{k\} field but no K is given"),
        ({"objective": "max@4", "k_schedule": LINEAR},
         r"k_schedule given, but .*objective='max@4' already names K"),
        ({"objective": "max", "k": 4, "k_schedule": LINEAR},
         r"k and algorithm\.rankgrad\.k_schedule both given"),
        ({"objective": "max", "k_schedule": {"kind": "linear", "start": 4, "end": 2}},
         r"algorithm\.rankgrad\.k_schedule: kind 'linear' takes exactly .*missing \['steps'\]"),
        ({"objective": "max", "k_schedule": {**LINEAR, "steps": 0}},
         r"k_schedule\.steps: expected steps >= 1"),
        ({"objective": "max", "k_schedule": {**LINEAR, "start": 2.5}},
         r"k_schedule\.start: expected an integer K"),
        ({"objective": "max@4", "mix_objective": "mean@4"},
         r"mix_objective and algorithm\.rankgrad\.mix_weight go"),
        ({"objective": "max@4", "mix_objective": "max@2.5", "mix_weight": 0.5},
         r"advantages need an integer K"),
        ({"objective": "max@4", "mix_objective": "mean@4", "mix_weight": 1.5}, r"within \[0, 1\]"),
        ({"objective": "max@4", "metrics": "yes"}, r"metrics: expected true or false"),
        ({"objective": "max@4", "metric_ks": [0, 2]}, r"metric_ks: expected integers >= 1"),
    ],
)
def test_bad_schedule_config_is_named(options, match):
    with pytest.raises(ValueError, match=match):
        compute_advantage(_batch(seed=1), adv_estimator=rv.NAME, config=_algo(**options))


# ------------------------------------------------------------------------- training metrics
def test_metrics_reach_verls_metrics_dict_through_compute_data_metrics(verl_step):
    data = _full_batch(seed=4)
    out = compute_advantage(data, adv_estimator=rv.NAME, config=_algo(objective="max@4", metric_ks=[1, 2, 5]))
    metrics = ray_trainer.compute_data_metrics(batch=out, use_critic=False)  # the name verl's fit() calls
    assert "critic/score/mean" in metrics  # verl's own metrics are still there
    scores = data.batch["token_level_rewards"].sum(-1).double().numpy()
    uids = data.non_tensor_batch["uid"]
    groups = [scores[uids == u] for u in dict.fromkeys(uids.tolist())]
    for k in (1, 2, 5):
        want = np.mean([_enum_max(g, k) for g in groups])
        assert metrics[f"rankgrad/max@{k}"] == pytest.approx(want, abs=1e-6)
    want = np.mean([_enum_max(g, 4) for g in groups])
    assert metrics["rankgrad/objective"] == pytest.approx(want, abs=1e-6)
    assert metrics["rankgrad/objective_k"] == 4.0
    constant = np.mean([len(set(g)) == 1 for g in groups])
    assert metrics["rankgrad/frac_constant_groups"] == pytest.approx(constant)
    adv = out.batch["advantages"][:, 0]  # every response has its first token
    assert metrics["rankgrad/frac_zero_advantage"] == pytest.approx(float((adv == 0).float().mean()))
    again = ray_trainer.compute_data_metrics(batch=out, use_critic=False)
    assert not any(key.startswith("rankgrad/") for key in again)  # consumed once, by the step that made them


def test_metrics_can_be_switched_off(verl_step):
    compute_advantage(_batch(seed=6), adv_estimator=rv.NAME, config=_algo(objective="max@4", metrics=False))
    assert rv.pop_metrics() == {}


def test_metrics_of_several_calls_in_one_step_are_averaged(verl_step):
    values = []
    for seed in (11, 12):
        data = _batch(seed=seed)
        compute_advantage(data, adv_estimator=rv.NAME, config=_algo(objective="max@2"))
        s = data.batch["token_level_rewards"].sum(-1).double().numpy()
        u = data.non_tensor_batch["uid"]
        values.append(np.mean([_enum_max(s[u == g], 2) for g in dict.fromkeys(u.tolist())]))
    assert rv.pop_metrics()["rankgrad/objective"] == pytest.approx(np.mean(values), abs=1e-6)


# ---------------------------------------------------------------------- validation: best@k
def test_best_at_k_is_biased_where_ours_matches_enumeration():
    """1 correct of 4: the only 4-subset passes (1.0); verl's bootstrap says about 1 − (3/4)^4 = 0.684."""
    sources, uids, acc = ["src"] * 4, ["q"] * 4, [1.0, 0.0, 0.0, 0.0]
    verl_m = metric_utils.process_validation_metrics(sources, uids, {"acc": acc})["src"]["acc"]
    ours = rv.validation_metrics(sources, uids, {"acc": acc})["src"]["acc"]
    assert ours == {"best@2/unbiased": 0.5, "best@4/unbiased": 1.0, "worst@2/unbiased": 0.0,
                    "worst@4/unbiased": 0.0}
    assert ours["best@4/unbiased"] == _enum_max(acc, 4) and ours["best@2/unbiased"] == _enum_max(acc, 2)
    assert verl_m["best@4/mean"] == pytest.approx(1 - 0.75**4, abs=0.05)
    assert verl_m["best@4/mean"] < 0.75


def _ours_one(acc: list, k: int) -> float:
    nested = rv.validation_metrics(["s"] * len(acc), ["q"] * len(acc), {"acc": acc})
    return nested["s"]["acc"][f"best@{k}/unbiased"]


def _verl_one(acc: list, k: int) -> float:
    nested = metric_utils.process_validation_metrics(["s"] * len(acc), ["q"] * len(acc), {"acc": acc})
    return nested["s"]["acc"][f"best@{k}/mean"]


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_in_expectation_ours_is_pass_at_k_and_verls_best_at_k_is_not(p):
    """Over every outcome of 4 responses with success rate p (probability-weighted): E[ours] is
    pass@k = 1 − (1 − p)^k exactly; verl's best@k misses it by far more than its resampling noise."""
    outcomes = list(product([0.0, 1.0], repeat=4))
    prob = np.array([p ** sum(o) * (1 - p) ** (4 - sum(o)) for o in outcomes])
    uids = [f"u{i}" for i, o in enumerate(outcomes) for _ in o]
    acc = [x for o in outcomes for x in o]
    sources = ["src"] * len(acc)
    verl_nested = metric_utils.process_validation_metrics(sources, uids, {"acc": acc})  # averages over uids
    for k in (2, 4):
        ours = np.array([_ours_one(list(o), k) for o in outcomes])
        assert float(prob @ ours) == pytest.approx(1 - (1 - p) ** k, abs=1e-12)
        per_uid = [_verl_one(list(o), k) for o in outcomes]
        assert abs(float(prob @ np.array(per_uid)) - (1 - (1 - p) ** k)) > 0.03  # its bias; noise ~0.004
        # the unweighted average verl reports over these 16 prompts, against ours on the same data
        ours_flat = rv.validation_metrics(sources, uids, {"acc": acc})["src"]["acc"][f"best@{k}/unbiased"]
        assert ours_flat == pytest.approx(ours.mean(), abs=1e-12)
        assert abs(verl_nested["src"]["acc"][f"best@{k}/mean"] - ours_flat) > 0.02


def test_validation_metrics_on_ragged_prompts_and_several_sources():
    rng = np.random.default_rng(2)
    sizes = {("a", "p1"): 3, ("a", "p2"): 6, ("b", "p3"): 4, ("b", "p4"): 1}
    rows = [(src, uid) for (src, uid), n in sizes.items() for _ in range(n)]
    order = rng.permutation(len(rows))
    sources = [rows[i][0] for i in order]
    uids = [rows[i][1] for i in order]
    reward = rng.normal(size=len(rows)).round(2).tolist()
    pred = ["x"] * len(rows)  # strings are skipped, as verl does
    extra = [None if i % 5 == 0 else float(i) for i in range(len(rows))]  # None: not a sample
    out = rv.validation_metrics(sources, uids, {"reward": reward, "pred": pred, "extra": extra})
    assert set(out) == {"a", "b"} and set(out["a"]) == {"reward", "extra"}
    for src in ("a", "b"):
        for name, values in (("reward", reward), ("extra", extra)):
            per = {}
            for uid in {u for s, u in rows if s == src}:
                rows_of = zip(values, sources, uids, strict=True)
                y = [v for v, s, u in rows_of if s == src and u == uid and v is not None]
                for n in rv._gen_ns(len(y)):
                    per.setdefault(f"best@{n}/unbiased", []).append(_enum_max(y, n))
                    per.setdefault(f"worst@{n}/unbiased", []).append(-_enum_max([-v for v in y], n))
            got = out[src].get(name, {})
            assert set(got) == set(per)
            for key, vals in per.items():
                assert got[key] == pytest.approx(np.mean(vals), abs=1e-12)


def test_expected_acc_counts_follow_verls_rule():
    """A prompt expected 4 sessions but produced 2 acc values: the 2 missing count as 0 in acc;
    acc_success_only keeps the 2 observed (verl's process_validation_metrics does the same)."""
    sources, uids, acc = ["s"] * 3, ["q", "q", "r"], [1.0, 1.0, 0.0]
    out = rv.validation_metrics(sources, uids, {"acc": acc}, expected_acc_counts={("s", "q"): 4})
    assert out["s"]["acc"]["best@4/unbiased"] == 1.0  # q: {1, 1, 0, 0}; r has one response: no N
    assert out["s"]["acc"]["best@2/unbiased"] == pytest.approx(_enum_max([1, 1, 0, 0], 2))
    assert out["s"]["acc_success_only"] == {"best@2/unbiased": 1.0, "worst@2/unbiased": 1.0}
    verl_m = metric_utils.process_validation_metrics(sources, uids, {"acc": acc},
                                                     expected_acc_counts={("s", "q"): 4})
    assert set(verl_m["s"]) == set(out["s"]) == {"acc", "acc_success_only"}
    assert verl_m["s"]["acc"]["mean@4"] == pytest.approx(0.5)  # verl counted the 2 missing as 0 too


# --------------------------------------------------------------- switching verl's validation
@pytest.fixture
def unbiased_validation():
    rv.use_unbiased_validation()
    yield
    rv.use_unbiased_validation(False)


def test_switch_replaces_verls_bootstrap_in_its_trainer(unbiased_validation):
    acc = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    sources, uids = ["gsm8k"] * 8, ["a"] * 4 + ["b"] * 4
    infos = {"reward": acc, "acc": acc}
    metrics = ray_trainer.RayPPOTrainer._val_metrics_update(None, np.array(sources), uids, infos, [])
    want4 = np.mean([_enum_max(acc[:4], 4), _enum_max(acc[4:], 4)])
    assert metrics["val-core/gsm8k/acc/best@4/unbiased"] == pytest.approx(want4)
    assert metrics["val-aux/gsm8k/acc/best@2/unbiased"] == pytest.approx(
        np.mean([_enum_max(acc[:4], 2), _enum_max(acc[4:], 2)]))
    assert metrics["val-core/gsm8k/acc/mean@4"] == pytest.approx(np.mean(acc))  # verl's own, unchanged
    assert not any("/best@4/mean" in key or "/worst@4/std" in key for key in metrics)
    kept = rv.process_validation_metrics(sources, uids, infos, keep_bootstrap=True)["gsm8k"]["acc"]
    assert {"best@4/mean", "best@4/unbiased"} <= set(kept)
    rv.use_unbiased_validation(False)
    metrics = ray_trainer.RayPPOTrainer._val_metrics_update(None, np.array(sources), uids, infos, [])
    assert "val-core/gsm8k/acc/best@4/mean" in metrics and not any("unbiased" in key for key in metrics)


def test_environment_switch_applies_when_verl_loads_the_plugin():
    code = (
        "import verl\n"
        "from verl.trainer.ppo import ray_trainer\n"
        "fn = ray_trainer.process_validation_metrics\n"
        "print(fn.__module__, hasattr(fn, '__rankgrad_wrapped__'))\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "rankgrad", "RANKGRAD_VERL_VALIDATION": "unbiased"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["verl.trainer.ppo.metric_utils", "True"]
