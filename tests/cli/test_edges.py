"""The command line at its edges: no wrong number, no lost file, no raw traceback, bounded memory.

Expected advantages come from brute force over K-subsets (tests/brute.py); every failure case checks
the exit status, a message naming the file or argument, that no temporary file is left, that an
existing OUT is untouched and that the input is intact.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rankgrad
from rankgrad.cli import _advantages, _io, _prompts, main
from tests import brute

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ENV = {**os.environ, "PYTHONPATH": str(Path(rankgrad.__file__).parents[1])}
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ helpers
def _brute_max(y: list[float], k: int) -> np.ndarray:
    """ordergrad advantage of max@K in one group: include-one minus leave-one-out, by enumeration."""
    y_arr, w = np.asarray(y, dtype=np.float64), np.eye(k)[0]
    return brute.include_one(y_arr, w) - brute.leave_one_out(y_arr, w)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    def strict(s: str) -> float:
        raise AssertionError(f"non-standard JSON constant {s} written")

    return [json.loads(line, parse_constant=strict) for line in path.read_text("utf-8").splitlines()]


def _leftovers(*folders: Path) -> list[str]:
    return [p.name for f in folders for p in f.iterdir() if "rankgrad-tmp" in p.name]


def _adv(*argv: str) -> int:
    return main(["advantages", *argv, "--quiet"])


_ROWS = [{"prompt_id": "a", "reward": r} for r in (3.0, 1.0, 2.0, 0.0)]
# two prompts, rewards in [0, 1]
_XY = [{"prompt_id": k, "reward": r} for k, r in [("x", 1), ("y", 0), ("x", 0)]]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """IN (4 rows of one group), OUT holding previous results, and IN's bytes."""
    src = _jsonl(tmp_path / "in.jsonl", _ROWS)
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    return src, out, src.read_bytes()


def _untouched(src: Path, out: Path, data: bytes) -> None:
    assert src.read_bytes() == data
    assert out.read_text() == "previous results\n"
    assert _leftovers(src.parent) == []


# ======================================================= A. wrong numbers
@pytest.mark.parametrize("out_name", ["out.jsonl", "out.csv", "out.parquet"])
def test_nonfinite_advantage_fails_naming_the_row(files, out_name, capsys, monkeypatch) -> None:
    src, _, data = files
    out = src.parent / out_name
    out.write_text("previous results\n")
    real = rankgrad.advantages

    def overflowing(rewards, objective, **kw):
        a = np.array(real(rewards, objective, **kw), dtype=np.float64)
        if "group_ids" in kw:  # the file's rows (not the argument probe): row 3 overflows
            a[2] = np.inf
        return a

    monkeypatch.setattr(rankgrad, "advantages", overflowing)
    assert _adv(str(src), str(out), "-O", "max@2") == 1
    err = capsys.readouterr().err
    assert f"{src}:3: the advantage computed for this row is inf" in err and "nothing was written" in err
    _untouched(src, out, data)


def test_rewards_near_the_float_limit_never_give_a_nonfinite_number(tmp_path, capsys) -> None:
    """Whatever the library does with ±1.7e308, the CLI writes only finite JSON numbers or fails."""
    rewards = (1.7e308, -1.7e308, 0.0, 1.7e308)
    src = _jsonl(tmp_path / "in.jsonl", [{"prompt_id": 0, "reward": r} for r in rewards])
    out = tmp_path / "out.jsonl"
    rc = _adv(str(src), str(out), "-O", "max@2")
    if rc == 0:
        assert all(math.isfinite(r["advantage"]) for r in _read_jsonl(out))
    else:
        assert rc == 1 and f"{src}:" in capsys.readouterr().err and not out.exists()
    assert _leftovers(tmp_path) == []


def test_nonfinite_prompt_score_and_weights_are_refused(tmp_path, capsys, monkeypatch) -> None:
    src = _jsonl(tmp_path / "in.jsonl", _XY)
    out = tmp_path / "p.json"
    monkeypatch.setattr(_prompts, "prompt_scores",
                        lambda p, *a, **kw: np.where(np.arange(p.size) == 1, np.nan, p))
    assert main(["prompts", str(src), str(out)]) == 1
    assert f"{src}:2: prompt 'y' got a score of nan" in capsys.readouterr().err and not out.exists()

    real = rankgrad.include_one
    monkeypatch.setattr(rankgrad, "include_one",
                        lambda r, o: np.where(np.arange(r.size) == 3, np.nan, real(r, o)))
    w = tmp_path / "w.json"
    assert main(["weights", "-O", "max@2", "--n", "5", "-o", str(w)]) == 1
    assert "include_one[3] = nan" in capsys.readouterr().err and not w.exists()
    assert _leftovers(tmp_path) == []


