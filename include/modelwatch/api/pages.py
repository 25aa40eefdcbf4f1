"""The HTML pages of the ModelWatch app (server-rendered, Jinja2 templates in ``templates/``; charts are Vega-Lite
specs from :mod:`.charts`, rendered in the browser by the vendored vega-embed served under ``/static``).

* ``/``: fleet overview (and the API's endpoints);
* ``/models/{model}``: drift and live performance on one time axis, retrain/deploy/rollback markers, gates, aliases;
* ``/alerts-and-triggers``: alerts and retraining triggers; acknowledge, resolve, create and cancel (with reasons);
* ``/labelling``: the active-learning queue's pending items, labelled BUY / SELL / HOLD or skipped with a note, and
  the queue's counts and the labellers' agreement with the outcome;
* ``/ab-testing``: every champion/challenger A/B test (filter by model and status) with its latest evaluation;
* ``/ab-tests/{test_id}``: one A/B test: its settings, status and reason, its daily results and charts of the
  sequential test, the per-arm hit rates and the traffic against the split;
* ``/runs/{dag_id}/{run_id}``: the "ModelWatch" tab of an Airflow DAG run, redirecting to what that run wrote;
* ``/drift/{model}/{version}/{window_start}``: one drift window's per-feature table, a feature x window heatmap and
  the selected feature's distribution (``?feature=``) against the reference, from the stored bins.

Each page needs read access to the DAGs whose data it shows (as the JSON routes do); ``/static`` needs a logged-in
user. An unknown model, version or window answers a 404 page naming it. Data comes from :mod:`.queries` (and
:mod:`.queries_pages` for what only the pages need).
"""

from __future__ import annotations

import json
import mimetypes
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from include.modelwatch.api import charts, queries_ab, queries_labels, queries_ops, urls
from include.modelwatch.api import models as m
from include.modelwatch.api import queries as q
from include.modelwatch.api.auth import (
    AB_DAG,
    DRIFT_DAG,
    LABEL_DAG,
    MAINTENANCE_DAG,
    PERFORMANCE_DAG,
    RETRAIN_DAG,
    SCORING_DAG,
    GetUserDep,
    check_dag_access,
    dag_access,
)
from include.modelwatch.api.errors import ApiInputError
from include.modelwatch.api.queries_common import check_range
from include.modelwatch.api.queries_links import run_targets
from include.modelwatch.api.queries_loop import ALERT_KINDS, ALERT_STATUSES, TRIGGER_STATUSES
from include.modelwatch.api.queries_pages import drift_timeline, feature_severity, primary_history
from include.modelwatch.api.routes_common import DbDep
from include.modelwatch.monitoring.drift import store as drift_store

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
MAX_ROWS = q.MAX_LIMIT  # the pages show at most one full page of each list (the newest rows)
SPARK_WINDOWS = 48
MARKER_ALIAS = "champion"  # deployments and rollbacks are moves of this alias

router = APIRouter()


def spec_json(spec: dict[str, Any]) -> Markup:
    """A spec as JSON safe inside ``<script type="application/json">`` (no ``<``, ``>``, ``&`` in the text)."""
    text = json.dumps(spec, sort_keys=True, allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def isoutc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day(value: datetime) -> str:
    """A bar's session: its UTC date."""
    return value.astimezone(UTC).strftime("%Y-%m-%d")


ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
ENV.filters.update(spec_json=spec_json, utc=utc, isoutc=isoutc, day=day, urlpart=lambda s: quote(str(s), safe=""))
#: CSS class of an A/B test's status and of a day's decision (the colours of gate verdicts)
AB_CLASSES = {
    "promoted": "pass",
    "promote": "pass",
    "stopped": "fail",
    "stop": "fail",
    "inconclusive": "borderline",
    "cancelled": "muted",
}


def why(reason: str, decision: str) -> str:
    """A daily decision's reason without the decision it starts with (``"continue: no significant ..."``)."""
    return reason.removeprefix(f"{decision}: ")


ENV.filters.update(why=why)
ENV.globals.update(
    model_path=urls.model_path,
    drift_window_path=urls.drift_window_path,
    ab_test_path=urls.ab_test_path,
    ab_tests_path=urls.ab_tests_path,
    maintenance_path=urls.maintenance_path,
    ab_class=lambda value: AB_CLASSES.get(str(value), ""),
)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    prefix = str(request.scope.get("root_path", "")).rstrip("/")
    html = ENV.get_template(template).render(prefix=prefix, **context)
    return HTMLResponse(html, status_code=status_code)


def not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "not_found.html", status_code=404, title="Not found", message=message)


