"""RankGradGRPOTrainer with a mixture objective across K: the advantages of one generation batch
against brute force over K-subsets (tests/brute.py) of the rewards the reward function returned.

Runs only where trl is installed (``.venv-trl``); the model and tokenizer are the offline ones of
tests/integrations/test_trl.py.
"""

from __future__ import annotations

import numpy as np
import pytest

trl = pytest.importorskip("trl")
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

import torch  # noqa: E402

from rankgrad import schedules  # noqa: E402
from tests import brute  # noqa: E402
from tests.integrations.test_trl import PROMPTS, N, _count, _generate, _recording_reward, _trainer  # noqa: E402


def _adv(y: np.ndarray, w: list[float]) -> np.ndarray:
    return brute.include_one(y, np.array(w)) - brute.leave_one_out(y, np.array(w))


def _brute(rewards: torch.Tensor, parts: list[tuple[float, list[float]]]) -> torch.Tensor:
    """Σ_j c_j (K_j / K) a^{(j)} per group of N consecutive rows, K the largest K_j."""
    k = max(len(w) for _, w in parts)
    out = []
    for y in rewards.double().view(-1, N).numpy():
        out.append(sum(c * (len(w) / k) * _adv(y, w)
                       for c, w in parts))
    return torch.tensor(np.concatenate(out), dtype=torch.float32)


MIX = [(0.5, [1.0]), (0.5, [1.0, 0.0, 0.0])]  # 0.5*mean + 0.5*max@3 (K = 3 < N = 4)


def test_mixture_string_against_brute_force(tmp_path):
    rewards_log: list[torch.Tensor] = []
    trainer = _trainer(tmp_path, _recording_reward(_count, rewards_log), objective="0.5*mean + 0.5*max@3")
    assert trainer.rankgrad_objective.k == 3 and trainer.rankgrad_objective.name == "0.5*mean + 0.5*max@3"
    out = _generate(trainer, PROMPTS, N)
    want = _brute(rewards_log[-1], MIX)
    torch.testing.assert_close(out["advantages"], want, atol=1e-5, rtol=0)
    assert want.abs().max() > 0.05  # not trivially zero


def test_mixture_schedule_across_k_against_brute_force(tmp_path):
    rewards_log: list[torch.Tensor] = []
    objective = schedules.mixture("max@3", "mean", 0.5)  # constant λ = 0.5: the same mixture as above
    trainer = _trainer(tmp_path, _recording_reward(_count, rewards_log), objective=objective)
    out = _generate(trainer, PROMPTS, N)
    torch.testing.assert_close(out["advantages"], _brute(rewards_log[-1], MIX[::-1]), atol=1e-5, rtol=0)


def test_mixture_k_must_be_below_num_generations(tmp_path):
    with pytest.raises(ValueError, match="num_generations"):
        _trainer(tmp_path, _recording_reward(_count, []), objective="mean + max@4")  # K = 4 = N