def test_check_fails_an_estimator_with_nonfinite_advantages(capsys, monkeypatch) -> None:
    real = rankgrad.advantages

    def broken(rewards, objective, estimator="ordergrad", **kw):
        a = np.array(real(rewards, objective, estimator=estimator, **kw), dtype=np.float64)
        if estimator == "rloo":
            a[0, 0] = np.nan
        return a

    monkeypatch.setattr(rankgrad, "advantages", broken)
    rc = main(["check", "-O", "mean", "--n", "4", "--samples", "200", "--estimators", "rloo",
               "--format", "json"])
    out = capsys.readouterr().out
    rep = json.loads(out, parse_constant=lambda s: pytest.fail(f"{s} in JSON"))
    assert rc == 1 and rep["failed"] == ["rloo"]
    res = rep["results"][0]
    assert res["nonfinite_advantages"] == 1 and res["verdict"].startswith("FAILED")


@pytest.mark.parametrize(("argv", "words"), [
    (["advantages", "IN", "OUT", "-O", "mean", "--estimator", "grpo", "--eps", "nan"], "--eps"),
    (["advantages", "IN", "OUT", "-O", "mean", "--estimator", "grpo", "--eps=-1"], "--eps"),
    (["advantages", "IN", "OUT", "-O", "mean", "--estimator", "grpo", "--eps", "inf"], "--eps"),
    (["advantages", "IN", "OUT", "-O", "max@2", "--max-errors=-1"], "--max-errors"),
    (["check", "-O", "max@2", "--tolerance", "nan"], "--tolerance"),
    (["check", "-O", "max@2", "--tolerance", "0"], "--tolerance"),
    (["check", "-O", "max@2", "--tolerance", "inf"], "--tolerance"),
    (["check", "-O", "max@2", "--estimators", ",,"], "--estimators"),
    (["check", "-O", "max@2", "--estimators", "ordergrad,,rloo"], "--estimators"),
    (["check", "-O", "max@2", "--estimators", " "], "--estimators"),
    (["check", "-O", "max@2", "--seed=-1"], "--seed"),
    (["check", "-O", "max@2", "--seed", str(2**64)], "--seed"),
    (["prompts", "IN", "--seed=-1"], "--seed"),
    (["demo", "--seed=-5"], "--seed"),
])
def test_unvalidated_knobs_are_usage_errors(files, argv, words, capsys) -> None:
    src, out, data = files
    argv = [str(src) if a == "IN" else str(out) if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and "internal error" not in err
    _untouched(src, out, data)


# ----------------------------------------------------------- group keys
_KEYS = [True, False, 1, 1.0, 0, "1", "true", "a", 2.5]


def _norm(key) -> tuple:
    """The documented identity of a JSON group key: its type, then its value (numbers by value)."""
    if isinstance(key, bool):
        return ("bool", key)
    if isinstance(key, (int, float)):
        return ("number", float(key))
    return ("string", key)


@FAST
@given(st.lists(st.tuples(st.sampled_from(_KEYS), st.integers(0, 9)), min_size=1, max_size=24))
def test_group_keys_keep_their_json_type(rows) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = _jsonl(Path(tmp) / "in.jsonl", [{"prompt_id": k, "reward": float(r)} for k, r in rows])
        out = Path(tmp) / "out.jsonl"
        rc = main(["advantages", str(src), str(out), "-O", "max@2", "-q", "--small-groups", "zero"])
        assert rc == 0
        got = np.array([r["advantage"] for r in _read_jsonl(out)])
    want = np.zeros(len(rows))
    for g in {_norm(k) for k, _ in rows}:
        idx = [i for i, (k, _) in enumerate(rows) if _norm(k) == g]
        if len(idx) >= 3:
            want[idx] = _brute_max([float(rows[i][1]) for i in idx], 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_prompts_count_groups_by_json_type(tmp_path) -> None:
    rows = [(True, 1), (1, 0), (1.0, 1), ("1", 1), (True, 0), ("true", 1)]
    src = _jsonl(tmp_path / "in.jsonl", [{"prompt_id": k, "reward": r} for k, r in rows])
    out = tmp_path / "p.jsonl"
    assert main(["prompts", str(src), str(out), "-q"]) == 0
    got = [(r["prompt"], r["rollouts"], r["successes"]) for r in _read_jsonl(out)]
    assert got == [(True, 2, 1.0), (1, 2, 1.0), ("1", 1, 1.0), ("true", 1, 1.0)]
    assert isinstance(got[0][0], bool) and isinstance(got[1][0], int)


@pytest.mark.parametrize(("line", "words"), [
    ('{"prompt_id": null, "reward": 1}', "group key 'prompt_id' is null"),
    ('{"prompt_id": NaN, "reward": 1}', "group key 'prompt_id' is NaN"),
    ('{"prompt_id": Infinity, "reward": 1}', "group key 'prompt_id' is Infinity"),
    ('{"prompt_id": 1e400, "reward": 1}', "group key 'prompt_id' is Infinity"),
    ('{"reward": 1}', "missing group key 'prompt_id'"),
])
@pytest.mark.parametrize("command", ["advantages", "prompts"])
def test_bad_group_keys_are_bad_rows(files, line, words, command, capsys) -> None:
    src, out, _ = files
    src.write_text("".join(json.dumps(r) + "\n" for r in [{"prompt_id": 0, "reward": 1}] * 3) + line + "\n")
    data = src.read_bytes()
    argv = [command, str(src), str(out), *(["-O", "max@2"] if command == "advantages" else [])]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{src}:4: {words}" in err and "Nothing was written" in err
    _untouched(src, out, data)


# ------------------------------------------------------ input changed mid-run
def _swap_after_scan(monkeypatch, change) -> None:
    real = _io.scan

    def scan_then_change(spec, *a, **kw):
        result = real(spec, *a, **kw)
        change(Path(spec.path))
        return result

    monkeypatch.setattr(_io, "scan", scan_then_change)


def _same_size_new_rewards(path: Path) -> bytes:
    return path.read_bytes().replace(b"3.0", b"9.0")


@pytest.mark.parametrize("how", ["replace", "in place, same size and mtime", "fewer rows"])
@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_input_changed_between_the_passes(tmp_path, how, ext, monkeypatch, capsys) -> None:
    src = tmp_path / f"in.{ext}"
    if ext == "jsonl":
        _jsonl(src, _ROWS)
    elif ext == "csv":
        src.write_text("prompt_id,reward\n" + "".join(f"a,{r['reward']}\n" for r in _ROWS))
    else:
        pq.write_table(pa.table({"prompt_id": ["a"] * 4, "reward": [3.0, 1.0, 2.0, 0.0]}), src)
    out = tmp_path / f"out.{ext}"

    def change(path: Path) -> None:
        old = path.stat()
        if ext == "parquet":
            rewards = [9.0, 1.0, 2.0, 0.0] if how != "fewer rows" else [9.0, 1.0, 2.0]
            new = tmp_path / "new.parquet"
            pq.write_table(pa.table({"prompt_id": ["a"] * len(rewards), "reward": rewards}), new)
            data = new.read_bytes()
        else:
            data = _same_size_new_rewards(path)
            if how == "fewer rows":
                data = data[: data.rstrip(b"\n").rfind(b"\n") + 1]
        if how == "replace":
            tmp = tmp_path / "swap"
            tmp.write_bytes(data)
            os.replace(tmp, path)
        else:
            path.write_bytes(data)
            if how != "fewer rows":
                os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))

    _swap_after_scan(monkeypatch, change)
    assert _adv(str(src), str(out), "-O", "max@2") == 1
    err = capsys.readouterr().err
    assert f"{src} changed while it was read" in err and "nothing was written" in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_stdin_is_spooled_and_matches_the_file(tmp_path) -> None:
    src = _jsonl(tmp_path / "in.jsonl", _ROWS)
    for data in (src.read_bytes(), gzip.compress(src.read_bytes())):
        res = subprocess.run([sys.executable, "-m", "rankgrad.cli", "advantages", "-", "-", "--format",
                              "jsonl", "-O", "max@2", "-q"], input=data, capture_output=True, env=ENV,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        got = [json.loads(x)["advantage"] for x in res.stdout.decode().splitlines()]
        np.testing.assert_allclose(got, _brute_max([3.0, 1.0, 2.0, 0.0], 2), atol=1e-12)
    res = subprocess.run([sys.executable, "-m", "rankgrad.cli", "advantages", "-", "-", "-O", "max@2"],
                         input=b"", capture_output=True, env=ENV, timeout=60)
    assert res.returncode == 2 and b"--format" in res.stderr


def test_stdout_gets_nothing_when_the_run_fails(tmp_path, capsys) -> None:
    src = _jsonl(tmp_path / "in.jsonl", [*_ROWS, {"prompt_id": "a", "reward": "x"}])
    assert _adv(str(src), "-", "-O", "max@2") == 1
    cap = capsys.readouterr()
    assert cap.out == "" and f"{src}:5:" in cap.err


# ------------------------------------------------------------- numbers
@pytest.mark.parametrize("cell", ["1_0", "\u0661", " 1", "1 ", "0x10", "1e5x", "--1", "1,5", "\u00bd", "1e",
                                  ".", "+"])
def test_csv_rewards_must_be_plain_numbers(tmp_path, cell, capsys) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    with src.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["prompt_id", "reward"], ["a", "1"], ["a", "0"], ["a", cell], ["a", "2"]])
    data = src.read_bytes()
    assert _adv(str(src), str(out), "-O", "max@1") == 1
    err = capsys.readouterr().err
    assert f"{src}:4: reward 'reward' = " in err and "is not a number" in err
    assert not out.exists() and src.read_bytes() == data


