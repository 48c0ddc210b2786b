"""The best-of-K language-model experiment: task, splits, pass@k estimator, tokenizer, quick run."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from rankgrad.experiments import bestofk as bk  # noqa: E402

pytestmark = pytest.mark.slow  # runs an experiment; skipped by the inner loop `pytest -m "not slow"`


def test_tokenizer_round_trip():
    for text in ["042+917=959$", "0+0=0$", "999+999=1998$", "+=$0123456789"]:
        assert bk.decode(bk.encode(text), stop_at_eos=False) == text
    assert bk.decode(bk.encode("12+3=15$777")) == "12+3=15"
    assert len(bk.VOCAB) == 13
    with pytest.raises(ValueError, match="vocabulary"):
        bk.encode("1-2")


def test_prompt_and_answer_tokens_match_the_strings():
    probs = np.array([[42, 917], [0, 0], [999, 999], [500, 500], [7, 3]])
    prompts = bk.prompt_tokens(probs, 3)
    answers = bk.answer_tokens(probs, 3)
    assert prompts.shape == (5, 8) and answers.shape == (5, 5)
    for (a, b), p, ans in zip(probs, prompts, answers, strict=True):
        assert bk.decode(p) == bk.prompt_text(a, b, 3)
        assert bk.decode(ans, stop_at_eos=False).startswith(bk.answer_text(a, b))
        assert bk.verify(a, b, bk.decode(ans, stop_at_eos=False))


def test_verifier_is_exact_match():
    assert bk.verify(42, 917, "959$")
    assert bk.verify(42, 917, "959$12")  # anything after the end token is ignored
    assert not bk.verify(42, 917, "959")  # no end token: not an answer
    assert not bk.verify(42, 917, "0959$")
    assert not bk.verify(42, 917, "958$")
    assert not bk.verify(42, 917, "9590$")
    assert bk.verify(0, 0, "0$")


def test_splits_are_disjoint_from_training():
    sp = bk.make_splits(3, 256, 512, data_seed=7)
    assert len(sp.val) == 256 and len(sp.test) == 512
    unordered = {tuple(sorted(p)) for p in np.concatenate([sp.val, sp.test]).tolist()}
    assert len(unordered) == 256 + 512  # distinct problems, val and test disjoint even up to a+b = b+a
    assert sp.is_heldout(sp.val).all() and sp.is_heldout(sp.test).all()
    assert sp.is_heldout(sp.test[:, ::-1]).all()
    train = sp.sample_train(np.random.default_rng(0), 20000)
    assert not sp.is_heldout(train).any()
    assert not {tuple(sorted(p)) for p in train.tolist()} & unordered
    # the same data seed gives the same split; the held-out set is a tiny part of the problem space
    again = bk.make_splits(3, 256, 512, data_seed=7)
    assert np.array_equal(again.test, sp.test)
    assert sp.heldout.mean() < 0.002


@pytest.mark.parametrize("n,k", [(4, 1), (5, 2), (6, 3), (8, 4), (7, 7)])
def test_pass_at_k_matches_enumeration_of_subsets(n, k):
    for c in range(n + 1):
        outcomes = [1] * c + [0] * (n - c)
        subsets = list(itertools.combinations(range(n), k))
        brute = np.mean([max(outcomes[i] for i in s) for s in subsets])
        assert math.isclose(float(bk.pass_at_k(n, c, k)), brute, abs_tol=1e-12)
    cs = np.arange(n + 1)
    assert np.allclose(bk.pass_at_k(n, cs, k), [bk.pass_at_k(n, c, k) for c in cs])
    with pytest.raises(ValueError):
        bk.pass_at_k(k - 1, 0, k)


def test_kv_cache_generation_matches_full_forward():
    torch.manual_seed(0)
    model = bk.build_model(len(bk.VOCAB), 13, 32, 2, 4).eval()
    ids = torch.randint(0, len(bk.VOCAB), (3, 12))
    full = model(ids)
    a, cache = model(ids[:, :8], return_cache=True)
    b, cache = model(ids[:, 8:9], past=cache, return_cache=True)
    c, _ = model(ids[:, 9:], past=cache, return_cache=True)
    assert torch.allclose(torch.cat([a, b, c], 1), full, atol=1e-5)
    gen = bk.generate(model, ids[:, :8], 5, temperature=0.0)
    assert gen.shape == (3, 5)
    after_eos = (torch.cumsum((gen == bk.EOS).long(), 1) - (gen == bk.EOS).long()) > 0
    assert (gen[after_eos] == bk.EOS).all()


def test_quick_run_mechanism_and_files(tmp_path, capsys):
    """What the quick run (2 digits, 1 seed, lr 3e-4, 40 RL steps) shows, and only that.

    It does NOT show the headline (max@K wins pass@K; that needs the default setting, 3 seeds, 150 steps):
    with seed 0 max@4 ties GRPO at test pass@4 (0.804 vs 0.798, paired difference +0.005 with s.e. 0.013
    over test problems), its pass@4 curve on the first 64 problems ends *below* both baselines, and it
    loses pass@1 (0.408 vs 0.452). What is checked: the mechanism (max@K weights the hard groups), RL
    raises pass@K over the warm start, max@K is not far behind GRPO, and the verdict claims no pass@K win
    the run cannot resolve.
    """
    config = bk.Config.quick()
    config.threads = 1
    res = bk.run(config, tmp_path, progress=False)
    assert (tmp_path / "bestofk.png").stat().st_size > 0
    saved = json.loads((tmp_path / "bestofk.json").read_text())
    assert saved["verdict"] == res["verdict"] and "sweep" in saved
    K = config.K
    mk, pk = f"max@{K}", f"pass@{K}"
    assert set(res["arms"]) == {"grpo", "rloo", mk}
    for arm in res["arms"].values():
        assert set(arm) == {"pass@1", pk}
    lr = f"{config.lrs[0]:g}"
    warm = res["warm_start"]["simple"]
    # Margins measured over 11 seeds of this setting while developing (2 digits, 40 RL steps, lr 3e-4):
    # 1) mechanism: max@K advantages put most of their |weight| on hard groups (pass rate <= 1/4):
    #    share 0.32-0.68 vs 0.09-0.38 for GRPO/RLOO; ratio >= 1.77 and gap >= 0.21 in every seed.
    share = {lab: res["sweep"][lab][lr]["hard_weight_share"] for lab in res["arms"]}
    for base in ("grpo", "rloo"):
        assert share[mk] >= 1.4 * share[base] and share[mk] >= share[base] + 0.1, share
    # 2) RL for max@K raised held-out pass@K over the warm start: by +0.046 to +0.19 (need +0.02).
    assert res["arms"][mk][pk] >= warm[pk] + 0.02, (res["arms"], warm)
    # 3) max@K is not worse than GRPO at pass@K beyond a tolerance: observed -0.028 to +0.039 at this size,
    #    where pass@K nearly saturates. Not a win: the quick run cannot tell the arms apart at pass@K.
    assert res["arms"][mk][pk] >= res["arms"]["grpo"][pk] - 0.06, res["arms"]
    # 4) the verdict says "won" at pass@K only when the paired difference clears twice its standard error
    #    over test problems (one seed: no spread over seeds); seed 0's +0.005 ± 0.013 must read as a tie.
    rival = max(("grpo", "rloo"), key=lambda a: res["arms"][a][pk])
    c = res["comparisons"]["tuned"][pk][rival]
    claims_win = f"At {pk}, {mk} won" in res["verdict"]
    assert claims_win == (c["diff"] > 2 * c["se_problems"]), (c, res["verdict"])
    # 5) one seed: the printed tables give the numbers without a "± 0.000" spread
    capsys.readouterr()
    bk._print(res)
    out = capsys.readouterr().out
    assert "1 seed" in out and "± 0.000" not in out, out
