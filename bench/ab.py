"""A/B test benchmark: how often each way of reading a champion/challenger test promotes a challenger that is
not better, how fast each finds one that is, the SRM check, and the Thompson-sampling bandit's regret.

Run from the repo root: ``.venv/bin/python -m bench.ab [--tests N]``; writes bench/results/ab.json and prints
the tables. Seeded (``--seed``), vectorised over the simulated tests with numpy; the statistics are the
library's own vectorised functions (include/modelwatch/ab/stats.py), and the decision rule mirrors
``decide()``, checked against ``decide()`` itself on the first tests of every scenario (``decide_check``).

Simulated test (:class:`Design`): every day ``rows_per_day`` rows (units: symbol x session) are scored by both
models; a row's champion hit is Bernoulli(base_rate), the challenger's Bernoulli(base_rate + lift), the two
correlated ``rho`` on the same row (a 2x2 multinomial per day). Each row is assigned to the challenger with
probability ``split`` (the hash of the real assignment is uniform). Outcomes mature ``lag`` days after their
row (the label horizon, 5 sessions): the look on day d sees the rows of days 1..d-lag. One look a day for
``days`` days; the test ends at its first decision or, without one, inconclusive on the last day.

Readings compared:

* ``seq_paired``: the always-valid paired test on every row (shadow predictions included), with ``decide()``'s
  rules (promotion needs ``min_samples`` matured paired rows and no SRM);
* ``seq_sessions``: the same test with the session as the unit (sessions won by each model; prior
  Beta(2, 2)): valid even when the rows of a session are not independent (stress table);
* ``seq_arms``: the same always-valid test on the assigned arms only, made paired by arrival order: each day
  the i-th champion-arm row is paired with the i-th challenger-arm row (independent rows; the larger arm's
  surplus of the day is dropped): exactly valid as well, but without the shadow rows and without the
  correlation of the two models on the same row;
* ``naive_z``: the predecessor's pooled two-proportion z-test on the assigned arms, every day, acting on the
  first day with p < 0.05 (promote if the challenger is ahead, stop otherwise);
* ``naive_mcnemar``: the exact McNemar test on the paired rows, every day, the same way;
* ``fixed_z`` / ``fixed_mcnemar``: one look only, on the last day (valid, no early decision).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from include.modelwatch.ab import stats as ab
from include.modelwatch.ab.decision import CONTINUE, INCONCLUSIVE, PROMOTE, STOP, Evidence, TestState, decide

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ab.json"

N_TESTS = 2000  # simulated tests per scenario
SRM_TESTS = 20_000  # SRM only needs unit counts: more tests, to resolve a 0.001 false-alarm rate
DECIDE_CHECK = 25  # tests per scenario replayed day by day through decide()
BANDIT_DRAWS = 1000  # Monte Carlo draws per Thompson split in the bandit simulation
LIFTS = (0.0, 0.02, 0.05)
PRIOR_GRID = (2.0, 10.0, 50.0, 200.0, 1000.0)
SHOCKS = (0.05, 0.10)  # session-level shock sd of the stress test (rows of a day not independent)
METHODS = ("seq_paired", "seq_sessions", "seq_arms", "naive_z", "naive_mcnemar", "fixed_z", "fixed_mcnemar")
CODE = {CONTINUE: 0, PROMOTE: 1, STOP: 2, INCONCLUSIVE: 3}


@dataclass(frozen=True)
class Design:
    rows_per_day: int = 200
    days: int = 60
    base_rate: float = 0.52
    rho: float = 0.6
    lag: int = 5
    split: float = 0.5
    min_samples: int = 1000
    alpha: float = ab.DEFAULT_ALPHA
    prior_a: float = ab.DEFAULT_PRIOR_A

    def label(self, lift: float) -> str:
        return (
            f"{self.rows_per_day} rows/day, {self.days} daily looks, outcomes mature after {self.lag} days, "
            f"hit rate {self.base_rate} champion vs {self.base_rate + lift:.2f} challenger, rho {self.rho}, "
            f"split {self.split}, min_samples {self.min_samples}, alpha {self.alpha}, prior Beta({self.prior_a:g})"
        )


def cell_probs(p0: float, p1: float, rho: float) -> np.ndarray:
    """[both right, champion only, challenger only, both wrong] for hit rates p0, p1 with correlation rho."""
    p11 = p0 * p1 + rho * math.sqrt(p0 * (1 - p0) * p1 * (1 - p1))
    cells = np.array([p11, p0 - p11, p1 - p11, 1 - p0 - p1 + p11])
    if (cells < 0).any():
        raise ValueError(f"rho {rho} is not attainable for hit rates {p0}, {p1}")
    return cells


@dataclass
class Sim:
    """Daily counts, shape (tests, days)."""

    cells: np.ndarray  # (tests, days, 4) paired cells
    n_a: np.ndarray  # rows assigned to the champion
    h_a: np.ndarray  # their champion hits
    n_b: np.ndarray  # rows assigned to the challenger
    h_b: np.ndarray  # their challenger hits
    arm_b: np.ndarray  # arrival-paired arms: champion-arm row right, challenger-arm row wrong
    arm_c: np.ndarray  # the reverse
    arm_pairs: np.ndarray


def simulate(design: Design, lift: float, n_tests: int, rng: np.random.Generator, shock_sd: float = 0.0) -> Sim:
    """``shock_sd`` > 0: a session-level shock (stress test of the independence assumption): on each day the
    challenger's share of that day's discordant rows is its usual value + u, u ~ N(0, shock_sd) (clipped to
    +-0.45), the same u for every row of the day, symmetric, so the hit rates stay equal on average."""
    probs = cell_probs(design.base_rate, design.base_rate + lift, design.rho)
    if shock_sd > 0:
        disc = probs[1] + probs[2]
        u = np.clip(rng.normal(0.0, shock_sd, size=(n_tests, design.days)), -0.45, 0.45)
        win = np.clip(probs[2] / disc + u, 0.0, 1.0)
        pv = np.broadcast_to(probs, (n_tests, design.days, 4)).copy()
        pv[..., 2] = disc * win
        pv[..., 1] = disc - pv[..., 2]
        cells = rng.multinomial(design.rows_per_day, pv)
    else:
        cells = rng.multinomial(design.rows_per_day, probs, size=(n_tests, design.days))
    to_b = rng.binomial(cells, design.split)  # per cell, the rows assigned to the challenger
    to_a = cells - to_b
    n_a, n_b = to_a.sum(axis=2), to_b.sum(axis=2)
    h_a = to_a[..., 0] + to_a[..., 1]  # champion right on champion-assigned rows
    h_b = to_b[..., 0] + to_b[..., 2]  # challenger right on challenger-assigned rows
    # arrival pairing within the day: the first m rows of each arm (m = the smaller arm), paired in order
    m = np.minimum(n_a, n_b)
    k_a = rng.hypergeometric(h_a, n_a - h_a, m)  # hits among the champion arm's first m rows
    k_b = rng.hypergeometric(h_b, n_b - h_b, m)
    both = rng.hypergeometric(k_b, m - k_b, k_a)  # pairs where both arms' rows were right
    return Sim(cells=cells, n_a=n_a, h_a=h_a, n_b=n_b, h_b=h_b, arm_b=k_a - both, arm_c=k_b - both, arm_pairs=m)


def matured(daily: np.ndarray, lag: int) -> np.ndarray:
    """Cumulative counts the look on each day sees: rows of days 1..d-lag (zero before)."""
    cum = np.cumsum(daily, axis=1)
    out = np.zeros_like(cum)
    if lag < cum.shape[1]:
        out[:, lag:] = cum[:, : cum.shape[1] - lag]
    return out


def first_decision(promote: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per test: (decision code, 1-based day) of the first look where promote or stop holds; INCONCLUSIVE on
    the last day when none does."""
    hit = promote | stop
    any_hit = hit.any(axis=1)
    idx = hit.argmax(axis=1)
    rows = np.arange(hit.shape[0])
    code = np.where(promote[rows, idx], CODE[PROMOTE], CODE[STOP])
    code = np.where(any_hit, code, CODE[INCONCLUSIVE])
    day = np.where(any_hit, idx + 1, hit.shape[1])
    return code, day


