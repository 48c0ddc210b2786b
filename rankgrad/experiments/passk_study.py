"""Pre-registered pass@K study: does training for max@4 beat tuned GRPO / RLOO / Dr.GRPO at pass@4?

The protocol (tasks, arms, grids, seeds, metric, decision rule) is docs/protocols/passk-study.md; the
report is docs/experiments/passk-study.md. This module is the harness.

**Tasks.** ``add3`` (3-digit addition, the problems and split of :mod:`rankgrad.experiments.bestofk`)
and any procedural task of the ``reasoning-gym`` package by name, ``rg:NAME`` (e.g. ``rg:chain_sum``,
``rg:countdown``): the package generates the problems offline from a seed and scores completions with
its own ``score_answer``. A completion earns reward 1 when the package's score is exactly 1.0 and 0
otherwise (partial scores, e.g. countdown's 0.05 for a well-formed wrong expression, count as 0).
Prompts are rendered compactly from the entry's ``metadata`` for the tasks listed in
:data:`RENDERERS` (``chain_sum``: ``"4-1-7="``; ``countdown``: ``"1,5,9>15:"``); any other task uses
its question text. Prompts are left-padded with ``_`` to one width. The supervised target is the
package's ``answer`` field with spaces removed (the scorer accepts both forms; tested). The held-out
validation and test problems are disjoint from the training problems by rendered prompt.

**Tokenizer.** One character per token, built in code from the generated prompts and answers, plus
the padding character ``_`` and the end token ``$`` (:class:`CharTokenizer`).

**Model and warm start.** The tiny decoder of :func:`rankgrad.experiments.bestofk.build_model`,
trained by supervised next-token loss on the answers of training problems until its sampled accuracy
(temperature 1) on validation problems reaches ``warm_threshold`` or after ``warm_max_steps``. All
arms of a seed start from that seed's warm start (paired design).

**Arms** (:data:`ARMS`), all through :func:`rankgrad.advantages` and each with the gradient scale its
estimator documents (``rankgrad.ESTIMATORS[...].gradient_scale(N, K)``; for the two biased ones,
which have none, the scale of their unbiased counterpart: 1/N for GRPO, K/N for Chen's pass@K):
the loss of a group is −c(N, K)·Σ_i a_i log p(y_i), averaged over the prompts of the step; Adam.

**Evaluation.** ``eval_samples`` (32) completions per held-out problem; pass@k for k in ``ks`` by the
unbiased estimator, computed as ``rankgrad.value(outcomes, f"max@{k}")`` of the 0/1 outcomes; the
per-token entropy of the policy (temperature 1) along its sampled completions; the number of
distinct correct completions per problem. Learning rate and sampling temperature are chosen per arm
on the validation split (mean validation pass@K over seeds), then the test split is evaluated once.

Run ``python -m rankgrad.experiments.passk_study --task add3|rg:NAME [--quick | --demo] [--workers W]
[--threads T] [--lrs 1e-4,3e-4,1e-3] [--tag NAME] [--out DIR]``; ``--replot`` redraws the PNG of a stored
run. ``--lrs`` replaces the learning-rate grid (the protocol's is 3e-4,1e-3) and ``--tag`` suffixes the
output names (``--tag lowlr`` writes ``passk_rg_countdown_lowlr.json``), so that a run outside the
protocol never overwrites a pre-registered result. The default run of each
task takes 3–7 minutes on 2 CPU cores (two worker processes over seeds, one torch thread each).
``rg:`` tasks need the ``reasoning-gym`` package.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import math
import multiprocessing
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import rankgrad
from rankgrad._src.types import ArrayLike
from rankgrad.experiments import _common, bestofk

NAME = "passk_study"
PAD, EOS = "_", "$"

# label -> (objective, estimator). The mixture is ½·mean + ½·max@4 (mean@4 has the mean's expectation).
ARMS: dict[str, tuple[str, str]] = {
    "grpo": ("mean", "grpo"),
    "rloo": ("mean", "ordergrad"),
    "dr_grpo": ("mean", "dr_grpo"),
    "max@4": ("max@4", "ordergrad"),
    "pkpo_sloo1": ("max@4", "pkpo_sloo1"),
    "chen_passk": ("max@4", "chen_passk"),
    "mix": ("0.5*mean + 0.5*max@4", "ordergrad"),
}
BASELINES = ("grpo", "rloo", "dr_grpo")
TARGET = "max@4"
# gradient scale for the biased estimators without one: that of their unbiased counterpart
_FALLBACK_SCALE = {"grpo": "rloo", "chen_passk": "ordergrad"}


def objective_of(spec: str) -> Any:
    """The objective of an arm: the string itself, or for the mixture the equal-valued weight vector."""
    if "+" not in spec:
        return spec
    try:
        return rankgrad.parse(spec)
    except (ValueError, TypeError):  # mixture strings not supported: ½·mean@4 + ½·max@4 by weights
        w = 0.5 * np.asarray(rankgrad.parse("mean@4").weights) + 0.5 * np.asarray(
            rankgrad.parse("max@4").weights
        )
        return rankgrad.Objective.from_weights(w)


def gradient_scale(estimator: str, n: int, k: int) -> float:
    """c(N, K) of ``estimator`` (see module docstring for the biased ones)."""
    info = rankgrad.ESTIMATORS[_FALLBACK_SCALE.get(estimator, estimator)]
    return float(info.gradient_scale(n, k))


# ----------------------------------------------------------------------------------------------------
# Tokenizer and tasks
# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
    """One token per character of ``chars``; ``_`` pads prompts, ``$`` ends a completion."""

    chars: str

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> CharTokenizer:
        """The characters of ``texts`` (sorted) plus ``_`` and ``$``; the texts may not contain ``$``."""
        seen = set("".join(texts))
        if EOS in seen:
            raise ValueError(f"texts: contain the end token {EOS!r}; remove it from the task's text")
        return cls("".join(sorted(seen | {PAD})) + EOS)

    @property
    def size(self) -> int:
        return len(self.chars)

    @property
    def eos_id(self) -> int:
        return self.chars.index(EOS)

    @property
    def pad_id(self) -> int:
        return self.chars.index(PAD)

    def encode(self, text: str) -> list[int]:
        lookup = {c: i for i, c in enumerate(self.chars)}
        try:
            return [lookup[c] for c in text]
        except KeyError as e:
            raise ValueError(
                f"text: character {e.args[0]!r} is not in the vocabulary {self.chars!r}"
            ) from None

    def decode(self, ids: Sequence[int], *, stop_at_eos: bool = True) -> str:
        out = []
        for i in ids:
            c = self.chars[int(i)]
            if stop_at_eos and c == EOS:
                break
            out.append(c)
        return "".join(out)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem: the compact prompt, the supervised answer (no end token) and the scorer's entry."""

    prompt: str
    answer: str
    entry: dict


