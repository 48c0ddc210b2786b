"""Experiment 3, risk-sensitive control: environment, batch dynamics, the arms' weights, a quick run."""

from __future__ import annotations

import copy
import itertools
import json
import math
import warnings

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("matplotlib")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from rankgrad.experiments import risk  # noqa: E402

pytestmark = pytest.mark.slow  # runs an experiment; skipped by the inner loop `pytest -m "not slow"`


@pytest.mark.parametrize(
    "kwargs", [{}, {"render_mode": "ansi"}, {"railing": False, "slip": 0.3, "max_steps": 7}]
)
def test_env_checker_passes(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec" notes: the class is deliberately not registered
        check_env(risk.BridgeWorld(**kwargs), skip_render_check=False)


def test_layout_and_routes():
    env = risk.BridgeWorld()
    assert env.observation_space.n == 42 and env.action_space.n == 4
    assert env.start == 4 * 7 and env.goal == 4 * 7 + 6
    assert env.is_bridge.sum() == 5 and env.is_cliff.sum() == 7
    # Walk the bridge with no gusts (u = 1): 6 steps, -6; the detour: 14 steps, -14.
    for actions, expected in (([1] * 6, -6.0), ([0] * 4 + [1] * 6 + [2] * 4, -14.0)):
        pos, total = np.array(env.start), 0.0
        for t, a in enumerate(actions):
            pos, r, term, trunc, _ = env.transition(pos, t, np.array(a), np.array(1.0))
            total += float(r)
        assert bool(term) and not bool(trunc) and total == expected
    # A gust on the bridge: -31 and back to S; the railing blocks a deliberate step into the cliff.
    pos, r, term, _, fell = env.transition(np.array(env.start + 2), 0, np.array(1), np.array(0.0))
    assert int(pos) == env.start and float(r) == -31.0 and bool(fell) and not bool(term)
    pos, r, _, _, fell = env.transition(np.array(env.start + 2), 0, np.array(2), np.array(0.5))
    assert int(pos) == env.start + 2 and float(r) == -1.0 and not bool(fell)
    # The cap: truncated on the max_steps-th step, with the penalty.
    _, r, term, trunc, _ = env.transition(np.array(0), env.max_steps - 1, np.array(3), np.array(0.5))
    assert bool(trunc) and not bool(term) and float(r) == -1.0 - env.cap_penalty


def _episodes_with_env_step(env, seeds, actions):
    """Reference trajectories through env.step (one episode per seed; actions[t, i])."""
    out = []
    for i, seed in enumerate(seeds):
        obs, _ = env.reset(seed=int(seed))
        traj = [(obs, 0.0, False, False)]
        for t in range(actions.shape[0]):
            obs, r, term, trunc, _ = env.step(int(actions[t, i]))
            traj.append((obs, r, term, trunc))
            if term or trunc:
                break
        out.append(traj)
    return out


@pytest.mark.parametrize("kwargs", [{}, {"slip": 0.3, "max_steps": 25}, {"railing": False, "slip": 0.2}])
def test_batch_transition_matches_env_step(kwargs):
    env = risk.BridgeWorld(**kwargs)
    E, T = 64, env.max_steps
    rng = np.random.default_rng(1)
    seeds = rng.integers(0, 2**31, size=E)
    # Biased towards "right" so that many episodes reach the bridge and the goal.
    actions = rng.choice(4, size=(T, E), p=[0.25, 0.45, 0.15, 0.15])
    ref = _episodes_with_env_step(env, seeds, actions)
    # The same uniforms env.step draws: a copy of each episode's generator right after reset(seed).
    gens = []
    for seed in seeds:
        env.reset(seed=int(seed))
        gens.append(copy.deepcopy(env.np_random))
    pos = np.full(E, env.start)
    done = np.zeros(E, dtype=bool)
    for t in range(T):
        u = np.array([g.random() for g in gens])
        nxt, r, term, trunc, _ = env.transition(pos, t, actions[t], u)
        for i in np.flatnonzero(~done):
            obs_ref, r_ref, term_ref, trunc_ref = ref[i][t + 1]
            assert (int(nxt[i]), float(r[i]), bool(term[i]), bool(trunc[i])) == (
                obs_ref,
                r_ref,
                term_ref,
                trunc_ref,
            )
        pos = np.where(done, pos, nxt)
        done |= term | trunc
        if done.all():
            break
    assert done.all()
    assert sum(len(tr) - 1 for tr in ref) > 3 * E  # the episodes ran for several steps
    assert any(tr[-1][2] for tr in ref)  # some reached the goal
    assert any(step[1] <= -31 for tr in ref for step in tr)  # some fell into the cliff


def test_rollout_matches_env_step_with_the_same_draws():
    """rollout() (actions by inverse CDF, then gusts) replays exactly through env.step."""
    env = risk.BridgeWorld(slip=0.2, max_steps=30)
    R, E = 2, 40
    logits = np.random.default_rng(3).normal(size=(R, 42, 4)) + np.array([0.0, 1.0, 0.0, 0.0])
    probs = risk.softmax(logits)
    ro = risk.rollout(env, probs, E, np.random.default_rng(7), keep=True)
    rng = np.random.default_rng(7)
    draws = []
    for _ in range(ro.states.shape[0]):
        draws.append((rng.random((R, E, 1))[..., 0], rng.random((R, E))))

    class Replay:
        def __init__(self, values):
            self.values = iter(values)

        def random(self):
            return next(self.values)

    for r in range(R):
        for i in range(E):
            env.reset()
            env.np_random = Replay([float(u[r, i]) for _, u in draws])
            obs, total, falls = env.start, 0.0, 0
            for t, (ua, _) in enumerate(draws):
                a = int(np.searchsorted(np.cumsum(probs[r, obs]), ua[r, i], side="right"))
                a = min(a, 3)
                assert ro.alive[t, r, i] and ro.states[t, r, i] == obs and ro.actions[t, r, i] == a
                prev = obs
                obs, rew, term, trunc, info = env.step(a)
                total += rew
                falls += info["fell"]
                if term or trunc:
                    break
            assert not ro.alive[t + 1 :, r, i].any()
            assert ro.returns[r, i] == pytest.approx(total, abs=1e-12)
            assert ro.falls[r, i] == falls
            assert ro.bridge[r, i] == (term and bool(env.is_bridge[prev]))
            assert ro.detour[r, i] == (term and not env.is_bridge[prev])


def test_score_gradient_equals_a_loop_over_steps():
    env = risk.BridgeWorld(slip=0.1, max_steps=20)
    rng = np.random.default_rng(5)
    probs = risk.softmax(rng.normal(size=(2, 42, 4)))
    ro = risk.rollout(env, probs, 12, rng, keep=True)
    w = rng.normal(size=(2, 12))
    expected = np.zeros_like(probs)
    T = ro.states.shape[0]
    for r in range(2):
        for i in range(12):
            for t in range(T):
                if ro.alive[t, r, i]:
                    s, a = ro.states[t, r, i], ro.actions[t, r, i]
                    expected[r, s] += w[r, i] * (np.eye(4)[a] - probs[r, s])  # grad log softmax
    np.testing.assert_allclose(risk.score_gradient(ro, probs, w), expected, atol=1e-12)


def _brute_force_advantages(y, weights_low_first):
    """a_i = q_i - v_i by enumerating K-subsets: q with i included, v of the others only."""
    n, k = len(y), len(weights_low_first)

    def lstat(vals):
        return float(np.dot(np.sort(vals), weights_low_first))

    a = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        q = np.mean([lstat([y[i], *(y[j] for j in c)]) for c in itertools.combinations(others, k - 1)])
        v = np.mean([lstat([y[j] for j in c]) for c in itertools.combinations(others, k)])
        a.append(q - v)
    return np.array(a)


def test_rankgrad_weights_match_brute_force():
    groups = np.array(
        [
            [-6.0, -14.0, -37.0, -6.0, -14.0, -71.0, -9.0],
            [-6.0, -6.0, -6.0, -6.0, -6.0, -6.0, -40.0],  # ties
            [-14.0, -14.0, -14.0, -14.0, -14.0, -14.0, -14.0],  # constant: no signal
        ]
    )
    n = groups.shape[-1]
    got_tail = risk.rankgrad_weights(groups, "cvar:0.25@4")  # bottom ceil(1) of 4 = worst of 4
    got_mean = risk.rankgrad_weights(groups, "mean")
    for g, y in enumerate(groups):
        np.testing.assert_allclose(
            got_tail[g], 4 / n * _brute_force_advantages(y, [1.0, 0, 0, 0]), atol=1e-12
        )
        rloo = y - (y.sum() - y) / (n - 1)
        np.testing.assert_allclose(got_mean[g], rloo / n, atol=1e-12)
        np.testing.assert_allclose(got_mean[g], _brute_force_advantages(y, [1.0]) / n, atol=1e-12)
    assert np.all(got_tail[2] == 0.0)
    # By hand, group 1 (six -6 and one -40, N = 7, K = 4): the -40 sample is the minimum of every 4-subset
    # holding it, so q = -40, and the others are all -6, so v = -6. A -6 sample: its 3 companions are drawn
    # from the other six, which hold the -40 with probability 3/6, so q = -40/2 - 6/2; 4 of those six hold
    # it with probability 4/6, so v = -40 * 4/6 - 6 * 2/6.
    q6 = 0.5 * -40 + 0.5 * -6
    v6 = (4 / 6) * -40 + (2 / 6) * -6
    assert got_tail[1, -1] == pytest.approx(4 / 7 * (-40 - -6))
    assert got_tail[1, 0] == pytest.approx(4 / 7 * (q6 - v6))


def _tamar_by_definition(y, alpha):
    """VaR = inf{x : F_N(x) >= alpha} over the sample; w_i = (y_i - VaR) 1{y_i <= VaR} / (alpha N)."""
    n = len(y)
    var = min(x for x in y if np.mean(np.asarray(y) <= x) >= alpha)
    return np.array([(yi - var) / (alpha * n) if yi <= var else 0.0 for yi in y])


@pytest.mark.parametrize("alpha", [0.25, 0.1, 0.5])
def test_tamar_weights_match_definition(alpha):
    rng = np.random.default_rng(11)
    groups = np.concatenate(
        [
            rng.choice([-6.0, -14.0, -37.0, -40.0, -71.0], size=(20, 16)),  # heavy ties
            rng.normal(size=(20, 16)) * 10,
            np.full((1, 16), -14.0),
        ]
    )
    got = risk.tamar_weights(groups, alpha)
    for g, y in enumerate(groups):
        np.testing.assert_allclose(got[g], _tamar_by_definition(list(y), alpha), atol=1e-12)
    assert np.all(got[-1] == 0.0) and np.all(got <= 0.0)


def test_tamar_weights_hand_checked():
    y = np.array([[3.0, -1.0, 5.0, 0.0, 2.0, -4.0, 1.0, 7.0]])  # N = 8, alpha = 0.25: VaR = 2nd smallest = -1
    np.testing.assert_allclose(risk.tamar_weights(y, 0.25), [[0, 0, 0, 0, 0, -3 / 2, 0, 0]])


def test_cvar_and_reference_routes():
    x = np.arange(1.0, 9.0)  # worst 25% of 8 = {1, 2}
    assert risk.cvar(x, 0.25) == 1.5 and risk.cvar(x, 0.3) == 2.0  # ceil(2.4) = 3 -> {1, 2, 3}
    env = risk.BridgeWorld()
    ref = risk.reference(env, 4000, np.random.default_rng(0), "cvar:0.25@4")
    assert ref["detour"]["mean"] == ref["detour"]["cvar25"] == -14.0
    assert ref["bridge"]["mean"] > -14.0 + 3 and ref["bridge"]["cvar25"] < -14.0 - 4
    assert ref["bridge"]["bridge_fraction"] == 1.0 and ref["detour"]["detour_fraction"] == 1.0


def test_quick_run_the_diagonal_wins(tmp_path, capsys):
    # Seeds 0-11 of the quick run were checked: 11 of 12 show the diagonal with margins >= 4.2 in the mean
    # and >= 5.3 in CVaR_25 (seed 0: 4.7 and 5.6); in seed 9 the cvar:0.25@4 run ended on the bridge (the
    # second local optimum). Only seed 0 is tested here.
    res = risk.main(["--quick", "--seed", "0", "--out", str(tmp_path), "--no-progress"])
    table = res["table"]
    assert table["mean"]["mean"] > table["tail"]["mean"] + 2.0
    assert table["tail"]["cvar25"] > table["mean"]["cvar25"] + 3.0
    assert table["tamar"]["cvar25"] > table["mean"]["cvar25"] + 3.0
    assert table["mean"]["bridge_fraction"] > 0.95
    assert table["tail"]["bridge_fraction"] < 0.05 and table["tamar"]["bridge_fraction"] < 0.05
    assert res["headline"]["diagonal_wins"]
    assert (tmp_path / "risk.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "risk.json").read_text())
    assert saved["config"]["init"].startswith("uniform")
    assert "uniform" in saved["training_starts"] and "two local optima" in saved["note_local_optima"]
    assert saved["table"]["tail"]["cvar25"] == pytest.approx(table["tail"]["cvar25"])
    assert set(saved["arms"]) == {"mean", "tail", "tamar"} and saved["arms"]["mean"]["objective"] == "mean"
    assert math.isclose(saved["arms"]["tail"]["cdf"]["F"][-1], 1.0)
    out = capsys.readouterr().out
    assert "cvar:0.25@4" in out and "Tamar" in out
    # --replot redraws the PNG from the stored JSON alone (no training), leaving the JSON byte for byte
    stored = (tmp_path / "risk.json").read_bytes()
    (tmp_path / "risk.png").unlink()
    assert risk.main(["--replot", str(tmp_path / "risk.json")]) == {"png": str(tmp_path / "risk.png")}
    assert (tmp_path / "risk.png").stat().st_size > 10_000 and (tmp_path / "risk.json").read_bytes() == stored
    with pytest.raises(ValueError, match="replot"):  # another experiment's numbers are refused
        (tmp_path / "other.json").write_text(json.dumps({"experiment": "variance"}))
        risk.main(["--replot", str(tmp_path / "other.json")])


def test_config_variants_and_errors():
    assert risk.Config.quick().seeds == 1 and risk.Config.demo().updates < risk.Config().updates
    assert risk.Config().init.startswith("uniform")
    with pytest.raises(ValueError, match="tail_objective"):
        risk.train(risk.Config(tail_objective="cvar:0.25@16", updates=1, curve_points=1), progress=False)
    with pytest.raises(ValueError, match="arms"):
        risk.train(risk.Config(arms=("mean", "median"), updates=1), progress=False)
    with pytest.raises(ValueError, match="layout"):
        risk.BridgeWorld(layout=("S=G", "..."))


def test_second_local_optimum_from_a_bridge_start():
    """Started near the bridge route (not uniform), the tail objective stays on the bridge."""
    config = risk.Config(arms=("tail",), seeds=1, updates=300, eval_episodes=2000, other_start="bridge")
    out = risk.other_start(config, progress=False)
    assert out["init"].startswith("bridge")
    assert out["table"]["tail"]["bridge_fraction_per_seed"][0] > 0.95
    assert out["table"]["tail"]["cvar25"] < -17.0
    with pytest.raises(ValueError, match="init"):
        risk.initial_logits(risk.BridgeWorld(), risk.Config(init="random"))
