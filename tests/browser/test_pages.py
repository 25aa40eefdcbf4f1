"""The Airflow UI's ModelWatch entry and the ModelWatch pages in headless Chromium, on the replay's real data.

Each test opens a page as a logged-in admin, waits for its charts, reads the data points Vega drew back from the
page (tests/browser/charts.py) and checks them and the page text against the monitoring DB: the October 2008 drift
episode, the live-vs-backtest band, the drift trigger's rejected retrain with its gates, the drifted features of the
October window. No console error is allowed on any page; each page leaves a screenshot.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tests.browser.charts import at, marks, points, wait_for_charts

MODEL = "spx_signal"
OCTOBER = datetime(2008, 10, 1, tzinfo=UTC)
# README, "Retraining": the gates of the drift trigger's candidates (window ending 2008-11-01)
README_GATES = {
    "lightgbm": {"performance": "fail", "business": "fail", "calibration": "fail", "stability": "pass"},
    "xgboost": {"performance": "borderline", "business": "fail", "calibration": "fail", "stability": "pass"},
}


def table_rows(page_or_frame, header: str) -> list[list[str]]:
    """Cell texts of the body rows of the (first) table whose header row has a cell ``header``."""
    table = page_or_frame.locator("table").filter(has=page_or_frame.locator("th", has_text=header)).first
    return table.evaluate("t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.innerText.trim()))")


def close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9


@pytest.fixture(scope="module")
def episode(stack):
    """The replay's drift episode, straight from the monitoring DB (and what the README says it is)."""
    windows = stack.query(
        "SELECT model_version, window_start, window_end, drift_score, level, n_drifted FROM drift_windows "
        "WHERE model_name = %(m)s AND drift_score IS NOT NULL ORDER BY window_end",
        {"m": MODEL},
    )
    alerts = stack.query(
        "SELECT alert_id, severity, status, first_window, last_window FROM alerts "
        "WHERE model_name = %(m)s AND kind = 'drift'",
        {"m": MODEL},
    )
    october = next(w for w in windows if w["window_start"] == OCTOBER)
    # as in the README's 2007-2008 replay: one drift alert, opened in September 2008, critical from October
    # (score 0.446, 15 features drifted)
    assert len(alerts) == 1 and alerts[0]["severity"] == "critical", alerts
    assert alerts[0]["first_window"] == datetime(2008, 9, 1, tzinfo=UTC), alerts
    assert october["level"] == "critical" and round(october["drift_score"], 3) == 0.446, october
    assert october["n_drifted"] == 15, october
    return {"windows": windows, "alert": alerts[0], "october": october}


@pytest.fixture(scope="module")
def retrain(stack):
    """Every trigger and training job of the model with its gate counts, and the drift trigger's jobs.

    The replay makes exactly one drift trigger (October 2008), whose retrain is rejected. A scheduled
    ``retrain_gated`` run (daily 02:00 UTC, wall clock) may also fire an ``age`` trigger when the session crosses
    02:00 UTC: the timeline then shows its retrain too, so counts below come from the DB, not from constants.
    """
    triggers = stack.query(
        "SELECT trigger_id, trigger_type, status, outcome FROM retraining_triggers WHERE model_name = %(m)s "
        "ORDER BY trigger_id",
        {"m": MODEL},
    )
    drift = [t for t in triggers if t["trigger_type"] == "drift"]
    assert len(drift) == 1, triggers  # one trigger for the whole episode
    assert (drift[0]["status"], drift[0]["outcome"]) == ("done", "rejected: business, calibration"), drift
    jobs = stack.query(
        "SELECT j.job_id, j.trigger_id, j.algorithm, j.candidate_version, "
        "count(g.id) FILTER (WHERE g.status = 'fail') AS fails, count(g.id) AS gates "
        "FROM training_jobs j LEFT JOIN quality_gate_results g USING (job_id) "
        "WHERE j.model_name = %(m)s GROUP BY j.job_id ORDER BY j.job_id",
        {"m": MODEL},
    )
    mine = [j for j in jobs if j["trigger_id"] == drift[0]["trigger_id"]]
    assert sorted(j["algorithm"] for j in mine) == ["lightgbm", "xgboost"], jobs
    gates = {
        j["job_id"]: {
            g["gate"]: g["status"]
            for g in stack.query(
                "SELECT gate, status FROM quality_gate_results WHERE job_id = %(j)s", {"j": j["job_id"]}
            )
        }
        for j in jobs
    }
    for j in mine:
        assert {k: gates[j["job_id"]].get(k) for k in README_GATES[j["algorithm"]]} == README_GATES[j["algorithm"]]
    return {"triggers": triggers, "trigger": drift[0], "jobs": jobs, "drift_jobs": mine, "gates": gates}


def drift_points(windows) -> list[tuple]:
    return sorted((w["window_end"], w["model_version"], round(w["drift_score"], 12), w["level"]) for w in windows)


