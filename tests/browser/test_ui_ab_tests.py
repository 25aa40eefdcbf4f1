"""The A/B test pages in the browser, on a test run through the real DAGs of the stack.

The replay has no A/B test of its own, so the module starts one as an operator would (README, "A/B tests"): the
October 2008 drift trigger's XGBoost candidate, rejected by its gates, is registered again as a new version (its
artifact, byte for byte), ``python -m include.modelwatch ab start`` tests it against the champion from October 2008,
and ``python -m include.modelwatch replay --stages score_signals ab_test_daily --run-prefix ...`` re-runs October
to December with both arms scored and the test judged each month; ``ab stop`` then cancels it (so no scheduled
run of the wall clock's today judges it again). The pages are then read in Chromium: the nav entry, the list, the
test page's settings, daily table and three charts (the data points Vega drew, checked against the monitoring DB),
and the model page's link; no console error on any of them.

Runs after test_pages.py (file order), which reads the replay's state unchanged; it leaves the cancelled test, the
challenger version and its predictions behind (the champion and its alias stay; the files after this one read what
they need from the DB).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.charts import at, marks, points, wait_for_charts

MODEL = "spx_signal"
ROOT = Path(__file__).resolve().parents[2]
REASON = "browser test: the October 2008 XGBoost candidate, live"
BY = "browser-test"  # the CLI records cli:<by> as the test's starter
STOPPED = "browser test: the replay is over"
START, END = "2008-10-01", "2009-01-01"
PREFIX = "abtest-browser"


def cli(stack, *args: str, timeout: float = 1200) -> str:
    """``python -m include.modelwatch ...`` against the stack's monitoring DB / API; fails with its output."""
    res = subprocess.run(
        [sys.executable, "-m", "include.modelwatch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "AIRFLOW_CONN_MONITORING_DB": stack.monitoring_uri},
    )
    assert res.returncode == 0, f"{args}: exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def ab_test(stack):
    """The test (row of ``ab_tests``), its daily results and assignments per session, after the replay."""
    from include.modelwatch import registry
    from include.modelwatch.data import storage

    mine = "SELECT * FROM ab_tests WHERE model_name = %(m)s AND started_by = %(by)s"
    if not stack.query(mine, {"m": MODEL, "by": f"cli:{BY}"}):  # (a stack kept from an earlier session has it)
        (candidate,) = stack.query(
            "SELECT j.candidate_version AS v FROM training_jobs j JOIN retraining_triggers t USING (trigger_id) "
            "WHERE t.model_name = %(m)s AND t.trigger_type = 'drift' AND j.algorithm = 'xgboost'",
            {"m": MODEL},
        )
        with storage.session(stack.monitoring_uri) as conn:
            mv = registry.get_version(conn, MODEL, candidate["v"])
            assert mv.status == "rejected", mv  # what the gates said; an A/B test refuses it as it is
            copy = registry.register_version(
                conn,
                model_name=MODEL,
                algorithm=mv.algorithm,
                artifact=registry.read_artifact(mv),
                artifact_dir=mv.artifact_url.rsplit("/", 3)[0],  # <store>/<model>/v<N>/model.bin
                features=list(mv.features),
                classes=list(mv.classes),
                horizon_days=mv.horizon_days,
                train_start=mv.train_start,
                train_end=mv.train_end,
                run_id="browser-test",
            )
        out = cli(
            stack, "ab", "start", MODEL, "--challenger", str(copy.version), "--min-samples", "20", "--max-days", "250",
            "--reason", REASON, "--at", f"{START}T00:00:00+00:00", "--by", BY,
        )  # fmt: skip
        assert f"challenger v{copy.version}" in out, out
        out = cli(
            stack, "replay", "--url", stack.base_url, "--start", START, "--end", END,
            "--stages", "score_signals", "ab_test_daily", "--run-prefix", PREFIX,
        )  # fmt: skip
        assert "ab_test_daily: {'success': 3}" in out, out
        (test,) = stack.query(mine, {"m": MODEL, "by": f"cli:{BY}"})
        if test["status"] == "running":  # ended, no scheduled run of the wall clock's today can judge it again
            out = cli(stack, "ab", "stop", str(test["test_id"]), "--reason", STOPPED, "--at", f"{END}T00:00:00+00:00",
                      "--by", BY)  # fmt: skip
            assert f"A/B test {test['test_id']} of {MODEL} cancelled" in out, out
    (test,) = stack.query(mine, {"m": MODEL, "by": f"cli:{BY}"})
    days = stack.query(
        "SELECT day, days_elapsed, matured_rows, champion_only, challenger_only, n_champion, hits_champion, "
        "n_challenger, hits_challenger, seq_log_lr, seq_log_threshold, decision FROM ab_daily_results "
        "WHERE test_id = %(t)s ORDER BY day",
        {"t": test["test_id"]},
    )
    sessions = stack.query(
        "SELECT session_date, count(*) FILTER (WHERE arm = 'champion') AS champion, "
        "count(*) FILTER (WHERE arm = 'challenger') AS challenger FROM ab_assignments WHERE test_id = %(t)s "
        "GROUP BY session_date ORDER BY session_date",
        {"t": test["test_id"]},
    )
    # the replay judged the test once a month on the outcomes matured by then; units of every replayed session
    assert [str(d["day"]) for d in days] == ["2008-11-01", "2008-12-01", "2009-01-01"], days
    assert days[-1]["matured_rows"] > 0 and len(sessions) >= 60, (days, len(sessions))
    assert (test["status"], test["reason"]) == ("cancelled", f"{STOPPED} (cli:{BY})"), test
    return {"test": test, "days": days, "sessions": sessions}


def table_rows(page, header: str) -> list[list[str]]:
    table = page.locator("table").filter(has=page.locator("th", has_text=header)).first
    return table.evaluate("t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.innerText.trim()))")


def test_the_list_and_a_test_page_with_its_charts(stack, page, console, screenshot, ab_test):
    test, days, sessions = ab_test["test"], ab_test["days"], ab_test["sessions"]
    tid = test["test_id"]
    page.goto(stack.url("/modelwatch/"))
    page.get_by_role("link", name="A/B tests", exact=True).click()
    page.wait_for_url(re.compile(r"/modelwatch/ab-testing$"))
    row = page.locator(f"#ab-test-{tid}")
    expect(row.locator(".versions")).to_have_text(f"v{test['champion_version']} vs v{test['challenger_version']}")
    expect(row.locator(".status")).to_have_text(test["status"])
    expect(row.locator(".split")).to_have_text(f"{test['split']:.2f}")
    last = days[-1]
    expect(row.locator(".latest")).to_contain_text(
        f"{last['day']}: session {last['days_elapsed']} of {test['max_days']}, {last['matured_rows']} paired rows, "
        f"{last['decision']}"
    )
    expect(row.locator(".reason")).to_have_text(test["reason"])
    console.assert_clean("the A/B tests page")
    screenshot("ab_tests.png")

    row.get_by_role("link", name=f"#{tid}").click()
    page.wait_for_url(re.compile(rf"/modelwatch/ab-tests/{tid}$"))
    assert wait_for_charts(page) == ["sequential", "hit-rates", "traffic"]
    console.assert_clean("the A/B test page")
    settings = dict(table_rows(page, "Why it ended"))
    assert settings["Status"] == "cancelled" and settings["Why it ended"] == test["reason"], settings
    assert settings["Ended (UTC)"] == "2009-01-01 00:00 UTC" and settings["Started (UTC)"].startswith("2008-10-01")

    # (a) the sequential test: per day both sides (or the recorded statistic); the larger one is the DB's; the
    # dashed threshold at log(2/alpha)
    seq = marks(page, "sequential")
    drawn = points(seq, "symbol", "log_lr")
    by_day: dict = {}
    for p in drawn:
        by_day.setdefault(at(p["t"]).date(), []).append(p)
    assert sorted(by_day) == [d["day"] for d in days]
    for d in days:
        mine = by_day[d["day"]]
        assert math.isclose(max(p["log_lr"] for p in mine), d["seq_log_lr"], rel_tol=1e-9), (d, mine)
        assert {p["series"] for p in mine} == {"challenger better (log L+)", "champion better (log L-)"}, mine
    (threshold,) = points(seq, "rule", "threshold")
    assert math.isclose(threshold["threshold"], math.log(2 / test["alpha"])) and math.isclose(
        threshold["threshold"], days[-1]["seq_log_threshold"]
    )
    # (b) cumulative hit rates of the assigned arms, as recorded
    rates = {(at(p["t"]).date(), p["series"]): p for p in points(marks(page, "hit-rates"), "symbol", "rate")}
    for d in days:
        for arm in ("champion", "challenger"):
            if d[f"n_{arm}"]:
                p = rates[(d["day"], f"{arm}, its assigned units")]
                assert (p["hits"], p["n"]) == (d[f"hits_{arm}"], d[f"n_{arm}"]), p
    # (c) traffic: one bar per arm and session with the units assigned, the share against the configured split
    traffic = marks(page, "traffic")
    bars = points(traffic, "rect", "units")
    assert sorted((at(b["t"]).date(), b["arm"], b["units"]) for b in bars) == sorted(
        (s["session_date"], arm, s[arm]) for s in sessions for arm in ("champion", "challenger")
    )
    split = [p for p in points(traffic, "line", "share") if p["series"] == "configured split"]
    assert len(split) == len(sessions) and {round(p["share"], 9) for p in split} == {round(test["split"], 9)}
    observed = sorted(points(traffic, "symbol", "challenger"), key=lambda p: p["t"])
    total = sum(s["champion"] + s["challenger"] for s in sessions)
    assert (observed[-1]["challenger"], observed[-1]["units"]) == (sum(s["challenger"] for s in sessions), total)

    # the daily table, newest first, with the DB's counts
    rows = table_rows(page, "b: champion only right")
    assert [r[0] for r in rows] == [str(d["day"]) for d in reversed(days)]
    assert rows[0][1:5] == [
        str(last["days_elapsed"]),
        str(last["matured_rows"]),
        str(last["champion_only"]),
        str(last["challenger_only"]),
    ], rows[0]
    # README, "Pages": undecided on 2009-01-01 after 64 sessions and 118 paired rows, sessions won 10 / 7,
    # log-LR -1.34 (challenger) / -0.25 (champion) against 3.69
    assert (rows[0][0], rows[0][1], rows[0][2], rows[0][5]) == ("2009-01-01", "64", "118", "10 / 7"), rows[0]
    assert rows[0][10].startswith("challenger -1.34 / champion -0.25 vs 3.69"), rows[0]
    screenshot("ab_test.png")

    # back to the model, whose page lists the test
    page.get_by_role("link", name=MODEL, exact=True).first.click()
    page.wait_for_url(re.compile(rf"/modelwatch/models/{MODEL}$"))
    expect(page.locator("#ab-tests + table").get_by_role("link", name=f"#{tid}")).to_have_count(1)
    wait_for_charts(page)
    console.assert_clean("the model page with its A/B tests")
