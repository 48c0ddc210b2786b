"""The `rankgrad` command line: end to end on small files, bad rows, weights, check, help."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import rankgrad
from rankgrad.cli import main

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


# ------------------------------------------------------------------ helpers
def _rollouts(seed: int = 0, groups: int = 4, sizes: tuple[int, ...] = (6, 7, 9, 6)) -> list[dict]:
    """Rows of interleaved groups of different sizes, with extra columns of several types."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        for j in range(sizes[g]):
            rows.append({
                "id": f"{g}-{j}",
                "prompt_id": f"p{g}" if g % 2 else g,  # strings and ints as group keys
                "completion": "é" * (j + 1) + ' "quoted", comma',
                "reward": round(float(rng.normal()), 4),
                "meta": {"turns": j, "tags": ["a", "b"]},
            })
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _expected(rows: list[dict], objective: str, **kw) -> np.ndarray:
    keys = [json.dumps(r["prompt_id"]) for r in rows]
    return rankgrad.advantages(np.array([r["reward"] for r in rows], dtype=np.float64), objective,
                               group_ids=np.array(keys), **kw)


def _run(*argv: str) -> int:
    return main(["advantages", *argv, "--quiet"])


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if "rankgrad-tmp" in p.name]


# --------------------------------------------------------- advantages: JSONL
def test_jsonl_end_to_end_keeps_rows_and_matches_library(tmp_path: Path) -> None:
    rows = _rollouts()
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(src, rows)
    assert _run(str(src), str(out), "--objective", "max@4") == 0
    got = _read_jsonl(out)
    assert len(got) == len(rows)
    for r, g in zip(rows, got, strict=True):
        assert list(g) == [*r, "advantage"]  # columns preserved, in order, advantage last
        assert {k: g[k] for k in r} == r
    np.testing.assert_allclose([g["advantage"] for g in got], _expected(rows, "max@4"), rtol=0, atol=1e-15)
    # the original bytes of each row are kept: only `, "advantage": x` is spliced in
    for line_in, line_out in zip(src.read_text("utf-8").splitlines(), out.read_text("utf-8").splitlines(),
                                 strict=True):
        assert line_out.startswith(line_in[:-1] + ', "advantage": ')
    assert _leftovers(tmp_path) == []


def test_jsonl_blank_lines_gzip_and_estimator(tmp_path: Path) -> None:
    rows = _rollouts(1)
    text = "".join(json.dumps(r) + ("\n\n" if i == 3 else "\n") for i, r in enumerate(rows))
    src, out = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz"
    src.write_bytes(gzip.compress(text.encode()))
    assert _run(str(src), str(out), "-O", "mean", "--estimator", "rloo", "--advantage-key", "adv") == 0
    got = [json.loads(x) for x in gzip.decompress(out.read_bytes()).decode().splitlines()]
    np.testing.assert_allclose([g["adv"] for g in got], _expected(rows, "mean", estimator="rloo"), atol=1e-15)


# ----------------------------------------------------------- advantages: CSV
def test_csv_end_to_end_keeps_strings(tmp_path: Path) -> None:
    rows = _rollouts(2)
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "prompt_id", "completion", "reward", "note"])
        for r in rows:  # rewards written with trailing zeros: the strings must survive untouched
            w.writerow([r["id"], r["prompt_id"], r["completion"] + "\nline 2", f"{r['reward']:.6f}", "007"])
    assert _run(str(src), str(out), "--objective", "cvar:0.25@4") == 0
    with open(out, newline="", encoding="utf-8") as f:
        got = list(csv.reader(f))
    assert got[0] == ["id", "prompt_id", "completion", "reward", "note", "advantage"]
    for r, g in zip(rows, got[1:], strict=True):
        text = r["completion"] + "\nline 2"
        assert g[:5] == [r["id"], str(r["prompt_id"]), text, f"{r['reward']:.6f}", "007"]
    np.testing.assert_allclose([float(g[5]) for g in got[1:]], _expected(rows, "cvar:0.25@4"), atol=1e-15)


