"""`rankgrad demo` wiring: both reduced experiments run, their tables print, files are written.

The headlines themselves are each experiment's (tests/experiments/test_risk.py asserts the risk
diagonal; the pass@K study's result is in its report, tests/experiments/test_passk_study.py checks its
pipeline); here the settings are tiny so that only the plumbing is exercised.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from rankgrad.cli import main as cli_main
from rankgrad.experiments import demo, passk_study, risk

pytestmark = pytest.mark.slow  # runs an experiment; skipped by the inner loop `pytest -m "not slow"`


def test_demo_runs_both_experiments_and_writes_files(tmp_path) -> None:
    risk_config = dataclasses.replace(
        risk.Config.quick(), updates=60, eval_episodes=400, curve_points=3, curve_episodes=100
    )
    lm_config = dataclasses.replace(passk_study.Config.quick(), arms=("grpo", "rloo", "max@4"), rl_steps=2)
    lines: list[str] = []
    summary = demo.run_demo(tmp_path, risk_config, lm_config, progress=False, echo=lines.append)
    text = "\n".join(lines)
    assert "trained for" in text and "*" in text and "CVaR_25" in text and "pass@4" in text
    assert "s in all" in text  # the demo reports its own elapsed time
    for name in ("risk.png", "risk.json", "passk_add3.png", "passk_add3.json", "demo.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert set(saved["risk"]["table"]) == {"mean", "cvar:0.25@4", "Tamar CVaR_0.25"}
    assert set(saved["passk"]["table"]) == {"(warm start)", "grpo", "rloo", "max@4"}
    assert set(saved["passk"]["table"]["max@4"]) == {"pass@1", "pass@4", "pass@16"}
    assert saved["risk"]["diagonal_wins"] == summary["risk"]["diagonal_wins"]


def test_demo_help_via_cli(capsys) -> None:
    assert cli_main(["demo", "--help"]) == 0
    assert "--quick" in capsys.readouterr().out


def test_demo_threads_reach_torch_and_the_lm_config(tmp_path, monkeypatch) -> None:
    """--threads T: both experiments run with T torch threads (the LM config carries T too), and the
    caller's thread count comes back afterwards; --threads 0 is a usage error."""
    import torch

    seen = {}

    def fake_run_demo(out, risk_config, lm_config, progress):  # noqa: ANN001, ANN202
        seen.update(threads=torch.get_num_threads(), lm=lm_config.threads, out=out)
        return {}

    before = torch.get_num_threads()
    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert cli_main(["demo", "--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
    assert seen == {"threads": 1, "lm": 1, "out": str(tmp_path)}
    monkeypatch.setattr(demo, "run_demo", lambda out, risk_config, lm_config, progress: seen.update(
        seeds=lm_config.seeds, arms=lm_config.arms) or {})
    assert cli_main(["demo", "--quick", "--seed", "5", "--out", str(tmp_path)]) == 0
    assert seen["seeds"] == tuple(s + 5 for s in passk_study.Config.quick().seeds)
    assert seen["arms"] == ("grpo", "rloo", "max@4")
    assert torch.get_num_threads() == before
    assert cli_main(["demo", "--threads", "0"]) == 2