def _render_chain_sum(entry: dict) -> str:
    return entry["metadata"]["expression"].replace(" ", "") + "="


def _render_countdown(entry: dict) -> str:
    m = entry["metadata"]
    return ",".join(str(x) for x in m["numbers"]) + f">{m['target']}:"


def _render_expression(entry: dict) -> str:
    return entry["metadata"]["expression"].replace(" ", "") + "="


RENDERERS = {
    "chain_sum": _render_chain_sum,
    "countdown": _render_countdown,
    "basic_arithmetic": _render_expression,
}

# small configurations for a tiny model (reasoning-gym config options of each dataset)
RG_CONFIGS: dict[str, dict[str, Any]] = {
    "chain_sum": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2},
    "countdown": {
        "min_numbers": 3,
        "max_numbers": 3,
        "min_value": 1,
        "max_value": 9,
        "min_target": 10,
        "max_target": 40,
    },
    "basic_arithmetic": {
        "min_terms": 2,
        "max_terms": 2,
        "min_digits": 1,
        "max_digits": 2,
        "operators": ("+", "-", "*"),
        "allow_parentheses": False,
        "allow_negation": False,
    },
}


@dataclasses.dataclass
class Task:
    """Problems (train / val / test), the tokenizer and how to score a completion."""

    name: str
    train: list[Problem]
    val: list[Problem]
    test: list[Problem]
    tokenizer: CharTokenizer
    prompt_len: int
    max_new: int
    rg_name: str | None = None
    rg_config: dict | None = None

    def prompt_ids(self, problems: Sequence[Problem]) -> np.ndarray:
        """``[n, prompt_len]`` ids, prompts left-padded with ``_``."""
        return np.array([self.tokenizer.encode(p.prompt.rjust(self.prompt_len, PAD)) for p in problems])

    def answer_ids(self, problems: Sequence[Problem]) -> np.ndarray:
        """``[n, max_new]`` ids of the answers, end token then end tokens to the width."""
        return np.array([self.tokenizer.encode((p.answer + EOS).ljust(self.max_new, EOS)) for p in problems])


