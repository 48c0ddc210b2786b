"""The verl ``rankgrad`` advantage estimator with a mixture objective across K, through verl's own
``compute_advantage``: against brute force over K-subsets (tests/brute.py) of each group's scores.

Runs only where verl is installed (``.venv-verl``); batches come from tests/integrations/_token_batches.py.
"""

from __future__ import annotations

import pytest

verl = pytest.importorskip("verl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402

import rankgrad.integrations.verl as rv  # noqa: E402
from tests import brute  # noqa: E402
from tests.integrations._token_batches import token_batch  # noqa: E402

SIZES = (6, 9, 5, 7)  # every group has N >= K + 1 = 5


def _run(seed: int, **options) -> tuple[torch.Tensor, DataProto]:
    rewards, mask, uids = token_batch(SIZES, seed, dense=True)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": torch.from_numpy(rewards), "response_mask": torch.from_numpy(mask)},
        non_tensors={"uid": uids},
    )
    algo = OmegaConf.create({"adv_estimator": rv.NAME, "norm_adv_by_std_in_grpo": True, "rankgrad": options})
    out = compute_advantage(data, adv_estimator=rv.NAME, config=algo)
    return out.batch["advantages"], data


def _adv(y: np.ndarray, w: list[float]) -> np.ndarray:
    return brute.include_one(y, np.array(w)) - brute.leave_one_out(y, np.array(w))


def _brute(data: DataProto, parts: list[tuple[float, list[float]]]) -> torch.Tensor:
    """Σ_j c_j (K_j / K) a^{(j)} per uid group of the row scores, broadcast under the response mask."""
    k = max(len(w) for _, w in parts)
    scores = data.batch["token_level_rewards"].double().sum(-1).numpy()
    uids = data.non_tensor_batch["uid"]
    adv = np.zeros(scores.size)
    for u in set(uids.tolist()):
        rows = np.flatnonzero(uids == u)
        y = scores[rows]
        adv[rows] = sum(c * (len(w) / k) * _adv(y, w)
                        for c, w in parts)
    return torch.tensor(adv, dtype=torch.float32)[:, None] * data.batch["response_mask"]


@pytest.mark.parametrize(
    "spec, parts",
    [
        ("0.5*mean + 0.5*max@4", [(0.5, [1.0]), (0.5, [1.0, 0.0, 0.0, 0.0])]),
        ("max@4 - 0.1*min@2", [(1.0, [1.0, 0.0, 0.0, 0.0]), (-0.1, [0.0, 1.0])]),
    ],
)
def test_mixture_string_against_brute_force(spec, parts):
    adv, data = _run(len(spec), objective=spec)
    want = _brute(data, parts)
    torch.testing.assert_close(adv, want, atol=1e-5, rtol=0)
    assert want.abs().max() > 0.05


def test_mix_objective_of_another_k_against_brute_force():
    """objective=max@4 blended with mix_objective=mean (K = 1), λ = 0.25: lifted to K = 4."""
    adv, data = _run(3, objective="max@4", mix_objective="mean", mix_weight=0.25)
    want = _brute(data, [(0.75, [1.0, 0.0, 0.0, 0.0]), (0.25, [1.0])])
    torch.testing.assert_close(adv, want, atol=1e-5, rtol=0)
