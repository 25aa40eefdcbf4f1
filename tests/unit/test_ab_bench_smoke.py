"""bench/ab.py at a tiny size, through the same functions ``python -m bench.ab`` runs (it writes nothing here)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import ab as bench
from include.modelwatch.ab.decision import INCONCLUSIVE, PROMOTE, STOP


@pytest.fixture(scope="module")
def result():
    return bench.run(n_tests=50, srm_tests=400, seed=1)


def _is_rate(x) -> bool:
    return isinstance(x, float) and 0.0 <= x <= 1.0


def test_result_structure_and_rates(result):
    readings = result["readings"]
    plain = [r for r in readings if not r["shock_sd"]]
    assert len(plain) == len(bench.LIFTS) * len(bench.METHODS)
    assert len(readings) - len(plain) == len(bench.SHOCKS) * 4
    assert {(r["lift"], r["method"]) for r in plain} == {(lift, m) for lift in bench.LIFTS for m in bench.METHODS}
    for r in readings:
        assert r["tests"] == 50
        for key in ("promote", "stop", "any_decision"):
            assert _is_rate(r[key]["rate"]) and r[key]["se"] >= 0
        assert r["any_decision"]["rate"] == pytest.approx(r["promote"]["rate"] + r["stop"]["rate"])
        assert "hit rate 0.52 champion" in r["scenario"]
    seq_null = next(r for r in plain if r["lift"] == 0.0 and r["method"] == "seq_paired")
    assert _is_rate(seq_null["promote"]["rate"])
    # the fixed-horizon readings decide on the last day only
    fixed = next(r for r in plain if r["lift"] == 0.05 and r["method"] == "fixed_mcnemar")
    assert fixed["promote"]["rate"] == 1.0 and fixed["median_day_promote"] == 60.0
    assert {r["prior_a"] for r in result["prior_sensitivity"]} == set(bench.PRIOR_GRID)
    # the vectorised decision rule is decide()'s, test for test and day for day
    for check in result["decide_check"].values():
        assert check["tests"] == 25 and check["agree"] == 25
    srm_ok, srm_broken = result["srm"]
    assert srm_ok["actual_split"] == 0.5 and srm_broken["actual_split"] == pytest.approx(0.52)
    assert all(_is_rate(srm_ok[k]) for k in ("single_check_day_20", "daily_checks_by_day_60"))
    assert {(b["lift"], b["policy"]) for b in result["bandit"]} == {
        (lift, p) for lift in (0.05, 0.0) for p in ("fixed", "thompson_arms", "thompson_shadow")
    }
    fixed_bandit = next(b for b in result["bandit"] if b["lift"] == 0.05 and b["policy"] == "fixed")
    # a 50/50 split loses about half the rows x 5 points: 12,000 / 2 x 0.05 = 300 hits
    assert abs(fixed_bandit["expected_regret_hits"] - 300) < 10


def test_first_decision_and_matured_lag():
    promote = np.array([[False, False, True], [False, False, False], [False, True, True]])
    stop = np.array([[False, True, False], [False, False, False], [False, False, False]])
    code, day = bench.first_decision(promote, stop)
    assert code.tolist() == [bench.CODE[STOP], bench.CODE[INCONCLUSIVE], bench.CODE[PROMOTE]]
    assert day.tolist() == [2, 3, 2]
    daily = np.array([[1, 2, 3, 4]])
    assert bench.matured(daily, 2).tolist() == [[0, 0, 1, 3]]


def test_tables_print_their_scenario(result, capsys):
    bench.print_tables(result)
    out = capsys.readouterr().out
    assert "False promotions under no difference (50 tests; 200 rows/day, 60 daily looks" in out
    assert "Power: challenger +2 points" in out and "Bandit: hits lost" in out and "SRM check" in out
