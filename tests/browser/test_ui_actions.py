"""What a user does in the browser beyond reading: the "ModelWatch" tab of a DAG run, the distribution overlay of a
drift window, and the alerts-and-triggers page's actions (acknowledge, resolve, request and cancel retraining), each
checked in the monitoring DB. Runs after test_pages.py (file order), which reads the replay's state unchanged.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from tests.browser.charts import at, marks, points, wait_for_charts

MODEL = "spx_signal"
OCTOBER = datetime(2008, 10, 1, tzinfo=UTC)
PAGE = "/modelwatch/alerts-and-triggers"


def test_the_run_tab_of_a_drift_run_opens_its_window(stack, page, console, screenshot):
    """From the October 2008 drift_hourly run in the Airflow UI, the ModelWatch tab lists the windows it wrote (one
    per native model) and one click opens the direction model's window."""
    (run,) = stack.query(
        "SELECT run_id, model_version FROM drift_windows WHERE model_name = %(m)s AND window_start = %(w)s",
        {"m": MODEL, "w": OCTOBER},
    )
    page.goto(stack.url(f"/dags/drift_hourly/runs/{run['run_id']}"))
    tab = page.get_by_role("tab", name="ModelWatch").or_(page.get_by_role("link", name="ModelWatch", exact=True))
    tab.last.click()
    frame = page.frame_locator("iframe").first
    frame.get_by_role("link", name=re.compile(rf"^{MODEL} v{run['model_version']}: drift window")).click()
    heading = f"Drift: {MODEL} v{run['model_version']}, window 2008-10-01 00:00 UTC"
    expect(frame.get_by_role("heading", name=heading)).to_be_visible(timeout=30_000)
    window = next(f for f in page.frames if "/modelwatch/drift/" in f.url)
    assert window.url.endswith(f"/modelwatch/drift/{MODEL}/{run['model_version']}/2008-10-01T00%3A00%3A00Z")
    wait_for_charts(window)
    console.assert_clean("the run page's ModelWatch tab")
    screenshot("run_tab.png")


def test_the_window_overlay_shows_the_chosen_feature_against_its_reference(stack, page, console, screenshot):
    """Clicking a feature of the October window draws its window shares next to the reference's, as stored."""
    (psi,) = stack.query(
        "SELECT r.model_version, r.details -> 'window_bins' AS bins, "
        "mv.reference_profile -> 'numeric' -> 'hl_range' -> 'counts' AS ref FROM drift_results r "
        "JOIN model_versions mv ON mv.model_name = r.model_name AND mv.version = r.model_version "
        "WHERE r.model_name = %(m)s AND r.window_start = %(w)s AND r.feature = 'hl_range' AND r.test = 'psi'",
        {"m": MODEL, "w": OCTOBER},
    )
    page.goto(stack.url(f"/modelwatch/drift/{MODEL}/{psi['model_version']}/2008-10-01T00:00:00Z"))
    page.get_by_role("link", name="hl_range", exact=True).click()
    page.wait_for_url(re.compile(r"\?feature=hl_range#distribution$"))
    wait_for_charts(page)
    bars = points(marks(page, "overlay"), "rect", "share")
    assert {b["feature"] for b in bars} == {"hl_range"}  # the select filters to the chosen feature
    shown = {(b["order"], b["series"]): b["share"] for b in bars}
    window, ref = psi["bins"], psi["ref"]
    assert len(window) == len(ref) and len(shown) == 2 * len(ref)
    for i, (w, r) in enumerate(zip(window, ref, strict=True)):
        assert abs(shown[(i, "window")] - w / sum(window)) < 1e-12
        assert abs(shown[(i, "reference")] - r / sum(ref)) < 1e-12
    # October 2008: volatility far above the reference, so the window's mass sits in the top bin
    assert shown[(len(ref) - 1, "window")] > 0.5 > shown[(len(ref) - 1, "reference")]
    # the select box switches the feature without a reload
    page.locator("#overlay select").select_option("vol_5d")
    page.wait_for_function(
        "() => window.__modelwatchViews.overlay.data('data_0').length >= 0 && "
        "window.__modelwatchViews.overlay.signal('feature') === 'vol_5d'"
    )
    assert {b["feature"] for b in points(marks(page, "overlay"), "rect", "share")} == {"vol_5d"}
    console.assert_clean("the drift window page's overlay")
    page.get_by_role("link", name="hl_range", exact=True).scroll_into_view_if_needed()
    screenshot("drift_overlay.png")


def test_the_model_page_zooms_to_the_drift_episode(stack, page, console, screenshot):
    """The range link of the 2008 drift alert draws that episode only: September to December 2008 windows."""
    (alert,) = stack.query(
        "SELECT alert_id, first_window, last_window FROM alerts WHERE model_name = %(m)s AND kind = 'drift'",
        {"m": MODEL},
    )
    page.goto(stack.url(f"/modelwatch/models/{MODEL}"))
    page.get_by_role("link", name=re.compile(rf"^drift alert #{alert['alert_id']} \(critical")).click()
    page.wait_for_url(re.compile(r"\?start=2008-07-0.*#timeline$"))
    wait_for_charts(page)
    shown = sorted(at(p["t"]) for p in points(marks(page, "timeline"), "symbol", "drift_score"))
    expected = stack.query(
        "SELECT window_end FROM drift_windows WHERE model_name = %(m)s AND drift_score IS NOT NULL "
        "AND window_end >= %(a)s AND window_end < %(b)s ORDER BY window_end",
        {"m": MODEL, "a": alert["first_window"] - timedelta(days=62), "b": alert["last_window"] + timedelta(days=62)},
    )
    assert shown == [r["window_end"] for r in expected] and len(shown) >= 4
    assert all(datetime(2008, 7, 1, tzinfo=UTC) <= t <= datetime(2009, 3, 1, tzinfo=UTC) for t in shown)
    console.assert_clean("the model page's drift episode")
    screenshot("model_episode.png")


