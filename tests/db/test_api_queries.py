"""The monitoring API's read queries on the embedded PostgreSQL: a small known fixture, then real values,
order (newest first), totals, paging, every filter and every input error with its field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from include.modelwatch import registry
from include.modelwatch.api import queries as q
from include.modelwatch.api.errors import ApiInputError
from include.modelwatch.api.models import DriftWindowDetail, Page
from include.modelwatch.data import storage
from include.modelwatch.loop import alerts as alert_store

T0 = datetime(2008, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
NAIVE = datetime(2008, 1, 1)
JSON_LISTS = ("reasons",)  # jsonb list columns (other lists are arrays)


def _insert(cur, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    vals = ", ".join(f"%({k})s" for k in row)
    params = {k: Jsonb(v) if isinstance(v, dict) or k in JSON_LISTS else v for k, v in row.items()}
    cur.execute(f"INSERT INTO {table} ({cols}) VALUES ({vals})", params)


def _register(db, tmp_path, model: str, payload: bytes) -> int:
    mv = registry.register_version(
        db,
        model_name=model,
        algorithm="lightgbm",
        artifact=payload,
        artifact_dir=tmp_path,
        features=["f", "g"],
        classes=["SELL", "HOLD", "BUY"],
        train_start=date(2008, 1, 1),
        train_end=date(2008, 9, 1),
    )
    return mv.version


def _window(cur, model: str, version: int, start: datetime, score: float, level: str) -> None:
    _insert(
        cur,
        "drift_windows",
        {
            "model_name": model,
            "model_version": version,
            "window_start": start,
            "window_end": start + H,
            "status": "evaluated",
            "n_rows": 40,
            "drift_score": score,
            "level": level,
            "n_drifted": 1 if level != "none" else 0,
            "drifted": level != "none",
            "alert_state": "firing" if level == "critical" else "ok",
            "summary": {"top": "f"},
            "run_id": "r",
        },
    )


def _result(cur, start: datetime, kind: str, feature: str, severity: float, drifted: bool) -> None:
    _insert(
        cur,
        "drift_results",
        {
            "model_name": "m",
            "model_version": 1,
            "window_start": start,
            "window_end": start + H,
            "kind": kind,
            "feature": feature,
            "test": "psi",
            "statistic": severity / 100,
            "p_value": None,
            "severity": severity,
            "drifted": drifted,
            "n_current": 40,
            "details": {"bins": 10},
        },
    )


@pytest.fixture()
def fx(db, tmp_path):
    """m v1 (champion), m v2 (challenger), m v3 (candidate), other v1 (champion), and rows about them."""
    for payload in (b"m1", b"m2", b"m3"):
        _register(db, tmp_path, "m", payload)
    _register(db, tmp_path, "other", b"o1")
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0 - 30 * D)
    registry.set_alias(db, "m", "challenger", 2, reason="shadow", changed_at=T0 - 10 * D)
    registry.set_alias(db, "m", "challenger", None, reason="shadow over", changed_at=T0 - 5 * D)
    registry.set_alias(db, "other", "champion", 1, reason="bootstrap", changed_at=T0 - 20 * D)
    w1, w2 = T0 - 2 * H, T0 - H
    with storage.transaction(db) as cur:
        _window(cur, "m", 1, w1, 0.05, "none")
        _window(cur, "m", 1, w2, 0.6, "critical")
        _window(cur, "other", 1, w2, 0.1, "none")
        _result(cur, w2, "prediction", "predicted_label", 20.0, False)
        _result(cur, w2, "feature", "f", 90.0, True)
        _result(cur, w2, "feature", "g", 5.0, False)
        _result(cur, w1, "feature", "f", 1.0, False)
        for model, kind, at in (("m", "drift", T0), ("m", "performance", T0 + D), ("other", "drift", T0 + 2 * D)):
            alert_store.raise_alert(
                cur,
                model_name=model,
                model_version=1,
                kind=kind,
                severity="critical",
                title=f"{kind} alert",
                message="msg",
                window_start=at - H,
                window_end=at,
                score=0.6,
                evidence={"kind": kind},
            )
        alert_store.acknowledge_alert(cur, 1, by="oncall", at=T0 + H)
        for tid, (model, status, at) in enumerate(
            (("m", "done", T0 - 3 * D), ("m", "pending", T0), ("other", "cancelled", T0 - D)), start=1
        ):
            _insert(
                cur,
                "retraining_triggers",
                {
                    "trigger_id": tid,
                    "model_name": model,
                    "model_version": 1,
                    "trigger_type": "drift",
                    "retrain_mode": "full",
                    "priority": "high",
                    "rule_name": "drift_full_retrain",
                    "reason": f"reason {tid}",
                    "evidence": {"tid": tid},
                    "status": status,
                    "triggered_at": at,
                },
            )
        for job_id, (algo, status, at) in enumerate(
            (("lightgbm", "succeeded", T0 - 3 * D + H), ("xgboost", "failed", T0 - 3 * D + 2 * H)), start=1
        ):
            _insert(
                cur,
                "training_jobs",
                {
                    "job_id": job_id,
                    "trigger_id": 1,
                    "model_name": "m",
                    "algorithm": algo,
                    "retrain_mode": "full",
                    "status": status,
                    "candidate_version": 3 if status == "succeeded" else None,
                    "error": None if status == "succeeded" else "boom",
                    "started_at": at,
                },
            )
        gates = ((1, "min_accuracy", "pass"), (1, "beats_champion", "fail"), (None, "data", "pass"))
        for job_id, gate, status in gates:
            _insert(
                cur,
                "quality_gate_results",
                {
                    "trigger_id": 1,
                    "job_id": job_id,
                    "model_name": "m",
                    "candidate_version": 3,
                    "champion_version": 1,
                    "gate": gate,
                    "status": status,
                    "value": 0.5,
                    "threshold": 0.4,
                    "message": gate,
                    "evaluated_at": T0 - 3 * D + 3 * H,
                },
            )
        for model, version, end, status in (
            ("m", 1, T0 - D, "healthy"),
            ("m", 1, T0, "critical"),
            ("m", 2, T0 - D, "warning"),
            ("other", 1, T0, "healthy"),
        ):
            _insert(
                cur,
                "model_health_daily",
                {
                    "model_name": model,
                    "model_version": version,
                    "window_end": end,
                    "status": status,
                    "reasons": ["drift"] if status == "critical" else [],
                    "drift_score": 0.6 if status == "critical" else 0.1,
                    "perf_metric": "accuracy",
                    "perf_rel_drop": 0.2,
                    "dq_failures": 1,
                    "model_age_days": 30,
                },
            )
        for end, metric, primary, live in (
            (T0 - D, "accuracy", True, 0.52),
            (T0, "macro_f1", False, 0.40),
            (T0, "accuracy", True, 0.45),
        ):
            _insert(
                cur,
                "live_vs_backtest_comparison",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": end - 30 * D,
                    "window_end": end,
                    "metric": metric,
                    "is_primary": primary,
                    "live_value": live,
                    "baseline_value": 0.5,
                    "rel_diff": (live - 0.5) / 0.5,
                    "ci_low": live - 0.05,
                    "ci_high": live + 0.05,
                    "threshold": 0.45,
                    "tolerance_rel": 0.1,
                    "degraded": live < 0.45,
                    "status": "degraded" if live < 0.45 else "ok",
                    "n_days": 30,
                    "n": 300,
                    "block_length": 5,
                    "n_boot": 1000,
                    "alpha": 0.05,
                },
            )
        for end, realized in ((T0 - D, 0.5), (T0, None)):
            _insert(
                cur,
                "performance_estimates",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": end - D,
                    "window_end": end,
                    "metric": "accuracy",
                    "n_predictions": 10,
                    "prediction_ids": [1, 2],
                    "estimate": 0.55,
                    "estimate_unchecked": 0.55,
                    "status": "ok",
                    "realized": realized,
                    "abs_error": None if realized is None else 0.05,
                },
            )
        for end, feature, rank in ((T0 - D, "f", 1), (T0, "g", 2), (T0, "f", 1)):
            _insert(
                cur,
                "interpretability_log",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": end - D,
                    "window_end": end,
                    "feature": feature,
                    "importance_gain": 0.5,
                    "mean_abs_shap": 0.1 * rank,
                    "shap_rank": rank,
                    "n_predictions": 10,
                },
            )
    return db


def test_health_latest_row_per_model_version(fx):
    rows = q.health(fx)
    assert [(r.model, r.version, r.status, r.window_end) for r in rows] == [
        ("m", 2, "warning", T0 - D),
        ("m", 1, "critical", T0),  # the newer of m v1's two rows
        ("other", 1, "healthy", T0),
    ]
    crit = rows[1]
    assert (crit.reasons, crit.drift_score, crit.dq_failures, crit.aliases) == (["drift"], 0.6, 1, ["champion"])
    assert rows[0].aliases == []  # the challenger alias was removed again
    assert [(r.model, r.version) for r in q.health(fx, model="m", version=2)] == [("m", 2)]
    assert [r.model for r in q.health(fx, model="other")] == ["other"]


def test_models_versions_and_aliases(fx):
    out = q.models(fx)
    assert [s.model for s in out] == ["m", "other"]
    m = out[0]
    assert [(v.version, v.status, v.aliases) for v in m.versions] == [
        (3, "candidate", []),
        (2, "retired", []),
        (1, "active", ["champion"]),
    ]
    assert m.aliases == {"champion": 1} and out[1].aliases == {"champion": 1}
    assert (m.versions[0].algorithm, m.versions[0].train_start, m.versions[0].train_end) == (
        "lightgbm",
        date(2008, 1, 1),
        date(2008, 9, 1),
    )


def test_alias_history_newest_first_and_paged(fx):
    page = q.alias_history(fx, model="m")
    assert page.total == 3 and (page.limit, page.offset) == (50, 0)
    assert [(c.alias, c.from_version, c.to_version, c.reason) for c in page.items] == [
        ("challenger", 2, None, "shadow over"),
        ("challenger", None, 2, "shadow"),
        ("champion", None, 1, "bootstrap"),
    ]
    second = q.alias_history(fx, model="m", limit=1, offset=1)
    assert (second.total, [c.reason for c in second.items]) == (3, ["shadow"])
    assert q.alias_history(fx, model="m", offset=3).items == []


def test_drift_windows_order_filters_paging(fx):
    page = q.drift_windows(fx)
    assert isinstance(page, Page) and page.total == 3
    assert [(w.model, w.window_start) for w in page.items] == [("m", T0 - H), ("other", T0 - H), ("m", T0 - 2 * H)]
    mine = q.drift_windows(fx, model="m", version=1)
    assert [(w.drift_score, w.level, w.n_drifted, w.drifted, w.alert_state) for w in mine.items] == [
        (0.6, "critical", 1, True, "firing"),
        (0.05, "none", 0, False, "ok"),
    ]
    # [start, end) on window_end: the older window ends at T0 - H, the newer at T0
    assert [w.window_end for w in q.drift_windows(fx, model="m", start=T0 - H, end=T0).items] == [T0 - H]
    assert [w.window_end for w in q.drift_windows(fx, model="m", start=T0).items] == [T0]
    paged = q.drift_windows(fx, limit=2, offset=1)
    assert (paged.total, paged.limit, paged.offset, len(paged.items)) == (3, 2, 1, 2)
    assert paged.items[0].model == "other"


def test_drift_window_features_detail(fx):
    d = q.drift_window_features(fx, model="m", version=1, window_start=T0 - H)
    assert isinstance(d, DriftWindowDetail)
    assert (d.window_end, d.drift_score, d.summary) == (T0, 0.6, {"top": "f"})
    assert [(r.kind, r.feature, r.severity, r.drifted) for r in d.results] == [
        ("feature", "f", 90.0, True),
        ("prediction", "predicted_label", 20.0, False),
        ("feature", "g", 5.0, False),
    ]
    assert (d.results[0].statistic, d.results[0].n_current, d.results[0].details) == (0.9, 40, {"bins": 10})
    with pytest.raises(ApiInputError, match="window_start: model 'm' v1 has no drift window") as e:
        q.drift_window_features(fx, model="m", version=1, window_start=T0)
    assert e.value.field == "window_start"


def test_alerts_filters(fx):
    page = q.alerts(fx)
    assert [(a.model, a.kind, a.opened_at) for a in page.items] == [
        ("other", "drift", T0 + 2 * D),
        ("m", "performance", T0 + D),
        ("m", "drift", T0),
    ]
    assert page.total == 3
    acked = q.alerts(fx, status="acknowledged")
    assert [(a.alert_id, a.acknowledged_by, a.evidence) for a in acked.items] == [(1, "oncall", {"kind": "drift"})]
    assert [a.alert_id for a in q.alerts(fx, model="m", kind="drift").items] == [1]
    assert [a.alert_id for a in q.alerts(fx, start=T0 + D, end=T0 + 2 * D).items] == [2]
    assert q.alerts(fx, model="m", status="resolved").total == 0
    assert [a.alert_id for a in q.alerts(fx, limit=1, offset=2).items] == [1]


def test_triggers_filters(fx):
    page = q.triggers(fx)
    assert [(t.trigger_id, t.status) for t in page.items] == [(2, "pending"), (3, "cancelled"), (1, "done")]
    assert [t.trigger_id for t in q.triggers(fx, model="m").items] == [2, 1]
    assert [t.trigger_id for t in q.triggers(fx, status="cancelled").items] == [3]
    assert [t.trigger_id for t in q.triggers(fx, end=T0).items] == [3, 1]
    one = q.triggers(fx, model="m", status="pending").items[0]
    assert (one.reason, one.evidence, one.triggered_at) == ("reason 2", {"tid": 2}, T0)


def test_training_jobs_with_their_gates(fx):
    page = q.training_jobs(fx, model="m")
    assert page.total == 2
    assert [(j.job_id, j.algorithm, j.status, j.candidate_version, j.error) for j in page.items] == [
        (2, "xgboost", "failed", None, "boom"),
        (1, "lightgbm", "succeeded", 3, None),
    ]
    assert page.items[0].gates == []
    # the job's own gates, in order; the trigger-level gate (job_id NULL) is not a job's
    assert [(g.gate, g.status, g.value, g.threshold) for g in page.items[1].gates] == [
        ("min_accuracy", "pass", 0.5, 0.4),
        ("beats_champion", "fail", 0.5, 0.4),
    ]
    assert [j.job_id for j in q.training_jobs(fx, start=T0 - 3 * D + H, end=T0 - 3 * D + 2 * H).items] == [1]
    assert q.training_jobs(fx, model="other").total == 0
    assert [j.job_id for j in q.training_jobs(fx, limit=1, offset=1).items] == [1]


def test_performance_estimates_interpretability(fx):
    perf = q.performance(fx, model="m", version=1)
    assert [(p.window_end, p.metric, p.live_value, p.status) for p in perf.items] == [
        (T0, "accuracy", 0.45, "ok"),  # the primary metric first within a window
        (T0, "macro_f1", 0.40, "degraded"),
        (T0 - D, "accuracy", 0.52, "ok"),
    ]
    first = perf.items[0]
    assert (first.ci_low, first.ci_high, first.baseline_value, first.is_primary) == (
        pytest.approx(0.40),
        pytest.approx(0.50),
        0.5,
        True,
    )
    assert [p.window_end for p in q.performance(fx, end=T0).items] == [T0 - D]
    assert q.performance(fx, model="other").total == 0
    est = q.estimates(fx, model="m")
    assert [(e.window_end, e.estimate, e.realized, e.abs_error) for e in est.items] == [
        (T0, 0.55, None, None),
        (T0 - D, 0.55, 0.5, 0.05),
    ]
    assert q.estimates(fx, start=T0).total == 1
    interp = q.interpretability(fx, model="m", version=1)
    assert [(r.window_end, r.feature, r.shap_rank) for r in interp.items] == [
        (T0, "f", 1),
        (T0, "g", 2),
        (T0 - D, "f", 1),
    ]
    assert [r.feature for r in q.interpretability(fx, start=T0, limit=1, offset=1).items] == ["g"]


BAD: list[tuple[str, Any, dict[str, Any], str]] = [
    ("model", q.drift_windows, {"model": "nope"}, "model: unknown model 'nope'"),
    ("model", q.health, {"model": "nope"}, "model: unknown model"),
    ("model", q.alias_history, {"model": "nope"}, "model: unknown model"),
    ("model", q.alerts, {"model": "nope"}, "model: unknown model"),
    ("model", q.triggers, {"model": "nope"}, "model: unknown model"),
    ("model", q.training_jobs, {"model": "nope"}, "model: unknown model"),
    ("version", q.performance, {"model": "other", "version": 2}, "version: unknown version 2 of model 'other'"),
    ("version", q.estimates, {"version": 9}, "version: unknown version 9 of any model"),
    ("version", q.interpretability, {"version": 0}, "version: must be a positive integer"),
    ("version", q.health, {"model": "m", "version": 4}, "version: unknown version 4"),
    ("start", q.drift_windows, {"start": T0, "end": T0}, "start: must be before end"),
    ("start", q.alerts, {"start": T0 + D, "end": T0}, "start: must be before end"),
    ("start", q.triggers, {"start": datetime(2008, 1, 1)}, "start: needs a timezone"),
    ("end", q.training_jobs, {"end": datetime(2008, 1, 1)}, "end: needs a timezone"),
    ("limit", q.drift_windows, {"limit": 0}, "limit: must be an integer in 1..500"),
    ("limit", q.alerts, {"limit": 501}, "limit: must be an integer in 1..500"),
    ("limit", q.alias_history, {"model": "m", "limit": 1000}, "limit: "),
    ("offset", q.performance, {"offset": -1}, "offset: must be an integer >= 0"),
    ("kind", q.alerts, {"kind": "weather"}, "kind: unknown kind 'weather'"),
    ("status", q.alerts, {"status": "closed"}, "status: unknown status 'closed'"),
    ("status", q.triggers, {"status": "running"}, "status: unknown status 'running'"),
    ("window_start", q.drift_window_features, {"model": "m", "version": 1, "window_start": NAIVE}, "zone"),
    ("version", q.drift_window_features, {"model": "m", "version": 7, "window_start": T0}, "unknown version 7"),
]


@pytest.mark.parametrize("field,fn,kwargs,message", BAD, ids=[f"{b[1].__name__}-{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_names_the_field(fx, field, fn, kwargs, message):
    with pytest.raises(ApiInputError) as e:
        fn(fx, **kwargs)
    assert e.value.field == field and isinstance(e.value, ValueError)
    assert str(e.value).startswith(f"{field}: ") and message in str(e.value)


def test_reads_neither_commit_nor_roll_back(fx):
    """A caller's open transaction survives the queries (no commit: rolling back undoes the caller's write;
    no rollback: the write is visible to the queries themselves)."""
    with fx.cursor() as cur:
        cur.execute("UPDATE alerts SET title = %(t)s WHERE alert_id = %(id)s", {"t": "uncommitted", "id": 1})
    assert [a.title for a in q.alerts(fx, model="m", kind="drift").items] == ["uncommitted"]
    q.drift_windows(fx)
    q.training_jobs(fx)
    q.models(fx)
    fx.rollback()
    assert [a.title for a in q.alerts(fx, model="m", kind="drift").items] == ["drift alert"]
    fx.rollback()


def test_empty_database_answers_empty_pages(db):
    assert q.models(db) == [] and q.health(db) == []
    assert q.drift_windows(db) == Page(items=[], total=0, limit=50, offset=0)
    assert q.alerts(db, limit=500).total == 0 and q.training_jobs(db).items == []


def test_queries_also_run_with_server_side_binding(fx, monitoring_uri):
    """The API may hand over a plain psycopg connection (server-side parameters), not storage's ClientCursor one."""
    conn = psycopg.connect(**storage.parse_conn_uri(monitoring_uri))
    try:
        assert [w.window_end for w in q.drift_windows(conn, model="m", version=1, start=T0).items] == [T0]
        assert [len(j.gates) for j in q.training_jobs(conn, model="m").items] == [0, 2]
        assert [r.status for r in q.health(conn, model="m", version=1)] == ["critical"]
        assert q.alerts(conn, kind="drift", limit=1).total == 2
        assert len(q.drift_window_features(conn, model="m", version=1, window_start=T0 - H).results) == 3
        with pytest.raises(ApiInputError, match="version: unknown version 9"):
            q.estimates(conn, version=9)
    finally:
        conn.close()