_FORMATS = ["{!r}", "{:.17e}", "{:.17E}", "{:+.17g}", "{:.20f}"]


@FAST
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=6), st.sampled_from(_FORMATS))
def test_csv_numbers_are_read_exactly(values, fmt) -> None:
    """One prompt per row: `prompts` reports each row's reward as its prompt's successes, bit for bit."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.csv", Path(tmp) / "out.jsonl"
        rows = "".join(f"p{i},{fmt.format(v)}\n" for i, v in enumerate(values))
        src.write_text("prompt_id,reward\n" + rows)
        assert main(["prompts", str(src), str(out), "-q"]) == 0
        got = [r["successes"] for r in _read_jsonl(out)]
    assert got == [float(fmt.format(v)) for v in values]
    if fmt != "{:.20f}":  # (20 decimals round the smallest values)
        assert got == values


@FAST
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=3, max_size=6), st.sampled_from(_FORMATS))
def test_csv_numbers_give_the_brute_force_advantages(values, fmt) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.csv", Path(tmp) / "out.jsonl"
        src.write_text("prompt_id,reward\n" + "".join(f"a,{fmt.format(v)}\n" for v in values))
        assert main(["advantages", str(src), str(out), "-O", "max@2", "-q"]) == 0
        got = np.array([r["advantage"] for r in _read_jsonl(out)])
    want = _brute_max([float(fmt.format(v)) for v in values], 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * (1 + max(abs(v) for v in values)))


@pytest.mark.parametrize(("text", "fmt"), [
    ('{"prompt_id": "a", "reward": 1' + "0" * 400 + "}", "jsonl"),
    ('{"prompt_id": "a", "reward": -1e400}', "jsonl"),
    ('{"prompt_id": "a", "reward": 1e400}', "jsonl"),
    ("a,1e400", "csv"),
    ("a,-2E999", "csv"),
])
def test_rewards_beyond_float64_are_out_of_range(tmp_path, text, fmt, capsys) -> None:
    src, out = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    good = [f'{{"prompt_id": "a", "reward": {r}}}' if fmt == "jsonl" else f"a,{r}" for r in (1, 0, 2)]
    src.write_text(("prompt_id,reward\n" if fmt == "csv" else "") + "\n".join([*good, text]) + "\n")
    line = 5 if fmt == "csv" else 4
    # --unscorable zero would zero an infinite reward, but an overflowing number is an error still
    assert _adv(str(src), str(out), "-O", "max@1", "--unscorable", "zero") == 1
    err = capsys.readouterr().err
    assert f"{src}:{line}: reward 'reward' = " in err and "out of range" in err and "Traceback" not in err
    assert not out.exists()


def test_literal_infinity_is_an_unscorable_reward(tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(f'{{"prompt_id": "a", "reward": {r}}}\n' for r in ("3", "Infinity", "1", "2")))
    assert _adv(str(src), str(out), "-O", "max@2") == 1
    assert _adv(str(src), str(out), "-O", "max@2", "--unscorable", "zero") == 0
    got = [json.loads(line)["advantage"] for line in out.read_text().splitlines()]  # IN's Infinity is kept
    np.testing.assert_allclose(got, np.insert(_brute_max([3.0, 1.0, 2.0], 2), 1, 0.0), atol=1e-12)


# ======================================================= B. data loss
def _make_out(kind: str, tmp_path: Path, src: Path) -> Path:
    out = tmp_path / "out.jsonl"
    if kind == "same path":
        return src
    if kind == "same file, other spelling":
        return tmp_path / "." / "sub" / ".." / src.name
    if kind == "hard link":
        os.link(src, out)
    elif kind == "symlink to IN":
        out.symlink_to(src)
    elif kind == "directory":
        out.mkdir()
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "missing folder":
        return tmp_path / "nope" / "out.jsonl"
    return out


@pytest.mark.parametrize("kind", ["same path", "same file, other spelling", "hard link", "symlink to IN",
                                  "directory", "fifo", "missing folder"])
@pytest.mark.parametrize("force", [False, True])
def test_out_is_checked_before_anything_and_never_an_input(tmp_path, kind, force, capsys) -> None:
    (tmp_path / "sub").mkdir()
    src = _jsonl(tmp_path / "in.jsonl", _ROWS)
    data = src.read_bytes()
    out = _make_out(kind, tmp_path, src)
    argv = ["advantages", str(src), str(out), "-O", "max@2"] + (["--force"] if force else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"OUT {str(out)!r}" in err and "Traceback" not in err
    assert src.read_bytes() == data and _leftovers(tmp_path) == []


@pytest.mark.parametrize("dev", ["/dev/null", "/dev/stdout", "/proc/self/fd/1"])
def test_device_out_is_refused_even_with_force(tmp_path, dev, capsys, monkeypatch) -> None:
    src = _jsonl(tmp_path / "in.jsonl", _ROWS)
    real = os.replace

    def guarded(a, b):  # a safety net: this test must never replace a system file
        assert not str(b).startswith(("/dev", "/proc")), b
        return real(a, b)

    monkeypatch.setattr(os, "replace", guarded)
    assert _adv(str(src), dev, "-O", "max@2", "--output-format", "jsonl", "--force") == 2
    assert "not a regular file" in capsys.readouterr().err and _leftovers(tmp_path) == []


def test_symlink_and_read_only_out_need_force(tmp_path, capsys) -> None:
    src = _jsonl(tmp_path / "in.jsonl", _ROWS)
    target = tmp_path / "target.jsonl"
    target.write_text("target\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert _adv(str(src), str(link), "-O", "max@2") == 2
    assert "symbolic link" in capsys.readouterr().err and link.is_symlink()
    assert _adv(str(src), str(link), "-O", "max@2", "--force") == 0
    assert not link.is_symlink() and target.read_text() == "target\n"  # the link is replaced, not its target
    got = [r["advantage"] for r in _read_jsonl(link)]
    np.testing.assert_allclose(got, _brute_max([3, 1, 2, 0], 2), atol=1e-12)

    ro = tmp_path / "ro.jsonl"
    ro.write_text("read-only\n")
    ro.chmod(0o444)
    assert _adv(str(src), str(ro), "-O", "max@2") == 2
    assert "read-only; pass --force" in capsys.readouterr().err and ro.read_text() == "read-only\n"
    assert _adv(str(src), str(ro), "-O", "max@2", "--force") == 0
    assert len(_read_jsonl(ro)) == 4 and stat.S_IMODE(ro.stat().st_mode) == 0o444
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into any folder")
def test_unwritable_folder_is_refused_first(tmp_path, capsys) -> None:
    src = _jsonl(tmp_path / "in.jsonl", _ROWS)
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert _adv(str(src), str(folder / "out.jsonl"), "-O", "max@2") == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("draws_out", ["IN", "OUT", "dir", "missing folder", "IN hard link"])
def test_prompts_outputs_are_checked_together_first(tmp_path, draws_out, capsys) -> None:
    src = _jsonl(tmp_path / "in.jsonl", _XY)
    data = src.read_bytes()
    out = tmp_path / "probs.csv"
    out.write_text("previous results\n")
    (tmp_path / "dir").mkdir()
    if draws_out == "IN hard link":
        os.link(src, tmp_path / "h.txt")
    path = {"IN": src, "OUT": out, "dir": tmp_path / "dir", "missing folder": tmp_path / "no" / "d.txt",
            "IN hard link": tmp_path / "h.txt"}[draws_out]
    assert main(["prompts", str(src), str(out), "--draw", "5", "--draws-out", str(path), "--force"]) == 2
    err = capsys.readouterr().err
    assert f"--draws-out {str(path)!r}" in err and "Traceback" not in err
    assert src.read_bytes() == data and out.read_text() == "previous results\n" and _leftovers(tmp_path) == []


def _writer_argv(command: str, src: Path, out: Path) -> list[str]:
    return {"advantages": ["advantages", str(src), str(out), "-O", "max@2", "--output-format", "jsonl"],
            "prompts": ["prompts", str(src), str(out), "--output-format", "csv"],
            "prompts --draws-out": ["prompts", str(src), "--draw", "3", "--draws-out", str(out)],
            "weights": ["weights", "-O", "max@2", "-o", str(out), "--format", "json"]}[command]


@pytest.mark.parametrize("kind", ["symlink", "read-only", "directory", "fifo", "missing folder"])
@pytest.mark.parametrize("command", ["advantages", "prompts", "prompts --draws-out", "weights"])
def test_every_writing_command_checks_its_outputs(tmp_path, command, kind, capsys) -> None:
    src = _jsonl(tmp_path / "in.jsonl", [{"prompt_id": "a", "reward": r} for r in (1.0, 0.0, 0.5, 0.25)])
    out = tmp_path / "out"
    target = tmp_path / "target"
    target.write_text("previous results\n")
    if kind == "symlink":
        out.symlink_to(target)
    elif kind == "read-only":
        out = target
        out.chmod(0o444)
    elif kind == "directory":
        out.mkdir()
    elif kind == "fifo":
        os.mkfifo(out)
    else:
        out = tmp_path / "nope" / "out"
    assert main(_writer_argv(command, src, out)) == 2
    what = "--draws-out" if "draws" in command else "-o" if command == "weights" else "OUT"
    _assert_clear(capsys.readouterr().err, f"{what} {str(out)!r}")
    assert target.read_text() == "previous results\n" and _leftovers(tmp_path) == []
    if kind in ("symlink", "read-only"):  # --force replaces the link / the read-only file itself
        quiet = ["-q"] if command != "weights" else []
        assert main([*_writer_argv(command, src, out), "--force", *quiet]) == 0
        assert not out.is_symlink() and out.read_text() != "previous results\n"
        assert kind == "read-only" or target.read_text() == "previous results\n"


def test_stdout_and_fifo_for_prompts_and_weights(tmp_path, capsys) -> None:
    src = _jsonl(tmp_path / "in.jsonl", _XY)
    argv = ["prompts", str(src), "-", "-q", "--prior", "0,0", "--score", "variance", "--uniform", "0"]
    assert main(argv) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    got = [(r["prompt"], r["rollouts"], float(r["pass_rate"])) for r in rows]
    assert got == [("x", "2", 0.5), ("y", "1", 0.0)]
    assert [float(r["probability"]) for r in rows] == [1.0, 0.0]  # p(1-p) = 1/4 and 0, normalised
    assert main(["weights", "-O", "max@2", "--n", "3", "-o", "-", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(d["advantage_by_rank"], _brute_max(d["rewards"], 2), atol=1e-12)

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = tmp_path / "out.jsonl"

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(src.read_bytes())

    import threading

    writer = threading.Thread(target=feed)
    writer.start()
    try:  # a FIFO (like <(zcat ...)) is read once, into a scratch copy, then twice from that
        assert _adv(str(fifo), str(out), "-O", "max@1", "--format", "jsonl", "--small-groups", "zero") == 0
    finally:
        writer.join(timeout=30)
    got = _read_jsonl(out)
    assert [r["prompt_id"] for r in got] == ["x", "y", "x"]
    x = _brute_max([1.0, 0.0], 1)  # y is alone: advantage 0
    np.testing.assert_allclose([r["advantage"] for r in got], [x[0], 0.0, x[1]], atol=1e-12)
    assert _leftovers(tmp_path) == []


def test_prompts_writes_all_outputs_or_none(tmp_path, monkeypatch) -> None:
    src = _jsonl(tmp_path / "in.jsonl", _XY)
    out, drawn = tmp_path / "probs.csv", tmp_path / "draws.txt"
    out.write_text("previous results\n")

    real, calls = _prompts._key_text, []

    def interrupted(key):  # Ctrl-C while the draws are written, after the table's 2 keys were
        calls.append(key)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(key)

    monkeypatch.setattr(_prompts, "_key_text", interrupted)
    assert main(["prompts", str(src), str(out), "--draw", "5", "--draws-out", str(drawn), "-q"]) == 130
    assert out.read_text() == "previous results\n" and not drawn.exists() and _leftovers(tmp_path) == []


def test_weights_output_checked_and_atomic(tmp_path, capsys) -> None:
    assert main(["weights", "-O", "max@4", "-o", str(tmp_path / "no" / "w.json")]) == 2
    assert "-o " in capsys.readouterr().err
    assert main(["weights", "-O", "max@4", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    w = tmp_path / "w.json"
    assert main(["weights", "-O", "max@2", "--n", "4", "-o", str(w)]) == 0
    d = json.loads(w.read_text())
    np.testing.assert_allclose(d["advantage_by_rank"], _brute_max(d["rewards"], 2), atol=1e-12)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(("out_name", "ok"), [("out.jsonl", False), ("out.parquet", False),
                                              ("out.csv", True)])
def test_duplicate_csv_header_is_refused_when_it_would_lose_a_column(tmp_path, out_name, ok, capsys) -> None:
    src, out = tmp_path / "in.csv", tmp_path / out_name
    src.write_text("prompt_id,note,reward,note\na,x,1,y\na,x,0,y\na,x,2,y\n")
    rc = _adv(str(src), str(out), "-O", "max@1")
    if ok:  # CSV to CSV keeps every cell: both columns survive
        assert rc == 0
        rows = list(csv.reader(out.open(newline="")))
        assert rows[0] == ["prompt_id", "note", "reward", "note", "advantage"] and rows[1][3] == "y"
    else:
        assert rc == 1 and "column 'note' 2 times" in capsys.readouterr().err and not out.exists()
    src.write_text("prompt_id,reward,reward\na,1,2\na,0,1\n")  # an ambiguous key column: always refused
    assert _adv(str(src), str(tmp_path / "o2.csv"), "-O", "max@1") == 1
    assert "column 'reward' 2 times" in capsys.readouterr().err


def _wait_for_tmp(folder: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _leftovers(folder):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    pytest.fail("no temporary file appeared")


def test_signal_handlers_are_restored(files) -> None:
    src, out, _ = files
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        assert _adv(str(src), str(out), "-O", "max@2") == 0
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is before[signal.SIGTERM]
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_remove_the_temporary_files(tmp_path, sig) -> None:
    """The command waits on stdin (spooled) after creating OUT's temporary file; a signal then must leave
    no temporary file (next to OUT, nor the spool in TMPDIR) and OUT untouched."""
    out, scratch = tmp_path / "out.jsonl", tmp_path / "tmpdir"
    scratch.mkdir()
    out.write_text("previous results\n")
    proc = subprocess.Popen([sys.executable, "-m", "rankgrad.cli", "advantages", "-", str(out), "--format",
                             "jsonl", "-O", "max@2"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**ENV, "TMPDIR": str(scratch)})
    try:
        proc.stdin.write(b'{"prompt_id": "a", "reward": 1}\n')
        proc.stdin.flush()
        _wait_for_tmp(tmp_path, proc)
        _wait_for_tmp(scratch, proc)
        proc.send_signal(sig)
        proc.wait(timeout=60)  # stdin stays open: closing it now could race the signal with an EOF
        _, err = proc.communicate()
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    assert (b"stopped by " + signal.Signals(sig).name.encode()) in err or sig == signal.SIGINT
    assert out.read_text() == "previous results\n" and _leftovers(tmp_path, scratch) == []


# ======================================================= C. clear errors
def _assert_clear(err: str, *words: str) -> None:
    assert all(w in err for w in words), err
    assert "Traceback" not in err and "internal error" not in err


def test_no_usable_group_key(tmp_path, capsys) -> None:
    src, out = _jsonl(tmp_path / "in.jsonl", _ROWS), tmp_path / "out.jsonl"
    assert _adv(str(src), str(out), "-O", "max@2", "--group-key", "prompt") == 1
    _assert_clear(capsys.readouterr().err, f"{src}:1: missing group key 'prompt'",
                  "no row has a usable group key")
    cr = tmp_path / "cr.jsonl"
    cr.write_bytes(src.read_bytes().replace(b"\n", b"\r"))
    assert _adv(str(cr), str(out), "-O", "max@2") == 1
    _assert_clear(capsys.readouterr().err, f"{cr}:1: malformed JSON", "CR only")
    pqf = tmp_path / "in.parquet"
    pq.write_table(pa.table({"prompt_id": pa.nulls(3), "reward": [1.0, 2.0, 3.0]}), pqf)
    assert _adv(str(pqf), str(tmp_path / "o.parquet"), "-O", "max@1") == 1
    _assert_clear(capsys.readouterr().err, f"{pqf}: row 0: group key 'prompt_id' is null")
    pq.write_table(pa.table({"prompt_id": [1.0, float("nan"), 1.0], "reward": [1.0, 2.0, 3.0]}), pqf)
    assert _adv(str(pqf), str(tmp_path / "o.parquet"), "-O", "max@1") == 1
    _assert_clear(capsys.readouterr().err, f"{pqf}: row 1: group key 'prompt_id' is NaN")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_csv_with_cr_line_endings_is_read(tmp_path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(b"prompt_id,reward\r" + b"".join(f"a,{r}\r".encode() for r in (3, 1, 2, 0)))
    assert _adv(str(src), str(out), "-O", "max@2") == 0
    got = [float(r["advantage"]) for r in csv.DictReader(out.open(newline=""))]
    np.testing.assert_allclose(got, _brute_max([3, 1, 2, 0], 2), atol=1e-12)


def test_deep_json_is_a_bad_row(tmp_path, capsys) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt_id": "a", "reward": 1}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    assert _adv(str(src), str(tmp_path / "o.jsonl"), "-O", "max@1") == 1
    _assert_clear(capsys.readouterr().err, f"{src}:2: malformed JSON: nested too deeply")


@pytest.mark.parametrize("spec", ["mean@1e400", "max@1e400", "max@1e999", "max@0", "max@2.5"])
@pytest.mark.parametrize("command", ["advantages", "prompts", "weights", "check"])
def test_objective_overflow_is_a_usage_error(files, spec, command, capsys) -> None:
    src, out, data = files
    argv = {"advantages": ["advantages", str(src), str(out)], "prompts": ["prompts", str(src), str(out)],
            "weights": ["weights"], "check": ["check"]}[command]
    assert main([*argv, "-O", spec]) == 2
    _assert_clear(capsys.readouterr().err, "--objective")
    _untouched(src, out, data)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "csv.gz"])
def test_invalid_utf8_names_the_line(tmp_path, fmt, capsys) -> None:
    src, out = tmp_path / f"in.{fmt}", tmp_path / "out.jsonl"
    text = (b"prompt_id,reward\na,1\na,0\n\xff\xfe,2\na,3\n" if fmt.startswith("csv")
            else b'{"prompt_id": "a", "reward": 1}\n{"prompt_id": "a", "reward": 0}\n{"prompt_id": "\xff"}\n')
    src.write_bytes(gzip.compress(text) if fmt.endswith(".gz") else text)
    assert _adv(str(src), str(out), "-O", "max@1") == 1
    line = 4 if fmt.startswith("csv") else 3
    _assert_clear(capsys.readouterr().err, f"{src}:{line}: not valid UTF-8")
    assert not out.exists()


def test_bom_in_jsonl_is_skipped(tmp_path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in _ROWS).encode())
    for extra in ([], ["--overwrite"], ["--output-format", "csv"]):
        assert _adv(str(src), str(out), "-O", "max@2", *extra) == 0
        if extra[:1] == ["--output-format"]:
            got = [float(r["advantage"]) for r in csv.DictReader(out.open(newline="", encoding="utf-8"))]
        else:
            assert not out.read_bytes().startswith(b"\xef\xbb\xbf")
            got = [r["advantage"] for r in _read_jsonl(out)]
        np.testing.assert_allclose(got, _brute_max([3, 1, 2, 0], 2), atol=1e-12)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "not gzip"])
def test_bad_gzip_is_reported(tmp_path, damage, capsys) -> None:
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in _ROWS * 50).encode())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "corrupt":
        data = data[:20] + bytes(b ^ 0xFF for b in data[20:40]) + data[40:]
    else:
        data = b"".join(json.dumps(r).encode() + b"\n" for r in _ROWS)
    src, out = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl"
    src.write_bytes(data)
    assert _adv(str(src), str(out), "-O", "max@2") == 1
    _assert_clear(capsys.readouterr().err, f"{src}: the gzip data is truncated or corrupt")
    assert not out.exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_bad_parquet_is_reported(tmp_path, damage, capsys) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"prompt_id": ["a"] * 4, "reward": [3.0, 1.0, 2.0, 0.0]}), src)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) - 10] if damage == "truncated" else b"PAR1" + b"\0" * 50)
    assert _adv(str(src), str(tmp_path / "o.parquet"), "-O", "max@2") == 1
    _assert_clear(capsys.readouterr().err, f"{src}: cannot read it as Parquet")


def test_parquet_integers_beyond_2_53_are_read(tmp_path) -> None:
    src, out = tmp_path / "in.parquet", tmp_path / "out.jsonl"
    big = [2**62 + 1, 3, 2**60, 0]
    pq.write_table(pa.table({"prompt_id": ["a"] * 4, "reward": pa.array(big, pa.int64())}), src)
    assert _adv(str(src), str(out), "-O", "max@2") == 0
    got = [r["advantage"] for r in _read_jsonl(out)]
    np.testing.assert_allclose(got, _brute_max([float(x) for x in big], 2), rtol=1e-12)


def test_unexpected_exceptions_are_one_line_exit_70(files, capsys, monkeypatch) -> None:
    src, out, data = files

    def bug(*a, **kw):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(_advantages, "_compute", bug)
    assert _adv(str(src), str(out), "-O", "max@2") == 70
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: something nobody expected)" in err and "please report" in err
    assert "Traceback" not in err
    assert _adv(str(src), str(out), "-O", "max@2", "--debug") == 70
    assert "Traceback" in capsys.readouterr().err
    assert main(["--debug", "advantages", str(src), str(out), "-O", "max@2"]) == 70
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("RANKGRAD_DEBUG", "1")
    assert _adv(str(src), str(out), "-O", "max@2") == 70
    assert "Traceback" in capsys.readouterr().err
    _untouched(src, out, data)


def test_large_k_fails_fast_against_the_data(tmp_path, capsys) -> None:
    """max@1e6 (the presets' largest K) on a 3-row file: the small-group report, without building
    K-sized tables (numpy reports its arrays to tracemalloc)."""
    src = _jsonl(tmp_path / "in.jsonl", _ROWS[:3])
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        rc = _adv(str(src), str(tmp_path / "o.jsonl"), "-O", "max@1e6")
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rc == 1 and "max@1000000 needs at least 1000001 per group" in capsys.readouterr().err
    assert peak < 20e6 and seconds < 10  # max@1e7 was 1.9 GB and 15 s


@pytest.mark.parametrize("argv", [
    ["weights", "-O", "max@10000000"],
    ["weights", "-O", "max@4", "--n", "1000000000"],
    ["check", "-O", "max@10000000"],
    ["check", "-O", "max@4", "--arms", "100000000"],
    ["prompts", "IN", "-O", "max@10000000"],
    ["advantages", "IN", "OUT", "-O", "max@1e7"],
])
def test_sizes_beyond_the_limits_are_usage_errors(files, argv, capsys) -> None:
    src, out, data = files
    t0 = time.perf_counter()
    assert main([str(src) if a == "IN" else str(out) if a == "OUT" else a for a in argv]) == 2
    _assert_clear(capsys.readouterr().err, "at most")
    assert time.perf_counter() - t0 < 5


def test_weights_of_a_fractional_k_objective_is_a_clear_error():
    """The weights table needs rank weights: a fractional-K objective (exact regime only) has none."""
    from rankgrad.cli import _weights

    with pytest.raises(ValueError, match="fractional"):
        _weights.compute(rankgrad.parse("max@2.5"), 8, "ordergrad")
