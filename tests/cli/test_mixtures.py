"""`rankgrad advantages --objective` with a mixture string, against brute force over K-subsets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankgrad.cli import _common, main
from tests import brute

# (spec, [(coefficient, top-first weights of the part)]); K = the largest part's K.
CASES = [
    ("0.5*mean + 0.5*max@8", [(0.5, [1.0]), (0.5, [1.0] + [0.0] * 7)]),
    ("mean + 0.25*cvar:0.5@4", [(1.0, [1.0]), (0.25, [0.0, 0.0, 0.5, 0.5])]),
    ("max@3 - 0.1*min@2", [(1.0, [1.0, 0.0, 0.0]), (-0.1, [0.0, 1.0])]),
]


def _brute(y: np.ndarray, parts: list) -> np.ndarray:
    k = max(len(w) for _, w in parts)
    return sum(c * (len(w) / k) * (brute.include_one(y, np.array(w)) - brute.leave_one_out(y, np.array(w)))
               for c, w in parts)


@pytest.mark.parametrize("spec,parts", CASES, ids=[c[0] for c in CASES])
def test_advantages_command_takes_a_mixture(tmp_path: Path, spec: str, parts: list) -> None:
    rng = np.random.default_rng(len(spec))
    sizes = {"a": 9, "b": 10, "c": 12}
    rows = [{"prompt_id": g, "reward": round(float(rng.normal()), 1)}
            for g, n in sizes.items() for _ in range(n)]
    rows = [rows[i] for i in rng.permutation(len(rows))]  # groups interleaved
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["advantages", str(src), str(out), "--objective", spec, "--quiet"]) == 0
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["reward"] for r in got] == [r["reward"] for r in rows]  # rows kept in order
    for g in sizes:
        idx = [i for i, r in enumerate(got) if r["prompt_id"] == g]
        y = np.array([got[i]["reward"] for i in idx])
        adv = np.array([got[i]["advantage"] for i in idx])
        np.testing.assert_allclose(adv, _brute(y, parts), rtol=0, atol=1e-12)


def test_a_bad_mixture_is_a_usage_error(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt_id": 1, "reward": 0.5}\n', encoding="utf-8")
    assert main(["advantages", str(src), str(tmp_path / "o.jsonl"), "-O", "0.5*mean + foo@3", "-q"]) == 2
    assert "term 'foo@3' at index 11" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(_common, "preset_terms"),
                    reason="the CLI reads K from the last '@K' of the spec until objective_k reads mixtures")
def test_small_groups_are_judged_by_the_mixtures_largest_k(tmp_path: Path) -> None:
    """max@4 - 0.1*min@2 has K = 4: groups of 3 or 4 are too small, whichever term comes last."""
    rows = [{"prompt_id": g, "reward": float(i % 3)} for g, n in (("a", 4), ("b", 6)) for i in range(n)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    argv = ["advantages", str(src), str(out), "-O", "max@4 - 0.1*min@2", "-q", "--small-groups", "zero"]
    assert main(argv) == 0
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(r["advantage"] == 0.0 for r in got if r["prompt_id"] == "a")
    b = [r for r in got if r["prompt_id"] == "b"]
    want = _brute(np.array([r["reward"] for r in b]), [(1.0, [1.0, 0.0, 0.0, 0.0]), (-0.1, [0.0, 1.0])])
    np.testing.assert_allclose([r["advantage"] for r in b], want, rtol=0, atol=1e-12)