class Scorer:
    """Reward of a completion: 1.0 when the task's own scorer gives exactly 1.0, else 0.0 (memoised)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._cache: dict[tuple[str, str], float] = {}
        self._ds = None
        if task.rg_name is not None:
            import reasoning_gym

            self._ds = reasoning_gym.create_dataset(task.rg_name, size=1, seed=0, **(task.rg_config or {}))

    def raw(self, problem: Problem, completion: str) -> float:
        """The task's own score (reasoning-gym's ``score_answer``; exact match for add3)."""
        if self._ds is None:
            e = problem.entry
            return 1.0 if completion == str(e["a"] + e["b"]) else 0.0
        # a power such as 9**9**9 would make the package's expression parser compute for ever; the
        # character-level policy can emit one, so it is scored 0 here without calling the package
        if "**" in completion:
            return 0.0
        return float(self._ds.score_answer(completion, problem.entry))

    def __call__(self, problem: Problem, completion: str) -> float:
        key = (problem.prompt, completion)
        if key not in self._cache:
            self._cache[key] = 1.0 if self.raw(problem, completion) == 1.0 else 0.0
        return self._cache[key]


def _split(
    items: list[Problem], n_val: int, n_test: int, rng: np.random.Generator
) -> tuple[list, list, list]:
    """Distinct prompts for validation and test; training keeps every problem whose prompt is not held out."""
    order = rng.permutation(len(items))
    seen: dict[str, int] = {}
    for i in order:
        seen.setdefault(items[i].prompt, int(i))
    distinct = list(seen.values())
    if len(distinct) < 2 * (n_val + n_test):
        raise ValueError(
            f"task: only {len(distinct)} distinct problems for {n_val + n_test} held out; "
            "use a larger n_generate or a harder configuration"
        )
    val = [items[i] for i in distinct[:n_val]]
    test = [items[i] for i in distinct[n_val : n_val + n_test]]
    held = {p.prompt for p in val + test}
    train = [p for p in items if p.prompt not in held]
    return train, val, test


def make_task(name: str, n_val: int, n_test: int, n_generate: int, data_seed: int) -> Task:
    """``add3`` or ``rg:NAME`` with its held-out splits (fixed by ``data_seed``)."""
    rng = np.random.default_rng(data_seed)
    rg_name, rg_config = None, None
    if name == "add3":
        splits = bestofk.make_splits(3, n_val, n_test, data_seed)
        train_pairs = splits.sample_train(rng, n_generate)

        def prob(a: int, b: int) -> Problem:
            return Problem(bestofk.prompt_text(a, b, 3), str(a + b), {"a": int(a), "b": int(b)})

        val = [prob(a, b) for a, b in splits.val]
        test = [prob(a, b) for a, b in splits.test]
        train = [prob(a, b) for a, b in train_pairs]
    elif name.startswith("rg:"):
        import reasoning_gym

        rg_name = name[3:]
        rg_config = dict(RG_CONFIGS.get(rg_name, {}))
        try:
            ds = reasoning_gym.create_dataset(rg_name, size=n_generate, seed=data_seed, **rg_config)
        except Exception as e:  # the package raises its own errors for unknown names / bad configs
            raise ValueError(f"task: reasoning-gym could not create {rg_name!r} ({e})") from None
        render = RENDERERS.get(rg_name, lambda e: " ".join(e["question"].split()))
        items = [Problem(render(e), str(e["answer"]).replace(" ", ""), e) for e in ds]
        train, val, test = _split(items, n_val, n_test, rng)
    else:
        raise ValueError(f"task: {name!r} is not a task; use 'add3' or 'rg:NAME' (a reasoning-gym dataset)")
    all_ = train + val + test
    tok = CharTokenizer.from_texts([p.prompt + p.answer for p in all_])
    prompt_len = max(len(p.prompt) for p in all_)
    max_new = max(len(p.answer) for p in all_) + 3  # room for longer correct answers, then the end token
    return Task(name, train, val, test, tok, prompt_len, max_new, rg_name, rg_config)


# ----------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    """Every knob; ``quick()`` is the smoke test. The defaults are the pre-registered setting."""

    task: str = "add3"
    n_val: int = 96
    n_test: int = 160
    n_generate: int = 5000
    data_seed: int = 20261130
    # model
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    # warm start
    warm_lr: float = 3e-3
    warm_batch: int = 128
    warm_threshold: float = 0.3
    warm_check_every: int = 10
    warm_check_problems: int = 96
    warm_max_steps: int = 1200
    # RL
    K: int = 4
    arms: tuple[str, ...] = tuple(ARMS)
    lrs: tuple[float, ...] = (3e-4, 1e-3)
    rl_steps: int = 40
    prompts_per_step: int = 16
    samples_per_prompt: int = 8
    # evaluation
    eval_samples: int = 32
    val_samples: int = 16
    ks: tuple[int, ...] = (1, 2, 4, 8, 16)
    temperatures: tuple[float, ...] = (0.7, 1.0, 1.3)
    # runs
    seeds: tuple[int, ...] = (10, 11, 12, 13, 14, 15, 16, 17)
    workers: int = 2
    threads: int = 1

    @classmethod
    def quick(cls, task: str = "add3") -> Config:
        """The smoke test: two seeds, tiny splits, a few steps; the pipeline, not the headline."""
        return cls(
            task=task,
            n_val=16,
            n_test=16,
            n_generate=800,
            warm_max_steps=20,
            warm_check_every=10,
            warm_check_problems=16,
            warm_batch=64,
            lrs=(3e-4,),
            rl_steps=3,
            prompts_per_step=4,
            eval_samples=16,
            val_samples=8,
            ks=(1, 2, 4, 8, 16),
            temperatures=(1.0, 1.3),
            seeds=(10, 11),
            workers=1,
        )

    @classmethod
    def demo(cls, task: str = "add3") -> Config:
        """What ``rankgrad demo`` runs: two seeds, GRPO / RLOO / max@4 at the learning rate and temperature
        the full study chose for every arm on add3 (3e-4, 0.7; at 1e-3 every arm collapses)."""
        return cls(
            task=task, arms=("grpo", "rloo", "max@4"), lrs=(3e-4,), temperatures=(0.7,), seeds=(10, 11)
        )


# ----------------------------------------------------------------------------------------------------
# Model, sampling, training
# ----------------------------------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def _decode_all(tok: CharTokenizer, gen) -> list[str]:
    return [tok.decode(row) for row in gen.tolist()]


def pass_at_k_table(correct: ArrayLike, n: int, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-problem unbiased pass@k, ``rankgrad.value`` of max@k on the 0/1 outcomes (c ones of n)."""
    outcomes = (np.arange(n) < np.asarray(correct)[:, None]).astype(float)
    return {f"pass@{k}": np.asarray(rankgrad.value(outcomes, f"max@{k}"), dtype=float) for k in ks}