def readers(*dag_ids: str) -> list[Any]:
    return [Depends(dag_access("GET", d)) for d in dag_ids]


def may_read(request: Request, user: Any, dag_id: str) -> bool:
    """Whether ``user`` may read the data of ``dag_id`` (a page shows a section of it only then)."""
    try:
        check_dag_access(request, user, "GET", dag_id)
    except HTTPException:
        return False
    return True


def endpoints(request: Request) -> list[tuple[str, str, str]]:
    """(method, path, summary) of the app's documented routes, for the index's endpoint table."""
    rows: list[tuple[str, str, str]] = []
    for route in request.app.routes:
        path, methods = getattr(route, "path", None), sorted(getattr(route, "methods", None) or ())
        if path and getattr(route, "include_in_schema", False):
            summary = getattr(route, "summary", None) or getattr(route, "name", "")
            rows.extend((method, path, str(summary)) for method in methods)
    return rows


# --------------------------------------------------------------------------- fleet overview


def fleet_rows(conn) -> list[dict[str, Any]]:
    """One row per active (or aliased) model version with what the overview shows."""
    health = {(h.model, h.version): h for h in q.health(conn)}
    rows: list[dict[str, Any]] = []
    for summary in q.models(conn):
        open_alerts = q.alerts(conn, model=summary.model, status="open", limit=MAX_ROWS).items
        pending = q.triggers(conn, model=summary.model, status="pending", limit=1).total
        for v in summary.versions:
            if v.status != "active" and not v.aliases:
                continue
            windows = q.drift_windows(conn, model=summary.model, version=v.version, limit=SPARK_WINDOWS).items
            latest = q.performance(conn, model=summary.model, version=v.version, limit=20).items
            # the latest window with live labels (a window without matured outcomes has no live value)
            comparison = next((c for c in latest if c.is_primary and c.live_value is not None), None)
            rows.append(
                {
                    "model": summary.model,
                    "version": v.version,
                    "aliases": v.aliases,
                    "health": health.get((summary.model, v.version)),
                    "sparkline": charts.drift_sparkline(windows) if windows else None,
                    "chart_id": f"spark-{len(rows)}",
                    "comparison": comparison,
                    "open_alerts": sum(1 for a in open_alerts if a.version in (v.version, None)),
                    "pending_triggers": pending,
                }
            )
    return rows


@router.get(
    "/",
    response_class=HTMLResponse,
    summary="Fleet overview (HTML) and the API's endpoints",
    dependencies=readers(SCORING_DAG, DRIFT_DAG, PERFORMANCE_DAG, RETRAIN_DAG),
)
def fleet(request: Request, conn: DbDep) -> HTMLResponse:
    return render(request, "fleet.html", title="ModelWatch fleet", rows=fleet_rows(conn), endpoints=endpoints(request))


# --------------------------------------------------------------------------- model page


def timeline_markers(
    triggers: list[m.Trigger], jobs: list[m.TrainingJob], aliases: list[m.AliasChange]
) -> list[dict[str, Any]]:
    """Events on the model timeline: triggers, retrains (job end), rejections (a failed gate), deployments and
    rollbacks (the champion alias moving to a newer / older version)."""
    out: list[dict[str, Any]] = [
        {"at": t.triggered_at, "kind": "trigger", "label": f"trigger #{t.trigger_id} {t.trigger_type} ({t.status})"}
        for t in triggers
    ]
    for j in jobs:
        label = f"job #{j.job_id} {j.algorithm} {j.status}"
        out.append({"at": j.finished_at or j.started_at, "kind": "retrain", "label": label})
        failed = [g for g in j.gates if g.status == "fail"]
        if failed:
            at = max(g.evaluated_at for g in failed)
            names = ", ".join(g.gate for g in failed)
            out.append({"at": at, "kind": "rejection", "label": f"job #{j.job_id} rejected: {names}"})
    for a in aliases:
        if a.alias != MARKER_ALIAS or a.to_version is None:
            continue
        kind = "rollback" if a.from_version is not None and a.to_version < a.from_version else "deployment"
        src = f"v{a.from_version}" if a.from_version is not None else "-"
        out.append({"at": a.changed_at, "kind": kind, "label": f"{a.alias} {src} -> v{a.to_version}: {a.reason}"})
    return sorted(out, key=lambda mk: mk["at"])


EPISODE_MARGIN = timedelta(days=62)


