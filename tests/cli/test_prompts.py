"""`rankgrad prompts`: prompt sampling probabilities from rollout files, against PromptSampler and the
closed forms of the scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rankgrad.cli import main
from rankgrad.sampling import PromptSampler


# ------------------------------------------------------------------ helpers
def _rows(seed: int = 0, prompts: int = 9) -> list[dict]:
    """Interleaved groups of different sizes; int and string keys (7 and "7" are different prompts);
    0/1 outcomes, a few fractional pass rates, one always-solved and one never-solved prompt."""
    rng = np.random.default_rng(seed)
    keys = [7, "7", "alpha", 3, "beta", 11, "gamma", "δ", 0][:prompts] + [f"p{i}" for i in range(prompts - 9)]
    rows = []
    for g, key in enumerate(keys):
        n = 3 + g % 6
        p = rng.uniform(0.05, 0.95)
        for j in range(n):
            if g == 2:
                r: float = 1
            elif g == 4:
                r = 0
            elif j == 0 and g % 3 == 0:
                r = float(rng.choice([0.25, 0.5, 0.75]))  # a pass rate, not a 0/1 outcome
            else:
                r = int(rng.random() < p)
            rows.append({"prompt_id": key, "reward": r, "text": f"completion {g}-{j}"})
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _groups(rows: list[dict]) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Keys in order of first appearance, per-row codes, rewards, and per-prompt (rollouts, successes)."""
    index: dict = {}
    keys, codes = [], []
    for r in rows:
        norm = (isinstance(r["prompt_id"], str), r["prompt_id"])
        if norm not in index:
            index[norm] = len(keys)
            keys.append(r["prompt_id"])
        codes.append(index[norm])
    rewards = np.array([float(r["reward"]) for r in rows])
    codes_a = np.array(codes)
    return keys, codes_a, rewards, np.bincount(codes_a, weights=rewards, minlength=len(keys))


def _closed_form(rows: list[dict], k: int, score: str, prior: tuple[float, float], uniform: float) -> dict:
    """Independent computation: smoothed rates, the score's closed form, normalise, mix with uniform."""
    keys, codes, _, succ = _groups(rows)
    n = np.bincount(codes, minlength=len(keys)).astype(float)
    a, b = prior
    p = (a + succ) / (a + b + n)
    s = k * (1 - p) ** (k - 1) * p * (1 - p) if score == "gradient" else p * (1 - p)
    prob = (1 - uniform) * s / s.sum() + uniform / len(keys)
    return {"prompt": keys, "rollouts": n, "successes": succ, "pass_rate": p, "score": s, "probability": prob}


def _sampler(rows: list[dict], score: str, objective: str, prior: tuple[float, float], uniform: float,
             seed: int | None = None) -> PromptSampler:
    keys, codes, rewards, _ = _groups(rows)
    s = PromptSampler(len(keys), score=score, objective=objective, prior=prior, uniform=uniform, seed=seed)
    s.update(codes, rewards)
    return s


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if "rankgrad-tmp" in p.name]


# ------------------------------------------------------------ the numbers
@pytest.mark.parametrize(("objective", "score", "prior", "uniform"), [
    ("max@4", "gradient", (1.0, 1.0), 0.1),
    ("max@8", "gradient", (2.0, 3.0), 0.0),
    ("max@4", "variance", (1.0, 1.0), 0.25),
    ("mean", "variance", (0.5, 0.5), 0.1),
])
def test_jsonl_matches_sampler_and_closed_form(tmp_path: Path, objective: str, score: str,
                                               prior: tuple[float, float], uniform: float) -> None:
    rows = _rows()
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(src, rows)
    argv = ["prompts", str(src), str(out), "-O", objective, "--score", score, "--prior",
            f"{prior[0]},{prior[1]}", "--uniform", str(uniform), "--quiet"]
    assert main(argv) == 0
    got = _read_jsonl(out)
    k = int(objective.split("@")[1]) if "@" in objective else 1
    want = _closed_form(rows, k, score, prior, uniform)
    assert [g["prompt"] for g in got] == want["prompt"]  # first appearance; 7 and "7" kept apart, types kept
    assert [list(g) for g in got] == [["prompt", "rollouts", "successes", "pass_rate", "score",
                                       "probability"]] * len(got)
    lib = _sampler(rows, score, objective, prior, uniform)
    for col, ref in [("rollouts", lib.trials), ("successes", lib.successes), ("pass_rate", lib.pass_rates),
                     ("probability", lib.probabilities())]:
        np.testing.assert_allclose([g[col] for g in got], ref, rtol=0, atol=1e-12, err_msg=col)
    for col in ("rollouts", "successes", "pass_rate", "score", "probability"):
        np.testing.assert_allclose([g[col] for g in got], want[col], rtol=0, atol=1e-12, err_msg=col)
    assert all(isinstance(g["rollouts"], int) for g in got)
    assert abs(sum(g["probability"] for g in got) - 1) < 1e-12
    if score == "gradient":  # for max@K the always-solved prompt carries the least gradient
        prob = {g["prompt"]: g["probability"] for g in got}
        assert prob["alpha"] == min(prob.values())


