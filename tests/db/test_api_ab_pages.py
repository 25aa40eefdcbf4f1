"""The A/B test pages as Airflow's API server serves them: two tests of a model (one stopped before any evaluation,
one running with three evaluation days whose rows and reasons come from the real statistics and decision), the
list page with its filters, the test page's settings, daily table and the three charts' data parsed back from
the embedded Vega-Lite specs; the model page's link; the run tab of ``ab_test_daily``; auth (401 anonymous, 403
without read access to ``ab_test_daily``) and 404 for an unknown test."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from include.modelwatch import registry
from include.modelwatch.ab import stats
from include.modelwatch.ab import store as ab_store
from include.modelwatch.ab.decision import Evidence, TestState, decide
from include.modelwatch.api import models as m
from include.modelwatch.api import queries_ab
from include.modelwatch.data import storage
from tests.db import test_api_app as app_fixtures
from tests.db.test_api_pages import specs

airflow_app, client, tokens = app_fixtures.airflow_app, app_fixtures.client, app_fixtures.tokens
auth = app_fixtures.auth
P = "/modelwatch"
T0 = datetime(2008, 10, 1, tzinfo=UTC)
D = timedelta(days=1)
SESSIONS = [(T0 + i * D).date() for i in range(8)]
#: the running test's evaluation days: (day, sessions elapsed, paired 2x2 table, assigned arms, sessions won)
DAYS = [
    (date(2008, 10, 4), 3, (4, 1, 3, 2), (7, 4, 3, 2), (1, 2)),
    (date(2008, 10, 7), 6, (8, 2, 7, 3), (14, 8, 6, 4), (1, 4)),
    (date(2008, 10, 9), 8, (12, 2, 12, 4), (22, 12, 8, 6), (1, 6)),
]
SPLIT, ALPHA, MAX_DAYS, MIN_SAMPLES = 0.25, 0.05, 40, 20
RUN = "scheduled__2008-10-09T23:30:00+00:00"


def day_row(days_elapsed, paired, assigned, sessions, run_id) -> dict:
    """An ``ab_daily_results`` row as ``ab_test_daily`` computes it (include/tasks/ab.py): the real sequential
    test on the sessions won, the decision with its reason, the z-test and McNemar."""
    pc, ac = stats.PairedCounts(*paired), stats.ArmCounts(*assigned)
    evidence = Evidence.build(pc, ac, alpha=ALPHA, sessions=sessions)
    decision = decide(
        TestState(split=SPLIT, min_samples=MIN_SAMPLES, max_days=MAX_DAYS, days_elapsed=days_elapsed), evidence
    )
    return ab_store.day_row(
        pc,
        ac,
        evidence,
        decision,
        days_elapsed=days_elapsed,
        next_split=SPLIT,
        arm_metrics={
            "champion": {"rows": ac.n_champion, "accuracy": ac.hits_champion / ac.n_champion, "n_trades": 9},
            "challenger": {"rows": ac.n_challenger, "accuracy": ac.hits_challenger / ac.n_challenger, "sharpe": 1.25},
        },
        run_id=run_id,
    )


@pytest.fixture()
def ab(db, tmp_path):
    """Test 1 stopped before its first evaluation; test 2 (v1 against v3, split 0.25) running, its units of eight
    sessions assigned and three evaluation days recorded."""
    for i in range(3):
        registry.register_version(
            db,
            model_name="m",
            algorithm="lightgbm",
            artifact=f"v{i + 1}".encode(),
            artifact_dir=tmp_path,
            features=["f"],
            classes=["SELL", "HOLD", "BUY"],
            train_end=date(2008, 9, 1),
        )
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0 - 30 * D)
    first = ab_store.start_test(
        db, model_name="m", challenger_version=2, started_at=T0 - 10 * D, started_by="ana", reason="try v2"
    )
    ab_store.end_test(db, first, "cancelled", reason="wrong features (ana)", ended_at=T0 - 9 * D, run_id="manual__1")
    tid = ab_store.start_test(
        db,
        model_name="m",
        challenger_version=3,
        started_at=T0,
        started_by="retrain_gated",
        reason="gates passed: test v3 live",
        split=SPLIT,
        min_samples=MIN_SAMPLES,
        max_days=MAX_DAYS,
        alpha=ALPHA,
    )
    test = ab_store.get_test(db, tid)
    rows = [
        day_row(n, paired, assigned, won, RUN if day == DAYS[-1][0] else f"r{n}")
        for day, n, paired, assigned, won in DAYS
    ]
    with storage.transaction(db) as cur:
        arms = ab_store.assign_units(cur, test, [(s, d) for d in SESSIONS for s in ("SPX", "IXIC")])
        for (day, *_), row in zip(DAYS, rows, strict=True):
            ab_store.record_day(cur, tid, day, row)
    return {"first": first, "tid": tid, "arms": arms, "rows": rows}


def section(html: str, heading_id: str) -> str:
    return re.search(rf'<h2 id="{heading_id}">.*?(?=<h2 |$)', html, re.S).group(0)


def test_list_page_shows_every_test_with_its_latest_evaluation_and_filters(client, tokens, ab):
    h = auth(tokens["vera"])
    res = client.get(f"{P}/ab-testing", headers=h)
    assert res.status_code == 200, res.text
    assert f'<a href="{P}/ab-testing">A/B tests</a>' in res.text  # the nav entry
    rows = re.findall(r'<tr id="ab-test-(\d+)">(.*?)</tr>', res.text, re.S)
    assert [int(i) for i, _ in rows] == [ab["tid"], ab["first"]]  # newest first
    running, cancelled = (body for _, body in rows)
    assert f'<a href="{P}/ab-tests/{ab["tid"]}">#{ab["tid"]}</a>' in running
    assert f'<a href="{P}/models/m">m</a>' in running and '<td class="versions">v1 vs v3</td>' in running
    assert '<td class="split">0.25</td>' in running and '<td class="status ">running</td>' in running
    assert "2008-10-01 00:00 UTC" in running and "by retrain_gated" in running
    last = ab["rows"][-1]
    assert f"2008-10-09: session 8 of {MAX_DAYS}, 30 paired rows" in running
    assert f">{last['decision']}</span>" in running and "gates passed: test v3 live" in running
    assert '<td class="status muted">cancelled</td>' in cancelled and "not evaluated yet" in cancelled
    assert "wrong features (ana)" in cancelled and "2008-09-22 00:00 UTC" in cancelled  # ended
    # filters: by status, by model; an unknown status or model is refused naming the field
    res = client.get(f"{P}/ab-testing", headers=h, params={"status": "cancelled"})
    assert re.findall(r'<tr id="ab-test-(\d+)">', res.text) == [str(ab["first"])]
    assert "<option selected>cancelled</option>" in res.text
    res = client.get(f"{P}/ab-testing", headers=h, params={"status": "promoted", "model": "m"})
    assert re.findall(r'<tr id="ab-test-(\d+)">', res.text) == []
    assert "No A/B test of m with status promoted." in res.text
    res = client.get(f"{P}/ab-testing", headers=h, params={"status": "won"})
    assert res.status_code == 422 and res.json()["field"] == "status"
    res = client.get(f"{P}/ab-testing", headers=h, params={"model": "nope"})
    assert res.status_code == 422 and res.json()["field"] == "model"
    assert client.get(f"{P}/ab-testing", headers=h, params={"model": "", "status": ""}).status_code == 200


def test_test_page_settings_daily_results_and_links(client, tokens, ab):
    res = client.get(f"{P}/ab-tests/{ab['tid']}", headers=auth(tokens["vera"]))
    assert res.status_code == 200, res.text
    html = res.text
    assert f"<h1>A/B test {ab['tid']}: m v1 against v3</h1>" in html
    assert f'<a href="{P}/models/m">m</a>' in html and f'<a href="{P}/models/m#aliases">alias history</a>' in html
    assert f'<a href="{P}/ab-testing?model=m">every A/B test of m</a>' in html
    settings = re.search(r'<table id="ab-settings">.*?</table>', html, re.S).group(0)
    for cell in (
        '<td class="status ">running</td>',
        '<th>Why it started</th><td class="reason">gates passed: test v3 live</td>',
        "<td>2008-10-01 00:00 UTC by retrain_gated</td>",
        '<td class="split">0.250</td>',
        f"<td>{MIN_SAMPLES}</td>",
        f"<td>{MAX_DAYS} sessions</td>",
        f"<td>{ALPHA}</td>",
    ):
        assert cell in settings, cell
    last = ab["rows"][-1]
    assert f"Latest evaluation 2008-10-09 (session 8 of {MAX_DAYS}, 30 paired rows)" in html
    why = last["reason"].removeprefix(f"{last['decision']}: ")
    assert why != last["reason"] and "on sessions won (champion 1, challenger 6)" in why
    assert f">{last['decision']}</span>: {why}</p>" in html

    days = re.findall(r'<tr id="day-([\d-]+)">(.*?)</tr>', section(html, "days"), re.S)
    assert [d for d, _ in days] == ["2008-10-09", "2008-10-07", "2008-10-04"]  # newest first
    newest = days[0][1]
    seq = stats.sequential_paired(1, 6, ALPHA, unit=stats.UNIT_SESSION)
    for cell in (
        '<td class="sessions">8</td>',
        '<td class="paired">30</td>',
        '<td class="b">2</td>',
        '<td class="c">12</td>',
        '<td class="won">1 / 6</td>',
        f'<td class="rate-champion">{12 / 22:.3f} <span class="muted">(12/22)</span></td>',
        f'<td class="rate-challenger">{6 / 8:.3f} <span class="muted">(6/8)</span></td>',
        f'<td class="z-p">{last["z_p_value"]:.3f}</td>',
        f'<td class="mcnemar-p">{last["mcnemar_p_value"]:.3f}</td>',
        f"challenger {seq.log_lr_challenger:.2f} / champion {seq.log_lr_champion:.2f} vs {math.log(2 / ALPHA):.2f}",
        f'<td class="srm-p">{last["srm_p_value"]:.3g}</td>',
    ):
        assert cell in newest, (cell, newest)
    assert f'<td class="decision"><details><summary class="">{last["decision"]}</summary>' in newest
    assert f'<span class="muted">{why}</span></details>' in newest
    # the latest day's trading metrics per arm, as the evaluation stored them
    arms = section(html, "arms")
    assert re.search(r'<tr id="arm-champion"><td>champion</td><td>22</td><td>0\.545</td><td>9</td>', arms), arms
    assert re.search(r'<tr id="arm-challenger"><td>challenger</td><td>8</td><td>0\.750</td>.*<td>1\.25</td></tr>', arms)
    # traffic summary from the assignments
    n_chal = sum(a == "challenger" for a in ab["arms"].values())
    assert f"{16 - n_chal} units on the champion, {n_chal} on the challenger" in html
    assert f"observed\nchallenger share {n_chal / 16:.3f} against the configured split 0.250" in html


def test_test_page_charts_carry_the_days_and_the_traffic(client, tokens, ab):
    res = client.get(f"{P}/ab-tests/{ab['tid']}", headers=auth(tokens["vera"]))
    got = specs(res.text)
    assert list(got) == ["sequential", "hit-rates", "traffic"]
    # (a) the sequential test: both sides per day, recomputed from the sessions won, against log(2/alpha)
    line, rule = got["sequential"]["layer"]
    drawn = {(v["t"][:10], v["series"]): (v["log_lr"], v["wins"]) for v in line["data"]["values"]}
    expected = {}
    for day, _, _, _, (b, c) in DAYS:
        seq = stats.sequential_paired(b, c, ALPHA, unit=stats.UNIT_SESSION)
        expected[(str(day), "challenger better (log L+)")] = (seq.log_lr_challenger, c)
        expected[(str(day), "champion better (log L-)")] = (seq.log_lr_champion, b)
    assert drawn.keys() == expected.keys()
    for key, (value, wins) in expected.items():
        assert drawn[key][0] == pytest.approx(value, rel=1e-12) and drawn[key][1] == wins, key
    # the larger side is exactly what the evaluation recorded
    for (day, *_), row in zip(DAYS, ab["rows"], strict=True):
        sides = [v for (d, _), (v, _) in drawn.items() if d == str(day)]
        assert max(sides) == pytest.approx(row["seq_log_lr"], rel=1e-12)
    assert rule["mark"]["type"] == "rule" and rule["data"]["values"] == [
        {"threshold": pytest.approx(math.log(2 / ALPHA)), "series": "threshold log(2/alpha)"}
    ]
    assert line["encoding"]["y"]["title"] == "log likelihood ratio (on sessions won)"
    assert line["encoding"]["x"]["type"] == "temporal" and line["encoding"]["x"]["scale"] == {"type": "utc"}
    # (b) cumulative hit rates: the assigned arms and every paired row
    rates = {(v["t"][:10], v["series"]): (v["hits"], v["n"], v["rate"]) for v in got["hit-rates"]["data"]["values"]}
    assert rates[("2008-10-09", "champion, its assigned units")] == (12, 22, 12 / 22)
    assert rates[("2008-10-09", "challenger, its assigned units")] == (6, 8, 6 / 8)
    assert rates[("2008-10-09", "champion, every paired row")] == (14, 30, 14 / 30)
    assert rates[("2008-10-09", "challenger, every paired row")] == (24, 30, 24 / 30)
    assert rates[("2008-10-04", "challenger, its assigned units")] == (2, 3, 2 / 3)
    assert len(rates) == 4 * len(DAYS)
    # (c) traffic: units per arm and session, the observed share against the split the units were assigned with
    bars, share = got["traffic"]["vconcat"]
    per_day: dict[str, dict[str, int]] = {}
    for unit, arm in ab["arms"].items():
        per_day.setdefault(unit.split("@")[1], {"champion": 0, "challenger": 0})[arm] += 1
    assert {(v["t"][:10], v["arm"]): v["units"] for v in bars["data"]["values"]} == {
        (d, arm): n for d, counts in per_day.items() for arm, n in counts.items()
    }
    configured, observed = (layer["data"]["values"] for layer in share["layer"])
    assert [(v["t"][:10], v["share"]) for v in configured] == [(str(d), SPLIT) for d in SESSIONS]
    # the challenger's share of every unit assigned so far, session by session
    so_far = [sum(per_day[str(d)]["challenger"] for d in SESSIONS[: i + 1]) for i in range(len(SESSIONS))]
    assert [(v["t"][:10], v["challenger"], v["units"], v["share"]) for v in observed] == [
        (str(d), c, 2 * (i + 1), c / (2 * (i + 1))) for i, (d, c) in enumerate(zip(SESSIONS, so_far, strict=True))
    ]
    assert observed[-1]["share"] == n_chal_total(ab) / 16


def n_chal_total(ab) -> int:
    return sum(a == "challenger" for a in ab["arms"].values())


def test_an_unevaluated_test_and_an_unknown_one(client, tokens, ab):
    h = auth(tokens["vera"])
    res = client.get(f"{P}/ab-tests/{ab['first']}", headers=h)
    assert res.status_code == 200, res.text
    assert specs(res.text) == {}  # no day, no unit assigned: no empty chart
    assert "Not evaluated yet" in res.text and "No unit assigned yet" in res.text
    assert "No evaluation day yet." in res.text
    assert '<td class="status muted">cancelled</td>' in res.text
    assert '<th>Why it ended</th><td class="reason">wrong features (ana)</td>' in res.text
    res = client.get(f"{P}/ab-tests/999", headers=h)
    assert res.status_code == 404 and "A/B test 999 does not exist" in res.text
    assert client.get(f"{P}/ab-tests/x", headers=h).status_code == 422


def test_the_model_page_links_its_tests(client, tokens, ab):
    res = client.get(f"{P}/models/m", headers=auth(tokens["vera"]))
    assert res.status_code == 200, res.text
    tests = section(res.text, "ab-tests")
    assert re.findall(r'<a href="([^"]+)">#(\d+)</a>', tests) == [
        (f"{P}/ab-tests/{ab['tid']}", str(ab["tid"])),
        (f"{P}/ab-tests/{ab['first']}", str(ab["first"])),
    ]
    assert "v1 vs v3" in tests and "gates passed: test v3 live" in tests


def test_the_run_tab_of_ab_test_daily_opens_the_tests_it_judged(client, tokens, ab):
    h = auth(tokens["vera"])
    res = client.get(f"{P}/runs/ab_test_daily/{RUN}", headers=h, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == f"{P}/ab-tests/{ab['tid']}"
    res = client.get(f"{P}/runs/ab_test_daily/nothing", headers=h)
    assert res.status_code == 200 and "has recorded nothing ModelWatch shows" in res.text


@pytest.fixture()
def no_ab_access(monkeypatch):
    """The viewer ``vera`` loses read access to ``ab_test_daily`` (and only to it)."""
    app_fixtures.deny_dag(monkeypatch, "vera", "ab_test_daily")


def test_reading_needs_a_user_with_access_to_ab_test_daily(client, tokens, ab, no_ab_access):
    tid = ab["tid"]
    pages = [f"{P}/ab-testing", f"{P}/ab-tests/{tid}"]
    json_routes = [f"{P}/ab-tests", f"{P}/ab-tests/{tid}/compare", f"{P}/ab-tests/{tid}/traffic"]
    for url in pages + json_routes:
        assert client.get(url).status_code == 401, url
        res = client.get(url, headers=auth(tokens["vera"]))
        assert (url, res.status_code, res.json()) == (url, 403, {"detail": "Forbidden"})
        assert client.get(url, headers=auth(tokens["ada"])).status_code == 200, url
    # the model page stays readable, without the A/B tests section; the run tab of ab_test_daily is refused
    res = client.get(f"{P}/models/m", headers=auth(tokens["vera"]))
    assert res.status_code == 200 and 'id="ab-tests"' not in res.text and "v1 vs v3" not in res.text
    assert 'id="ab-tests"' in client.get(f"{P}/models/m", headers=auth(tokens["ada"])).text
    assert client.get(f"{P}/runs/ab_test_daily/{RUN}", headers=auth(tokens["vera"])).status_code == 403


def _day(seq_log_lr: float, reason: str, b: int = 2, c: int = 12) -> m.ABDay:
    return m.ABDay(
        day=date(2008, 10, 9),
        days_elapsed=8,
        matured_rows=30,
        paired={"both_right": 12, "champion_only": b, "challenger_only": c, "both_wrong": 4},
        arms={},
        n_champion=22,
        hits_champion=12,
        n_challenger=8,
        hits_challenger=6,
        z=None,
        z_p_value=None,
        mcnemar_p_value=None,
        seq_log_lr=seq_log_lr,
        seq_log_threshold=math.log(40),
        seq_decision="continue",
        srm_p_value=None,
        srm_mismatch=False,
        decision="continue",
        reason=reason,
        next_split=0.5,
        run_id=None,
    )


def test_sequential_sides_are_the_stored_ones():
    session = stats.sequential_paired(1, 6, ALPHA, unit=stats.UNIT_SESSION)
    day = _day(session.log_lr, "continue").model_copy(
        update={
            "seq_unit": "session",
            "seq_champion_wins": 1,
            "seq_challenger_wins": 6,
            "seq_log_lr_challenger": session.log_lr_challenger,
            "seq_log_lr_champion": session.log_lr_champion,
        }
    )
    assert queries_ab.sequential_sides(day) == queries_ab.SequentialSides(
        "session", 1, 6, session.log_lr_challenger, session.log_lr_champion
    )
    # a day evaluated before migration 018 stored the larger side only: nothing is made up
    assert queries_ab.sequential_sides(_day(session.log_lr, "continue")) is None
