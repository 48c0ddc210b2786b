"""Risk-sensitive control: train for the lower tail and you get the best lower tail (and not the mean).

**Environment.** :class:`BridgeWorld`, a ``gymnasium.Env`` (nothing is registered globally)::

    col:  0 1 2 3 4 5 6
    r0    . . . . . . .      .  floor (the safe detour runs up column 0, along row 0, down column 6)
    r1    . # # # # # .      #  wall
    r2    . # # # # # .      S  start
    r3    . # # # # # .      G  goal (terminal)
    r4    S = = = = = G      =  bridge tile: every move from it is blown south into the cliff with
    r5    C C C C C C C      C  cliff          probability ``slip`` (a gust), whatever the action

* 4 actions (0 up, 1 right, 2 down, 3 left); observations are cells ``row * 7 + col`` (Discrete(42)).
  Walls, the grid's edge and (``railing=True``, the default) the cliff block a deliberate move: the
  agent stays. Only gusts push it off the bridge. (Without the railing a random walk on the bridge
  steps off a quarter of the time, and even the mean-trained policy learns to avoid the bridge.)
* Every step costs 1. Entering the cliff costs ``cliff_penalty`` = 30 more and puts the agent back
  on ``S``; the episode goes on. Reaching ``G`` ends it (terminated). After ``max_steps`` = 90 steps
  it is truncated with ``cap_penalty`` = 50 more, so that never arriving is worse than arriving
  (tail objectives otherwise can settle on wandering away from the bridge: see below).

**The trade-off.** The bridge takes 6 steps, 5 of them from gusty tiles: with ``slip = 0.02`` a
crossing falls with probability f = 1 - 0.98^5 = 9.6%, and a fall costs 34.0 on average (30, the
step into the cliff and about 3 steps lost). The detour takes 14 safe steps. Pure bridge: mean
-6 - 34.0 f / (1 - f) = -9.6, CVaR_25 about -20.4 (every episode that falls plus the fastest
crossings); pure detour: -14 for both (``reference`` in the JSON has them by simulation). So the mean
prefers the bridge and the lower tail the detour.

**Arms.** A tabular softmax policy (logits ``[42, 4]``) starts **uniform** (all logits 0) and is
trained with Adam on G groups of N = 16 episodes from ``S`` per update, with the REINFORCE estimator
``sum_i w_i * sum_t grad log pi(a_t | s_t)`` and per-episode weights ``w_i`` (averaged over groups):

* ``mean``  -- ``w = (K/N) * rankgrad.advantages(R, "mean")`` with K = 1 (RLOO);
* ``tail``  -- ``w = (K/N) * rankgrad.advantages(R, "cvar:0.25@4")``: unbiased for the gradient of
  J = E[mean of the bottom ceil(0.25 * 4) = 1 of 4 returns] = E[worst of 4 episodes] (see ``Config``);
* ``tamar`` -- Tamar, Glassner & Mannor (2015), "Optimizing the CVaR via sampling", for the lower tail
  of returns: with the group's empirical VaR v = R_(ceil(alpha N)) (the alpha-quantile, the
  ceil(alpha N)-th smallest return), ``w_i = (R_i - v) * 1{R_i <= v} / (alpha N)``, a consistent
  (N -> inf, not unbiased at N = 16) estimator of grad CVaR_alpha. Not built from rankgrad: it is the
  classical baseline for the same goal.

**Evaluation.** Each trained policy is deployed on ``eval_episodes`` fresh episodes: mean return,
CVaR_25 (mean of the worst 25%), the tail objective's value (``rankgrad.value``), the fraction of
episodes that reach ``G`` from the bridge, and the return CDF. **Headline: the diagonal wins** -- the
mean-trained policy takes the bridge and has the best mean return; the tail-trained and Tamar policies
take the detour and have the best CVaR_25.

**Where training starts matters.** The lower-tail objectives have two local optima, all-bridge and
all-detour: a blend of routes is worse than either, because its worst quarter holds both the falls and
the slow detours (``reference["blend"]``: a 75/25 bridge/detour blend has CVaR_25 about -23, below
both pure routes). Training starts from **uniform** logits. Started near the bridge route instead
(``other_start="bridge"``: logits 2 x one-hot of the route's action; the default run trains this too
and reports it under ``other_start``), the tail and Tamar arms stay on the bridge (CVaR_25 about -20
instead of -14). From uniform, at the default settings, the tail arms reached the detour in all but
one of about 110 seeds per arm that we ran (the exception: seed 9 of the 800-update quick run, where
``cvar:0.25@4`` ended on the bridge; Tamar: none). The window is finite: with a longer cap
(``max_steps`` 120-150) a random walk reaches ``G`` mostly over the bridge, and ``cvar:0.25@4`` ends
on the bridge in about half the seeds (Tamar's estimator in 0-2 of 8); with a short cap (60), or no
cap penalty, Tamar's estimator sometimes stalls at never arriving (4 of 8 and 1 of 6 seeds). The
mean-trained policy found the bridge in every seed, from uniform and from the detour route.

Run:  ``python -m rankgrad.experiments.risk [--quick] [--seed S] [--seeds N] [--out DIR]``
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import rankgrad
from rankgrad._src.exact import softmax
from rankgrad.experiments import _common

NAME = "risk"

LAYOUT = (
    ".......",
    ".#####.",
    ".#####.",
    ".#####.",
    "S=====G",
    "CCCCCCC",
)
# Action a moves by MOVES[a] = (d_row, d_col): up, right, down, left.
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
ARMS = ("mean", "tail", "tamar")
NOTE_LOCAL_OPTIMA = (
    "The lower-tail objectives have two local optima, all-bridge and all-detour: a blend of routes is "
    "worse than either (reference.blend). Training starts from uniform logits; from there the tail arms "
    "reach the detour (all but one of ~110 seeds per arm at these settings); started near the bridge route "
    "they stay on the bridge (other_start). The window is finite: with a step cap of 120-150 instead of 90, "
    "cvar:0.25@4 ends on the bridge in about half the seeds; with a cap of 60, Tamar's estimator can stall "
    "at never arriving."
)


# --------------------------------------------------------------------------------------------------
# The environment: one vectorised transition function, used by env.step and by the batch rollouts.
# --------------------------------------------------------------------------------------------------


class BridgeWorld(gym.Env):
    """A gridworld with a short gusty bridge beside a cliff and a long safe detour (module docstring).

    Args:
      slip: probability that a move from a bridge tile is blown into the cliff.
      cliff_penalty: extra cost of entering the cliff (the agent restarts on ``S``).
      max_steps: the step cap (truncation); ``cap_penalty``: extra cost when it is hit.
      step_reward: reward of every step (-1).
      railing: deliberate moves into the cliff are blocked (only gusts push the agent off).
      layout: rows of the map (characters ``. # S = G C``; every ``=`` needs a ``C`` below it).
      render_mode: ``None`` or ``"ansi"``.

    The dynamics live in :meth:`transition`, vectorised over any array shape; :meth:`step` calls it for
    one episode with ``u = self.np_random.random()`` (exactly one uniform per step).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        slip: float = 0.02,
        cliff_penalty: float = 30.0,
        max_steps: int = 90,
        cap_penalty: float = 50.0,
        step_reward: float = -1.0,
        railing: bool = True,
        layout: tuple[str, ...] = LAYOUT,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip: a probability in [0, 1], got {slip}.")
        if max_steps < 1:
            raise ValueError(f"max_steps: at least 1, got {max_steps}.")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: None or 'ansi', got {render_mode!r}.")
        self.slip, self.cliff_penalty, self.cap_penalty = (
            float(slip),
            float(cliff_penalty),
            float(cap_penalty),
        )
        self.max_steps, self.step_reward, self.railing = int(max_steps), float(step_reward), bool(railing)
        self.render_mode, self.layout = render_mode, tuple(layout)
        self.rows, self.cols = len(self.layout), len(self.layout[0])
        if any(len(row) != self.cols for row in self.layout):
            raise ValueError("layout: all rows must have the same length.")
        grid = np.array([list(row) for row in self.layout])
        flat = grid.ravel()
        if (flat == "S").sum() != 1 or (flat == "G").sum() != 1:
            raise ValueError("layout: exactly one 'S' and one 'G'.")
        self.start, self.goal = int(np.flatnonzero(flat == "S")[0]), int(np.flatnonzero(flat == "G")[0])
        n = self.rows * self.cols
        self.is_cliff, self.is_bridge = flat == "C", flat == "="
        # next_cell[s, a]: where the intended move lands (blocked: stay). gust_cell[s]: the cell below s
        # (where a gust blows the agent; used on bridge tiles only).
        self.next_cell = np.empty((n, 4), dtype=np.int64)
        self.gust_cell = np.arange(n, dtype=np.int64)
        for s in range(n):
            r, c = divmod(s, self.cols)
            for a, (dr, dc) in enumerate(MOVES):
                r2, c2 = r + dr, c + dc
                blocked = not (0 <= r2 < self.rows and 0 <= c2 < self.cols)
                blocked = blocked or grid[r2, c2] == "#" or (self.railing and grid[r2, c2] == "C")
                self.next_cell[s, a] = s if blocked else r2 * self.cols + c2
            if self.is_bridge[s]:
                if r + 1 >= self.rows or grid[r + 1, c] != "C":
                    raise ValueError("layout: every bridge tile '=' needs a cliff 'C' below it.")
                self.gust_cell[s] = s + self.cols
        self.observation_space = spaces.Discrete(n)
        self.action_space = spaces.Discrete(4)
        self._pos, self._t = self.start, 0

    def transition(
        self, pos: np.ndarray, t: np.ndarray | int, action: np.ndarray, u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The dynamics, for arrays of episodes of any common (broadcastable) shape.

        Args:
          pos: current cells; t: steps already taken; action: 0..3; u: uniforms in [0, 1) (a gust
            blows when ``u < slip`` on a bridge tile).

        Returns:
          ``(next_pos, reward, terminated, truncated, fell)``.
        """
        pos = np.asarray(pos, dtype=np.int64)
        gust = self.is_bridge[pos] & (np.asarray(u) < self.slip)
        target = np.where(gust, self.gust_cell[pos], self.next_cell[pos, np.asarray(action, dtype=np.int64)])
        fell = self.is_cliff[target]
        terminated = target == self.goal
        truncated = (np.asarray(t) + 1 >= self.max_steps) & ~terminated
        reward = self.step_reward - self.cliff_penalty * fell - self.cap_penalty * truncated
        return np.where(fell, self.start, target), reward, terminated, truncated, fell

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        self._pos, self._t = self.start, 0
        return self._pos, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action: an int in 0..3, got {action!r}.")
        u = self.np_random.random()
        pos, reward, term, trunc, fell = self.transition(
            np.array([self._pos]), self._t, np.array([action]), u
        )
        self._pos, self._t = int(pos[0]), self._t + 1
        return self._pos, float(reward[0]), bool(term[0]), bool(trunc[0]), {"fell": bool(fell[0])}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = [list(row) for row in self.layout]
        r, c = divmod(self._pos, self.cols)
        rows[r][c] = "@"
        return "\n".join("".join(row) for row in rows) + "\n"


# --------------------------------------------------------------------------------------------------
# Batched rollouts of tabular softmax policies: R runs x E episodes at once, a loop over time steps.
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Rollouts:
    """R runs x E episodes. ``states``, ``actions``, ``alive``: ``[T, R, E]`` (None unless kept)."""

    returns: np.ndarray  # [R, E]
    bridge: np.ndarray  # [R, E] reached G from a bridge tile
    detour: np.ndarray  # [R, E] reached G from the detour side
    falls: np.ndarray  # [R, E] number of cliff falls
    states: np.ndarray | None = None
    actions: np.ndarray | None = None
    alive: np.ndarray | None = None


def rollout(
    env: BridgeWorld, probs: np.ndarray, episodes: int, rng: np.random.Generator, keep: bool
) -> Rollouts:
    """``episodes`` episodes from ``S`` for each of the R policies ``probs [R, S, A]``, all at once.

    Each step draws ``rng.random((R, E, 1))`` for the actions (inverse CDF: the first action whose
    cumulative probability exceeds the draw) and then ``rng.random((R, E))`` for the gusts.
    """
    R = probs.shape[0]
    cdf = np.cumsum(probs, axis=-1)
    cdf[..., -1] = 1.0
    run = np.arange(R)[:, None]
    pos = np.full((R, episodes), env.start, dtype=np.int64)
    done = np.zeros((R, episodes), dtype=bool)
    ret = np.zeros((R, episodes))
    bridge = np.zeros((R, episodes), dtype=bool)
    detour = np.zeros((R, episodes), dtype=bool)
    falls = np.zeros((R, episodes), dtype=np.int64)
    states, actions, alive = [], [], []
    for t in range(env.max_steps):
        action = (rng.random((R, episodes, 1)) >= cdf[run, pos]).sum(axis=-1)
        nxt, reward, term, trunc, fell = env.transition(pos, t, action, rng.random((R, episodes)))
        live = ~done
        if keep:
            states.append(pos)
            actions.append(action)
            alive.append(live)
        ret += np.where(live, reward, 0.0)
        falls += live & fell
        arrived = live & term
        bridge |= arrived & env.is_bridge[pos]
        detour |= arrived & ~env.is_bridge[pos]
        pos = np.where(live, nxt, pos)
        done = done | term | trunc
        if done.all():
            break
    if keep:
        return Rollouts(ret, bridge, detour, falls, np.stack(states), np.stack(actions), np.stack(alive))
    return Rollouts(ret, bridge, detour, falls)


def score_gradient(ro: Rollouts, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_i weights[r, i] * sum_t grad_logits log pi_r(a_t | s_t)`` for every run r: ``[R, S, A]``.

    For a softmax row, grad log pi(a | s) = onehot(a) - pi(. | s) in row s, so the sum is
    (weighted counts of (s, a)) - (weighted visits of s) * pi(. | s).
    """
    if ro.states is None or ro.actions is None or ro.alive is None:
        raise ValueError("ro: roll out with keep=True to keep the states and actions.")
    R, S, A = probs.shape
    run = np.broadcast_to(np.arange(R)[None, :, None], ro.states.shape)
    flat = ((run * S + ro.states) * A + ro.actions).ravel()
    w = (np.broadcast_to(weights[None], ro.states.shape) * ro.alive).ravel()
    counts = np.bincount(flat, weights=w, minlength=R * S * A).reshape(R, S, A)
    return counts - counts.sum(axis=-1, keepdims=True) * probs


# --------------------------------------------------------------------------------------------------
# Per-episode weights of the arms: per group, gradient = sum_i w_i grad log p(tau_i).
# --------------------------------------------------------------------------------------------------


def rankgrad_weights(returns: np.ndarray, objective: str) -> np.ndarray:
    """``(K/N) * rankgrad.advantages(returns, objective)`` for groups on the last axis ``[..., N]``."""
    k = rankgrad.parse(objective).k
    return k / returns.shape[-1] * rankgrad.advantages(returns, objective)


def empirical_var(returns: np.ndarray, alpha: float) -> np.ndarray:
    """Lower empirical alpha-quantile per group ``[..., N]``: the ceil(alpha N)-th smallest return."""
    m = max(1, math.ceil(alpha * returns.shape[-1] - 1e-9))
    return np.sort(returns, axis=-1)[..., m - 1]


def tamar_weights(returns: np.ndarray, alpha: float) -> np.ndarray:
    """Tamar et al. (2015) CVaR_alpha gradient weights per group ``[..., N]`` (lower tail of returns).

    grad CVaR_alpha ~= 1/(alpha N) * sum_i (R_i - v) 1{R_i <= v} grad log p(tau_i), where v is the
    group's empirical alpha-quantile (VaR). Returns the weights (R_i - v) 1{R_i <= v} / (alpha N).
    """
    v = empirical_var(returns, alpha)[..., None]
    return np.where(returns <= v, returns - v, 0.0) / (alpha * returns.shape[-1])


def cvar(returns: np.ndarray, q: float = 0.25) -> np.ndarray:
    """Mean of the worst ceil(q n) values on the last axis (the empirical CVaR_q of returns)."""
    m = max(1, math.ceil(q * returns.shape[-1] - 1e-9))
    return np.sort(returns, axis=-1)[..., :m].mean(axis=-1)


# --------------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    """Every knob of the study. Defaults: the full run (3 seeds x 3 arms, about 10 s on one core).

    ``tail_objective = "cvar:0.25@4"``, the mean of the bottom ceil(0.25 * 4) = 1 of 4 episodes (the
    worst of 4): the lower-quarter level we deploy on (CVaR_25) at the smallest K that expresses it,
    so its advantages are the least noisy at N = 16 (any K <= N - 1 = 15 is allowed; ``cvar:0.25@12``,
    bottom 3 of 12, is closer to CVaR_25 and also picks the detour here), and the preset of the bandit
    demo. ``max_steps`` and ``lr`` sit inside the window where the tail arms reach the detour from
    uniform (all but one of ~110 seeds per arm; module docstring).
    """

    seed: int = 0
    seeds: int = 3
    arms: tuple[str, ...] = ARMS
    tail_objective: str = "cvar:0.25@4"
    tamar_alpha: float = 0.25
    group_size: int = 16
    groups: int = 4
    updates: int = 3000
    lr: float = 0.03
    eval_episodes: int = 20_000
    curve_points: int = 31
    curve_episodes: int = 2000
    slip: float = 0.02
    cliff_penalty: float = 30.0
    max_steps: int = 90
    cap_penalty: float = 50.0
    railing: bool = True
    init: str = "uniform"
    init_strength: float = 2.0
    other_start: str | None = "bridge"

    @classmethod
    def quick(cls) -> Config:
        """The smoke-test run: one seed per arm, fewer updates and evaluation episodes (seconds)."""
        return cls(
            seeds=1, updates=800, eval_episodes=4000, curve_points=5, curve_episodes=500, other_start=None
        )

    @classmethod
    def demo(cls) -> Config:
        """The setting ``rankgrad demo`` uses: 3 seeds per arm, half the updates, 10k deployed episodes."""
        return cls(updates=1500, eval_episodes=10_000, curve_points=11, curve_episodes=1000, other_start=None)


def make_env(config: Config) -> BridgeWorld:
    """The environment a config describes."""
    return BridgeWorld(
        slip=config.slip,
        cliff_penalty=config.cliff_penalty,
        max_steps=config.max_steps,
        cap_penalty=config.cap_penalty,
        railing=config.railing,
    )


def arm_label(arm: str, config: Config) -> str:
    """What an arm trains for, as printed in the table."""
    labels = {"mean": "mean", "tail": config.tail_objective, "tamar": f"Tamar CVaR_{config.tamar_alpha:g}"}
    if arm not in labels:
        raise ValueError(f"arms: each one of {ARMS}, got {arm!r}.")
    return labels[arm]


def metrics(ro: Rollouts, tail_objective: str) -> list[dict[str, float]]:
    """Deployment metrics of each run's episodes."""
    out = []
    for r in range(ro.returns.shape[0]):
        x = ro.returns[r]
        out.append(
            {
                "mean": float(x.mean()),
                "cvar25": float(cvar(x, 0.25)),
                "tail": float(rankgrad.value(x, tail_objective)),
                "bridge_fraction": float(ro.bridge[r].mean()),
                "detour_fraction": float(ro.detour[r].mean()),
                "timeout_fraction": float((~(ro.bridge[r] | ro.detour[r])).mean()),
                "falls_per_episode": float(ro.falls[r].mean()),
            }
        )
    return out


def route_policy(env: BridgeWorld, bridge_share: float) -> np.ndarray:
    """A hand-written policy ``[S, A]`` for the default layout: at ``S`` go right (bridge) with
    probability ``bridge_share``, else up (detour); elsewhere follow the route deterministically.

    A fall puts the agent back on ``S``, where it chooses again: ``bridge_share`` is per attempt.
    """
    pi = np.zeros((env.observation_space.n, 4))
    pi[:, 1] = 1.0  # right: along row 0 and along the bridge
    for s in range(pi.shape[0]):
        r, c = divmod(s, env.cols)
        if c == 0 and r > 0:
            pi[s] = (1.0, 0.0, 0.0, 0.0)  # left column: up
        if c == env.cols - 1:
            pi[s] = (0.0, 0.0, 1.0, 0.0)  # right column: down to G
    pi[env.start] = (1.0 - bridge_share, bridge_share, 0.0, 0.0)
    return pi


def reference(
    env: BridgeWorld, episodes: int, rng: np.random.Generator, tail_objective: str
) -> dict[str, Any]:
    """Deployment metrics of the pure routes and of blends (the route drawn at ``S``), by simulation."""
    shares = (1.0, 0.0, 0.25, 0.5, 0.75)
    ro = rollout(env, np.stack([route_policy(env, b) for b in shares]), episodes, rng, keep=False)
    m = metrics(ro, tail_objective)
    return {
        "bridge": m[0],
        "detour": m[1],
        "blend": {f"{b:.2f}": x for b, x in zip(shares[2:], m[2:], strict=True)},
    }


def initial_logits(env: BridgeWorld, config: Config) -> np.ndarray:
    """Where training starts: ``"uniform"`` (all logits 0, the default), or ``"bridge"`` / ``"detour"``:
    ``init_strength`` times the one-hot of that route's action in every cell (``route_policy``), e.g.
    probability e^2 / (e^2 + 3) = 0.71 on the route's action for strength 2."""
    if config.init == "uniform":
        return np.zeros((env.observation_space.n, 4))
    if config.init in ("bridge", "detour"):
        return config.init_strength * route_policy(env, 1.0 if config.init == "bridge" else 0.0)
    raise ValueError(f"init: 'uniform', 'bridge' or 'detour', got {config.init!r}.")


def describe_start(config: Config) -> str:
    """Where training starts, in words (for the JSON)."""
    if config.init == "uniform":
        return "uniform policy: all logits 0 (tabular softmax over 4 actions in every cell)"
    return (
        f"{config.init} route: logits = {config.init_strength:g} x one-hot of the route's action in each cell"
    )


def arm_weights(arm: str, returns: np.ndarray, config: Config) -> np.ndarray:
    """Per-episode gradient weights of one arm for returns ``[..., G, N]``, averaged over the G groups."""
    if arm == "tamar":
        w = tamar_weights(returns, config.tamar_alpha)
    else:
        w = rankgrad_weights(returns, "mean" if arm == "mean" else config.tail_objective)
    return w / returns.shape[-2]


def train(config: Config, progress: bool = True) -> dict[str, Any]:
    """Train every (arm, seed) run at once, as one batch of R = arms x seeds tabular policies.

    Returns the final logits ``[R, S, A]`` and learning curves (evaluated on ``curve_episodes`` fresh
    episodes at ``curve_points`` checkpoints, update 0 = the uniform policy).
    """
    env = make_env(config)
    for arm in config.arms:
        arm_label(arm, config)
    n, G = config.group_size, config.groups
    if rankgrad.parse(config.tail_objective).k > n - 1:
        raise ValueError(f"tail_objective: K must be <= group_size - 1 = {n - 1}.")
    runs = [(arm, s) for arm in config.arms for s in range(config.seeds)]
    rows = {arm: np.array([i for i, (a, _) in enumerate(runs) if a == arm]) for arm in config.arms}
    rng = _common.seed_everything(config.seed)
    logits = np.broadcast_to(initial_logits(env, config), (len(runs), env.observation_space.n, 4)).copy()
    m1, m2 = np.zeros_like(logits), np.zeros_like(logits)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    checkpoints = np.unique(np.linspace(0, config.updates, config.curve_points).round().astype(int))
    curves: dict[str, list[np.ndarray]] = {"mean": [], "cvar25": [], "bridge": []}
    for step in _common.progress(range(config.updates + 1), desc="risk", enabled=progress):
        probs = softmax(logits)
        if step in checkpoints:
            ev = rollout(env, probs, config.curve_episodes, rng, keep=False)
            curves["mean"].append(ev.returns.mean(axis=1))
            curves["cvar25"].append(cvar(ev.returns, 0.25))
            curves["bridge"].append(ev.bridge.mean(axis=1))
        if step == config.updates:
            break
        ro = rollout(env, probs, G * n, rng, keep=True)
        weights = np.empty((len(runs), G * n))
        for arm, idx in rows.items():
            weights[idx] = arm_weights(arm, ro.returns[idx].reshape(len(idx), G, n), config).reshape(
                len(idx), -1
            )
        grad = score_gradient(ro, probs, weights)  # ascent direction
        m1 = beta1 * m1 + (1 - beta1) * grad
        m2 = beta2 * m2 + (1 - beta2) * grad**2
        t = step + 1
        logits = logits + config.lr * (m1 / (1 - beta1**t)) / (np.sqrt(m2 / (1 - beta2**t)) + eps)
    return {
        "runs": runs,
        "logits": logits,
        "checkpoints": checkpoints,
        **{f"curve_{k}": np.stack(v, axis=1) for k, v in curves.items()},  # [R, points]
    }


def _deploy(env: BridgeWorld, tr: dict[str, Any], config: Config) -> tuple[Rollouts, list[dict[str, float]]]:
    rng = np.random.default_rng([config.seed, 1])
    final = rollout(env, softmax(tr["logits"]), config.eval_episodes, rng, keep=False)
    return final, metrics(final, config.tail_objective)


def other_start(config: Config, progress: bool = True) -> dict[str, Any]:
    """The same training from ``config.other_start`` instead of uniform: the deployed table per arm."""
    cfg = dataclasses.replace(config, init=config.other_start, curve_points=1)
    env = make_env(cfg)
    tr = train(cfg, progress=progress)
    _, per_run = _deploy(env, tr, cfg)
    table = {}
    for arm in cfg.arms:
        per_seed = [per_run[i] for i, (a, _) in enumerate(tr["runs"]) if a == arm]
        row = {k: _common.mean_spread(p[k] for p in per_seed)[0] for k in ("mean", "cvar25", "tail")}
        row["bridge_fraction_per_seed"] = [p["bridge_fraction"] for p in per_seed]
        table[arm] = row
    return {
        "init": describe_start(cfg),
        "table": table,
    }


def run(config: Config, out_dir: str = _common.DEFAULT_OUT, progress: bool = True) -> dict[str, Any]:
    """Train the arms, deploy each policy, write ``risk.png`` and ``risk.json``; return the numbers.

    ``result["table"][arm]`` holds the deployed metrics averaged over seeds (``mean``, ``cvar25``,
    ``tail`` = the tail objective's value, ``bridge_fraction``); :func:`table_text` formats it. With
    ``config.other_start`` set (default ``"bridge"``), the same training is repeated from that start
    and reported under ``result["other_start"]`` (the second local optimum).
    """
    t0 = time.perf_counter()
    env = make_env(config)
    tr = train(config, progress=progress)
    t_train = time.perf_counter() - t0
    final, per_run = _deploy(env, tr, config)
    ref = reference(env, config.eval_episodes, np.random.default_rng([config.seed, 2]), config.tail_objective)
    cdf_x = np.arange(-150.0, 0.5, 1.0)
    arms: dict[str, Any] = {}
    pooled: dict[str, np.ndarray] = {}
    for arm in config.arms:
        idx = [i for i, (a, _) in enumerate(tr["runs"]) if a == arm]
        per_seed = [per_run[i] for i in idx]
        summary: dict[str, float] = {}
        for key in per_seed[0]:
            summary[key], summary[key + "_se"] = _common.mean_spread(p[key] for p in per_seed)
        pooled[arm] = final.returns[idx].ravel()
        arms[arm] = {
            "objective": arm_label(arm, config),
            **summary,
            "per_seed": per_seed,
            "curve_mean": tr["curve_mean"][idx],
            "curve_cvar25": tr["curve_cvar25"][idx],
            "curve_bridge_fraction": tr["curve_bridge"][idx],
            "cdf": {"x": cdf_x, "F": (pooled[arm][:, None] <= cdf_x[None]).mean(axis=0)},
        }
    table = {arm: {k: arms[arm][k] for k in ("mean", "cvar25", "tail", "bridge_fraction")} for arm in arms}
    results: dict[str, Any] = {
        "name": NAME,
        "config": config,
        "environment": {
            "layout": list(env.layout),
            **{
                k: getattr(env, k)
                for k in ("slip", "cliff_penalty", "max_steps", "cap_penalty", "step_reward")
            },
            "railing": env.railing,
        },
        "training_starts": describe_start(config),
        "note_local_optima": NOTE_LOCAL_OPTIMA,
        "metrics": {
            "mean": "mean return",
            "cvar25": "mean of the worst 25% of returns (CVaR_25)",
            "tail": f"rankgrad.value of {config.tail_objective} over the evaluation episodes",
            "bridge_fraction": "fraction of episodes that reach G from the bridge",
        },
        "table": table,
        "arms": arms,
        "checkpoints": tr["checkpoints"],
        "reference": ref,
        "headline": headline(table),
        "other_start": other_start(config, progress) if config.other_start else None,
        "seconds": {"train": t_train, "total": time.perf_counter() - t0},
    }
    return _common.write_outputs(out_dir, NAME, results, plot=plot)


def headline(table: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Which arm is best on each deployed metric, and whether that is the diagonal."""
    best_mean = max(table, key=lambda a: table[a]["mean"])
    best_cvar = max(table, key=lambda a: table[a]["cvar25"])
    return {
        "best_mean": best_mean,
        "best_cvar25": best_cvar,
        "diagonal_wins": best_mean == "mean" != best_cvar,
    }


# colour and line style per arm: the two tail arms end on the same policy and their curves coincide, so
# Tamar's is drawn dashed on top of the wider solid cvar line (both stay visible)
_STYLE = {"mean": ("tab:blue", "-", 1.8, 2), "tail": ("tab:red", "-", 3.2, 2),
          "tamar": ("tab:green", "--", 1.6, 3)}


def _route(d: dict[str, Any]) -> str:
    f = float(d["bridge_fraction"])
    return "the bridge" if f > 0.95 else "the detour" if f < 0.05 else f"the bridge in {f:.0%} of episodes"


def _title(arms: dict[str, Any]) -> str:
    """The figure's title: where each deployed policy goes (from the stored bridge fractions)."""
    head = "BridgeWorld: " + "; ".join(f"{d['objective']}-trained takes {_route(d)}" for d in arms.values())
    note = "Tamar's curves are drawn dashed over cvar's wider line"
    if "tail" in arms and "tamar" in arms and _route(arms["tail"]) == _route(arms["tamar"]):
        note = f"both tail policies take {_route(arms['tail'])}, so their curves nearly coincide; " + note
    return f"{head}\n({note})"


@_common.styled
def plot(results: dict[str, Any]) -> Any:
    """Learning curves (mean return, CVaR_25) and the deployed return CDF of each arm, drawn from the results
    as ``risk.json`` stores them."""
    plt = _common.pyplot()
    config = results["config"]
    x = np.asarray(results["checkpoints"], dtype=float)
    ref = results["reference"]
    fig = plt.figure(figsize=(14, 6.8))
    gs = fig.add_gridspec(2, 2, width_ratios=(1.15, 1.0))
    ax_m, ax_c, ax_f = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[:, 1])
    seeds = int(config["seeds"])
    for arm, d in results["arms"].items():
        colour, ls, lw, z = _STYLE.get(arm, ("k", "-", 1.5, 2))
        for ax, key in ((ax_m, "curve_mean"), (ax_c, "curve_cvar25")):
            y = np.asarray(d[key], dtype=float)  # [seeds, checkpoints]
            ax.plot(x, y.mean(axis=0), color=colour, ls=ls, lw=lw, zorder=z, label=d["objective"])
            if y.shape[0] > 1:
                ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=colour, alpha=0.15, lw=0)
        # the stored CDF is exact: returns are integers and the grid steps by 1
        cdf_x, cdf_f = np.asarray(d["cdf"]["x"], dtype=float), np.asarray(d["cdf"]["F"], dtype=float)
        ax_f.plot(cdf_x, cdf_f, color=colour, ls=ls, lw=lw, zorder=z, drawstyle="steps-post",
                  label=f"{d['objective']}: mean {d['mean']:.1f}, CVaR$_{{25}}$ {d['cvar25']:.1f}")
    for route, style in (("bridge", ":"), ("detour", "-.")):
        for ax, key in ((ax_m, "mean"), (ax_c, "cvar25")):
            ax.axhline(ref[route][key], color="0.45", ls=style, lw=1, zorder=1, label=f"pure {route}")
    ax_f.axhline(0.25, color="0.45", lw=0.8, ls="--",
                 label="F = 0.25: CVaR$_{25}$ averages the returns left of a curve's crossing")
    band = "; band: min–max over seeds" if seeds > 1 else ""
    ax_m.set(ylabel="mean return",
             title=f"Learning curves from {config['init']} ({_common.seeds_text(seeds)} per arm{band})")
    ax_c.set(xlabel="updates (update 0 = uniform: mean about −125, off the scale)",
             ylabel="CVaR$_{25}$ of returns")
    ax_m.set_ylim(-40, -5)
    ax_c.set_ylim(-60, -5)
    for ax in (ax_m, ax_c):
        ax.grid(alpha=0.3)
    ax_c.legend(loc="lower right", ncol=2)
    ax_f.set(
        xlabel="episode return",
        ylabel="fraction of episodes with return ≤ x",
        title=f"Deployed return CDF ({config['eval_episodes']} episodes per seed, pooled)",
        xlim=(-80, 0),
        ylim=(0, 1.01),
    )
    ax_f.grid(alpha=0.3)
    ax_f.legend(loc="center left")
    fig.suptitle(_title(results["arms"]), fontsize=11)
    fig.tight_layout()
    return fig


def table_text(results: dict[str, Any]) -> str:
    """The "objective trained for x metric deployed" table; ``*`` marks the best in each column."""
    table = results["table"]
    cols = ("mean", "cvar25", "tail")
    best = {c: max(table, key=lambda a: table[a][c]) for c in cols}
    tail = results["config"].tail_objective if isinstance(results["config"], Config) else "tail"
    lines = [f"{'trained for':<18}{'mean':>10}{'CVaR_25':>10}{tail:>14}{'bridge':>9}"]
    for arm, row in table.items():
        cells = [f"{row[c]:.2f}{'*' if best[c] == arm else ' '}" for c in cols]
        lines.append(
            f"{results['arms'][arm]['objective']:<18}{cells[0]:>10}{cells[1]:>10}{cells[2]:>14}"
            f"{row['bridge_fraction']:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.splitlines()[0], replot=True)
    p.add_argument("--seeds", type=int, default=None, help="training seeds per arm (default 3; quick: 1)")
    args = p.parse_args(argv)
    if args.replot:
        return {"png": _common.replot(args.replot, plot, NAME)}
    config = dataclasses.replace(Config.quick() if args.quick else Config(), seed=args.seed)
    if args.seeds is not None:
        config = dataclasses.replace(config, seeds=args.seeds)
    results = run(config, args.out, progress=not args.no_progress)
    print(table_text(results))
    if results.get("other_start"):
        o = results["other_start"]["table"]
        print(
            "Started near the bridge route instead of uniform: deployed bridge fraction "
            + ", ".join(
                f"{results['arms'][a]['objective']} {np.mean(o[a]['bridge_fraction_per_seed']):.2f}"
                for a in o
            )
            + " (the tail objective's second local optimum)"
        )
    files = results["files"]
    print(
        f"(* = best in column; {_common.seeds_text(config.seeds)} per arm, {config.eval_episodes} deployed "
        f"episodes each; {results['seconds']['total']:.1f} s; wrote {files['png']} and {files['json']})"
    )
    return results


if __name__ == "__main__":
    main()
