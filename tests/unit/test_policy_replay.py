"""Policy replay: the policies' decisions, calm and stressed months, episode detection, the comparison's targets,
the DAG form's checks and the context the replay hands the task bodies."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from include.modelwatch.decisions import TASK_DEPLOY, TASK_HUMAN, TASK_REJECT
from include.modelwatch.policy import periods, report
from include.modelwatch.policy.policies import POLICIES, after_gates, calendar_due, parse_policies
from include.tasks import policy as replay
from include.tasks.common import window
from include.tasks.forms import request, settings


def test_policies_parse_in_order_once_and_unknown_names_are_listed():
    assert [p.name for p in parse_policies("closed_loop, never,closed_loop")] == ["closed_loop", "never"]
    assert [p.name for p in parse_policies(["monthly"])] == ["monthly"]
    with pytest.raises(ValueError, match=r"unknown weekly \(known: never, monthly, quarterly, closed_loop"):
        parse_policies("never,weekly")
    with pytest.raises(ValueError, match="none given"):
        parse_policies(" , ")


def test_calendar_policies_retrain_at_the_end_of_every_nth_month():
    first = date(2007, 1, 1)
    months = [date(2007 + (i // 12), i % 12 + 1, 1) for i in range(15)]
    monthly = [m for m in months if calendar_due(POLICIES["monthly"], first, m)]
    quarterly = [f"{m:%Y-%m}" for m in months if calendar_due(POLICIES["quarterly"], first, m)]
    assert monthly == months
    assert quarterly == ["2007-03", "2007-06", "2007-09", "2007-12", "2008-03"]
    assert not any(calendar_due(POLICIES[p], first, m) for p in ("never", "closed_loop") for m in months)


def test_gates_off_deploys_whatever_the_gates_say():
    for branch in (TASK_DEPLOY, TASK_REJECT, TASK_HUMAN):
        assert after_gates(POLICIES["closed_loop"], branch) == branch
        assert after_gates(POLICIES["closed_loop_no_gates"], branch) == TASK_DEPLOY
        assert after_gates(POLICIES["monthly"], branch) == TASK_DEPLOY
    assert POLICIES["closed_loop"].responds and POLICIES["closed_loop_no_gates"].responds
    assert not POLICIES["monthly"].responds and not POLICIES["never"].responds


def _bars(symbol: str, step: float, days: pd.DatetimeIndex) -> pd.DataFrame:
    """Closes whose daily log returns alternate +step, -step."""
    rets = np.array([step if i % 2 == 0 else -step for i in range(len(days) - 1)])
    close = 100 * np.exp(np.concatenate([[0.0], np.cumsum(rets)]))
    return pd.DataFrame({"symbol": symbol, "date": days, "close": close})


def test_monthly_realized_volatility_is_the_annualized_std_of_daily_log_returns_averaged_over_symbols():
    days = pd.bdate_range("2007-01-01", "2007-02-28")
    bars = pd.concat([_bars("SPX", 0.01, days), _bars("IXIC", 0.02, days)])
    vol = periods.monthly_realized_vol(bars)
    assert list(vol.index) == ["2007-01", "2007-02"]
    # January: the returns of its sessions 2..n (the first has no previous close); alternating +-s around 0
    jan = pd.bdate_range("2007-01-01", "2007-01-31")
    n = len(jan) - 1
    mean_step = (0.01 + 0.02) / 2
    # the sample std of n alternating +-s values with mean ~ (s if n odd)/n, computed exactly
    x1 = np.array([0.01 if i % 2 == 0 else -0.01 for i in range(n)])
    expected = mean_step / 0.01 * x1.std(ddof=1) * math.sqrt(252)
    assert vol["2007-01"] == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="close -1.0 of IXIC on 2007-01-01 is not positive"):
        periods.monthly_realized_vol(bars.assign(close=np.where(bars["close"] > 0, -1.0, 0.0)))
    with pytest.raises(ValueError, match=r"lack column\(s\) \['close'\]"):
        periods.monthly_realized_vol(bars.drop(columns="close"))


def _vol(values: dict[str, float]) -> pd.Series:
    return pd.Series(values, dtype=float).sort_index()


def test_months_are_calm_up_to_the_training_p75_and_stressed_above_its_p95():
    train = {f"2005-{m:02d}": float(m) for m in range(1, 13)} | {f"2006-{m:02d}": float(12 + m) for m in range(1, 9)}
    later = {"2007-01": 15.25, "2007-02": 15.26, "2007-03": 19.05, "2007-04": 19.06}
    reg = periods.regimes(_vol(train | later), date(2005, 1, 3), date(2006, 8, 31))
    assert reg.calm_max == pytest.approx(15.25) and reg.stress_min == pytest.approx(19.05)  # of 1..20
    assert [reg.of(m) for m in later] == [periods.CALM, periods.NORMAL, periods.NORMAL, periods.STRESSED]
    assert reg.of("1990-01") == periods.NORMAL  # a month without volatility is neither
    with pytest.raises(ValueError, match=r"2005-01-03..2005-06-30: 6 month\(s\) of realized volatility"):
        periods.regimes(_vol(train), date(2005, 1, 3), date(2005, 6, 30))


def test_an_episode_counts_as_detected_by_an_alert_active_in_its_month_or_the_next():
    months = [f"{y}-{m:02d}" for y in (2008, 2009, 2010, 2011) for m in range(1, 13)]
    # alert episodes: (first window, last window)
    got = periods.detections([("2008-10", "2008-12"), ("2010-07", "2010-07"), ("2011-06", "2011-08")], months)
    assert got == {"2008-09": "2008-10", "2010-05": None, "2011-08": "2011-08"}  # 2010-07: the third window
    # an alert raised before the onset and still open on it detects it; one resolved before does not
    assert periods.detections([("2008-06", "2008-09")], months)["2008-09"] == "2008-09"
    assert periods.detections([("2008-06", "2008-08")], months)["2008-09"] is None
    assert periods.next_months("2007-12", 3) == ["2007-12", "2008-01", "2008-02"]


def test_alerts_per_quarter_are_split_by_the_regime_of_their_month():
    reg = periods.Regimes(1.0, 2.0, {"2007-01": "calm", "2007-02": "calm", "2007-03": "stressed", "2007-04": "calm"})
    months = ["2007-01", "2007-02", "2007-03", "2007-04"]
    got = periods.alerts_per_quarter({"2007-01": 1, "2007-02": 1, "2007-03": 3}, reg, months)
    assert got["calm"] == {
        "quarters": 2,
        "alerts": 2,
        "per_quarter_mean": 1.0,
        "per_quarter_max": 2,
        "quarters_over_one": ["2007-Q1"],
    }
    assert got["stressed"]["alerts"] == 3 and got["stressed"]["quarters"] == 1
    assert got["normal"] == {
        "quarters": 0,
        "alerts": 0,
        "per_quarter_mean": None,
        "per_quarter_max": None,
        "quarters_over_one": [],
    }


def _result(acc: float, retrains: int, calm_over: list[str] | None = None, missed: bool = False) -> dict:
    return {
        "evaluation": {"accuracy": acc, "start": "2009-01-01", "end": "2019-01-01"},
        "loop": {"retrains": retrains},
        "drift_alerts": {
            "per_quarter": {
                "calm": {"quarters": 10, "per_quarter_max": 2 if calm_over else 1, "quarters_over_one": calm_over or []}
            },
            "episodes_detected": {"2008-09": "2008-09", "2010-05": None if missed else "2010-06"},
        },
    }


def test_the_targets_compare_the_loop_with_monthly_and_never():
    got = report.targets({"never": _result(0.40, 0), "monthly": _result(0.42, 120), "closed_loop": _result(0.42, 40)})
    assert got["loop_vs_monthly"]["matches_or_beats_monthly"] is True
    assert got["loop_vs_monthly"]["beats_never"] is True
    assert got["loop_vs_monthly"]["at_most_a_third_of_retrains"] is True
    assert got["alerts"]["at_most_one_per_calm_quarter"] is True and got["alerts"]["all_episodes_detected"] is True
    worse = report.targets(
        {
            "never": _result(0.43, 0),
            "monthly": _result(0.42, 120),
            "closed_loop": _result(0.419, 41, calm_over=["2012-Q3"], missed=True),
        }
    )
    lv = worse["loop_vs_monthly"]
    assert not lv["matches_or_beats_monthly"] and not lv["beats_never"] and not lv["at_most_a_third_of_retrains"]
    assert worse["alerts"]["calm_quarters_over_one_alert"] == ["2012-Q3"]
    assert not worse["alerts"]["at_most_one_per_calm_quarter"] and not worse["alerts"]["all_episodes_detected"]


PARAMS = {
    "model_name": "spx_signal",
    "start": "2007-01-01",
    "end": "2009-01-01",
    "eval_start": "2008-01-01",
    "eval_end": "2009-01-01",
    "policies": ["never", "closed_loop"],
    "schedule_rules": True,
}


def test_the_dag_form_is_checked_naming_the_field():
    req = replay.Request.from_params(PARAMS)
    assert req.policies == ("never", "closed_loop") and req.conf["symbols"] == ["SPX", "IXIC"]
    assert (req.start, req.eval_end) == (date(2007, 1, 1), date(2009, 1, 1))
    for change, message in [
        ({"model_name": "mystery"}, "model_name: 'mystery' is not a native model"),
        ({"start": "2007-13-01"}, "start: '2007-13-01' is not a date"),
        ({"end": "2006-01-01"}, "end 2006-01-01 must be after start 2007-01-01"),
        ({"eval_start": "2006-01-01"}, "must lie within the replay"),
        ({"eval_end": "2007-06-01", "eval_start": "2008-01-01"}, "eval_end 2007-06-01 must be after eval_start"),
        ({"policies": ["sometimes"]}, "policies: unknown sometimes"),
    ]:
        with pytest.raises(ValueError, match=message):
            replay.Request.from_params(PARAMS | change)


def test_the_context_is_what_a_dag_run_gives_the_task_bodies():
    ws, we = datetime(2008, 9, 1, tzinfo=UTC), datetime(2008, 10, 1, tzinfo=UTC)
    ctx = replay.context("retrain_gated", "r1", ws, we, conf={"model_name": "m", "eval_sessions": 21})
    assert window(ctx) == (ws, we)
    assert request(ctx) == {"model_name": "m", "eval_sessions": 21}
    assert settings(ctx)["eval_sessions"] == 21 and settings(ctx)["embargo"] == 5
    assert ctx["dag_run"].run_after == we and ctx["dag"].dag_id == "retrain_gated"
    assert ctx["ti"].xcom_pull(task_ids="human_decision", key="response") is None


def test_schema_uris_carry_the_search_path():
    uri = replay.schema_uri("postgres://u@%2Ftmp%2Fs/mw", "policy_spx_signal_never")
    assert uri == "postgres://u@%2Ftmp%2Fs/mw?options=-csearch_path%3Dpolicy_spx_signal_never"
    from include.modelwatch.data import storage

    assert storage.parse_conn_uri(uri)["options"] == "-csearch_path=policy_spx_signal_never"
    assert replay.schema_name("spx_signal", "closed_loop_no_gates") == "policy_spx_signal_closed_loop_no_gates"


def test_no_metric_leaves_a_replay():
    from include.modelwatch.metrics import get_metrics, muted

    with muted():
        m = get_metrics()
        assert not m.enabled
        m.incr("scoring.predictions", "spx_signal", 1, "SPX", count=5)
        assert m._client is None  # recorded for the log, never sent: no statsd client was opened
    assert get_metrics() is get_metrics()  # outside: the process-wide client again