def episode_ranges(alerts: list[m.Alert]) -> list[dict[str, Any]]:
    """Quick timeline ranges: each drift alert episode with two months either side, oldest first."""
    out = []
    for a in sorted(alerts, key=lambda a: a.first_window):
        start, end = a.first_window - EPISODE_MARGIN, a.last_window + EPISODE_MARGIN
        label = f"drift alert #{a.alert_id} ({a.severity}, {a.first_window:%Y-%m-%d} to {a.last_window:%Y-%m-%d})"
        out.append({"label": label, "start": start, "end": end})
    return out


@router.get(
    "/models/{model}",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=readers(SCORING_DAG, DRIFT_DAG, PERFORMANCE_DAG, RETRAIN_DAG),
)
def model_page(
    model: str,
    request: Request,
    user: GetUserDep,
    conn: DbDep,
    start: datetime | None = None,
    end: datetime | None = None,
) -> HTMLResponse:
    summary = next((s for s in q.models(conn) if s.model == model), None)
    if summary is None:
        return not_found(request, f"Unknown model {model!r}.")
    check_range(start, end)
    windows, bucket = drift_timeline(conn, model=model, start=start, end=end)  # oldest first
    # a bucket of windows (long history) opens the page zoomed to it; a single window opens its own page
    link = (lambda w: urls.model_path(model, "timeline", w.window_start, w.window_end)) if bucket else None
    all_alerts = q.alerts(conn, model=model, kind="drift", limit=MAX_ROWS).items
    alerts = [
        a for a in all_alerts if (end is None or a.first_window < end) and (start is None or a.last_window >= start)
    ]
    comparisons, estimates = primary_history(conn, model=model, start=start, end=end)
    triggers = q.triggers(conn, model=model, limit=MAX_ROWS).items
    jobs = q.training_jobs(conn, model=model, limit=MAX_ROWS).items
    aliases = q.alias_history(conn, model=model, limit=MAX_ROWS).items
    markers = [
        mk
        for mk in timeline_markers(triggers, jobs, aliases)
        if (start is None or mk["at"] >= start) and (end is None or mk["at"] < end)
    ]
    return render(
        request,
        "model.html",
        title=f"Model {model}",
        model=model,
        versions=summary.versions,
        recent_windows=q.drift_windows(conn, model=model, limit=12).items,
        drifted_windows=[] if bucket else [w for w in reversed(windows) if w.level in ("warning", "critical")],
        bucket_hours=None if bucket is None else bucket / 3600,
        ranges=episode_ranges(all_alerts),
        start=start,
        end=end,
        timeline=charts.model_timeline(model, windows, alerts, comparisons, estimates, markers, link),
        jobs=jobs,
        aliases=aliases,
        # the model's A/B tests, for users who may read them (GET on ab_test_daily); None: not shown
        ab_tests=queries_ab.ab_tests(conn, model=model) if may_read(request, user, AB_DAG) else None,
    )


# --------------------------------------------------------------------------- drift window page


def feature_rows(detail: m.DriftWindowDetail) -> list[dict[str, Any]]:
    """One row per (kind, feature): its primary test (the one with a p-value, else the first), the BH-adjusted
    p-value from ``details``, and the other tests' statistics."""
    grouped: dict[tuple[str, str], list[m.DriftFeatureResult]] = {}
    for r in detail.results:
        grouped.setdefault((r.kind, r.feature), []).append(r)
    rows = []
    for (kind, feature), results in grouped.items():
        primary = next((r for r in results if r.p_value is not None), results[0])
        others = ", ".join(
            f"{r.test}={r.statistic:.4g}" for r in results if r is not primary and r.statistic is not None
        )
        rows.append(
            {
                "kind": kind,
                "feature": feature,
                "test": primary.test,
                "statistic": primary.statistic,
                "p_value": primary.p_value,
                "p_adjusted": primary.details.get("p_adjusted"),
                "severity": primary.severity,
                "drifted": primary.drifted,
                "others": others,
            }
        )
    return rows


