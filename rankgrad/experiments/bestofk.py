"""Best-of-K language model: does training for pass@K win at pass@K on a tiny transformer?

**Task (made in code).** Addition of two ``digits``-digit numbers. The prompt is the zero-padded
problem ``"042+917="`` (fixed length, so batches need no padding); the answer is the sum written
normally (``"959"``) followed by an end token. The vocabulary is 13 symbols: ten digits, ``+``, ``=``
and ``$`` (end). The verifier is exact match of the completion up to its first end token: reward 1 or
0. Problems are unordered pairs {a, b}: a validation split (used only to pick learning rates and to
stop the warm start) and a test split (reported) are drawn once from a fixed data seed, and the
training split is every other problem, so neither a + b nor b + a of a held-out problem is ever trained on.

**Model.** A decoder-only transformer written here (pre-LayerNorm blocks with causal
``scaled_dot_product_attention``, learned positions; 2 layers, d = 64, 4 heads: ~0.1M parameters),
built from the config, nothing downloaded.

**Warm start.** Supervised next-token training on the answer tokens of training problems, stopped as
soon as the sampled accuracy (temperature 1, validation problems) reaches ``warm_threshold`` (0.3) or
after ``warm_max_steps``. A fixed number of steps would not do: accuracy jumps suddenly at a
seed-dependent step. Every RL arm of a seed starts from that seed's warm-start checkpoint.

**RL arms.** Each step draws P training prompts and N completions per prompt (temperature 1), scores
them 0/1 and computes the per-group advantages with :func:`rankgrad.advantages`:

* ``grpo``  — ``estimator="grpo"``, objective ``"mean"``: (r − mean)/(std + eps) (biased);
* ``rloo``  — objective ``"mean"`` (the unbiased mean-reward gradient, K = 1);
* ``max@K`` — objective ``f"max@{K}"`` (pass@K for 0/1 rewards; unbiased).

The loss is −(K_obj/N)·Σ_i a_i log p(y_i) per group (K_obj = 1 for the mean arms, K for max@K), where
log p(y_i) is the sum of the token log-probabilities of the completion up to and including its end
token, averaged over the P prompts; Adam, no clipping. Each arm runs at every learning rate of a small
sweep (``lrs``) from the same warm start.

**Metrics.** On held-out problems, ``eval_samples`` completions each (temperature 1), c correct:
pass@1 = c/n and pass@K = 1 − C(n−c, K)/C(n, K) (the unbiased estimator), averaged over problems,
then mean ± standard error over seeds. The learning rate of each arm is chosen *per metric* on the
validation split (mean over seeds), and the test numbers of that choice are reported: best against
best. The whole sweep (validation and test, per seed) is in the JSON.

**Result** (default setting: 3 seeds, lr ∈ {1e-4, 3e-4, 1e-3}, 150 RL steps of 32 prompts × 16 samples,
K = 4; test = 512 held-out problems × 16 samples). Warm start: pass@1 0.370, pass@4 0.704. Best against
best, max@4 wins pass@4 *narrowly but in every seed*: 0.826 vs 0.802 for the best-tuned RLOO (paired
difference +0.024 ± 0.002 over seeds, 3/3 seeds) and 0.791 for GRPO; it gives up pass@1: 0.504 vs 0.533
(RLOO) and 0.529 (GRPO), behind in 2/3 and 3/3 seeds, a difference the 3 seeds cannot call clearly. The
effect shrinks a lot with tuning: at lr 1e-3 max@4 leads pass@4 by +0.30, because GRPO and RLOO collapse
there in 2 of 3 seeds (mean pass@4 0.38 and 0.33) while max@4 degrades less (0.68); at 1e-4 the lead is
+0.015, at 3e-4 +0.035. It also depends on the length of RL: the baselines' pass@4 plateaus after ~75
steps while max@4's keeps rising, and a run stopped at 120 steps (with lr 3e-5 added, worse for every
arm) found +0.010. The ``verdict`` string of each run states its own numbers.

Run ``python -m rankgrad.experiments.bestofk [--quick | --demo] [--seed S] [--out DIR] [--threads T]``
(also ``--lrs``, ``--steps``, ``--seeds``, ``--device``). The default takes about 6 minutes on 2 idle CPU
cores; on a shared machine ``--threads 1`` avoids thread contention, which can slow torch down many
times. ``--quick`` (the smoke test) uses 2-digit problems for a fast warm start, one seed, lr 3e-4 and 40
RL steps: too small to show the headline (with seed 0, max@4 ties GRPO at test pass@4 and loses
pass@1); ``--demo`` (``rankgrad demo``) is the default's first seed at lr 3e-4. A CUDA GPU is used
when available. ``--replot bestofk.json`` redraws ``bestofk.png`` from a stored run's JSON.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import rankgrad
from rankgrad.experiments import _common

NAME = "bestofk"

# ----------------------------------------------------------------------------------------------------
# Tokenizer and task
# ----------------------------------------------------------------------------------------------------

VOCAB = "0123456789+=$"
PLUS, EQUALS, EOS = 10, 11, 12
_CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}


def encode(text: str) -> list[int]:
    """Token ids of a string over :data:`VOCAB` (``$`` is the end token)."""
    try:
        return [_CHAR_TO_ID[c] for c in text]
    except KeyError as e:
        raise ValueError(f"text: {e.args[0]!r} is not in the vocabulary {VOCAB!r}") from None


def decode(ids: Sequence[int], *, stop_at_eos: bool = True) -> str:
    """The string of token ids; with ``stop_at_eos`` everything from the first end token is dropped."""
    out = []
    for i in ids:
        i = int(i)
        if stop_at_eos and i == EOS:
            break
        out.append(VOCAB[i])
    return "".join(out)


def prompt_text(a: int, b: int, digits: int) -> str:
    """``"042+917="`` for a = 42, b = 917 and 3 digits."""
    return f"{a:0{digits}d}+{b:0{digits}d}="


def answer_text(a: int, b: int) -> str:
    """The completion the verifier accepts: the sum, then the end token."""
    return f"{a + b}$"


def verify(a: int, b: int, completion: str) -> bool:
    """Exact match: the completion up to its first end token is the sum (an end token is required)."""
    return "$" in completion and completion.split("$", 1)[0] == str(a + b)


def pass_at_k(n: int | np.ndarray, c: int | np.ndarray, k: int) -> np.ndarray:
    """Unbiased pass@k from n samples with c correct: 1 − C(n−c, k)/C(n, k) (elementwise; k <= n).

    This is the batch value of ``max@k`` on the n outcomes (c ones), so it is computed by
    :func:`rankgrad.value` — one batched call per distinct n — rather than by a second formula.
    """
    n_arr, c_arr = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64))
    if np.any(n_arr < k) or np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError(f"pass_at_k: need 0 <= c <= n and n >= k = {k}")
    out = np.empty(n_arr.shape, dtype=float)
    for nn in np.unique(n_arr):
        sel = n_arr == nn
        outcomes = (np.arange(nn) < c_arr[sel][:, None]).astype(float)  # [problems, n], c ones each
        out[sel] = rankgrad.value(outcomes, f"max@{k}")
    return out


@dataclasses.dataclass(frozen=True)
class Splits:
    """Held-out problems as ``[n, 2]`` int arrays and a lookup that rejects them from training."""

    digits: int
    val: np.ndarray
    test: np.ndarray
    heldout: np.ndarray  # bool [M*M], True at a*M + b for (a, b) or (b, a) held out

    @property
    def modulus(self) -> int:
        return 10**self.digits

    def is_heldout(self, problems: np.ndarray) -> np.ndarray:
        return self.heldout[problems[:, 0] * self.modulus + problems[:, 1]]

    def sample_train(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` training problems (a, b), uniform over the pairs that are not held out."""
        out = np.empty((0, 2), dtype=np.int64)
        while len(out) < n:
            cand = rng.integers(0, self.modulus, size=(2 * n, 2))
            out = np.concatenate([out, cand[~self.is_heldout(cand)]])
        return out[:n]


