"""RankGradGRPOTrainer and RankGradRLOOTrainer in a real 2-process ``accelerate launch`` run (CPU, gloo),
RankGradRLOOTrainer's own settings, and the refusal of ``trl.experimental.async_grpo``.

Runs only where trl is installed (``make test-trl`` builds .venv-trl). Nothing touches a model hub: the
worker (``_trl_mp_worker.py``) uses test_trl.py's 1-layer Llama built from a config and its
character-level tokenizer.

The references: for each generation batch the rewards the two processes' reward functions returned,
rank 0's then rank 1's (TRL's gather order), grouped in contiguous blocks of N; each process must train
on its slice of ``rankgrad.advantages`` of those groups, which is also checked against brute-force
enumeration of K-subsets (``tests/brute.py``). RLOO's own advantage r_i − mean_{j≠i} r_j is written out
by hand.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

trl = pytest.importorskip("trl")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, RLOOConfig, RLOOTrainer  # noqa: E402

from rankgrad.integrations.trl import RankGradGRPOTrainer, RankGradRLOOTrainer  # noqa: E402
from tests.brute import include_one, leave_one_out  # noqa: E402
from tests.integrations.test_trl import (  # noqa: E402
    PROMPTS,
    N,
    _binary,
    _count,
    _dense_reference,
    _model,
    _recording_reward,
    _tokenizer,
    contains_a,
)

WORKER = Path(__file__).with_name("_trl_mp_worker.py")
WORLD = 2


# ---------------------------------------------------------------- the 2-process run
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path: Path, kind: str) -> list[dict]:
    """``accelerate launch`` the worker in 2 CPU processes; return each process's record (rank order).

    accelerate's ``--cpu`` flag selects its single-process launcher, so the config asks for the
    multi-process (torch elastic) launcher and the trainer's ``use_cpu=True`` makes accelerate pick
    MULTI_CPU with the gloo backend in each process.
    """
    out = tmp_path / kind
    out.mkdir()
    config = tmp_path / f"accelerate_{kind}.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\n"
        f"num_processes: {WORLD}\nnum_machines: 1\nmachine_rank: 0\ngpu_ids: all\n"
        f"main_process_ip: 127.0.0.1\nmain_process_port: {_free_port()}\nrdzv_backend: static\n"
        "same_network: true\nmixed_precision: 'no'\nuse_cpu: false\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", WANDB_DISABLED="true")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), str(WORKER),
           str(out), kind]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"accelerate launch failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    records = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for rank, record in enumerate(records):
        assert (record["process_index"], record["num_processes"]) == (rank, WORLD)
        assert record["distributed_type"] == "DistributedType.MULTI_CPU"
    return records


def _brute_max(y: np.ndarray, k: int) -> np.ndarray:
    """max@k ordergrad advantages of one group by enumeration: include-one minus leave-one-out."""
    w = np.zeros(k)
    w[0] = 1.0
    return include_one(y, w) - leave_one_out(y, w)


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_two_processes_train_on_their_slice_of_the_gathered_advantages(tmp_path, kind):
    records = _launch(tmp_path, kind)
    n, objective = records[0]["n"], records[0]["objective"]
    k = int(objective.split("@")[1])
    steps = len(records[0]["rewards"])
    assert steps == 2
    for record in records:
        assert {len(record[key]) for key in ("rewards", "gen", "loss", "trl")} == {steps}

    straddling = informative = 0
    for step in range(steps):
        prompts = [p for record in records for p in record["prompts"][step]]
        gathered = torch.tensor([r for rec in records for r in rec["rewards"][step]], dtype=torch.float32)
        local = len(records[0]["rewards"][step])
        # TRL's layout: each prompt's N rollouts contiguous across the concatenation of the processes.
        assert len(prompts) == WORLD * local and len(prompts) % n == 0
        assert all(len(set(prompts[g:g + n])) == 1 for g in range(0, len(prompts), n))
        straddling += sum(1 for g in range(0, len(prompts), n) if g // local != (g + n - 1) // local)

        expected = _dense_reference(gathered, n, objective)
        brute = np.concatenate([_brute_max(y, k) for y in gathered.view(-1, n).double().numpy()])
        np.testing.assert_allclose(expected.double().numpy(), brute, atol=1e-6)
        # TRL's own advantages (GRPO's (r − mean)/(std + 1e-4), RLOO's r_i − mean of the others) were
        # computed, and replaced.
        grouped = gathered.view(-1, n)
        if kind == "grpo":
            trl_own = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)
        else:
            trl_own = grouped - (grouped.sum(1, keepdim=True) - grouped) / (n - 1)
        theirs = torch.cat([torch.tensor(record["trl"][step]) for record in records])
        torch.testing.assert_close(theirs, trl_own.reshape(-1), atol=1e-5, rtol=1e-5)
        ours = torch.cat([torch.tensor(record["gen"][step]["advantages"]) for record in records])
        assert (ours - theirs).abs().max() > 1e-3, "TRL's own advantages reached the loss"
        informative += int((grouped.std(1) > 0).sum())

        for rank, record in enumerate(records):
            gen, seen = record["gen"][step], record["loss"][step]
            adv = torch.tensor(gen["advantages"])
            torch.testing.assert_close(adv, expected[rank * local:(rank + 1) * local], atol=1e-6, rtol=0)
            # Every row the loss consumed is a row of this process's generation batch, with its advantage.
            assert len(seen["advantages"]) == local
            rows = {(tuple(p), tuple(c)): a for p, c, a in
                    zip(gen["prompt_ids"], gen["completion_ids"], gen["advantages"], strict=True)}
            for p, c, a in zip(seen["prompt_ids"], seen["completion_ids"], seen["advantages"], strict=True):
                assert rows[(tuple(p), tuple(c))] == pytest.approx(a, abs=1e-6)
            if step == steps - 1:
                last = torch.tensor(record["last_advantages"])
                torch.testing.assert_close(last, expected, atol=1e-6, rtol=0)
    assert straddling > 0, "no group was split across the two processes"
    assert informative > 0, "the seeded run should contain groups with different rewards"


# ---------------------------------------------------------------- RankGradRLOOTrainer, one process
def _rloo_config(tmp_path, **overrides) -> RLOOConfig:
    kw = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=2 * N, num_generations=N,
        max_completion_length=8, max_steps=2, learning_rate=1e-2, logging_steps=1, beta=0.0,
        activation_checkpointing=False,
        report_to="none", save_strategy="no", bf16=False, use_cpu=True, seed=0, disable_tqdm=True,
    )
    kw.update(overrides)
    return RLOOConfig(**kw)


def _rloo(tmp_path, reward, *, config=None, **rankgrad_kw) -> RankGradRLOOTrainer:
    rankgrad_kw.setdefault("objective", "max@3")
    return RankGradRLOOTrainer(
        model=_model(), reward_funcs=reward, args=config or _rloo_config(tmp_path),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}), processing_class=_tokenizer(), **rankgrad_kw,
    )


def _generate(trainer, prompts: list[str], n: int) -> dict:
    trainer.model.train(True)
    return trainer._generate_and_score_completions([{"prompt": p} for p in prompts for _ in range(n)])


def test_rloo_advantages_and_mean_objective_matches_rloo(tmp_path):
    rewards_log: list[torch.Tensor] = []
    trainer = _rloo(tmp_path, _recording_reward(_count, rewards_log), objective="max@3")
    out = _generate(trainer, PROMPTS, N)
    want = _dense_reference(rewards_log[-1], N, "max@3")
    torch.testing.assert_close(out["advantages"], want, atol=1e-6, rtol=0)
    assert "rankgrad/objective" in trainer._metrics["train"]

    # objective="mean", estimator="rloo" is RLOO's own advantage: r_i − (sum of the others) / (N − 1).
    trainer = _rloo(tmp_path, _recording_reward(_count, rewards_log), objective="mean", estimator="rloo")
    out = _generate(trainer, PROMPTS, N)
    g = rewards_log[-1].view(-1, N)
    rloo = g - (g.sum(1, keepdim=True) - g) / (N - 1)
    torch.testing.assert_close(out["advantages"], rloo.reshape(-1), atol=1e-6, rtol=0)


def test_rloo_reward_clip_range_is_applied_before_ranking(tmp_path):
    rewards_log: list[torch.Tensor] = []
    config = _rloo_config(tmp_path, reward_clip_range=(0.0, 1.0))
    trainer = _rloo(tmp_path, _recording_reward(_count, rewards_log), config=config, objective="max@2")
    out = _generate(trainer, PROMPTS, N)
    raw = rewards_log[-1]
    assert (raw > 1).any(), "the seeded batch should contain rewards above the clip range"
    want = _dense_reference(raw.clamp(0, 1), N, "max@2")
    torch.testing.assert_close(out["advantages"], want, atol=1e-6, rtol=0)
    torch.testing.assert_close(trainer.last_rewards, raw.clamp(0, 1))


def test_rloo_real_training_run_moves_parameters(tmp_path):
    rewards_log: list[torch.Tensor] = []
    trainer = _rloo(tmp_path, _recording_reward(_binary, rewards_log), objective="max@3")
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    assert len(rewards_log) == 2
    torch.testing.assert_close(trainer.last_advantages, _dense_reference(rewards_log[-1], N, "max@3"),
                               atol=1e-6, rtol=0)
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"rankgrad/objective", "rankgrad/advantage_mean_abs"} <= logged
    assert any(bool((r.view(-1, N).std(1) > 0).any()) for r in rewards_log), "the seeded run should vary"
    assert any(not torch.equal(v.detach(), before[k]) for k, v in trainer.model.named_parameters())


def test_rloo_settings_that_would_change_the_advantages_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"beta=0\.05.*RLOOConfig\(beta=0\.0"):
        _rloo(tmp_path, contains_a, config=_rloo_config(tmp_path, beta=0.05))
    with pytest.raises(ValueError, match="normalize_advantages=True"):
        _rloo(tmp_path, contains_a, config=_rloo_config(tmp_path, normalize_advantages=True))
    with pytest.raises(ValueError, match=r"K <= num_generations - 1: K=4 but num_generations=4"):
        _rloo(tmp_path, contains_a, objective="max@4")


def test_rloo_contract_guard(tmp_path, monkeypatch):
    monkeypatch.delattr(RLOOTrainer, "_calculate_rewards")
    with pytest.raises(RuntimeError, match=r"RLOOTrainer\._calculate_rewards no longer exists"):
        _rloo(tmp_path, contains_a)


def test_wrong_config_class_names_args(tmp_path):
    grpo_config = GRPOConfig(output_dir=str(tmp_path), num_generations=N, report_to="none", use_cpu=True,
                             activation_checkpointing=False)
    with pytest.raises(TypeError, match=r"args: RankGradRLOOTrainer .* trl\.RLOOConfig, got .*GRPOConfig"):
        _rloo(tmp_path, contains_a, config=grpo_config)
    with pytest.raises(ValueError, match=r"args: RankGradGRPOTrainer .* trl\.GRPOConfig, got .*RLOOConfig"):
        RankGradGRPOTrainer(model=_model(), reward_funcs=contains_a, args=_rloo_config(tmp_path),
                            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
                            processing_class=_tokenizer(), objective="max@3")


# ---------------------------------------------------------------- trl.experimental.async_grpo
def test_async_grpo_is_refused_with_the_reason(tmp_path):
    """AsyncGRPOTrainer is not a GRPOTrainer and scores groups in its rollout worker's child process;
    an AsyncGRPOConfig handed to the adapter is refused before any model is built."""
    async_grpo = pytest.importorskip("trl.experimental.async_grpo")
    assert not issubclass(async_grpo.AsyncGRPOTrainer, trl.GRPOTrainer)
    # What the module docstring says the advantages come from: the rollout loop's per-group scorer.
    from trl.experimental.async_grpo.async_rollout_worker import AsyncRolloutWorker, _AsyncRolloutLoop

    assert callable(getattr(_AsyncRolloutLoop, "_score_group", None))
    assert AsyncRolloutWorker._loop_cls is _AsyncRolloutLoop

    config = async_grpo.AsyncGRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    for adapter in (RankGradGRPOTrainer, RankGradRLOOTrainer):
        # The model name is never loaded: the check runs before TRL's constructor.
        match = r"args: .*AsyncGRPOConfig.*async_grpo is not supported.*_score_group"
        with pytest.raises(TypeError, match=match):
            adapter(model="no/such-model", reward_funcs=contains_a, args=config, objective="max@1")