def distribution(
    detail: m.DriftWindowDetail, reference: dict[str, dict[str, Any]], wanted: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Overlay rows of every feature whose window bins were stored (the 'psi' row's ``window_bins``) and the
    feature to show first: ``wanted`` if it has bins, else the most severe drifted one, else the first."""
    rows: list[dict[str, Any]] = []
    shown: list[str] = []  # detail.results come drifted first, then by severity
    for r in detail.results:
        bins = r.details.get("window_bins")
        if r.test != "psi" or not bins or r.feature not in reference:
            continue
        rows.extend(charts.distribution_rows(r.feature, reference[r.feature], bins, r.details.get("unseen_levels", ())))
        shown.append(r.feature)
    if not shown:
        return rows, None
    return rows, wanted if wanted in shown else shown[0]


@router.get(
    "/drift/{model}/{version}/{window_start}",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=readers(DRIFT_DAG),
)
def drift_window_page(
    model: str, version: int, window_start: datetime, request: Request, conn: DbDep, feature: str | None = None
) -> HTMLResponse:
    if window_start.tzinfo is None:
        raise ApiInputError("window_start", f"needs a timezone (e.g. 2024-01-31T00:00:00Z), got {window_start}")
    try:
        detail = q.drift_window_features(conn, model=model, version=version, window_start=window_start)
    except ApiInputError as exc:
        return not_found(request, str(exc))
    cells = feature_severity(conn, model=model, version=version)
    rows, selected = distribution(detail, drift_store.reference_bins(conn, model, version), feature)
    return render(
        request,
        "drift_window.html",
        title=f"Drift: {model} v{version}, window {utc(window_start)}",
        w=detail,
        features=feature_rows(detail),
        heatmap=charts.severity_heatmap(model, version, cells, selected=detail.window_start),
        selected_feature=selected,
        overlay=charts.distribution_overlay(model, version, rows, selected) if selected else None,
    )


# --------------------------------------------------------------------------- alerts and triggers page


@router.get(
    "/alerts-and-triggers",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=readers(DRIFT_DAG, PERFORMANCE_DAG, RETRAIN_DAG),
)
def alerts_page(
    request: Request,
    conn: DbDep,
    model: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    trigger_status: str | None = None,
) -> HTMLResponse:
    """Alerts and retraining triggers with their actions (the forms call the JSON write routes)."""
    alerts = q.alerts(conn, model=model or None, kind=kind or None, status=status or None, limit=MAX_ROWS)
    triggers = q.triggers(conn, model=model or None, status=trigger_status or None, limit=MAX_ROWS)
    return render(
        request,
        "alerts.html",
        title="Alerts and retraining triggers",
        alerts=alerts,
        triggers=triggers,
        models=[s.model for s in q.models(conn)],
        filters={
            "model": model or "",
            "kind": kind or "",
            "status": status or "",
            "trigger_status": trigger_status or "",
        },
        alert_kinds=ALERT_KINDS,
        alert_statuses=ALERT_STATUSES,
        trigger_statuses=TRIGGER_STATUSES,
    )


# --------------------------------------------------------------------------- labelling page


def probabilities(values: dict[str, float]) -> list[tuple[str, float]]:
    """Class probabilities, most likely first."""
    return sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))


@router.get(
    "/labelling",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=readers(LABEL_DAG),
)
def labelling_page(request: Request, conn: DbDep, model: str | None = None) -> HTMLResponse:
    """Pending items of the active-learning queue with their answers (the forms call the JSON write routes), the
    queue's counts and the labellers' agreement."""
    pending = queries_labels.items(conn, model=model or None, status="pending", limit=MAX_ROWS)
    return render(
        request,
        "labelling.html",
        title="Labelling: what the models could not decide",
        pending=pending,
        stats=queries_labels.stats(conn, model=model or None),
        models=[s.model for s in q.models(conn)],
        filters={"model": model or ""},
        probabilities=probabilities,
    )


# --------------------------------------------------------------------------- A/B test pages


@router.get(
    "/ab-testing",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=readers(AB_DAG),
)
def ab_tests_page(request: Request, conn: DbDep, model: str | None = None, status: str | None = None) -> HTMLResponse:
    """Every champion/challenger test, newest first, with its latest evaluation (an unknown model or status is
    refused with a 422 naming the field, as the JSON routes do)."""
    tests = queries_ab.ab_test_summaries(conn, model=model or None, status=status or None)
    return render(
        request,
        "ab_tests.html",
        title="A/B tests: champion against challenger",
        tests=tests,
        models=[s.model for s in q.models(conn)],
        statuses=queries_ab.statuses(),
        filters={"model": model or "", "status": status or ""},
    )


def ab_day_rows(days: list[m.ABDay]) -> list[dict[str, Any]]:
    """The daily results table, newest first: each day with both sides of its sequential test (or None)."""
    rows = []
    for d in days:
        rows.append(
            {
                "d": d,
                "sides": queries_ab.sequential_sides(d),
                "rate_champion": d.hits_champion / d.n_champion if d.n_champion else None,
                "rate_challenger": d.hits_challenger / d.n_challenger if d.n_challenger else None,
            }
        )
    return rows[::-1]


@router.get(
    "/ab-tests/{test_id}",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=readers(AB_DAG),
)
def ab_test_page(test_id: int, request: Request, conn: DbDep) -> HTMLResponse:
    """One test: settings, status and reason, charts of the sequential test, the hit rates and the traffic, the
    daily results and the latest day's per-arm metrics."""
    try:
        test = queries_ab.ab_test(conn, test_id)
    except ApiInputError as exc:
        return not_found(request, str(exc))
    days = queries_ab.ab_days(conn, test_id)
    rows = ab_day_rows(days)
    sides = [r["sides"] for r in reversed(rows)]  # oldest first, as days
    traffic = queries_ab.ab_traffic(conn, test_id)
    threshold = next((d.seq_log_threshold for d in reversed(days) if d.seq_log_threshold is not None), None)
    return render(
        request,
        "ab_test.html",
        title=f"A/B test {test.test_id}: {test.model} v{test.champion_version} against v{test.challenger_version}",
        t=test,
        rows=rows,
        latest=days[-1] if days else None,
        traffic=traffic,
        sequential=charts.ab_sequential(test, days, sides, threshold) if days else None,
        hit_rates=charts.ab_hit_rates(test, days) if days else None,
        traffic_chart=charts.ab_traffic(test, traffic) if traffic.days else None,
        arm_metrics=AB_ARM_METRICS,
    )


#: the per-arm trading metrics of the latest day, as the performance monitoring names them: (field, label, format)
AB_ARM_METRICS = (
    ("rows", "Rows served", "%d"),
    ("accuracy", "Accuracy", "%.3f"),
    ("n_trades", "Trades", "%d"),
    ("hit_rate", "Hit rate (trades)", "%.3f"),
    ("win_rate", "Win rate", "%.3f"),
    ("profit_factor", "Profit factor", "%.2f"),
    ("avg_rr", "Average R/R", "%.2f"),
    ("sharpe", "Sharpe", "%.2f"),
)


# --------------------------------------------------------------------------- maintenance page


@router.get(
    "/maintenance",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=readers(MAINTENANCE_DAG),
)
def maintenance_page(
    request: Request, conn: DbDep, table: str | None = None, run_id: str | None = None
) -> HTMLResponse:
    """What ``maintenance_daily`` did, newest interval first: per table the retention policy applied (Variable,
    days, cutoff) and the rows it removed or rolled up, and the partitions it created (an unknown table is refused
    with a 422 naming the field, as the JSON route does)."""
    page = queries_ops.maintenance_runs(conn, table=table or None, run_id=run_id or None, limit=MAX_ROWS)
    return render(
        request,
        "maintenance.html",
        title="Maintenance: retention and partitions",
        page=page,
        tables=queries_ops.TABLES,
        filters={"table": table or "", "run_id": run_id or ""},
    )


# --------------------------------------------------------------------------- run links


@router.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def run_link(dag_id: str, run_id: str, request: Request, user: GetUserDep, conn: DbDep) -> Response:
    """The "ModelWatch" tab of an Airflow DAG run: the page of what that run wrote (a redirect when it is one page,
    else a list), for users who may read that DAG."""
    check_dag_access(request, user, "GET", dag_id)
    targets = run_targets(conn, dag_id, run_id)
    if targets is not None and len(targets) == 1:
        return RedirectResponse(targets[0].path, status_code=303)
    return render(request, "run_links.html", title=f"ModelWatch: run {run_id} of {dag_id}", dag_id=dag_id,
                  run_id=run_id, targets=targets)  # fmt: skip


# --------------------------------------------------------------------------- static files


@router.get("/static/{path:path}", include_in_schema=False)
def static(path: str, user: GetUserDep) -> FileResponse:
    """The vendored chart library (``static/vendor``), for logged-in users only."""
    target = (STATIC / path).resolve()
    if not target.is_file() or not target.is_relative_to(STATIC):
        raise HTTPException(status_code=404, detail=f"no static file {path!r}")
    media = "text/javascript" if target.suffix == ".js" else mimetypes.guess_type(target.name)[0] or "text/plain"
    return FileResponse(target, media_type=media, headers={"Cache-Control": "private, max-age=86400"})


__all__ = [
    "ENV",
    "STATIC",
    "ab_day_rows",
    "feature_rows",
    "fleet_rows",
    "may_read",
    "router",
    "spec_json",
    "timeline_markers",
]