# ------------------------------------------------------- advantages: Parquet
def test_parquet_end_to_end_keeps_schema(tmp_path: Path) -> None:
    rows = _rollouts(3)
    for r in rows:
        r["prompt_id"] = str(r["prompt_id"])
    table = pa.Table.from_pylist(rows)
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table, src, row_group_size=7)  # several row groups
    assert _run(str(src), str(out), "--objective", "median@3") == 0
    got = pq.read_table(out)
    assert got.schema.names == [*table.schema.names, "advantage"]
    assert got.drop_columns(["advantage"]).equals(table)
    np.testing.assert_allclose(got.column("advantage").to_numpy(), _expected(rows, "median@3"), atol=1e-15)


@pytest.mark.parametrize(("src_name", "out_name"), [("in.jsonl", "out.parquet"), ("in.parquet", "out.csv"),
                                                    ("in.csv", "out.jsonl")])
def test_cross_format(tmp_path: Path, src_name: str, out_name: str) -> None:
    rows = [{k: v for k, v in r.items() if k != "meta"} for r in _rollouts(4)]
    for r in rows:
        r["prompt_id"] = str(r["prompt_id"])
    src, out = tmp_path / src_name, tmp_path / out_name
    if src_name.endswith(".jsonl"):
        _write_jsonl(src, rows)
    elif src_name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), src)
    else:
        with open(src, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    assert _run(str(src), str(out), "-O", "max@2") == 0
    if out_name.endswith(".parquet"):
        got = pq.read_table(out).to_pylist()
    elif out_name.endswith(".csv"):
        with open(out, newline="", encoding="utf-8") as f:
            got = list(csv.DictReader(f))
    else:
        got = _read_jsonl(out)
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    np.testing.assert_allclose([float(g["advantage"]) for g in got], _expected(rows, "max@2"), atol=1e-15)


# ------------------------------------------------------------- bad rows
_GOOD = [{"prompt_id": "a", "reward": float(i)} for i in range(5)]


@pytest.mark.parametrize(("bad_line", "lines", "words"), [
    ('{"reward": 1.0}', [6], "missing group key 'prompt_id'"),
    ('{"prompt_id": "a", "reward": NaN}', [6], "is NaN"),
    ('{"prompt_id": "a", "reward": null}', [6], "empty/null"),
    ('{"prompt_id": "a", "reward": "high"}', [6], "not a number"),
    ('{"prompt_id": "a", "reward": 1.0', [6], "malformed JSON"),
    ('{"prompt_id": "b", "reward": 1.0}', [6], "group 'b' has 1 scorable row"),
])
def test_bad_rows_are_reported_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      bad_line: str, lines: list[int], words: str) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in _GOOD) + bad_line + "\n"
    src.write_text(text)
    assert _run(str(src), str(out), "-O", "max@4") == 1
    err = capsys.readouterr().err
    for n in lines:
        assert f"in.jsonl:{n}: " in err
    assert words in err and "Nothing was written" in err
    assert not out.exists() and _leftovers(tmp_path) == []
    out.write_text("previous results\n")  # an existing OUT is left untouched
    assert _run(str(src), str(out), "-O", "max@4") == 1
    assert out.read_text() == "previous results\n" and _leftovers(tmp_path) == []