def alert_row(stack, alert_id: int) -> dict:
    return stack.query(
        "SELECT status, acknowledged_by, resolution FROM alerts WHERE alert_id = %(a)s", {"a": alert_id}
    )[0]


def test_acknowledge_and_resolve_an_alert(stack, page, console, screenshot):
    (alert,) = stack.query(
        "SELECT alert_id FROM alerts WHERE model_name = %(m)s AND kind = 'drift' AND status = 'open'", {"m": MODEL}
    )
    aid = alert["alert_id"]
    page.goto(stack.url(PAGE))
    row = page.locator(f"#alert-{aid}")
    expect(row.locator(".status")).to_have_text("open")
    screenshot("alerts.png")

    row.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#action-status")).to_have_text(f"Alert #{aid} acknowledged by admin.")
    page.wait_for_load_state("load")
    expect(page.locator(f"#alert-{aid} .status")).to_have_text("acknowledged", timeout=10_000)
    assert alert_row(stack, aid) == {"status": "acknowledged", "acknowledged_by": "admin", "resolution": None}

    # resolving asks for a note: an empty one is refused by the form and nothing changes
    row = page.locator(f"#alert-{aid}")
    row.get_by_role("button", name="Resolve").click()
    assert row.locator("input[name=note]").evaluate("el => el.validity.valueMissing")
    assert alert_row(stack, aid)["status"] == "acknowledged"
    row.locator("input[name=note]").fill("crisis volatility; retrain rejected, champion holds")
    row.get_by_role("button", name="Resolve").click()
    expect(page.locator("#action-status")).to_have_text(f"Alert #{aid} resolved by admin.")
    expect(page.locator(f"#alert-{aid} .status")).to_have_text("resolved", timeout=10_000)
    assert alert_row(stack, aid) == {
        "status": "resolved",
        "acknowledged_by": "admin",
        "resolution": "by admin: crisis volatility; retrain rejected, champion holds",
    }
    console.assert_clean("the alerts page")


def test_request_and_cancel_retraining(stack, page, console, screenshot):
    # a request on top of a pending trigger is only noted on it: start from none (a scheduled run of the stack's
    # wall-clock "today" may have raised one)
    for t in stack.query("SELECT trigger_id FROM retraining_triggers WHERE status = 'pending'"):
        status, body = stack.api("POST", f"/modelwatch/triggers/{t['trigger_id']}/cancel", {"reason": "test setup"})
        assert status == 200, body
    before = stack.query("SELECT count(*) AS n FROM retraining_triggers")[0]["n"]
    page.goto(stack.url(PAGE))
    form = page.locator("form.create")
    form.get_by_role("button", name="Request retraining").click()  # no reason: the browser refuses to submit
    assert form.locator("input[name=reason]").evaluate("el => el.validity.valueMissing")
    assert stack.query("SELECT count(*) AS n FROM retraining_triggers")[0]["n"] == before

    form.locator("select[name=model]").select_option(MODEL)
    form.locator("select[name=mode]").select_option("incremental")
    form.locator("input[name=reason]").fill("browser test: new quarter's data")
    form.get_by_role("button", name="Request retraining").click()
    expect(page.locator("#action-status")).to_have_text(re.compile(r"^Retraining requested by api:admin:"))
    (trig,) = stack.query(
        "SELECT trigger_id, status, trigger_type, retrain_mode, reason, created_by FROM retraining_triggers "
        "WHERE reason LIKE %(r)s",
        {"r": "%browser test: new quarter's data%"},
    )
    assert (trig["status"], trig["trigger_type"], trig["retrain_mode"]) == ("pending", "manual", "incremental")
    assert trig["created_by"].startswith("api:admin:")

    tid = trig["trigger_id"]
    row = page.locator(f"#trigger-{tid}")
    expect(row.locator(".status")).to_have_text("pending", timeout=10_000)
    row.locator("input[name=reason]").fill("browser test: not needed after all")
    row.get_by_role("button", name="Cancel").click()
    expect(page.locator("#action-status")).to_have_text(f"Trigger #{tid} cancelled by admin.")
    expect(page.locator(f"#trigger-{tid} .status")).to_have_text("cancelled", timeout=10_000)
    (done,) = stack.query("SELECT status, outcome FROM retraining_triggers WHERE trigger_id = %(t)s", {"t": tid})
    assert done["status"] == "cancelled" and "not needed after all" in (done["outcome"] or ""), done
    console.assert_clean("the alerts page's trigger actions")
    screenshot("alerts_after_actions.png")
