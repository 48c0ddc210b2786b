"""RankGradGRPOTrainer against a real trl.GRPOTrainer run (tiny offline model, CPU).

Runs only where trl is installed (``make test-trl`` builds .venv-trl); the main venv skips it.
Nothing touches a model hub: the model is a randomly initialised 1-layer Llama built from a config and
the tokenizer is character-level, built in code.

The reference everywhere is ``rankgrad.advantages`` on the dense ``[G, N]`` layout of the rewards that
the reward function returned (the adapter uses the flat uid layout: a different code path).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

trl = pytest.importorskip("trl")
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

import rankgrad  # noqa: E402
from rankgrad.integrations.trl import RankGradGRPOTrainer  # noqa: E402

N = 4  # num_generations
CHARS = "abcdefgh "  # a small alphabet: "contains 'a'" is true for about half of 8-token completions
PROMPTS = ["abc", "fed", "hg", "bead"]
KEYS = ("prompt_ids", "completion_ids", "advantages")


# ---------------------------------------------------------------- offline model, tokenizer, data
def _tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()  # decode without spaces between tokens
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>")


def _model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=3 + len(CHARS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=0, eos_token_id=1, bos_token_id=None,
    )
    return LlamaForCausalLM(cfg)


def _config(tmp_path, **overrides) -> GRPOConfig:
    kw = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=2 * N, num_generations=N,
        max_completion_length=8, max_steps=3, learning_rate=1e-2, loss_type="dr_grpo", logging_steps=1,
        report_to="none", save_strategy="no", bf16=False, use_cpu=True, activation_checkpointing=False,
        seed=0, disable_tqdm=True,
    )
    kw.update(overrides)
    return GRPOConfig(**kw)


def _recording_reward(score, log: list):
    """A TRL reward function: ``score(completion, index)`` per rollout; appends each call's rewards
    ([B] float32, NaN for None) to ``log``."""

    def recorded_reward(completions, **kwargs):
        out = [score(c, i) for i, c in enumerate(completions)]
        log.append(torch.tensor([float("nan") if r is None else r for r in out], dtype=torch.float32))
        return out

    return recorded_reward


def _binary(completion: str, index: int) -> float:
    return float("a" in completion)


def _count(completion: str, index: int) -> float:
    return completion.count("a") + 0.5 * completion.count("b")


def contains_a(completions, **kwargs):
    return [float("a" in c) for c in completions]


def _trainer(tmp_path, reward, *, config=None, **rankgrad_kw) -> RankGradGRPOTrainer:
    rankgrad_kw.setdefault("objective", "max@3")
    return RankGradGRPOTrainer(
        model=_model(), reward_funcs=reward, args=config or _config(tmp_path),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}), processing_class=_tokenizer(), **rankgrad_kw,
    )


def _generate(trainer: RankGradGRPOTrainer, prompts: list[str], n: int, *, train: bool = True) -> dict:
    """One generation batch as TRL's RepeatSampler lays it out: each prompt n times, contiguously."""
    trainer.model.train(train)
    return trainer._generate_and_score_completions([{"prompt": p} for p in prompts for _ in range(n)])


def _dense_reference(rewards: torch.Tensor, n: int, objective: str, **kw) -> torch.Tensor:
    grouped = rewards.view(-1, n)
    valid = torch.isfinite(grouped)
    adv = rankgrad.advantages(torch.where(valid, grouped, 0.0), objective, mask=valid, **kw)
    return adv.reshape(-1)