def method_signals(sim: Sim, design: Design, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(promote, stop) boolean arrays (tests, days) of one reading of the test."""
    lag = design.lag
    if method in ("seq_paired", "naive_mcnemar", "fixed_mcnemar"):
        b = matured(sim.cells[..., 1], lag)
        c = matured(sim.cells[..., 2], lag)
        if method == "seq_paired":
            up, down = ab.sequential_crossings(b, c, design.alpha, design.prior_a)
            n_pairs = matured(sim.cells.sum(axis=2), lag)
            _, srm_p = ab.srm_arrays(matured(sim.n_a, lag), matured(sim.n_b, lag), design.split)
            return up & (n_pairs >= design.min_samples) & (srm_p >= ab.SRM_P_THRESHOLD), down
        p = ab.mcnemar_p_arrays(b, c)
        promote, stop = (p < design.alpha) & (c > b), (p < design.alpha) & (b > c)
    elif method == "seq_sessions":
        # the same test with the session (day) as the unit: days won by each model (ties dropped), the flatter prior
        day_b = (sim.cells[..., 1] > sim.cells[..., 2]).astype(np.int64)
        day_c = (sim.cells[..., 2] > sim.cells[..., 1]).astype(np.int64)
        up, down = ab.sequential_crossings(
            matured(day_b, lag), matured(day_c, lag), design.alpha, ab.DEFAULT_SESSION_PRIOR_A
        )
        n_pairs = matured(sim.cells.sum(axis=2), lag)
        _, srm_p = ab.srm_arrays(matured(sim.n_a, lag), matured(sim.n_b, lag), design.split)
        return up & (n_pairs >= design.min_samples) & (srm_p >= ab.SRM_P_THRESHOLD), down
    elif method == "seq_arms":
        b, c = matured(sim.arm_b, lag), matured(sim.arm_c, lag)
        up, down = ab.sequential_crossings(b, c, design.alpha, design.prior_a)
        rows = matured(sim.n_a + sim.n_b, lag)
        return up & (rows >= design.min_samples), down
    elif method in ("naive_z", "fixed_z"):
        z, p = ab.two_proportion_z_arrays(
            matured(sim.h_a, lag), matured(sim.n_a, lag), matured(sim.h_b, lag), matured(sim.n_b, lag)
        )
        promote, stop = (p < design.alpha) & (z > 0), (p < design.alpha) & (z < 0)
    else:
        raise ValueError(method)
    if method.startswith("fixed"):  # one look, on the last day
        promote[:, :-1] = False
        stop[:, :-1] = False
    return promote, stop


def summarise(code: np.ndarray, day: np.ndarray) -> dict[str, Any]:
    n = code.size
    promoted, stopped = code == CODE[PROMOTE], code == CODE[STOP]
    decided = promoted | stopped

    def rate(mask: np.ndarray) -> dict[str, float]:
        r = float(mask.mean())
        return {"rate": r, "se": math.sqrt(r * (1 - r) / n)}

    return {
        "tests": int(n),
        "promote": rate(promoted),
        "stop": rate(stopped),
        "any_decision": rate(decided),
        "median_day_decision": float(np.median(day[decided])) if decided.any() else None,
        "median_day_promote": float(np.median(day[promoted])) if promoted.any() else None,
    }


def decide_check(sim: Sim, design: Design, code: np.ndarray, day: np.ndarray, k: int) -> dict[str, int]:
    """Replays the first ``k`` tests day by day through ``decide()`` and counts agreements with the vectorised
    ``seq_paired`` reading (same decision on the same day)."""
    lag = design.lag
    cells = np.stack([matured(sim.cells[..., j], lag) for j in range(4)], axis=2)
    n_a, n_b = matured(sim.n_a, lag), matured(sim.n_b, lag)
    h_a, h_b = matured(sim.h_a, lag), matured(sim.h_b, lag)
    agree = 0
    k = min(k, code.size)
    for i in range(k):
        got = (CODE[INCONCLUSIVE], design.days)
        for d in range(design.days):
            paired = ab.PairedCounts(*(int(x) for x in cells[i, d]))
            arms = ab.ArmCounts(int(n_a[i, d]), int(h_a[i, d]), int(n_b[i, d]), int(h_b[i, d]))
            state = TestState(
                split=design.split, min_samples=design.min_samples, max_days=design.days, days_elapsed=d + 1
            )
            decision = decide(state, Evidence.build(paired, arms, design.alpha, design.prior_a))
            if decision.final:
                got = (CODE[decision.action], d + 1)
                break
        agree += got == (int(code[i]), int(day[i]))
    return {"tests": k, "agree": agree}


def bench_readings(design: Design, n_tests: int, seed: int) -> tuple[list[dict], list[dict], dict]:
    """The false-promotion / power table for every lift and reading, the prior sensitivity, and decide_check."""
    rows, prior_rows, checks = [], [], {}
    sims = {}
    for j, lift in enumerate(LIFTS):
        sim = simulate(design, lift, n_tests, np.random.default_rng([seed, j]))
        sims[lift] = sim
        for method in METHODS:
            code, day = first_decision(*method_signals(sim, design, method))
            row = {"lift": lift, "shock_sd": 0.0, "method": method, "scenario": design.label(lift)}
            rows.append({**row, **summarise(code, day)})
            if method == "seq_paired":
                checks[f"lift_{lift}"] = decide_check(sim, design, code, day, DECIDE_CHECK)
    for k, sd in enumerate(SHOCKS):
        sim = simulate(design, 0.0, n_tests, np.random.default_rng([seed, 50 + k]), shock_sd=sd)
        for method in ("seq_paired", "seq_sessions", "naive_mcnemar", "fixed_mcnemar"):
            code, day = first_decision(*method_signals(sim, design, method))
            label = f"{design.label(0.0)}, session shock sd {sd}"
            rows.append({"lift": 0.0, "shock_sd": sd, "method": method, "scenario": label, **summarise(code, day)})
    for a in PRIOR_GRID:
        d = replace(design, prior_a=a)
        for lift, sim in sims.items():
            code, day = first_decision(*method_signals(sim, d, "seq_paired"))
            prior_rows.append({"prior_a": a, "lift": lift, **summarise(code, day)})
    return rows, prior_rows, checks


def bench_srm(design: Design, n_tests: int, seed: int) -> list[dict]:
    """False alarms of the SRM check under the configured split, and detection of a broken one. Unit counts
    only (no outcome lag): the check on day d sees d * rows_per_day assigned units."""
    out = []
    for j, actual in enumerate((design.split, design.split + 0.02)):
        rng = np.random.default_rng([seed, 100 + j])
        n_b = np.cumsum(rng.binomial(design.rows_per_day, actual, size=(n_tests, design.days)), axis=1)
        total = design.rows_per_day * np.arange(1, design.days + 1)
        _, p = ab.srm_arrays(total - n_b, n_b, design.split)
        alarm = p < ab.SRM_P_THRESHOLD
        out.append(
            {
                "configured_split": design.split,
                "actual_split": actual,
                "tests": n_tests,
                "rows_per_day": design.rows_per_day,
                "single_check_day_20": float(alarm[:, 19].mean()),
                "daily_checks_by_day_20": float(alarm[:, :20].any(axis=1).mean()),
                "single_check_day_60": float(alarm[:, design.days - 1].mean()),
                "daily_checks_by_day_60": float(alarm.any(axis=1).mean()),
            }
        )
    return out


def bench_bandit(design: Design, n_tests: int, seed: int, lifts: tuple[float, ...] = (0.05, 0.0)) -> list[dict]:
    """Regret over ``design.days`` days of a fixed split, Thompson sampling on the assigned arms' outcomes, and
    Thompson sampling on every row's outcomes of both models (the shadow predictions make them all known).
    The split of day d comes from the look on day d (outcomes of days 1..d-lag), clipped to [0.05, 0.95]."""
    out = []
    for j, lift in enumerate(lifts):
        p0, p1 = design.base_rate, design.base_rate + lift
        probs = cell_probs(p0, p1, design.rho)
        for policy in ("fixed", "thompson_arms", "thompson_shadow"):
            rng = np.random.default_rng([seed, 200 + j])
            shape = (n_tests, design.days)
            n_b, h_a, h_b = np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64)
            all_a, all_b = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
            splits = np.zeros(shape)
            for t in range(design.days):
                if policy == "fixed":
                    split = np.full(n_tests, design.split)
                else:
                    upto = max(t - design.lag + 1, 0)  # rows of day indices < upto have matured
                    if policy == "thompson_arms":
                        s_a, s_b = h_a[:, :upto].sum(1), h_b[:, :upto].sum(1)
                        m_b = n_b[:, :upto].sum(1)
                        m_a = design.rows_per_day * upto - m_b
                    else:
                        s_a, s_b = all_a[:, :upto].sum(1), all_b[:, :upto].sum(1)
                        m_a = m_b = np.full(n_tests, design.rows_per_day * upto)
                    split = ab.thompson_split_arrays(s_a, m_a, s_b, m_b, draws=BANDIT_DRAWS, rng=rng)
                cells = rng.multinomial(design.rows_per_day, probs, size=n_tests)
                to_b = rng.binomial(cells, split[:, None])
                to_a = cells - to_b
                splits[:, t] = split
                n_b[:, t] = to_b.sum(1)
                h_a[:, t] = to_a[:, 0] + to_a[:, 1]
                h_b[:, t] = to_b[:, 0] + to_b[:, 2]
                all_a[:, t] = cells[:, 0] + cells[:, 1]
                all_b[:, t] = cells[:, 0] + cells[:, 2]
            n_rows = design.rows_per_day * design.days
            n_b_tot = n_b.sum(1)
            hits = h_a.sum(1) + h_b.sum(1)
            best = max(p0, p1)
            expected_regret = (n_rows - n_b_tot) * (best - p0) + n_b_tot * (best - p1)
            # hits lost against the model that did better on the test's own rows (in hindsight)
            hindsight_regret = np.maximum(all_a.sum(1), all_b.sum(1)) - hits
            out.append(
                {
                    "lift": lift,
                    "policy": policy,
                    "tests": n_tests,
                    "rows": n_rows,
                    "expected_regret_hits": float(expected_regret.mean()),
                    "expected_regret_se": float(expected_regret.std(ddof=1) / math.sqrt(n_tests)),
                    "hindsight_regret_hits": float(hindsight_regret.mean()),
                    "hindsight_regret_se": float(hindsight_regret.std(ddof=1) / math.sqrt(n_tests)),
                    "challenger_share": float(n_b_tot.mean() / n_rows),
                    "final_split_mean": float(splits[:, -1].mean()),
                    "final_split_at_bound": float(
                        ((splits[:, -1] <= ab.SPLIT_MIN) | (splits[:, -1] >= ab.SPLIT_MAX)).mean()
                    ),
                }
            )
    return out


def run(n_tests: int = N_TESTS, srm_tests: int = SRM_TESTS, seed: int = 20240616, design: Design | None = None) -> dict:
    design = design or Design()
    t0 = time.perf_counter()
    readings, priors, checks = bench_readings(design, n_tests, seed)
    t1 = time.perf_counter()
    srm = bench_srm(design, srm_tests, seed)
    bandit = bench_bandit(design, n_tests, seed)
    t2 = time.perf_counter()
    return {
        "command": ".venv/bin/python -m bench.ab",
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "seed": seed,
        "design": asdict(design),
        "notes": (
            "rates are shares of simulated tests (se = binomial standard error); promote under lift 0 is a false "
            "promotion, stop under lift > 0 a wrong stop; days are 1-based look days (outcomes lag "
            f"{design.lag} days, so the first look with data is day {design.lag + 1}); medians over the tests "
            "that decided. seq_arms = the same always-valid test on arrival-paired assigned-arm rows. "
            "bandit regret: expected = sum over rows of (best hit rate - assigned arm's hit rate); hindsight = "
            "hits of the model that did better on the test's own rows - hits of the assigned arms."
        ),
        "readings": readings,
        "prior_sensitivity": priors,
        "decide_check": checks,
        "srm": srm,
        "bandit": bandit,
        "timings_s": {"readings": t1 - t0, "srm_and_bandit": t2 - t1},
    }


def _f(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def print_tables(result: dict) -> None:
    design = Design(**result["design"])
    names = {
        "seq_paired": "sequential paired (shadow), daily",
        "seq_sessions": "sequential paired, sessions won, daily",
        "seq_arms": "sequential, assigned arms, daily",
        "naive_z": "naive z-test, assigned arms, daily",
        "naive_mcnemar": "naive McNemar, paired, daily",
        "fixed_z": "z-test, assigned arms, last day only",
        "fixed_mcnemar": "McNemar, paired, last day only",
    }
    by = {(r["lift"], r["method"]): r for r in result["readings"] if not r["shock_sd"]}
    n = result["readings"][0]["tests"]
    print(f"\n== False promotions under no difference ({n} tests; {design.label(0.0)}) ==")
    print(f"{'reading':<40}{'promote':>14}{'any decision':>16}{'median day':>12}")
    for m in METHODS:
        r = by[(0.0, m)]
        print(
            f"{names[m]:<40}{_f(r['promote']['rate']):>8} ±{_f(r['promote']['se'])}"
            f"{_f(r['any_decision']['rate']):>10} ±{_f(r['any_decision']['se'])}"
            f"{_f(r['median_day_decision'], '.0f'):>12}"
        )
    for lift in LIFTS[1:]:
        print(f"\n== Power: challenger +{lift * 100:.0f} points ({n} tests; {design.label(lift)}) ==")
        print(f"{'reading':<40}{'promote':>14}{'wrong stop':>12}{'median day to promote':>24}")
        for m in METHODS:
            r = by[(lift, m)]
            print(
                f"{names[m]:<40}{_f(r['promote']['rate']):>8} ±{_f(r['promote']['se'])}"
                f"{_f(r['stop']['rate']):>12}{_f(r['median_day_promote'], '.0f'):>24}"
            )
    print(
        "\n== Stress: no difference on average, but a session-level shock u ~ N(0, sd) moves the challenger's share"
        " of each day's discordant rows (rows of a session not independent; otherwise as above) =="
    )
    print(f"{'reading':<40}{'shock sd':>9}{'promote':>14}{'any decision':>16}")
    for r in result["readings"]:
        if r["shock_sd"]:
            print(
                f"{names[r['method']]:<40}{r['shock_sd']:>9.2f}{_f(r['promote']['rate']):>8} ±{_f(r['promote']['se'])}"
                f"{_f(r['any_decision']['rate']):>10} ±{_f(r['any_decision']['se'])}"
            )
    print(
        f"\n== Sequential paired test: sensitivity to the Beta(a, a) prior ({n} tests per cell; otherwise as above) =="
    )
    print(
        f"{'a':>8}{'false promote (0)':>19}{'any decision (0)':>18}"
        f"{'power +2':>10}{'day +2':>8}{'power +5':>10}{'day +5':>8}"
    )
    pr = {(r["prior_a"], r["lift"]): r for r in result["prior_sensitivity"]}
    for a in PRIOR_GRID:
        r0, r2, r5 = pr[(a, 0.0)], pr[(a, 0.02)], pr[(a, 0.05)]
        mark = "  (default)" if a == design.prior_a else ""
        print(
            f"{a:>8g}{_f(r0['promote']['rate']):>19}{_f(r0['any_decision']['rate']):>18}"
            f"{_f(r2['promote']['rate']):>10}{_f(r2['median_day_promote'], '.0f'):>8}"
            f"{_f(r5['promote']['rate']):>10}{_f(r5['median_day_promote'], '.0f'):>8}{mark}"
        )
    checks = result["decide_check"]
    print(
        "decide() replayed day by day on the first tests: "
        + ", ".join(f"{k}: {v['agree']}/{v['tests']} agree" for k, v in checks.items())
    )
    s = result["srm"]
    print(
        f"\n== SRM check (chi-square, p < {ab.SRM_P_THRESHOLD:g}; {s[0]['tests']} tests, "
        f"{s[0]['rows_per_day']} units/day, "
        f"configured split {s[0]['configured_split']}) =="
    )
    print(
        f"{'actual split':<14}{'single check day 20':>21}{'daily checks to day 20':>24}"
        f"{'single day 60':>15}{'daily to day 60':>17}"
    )
    for r in s:
        print(
            f"{r['actual_split']:<14.2f}{r['single_check_day_20']:>21.4f}{r['daily_checks_by_day_20']:>24.4f}"
            f"{r['single_check_day_60']:>15.4f}{r['daily_checks_by_day_60']:>17.4f}"
        )
    b = result["bandit"]
    print(
        f"\n== Bandit: hits lost over {design.days} days x {design.rows_per_day} rows ({b[0]['tests']} tests; hit rate "
        f"{design.base_rate}, rho {design.rho}, outcomes after {design.lag} days, split clipped to "
        f"[{ab.SPLIT_MIN}, {ab.SPLIT_MAX}], {BANDIT_DRAWS} Monte Carlo draws per split) =="
    )
    print(
        f"{'lift':>6}  {'policy':<18}{'expected regret':>18}{'hindsight regret':>19}{'challenger share':>18}"
        f"{'final split':>13}{'at bound':>10}"
    )
    for r in b:
        print(
            f"{r['lift']:>+6.2f}  {r['policy']:<18}{r['expected_regret_hits']:>10.1f} ±{r['expected_regret_se']:<6.1f}"
            f"{r['hindsight_regret_hits']:>11.1f} ±{r['hindsight_regret_se']:<6.1f}{r['challenger_share']:>18.3f}"
            f"{r['final_split_mean']:>13.3f}{r['final_split_at_bound']:>10.3f}"
        )
    print(
        "(thompson_arms: Thompson on the assigned arms' outcomes; thompson_shadow: on both models' outcomes on every"
        " row. Expected regret is 0 for any policy when there is no difference.)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tests", type=int, default=N_TESTS, help="simulated tests per scenario")
    parser.add_argument("--srm-tests", type=int, default=SRM_TESTS)
    parser.add_argument("--seed", type=int, default=20240616)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = run(args.tests, args.srm_tests, args.seed)
    result["total_s"] = time.perf_counter() - t0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print_tables(result)
    print(f"\nwrote {RESULTS.relative_to(ROOT)} in {result['total_s']:.0f}s")


if __name__ == "__main__":
    main()