def test_all_bad_rows_listed_with_csv_line_numbers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text('prompt_id,reward,text\na,1,"two\nlines"\na,,x\n\na,nan,x\n,1,x\na,2\nb,1,x\n'
                   "a,3,x\na,4,x\na,5,x\n")
    assert _run(str(src), str(out), "-O", "max@2") == 1
    err = capsys.readouterr().err
    for n, what in [(4, "empty/null"), (6, "is NaN"), (7, "empty group key"), (8, "expected 3 fields"),
                    (9, "group 'b' has 1 scorable row")]:
        assert any(line.startswith(f"{src}:{n}: ") and what in line for line in err.splitlines()), (n, err)
    assert "5 problem(s)" in err and "the header is line 1" in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_parquet_bad_rows_use_row_indices(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    rewards = [1.0, None, 2.0, 3.0, float("inf"), 4.0]
    pq.write_table(pa.table({"prompt_id": ["a"] * 6, "reward": rewards}), src)
    assert _run(str(src), str(out), "-O", "max@1") == 1
    err = capsys.readouterr().err
    assert "row 1: reward 'reward' is empty/null" in err and "row 4: reward 'reward' is infinite" in err
    assert "0-based row indices" in err and not out.exists() and _leftovers(tmp_path) == []


def test_max_errors_caps_the_listing_but_counts_all(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(f'{{"prompt_id": {i}, "reward": 1}}\n' for i in range(30)))
    assert _run(str(src), str(out), "-O", "max@2", "--max-errors", "5") == 1
    err = capsys.readouterr().err
    assert err.count("scorable row") == 5 and "30 problem(s)" in err and "--max-errors 0" in err
    assert "hint: most groups are too small" in err


# ------------------------------------------------------- unscorable, noise
def test_unscorable_zero_and_small_groups_zero(tmp_path: Path) -> None:
    rows = _rollouts(5)
    rows[2]["reward"], rows[7]["reward"] = None, float("nan")
    del rows[9]["reward"]
    rows.append({"prompt_id": "tiny", "reward": 1.0})
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _run(str(src), str(out), "-O", "max@3") == 1 and not out.exists()
    assert _run(str(src), str(out), "-O", "max@3", "--unscorable", "zero", "--small-groups", "zero") == 0
    adv = np.array([g["advantage"] for g in _read_jsonl(out)])
    keep = np.array([isinstance(r.get("reward"), float) and np.isfinite(r["reward"])
                     and r["prompt_id"] != "tiny" for r in rows])
    assert np.all(adv[~keep] == 0.0)
    kept = [r for r, k in zip(rows, keep, strict=True) if k]
    np.testing.assert_allclose(adv[keep], _expected(kept, "max@3"), atol=1e-15)


def test_noise_matches_library_and_needs_binary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(6)
    rows = [{"prompt_id": g, "reward": bool(rng.random() < 0.4)} for g in range(3) for _ in range(8)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(src, rows)
    assert _run(str(src), str(out), "-O", "pass@4", "--noise", "0.05,0.2") == 0
    r = np.array([float(x["reward"]) for x in rows])
    ids = np.array([x["prompt_id"] for x in rows])
    want = rankgrad.advantages(r, "pass@4", group_ids=ids, noise=(0.05, 0.2))
    np.testing.assert_allclose([g["advantage"] for g in _read_jsonl(out)], want, atol=1e-14)
    rows[4]["reward"] = 0.5
    _write_jsonl(src, rows)
    out.unlink()
    assert _run(str(src), str(out), "-O", "pass@4", "--noise", "0.05,0.2") == 1
    assert "in.jsonl:5: reward 0.5 is not 0 or 1" in capsys.readouterr().err and not out.exists()


def test_forward_noise_correction_of_the_mean(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(7)
    rows = [{"prompt_id": g, "reward": int(rng.random() < 0.5)} for g in range(4) for _ in range(5)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(src, rows)
    assert main(["advantages", str(src), str(out), "-O", "mean", "--noise", "unknown,0.2"]) == 0
    assert "noise unknown,0.2" in capsys.readouterr().err
    r = np.array([float(x["reward"]) for x in rows])
    ids = np.array([x["prompt_id"] for x in rows])
    rloo = rankgrad.advantages(r, "mean", group_ids=ids, estimator="rloo")
    np.testing.assert_allclose([g["advantage"] for g in _read_jsonl(out)], rloo / 0.8, atol=1e-14)
    out.unlink()
    assert _run(str(src), str(out), "-O", "pass@2", "--noise", "unknown,0.2") == 2  # mean only
    assert "forward correction" in capsys.readouterr().err and not out.exists()


def test_existing_column_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = [{"prompt_id": 0, "reward": float(i), "advantage": 9.0, "z": 1} for i in range(4)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(src, rows)
    assert _run(str(src), str(out), "-O", "max@2") == 1
    assert "--overwrite" in capsys.readouterr().err
    assert _run(str(src), str(out), "-O", "max@2", "--overwrite") == 0
    got = _read_jsonl(out)
    assert [list(g) for g in got] == [["prompt_id", "reward", "advantage", "z"]] * 4
    np.testing.assert_allclose([g["advantage"] for g in got], rankgrad.advantages(np.arange(4.0), "max@2"))


@pytest.mark.parametrize("argv", [
    ["-O", "max@4", "--estimator", "grpo"],  # grpo needs the mean objective
    ["-O", "cvar:0.2"],  # no K
    ["-O", "max@4", "--k", "3"],  # disagreeing K
    ["-O", "max@4", "--estimator", "nope"],
    ["-O", "max@4", "--noise", "0.6,0.5"],
    ["-O", "max@4", "--format", "xml"],
])
def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(src, _GOOD)
    assert _run(str(src), str(out), *argv) == 2
    assert capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------ weights
def test_weights_json_matches_library(capsys: pytest.CaptureFixture) -> None:
    assert main(["weights", "--objective", "cvar:0.25", "--k", "8", "--n", "12", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    obj = rankgrad.parse("cvar:0.25@8")
    assert d["objective"] == "cvar:0.25@8" and d["k"] == 8 and d["n"] == 12
    np.testing.assert_array_equal(d["weights"], obj.weights)
    r = np.array(d["rewards"])
    assert np.all(np.diff(r) < 0)  # top-first
    np.testing.assert_allclose(d["advantage_by_rank"], rankgrad.advantages(r, obj), atol=1e-15)
    np.testing.assert_allclose(d["value"], rankgrad.value(r, obj))
    np.testing.assert_allclose(np.subtract(d["include_one"], d["leave_one_out"]), d["advantage_by_rank"],
                               atol=1e-12)
    assert d["gradient_scale"] == pytest.approx(8 / 12)


def test_weights_png_and_text(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "w.png"
    assert main(["weights", "-O", "max@4", "--n", "10", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert main(["weights", "-O", "max@4", "--n", "6"]) == 0
    assert "rank weights top-first" in capsys.readouterr().out
    assert main(["weights", "-O", "max@4", "--n", "4"]) == 2  # N must exceed K
    assert "N >= K + 1" in capsys.readouterr().err


# -------------------------------------------------------------------- check
def _check(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, dict]:
    rc = main(["check", *argv, "--format", "json"])
    return rc, json.loads(capsys.readouterr().out)


def test_check_passes_and_flags_biased_estimators(capsys: pytest.CaptureFixture) -> None:
    rc, rep = _check(capsys, "-O", "max@4", "--n", "8", "--samples", "6000",
                     "--estimators", "ordergrad,pkpo_sloo,gopo,grpo")
    assert rc == 0 and rep["failed"] == []
    res = {r["estimator"]: r for r in rep["results"]}
    assert res["ordergrad"]["max_bias_over_se"] <= 4 and res["ordergrad"]["verdict"] == "unbiased within 4 SE"
    assert res["ordergrad"]["bias_norm"] < 4 * res["ordergrad"]["bias_norm_se"]
    assert res["ordergrad"]["cosine"] > 0.99
    assert res["gopo"]["claim"] == "biased" and res["gopo"]["verdict"] == "biased direction (as claimed)"
    assert "grpo" in rep["skipped"]  # needs the mean objective
    assert rep["exact_autograd_vs_analytic"] < 1e-12


def test_check_fails_when_a_claim_is_false(capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # pretend GRPO claimed RLOO's unbiasedness and scale: the self-test must catch it
    fake = dataclasses.replace(rankgrad.ESTIMATORS["grpo"], unbiased=True, gradient_scale=lambda n, k: 1 / n)
    monkeypatch.setitem(rankgrad._src.estimators._REGISTRY, "grpo", fake)
    rc, rep = _check(capsys, "-O", "mean", "--n", "4", "--samples", "6000", "--estimators", "grpo,rloo")
    assert rc == 1 and rep["failed"] == ["grpo"]
    res = {r["estimator"]: r for r in rep["results"]}
    assert res["grpo"]["verdict"].startswith("BIASED") and res["rloo"]["verdict"] == "unbiased within 4 SE"


def test_check_binary_noise_text(capsys: pytest.CaptureFixture) -> None:
    rc = main(["check", "-O", "pass", "--k", "3", "--n", "6", "--binary", "--noise", "0.1,0.2",
               "--samples", "4000", "--estimators", "ordergrad,chen_passk"])
    out = capsys.readouterr().out
    assert rc == 0 and "ordergrad+noise" in out and "chen_passk" in out and "ok:" in out
    assert main(["check", "-O", "max@3", "--noise", "0.1,0.2"]) == 2  # --noise needs --binary


def test_check_forward_correction_scale(capsys: pytest.CaptureFixture) -> None:
    """Mean objective: the forward correction is judged by direction; its fitted multiple of ∇J is
    (1 − ρ0 − ρ1)/(1 − ρ1) = 0.6/0.7 within 3 SE-equivalents of Monte Carlo (seed 0, 20k groups)."""
    rc = main(["check", "-O", "mean", "--n", "8", "--binary", "--noise", "0.1,0.3", "--format", "json",
               "--estimators", "rloo"])
    rep = json.loads(capsys.readouterr().out)
    res = {r["estimator"]: r for r in rep["results"]}
    fwd = res["ordergrad+forward"]
    assert rc == 0 and fwd["claim"] == "aligned" and not fwd["fails_claim"]
    rel_se = fwd["bias_norm_se"] / float(np.linalg.norm(rep["exact_gradient"]))
    assert abs(fwd["fitted_scale"] - 0.6 / 0.7) < 3 * rel_se + 1e-3
    assert res["ordergrad+noise"]["verdict"] == "unbiased within 4 SE"
    assert main(["check", "-O", "mean", "--binary", "--noise", "unknown,0.2"]) == 2


# ---------------------------------------------------- info, demo, help
def test_objectives_and_estimators(capsys: pytest.CaptureFixture) -> None:
    assert main(["objectives", "--format", "json"]) == 0
    forms = json.loads(capsys.readouterr().out)
    assert {f["example"] for f in forms} >= {"max@4", "cvar:0.25@4", "median@4"}
    assert main(["estimators"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in rankgrad.ESTIMATORS)


def test_demo_delegates(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    fake = types.ModuleType("rankgrad.experiments.demo")
    fake.main = lambda argv=None: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "rankgrad.experiments.demo", fake)
    assert main(["demo", "--quick", "--out", "x", "--seed", "3"]) == 0
    assert seen == [["--out", "x", "--quick", "--seed", "3"]]


@pytest.mark.parametrize("command", ["advantages", "weights", "check", "objectives", "estimators", "demo"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture) -> None:
    assert main([command, "--help"]) == 0
    assert "examples:" in capsys.readouterr().out


def test_entry_point_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(rankgrad.__file__).parents[1])}
    res = subprocess.run([sys.executable, "-m", "rankgrad.cli", "--help"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 0 and "advantages" in res.stdout and "examples:" in res.stdout
    res = subprocess.run([sys.executable, "-m", "rankgrad.cli", "--version"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 0 and rankgrad.__version__ in res.stdout
    # heavy optional dependencies stay unimported for the cheap commands
    code = ("import sys; from rankgrad.cli import main; main(['estimators']); "
            "print(sorted(m for m in ('torch', 'jax', 'pyarrow', 'matplotlib', 'tqdm') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and res.stdout.strip().endswith("[]")