@pytest.mark.parametrize("ext", ["csv", "tsv", "json"])
def test_csv_input_round_trip(tmp_path: Path, ext: str) -> None:
    rows = _rows(1)
    src, out = tmp_path / "in.csv", tmp_path / f"out.{ext}"
    with src.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["prompt_id", "text", "reward"])
        w.writerows([[r["prompt_id"], r["text"], r["reward"]] for r in rows])
    assert main(["prompts", str(src), str(out), "--quiet"]) == 0  # defaults: max@4, gradient, 1,1, 0.1
    # CSV keys are strings: 7 and "7" are one prompt there
    str_rows = [{**r, "prompt_id": str(r["prompt_id"])} for r in rows]
    want = _closed_form(str_rows, 4, "gradient", (1.0, 1.0), 0.1)
    if ext == "json":
        doc = json.loads(out.read_text(encoding="utf-8"))
        assert doc["objective"] == "max@4" and doc["score"] == "gradient" and doc["draws"] == []
        recs = doc["prompts"]
    else:
        with out.open(newline="", encoding="utf-8") as f:
            table = list(csv.reader(f, delimiter="\t" if ext == "tsv" else ","))
        assert table[0] == ["prompt", "rollouts", "successes", "pass_rate", "score", "probability"]
        recs = [dict(zip(table[0], r, strict=True)) for r in table[1:]]
    assert [r["prompt"] for r in recs] == want["prompt"]
    for col in ("rollouts", "successes", "pass_rate", "score", "probability"):
        np.testing.assert_allclose([float(r[col]) for r in recs], want[col], rtol=0, atol=1e-12, err_msg=col)
    lib = _sampler(str_rows, "gradient", "max@4", (1.0, 1.0), 0.1)
    np.testing.assert_allclose([float(r["probability"]) for r in recs], lib.probabilities(), rtol=0,
                               atol=1e-12)
    assert _leftovers(tmp_path) == []