def make_splits(digits: int, n_val: int, n_test: int, data_seed: int) -> Splits:
    """Disjoint validation and test problems (distinct unordered pairs), fixed by ``data_seed``."""
    m = 10**digits
    rng = np.random.default_rng(data_seed)
    # distinct unordered pairs {a, b}, a <= b, keyed a*m + b; then a random order of the operands
    need = n_val + n_test
    keys: np.ndarray = np.empty(0, dtype=np.int64)
    while len(keys) < need:
        ab = np.sort(rng.integers(0, m, size=(2 * need, 2)), axis=1)
        keys = np.concatenate([keys, ab[:, 0] * m + ab[:, 1]])
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
    if m * (m + 1) // 2 < 4 * need:
        raise ValueError(f"digits={digits}: too few problems for {need} held out")
    keys = keys[:need]
    pairs = np.stack([keys // m, keys % m], axis=1)
    swap = rng.random(need) < 0.5
    pairs[swap] = pairs[swap][:, ::-1]
    heldout = np.zeros(m * m, dtype=bool)
    heldout[pairs[:, 0] * m + pairs[:, 1]] = True
    heldout[pairs[:, 1] * m + pairs[:, 0]] = True
    return Splits(digits=digits, val=pairs[:n_val], test=pairs[n_val:], heldout=heldout)


def prompt_tokens(problems: np.ndarray, digits: int) -> np.ndarray:
    """``[n, 2·digits + 2]`` prompt ids of problems ``[n, 2]`` (vectorised :func:`prompt_text`)."""
    cols = []
    for operand in (problems[:, 0], problems[:, 1]):
        for p in range(digits - 1, -1, -1):
            cols.append((operand // 10**p) % 10)
        cols.append(np.full(len(problems), PLUS))
    cols[-1] = np.full(len(problems), EQUALS)
    return np.stack(cols, axis=1).astype(np.int64)


def answer_tokens(problems: np.ndarray, digits: int) -> np.ndarray:
    """``[n, digits + 2]`` answer ids: the sum's digits, then end tokens to the fixed width."""
    width = digits + 2
    s = problems[:, 0] + problems[:, 1]
    out = np.full((len(problems), width), EOS, dtype=np.int64)
    nd = np.maximum(1, np.floor(np.log10(np.maximum(s, 1))).astype(np.int64) + 1)
    for j in range(width - 1):
        p = nd - 1 - j  # power of ten of the j-th digit
        valid = p >= 0
        out[valid, j] = (s[valid] // 10 ** p[valid]) % 10
    return out


# ----------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def build_model(vocab: int, max_len: int, d_model: int, n_layers: int, n_heads: int):
    """A tiny decoder-only transformer (pre-LN blocks, causal attention, learned positions)."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(d_model)
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.proj = nn.Linear(d_model, d_model)
            self.ln2 = nn.LayerNorm(d_model)
            hidden = 4 * d_model
            self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))

        def forward(self, x, past=None):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, n_heads, d_model // n_heads).permute(2, 0, 3, 1, 4)
            if past is not None:  # cached keys/values of the earlier positions; t new positions
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            if past is None or t == 1:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=past is None)
            else:  # several new positions after a cache: causal mask offset by the cache length
                mask = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - t)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d_model))
            return x + self.mlp(self.ln2(x)), (k, v)

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(vocab, d_model)
            self.pos = nn.Embedding(max_len, d_model)
            self.blocks = nn.ModuleList([Block() for _ in range(n_layers)])
            self.ln_f = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, vocab)
            self.apply(self._init)

        @staticmethod
        def _init(m) -> None:
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

        def forward(self, ids, past=None, return_cache: bool = False):
            """Logits ``[B, T, vocab]`` of ids ``[B, T]`` that follow the cached positions ``past``."""
            t0 = 0 if past is None else past[0][0].shape[2]
            x = self.tok(ids) + self.pos(torch.arange(t0, t0 + ids.shape[1], device=ids.device))
            cache = []
            for i, blk in enumerate(self.blocks):
                x, kv = blk(x, None if past is None else past[i])
                cache.append(kv)
            logits = self.head(self.ln_f(x))
            return (logits, cache) if return_cache else logits

    return Decoder()


def generate(
    model, prompts, max_new: int, temperature: float = 1.0, chunk: int | None = 2048, *, eos: int = EOS,
    with_entropy: bool = False,
):
    """Sample ``[B, max_new]`` completions (KV cache); after the first end token ``eos`` all are end
    tokens. ``chunk`` rows at a time (``None``: the whole batch at once; the chunking decides the order
    in which random numbers are drawn, so it is part of a run's setting). ``temperature=0`` is greedy.

    With ``with_entropy`` also returns the mean per-token entropy (nats) of the untempered policy over
    the generated tokens up to and including each completion's end token."""
    torch = _torch()
    outs = []
    ent_sum, ent_n = 0.0, 0
    step = prompts.shape[0] if chunk is None else chunk
    with torch.inference_mode():
        for s in range(0, prompts.shape[0], step):
            logits, cache = model(prompts[s : s + step], return_cache=True)
            done = torch.zeros(logits.shape[0], dtype=torch.bool, device=prompts.device)
            gen = torch.full((logits.shape[0], max_new), eos, dtype=prompts.dtype, device=prompts.device)
            for j in range(max_new):
                last = logits[:, -1].float()
                if with_entropy:
                    logp = torch.log_softmax(last, -1)
                    h = -(logp.exp() * logp).sum(-1)
                    ent_sum += float(h[~done].sum())
                    ent_n += int((~done).sum())
                if temperature > 0:
                    nxt = torch.multinomial(torch.softmax(last / temperature, dim=-1), 1).squeeze(1)
                else:
                    nxt = last.argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
                done = done | (nxt == eos)
                gen[:, j] = nxt
                if j == max_new - 1 or bool(done.all()):
                    break
                logits, cache = model(nxt[:, None], past=cache, return_cache=True)
            outs.append(gen)
    out = torch.cat(outs)
    return (out, ent_sum / max(ent_n, 1)) if with_entropy else out


def completion_logprob(model, prompts, completions, eos: int = EOS):
    """Σ log p of each completion's tokens up to and including its first end token ``eos``: ``[B]``."""
    torch = _torch()
    seq = torch.cat([prompts, completions], dim=1)
    logits = model(seq[:, :-1])[:, prompts.shape[1] - 1 :].float()
    lp = torch.log_softmax(logits, dim=-1).gather(-1, completions[..., None]).squeeze(-1)
    is_eos = (completions == eos).long()
    keep = (torch.cumsum(is_eos, dim=1) - is_eos) == 0  # up to and including the first end token
    return (lp * keep).sum(dim=1)


# ----------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    """Every knob of the experiment. ``quick()`` is the smoke test, ``demo()`` the ``rankgrad demo``."""

    digits: int = 3
    n_val: int = 256
    n_test: int = 512
    data_seed: int = 20240601
    # model
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    # supervised warm start
    warm_lr: float = 3e-3
    warm_batch: int = 256
    warm_threshold: float = 0.3
    warm_check_every: int = 10
    warm_check_problems: int = 256
    warm_max_steps: int = 4000
    # RL
    K: int = 4
    arms: tuple[str, ...] = ("grpo", "rloo", "max@K")
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3)
    rl_steps: int = 150
    prompts_per_step: int = 32
    samples_per_prompt: int = 16
    temperature: float = 1.0
    # evaluation
    eval_samples: int = 16
    eval_every: int = 25
    curve_problems: int = 128
    # runs
    seeds: int = 3
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    @classmethod
    def quick(cls) -> Config:
        """The smoke test: 2-digit problems (a faster warm start), one seed, one lr, 40 RL steps."""
        return cls(digits=2, seeds=1, lrs=(3e-4,), rl_steps=40, n_val=128, n_test=256, eval_every=20,
                   curve_problems=64)

    @classmethod
    def demo(cls) -> Config:
        """What ``rankgrad demo`` runs: the default setting's first seed at one learning rate (3e-4)."""
        return cls(seeds=1, lrs=(3e-4,))

    def arm_objective(self, arm: str) -> tuple[str, str, int]:
        """(objective, estimator, gradient scale K_obj) of an arm name."""
        if arm == "grpo":
            return "mean", "grpo", 1
        if arm == "rloo":
            return "mean", "ordergrad", 1
        if arm in ("max@K", f"max@{self.K}"):
            return f"max@{self.K}", "ordergrad", self.K
        raise ValueError(f"arms: unknown arm {arm!r}; use 'grpo', 'rloo' or 'max@K'")

    def arm_label(self, arm: str) -> str:
        return f"max@{self.K}" if arm == "max@K" else arm


# ----------------------------------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------------------------------


def _device(config: Config) -> str:
    torch = _torch()
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return config.device


def evaluate(model, problems: np.ndarray, config: Config, device: str) -> dict[str, float]:
    """pass@1 and pass@K (unbiased, ``eval_samples`` completions per problem) on ``problems``."""
    return {m: float(np.mean(v)) for m, v in evaluate_per_problem(model, problems, config, device).items()}


def evaluate_per_problem(model, problems: np.ndarray, config: Config, device: str) -> dict[str, np.ndarray]:
    """Per-problem pass@1 (= c/n) and unbiased pass@K from ``eval_samples`` completions each."""
    torch = _torch()
    n = config.eval_samples
    prompts = torch.as_tensor(prompt_tokens(problems, config.digits), device=device).repeat_interleave(n, 0)
    target = torch.as_tensor(answer_tokens(problems, config.digits), device=device).repeat_interleave(n, 0)
    was_training = model.training
    model.eval()
    gen = generate(model, prompts, config.digits + 2, config.temperature)
    model.train(was_training)
    correct = (gen == target).all(dim=1).view(len(problems), n).sum(dim=1).cpu().numpy()
    return {"pass@1": correct / n, f"pass@{config.K}": pass_at_k(n, correct, config.K)}


def warm_start(config: Config, splits: Splits, seed: int, device: str, progress: bool) -> tuple[Any, dict]:
    """Supervised training until the sampled validation accuracy reaches the threshold (or the cap)."""
    torch = _torch()
    rng = _common.seed_everything(seed)
    model = build_model(len(VOCAB), 3 * config.digits + 4, config.d_model, config.n_layers, config.n_heads)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.warm_lr)
    lp = 2 * config.digits + 2
    check = splits.val[: config.warm_check_problems]
    check_prompts = torch.as_tensor(prompt_tokens(check, config.digits), device=device)
    check_target = torch.as_tensor(answer_tokens(check, config.digits), device=device)
    history: list[tuple[int, float]] = []
    acc, step = 0.0, 0
    steps = range(1, config.warm_max_steps + 1)
    for step in _common.progress(steps, desc=f"warm start seed {seed}", enabled=progress):
        probs = splits.sample_train(rng, config.warm_batch)
        seq = torch.as_tensor(
            np.concatenate([prompt_tokens(probs, config.digits), answer_tokens(probs, config.digits)], 1),
            device=device,
        )
        logits = model(seq[:, :-1])[:, lp - 1 :]
        tgt = seq[:, lp:]
        is_eos = tgt == EOS
        keep = (torch.cumsum(is_eos.long(), 1) - is_eos.long()) == 0
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")  # [B, T]
        loss = (nll * keep).sum() / keep.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % config.warm_check_every == 0:
            model.eval()
            gen = generate(model, check_prompts, config.digits + 2, config.temperature)
            model.train()
            acc = float((gen == check_target).all(dim=1).float().mean())
            history.append((step, acc))
            if acc >= config.warm_threshold:
                break
    info = {"steps": step, "sampled_val_accuracy": acc, "reached_threshold": acc >= config.warm_threshold,
            "history": history}
    return model, info


def rl_arm(
    warm, config: Config, splits: Splits, arm: str, lr: float, seed: int, device: str, progress: bool
) -> dict[str, Any]:
    """Group RL from the warm start with one arm's advantages at one learning rate."""
    import rankgrad

    torch = _torch()
    objective, estimator, k_obj = config.arm_objective(arm)
    rng = _common.seed_everything(seed)
    model = copy.deepcopy(warm).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    P, N = config.prompts_per_step, config.samples_per_prompt
    curve_set = splits.test[: config.curve_problems]
    curve: list[dict[str, float]] = []
    train_reward: list[float] = []
    hard_share: list[float] = []  # share of |gradient weight| on groups with pass rate <= 1/4

    def record(step: int) -> None:
        curve.append({"step": step, **evaluate(model, curve_set, config, device)})

    record(0)
    desc = f"{config.arm_label(arm)} lr={lr:g} seed {seed}"
    for step in _common.progress(range(1, config.rl_steps + 1), desc=desc, enabled=progress):
        probs = splits.sample_train(rng, P)
        prompts = torch.as_tensor(prompt_tokens(probs, config.digits), device=device).repeat_interleave(N, 0)
        target = torch.as_tensor(answer_tokens(probs, config.digits), device=device).repeat_interleave(N, 0)
        model.eval()
        gen = generate(model, prompts, config.digits + 2, config.temperature)
        model.train()
        rewards = (gen == target).all(dim=1).float().view(P, N)
        adv = rankgrad.advantages(rewards, objective, estimator=estimator)
        weight = (k_obj / N) * adv
        logp = completion_logprob(model, prompts, gen).view(P, N)
        loss = -(weight * logp).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        train_reward.append(float(rewards.mean()))
        w = weight.abs().sum(dim=1)
        hard = rewards.mean(dim=1) <= 0.25
        tot = float(w.sum())
        hard_share.append(float(w[hard].sum()) / tot if tot > 0 else float("nan"))
        if step % config.eval_every == 0 or step == config.rl_steps:
            record(step)
    return {
        "model": model,
        "curve": curve,
        "train_reward": train_reward,
        "hard_weight_share": float(np.nanmean(hard_share)) if np.isfinite(hard_share).any() else float("nan"),
    }


# ----------------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------------


def _fmt(m: float, s: float, seeds: int) -> str:
    """``m ± s`` over seeds; the number alone (no ``± 0.000``) for one seed."""
    return f"{m:.3f} ± {s:.3f}" if seeds > 1 else f"{m:.3f}"


def _paired(x: list[np.ndarray], y: list[np.ndarray]) -> dict[str, Any]:
    """x − y for per-seed lists of per-problem test values (the arms of a seed share its warm start).

    ``se`` is the standard error over seeds; ``se_problems`` the one from the spread over test problems
    within each seed (which includes the evaluation's sampling noise).
    """
    d = [np.asarray(a, dtype=float) - np.asarray(b, dtype=float) for a, b in zip(x, y, strict=True)]
    per_seed = np.array([v.mean() for v in d])
    mu, se = _common.mean_spread(per_seed)
    se_problems = float(np.sqrt(sum(v.var(ddof=1) / v.size for v in d)) / len(d))
    return {
        "diff": mu, "se": se, "se_problems": se_problems, "seeds": len(d),
        "ahead": int((per_seed > 0).sum()), "behind": int((per_seed < 0).sum()),
        "per_seed": per_seed.tolist(),
    }


def _compare(config: Config, best_lr: dict, per_problem: dict) -> dict[str, Any]:
    """max@K against each baseline: tuned (best lr each, per metric) and at each shared learning rate.

    ``per_problem[label][lr]`` is a per-seed list of ``{metric: per-problem test values}``.
    """
    mk = f"max@{config.K}"
    out: dict[str, Any] = {"tuned": {}, "same_lr": {}}
    if mk not in per_problem:
        return out

    def values(lab: str, lr: str, m: str) -> list[np.ndarray]:
        return [seed[m] for seed in per_problem[lab][lr]]

    base = [b for b in per_problem if b != mk]
    for m in (f"pass@{config.K}", "pass@1"):
        mine = values(mk, best_lr[mk][m], m)
        out["tuned"][m] = {b: _paired(mine, values(b, best_lr[b][m], m)) for b in base}
        out["same_lr"][m] = {
            lr: {b: _paired(values(mk, lr, m), values(b, lr, m)) for b in base} for lr in per_problem[mk]
        }
    return out


# two-sided 95% Student t quantiles by degrees of freedom (seeds − 1)
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def _call(c: dict[str, Any]) -> str:
    """'won' / 'lost' / 'tied': a side needs all seeds on it, |diff| > t·se (seeds) and > 2·se_problems."""
    t = _T95.get(c["seeds"] - 1, 2.0)
    clear = abs(c["diff"]) > 2 * c["se_problems"] and (c["seeds"] == 1 or abs(c["diff"]) > t * c["se"])
    if clear and c["diff"] > 0 and c["ahead"] == c["seeds"]:
        return "won narrowly" if c["diff"] < 0.02 else "won"
    if clear and c["diff"] < 0 and c["behind"] == c["seeds"]:
        return "lost narrowly" if c["diff"] > -0.02 else "lost"
    return "tied (the difference is within the noise)"


def _verdict(config: Config, table: dict, warm: dict, comparisons: dict, best_lr: dict) -> str:
    """Plain-language result of the tuned comparison and of the shared-lr comparisons (see :func:`_call`)."""
    K = config.K
    pk, p1, mk = f"pass@{K}", "pass@1", f"max@{K}"
    base = [a for a in table if a != mk]
    if mk not in table or not base:
        return "The verdict needs the max@K arm and at least one baseline."
    n = config.seeds

    def spread(c: dict[str, Any]) -> str:
        over_problems = f"{c['se_problems']:.3f} over test problems"
        return over_problems if c["seeds"] == 1 else f"{c['se']:.3f} over seeds, {over_problems}"

    parts = [f"Best against best over {n} seed(s) (each arm at its learning rate chosen on validation "
             "for the metric)."]
    for m in (pk, p1):
        rival = max(base, key=lambda a, m=m: table[a][m]["mean"])  # the strongest baseline on test
        c = comparisons["tuned"][m][rival]
        parts.append(
            f"At {m}, max@{K} {_call(c)} against the strongest baseline, {rival}: {table[mk][m]['mean']:.3f} "
            f"(lr {best_lr[mk][m]}) vs {table[rival][m]['mean']:.3f} (lr {best_lr[rival][m]}), "
            "paired difference "
            f"{c['diff']:+.3f} (s.e. {spread(c)}), ahead in {c['ahead']}/{c['seeds']} seeds."
        )
    same = comparisons["same_lr"][pk]
    if len(same) > 1:
        gaps = {lr: min(v["diff"] for v in cmp.values()) for lr, cmp in same.items()}
        hi = max(gaps, key=lambda lr: gaps[lr])
        tuned = min(c["diff"] for c in comparisons["tuned"][pk].values())
        listing = ", ".join(f"{gaps[lr]:+.3f} at lr {lr}" for lr in gaps)
        parts.append(f"With one shared learning rate, max@{K}'s pass@{K} lead over the better baseline is "
                     f"{listing}.")
        if gaps[hi] > tuned + 0.02:
            parts.append(
                f"Tuning every arm shrinks the effect from {gaps[hi]:+.3f} (lr {hi}) to {tuned:+.3f}: "
                "most of that gap was the baselines' instability at the high learning rate, not the "
                "objective."
            )
    parts.append(f"Warm start (test): pass@1 {warm[p1]['mean']:.3f}, pass@{K} {warm[pk]['mean']:.3f}.")
    return " ".join(parts)


def run(config: Config, out_dir: str = _common.DEFAULT_OUT, progress: bool = True) -> dict[str, Any]:
    """Warm start per seed, every arm × learning rate of RL, test metrics, plot and JSON."""
    torch = _torch()
    t0 = time.perf_counter()
    prev_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        results = _run(config, progress)
    finally:
        torch.set_num_threads(prev_threads)
    results["runtime_s"] = time.perf_counter() - t0
    return _common.write_outputs(out_dir, NAME, results, plot=plot)


def _run(config: Config, progress: bool) -> dict[str, Any]:
    device = _device(config)
    splits = make_splits(config.digits, config.n_val, config.n_test, config.data_seed)
    K = config.K
    metrics = ("pass@1", f"pass@{K}")
    labels = [config.arm_label(a) for a in config.arms]
    seeds = [config.seed + i for i in range(config.seeds)]
    lr_keys = [f"{lr:g}" for lr in config.lrs]
    warm_info: list[dict] = []
    # raw[label][lr][field] = one entry per seed
    fields = ("val", "test", "test_per_problem", "curve", "train_reward", "hard_weight_share")
    raw: dict[str, dict[str, dict[str, list]]] = {
        lab: {lr: {f: [] for f in fields} for lr in lr_keys} for lab in labels
    }
    timing = {"warm_start_s": 0.0, "rl_s": 0.0}
    for seed in seeds:
        t = time.perf_counter()
        warm, info = warm_start(config, splits, 1000 * seed + 1, device, progress)
        timing["warm_start_s"] += time.perf_counter() - t
        _common.seed_everything(1000 * seed + 2)
        info["test"] = evaluate(warm, splits.test, config, device)
        warm_info.append(info)
        for arm, lab in zip(config.arms, labels, strict=True):
            for lr, key in zip(config.lrs, lr_keys, strict=True):
                # the same prompt stream and sampling seed for every arm and lr of a seed (paired runs)
                t = time.perf_counter()
                out = rl_arm(warm, config, splits, arm, lr, 1000 * seed + 100, device, progress)
                timing["rl_s"] += time.perf_counter() - t
                _common.seed_everything(1000 * seed + 200)
                cell = raw[lab][key]
                cell["val"].append(evaluate(out["model"], splits.val, config, device))
                per_problem = evaluate_per_problem(out["model"], splits.test, config, device)
                cell["test_per_problem"].append(per_problem)
                cell["test"].append({m: float(np.mean(v)) for m, v in per_problem.items()})
                for f in ("curve", "train_reward", "hard_weight_share"):
                    cell[f].append(out[f])

    def summary(per_seed: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
        out = {}
        for m in metrics:
            xs = [d[m] for d in per_seed]
            mu, se = _common.mean_spread(xs)
            out[m] = {"mean": mu, "se": se, "per_seed": xs}
        return out

    sweep = {
        lab: {
            lr: {"val": summary(c["val"]), "test": summary(c["test"]),
                 "hard_weight_share": float(np.mean(c["hard_weight_share"]))}
            for lr, c in cells.items()
        }
        for lab, cells in raw.items()
    }
    # best against best: per arm and metric, the lr with the best mean validation score
    best_lr = {
        lab: {m: max(cells, key=lambda lr, m=m: cells[lr]["val"][m]["mean"]) for m in metrics}
        for lab, cells in sweep.items()
    }
    table = {lab: {m: sweep[lab][best_lr[lab][m]]["test"][m] for m in metrics} for lab in labels}
    warm_summary = summary([w["test"] for w in warm_info])
    per_problem = {lab: {lr: c["test_per_problem"] for lr, c in cells.items()} for lab, cells in raw.items()}
    comparisons = _compare(config, best_lr, per_problem)

    def mean_curve(curves: list[list[dict]], m: str) -> list[float]:
        return np.mean([[p[m] for p in cur] for cur in curves], axis=0).tolist()

    curves = {
        lab: {
            lr: {"step": [p["step"] for p in c["curve"][0]]} | {m: mean_curve(c["curve"], m) for m in metrics}
            for lr, c in cells.items()
        }
        for lab, cells in raw.items()
    }
    return {
        "name": NAME,
        "config": dataclasses.asdict(config),
        "device": device,
        "K": K,
        "metrics": list(metrics),
        "seeds": seeds,
        # per arm, the test metrics at the arm's best lr for that metric (mean over seeds): for tables
        "arms": {lab: {m: table[lab][m]["mean"] for m in metrics} for lab in labels},
        "best_lr": best_lr,
        "table": table,
        "warm_start": {
            "test": warm_summary,
            "simple": {m: warm_summary[m]["mean"] for m in metrics},
            "per_seed": warm_info,
        },
        "sweep": sweep,
        "comparisons": comparisons,
        "verdict": _verdict(config, table, warm_summary, comparisons, best_lr),
        "curves": curves,
        "train_reward": {
            lab: {lr: np.mean(c["train_reward"], axis=0).tolist() for lr, c in cells.items()}
            for lab, cells in raw.items()
        },
        "timing": timing,
        "aggregation": (
            "loss = -(K_obj/N) * sum_i a_i * log p(y_i) per group (log p = sum of the completion's token "
            "log-probs through its end token), mean over prompts; K_obj = 1 for grpo/rloo, K for max@K; Adam"
        ),
        "selection": (
            "per arm and metric, the learning rate with the best mean validation score over seeds; test "
            "numbers of that choice (best against best); differences are paired by seed (shared warm start)"
        ),
    }


@_common.styled
def plot(results: dict[str, Any]) -> Any:
    """Test-metric curves per arm and learning rate, and the final best-against-best bars with the paired
    differences, drawn from the results as ``bestofk.json`` stores them."""
    from matplotlib.lines import Line2D

    plt = _common.pyplot()
    cfg = results["config"]
    K = int(results["K"])
    metrics = results["metrics"]
    n_seeds = len(results["seeds"])
    seeds = _common.seeds_text(n_seeds)
    fig, axes = plt.subplots(1, 3, figsize=(17, 6.0), gridspec_kw={"width_ratios": (1, 1, 1.05)})
    colors = {"grpo": "tab:blue", "rloo": "tab:orange", f"max@{K}": "tab:green"}
    styles = [":", "--", "-.", (0, (1, 3))]
    lrs: list[str] = []
    for ax, m in zip(axes[:2], metrics, strict=True):
        for lab, cells in results["curves"].items():
            for li, (lr, c) in enumerate(cells.items()):
                if lr not in lrs:
                    lrs.append(lr)
                chosen = results["best_lr"][lab][m] == lr
                ax.plot(c["step"], c[m], ls=styles[li % len(styles)] if not chosen else "-",
                        color=colors.get(lab, "k"), alpha=1.0 if chosen else 0.45, lw=2.4 if chosen else 1.1,
                        zorder=3 if chosen else 2)
        ax.set_xlabel("RL step")
        ax.set_ylabel(f"test {m} (first {cfg['curve_problems']} problems)")
        ax.set_title(f"test {m} during RL, " + (f"mean of {seeds}" if n_seeds > 1 else seeds))
        ax.grid(alpha=0.3)
    # one legend for both curve panels, under them: colour = arm, line style = learning rate
    handles = [Line2D([], [], color=colors.get(lab, "k"), lw=2.4) for lab in results["curves"]]
    labels = list(results["curves"])
    handles += [Line2D([], [], color="0.35", ls=styles[i % len(styles)], lw=1.1) for i in range(len(lrs))]
    labels += [f"lr {lr}" for lr in lrs]
    handles.append(Line2D([], [], color="0.35", lw=2.4))
    labels.append("bold solid: the lr chosen on validation for that metric")
    leg = axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=4,
                         frameon=False)

    ax = axes[2]
    labs = list(results["table"])
    x = np.arange(len(metrics))
    width = 0.8 / (len(labs) + 1)
    rows = [("warm start", results["warm_start"]["test"], "lightgray")]
    rows += [(lab, results["table"][lab], colors.get(lab, "k")) for lab in labs]
    for i, (lab, t, color) in enumerate(rows):
        ax.bar(x - 0.4 + width * (i + 0.5), [t[m]["mean"] for m in metrics], width,
               yerr=[t[m]["se"] for m in metrics] if n_seeds > 1 else None, color=color, label=lab, capsize=3)
    ax.set_ylim(0, 1.12 * max(max(t[m]["mean"] + t[m]["se"] for m in metrics) for _, t, _ in rows))
    ax.set_xticks(x, [f"test {m}" for m in metrics])
    spread = "± s.e. over seeds" if n_seeds > 1 else "1 seed: no error bars"
    ax.set_title(f"final test metrics, each arm at its best lr per metric ({spread})")
    ax.legend(loc="upper left", ncol=2)
    ax.grid(alpha=0.3, axis="y")
    notes = []
    for m in metrics:  # paired by seed: the spread of the difference is much smaller than the bars'
        for b, c in results["comparisons"].get("tuned", {}).get(m, {}).items():
            if c["seeds"] > 1:
                diff = f"{c['diff']:+.3f} ± {c['se']:.3f} (s.e. over seeds; {c['ahead']}/{c['seeds']} ahead)"
            else:
                diff = f"{c['diff']:+.3f} (1 seed; ± {c['se_problems']:.3f} over test problems)"
            notes.append(f"{m}: max@{K} − {b} = {diff}")
    outside = [leg]  # placed under the axes, outside the layout computation
    if notes:
        head = "paired differences (by seed: the arms of a seed share its warm start):"
        outside.append(ax.text(0.0, -0.12, "\n".join([head, *notes]), transform=ax.transAxes, va="top",
                               fontsize=_common.LEGEND_FONT))
    for artist in outside:
        artist.set_in_layout(False)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    for artist in outside:  # back in, so that the saved PNG's bounding box includes them
        artist.set_in_layout(True)
    return fig


def _print(results: dict[str, Any]) -> None:
    metrics = results["metrics"]
    n = len(results["seeds"])
    print(f"{_common.seeds_text(n)}" + ("; mean ± s.e. over seeds" if n > 1 else ""))
    print(f"{'arm':<8}{'lr':>8}  " + "  ".join(f"{'val ' + m:>16}{'test ' + m:>18}" for m in metrics))
    for lab, cells in results["sweep"].items():
        for lr, c in cells.items():
            row = "  ".join(f"{_fmt(c['val'][m]['mean'], c['val'][m]['se'], n):>16}"
                            f"{_fmt(c['test'][m]['mean'], c['test'][m]['se'], n):>18}" for m in metrics)
            print(f"{lab:<8}{lr:>8}  {row}")
    w = results["warm_start"]["test"]
    print("warm start (test): " + ", ".join(f"{m} {_fmt(w[m]['mean'], w[m]['se'], n)}" for m in metrics))
    print("best against best (test): " + "; ".join(
        f"{lab}: " + ", ".join(f"{m} {_fmt(t[m]['mean'], t[m]['se'], n)} (lr {results['best_lr'][lab][m]})"
                               for m in metrics) for lab, t in results["table"].items()))
    print(results["verdict"])
    print(f"runtime {results['runtime_s']:.1f} s; files: {results['files']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.split("\n\n")[0], replot=True)
    p.add_argument("--demo", action="store_true", help="the reduced setting used by `rankgrad demo`")
    p.add_argument("--device", default="auto", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the setting's)")
    p.add_argument("--lrs", type=float, nargs="+", default=None, help="RL learning rates to sweep")
    p.add_argument("--steps", type=int, default=None, help="RL steps per run")
    args = p.parse_args(argv)
    if args.replot:
        return {"png": _common.replot(args.replot, plot, NAME)}
    config = Config.quick() if args.quick else Config.demo() if args.demo else Config()
    config.seed, config.device, config.threads = args.seed, args.device, args.threads
    if args.seeds is not None:
        config.seeds = args.seeds
    if args.lrs is not None:
        config.lrs = tuple(args.lrs)
    if args.steps is not None:
        config.rl_steps = args.steps
    results = run(config, args.out, progress=not args.no_progress)
    _print(results)
    return results


if __name__ == "__main__":
    main()
