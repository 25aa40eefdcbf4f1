"""The Grafana dashboard (observability/grafana) end to end: every panel query returns data.

Grafana is not installable here, so the queries run against what Grafana would send them to: the real
Prometheus (Debian ``prometheus``; ``make rules`` installs it when missing) scraping the real exporter and
node-exporter every second while score_signals, drift_hourly and performance_daily run on 2008, and the
monitoring database for the SQL panels (Grafana's macros expanded as its PostgreSQL datasource does).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.modelwatch.data import storage
from include.modelwatch.observability import collector
from tests.e2e import services
from tests.e2e.conftest import rows as _rows
from tests.e2e.conftest import run_window

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "observability" / "grafana"
DASHBOARD = GRAFANA / "modelwatch_dashboard.json"

PANELS = {
    "Trading performance overview": ("stat", "prometheus"),
    "Model drift": ("timeseries", "prometheus"),
    "Scoring latency p95/p99": ("timeseries", "prometheus"),
    "Retraining & active-learning queue": ("timeseries", "prometheus"),
    "Performance by model": ("table", "modelwatch-postgres"),
    "System health": ("timeseries", "prometheus"),
    "Signals over time": ("timeseries", "modelwatch-postgres"),
    "Portfolio performance": ("timeseries", "modelwatch-postgres"),
}
#: what the dashboard's variables are set to: the bootstrapped champion over all symbols
VARIABLES = {"model": "spx_signal", "symbol": "*"}
#: the time range of the SQL panels: the replayed 2008 (Grafana's from/to)
RANGE = (datetime(2008, 1, 1, tzinfo=UTC), datetime(2009, 1, 1, tzinfo=UTC))
MONTHS = ("2008-08-01", "2008-09-01", "2008-10-01", "2008-11-01")
OCT = ("2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00")


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _targets(ds_uid: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in _dashboard()["panels"] for t in p["targets"] if t["datasource"]["uid"] == ds_uid]


# ----------------------------------------------------------------------------------- structure (no services)


def test_dashboard_structure_matches_the_provisioned_datasources():
    d = _dashboard()
    assert d["uid"] == "modelwatch-overview" and d["refresh"] == "30s" and d["title"] == "ModelWatch"
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/modelwatch.yml").read_text())["datasources"]
    uids = {ds["uid"]: ds["type"] for ds in provisioned}
    assert uids == {"prometheus": "prometheus", "modelwatch-postgres": "grafana-postgresql-datasource"}
    assert provisioned[0]["url"] == "http://127.0.0.1:9090"
    pg = provisioned[1]
    assert (pg["url"], pg["user"], pg["jsonData"]["database"], pg["secureJsonData"]["password"]) == (
        "${MODELWATCH_PG_HOST}",
        "${MODELWATCH_PG_USER}",
        "${MODELWATCH_PG_DB}",
        "${MODELWATCH_PG_PASSWORD}",
    )
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/modelwatch.yml").read_text())["providers"]
    assert [(p["type"], p["options"]["path"]) for p in providers] == [("file", "${MODELWATCH_GRAFANA_DASHBOARDS}")]

    assert {p["title"]: (p["type"], p["datasource"]["uid"]) for p in d["panels"]} == PANELS
    assert sorted(p["id"] for p in d["panels"]) == list(range(1, 9))
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        assert p["targets"] and len({t["refId"] for t in p["targets"]}) == len(p["targets"])
        for t in p["targets"]:
            assert t["datasource"] == {"type": uids[p["datasource"]["uid"]], "uid": p["datasource"]["uid"]}
            assert ("expr" in t) == (t["datasource"]["uid"] == "prometheus"), (p["title"], t)
            assert ("rawSql" in t) == (t["datasource"]["uid"] == "modelwatch-postgres"), (p["title"], t)
            if "rawSql" in t:
                assert t["rawQuery"] and t["format"] in ("table", "time_series")
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert set(variables) == {"model", "symbol"}
    for name, v in variables.items():
        assert v["type"] == "query" and v["datasource"]["uid"] == "prometheus"
        assert v["query"].startswith("label_values(") and v["query"].endswith(f", {name})")
        assert v["current"]["value"] == VARIABLES[name]


def test_committed_json_is_the_builders_output():
    """build.py (grafana-foundation-sdk) is the source: the committed JSON must be what it writes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("modelwatch_grafana_build", GRAFANA / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert build.render() == DASHBOARD.read_text(), "run: python observability/grafana/build.py"


# -------------------------------------------------------------------------------------- live services


@pytest.fixture()
def prometheus_stack(monitoring_uri, tmp_path) -> Iterator[str]:
    """The exporter, node-exporter and Prometheus scraping both every second (tests/e2e/services.py)."""
    with services.prometheus(monitoring_uri, tmp_path) as base:
        yield base


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    got = services.get_json(f"{base}/api/v1/query", {"query": expr})
    assert got["status"] == "success", (expr, got)
    data = got["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    assert data["resultType"] == "vector", (expr, data)
    return list(data["result"])


def _finite(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in series if math.isfinite(float(s["value"][1]))]


def _promql(expr: str) -> str:
    """A panel's PromQL as Grafana sends it: variables substituted, $__rate_interval and $__interval 1m."""
    for name, value in VARIABLES.items():
        expr = expr.replace(f"${name}", value)
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    assert "$" not in expr, expr
    return expr


def _sql(raw: str) -> str:
    """A panel's SQL as Grafana's PostgreSQL datasource expands it for the time range RANGE."""
    frm, to = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in RANGE)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{frm}' AND '{to}'", raw)
    sql = re.sub(r"\$__timeGroupAlias\(([^,]+), '1d'\)", r'floor(extract(epoch from \1)/86400)*86400 AS "time"', sql)
    for name, value in VARIABLES.items():
        sql = sql.replace(f"${name}", value)
    assert "$" not in sql, sql
    return sql


def _families(expr: str) -> set[str]:
    """The metric families an expression reads (counter/histogram sample suffixes stripped)."""
    names = set(re.findall(r"\b(modelwatch_[a-z0-9_]+)", expr))
    return {re.sub(r"_(total|bucket|sum|count)$", "", n) if n not in collector.DOCS else n for n in names}


def test_every_panel_query_returns_data(champion, monitoring_uri, prometheus_stack):
    base = prometheus_stack
    conn = storage.connect(monitoring_uri)
    t0 = time.monotonic()
    # scored while Prometheus scrapes: the scoring histogram grows between scrapes (the latency panel's increase)
    for start, end in zip(MONTHS, MONTHS[1:], strict=False):
        assert run_window("score_signals", f"{start}T00:00:00+00:00", f"{end}T00:00:00+00:00").state == "success"
    assert run_window("drift_hourly", *OCT).state == "success"
    assert run_window("performance_daily", *OCT).state == "success"
    dags_s = time.monotonic() - t0
    live = _rows(
        conn,
        "SELECT win_rate, accuracy FROM live_performance_daily WHERE model_name = 'spx_signal' AND symbol = '*' "
        "AND window_end = %s",
        (OCT[1],),
    )
    assert len(live) == 1 and live[0]["win_rate"] is not None
    # the scrape after the last write: the newest live metrics are in Prometheus
    services.wait_for(
        "the newest live metrics scraped",
        lambda: [s for s in _query(base, 'modelwatch_win_rate{symbol="*"}') if s["metric"]["model"] == "spx_signal"],
    )
    time.sleep(2)  # and a couple more scrapes

    # the variables' label_values queries, as Grafana asks them (/api/v1/label/<label>/values?match[]=...)
    for v in _dashboard()["templating"]["list"]:
        metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"]).groups()  # type: ignore[union-attr]
        got = services.get_json(f"{base}/api/v1/label/{label}/values", {"match[]": _promql(metric)})["data"]
        assert VARIABLES[v["name"]] in got, (v["name"], got)

    with_data: dict[str, int] = {}
    for title, t in _targets("prometheus"):
        expr = _promql(t["expr"])
        series = _query(base, expr)
        assert not _families(expr) - set(collector.DOCS), (title, expr)  # every family is one the exporter documents
        assert _finite(series), f"{title} {t['refId']}: {expr} returned no finite value: {series}"
        with_data[title] = with_data.get(title, 0) + 1
    # the replayed months captured undecided predictions: the queue panel's pending count is the database's
    pending = _finite(_query(base, 'sum(modelwatch_active_learning_items{model="spx_signal", status="pending"})'))
    db_pending = _rows(conn, "SELECT count(*) AS n FROM active_learning_queue WHERE status = 'pending'")
    assert [float(s["value"][1]) for s in pending] == [float(db_pending[0]["n"])] and db_pending[0]["n"] > 0

    # real values: the overview's win rate is the database's, the queue counts the open drift alert's trigger
    win = _finite(_query(base, _promql(_dashboard()["panels"][0]["targets"][0]["expr"])))
    assert [float(s["value"][1]) for s in win] == [pytest.approx(live[0]["win_rate"])]
    triggers = _query(base, 'sum by (status) (modelwatch_retraining_triggers{model="spx_signal"})')
    db_triggers = _rows(
        conn,
        "SELECT status, count(*) AS n FROM retraining_triggers WHERE model_name = 'spx_signal' "
        "AND status IN ('pending', 'claimed') GROUP BY status",
    )
    want = {"pending": 0.0, "claimed": 0.0} | {r["status"]: float(r["n"]) for r in db_triggers}
    assert {s["metric"]["status"]: float(s["value"][1]) for s in triggers} == want
    p95, p99 = (
        float(_finite(_query(base, _promql(t["expr"])))[0]["value"][1])
        for title, t in _targets("prometheus")
        if title == "Scoring latency p95/p99"
    )
    longest = _rows(conn, "SELECT max(duration_s) AS s FROM scoring_batches WHERE model_name = 'spx_signal'")[0]["s"]
    bucket_above = min(b for b in collector.SCORING_BUCKETS if b >= longest)
    assert 0 < p95 <= p99 <= bucket_above

    for title, t in _targets("modelwatch-postgres"):
        got = _rows(conn, _sql(t["rawSql"]))
        assert got, f"{title}: no rows"
        if t["format"] == "time_series":
            assert all(r["time"] is not None for r in got), title
            values = [v for r in got for k, v in r.items() if k not in ("time", "metric")]
            assert values and all(v is not None and math.isfinite(float(v)) for v in values), title
        with_data[title] = with_data.get(title, 0) + 1
    assert set(with_data) == set(PANELS)

    # real values of the SQL panels
    perf = {r["model"]: r for r in _rows(conn, _sql(_targets("modelwatch-postgres")[0][1]["rawSql"]))}
    assert perf["spx_signal"]["accuracy"] == pytest.approx(live[0]["accuracy"])
    assert perf["spx_signal"]["health"] in ("healthy", "warning", "critical")
    sql = {title: t["rawSql"] for title, t in _targets("modelwatch-postgres")}
    signals = _rows(conn, _sql(sql["Signals over time"]))
    n_pred = _rows(conn, "SELECT count(*) AS n FROM predictions WHERE model_name = 'spx_signal'")[0]["n"]
    assert sum(r["value"] for r in signals) == n_pred > 0
    assert {r["metric"] for r in signals} <= {"BUY", "HOLD", "SELL"}
    curve = _rows(conn, _sql(sql["Portfolio performance"]))
    assert all(r["drawdown"] >= 0 for r in curve) and len({r["time"] for r in curve}) == len(curve) > 20
    print(f"DAG runs {dags_s:.1f}s, whole test {time.monotonic() - t0:.1f}s")