# ---------------------------------------------------------------- the real run
def test_training_uses_rankgrad_advantages(tmp_path, monkeypatch):
    rewards_log: list[torch.Tensor] = []
    trl_adv_log: list[torch.Tensor] = []  # TRL's own GRPO advantages, before the subclass replaces them
    original = GRPOTrainer._generate_and_score_completions

    def trl_generate(self, inputs):
        out = original(self, inputs)
        trl_adv_log.append(out["advantages"].detach().clone())
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", trl_generate)
    trainer = _trainer(tmp_path, _recording_reward(_binary, rewards_log), objective="max@3")

    gen_log: list[dict] = []  # the subclass's output (pre-shuffle)
    loss_log: list[dict] = []  # what the loss saw (after TRL's shuffle/split)
    subclass_generate, compute_loss = trainer._generate_and_score_completions, trainer._compute_loss

    def generate(inputs):
        out = subclass_generate(inputs)
        gen_log.append({k: out[k].detach().clone() for k in KEYS})
        return out

    def loss(model, inputs):
        loss_log.append({k: inputs[k].detach().clone() for k in KEYS})
        return compute_loss(model, inputs)

    trainer._generate_and_score_completions, trainer._compute_loss = generate, loss
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()

    assert len(rewards_log) == len(gen_log) == len(loss_log) == len(trl_adv_log) == 3
    informative = 0
    for rewards, gen, seen, trl_adv in zip(rewards_log, gen_log, loss_log, trl_adv_log, strict=True):
        expected = _dense_reference(rewards, N, "max@3")
        torch.testing.assert_close(gen["advantages"], expected, atol=1e-6, rtol=0)
        # Each row the loss saw is a row of the generation batch, with its advantage.
        for i in range(seen["advantages"].shape[0]):
            same = (gen["prompt_ids"] == seen["prompt_ids"][i]).all(1) & (
                gen["completion_ids"] == seen["completion_ids"][i]).all(1)
            assert same.any()
            torch.testing.assert_close(gen["advantages"][same], seen["advantages"][i].expand(int(same.sum())),
                                       atol=1e-6, rtol=0)
        # TRL's own advantage is GRPO's (r − mean)/(std + 1e-4); ours differ wherever a group is not constant.
        grouped = rewards.view(-1, N)
        grpo = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)
        torch.testing.assert_close(trl_adv, grpo.reshape(-1), atol=1e-5, rtol=1e-5)
        varied = (grouped.std(1) > 0).repeat_interleave(N)
        informative += int(varied.sum())
        assert ((gen["advantages"] - trl_adv).abs()[varied] > 1e-3).all()
        assert (gen["advantages"][~varied] == 0).all()
    assert informative > 0, "the seeded run should contain groups with both outcomes"

    torch.testing.assert_close(trainer.last_advantages, gen_log[-1]["advantages"])
    torch.testing.assert_close(trainer.last_rewards, rewards_log[-1])
    assert list(trainer._logs["advantages"])[-2 * N:] == pytest.approx(gen_log[-1]["advantages"].tolist())
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"rankgrad/advantage_mean_abs", "rankgrad/objective", "rankgrad/frac_zero_advantage"} <= logged
    changed = [k for k, v in trainer.model.named_parameters() if not torch.equal(v.detach(), before[k])]
    assert changed, "no parameter moved"


# ---------------------------------------------------------------- direct calls on one generation batch
def test_matches_trl_grpo_with_mean_objective(tmp_path):
    """objective='mean', estimator='grpo', eps=1e-4 is TRL's default advantage (scale_rewards='group')."""
    rewards_log: list[torch.Tensor] = []
    trainer = _trainer(tmp_path, _recording_reward(_count, rewards_log), objective="mean", estimator="grpo",
                       eps=1e-4)
    out = _generate(trainer, PROMPTS, N)
    grouped = rewards_log[-1].view(-1, N)
    grpo = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)
    torch.testing.assert_close(out["advantages"], grpo.reshape(-1), atol=1e-5, rtol=1e-5)


def test_std_normalize_and_estimator_are_passed_through(tmp_path):
    rewards_log: list[torch.Tensor] = []
    score = _recording_reward(lambda c, i: c.count("a") + 0.1 * len(c), rewards_log)
    trainer = _trainer(tmp_path, score, objective="cvar:0.5@2", std_normalize=True, eps=1e-6)
    out = _generate(trainer, PROMPTS, N)
    r = rewards_log[-1]
    std = r.view(-1, N).std(1).repeat_interleave(N)
    torch.testing.assert_close(out["advantages"], _dense_reference(r, N, "cvar:0.5@2") / (std + 1e-6),
                               atol=1e-5, rtol=1e-5)

    trainer = _trainer(tmp_path, score, objective="max@2", estimator="pkpo_sloo")
    out = _generate(trainer, PROMPTS, N)
    torch.testing.assert_close(out["advantages"], _dense_reference(rewards_log[-1], N, "max@2",
                                                                   estimator="pkpo_sloo"), atol=1e-6, rtol=0)


