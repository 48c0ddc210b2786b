"""``python -m verl_e2e.launch WORKDIR [STEPS]`` (from ``tests/integrations``, in ``.venv-verl``): build the
inputs in WORKDIR and run verl's PPO trainer.

Runs ``python -m verl.trainer.main_ppo`` with ``algorithm.adv_estimator=rankgrad`` and
``+algorithm.rankgrad.objective=max@4`` on CPU: Ray with 32 logical CPUs and one logical GPU, FSDP2 on
gloo, the ``hf`` rollout with 8 samples per prompt, 2 prompts per step. The recorders write to
``WORKDIR/record``; verl's log goes to ``WORKDIR/verl.log``. The exit status is the trainer's.

What verl 0.9.1 needs to run on CPU, besides :mod:`verl_e2e.plugin`: Ray with more logical CPUs than the
machine has (each transfer-queue actor takes one) and one storage unit; one logical Ray GPU (verl places
its workers on GPU bundles); ``VERL_ENGINE_DEVICE=cuda`` (the fsdp2 engine is registered for cuda only);
SDPA attention (verl turns FlashAttention 2 on); rollout tensor parallel size 1; no ``CUDA_VISIBLE_DEVICES``
(Ray refuses 1 GPU with an empty list); a short ``RAY_TMPDIR`` (Ray's socket paths stay under 108 bytes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import build

HERE = Path(__file__).resolve().parent
OBJECTIVE = "max@4"
N = 8  # rollouts per prompt (> K = 4)
BATCH = 2  # prompts per step


def overrides(work: Path, steps: int) -> list[str]:
    """The Hydra overrides of the run (see the module docstring)."""
    data = str(work / "data.parquet")
    return [
        "algorithm.adv_estimator=rankgrad",
        f"+algorithm.rankgrad.objective={OBJECTIVE}",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={data}", f"data.val_files={data}",
        f"data.train_batch_size={BATCH}", "data.max_prompt_length=8", "data.max_response_length=6",
        "data.filter_overlong_prompts=False", "data.dataloader_num_workers=0",
        f"actor_rollout_ref.model.path={work / 'model'}",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.use_remove_padding=False",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.actor.optim.lr=0.05",
        "actor_rollout_ref.actor.optim.weight_decay=0",  # parameters move only through the policy loss
        f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={BATCH * N}",
        "actor_rollout_ref.actor.ppo_epochs=1",
        "actor_rollout_ref.actor.use_kl_loss=False", "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.actor.fsdp_config.param_offload=False",
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload=False",
        "actor_rollout_ref.rollout.name=hf", "actor_rollout_ref.rollout.mode=async",
        f"actor_rollout_ref.rollout.n={N}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={BATCH * N}",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        f"reward.custom_reward_function.path={work / 'reward.py'}",
        "reward.custom_reward_function.name=compute_score",
        "reward.num_workers=1",
        "trainer.device=cpu", "trainer.n_gpus_per_node=1", "trainer.nnodes=1",
        f"trainer.total_training_steps={steps}", "trainer.total_epochs=100",
        "trainer.logger=[console]", "trainer.val_before_train=False", "trainer.test_freq=-1",
        "trainer.save_freq=-1", "trainer.critic_warmup=0",
        f"trainer.default_local_dir={work / 'ckpt'}",
        "trainer.project_name=verl_e2e", "trainer.experiment_name=rankgrad",
        "+ray_kwargs.ray_init.num_cpus=32", "+ray_kwargs.ray_init.num_gpus=1",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    ]


def environment(work: Path, ray_tmp: Path) -> dict[str, str]:
    """The trainer's environment: the plugin in every process, CPU platform, recorders on."""
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "VERL_USE_EXTERNAL_MODULES": "verl_e2e.plugin",
        "VERL_PLATFORM": "cpu",
        "VERL_ENGINE_DEVICE": "cuda",  # verl registers the fsdp2 engine under cuda only; it runs on CPU
        "RANKGRAD_VERL_E2E_RECORD": str(work / "record"),
        "RAY_TMPDIR": str(ray_tmp),  # short: Ray's socket paths must stay under 108 bytes
        "RAY_DEDUP_LOGS": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
    })
    return env


def prepare(work: Path) -> None:
    """Build the model, data and reward file in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    build.save_model(work / "model")
    build.save_data(work / "data.parquet")
    build.save_reward(work / "reward.py")


@dataclass(frozen=True)
class Result:
    """A finished run: the trainer's exit status, wall seconds (build + trainer), and the session id of
    its processes (all killed on return)."""

    returncode: int
    seconds: float
    session: int


def session_processes(session: int) -> list[int]:
    """Pids of the live processes of session ``session`` (Linux /proc; empty elsewhere)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # fields after "comm)": state ppid pgrp session
            pids.append(int(stat.parent.name))
    return pids


def run(work: Path, steps: int = 2, timeout: float = 480) -> Result:
    """Prepare ``work`` and run the trainer in a new session (log in ``work/verl.log``).

    Whatever happens, every process left in that session (Ray's) is killed and Ray's temporary folder
    removed. Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds.
    """
    start = time.perf_counter()
    prepare(work)
    ray_tmp = Path(tempfile.mkdtemp(prefix="rgray-", dir="/tmp"))
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", *overrides(work, steps)]
    try:
        with open(work / "verl.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=environment(work, ray_tmp),
                                    cwd=str(work), start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            finally:
                for pid in [proc.pid, *session_processes(proc.pid)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return Result(rc, time.perf_counter() - start, proc.pid)


if __name__ == "__main__":
    out = run(Path(sys.argv[1]).resolve(), int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    print(f"rc {out.returncode}, {out.seconds:.1f} s")
    sys.exit(out.returncode)
