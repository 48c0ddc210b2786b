"""A real verl training run with ``algorithm.adv_estimator=rankgrad`` on CPU (about 1 minute).

``verl.trainer.main_ppo`` runs as a subprocess (:mod:`verl_e2e.launch`): Ray, FSDP2 on gloo, a tiny Llama
and a character tokenizer built in code, the HF rollout of :mod:`verl_e2e.hf_rollout`, 2 PPO steps of 2
prompts x 8 rollouts, ``+algorithm.rankgrad.objective=max@4``. The recorders of :mod:`verl_e2e.record` save
what the estimator produced, what the policy loss consumed and a digest of the weights at each sync to the
rollout. The test checks them against ``rankgrad.advantages`` of the recorded scores, grouped by uid and
broadcast under the response mask, and checks that the parameters moved at each step.

Runs only where verl is installed (``.venv-verl``); skipped elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl")

import torch

import rankgrad

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verl_e2e import build, launch
from verl_e2e.hf_rollout import state_digest

STEPS = 2
TIMEOUT_S = 480


def _records(folder: Path, kind: str) -> list[dict]:
    """The ``kind`` records in call order (one writer process per kind)."""
    paths = sorted(folder.glob(f"{kind}-*.pt"), key=lambda p: tuple(int(x) for x in p.stem.split("-")[1:]))
    assert len({p.stem.split("-")[1] for p in paths}) <= 1, f"{kind} records from several processes: {paths}"
    return [torch.load(p, weights_only=False) for p in paths]


def _rows(adv: torch.Tensor, mask: torch.Tensor) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
    """Each row as (response mask, advantages under the mask), sorted: the rows of a batch in any order
    and any right padding."""
    rows = []
    for a, m in zip(adv, mask.bool(), strict=True):
        n = int(m.nonzero().max()) + 1 if m.any() else 0
        rows.append((tuple(int(x) for x in m[:n]), tuple(round(float(x), 6) for x in a[m])))
    return sorted(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One training run; yields (work folder, launch.Result)."""
    work = tmp_path_factory.mktemp("verl_e2e")
    try:
        out = launch.run(work, steps=STEPS, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"verl run exceeded {TIMEOUT_S} s; log tail:\n{_tail(work)}")
    assert out.returncode == 0, f"verl run failed (rc {out.returncode}); log tail:\n{_tail(work)}"
    print(f"verl e2e run: {out.seconds:.1f} s")
    yield work, out


def _tail(work: Path, n: int = 60) -> str:
    log = work / "verl.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else "(no log)"


def test_estimator_output_is_rankgrad_advantages_of_the_scores(run):
    work, _ = run
    calls = _records(work / "record", "estimator")
    assert len(calls) == STEPS
    nonzero = 0
    for call in calls:
        rewards, mask, uids = call["token_level_rewards"], call["response_mask"], call["uid"]
        assert rewards.shape == mask.shape == call["advantages"].shape
        assert sorted({uids.count(u) for u in uids}) == [launch.N]  # BATCH groups of N rollouts
        assert len(set(uids)) == launch.BATCH
        scores = rewards.sum(-1)
        assert torch.all(scores == scores.round()) and torch.all(scores >= 0)  # counts of a character
        expected = rankgrad.advantages(scores.double(), launch.OBJECTIVE, group_ids=uids)[:, None] * mask
        torch.testing.assert_close(call["advantages"].double(), expected, rtol=1e-5, atol=1e-6)
        nonzero += int(torch.count_nonzero(call["advantages"]))
    assert nonzero > 0, "every group was constant: the run did not exercise the estimator"


def test_policy_loss_consumes_the_estimator_rows(run):
    work, _ = run
    calls = _records(work / "record", "estimator")
    losses = _records(work / "record", "loss")
    # one mini-batch and one micro-batch per step (ppo_mini_batch_size = train_batch_size, micro = all)
    assert len(losses) == len(calls) == STEPS
    for call, loss in zip(calls, losses, strict=True):
        consumed = _rows(loss["advantages"], loss["response_mask"])
        assert consumed == _rows(call["advantages"], call["response_mask"])


def test_rollout_gets_the_initial_weights_then_trained_ones(run):
    work, _ = run
    syncs = _records(work / "record", "sync")
    assert [s["global_steps"] for s in syncs] == list(range(STEPS + 1))  # before step 1, after each step
    digests = [s["digest"] for s in syncs]
    initial = build.model(seed=0).state_dict()
    assert digests[0] == state_digest(initial)  # the saved model reached the rollout unchanged
    assert len(set(digests)) == len(digests), "an optimiser step left the parameters unchanged"


def test_no_ray_process_outlives_the_run(run):
    _, out = run
    assert out.seconds < TIMEOUT_S
    assert launch.session_processes(out.session) == []
