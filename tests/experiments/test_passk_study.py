"""The pass@K study's harness (rankgrad.experiments.passk_study).

What is checked here is the pipeline, not the study's headline (that is the report's, from the stored
JSON): the tokenizer, the task adapters (the package's scorer accepts the package's own answers, held-out
prompts never reach training), pass@k from ``rankgrad.value`` against the closed form
1 − C(n−c, k)/C(n, k), the decision rule's interval on hand-computed numbers, the arms' gradient scales
and the mixture objective's value, and — in the quick end-to-end run — that every arm saw the same
prompts, pass@k is nondecreasing in k and the JSON carries the protocol's fields.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

import rankgrad
from rankgrad.experiments import passk_study as ps

pytest.importorskip("torch")


def test_tokenizer_round_trip_and_errors() -> None:
    tok = ps.CharTokenizer.from_texts(["12+3=", "15"])
    assert tok.chars == "".join(sorted(set("12+3=15_"))) + "$"
    ids = tok.encode("3+12=")
    assert tok.decode(ids) == "3+12="
    assert tok.decode([*tok.encode("15"), tok.eos_id, *tok.encode("1")]) == "15"
    assert tok.decode([*tok.encode("15"), tok.eos_id], stop_at_eos=False) == "15$"
    assert tok.pad_id == tok.chars.index("_") and tok.eos_id == tok.size - 1
    with pytest.raises(ValueError, match="text"):
        tok.encode("7")
    with pytest.raises(ValueError, match="end token"):
        ps.CharTokenizer.from_texts(["1$"])


def test_unknown_task_names_the_argument() -> None:
    with pytest.raises(ValueError, match="task"):
        ps.make_task("sudoku", 4, 4, 100, 0)


def test_add3_task_scores_the_sum_and_holds_out_val_and_test() -> None:
    task = ps.make_task("add3", 16, 16, 500, 7)
    scorer = ps.Scorer(task)
    held = {p.prompt for p in task.val + task.test}
    assert not held & {p.prompt for p in task.train}
    for p in task.test:
        a, b = p.entry["a"], p.entry["b"]
        assert p.prompt == f"{a:03d}+{b:03d}=" and scorer(p, str(a + b)) == 1.0
        assert scorer(p, str(a + b + 1)) == 0.0
    ids = task.prompt_ids(task.test[:3])
    assert ids.shape == (3, task.prompt_len)
    assert task.tokenizer.decode(task.answer_ids(task.test[:1])[0]) == task.test[0].answer


@pytest.mark.slow  # importing reasoning-gym alone takes seconds
@pytest.mark.parametrize("name", ["rg:chain_sum", "rg:countdown"])
def test_reasoning_gym_adapter_scorer_accepts_the_packages_answers(name: str) -> None:
    pytest.importorskip("reasoning_gym")
    with pytest.raises(ValueError, match="reasoning-gym"):
        ps.make_task("rg:no_such_dataset_here", 4, 4, 100, 0)
    task = ps.make_task(name, 20, 20, 300, 3)
    scorer = ps.Scorer(task)
    assert not {p.prompt for p in task.val + task.test} & {p.prompt for p in task.train}
    for p in task.val + task.test:
        assert scorer(p, p.entry["answer"]) == 1.0  # the package's own answer, spaces and all
        assert scorer(p, p.answer) == 1.0  # the warm-start target (spaces removed)
        assert scorer(p, p.answer + "+1") == 0.0
        assert task.tokenizer.decode(task.tokenizer.encode(p.prompt)) == p.prompt
    if name == "rg:countdown":
        p = next(q for q in task.test if sum(q.entry["metadata"]["numbers"]) != q.entry["metadata"]["target"])
        nums, target = p.entry["metadata"]["numbers"], p.entry["metadata"]["target"]
        assert p.prompt == ",".join(map(str, nums)) + f">{target}:"
        # partial credit (0.05: every number used, wrong value) is reward 0; a power is refused unparsed
        wrong = "+".join(map(str, nums))
        assert scorer.raw(p, wrong) == pytest.approx(0.05) and scorer(p, wrong) == 0.0
        assert scorer(p, "9**9**9**9**9") == 0.0
    else:
        p = task.test[0]
        assert p.prompt == p.entry["metadata"]["expression"].replace(" ", "") + "="
        # chain_sum's partial (substring) credit is reward 0
        assert scorer.raw(p, p.answer + "0") > 0.0 and scorer(p, p.answer + "0") == 0.0


def test_pass_at_k_matches_the_closed_form_and_grows_with_k() -> None:
    n, ks = 32, (1, 2, 4, 8, 16)
    correct = np.array([0, 1, 3, 8, 17, 31, 32])
    table = ps.pass_at_k_table(correct, n, ks)
    for k in ks:
        closed = [1 - math.comb(n - c, k) / math.comb(n, k) for c in correct]
        np.testing.assert_allclose(table[f"pass@{k}"], closed, rtol=0, atol=1e-12)
    stacked = np.stack([table[f"pass@{k}"] for k in ks])
    assert np.all(np.diff(stacked, axis=0) >= -1e-12)


def test_paired_interval_and_decision_on_hand_numbers() -> None:
    # per-seed differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, s.e. 0.1/sqrt(3), t(0.975, 2) = 4.3027
    x = [np.full(4, v) for v in (0.6, 0.7, 0.8)]
    y = [np.full(4, 0.5)] * 3
    c = ps.paired(x, y)
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert c["diff"] == pytest.approx(0.2)
    assert c["ci95"] == pytest.approx([0.2 - half, 0.2 + half], abs=1e-5)
    assert ps.decide(c) == "no difference shown"
    tight = ps.paired([np.full(4, v) for v in (0.60, 0.61, 0.62)], y)  # 0.11 ± 4.30·0.01/sqrt(3)
    assert ps.decide(tight) == "max@4 wins"
    assert ps.decide(ps.paired(y, [np.full(4, v) for v in (0.60, 0.61, 0.62)])) == "max@4 loses"


def test_gradient_scales_follow_the_estimator_registry() -> None:
    n = 8
    assert ps.gradient_scale("ordergrad", n, 4) == pytest.approx(0.5)
    assert ps.gradient_scale("ordergrad", n, 1) == pytest.approx(1 / 8)
    assert ps.gradient_scale("dr_grpo", n, 1) == pytest.approx(1 / 7)
    assert ps.gradient_scale("pkpo_sloo1", n, 4) == pytest.approx(1.0)
    assert ps.gradient_scale("grpo", n, 1) == pytest.approx(1 / 8)  # no scale of its own: RLOO's
    assert ps.gradient_scale("chen_passk", n, 4) == pytest.approx(0.5)  # ordergrad's for max@4


def test_mixture_arm_is_half_mean_plus_half_max4_by_value() -> None:
    obj = ps.objective_of(ps.ARMS["mix"][0])
    r = np.random.default_rng(0).random((50, 8))
    want = 0.5 * r.mean(axis=1) + 0.5 * np.asarray(rankgrad.value(r, "max@4"))
    np.testing.assert_allclose(rankgrad.value(r, obj), want, atol=1e-12)


@pytest.mark.slow
def test_quick_run_pipeline_invariants(tmp_path) -> None:
    """The quick run (2 seeds, 3 RL steps): files, fields, same prompts for every arm, pass@k monotone."""
    pytest.importorskip("reasoning_gym")
    config = ps.Config.quick("rg:countdown")
    r = ps.run(config, str(tmp_path), progress=False)
    saved = json.loads((tmp_path / "passk_rg_countdown.json").read_text())
    assert (tmp_path / "passk_rg_countdown.png").stat().st_size > 0
    for field in ("config", "arms", "seeds", "validation", "chosen", "best_baseline", "table", "comparisons",
                  "primary", "timing", "same_prompts_every_arm", "verdict"):
        assert field in saved, field
    assert saved["same_prompts_every_arm"] is True
    assert set(saved["table"]) == {*ps.ARMS, "warm start"}
    assert saved["best_baseline"] in ps.BASELINES
    assert saved["primary"]["decision"] in ("max@4 wins", "max@4 loses", "no difference shown")
    for arm, ch in saved["chosen"].items():
        assert float(ch["lr"]) in config.lrs and float(ch["temperature"]) in config.temperatures, arm
    for row in r["table"].values():
        for s in range(len(config.seeds)):
            vals = [row[f"pass@{k}"]["per_seed"][s] for k in config.ks]
            assert all(b >= a - 1e-12 for a, b in zip(vals, vals[1:], strict=False))


def test_default_setting_is_the_registered_protocol() -> None:
    """The default Config is what docs/protocols/passk-study.md registers (seeds never used before)."""
    from pathlib import Path

    c = ps.Config()
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "protocols" / "passk-study.md").read_text()
    assert len(c.seeds) >= 8 and not set(c.seeds) & {0, 1, 2}  # bestofk used 0, 1, 2
    assert ", ".join(map(str, c.seeds)) in protocol
    assert set(c.arms) == set(ps.ARMS) and c.K == 4
    assert c.lrs == (3e-4, 1e-3) and "{3e-4, 1e-3}" in protocol
    assert c.temperatures == (0.7, 1.0, 1.3) and "{0.7, 1.0, 1.3}" in protocol
    assert c.ks == (1, 2, 4, 8, 16) and c.eval_samples == 32 and c.val_samples == 16
    assert (c.rl_steps, c.prompts_per_step, c.samples_per_prompt) == (40, 16, 8)
    assert f"RL: {c.rl_steps} steps" in protocol and f"P = {c.prompts_per_step}" in protocol


def test_lrs_option_parses_and_validates() -> None:
    assert ps.parse_lrs("1e-4,3e-4,1e-3") == (1e-4, 3e-4, 1e-3)
    assert ps.parse_lrs(" 0.0001 , 0.0003 ") == (1e-4, 3e-4)
    for bad, why in [("0", "positive"), ("-1e-4", "positive"), ("inf", "finite"), ("nan", "finite"),
                     ("1e-4,,3e-4", "empty"), ("", "empty"), ("1e-4,fast", "not a number"),
                     ("3e-4,0.0003", "repeats")]:
        with pytest.raises(ValueError, match=f"--lrs.*{why}"):
            ps.parse_lrs(bad)


def test_tag_option_names_the_outputs() -> None:
    assert ps.output_stem("rg:countdown") == "passk_rg_countdown"  # the protocol's names, unchanged
    assert ps.output_stem("rg:countdown", "lowlr") == "passk_rg_countdown_lowlr"
    assert ps.output_stem("add3", "lowlr") == "passk_add3_lowlr"
    for bad in ("a/b", "../x", "low lr", "_x"):
        with pytest.raises(ValueError, match="--tag"):
            ps.output_stem("add3", bad)


def test_main_passes_lrs_and_tag_and_keeps_the_defaults(monkeypatch, tmp_path, capsys) -> None:
    seen: list[tuple] = []
    monkeypatch.setattr(ps, "run", lambda config, out, progress=True, tag=None: seen.append((config, tag)))
    monkeypatch.setattr(ps, "_print", lambda r: None)
    ps.main(["--task", "rg:countdown", "--lrs", "1e-4,3e-4,1e-3", "--tag", "lowlr", "--out", str(tmp_path)])
    ps.main(["--task", "add3", "--out", str(tmp_path)])
    (c1, t1), (c2, t2) = seen
    assert c1.lrs == (1e-4, 3e-4, 1e-3) and t1 == "lowlr" and c1.task == "rg:countdown"
    assert dataclasses_without(c1, "lrs", "task") == dataclasses_without(ps.Config(), "lrs", "task")
    assert c2.lrs == (3e-4, 1e-3) and t2 is None and c2 == ps.Config()
    for argv, name in [(["--lrs", "0,1e-3"], "--lrs"), (["--lrs", "1e-3", "--tag", "x/y"], "--tag")]:
        with pytest.raises(SystemExit):
            ps.main([*argv, "--out", str(tmp_path)])
        assert name in capsys.readouterr().err
    assert len(seen) == 2  # bad options stop before any run


def dataclasses_without(config: ps.Config, *names: str) -> dict:
    import dataclasses

    d = dataclasses.asdict(config)
    for n in names:
        d.pop(n)
    return d


def test_replot_reads_the_tagged_run(tmp_path) -> None:
    from pathlib import Path

    stored = Path(__file__).resolve().parents[2] / "docs" / "results" / "passk_add3.json"
    (tmp_path / "passk_add3_lowlr.json").write_text(stored.read_text())
    ps.main(["--task", "add3", "--replot", "--tag", "lowlr", "--out", str(tmp_path)])
    assert (tmp_path / "passk_add3_lowlr.png").stat().st_size > 0
    assert not (tmp_path / "passk_add3.png").exists()


def test_t_quantile_without_scipy_matches_scipy(monkeypatch):
    """The fallback used when scipy is not installed (the experiments extra does not pull it in): the
    3-decimal table up to df = 30, then the Cornish-Fisher expansion, against scipy's t quantile."""
    stats = pytest.importorskip("scipy.stats")
    expected = {df: float(stats.t.ppf(0.975, df)) for df in range(1, 400)}
    monkeypatch.setitem(sys.modules, "scipy", None)  # `from scipy import stats` now raises ImportError
    got = {df: ps.t_quantile_95(df) for df in expected}
    assert all(abs(got[df] - expected[df]) <= 5e-4 for df in range(1, 31))
    assert all(abs(got[df] - expected[df]) <= 1e-5 for df in range(31, 400))
    with pytest.raises(ValueError, match="df"):
        ps.t_quantile_95(0)
