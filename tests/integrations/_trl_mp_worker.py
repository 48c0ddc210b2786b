"""Worker of test_trl_multiprocess.py, run in each process by ``accelerate launch --num_processes 2``.

Trains RankGradGRPOTrainer or RankGradRLOOTrainer (argv[2]: ``grpo`` / ``rloo``) for 2 steps on CPU
(gloo) with test_trl.py's tiny offline Llama and character tokenizer, and writes
``<argv[1]>/rank<process_index>.json`` holding, per generation batch, what this process saw:

- ``prompts`` / ``rewards``: the local prompts and the rewards its reward function returned (TRL gathers
  them in process order, so rank 0's followed by rank 1's are the batch's rewards);
- ``trl``: the advantages TRL itself computed, before the adapter replaced them;
- ``gen``: the batch the adapter returned (prompt/completion ids, advantages), before TRL shuffles it;
- ``loss``: the rows and advantages the loss consumed.

Nothing is compared here: the test reads the files.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `tests` is importable
warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer  # noqa: E402

from rankgrad.integrations.trl import RankGradGRPOTrainer, RankGradRLOOTrainer  # noqa: E402
from tests.integrations.test_trl import _model, _tokenizer  # noqa: E402

N = 4  # num_generations
PER_DEVICE = 6  # 2 processes x 6 = 12 rollouts = 3 groups per step; group 1 straddles the two processes
OBJECTIVE = "max@3"
PROMPTS = ["abc", "fed", "hg", "bead", "ga", "dch"]
KINDS = {
    "grpo": (RankGradGRPOTrainer, GRPOTrainer, GRPOConfig,
             dict(loss_type="dr_grpo", activation_checkpointing=False)),
    "rloo": (RankGradRLOOTrainer, RLOOTrainer, RLOOConfig, dict(beta=0.0, activation_checkpointing=False)),
}


def _ids(t: torch.Tensor) -> list:
    return t.detach().cpu().tolist()


def main(out_dir: str, kind: str) -> None:
    adapter, base, config_cls, extra = KINDS[kind]
    log: dict[str, list] = {"prompts": [], "rewards": [], "trl": [], "gen": [], "loss": []}

    def reward(completions, prompts, **kwargs):  # count of 'a' plus half the count of 'b': varied groups
        out = [c.count("a") + 0.5 * c.count("b") for c in completions]
        log["prompts"].append(list(prompts))
        log["rewards"].append(out)
        return out

    original = base._generate_and_score_completions

    def trl_generate(self, inputs):  # TRL's own advantages, before the adapter replaces them
        out = original(self, inputs)
        log["trl"].append(_ids(out["advantages"]))
        return out

    base._generate_and_score_completions = trl_generate
    args = config_cls(
        output_dir=out_dir, per_device_train_batch_size=PER_DEVICE, num_generations=N,
        max_completion_length=8, max_steps=2, learning_rate=1e-2, logging_steps=1, report_to="none",
        save_strategy="no", bf16=False, use_cpu=True, seed=0, disable_tqdm=True, **extra,
    )
    trainer = adapter(
        model=_model(), reward_funcs=reward, args=args, train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=_tokenizer(), objective=OBJECTIVE,
    )
    generate, compute_loss = trainer._generate_and_score_completions, trainer._compute_loss

    def recording_generate(inputs):
        out = generate(inputs)
        log["gen"].append({k: _ids(out[k]) for k in ("prompt_ids", "completion_ids", "advantages")})
        return out

    def recording_loss(model, inputs):
        log["loss"].append({k: _ids(inputs[k]) for k in ("prompt_ids", "completion_ids", "advantages")})
        return compute_loss(model, inputs)

    trainer._generate_and_score_completions, trainer._compute_loss = recording_generate, recording_loss
    trainer.train()

    acc = trainer.accelerator
    record = dict(kind=kind, process_index=acc.process_index, num_processes=acc.num_processes,
                  distributed_type=str(acc.distributed_type), n=N, objective=OBJECTIVE,
                  last_advantages=_ids(trainer.last_advantages), **log)
    Path(out_dir, f"rank{acc.process_index}.json").write_text(json.dumps(record))
    acc.wait_for_everyone()
    acc.end_training()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    # The run has finished and been recorded; skip the interpreter's teardown, which on rank 0 (the host
    # of the rendezvous store) sometimes aborts with "terminate called without an active exception" (a
    # C++ thread of torch.distributed still running while its owner is destroyed).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