def evaluate(
    model,
    task: Task,
    problems: Sequence[Problem],
    scorer: Scorer,
    n: int,
    temperature: float,
    ks: Sequence[int],
) -> dict[str, Any]:
    """Per-problem correct counts, pass@k, distinct correct completions; mean per-token entropy."""
    torch = _torch()
    prompts = torch.as_tensor(task.prompt_ids(problems)).repeat_interleave(n, 0)
    was = model.training
    model.eval()
    gen, entropy = bestofk.generate(
        model, prompts, task.max_new, temperature, chunk=None, eos=task.tokenizer.eos_id, with_entropy=True
    )
    model.train(was)
    texts = _decode_all(task.tokenizer, gen)
    complete = (gen == task.tokenizer.eos_id).any(dim=1).tolist()
    correct = np.zeros(len(problems), dtype=np.int64)
    distinct = np.zeros(len(problems), dtype=np.int64)
    for i, p in enumerate(problems):
        good = {
            t
            for t, c in zip(texts[i * n : (i + 1) * n], complete[i * n : (i + 1) * n], strict=True)
            if c and scorer(p, t) == 1.0
        }
        correct[i] = sum(
            1
            for t, c in zip(texts[i * n : (i + 1) * n], complete[i * n : (i + 1) * n], strict=True)
            if c and t in good
        )
        distinct[i] = len(good)
    out: dict[str, Any] = {"correct": correct, "distinct_correct": distinct, "entropy": entropy}
    out.update(pass_at_k_table(correct, n, ks))
    return out


def warm_start(config: Config, task: Task, scorer: Scorer, seed: int) -> tuple[Any, dict]:
    """Supervised steps on training answers until the sampled validation accuracy reaches the threshold."""
    torch = _torch()
    rng = _common.seed_everything(seed)
    tok = task.tokenizer
    model = bestofk.build_model(
        tok.size, task.prompt_len + task.max_new, config.d_model, config.n_layers, config.n_heads
    ).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.warm_lr)
    lp = task.prompt_len
    check = task.val[: config.warm_check_problems]
    history: list[tuple[int, float]] = []
    acc, step = 0.0, 0
    for step in range(1, config.warm_max_steps + 1):
        idx = rng.integers(0, len(task.train), size=config.warm_batch)
        probs = [task.train[i] for i in idx]
        seq = torch.as_tensor(np.concatenate([task.prompt_ids(probs), task.answer_ids(probs)], 1))
        logits = model(seq[:, :-1])[:, lp - 1 :]
        tgt = seq[:, lp:]
        is_eos = (tgt == tok.eos_id).long()
        keep = (torch.cumsum(is_eos, 1) - is_eos) == 0
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")
        loss = (nll * keep).sum() / keep.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % config.warm_check_every == 0 or step == config.warm_max_steps:
            acc = float(evaluate(model, task, check, scorer, 1, 1.0, (1,))["pass@1"].mean())
            history.append((step, acc))
            if acc >= config.warm_threshold:
                break
    return model, {
        "steps": step,
        "sampled_val_accuracy": acc,
        "reached_threshold": acc >= config.warm_threshold,
        "history": history,
    }