def spark_of(frame, model: str) -> str:
    """The id of the drift sparkline in ``model``'s row of the fleet table (one row per active version; the
    fleet has several models), after every chart rendered."""
    ids = wait_for_charts(frame)
    chart = frame.evaluate(
        """(m) => { for (const tr of document.querySelectorAll('tr')) {
              const td = tr.querySelector('td');
              if (td && td.textContent.trim() === m) { const d = tr.querySelector('[id^="spark-"]'); return d && d.id; }
            } return null; }""",
        model,
    )
    assert chart in ids, (chart, ids)
    return chart


def test_airflow_nav_opens_the_fleet_page(stack, page, console, screenshot, episode):
    page.goto(stack.url("/"))
    nav = page.get_by_role("link", name="ModelWatch", exact=True)
    expect(nav).to_have_count(1)  # the SPA draws its nav after loading
    nav.click()
    page.wait_for_url(re.compile(r"/plugin/modelwatch$"))
    frame = page.frame_locator("iframe").first
    expect(frame.get_by_role("heading", name="ModelWatch fleet")).to_be_visible()
    expect(frame.get_by_role("link", name=MODEL)).to_have_count(1)
    fleet = next(f for f in page.frames if f.url.startswith(stack.url("/modelwatch/")))
    spark = spark_of(fleet, MODEL)
    drawn = points(marks(fleet, spark), "symbol", "drift_score")
    assert len(drawn) == sum(w["model_version"] == 1 for w in episode["windows"]) > 0
    page.wait_for_load_state("networkidle")
    console.assert_clean("the Airflow UI with the ModelWatch view")
    screenshot("airflow_nav.png")


def test_fleet_overview(stack, page, console, screenshot, episode):
    page.goto(stack.url("/modelwatch/"))
    spark = spark_of(page, MODEL)  # one sparkline per active version, of every model
    rows = [r for r in table_rows(page, "Drift score (recent windows)") if r[0] == MODEL]
    assert len(rows) == 1, rows
    row = rows[0]
    assert row[1] == "v1" and row[2] == "champion", row

    # sparkline: one point per window of v1 with a drift score: its time, score and level
    drawn = points(marks(page, spark), "symbol", "drift_score")
    v1 = [w for w in episode["windows"] if w["model_version"] == 1]
    assert sorted((at(p["t"]), 1, round(p["drift_score"], 12), p["level"]) for p in drawn) == drift_points(v1)

    # live vs baseline: the latest primary comparison of v1 with a live value (a scheduled run of the stack's
    # wall-clock day has no matured outcome: no live value)
    latest = stack.query(
        "SELECT metric, live_value, baseline_value, status FROM live_vs_backtest_comparison "
        "WHERE model_name = %(m)s AND model_version = 1 AND is_primary AND live_value IS NOT NULL "
        "ORDER BY window_end DESC LIMIT 1",
        {"m": MODEL},
    )[0]
    assert f"{latest['metric']} {latest['live_value']:.3f} vs {latest['baseline_value']:.3f}" in row[5], row
    assert f"({latest['status']})" in row[5]
    open_alerts = stack.query(
        "SELECT count(*) AS n FROM alerts WHERE model_name = %(m)s AND status = 'open'", {"m": MODEL}
    )[0]["n"]
    assert row[6] == str(open_alerts), row
    console.assert_clean("the fleet page")
    screenshot("fleet.png")