def test_noise_corrections_are_passed_through(tmp_path):
    """noise=(rho0, rho1): the counts-level correction; (None, rho1): the forward correction of the
    mean, whose logged objective is the pass rate corrected assuming rho0 = 0."""
    rewards_log: list[torch.Tensor] = []
    score = _recording_reward(_binary, rewards_log)
    trainer = _trainer(tmp_path, score, objective="max@2", noise=(0.05, 0.2))
    out = _generate(trainer, PROMPTS, N)
    r = rewards_log[-1].view(-1, N).double()
    want = rankgrad.noisy.advantages(r, "max@2", rho0=0.05, rho1=0.2).reshape(-1)
    torch.testing.assert_close(out["advantages"].double(), want, atol=1e-6, rtol=0)

    trainer = _trainer(tmp_path, _recording_reward(_binary, rewards_log), objective="mean", noise=(None, 0.2))
    out = _generate(trainer, PROMPTS, N)
    r = rewards_log[-1].view(-1, N)
    torch.testing.assert_close(out["advantages"], _dense_reference(r.reshape(-1), N, "mean") / 0.8,
                               atol=1e-6, rtol=0)
    logged = trainer._rankgrad_objective_value(r)
    assert abs(logged - r.mean().item() / 0.8) < 1e-6


def test_eval_uses_num_generations_eval(tmp_path):
    rewards_log: list[torch.Tensor] = []
    config = _config(tmp_path, num_generations_eval=3, per_device_eval_batch_size=6)
    trainer = _trainer(tmp_path, _recording_reward(lambda c, i: c.count("a") - c.count("b"), rewards_log),
                       config=config, objective="max@2")
    out = _generate(trainer, PROMPTS[:2], 3, train=False)
    torch.testing.assert_close(out["advantages"], _dense_reference(rewards_log[-1], 3, "max@2"),
                               atol=1e-6, rtol=0)
    assert "rankgrad/advantage_mean_abs" in trainer._metrics["eval"]

    config = _config(tmp_path, num_generations_eval=2, per_device_eval_batch_size=4)
    with pytest.warns(UserWarning, match="num_generations_eval=2"):
        trainer = _trainer(tmp_path, contains_a, config=config, objective="max@2")
    out = _generate(trainer, PROMPTS[:2], 2, train=False)
    assert (out["advantages"] == 0).all()


def _none_at(positions):
    return lambda c, i: None if i in positions else c.count("a") + 0.25 * c.count("c")


def test_unscorable_rewards(tmp_path):
    rewards_log: list[torch.Tensor] = []
    # One None in group 0 (3 valid left: enough for max@2), none elsewhere.
    trainer = _trainer(tmp_path, _recording_reward(_none_at({1}), rewards_log), objective="max@2")
    with pytest.raises(ValueError, match="unscorable='zero'"):
        _generate(trainer, PROMPTS[:2], N)

    trainer = _trainer(tmp_path, _recording_reward(_none_at({1}), rewards_log), objective="max@2",
                       unscorable="zero")
    out = _generate(trainer, PROMPTS[:2], N)
    r = rewards_log[-1]
    assert torch.isnan(r[1]) and out["advantages"][1] == 0
    torch.testing.assert_close(out["advantages"], _dense_reference(r, N, "max@2"), atol=1e-6, rtol=0)
    assert torch.isnan(trainer.last_rewards[1])

    # Two Nones in group 1 leave 2 < K + 1 valid rollouts.
    trainer = _trainer(tmp_path, _recording_reward(_none_at({5, 6}), rewards_log), objective="max@2",
                       unscorable="zero")
    with pytest.raises(ValueError, match="small_groups='zero'"):
        _generate(trainer, PROMPTS[:2], N)
    trainer = _trainer(tmp_path, _recording_reward(_none_at({5, 6}), rewards_log), objective="max@2",
                       unscorable="zero", small_groups="zero")
    out = _generate(trainer, PROMPTS[:2], N)
    assert (out["advantages"][N:] == 0).all()
    torch.testing.assert_close(out["advantages"][:N], _dense_reference(rewards_log[-1][:N], N, "max@2"),
                               atol=1e-6, rtol=0)


