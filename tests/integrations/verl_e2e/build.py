"""The run's inputs, built in code (no downloads): tiny Llama, character tokenizer, parquet data, reward.

Prompts are strings over a small alphabet; the reward of a response is the number of times it contains
the prompt's target character (0, 1, 2...: few ties, so few groups whose max@4 advantages are all 0).
"""

from __future__ import annotations

from pathlib import Path

import torch

CHARS = "abcdefgh:"
TARGETS = "abcd"
PROMPTS = ("abc", "bcd", "cda", "dab")  # 4 prompts; the target of prompt i is TARGETS[i]

REWARD_SOURCE = '''
def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """The number of occurrences of the target character in the response."""
    return float(solution_str.count(ground_truth))
'''


def tokenizer():
    """Character-level ``PreTrainedTokenizerFast``: one token per character, ``<pad>`` 0, ``<eos>`` 1, and a
    chat template that concatenates the messages and ends a generation prompt with ``:``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>")
    fast.chat_template = (
        "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}:{% endif %}"
    )
    return fast


def model(seed: int = 0):
    """A 1-layer Llama (hidden 16) over the tokenizer's vocabulary, seeded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=3 + len(CHARS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=0, eos_token_id=1, bos_token_id=None, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


def save_model(path: Path, seed: int = 0) -> Path:
    """Save the model and tokenizer (safetensors, float32) to ``path``."""
    model(seed).save_pretrained(path)
    tokenizer().save_pretrained(path)
    return path


def save_data(path: Path) -> Path:
    """verl's RL parquet format: chat ``prompt``, ``data_source``, ``reward_model.ground_truth``."""
    import pandas as pd

    rows = [
        {
            "data_source": "verl_e2e_chars",
            "prompt": [{"role": "user", "content": p}],
            "ability": "chars",
            "reward_model": {"style": "rule", "ground_truth": t},
            "extra_info": {"index": i, "split": "train"},
        }
        for i, (p, t) in enumerate(zip(PROMPTS, TARGETS, strict=True))
    ]
    pd.DataFrame(rows).to_parquet(path)
    return path


def save_reward(path: Path) -> Path:
    path.write_text(REWARD_SOURCE)
    return path