def rl_arm(
    warm, config: Config, task: Task, scorer: Scorer, arm: str, lr: float, seed: int
) -> dict[str, Any]:
    """Group RL from the warm start with one arm at one learning rate; the prompt stream depends on
    ``seed`` only (identical for every arm and lr of a seed)."""
    torch = _torch()
    objective_spec, estimator = ARMS[arm]
    objective = objective_of(objective_spec)
    P, N, K = config.prompts_per_step, config.samples_per_prompt, config.K
    k_obj = 1 if objective_spec == "mean" else K
    scale = gradient_scale(estimator, N, k_obj)
    data_rng = np.random.default_rng(seed)
    _common.seed_everything(seed + 1)
    model = copy.deepcopy(warm).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    tok = task.tokenizer
    train_reward: list[float] = []
    prompt_hash = 0
    for _ in range(config.rl_steps):
        idx = data_rng.integers(0, len(task.train), size=P)
        prompt_hash = hash((prompt_hash, tuple(idx.tolist())))
        probs = [task.train[i] for i in idx]
        prompts = torch.as_tensor(task.prompt_ids(probs)).repeat_interleave(N, 0)
        model.eval()
        gen = bestofk.generate(model, prompts, task.max_new, 1.0, chunk=None, eos=tok.eos_id)
        model.train()
        texts = _decode_all(tok, gen)
        complete = (gen == tok.eos_id).any(dim=1).tolist()
        r = [
            scorer(probs[i // N], t) if c else 0.0
            for i, (t, c) in enumerate(zip(texts, complete, strict=True))
        ]
        rewards = torch.tensor(r, dtype=torch.float32).view(P, N)
        adv = rankgrad.advantages(rewards, objective, estimator=estimator)
        logp = bestofk.completion_logprob(model, prompts, gen, tok.eos_id).view(P, N)
        loss = -(scale * adv * logp).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        train_reward.append(float(rewards.mean()))
    return {"model": model, "train_reward": train_reward, "prompt_hash": prompt_hash, "scale": scale}


# ----------------------------------------------------------------------------------------------------
# Jobs (one per seed, run in worker processes)
# ----------------------------------------------------------------------------------------------------


def _job_init(threads: int) -> None:
    _torch().set_num_threads(threads)


def _train_seed(config: Config, task: Task, seed: int) -> dict[str, Any]:
    """Phase 1 of a seed: warm start, every arm × lr, validation at every temperature; state dicts back."""
    t0 = time.perf_counter()
    scorer = Scorer(task)
    warm, info = warm_start(config, task, scorer, 1000 * seed + 1)
    t_warm = time.perf_counter() - t0
    runs: dict[str, dict[str, Any]] = {}
    for arm in config.arms:
        runs[arm] = {}
        for lr in config.lrs:
            out = rl_arm(warm, config, task, scorer, arm, lr, 1000 * seed + 100)
            _common.seed_everything(1000 * seed + 200)
            val = {
                f"{t:g}": float(
                    evaluate(out["model"], task, task.val, scorer, config.val_samples, t, (config.K,))[
                        f"pass@{config.K}"
                    ].mean()
                )
                for t in config.temperatures
            }
            runs[arm][f"{lr:g}"] = {
                "val": val,
                "state": out["model"].state_dict(),
                "scale": out["scale"],
                "prompt_hash": out["prompt_hash"],
                "train_reward": float(np.mean(out["train_reward"])),
            }
    return {
        "seed": seed,
        "warm": info,
        "warm_state": warm.state_dict(),
        "runs": runs,
        "seconds": {"warm_start": t_warm, "total": time.perf_counter() - t0},
    }


def _test_seed(
    config: Config, task: Task, seed: int, states: dict[str, tuple[dict, float]]
) -> dict[str, Any]:
    """Phase 2 of a seed: the test split once per arm at its chosen (lr, temperature), and the warm start."""
    torch = _torch()
    scorer = Scorer(task)
    model = bestofk.build_model(
        task.tokenizer.size, task.prompt_len + task.max_new, config.d_model, config.n_layers, config.n_heads
    )
    out = {}
    for lab, (state, temp) in states.items():
        model.load_state_dict(state)
        torch.manual_seed(1000 * seed + 300)
        ev = evaluate(model, task, task.test, scorer, config.eval_samples, temp, config.ks)
        out[lab] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ev.items()}
    return out


def _pool(config: Config):
    if config.workers <= 1:
        return None
    ctx = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(
        config.workers, mp_context=ctx, initializer=_job_init, initargs=(config.threads,)
    )


def _map(pool, fn, args_list: list[tuple], desc: str, progress: bool) -> list:
    """``fn(*args)`` for each args (in the pool when there is one), in order; a line per finished job."""
    t0 = time.perf_counter()
    results = (
        map(fn, *zip(*args_list, strict=True))
        if pool is None
        else pool.map(fn, *zip(*args_list, strict=True))
    )
    out = []
    for i, r in enumerate(results, 1):
        out.append(r)
        if progress:
            print(f"{desc}: {i}/{len(args_list)} seeds done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool's workers)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return float("nan")
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# ----------------------------------------------------------------------------------------------------
# Statistics and the decision rule
# ----------------------------------------------------------------------------------------------------


# t_{0.975, df} for df = 1..30 (the standard table, 3 decimals); beyond, the Cornish-Fisher expansion.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile_95(df: int) -> float:
    """Two-sided 95% Student t quantile t_{0.975, df}: scipy when installed; else the table for df <= 30
    and, above, the Cornish-Fisher expansion in 1/df (error below 1e-4 there)."""
    try:
        from scipy import stats

        return float(stats.t.ppf(0.975, df))
    except ImportError:
        pass
    if df < 1:
        raise ValueError(f"df: expected an integer >= 1, got {df!r}.")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def paired(x: list[np.ndarray], y: list[np.ndarray]) -> dict[str, Any]:
    """x − y per seed (per-problem arrays averaged): mean, t 95% CI over seeds, per-problem s.e."""
    d = [np.asarray(a, float) - np.asarray(b, float) for a, b in zip(x, y, strict=True)]
    per_seed = np.array([v.mean() for v in d])
    n = len(per_seed)
    mu = float(per_seed.mean())
    se = float(per_seed.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    half = t_quantile_95(n - 1) * se if n > 1 else float("nan")
    se_problems = float(np.sqrt(sum(v.var(ddof=1) / v.size for v in d)) / n)
    return {
        "diff": mu,
        "se": se,
        "ci95": [mu - half, mu + half],
        "se_problems": se_problems,
        "seeds": n,
        "ahead": int((per_seed > 0).sum()),
        "behind": int((per_seed < 0).sum()),
        "per_seed": per_seed.tolist(),
    }


def decide(c: dict[str, Any]) -> str:
    """The protocol's rule: the 95% CI over seeds of the paired difference excludes 0 or not."""
    lo, hi = c["ci95"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undecided (one seed: no interval)"
    if lo > 0:
        return "max@4 wins"
    if hi < 0:
        return "max@4 loses"
    return "no difference shown"


# ----------------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------------


def run(
    config: Config, out_dir: str = _common.DEFAULT_OUT, progress: bool = True, tag: str | None = None
) -> dict[str, Any]:
    """Both phases over the seeds, selection on validation, test, statistics, plot and JSON.

    The files are ``passk_<task>.json`` / ``.png``, or ``passk_<task>_<tag>.*`` with a ``tag``."""
    stem = output_stem(config.task, tag)
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    task = make_task(config.task, config.n_val, config.n_test, config.n_generate, config.data_seed)
    t_task = time.perf_counter() - t0
    K = config.K
    pk = f"pass@{K}"
    with_pool = _pool(config)
    prev_threads = _torch().get_num_threads()
    if with_pool is None:
        _job_init(config.threads)
    try:
        phase1 = _map(
            with_pool,
            _train_seed,
            [(config, task, s) for s in config.seeds],
            f"{config.task} training",
            progress,
        )
        t1 = time.perf_counter()
        # selection on validation: per arm, the (lr, temperature) with the best mean val pass@K over seeds
        lr_keys = [f"{lr:g}" for lr in config.lrs]
        temps = [f"{t:g}" for t in config.temperatures]
        val_mean = {
            arm: {
                lr: {t: float(np.mean([p["runs"][arm][lr]["val"][t] for p in phase1])) for t in temps}
                for lr in lr_keys
            }
            for arm in config.arms
        }
        chosen = {}
        for arm in config.arms:
            lr, t = max(
                ((lr, t) for lr in lr_keys for t in temps), key=lambda lt, a=arm: val_mean[a][lt[0]][lt[1]]
            )
            chosen[arm] = {"lr": lr, "temperature": t, "val": val_mean[arm][lr][t]}
        base_in = [b for b in BASELINES if b in config.arms]
        best_baseline = max(base_in, key=lambda b: chosen[b]["val"]) if base_in else None
        jobs = []
        for p in phase1:
            states = {
                arm: (p["runs"][arm][chosen[arm]["lr"]]["state"], float(chosen[arm]["temperature"]))
                for arm in config.arms
            }
            states["warm start"] = (p["warm_state"], 1.0)
            jobs.append((config, task, p["seed"], states))
        phase2 = _map(with_pool, _test_seed, jobs, f"{config.task} test", progress)
    finally:
        if with_pool is not None:
            with_pool.shutdown()
        _torch().set_num_threads(prev_threads)
    t2 = time.perf_counter()
    labels = [*config.arms, "warm start"]
    metrics = [f"pass@{k}" for k in config.ks]
    table: dict[str, dict[str, Any]] = {}
    for lab in labels:
        row = {}
        for m in [*metrics, "entropy", "distinct_correct"]:
            per_seed = [float(np.mean(s[lab][m])) for s in phase2]
            mu, se = _common.mean_spread(per_seed)
            row[m] = {"mean": mu, "se": se, "per_seed": per_seed}
        table[lab] = row

    def per_problem(lab: str, m: str) -> list[np.ndarray]:
        return [np.asarray(s[lab][m], float) for s in phase2]

    comparisons: dict[str, dict[str, Any]] = {}
    for arm in config.arms:
        if arm in BASELINES or best_baseline is None:
            continue
        comparisons[arm] = {m: paired(per_problem(arm, m), per_problem(best_baseline, m)) for m in metrics}
    primary = comparisons.get(TARGET, {}).get(pk)
    decision = decide(primary) if primary is not None else "max@4 or the baselines were not run"
    same_prompts = all(
        len({r["prompt_hash"] for arm in p["runs"].values() for r in arm.values()}) == 1 for p in phase1
    )
    results = {
        "name": NAME,
        "task": config.task,
        "config": dataclasses.asdict(config),
        "arms": {
            a: {
                "objective": ARMS[a][0],
                "estimator": ARMS[a][1],
                "objective_used": getattr(objective_of(ARMS[a][0]), "name", ARMS[a][0]),
                "gradient_scale": phase1[0]["runs"][a][lr_keys[0]]["scale"],
            }
            for a in config.arms
        },
        "task_info": {
            "vocabulary": task.tokenizer.chars,
            "prompt_len": task.prompt_len,
            "max_new": task.max_new,
            "train": len(task.train),
            "val": len(task.val),
            "test": len(task.test),
            "example": {"prompt": task.test[0].prompt, "answer": task.test[0].answer},
            "rg_config": task.rg_config,
        },
        "seeds": list(config.seeds),
        "metrics": metrics,
        "validation": val_mean,
        "chosen": chosen,
        "best_baseline": best_baseline,
        "table": table,
        "comparisons": comparisons,
        "primary": {
            "metric": pk,
            "arm": TARGET,
            "baseline": best_baseline,
            "result": primary,
            "decision": decision,
        },
        "same_prompts_every_arm": same_prompts,
        "warm_start": [p["warm"] for p in phase1],
        "train_reward": {
            a: {lr: [p["runs"][a][lr]["train_reward"] for p in phase1] for lr in lr_keys} for a in config.arms
        },
        "timing": {
            "task_s": t_task,
            "phase1_s": t1 - t0 - t_task,
            "phase2_s": t2 - t1,
            "per_seed": [p["seconds"] for p in phase1],
            "workers": config.workers,
            "threads": config.threads,
            "load_average": _loadavg(),
        },
    }
    results["runtime_s"] = time.perf_counter() - t0
    results["timing"]["cpu_s"] = _cpu_seconds() - cpu0  # all processes of the run (user + system)
    results["verdict"] = _verdict(results)
    if tag:
        results["tag"] = tag
    fig = _plot(results)
    return _common.write_outputs(out_dir, stem, results, fig)


def _slug(task: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", task.lower()).strip("_")


def parse_lrs(text: str) -> tuple[float, ...]:
    """The ``--lrs`` option: comma-separated learning rates, e.g. ``"1e-4,3e-4,1e-3"`` → (1e-4, 3e-4, 1e-3).

    Each must be a positive finite number, and no two may print the same (results are keyed by
    ``f"{lr:g}"``); raises ValueError naming ``--lrs`` otherwise."""
    parts = [t.strip() for t in str(text).split(",")]
    if not parts or any(not t for t in parts):
        raise ValueError(f"--lrs: {text!r} has an empty entry; give comma-separated rates, e.g. 1e-4,3e-4")
    lrs = []
    for t in parts:
        try:
            lr = float(t)
        except ValueError:
            msg = f"--lrs: {t!r} is not a number; give comma-separated rates, e.g. 1e-4,3e-4"
            raise ValueError(msg) from None
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"--lrs: {t!r} is not a positive finite learning rate; use e.g. 1e-4")
        lrs.append(lr)
    keys = [f"{lr:g}" for lr in lrs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"--lrs: {text!r} repeats a rate; give each learning rate once")
    return tuple(lrs)


def output_stem(task: str, tag: str | None = None) -> str:
    """``passk_<task slug>`` or, with a ``tag`` (letters, digits, ``_``, ``-``), ``passk_<slug>_<tag>``."""
    stem = f"passk_{_slug(task)}"
    if tag is None or tag == "":
        return stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", tag):
        raise ValueError(f"--tag: {tag!r} must be letters, digits, '_' or '-' (part of a file name)")
    return f"{stem}_{tag}"


def _loadavg() -> list[float] | None:
    try:
        import os

        return list(os.getloadavg())
    except OSError:  # pragma: no cover
        return None


def _verdict(r: dict[str, Any]) -> str:
    p = r["primary"]
    c = p["result"]
    if c is None:
        return p["decision"]
    K = r["config"]["K"]
    t = r["table"]
    s = (
        f"{r['task']}: {p['decision']} (pass@{K}, max@4 − best-tuned baseline {p['baseline']}: "
        f"{c['diff']:+.3f}, 95% CI [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] over {c['seeds']} seeds, "
        f"ahead in {c['ahead']}/{c['seeds']}; per-problem s.e. {c['se_problems']:.3f}). "
    )
    c1 = r["comparisons"][TARGET]["pass@1"]
    s += (
        f"pass@1 cost: {c1['diff']:+.3f} [{c1['ci95'][0]:+.3f}, {c1['ci95'][1]:+.3f}]. "
        f"Test pass@{K}: max@4 {t[TARGET][f'pass@{K}']['mean']:.3f}, {p['baseline']} "
        f"{t[p['baseline']][f'pass@{K}']['mean']:.3f}, warm start {t['warm start'][f'pass@{K}']['mean']:.3f}."
    )
    return s


def _plot(r: dict[str, Any]):
    plt = _common.pyplot()
    ks = r["config"]["ks"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    ax = axes[0]
    for lab, row in r["table"].items():
        m = np.array([row[f"pass@{k}"]["mean"] for k in ks])
        n = len(row[f"pass@{ks[0]}"]["per_seed"])
        half = np.array([row[f"pass@{k}"]["se"] for k in ks]) * (t_quantile_95(n - 1) if n > 1 else 0.0)
        style = {"ls": ":", "color": "gray"} if lab == "warm start" else {}
        ax.errorbar(
            ks, m, yerr=half, marker="o", ms=3, capsize=2, label=lab, lw=2 if lab == TARGET else 1, **style
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (log scale)")
    ax.set_ylabel("test pass@k (mean over seeds, 95% CI)")
    ax.set_title(f"{r['task']}: pass@k per arm (lr and temperature chosen on validation)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[1]
    rows = [
        (arm, m, c)
        for arm, cm in r["comparisons"].items()
        for m, c in cm.items()
        if m in (f"pass@{ks[0]}", f"pass@{r['config']['K']}", f"pass@{ks[-1]}")
    ]
    for i, (_, _, c) in enumerate(rows):
        lo, hi = c["ci95"]
        color = "tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:gray"
        ax.errorbar(
            [c["diff"]],
            [i],
            xerr=[[c["diff"] - lo], [hi - c["diff"]]] if math.isfinite(lo) else None,
            fmt="o",
            color=color,
            capsize=3,
        )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{arm} {m}" for arm, m, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"paired difference vs best-tuned baseline ({r['best_baseline']}), 95% CI over seeds")
    ax.set_title(
        f"primary (max@4 − {r['best_baseline']}, pass@4): {r['primary']['decision']}; "
        "green/red: interval excludes 0",
        fontsize=9,
    )
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def _print(r: dict[str, Any]) -> None:
    ms = r["metrics"]
    print(
        f"{'arm':<12}{'lr':>7}{'T':>5}  " + "".join(f"{m:>10}" for m in ms) + f"{'entropy':>9}{'distinct':>9}"
    )
    for lab, row in r["table"].items():
        ch = r["chosen"].get(lab, {"lr": "-", "temperature": "1"})
        print(
            f"{lab:<12}{ch['lr']:>7}{ch['temperature']:>5}  "
            + "".join(f"{row[m]['mean']:>10.3f}" for m in ms)
            + f"{row['entropy']['mean']:>9.3f}{row['distinct_correct']['mean']:>9.2f}"
        )
    print(r["verdict"])
    print(f"runtime {r['runtime_s']:.1f} s (load {r['timing']['load_average']}); files: {r['files']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--task", default="add3", help="add3 or rg:NAME (a reasoning-gym dataset), default add3")
    p.add_argument("--workers", type=int, default=None, help="processes over seeds (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process (default 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the protocol's)")
    p.add_argument("--steps", type=int, default=None, help="RL steps per run")
    p.add_argument("--demo", action="store_true", help="the reduced setting of `rankgrad demo`")
    p.add_argument(
        "--lrs", default=None, help="learning-rate grid, comma-separated (default: the protocol's, 3e-4,1e-3)"
    )
    p.add_argument(
        "--tag", default=None, help="suffix of the output names: passk_<task>_<tag>.json (default: none)"
    )
    p.add_argument("--replot", action="store_true", help="redraw the PNG of the stored run in --out")
    args = p.parse_args(argv)
    try:
        lrs = parse_lrs(args.lrs) if args.lrs is not None else None
        stem = output_stem(args.task, args.tag)
    except ValueError as e:
        p.error(str(e))
    setting = Config.quick if args.quick else Config.demo if args.demo else Config
    config = setting(args.task)
    if args.seed:  # --seed S shifts every seed of the setting by S
        config.seeds = tuple(s + args.seed for s in config.seeds)
    if args.workers is not None:
        config.workers = args.workers
    if args.threads is not None:
        config.threads = args.threads
    if args.seeds is not None:
        config.seeds = tuple(args.seeds)
    if args.steps is not None:
        config.rl_steps = args.steps
    if lrs is not None:
        config.lrs = lrs
    if args.replot:  # redraw the figure of a stored run (no training)
        import json
        import pathlib

        path = pathlib.Path(args.out) / f"{stem}.json"
        if not path.exists():
            raise SystemExit(f"--replot: no stored run at {path}; run the study first or give --out")
        stored = json.loads(path.read_text())
        fig = _plot(stored)
        fig.savefig(path.with_suffix(".png"), dpi=120, bbox_inches="tight")
        print(f"redrew {path.with_suffix('.png')}")
        return stored
    results = run(config, args.out, progress=not args.no_progress, tag=args.tag)
    _print(results)
    return results


if __name__ == "__main__":
    main()