def test_draws_are_valid_reproducible_and_follow_the_probabilities(tmp_path: Path) -> None:
    rows = _rows(2)
    src, out, drawn = tmp_path / "in.jsonl", tmp_path / "out.json", tmp_path / "draws.txt"
    _write_jsonl(src, rows)
    m = 20_000
    assert main(["prompts", str(src), str(out), "--draw", str(m), "--seed", "5", "--draws-out", str(drawn),
                 "--quiet"]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    keys = [p["prompt"] for p in doc["prompts"]]
    prob = np.array([p["probability"] for p in doc["prompts"]])
    draws = doc["draws"]
    assert len(draws) == m and doc["seed"] == 5
    assert drawn.read_text(encoding="utf-8").splitlines() == [d if isinstance(d, str) else json.dumps(d)
                                                              for d in draws]
    index = {(isinstance(k, str), k): i for i, k in enumerate(keys)}
    assert all((isinstance(d, str), d) in index for d in draws)  # every draw is a prompt of IN, type kept
    counts = np.bincount([index[(isinstance(d, str), d)] for d in draws], minlength=len(keys))
    se = np.sqrt(prob * (1 - prob) / m)
    assert np.all(np.abs(counts / m - prob) < 4 * se), (counts / m, prob)
    # exactly PromptSampler's own draw with the same seed
    lib = _sampler(rows, "gradient", "max@4", (1.0, 1.0), 0.1, seed=5)
    assert draws == [keys[i] for i in lib.sample(m)]
    # same seed, same draws (here without OUT: the table goes to stdout, the draws to --draws-out)
    first = drawn.read_text(encoding="utf-8")
    drawn.unlink()
    assert main(["prompts", str(src), "--draw", str(m), "--seed", "5", "--draws-out", str(drawn), "-q"]) == 0
    assert drawn.read_text(encoding="utf-8") == first


def test_text_table_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = _rows(3, prompts=30)
    src = tmp_path / "in.jsonl"
    _write_jsonl(src, rows)
    assert main(["prompts", str(src), "--prior", "0,0", "--score", "variance"]) == 0
    cap = capsys.readouterr()
    assert "30 prompts (rollouts 3-8" in cap.err and "-> stdout" in cap.err
    lines = cap.out.splitlines()
    want = _closed_form(rows, 1, "variance", (0.0, 0.0), 0.1)
    order = np.argsort(-want["probability"], kind="stable")[:20]
    body = lines[2:22]
    assert lines[1].split() == ["prompt", "rollouts", "successes", "pass_rate", "score", "probability"]
    assert [line.split()[0] for line in body] == [str(want["prompt"][i]) for i in order]
    np.testing.assert_allclose([float(line.split()[-1]) for line in body], want["probability"][order],
                               atol=5e-7)
    assert lines[22] == "... and 10 more prompts (give OUT, e.g. probs.csv, for all)"
    p, prob = want["pass_rate"], want["probability"]  # raw rates with --prior 0,0
    low, high = prob[p == 0].sum(), prob[p == 1].sum()
    assert low > 0 and high > 0  # the never- and always-solved prompts
    assert (f"never solved in IN: {low:.1%} ({(p == 0).sum()} prompts); always solved: {high:.1%} "
            f"({(p == 1).sum()} prompts)" in lines[-1])


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize(("bad_row", "words"), [
    ({"prompt_id": "a", "reward": 1.5}, "reward 'reward' = 1.5 is outside [0, 1]"),
    ({"prompt_id": "a", "reward": -0.5}, "reward 'reward' = -0.5 is outside [0, 1]"),
    ({"prompt_id": "a"}, "missing reward key 'reward'"),
    ({"prompt_id": "a", "reward": None}, "is empty/null"),
    ({"prompt_id": "a", "reward": "high"}, "not a number"),
    ({"reward": 1}, "missing group key 'prompt_id'"),
])
def test_bad_rows_exit_1_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture, bad_row: dict,
                                           words: str) -> None:
    rows = _rows()[:5]
    rows.insert(3, bad_row)
    src, out, drawn = tmp_path / "in.jsonl", tmp_path / "out.csv", tmp_path / "d.txt"
    _write_jsonl(src, rows)
    argv = ["prompts", str(src), str(out), "--draw", "10", "--draws-out", str(drawn)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{src}:4: " in err and words in err and "1 problem(s)" in err and "Nothing was written" in err
    assert not out.exists() and not drawn.exists() and _leftovers(tmp_path) == []
    out.write_text("previous\n")  # an existing OUT is left untouched
    assert main(argv) == 1 and out.read_text() == "previous\n"


def test_bad_csv_row_reports_its_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "in.csv"
    src.write_text("prompt_id,reward\na,1\nb,0\n\na,2\nb,nan\n")
    assert main(["prompts", str(src)]) == 1
    cap = capsys.readouterr()
    assert f"{src}:5: reward 'reward' = 2 is outside [0, 1]" in cap.err
    assert f"{src}:6: reward 'reward' is NaN" in cap.err
    assert "2 problem(s)" in cap.err and cap.out == ""


@pytest.mark.parametrize("argv", [
    ["--score", "nope"],
    ["--uniform", "2"],
    ["--uniform", "nan"],
    ["--prior", "bad"],
    ["--prior=-1,1"],  # (as two words argparse takes -1,1 for an option)
    ["--prior", "1,2,3"],
    ["--group-size", "0"],
    ["-O", "max@4", "--k", "3"],
    ["-O", "cvar:0.2"],  # no K
    ["--draw", "5"],  # nowhere to put the draws: a .csv OUT cannot hold them
    ["--draws-out", "d.txt"],  # draws-out without --draw
    ["--format", "xml"],
])
def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.csv"
    _write_jsonl(src, _rows()[:6])
    assert main(["prompts", str(src), str(out), *argv]) == 2
    assert capsys.readouterr().err and not out.exists()


def test_unknown_out_extension_and_help(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "in.jsonl"
    _write_jsonl(src, _rows()[:6])
    assert main(["prompts", str(src), str(tmp_path / "out.txt")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert main(["prompts", "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "K(1-p)^(K-1) * p(1-p)" in text and "--draws-out" in text


def test_parquet_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{**r, "prompt_id": str(r["prompt_id"])} for r in _rows(4)]
    src, out = tmp_path / "in.parquet", tmp_path / "out.json"
    pq.write_table(pa.table({"prompt_id": [r["prompt_id"] for r in rows],
                             "reward": [float(r["reward"]) for r in rows]}), src)
    assert main(["prompts", str(src), str(out), "-O", "pass@8", "-q"]) == 0
    recs = json.loads(out.read_text(encoding="utf-8"))["prompts"]
    want = _closed_form(rows, 8, "gradient", (1.0, 1.0), 0.1)  # pass@8 = max@8 on 0/1 outcomes
    assert [r["prompt"] for r in recs] == want["prompt"]
    np.testing.assert_allclose([r["probability"] for r in recs], want["probability"], rtol=0, atol=1e-12)
    pq.write_table(pa.table({"prompt_id": ["a", "a", "b"], "reward": [1.0, 3.0, None]}), src)
    assert main(["prompts", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{src}: row 1: reward 'reward' = 3 is outside [0, 1]" in err and f"{src}: row 2: " in err