def test_model_page_timeline_and_gates(stack, page, console, screenshot, episode, retrain):
    page.goto(stack.url(f"/modelwatch/models/{MODEL}"))
    assert "timeline" in wait_for_charts(page)
    found = marks(page, "timeline")

    # drift panel: one point per window with a score (time, version, score, level), the October window critical
    drift = points(found, "symbol", "drift_score")
    assert sorted((at(p["t"]), p["version"], round(p["drift_score"], 12), p["level"]) for p in drift) == drift_points(
        episode["windows"]
    )
    oct_ = episode["october"]
    assert any(at(p["t"]) == oct_["window_end"] and p["level"] == "critical" for p in drift)
    # the alert episode shaded from its first to its last window
    (shade,) = points(found, "rect", "alert_id")
    alert = episode["alert"]
    assert (shade["alert_id"], shade["severity"], at(shade["t"]), at(shade["t2"])) == (
        alert["alert_id"],
        "critical",
        alert["first_window"],
        alert["last_window"],
    )

    # performance panel: the live primary metric with its bootstrap band, one point per comparison
    comparisons = stack.query(
        "SELECT window_end, live_value, ci_low, ci_high FROM live_vs_backtest_comparison "
        "WHERE model_name = %(m)s AND is_primary AND live_value IS NOT NULL ORDER BY window_end",
        {"m": MODEL},
    )
    assert len(comparisons) >= 5, comparisons  # one per replayed month
    live = sorted(points(found, "symbol", "live"), key=lambda p: p["t"])
    assert [at(p["t"]) for p in live] == [c["window_end"] for c in comparisons]
    for p, c in zip(live, comparisons, strict=True):
        assert close(p["live"], c["live_value"]) and close(p["ci_low"], c["ci_low"]), (p, c)
        assert close(p["ci_high"], c["ci_high"]) and p["ci_low"] <= p["live"] <= p["ci_high"], (p, c)
    # README, "Performance": 0.437 [0.302, 0.571] as of 2008-12-01 (trailing 63 entry days)
    dec = next(p for p in live if at(p["t"]) == datetime(2008, 12, 1, tzinfo=UTC))
    assert [round(dec[k], 3) for k in ("live", "ci_low", "ci_high")] == [0.437, 0.302, 0.571], dec
    (band,) = [m for m in found if m.type == "area"]
    assert band.count == len(comparisons) and band.drawn == 1, band
    baselines = {round(p["value"], 12) for p in points(found, "rule", "value") if p["series"] == "backtest baseline"}
    assert len(baselines) == 1 and 0.3 < baselines.pop() < 0.36  # the bootstrap's held-out accuracy, 0.329

    # event markers: every trigger, retrain and rejection of the DB, the drift trigger's among them
    per_panel = [m.data for m in found if m.type == "rule" and m.data and "kind" in m.data[0]]
    assert len(per_panel) == 2 and per_panel[0] == per_panel[1], per_panel  # the same markers on both panels
    events = per_panel[0]
    kinds = [p["kind"] for p in events]
    assert kinds.count("trigger") == len(retrain["triggers"]), kinds
    assert kinds.count("retrain") == len(retrain["jobs"]), kinds
    assert kinds.count("rejection") == sum(j["fails"] > 0 for j in retrain["jobs"]), kinds
    tid = retrain["trigger"]["trigger_id"]
    assert any(p["label"] == f"trigger #{tid} drift (done)" for p in events), events
    for job in retrain["drift_jobs"]:
        assert any(p["label"].startswith(f"job #{job['job_id']} rejected: ") for p in events), events

    # the gate table: per job its candidate and every gate with the DB's status
    gates = table_rows(page, "Gate status")
    for job in retrain["jobs"]:
        mine = [r for r in gates if r[0] == f"#{job['job_id']}"]
        assert len(mine) == job["gates"], (job, mine)
        assert {r[5]: r[6] for r in mine} == retrain["gates"][job["job_id"]], (job, mine)
        assert all(r[2] == job["algorithm"] and r[4] == f"v{job['candidate_version']}" for r in mine), mine
    console.assert_clean("the model page")
    screenshot("model.png")


def test_drift_window_page_of_october_2008(stack, page, console, screenshot, episode):
    page.goto(stack.url(f"/modelwatch/models/{MODEL}"))
    oct_ = episode["october"]
    link = page.locator(f'a[href*="/drift/{MODEL}/{oct_["model_version"]}/2008-10-01T00"]').first
    expect(link).to_be_visible()
    link.click()
    page.wait_for_url(re.compile(r"/modelwatch/drift/spx_signal/1/2008-10-01"))
    charts = wait_for_charts(page)
    console.assert_clean("the model page and the drift window it links to")

    drifted_db = {
        r["feature"]: r
        for r in stack.query(
            "SELECT feature, statistic FROM drift_results WHERE model_name = %(m)s AND model_version = %(v)s "
            "AND window_start = %(w)s AND kind = 'feature' AND drifted AND test = 'ks'",
            {"m": MODEL, "v": oct_["model_version"], "w": OCTOBER},
        )
    }
    rows = table_rows(page, "Statistic")
    shown = {r[1]: r for r in rows if r[0] == "feature" and r[7] == "yes"}
    assert set(shown) == set(drifted_db)
    for feature, r in shown.items():
        assert r[2] == "ks" and r[3] == f"{drifted_db[feature]['statistic']:.4f}", r
    # README: "15 features drifted, led by hl_range, vol_5d, atr_14_pct and vol_21d with KS 0.81-0.97"; the table
    # lists the drifted features first, most severe first: hl_range and vol_5d (severity 100) lead it
    assert [r[1] for r in rows[:2]] == ["hl_range", "vol_5d"] and float(rows[0][6]) == 100.0, rows[:2]
    lead = [shown[f] for f in ("hl_range", "vol_5d", "atr_14_pct", "vol_21d")]
    assert all(0.805 <= float(r[3]) < 0.975 for r in lead), lead
    summary = page.locator("p", has_text="drifted").first.inner_text()
    assert f"drift score {oct_['drift_score']:.3f}" in summary and f"{oct_['n_drifted']} drifted" in summary

    # the heatmap: one cell per (feature, window) of v1, the October window's drifted features among them
    assert "heatmap" in charts
    n_cells = stack.query(
        "SELECT count(DISTINCT (window_start, feature)) AS n FROM drift_results "
        "WHERE model_name = %(m)s AND model_version = %(v)s AND kind = 'feature'",
        {"m": MODEL, "v": oct_["model_version"]},
    )[0]["n"]
    heat = points(marks(page, "heatmap"), "rect", "severity")
    assert len(heat) == n_cells
    assert {p["feature"] for p in heat if at(p["t"]) == OCTOBER and p["drifted"]} == set(drifted_db)
    console.assert_clean("the drift window page")
    screenshot("drift_window.png")
