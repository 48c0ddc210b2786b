"""RankGradGRPOTrainer with a K schedule and its logged metrics, against a real trl.GRPOTrainer run
(tiny offline model, CPU; the fixtures are test_trl.py's).

The references: the K a schedule gives at each step is worked out by hand; advantages are
``rankgrad.advantages`` on the dense layout with that K; logged max@k values are enumeration over all
k-subsets of the rewards the reward function returned.
"""

from __future__ import annotations

import math
from itertools import combinations

import pytest

pytest.importorskip("trl")
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rankgrad import schedules  # noqa: E402
from tests.integrations.test_trl import (  # noqa: E402
    KEYS,
    PROMPTS,
    N,
    _binary,
    _config,
    _dense_reference,
    _generate,
    _recording_reward,
    _trainer,
    contains_a,
)


def _enum_max(y: np.ndarray, k: int) -> float:
    return float(np.mean([max(y[list(c)]) for c in combinations(range(len(y)), k)]))


def test_k_schedule_sets_the_objective_of_each_step_and_everything_is_logged(tmp_path):
    """linear(3, 1, 2): K = 3, 2, 1 at steps 0, 1, 2 (3 − t, exact at integer points)."""
    rewards_log: list[torch.Tensor] = []
    schedule = schedules.objective("max@{k}", k=schedules.linear(3, 1, 2))
    trainer = _trainer(tmp_path, _recording_reward(_binary, rewards_log), objective=schedule)
    assert trainer.rankgrad_objective.name == "max@3" and trainer.rankgrad_schedule is schedule
    seen: list[tuple[int, dict]] = []
    generate = trainer._generate_and_score_completions

    def recording(inputs):
        step = trainer.state.global_step
        out = generate(inputs)
        seen.append((step, {k: out[k].detach().clone() for k in KEYS}))
        return out

    trainer._generate_and_score_completions = recording
    trainer.train()

    assert [step for step, _ in seen] == [0, 1, 2]
    varied = 0
    for (step, out), rewards in zip(seen, rewards_log, strict=True):
        want = _dense_reference(rewards, N, f"max@{3 - step}")
        torch.testing.assert_close(out["advantages"], want, atol=1e-6, rtol=0)
        varied += int((rewards.view(-1, N).std(1) > 0).sum())
    assert varied > 0, "the seeded run should contain groups with both outcomes"
    logs = [e for e in trainer.state.log_history if "rankgrad/objective_k" in e]
    assert [e["rankgrad/objective_k"] for e in logs] == [3.0, 2.0, 1.0]
    assert [e["rankgrad/schedule/k"] for e in logs] == [3.0, 2.0, 1.0]
    assert trainer.rankgrad_objective.name == "max@1"
    for entry, rewards in zip(logs, rewards_log, strict=True):
        groups = rewards.view(-1, N).double().numpy()
        for k in (1, 2, 4):
            want = np.mean([_enum_max(g, k) for g in groups])
            assert entry[f"rankgrad/max@{k}"] == pytest.approx(want, abs=1e-6)
        k = int(entry["rankgrad/objective_k"])
        want = np.mean([_enum_max(g, k) for g in groups])
        assert entry["rankgrad/objective"] == pytest.approx(want, abs=1e-6)
        constant = np.mean([len(set(g.tolist())) == 1 for g in groups])
        assert entry["rankgrad/frac_constant_groups"] == pytest.approx(constant)
        assert entry["rankgrad/frac_unscorable"] == 0.0
        for key in ("rankgrad/frac_zero_advantage", "rankgrad/frac_zero_advantage_groups",
                    "rankgrad/advantage_mean_abs", "rankgrad/advantage_max_abs"):
            assert math.isfinite(entry[key])


def test_zero_advantage_fractions_are_logged_per_batch(tmp_path):
    """One generation batch, direct call: the logged fractions are those of its groups (binary max@2:
    a group is all-zero iff it is constant or has at least N − K + 1 = 3 successes)."""
    rewards_log: list[torch.Tensor] = []
    trainer = _trainer(tmp_path, _recording_reward(_binary, rewards_log), objective="max@2")
    out = _generate(trainer, PROMPTS, N)
    groups = rewards_log[-1].view(-1, N)
    c = groups.sum(1)
    metrics = trainer._metrics["train"]
    zero_groups, constant = ((c == 0) | (c >= 3)).float().mean(), ((c == 0) | (c == N)).float().mean()
    assert metrics["rankgrad/frac_zero_advantage_groups"][-1] == pytest.approx(zero_groups)
    assert metrics["rankgrad/frac_constant_groups"][-1] == pytest.approx(constant)
    zero = (out["advantages"] == 0).float().mean()
    assert metrics["rankgrad/frac_zero_advantage"][-1] == pytest.approx(zero)
    assert metrics["rankgrad/objective_k"][-1] == 2.0 and "rankgrad/schedule/k" not in metrics


def test_mixture_schedule_logs_its_weight(tmp_path, monkeypatch):
    rewards_log: list[torch.Tensor] = []
    mix = schedules.mixture("max@3", "mean@3", schedules.linear_weight(0.0, 0.5, 4))
    trainer = _trainer(tmp_path, _recording_reward(_binary, rewards_log), objective=mix)
    monkeypatch.setattr(trainer.state, "global_step", 2)
    out = _generate(trainer, PROMPTS, N)
    metrics = trainer._metrics["train"]
    assert metrics["rankgrad/schedule/mix_weight"][-1] == 0.25
    assert trainer.rankgrad_objective == mix(2)
    want = _dense_reference(rewards_log[-1], N, mix(2))
    torch.testing.assert_close(out["advantages"], want, atol=1e-6, rtol=0)


def test_schedule_k_is_checked_against_num_generations(tmp_path):
    with pytest.raises(ValueError, match=r"K <= num_generations - 1: K=4 but num_generations=4"):
        _trainer(tmp_path, contains_a, objective=schedules.objective("max@{k}", k=schedules.linear(2, 4, 10)))
    # A callable's K is known only when it is called: checked at each generation batch.
    trainer = _trainer(tmp_path, contains_a, objective=lambda step: "max@2" if step < 5 else "max@4")
    _generate(trainer, PROMPTS[:1], N)
    trainer.state.global_step = 5
    with pytest.raises(ValueError, match=r"K <= num_generations - 1: K=4 but num_generations=4"):
        _generate(trainer, PROMPTS[:1], N)


def test_bad_schedules_fail_before_the_model_loads(tmp_path):
    with pytest.raises(ValueError, match=r"objective: 'max@\{k\}' is a template"):
        _trainer(tmp_path, contains_a, objective="max@{k}")
    with pytest.raises(ValueError, match="objective"):  # GRPO's std form is for the mean: the end K=2 fails
        _trainer(tmp_path, contains_a, estimator="grpo",
                 objective=schedules.mixture("mean@2", "max@2", schedules.linear_weight(0.0, 1.0, 5)))


def test_eval_warning_uses_the_largest_k_of_the_schedule(tmp_path):
    config = _config(tmp_path, num_generations_eval=3, per_device_eval_batch_size=6)
    with pytest.warns(UserWarning, match=r"K \+ 1 = 4.*the largest K of the schedule"):
        _trainer(tmp_path, contains_a, config=config,
                 objective=schedules.objective("max@{k}", k=schedules.linear(1, 3, 10)))