def test_groups_split_across_processes(tmp_path, monkeypatch):
    """Simulated 2-process run, this process = rank 1 holding the last 2 rollouts of a group of 4 whose
    first 2 live on rank 0: the adapter must rank the gathered group and keep rank 1's slice."""
    rewards_log: list[torch.Tensor] = []
    trainer = _trainer(tmp_path, _recording_reward(_count, rewards_log), objective="max@2")
    rank0 = torch.tensor([[0.75], [2.25]])  # rank 0's [b=2, F=1] rewards: TRL's gather puts them first
    local = GRPOTrainer._calculate_rewards
    def gathered(self, *a):
        return torch.cat([rank0, local(self, *a)])

    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", gathered)
    monkeypatch.setattr(type(trainer.accelerator), "process_index", property(lambda self: 1))
    monkeypatch.setattr(type(trainer.accelerator), "num_processes", property(lambda self: 2))
    out = _generate(trainer, PROMPTS[:1], 2)
    gathered = torch.cat([rank0[:, 0], rewards_log[-1]])
    expected = _dense_reference(gathered, N, "max@2")
    torch.testing.assert_close(out["advantages"], expected[2:], atol=1e-6, rtol=0)
    torch.testing.assert_close(trainer.last_advantages, expected, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- construction-time checks
def test_k_must_be_below_num_generations(tmp_path):
    with pytest.raises(ValueError, match=r"K <= num_generations - 1: K=4 but num_generations=4"):
        _trainer(tmp_path, contains_a, objective="max@4")


def test_bad_objective_or_estimator(tmp_path):
    with pytest.raises(ValueError, match="estimator"):
        _trainer(tmp_path, contains_a, objective="max@2", estimator="nope")
    with pytest.raises(ValueError):  # GRPO's std form is for the mean only
        _trainer(tmp_path, contains_a, objective="max@2", estimator="grpo")
    with pytest.raises(ValueError, match="sum_then_normalize"):
        config = _config(tmp_path, multi_objective_aggregation="normalize_then_sum")
        _trainer(tmp_path, contains_a, config=config)


def test_contract_guard(tmp_path, monkeypatch):
    monkeypatch.setattr(trl, "__version__", "1.15.2")
    with pytest.raises(RuntimeError, match=r"trl>=1\.16, found trl 1\.15\.2"):
        _trainer(tmp_path, contains_a)
    monkeypatch.setattr(trl, "__version__", "1.16.0")
    monkeypatch.delattr(GRPOTrainer, "_calculate_rewards")
    with pytest.raises(RuntimeError, match=r"GRPOTrainer\._calculate_rewards no longer exists"):
        _trainer(tmp_path, contains_a)


def test_runtime_guard_when_trl_output_changes(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, contains_a)
    original = GRPOTrainer._generate_and_score_completions

    def renamed_key(self, inputs):
        out = original(self, inputs)
        out["advantage"] = out.pop("advantages")
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", renamed_key)
    with pytest.raises(RuntimeError, match="'advantages' entry"):
        _generate(trainer, PROMPTS[:1], N)

    def no_rewards_hook(self, inputs):
        out = original(self, inputs)
        self._rankgrad_rewards_per_func = None  # as if TRL stopped calling _calculate_rewards
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", no_rewards_hook)
    with pytest.raises(RuntimeError, match="did not call _calculate_rewards"):
        _generate(trainer, PROMPTS[:1], N)


def test_import_error_names_the_extra():
    code = "import sys; sys.modules['trl'] = None\nimport rankgrad.integrations.trl"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "pip install 'rankgrad[trl]'" in proc.stderr


def test_no_warning_for_default_eval_group(tmp_path):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="num_generations_eval")
        _trainer(tmp_path, contains_a)
