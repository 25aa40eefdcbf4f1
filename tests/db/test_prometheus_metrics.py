"""The Prometheus exporter (include/modelwatch/observability) against the throwaway PostgreSQL: known rows in,
one scrape out (through the collector and through the real HTTP server), parsed with prometheus_client's own
parser and compared value by value; histogram buckets, the database-down answer, a timed-out query group, the
monotonic training counters and the scoring-batch upsert (the active-learning series in detail:
test_prometheus_active_learning.py)."""

from __future__ import annotations

import math
import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from include.modelwatch import registry
from include.modelwatch.data import scoring, storage
from include.modelwatch.loop import alerts as alert_store
from include.modelwatch.observability import collector, server
from tests.db.test_api_pages import insert

T0 = datetime(2008, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
TODAY = datetime.now(UTC).date()
V1 = {"model": "m", "version": "1", "alias": "champion"}
V2 = {"model": "m", "version": "2", "alias": "challenger"}


def scrape(text: str) -> dict[str, Any]:
    """{family name: family} of an exposition text (counters lose their _total, as the parser names them)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams: dict[str, Any], sample: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted label items: value} of every sample named ``sample``."""
    out = {}
    for fam in fams.values():
        for s in fam.samples:
            if s.name == sample:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(fams: dict[str, Any], sample: str, **labels: str) -> float:
    found = samples(fams, sample)
    key = tuple(sorted(labels.items()))
    assert key in found, f"{sample}{labels} not in {sorted(found)}"
    return found[key]


def batch(cur, *, version: int = 1, symbol: str = "SPX", start: datetime = T0, secs: float, n: int = 21) -> None:
    scoring.record_batch(
        cur,
        model_name="m",
        model_version=version,
        symbol=symbol,
        timeframe="1d",
        window_start=start,
        window_end=start + 31 * D,
        n_rows=n,
        n_missing_features=1 if n else 0,
        duration_s=secs,
        run_id=f"run-{symbol}-{secs}",
    )


def live_row(version: int, end: datetime, symbol: str, timeframe: str, acc: float) -> dict[str, Any]:
    return {
        "model_name": "m",
        "model_version": version,
        "window_start": end - 30 * D,
        "window_end": end,
        "symbol": symbol,
        "timeframe": timeframe,
        "n": 120,
        "n_trades": 80,
        "n_days": 60,
        "accuracy": acc,
        "macro_precision": acc - 0.01,
        "hit_rate": 0.55,
        "win_rate": 0.52,
        "profit_factor": 1.25,
        "avg_rr": 0.4,
        "sharpe": 1.1,
        "max_drawdown": 0.12,
        "per_class": {},
    }


@pytest.fixture()
def data(db, tmp_path):
    """Model m: v1 champion, v2 challenger, v3 a rejected candidate; every table the exporter reads."""
    for payload in (b"v1", b"v2", b"v3"):
        registry.register_version(
            db,
            model_name="m",
            algorithm="lightgbm",
            artifact=payload,
            artifact_dir=tmp_path,
            features=["f", "g"],
            classes=["SELL", "HOLD", "BUY"],
            train_end=TODAY - timedelta(days=40),
        )
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0 - 10 * D)
    registry.set_alias(db, "m", "challenger", 2, reason="a/b", changed_at=T0 - 5 * D)
    with storage.transaction(db) as cur:
        cur.execute("UPDATE model_versions SET status = 'rejected' WHERE model_name = 'm' AND version = 3")
        for version, end, status in ((1, T0 - D, "healthy"), (1, T0, "critical"), (2, T0, "warning")):
            insert(
                cur,
                "model_health_daily",
                {"model_name": "m", "model_version": version, "window_end": end, "status": status, "reasons": []},
            )
        # v1: two evaluated windows, then an empty one (newest window end, but no drift score)
        for start, status, score, n_drifted in (
            (T0 - 2 * H, "evaluated", 0.05, 0),
            (T0 - H, "evaluated", 0.6, 3),
            (T0, "empty", None, 0),
        ):
            insert(
                cur,
                "drift_windows",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": start,
                    "window_end": start + H,
                    "status": status,
                    "n_rows": 0 if status == "empty" else 40,
                    "drift_score": score,
                    "level": None if score is None else ("critical" if score > 0.5 else "none"),
                    "n_drifted": n_drifted,
                    "drifted": n_drifted > 0,
                },
            )
        for start, kind, feature, test, stat, severity in (
            (T0 - 2 * H, "feature", "f", "psi", 0.01, 0.0),  # older window: not reported
            (T0 - 2 * H, "concept", "auc", "auc_delta", -0.08, 80.0),
            (T0 - 2 * H, "concept", "error_rate", "error_rate_delta", 0.04, 0.0),
            (T0 - H, "feature", "f", "psi", 0.31, 90.0),
            (T0 - H, "feature", "f", "ks", 0.4, 90.0),  # not PSI
            (T0 - H, "feature", "g", "psi", 0.02, 0.0),
            (T0 - H, "prediction", "confidence", "psi", 0.5, 0.0),  # prediction drift: not a feature
        ):
            insert(
                cur,
                "drift_results",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": start,
                    "window_end": start + H,
                    "kind": kind,
                    "feature": feature,
                    "test": test,
                    "statistic": stat,
                    "severity": severity,
                    "drifted": severity > 0,
                },
            )
        for row in (
            live_row(1, T0 - D, "*", "*", 0.40),  # older snapshot: not reported
            live_row(1, T0, "*", "*", 0.44),
            live_row(1, T0, "SPX", "1d", 0.47),
            {**live_row(1, T0, "IXIC", "1d", 0.41), "profit_factor": None},  # NULL: left out
        ):
            insert(cur, "live_performance_daily", row)
        for end, live, degraded in ((T0 - D, 0.30, True), (T0, 0.44, False)):
            insert(
                cur,
                "live_vs_backtest_comparison",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": end - 30 * D,
                    "window_end": end,
                    "metric": "accuracy",
                    "is_primary": True,
                    "live_value": live,
                    "baseline_value": 0.5,
                    "tolerance_rel": 0.1,
                    "degraded": degraded,
                    "status": "degraded" if degraded else "ok",
                    "n_days": 60,
                    "n": 120,
                    "block_length": 5,
                    "n_boot": 1000,
                    "alpha": 0.05,
                },
            )
        drift = alert_store.raise_alert(
            cur,
            model_name="m",
            model_version=1,
            kind="drift",
            severity="critical",
            title="drift",
            message="m",
            window_start=T0 - H,
            window_end=T0,
            score=0.6,
        )
        perf = alert_store.raise_alert(
            cur,
            model_name="m",
            model_version=1,
            kind="performance",
            severity="warning",
            title="perf",
            message="m",
            window_start=T0 - H,
            window_end=T0,
            score=0.12,
        )
        assert alert_store.acknowledge_alert(cur, perf.alert_id, by="test", at=T0)
        alert_store.raise_alert(
            cur,
            model_name="m",
            model_version=1,
            kind="data_quality",
            severity="warning",
            title="dq",
            message="m",
            window_start=T0 - H,
            window_end=T0,
        )
        alert_store.resolve_alert(cur, model_name="m", kind="data_quality", at=T0, resolution="clean")
        assert drift.alert_id
        for status, claimed in (("pending", None), ("claimed", "run-1"), ("done", "run-0"), ("cancelled", None)):
            insert(
                cur,
                "retraining_triggers",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "trigger_type": "drift",
                    "retrain_mode": "full",
                    "priority": "high",
                    "reason": status,
                    "status": status,
                    "triggered_at": T0,
                    "claimed_by": claimed,
                },
            )
        # training: job 1 failed, was retried and succeeded; job 2 failed
        for trigger_id, algorithm in ((1, "lightgbm"), (1, "xgboost")):
            insert(
                cur,
                "training_jobs",
                {"trigger_id": trigger_id, "model_name": "m", "algorithm": algorithm, "retrain_mode": "full"},
            )
        for job, status in ((1, "failed"), (1, "running"), (1, "succeeded"), (2, "failed")):
            cur.execute("UPDATE training_jobs SET status = %(s)s WHERE job_id = %(j)s", {"s": status, "j": job})
        # scoring batches of v1: durations on, below and above the bucket bounds
        for symbol, start, secs in (
            ("SPX", T0, 0.03),
            ("IXIC", T0, 0.1),  # exactly on the 0.1 bound: counted in le="0.1"
            ("SPX", T0 + 31 * D, 0.7),
            ("IXIC", T0 + 31 * D, 400.0),  # above every bound: only in +Inf
        ):
            batch(cur, symbol=symbol, start=start, secs=secs)
        batch(cur, version=2, secs=1.5, n=0)
        # active-learning queue: v1 predicted until T0 + 2d; pending items of T0 - 3d and T0, one of each answer
        from tests.db.test_prometheus_active_learning import dataset, item, prediction

        for day in (-3, 0, 2):
            prediction(cur, model="m", ts=T0 + day * D)
        item(cur, model="m", ts=T0 - 3 * D)
        item(cur, model="m", version=2, ts=T0)
        item(cur, model="m", ts=T0 - 5 * D, status="labelled")
        item(cur, model="m", ts=T0 - 6 * D, status="skipped")
        item(cur, model="m", ts=T0 - 7 * D, status="processed", dataset_id=dataset(cur, "m"))
        item(cur, model="m", ts=T0 - 400 * D, status="expired")
    db.rollback()
    return db


def test_scrape_reports_the_stored_state(data, monitoring_uri):
    fams = scrape(server.render(server.make_registry(monitoring_uri)))

    # exactly the documented families, nothing else (no process_/python_ collectors)
    assert set(fams) == {d.name for d in collector.METRICS}
    for doc in collector.METRICS:
        assert fams[doc.name].type == doc.kind, doc.name
        assert fams[doc.name].documentation == doc.help, doc.name
    assert value(fams, "modelwatch_database_up") == 1
    assert value(fams, "modelwatch_scrape_duration_seconds") > 0
    assert set(samples(fams, "modelwatch_scrape_query_success").values()) == {1.0}
    assert len(samples(fams, "modelwatch_scrape_query_success")) == len(collector.QUERIES)

    # active versions only (v3 was rejected), with their aliases
    assert samples(fams, "modelwatch_model_alias_info") == {
        tuple(sorted(V1.items())): 1.0,
        tuple(sorted(V2.items())): 1.0,
    }
    assert value(fams, "modelwatch_model_health_status", **V1) == 2  # newest row: critical
    assert value(fams, "modelwatch_model_health_status", **V2) == 1
    assert {k: v for k, v in samples(fams, "modelwatch_model_health_state").items() if ("version", "1") in k} == {
        tuple(sorted({**V1, "state": s}.items())): float(s == "critical") for s in ("healthy", "warning", "critical")
    }
    assert value(fams, "modelwatch_model_health_window_end_timestamp_seconds", **V1) == T0.timestamp()
    assert value(fams, "modelwatch_model_age_days", **V1) == 40
    assert value(fams, "modelwatch_model_age_days", **V2) == 40
    # drift: the newest *evaluated* window's score; the newest window of any status for staleness
    assert value(fams, "modelwatch_model_drift_score", **V1) == 0.6
    assert value(fams, "modelwatch_model_drifted_features", **V1) == 3
    assert value(fams, "modelwatch_drift_window_end_timestamp_seconds", **V1) == (T0 + H).timestamp()
    assert samples(fams, "modelwatch_psi_drift_score") == {
        tuple(sorted({**V1, "feature": "f"}.items())): 0.31,
        tuple(sorted({**V1, "feature": "g"}.items())): 0.02,
    }
    # ModelWatch's own per-feature decision beside the raw PSI (the FeaturePsiHigh rules need both)
    assert samples(fams, "modelwatch_feature_drifted") == {
        tuple(sorted({**V1, "feature": "f"}.items())): 1.0,
        tuple(sorted({**V1, "feature": "g"}.items())): 0.0,
    }
    assert value(fams, "modelwatch_auc_delta", **V1) == -0.08
    assert value(fams, "modelwatch_error_rate_delta", **V1) == 0.04
    assert value(fams, "modelwatch_concept_drift_score", **V1) == 0.8
    assert value(fams, "modelwatch_concept_drift_window_end_timestamp_seconds", **V1) == (T0 - H).timestamp()
    # v2 has no drift windows: no drift score is invented for it
    assert not any(("version", "2") in k for k in samples(fams, "modelwatch_model_drift_score"))

    # live metrics of the newest snapshot, per symbol ('*' = the version as a whole)
    whole = {**V1, "symbol": "*", "timeframe": "*"}
    spx = {**V1, "symbol": "SPX", "timeframe": "1d"}
    ixic = {**V1, "symbol": "IXIC", "timeframe": "1d"}
    assert value(fams, "modelwatch_model_accuracy", **whole) == 0.44
    assert value(fams, "modelwatch_model_accuracy", **spx) == 0.47
    assert value(fams, "modelwatch_precision", **ixic) == pytest.approx(0.40)
    for sample, expected in (
        ("modelwatch_win_rate", 0.52),
        ("modelwatch_profit_factor", 1.25),
        ("modelwatch_avg_rr", 0.4),
        ("modelwatch_hit_rate", 0.55),
        ("modelwatch_max_drawdown", 0.12),
        ("modelwatch_sharpe_ratio", 1.1),
        ("modelwatch_live_matured_predictions", 120),
        ("modelwatch_live_performance_window_end_timestamp_seconds", T0.timestamp()),
    ):
        assert value(fams, sample, **whole) == expected, sample
    assert len(samples(fams, "modelwatch_model_accuracy")) == 3
    assert tuple(sorted(ixic.items())) not in samples(fams, "modelwatch_profit_factor")  # NULL left out
    primary = {**V1, "metric": "accuracy"}
    assert value(fams, "modelwatch_primary_metric_live", **primary) == 0.44
    assert value(fams, "modelwatch_primary_metric_baseline", **primary) == 0.5
    assert value(fams, "modelwatch_primary_metric_degraded", **primary) == 0

    # alerts: unresolved only, zeros for every kind / severity / status of the model
    open_alerts = samples(fams, "modelwatch_open_alerts")
    assert len(open_alerts) == 6 * 3 * 2  # 6 kinds (artifact_integrity since migration 024) x 3 severities x 2
    assert {k: v for k, v in open_alerts.items() if v} == {
        (("kind", "drift"), ("model", "m"), ("severity", "critical"), ("status", "open")): 1.0,
        (("kind", "performance"), ("model", "m"), ("severity", "warning"), ("status", "acknowledged")): 1.0,
    }
    assert samples(fams, "modelwatch_retraining_triggers") == {
        (("model", "m"), ("status", "pending")): 1.0,
        (("model", "m"), ("status", "claimed")): 1.0,
    }
    # counters: each finished training attempt, the retried job's failure included
    assert value(fams, "modelwatch_model_training_failures_total", model="m") == 2
    assert value(fams, "modelwatch_model_training_successes_total", model="m") == 1
    assert value(fams, "modelwatch_rejected_candidates_total", model="m") == 1

    # scoring histogram: cumulative, le inclusive, +Inf = count
    v1 = {"model": "m", "version": "1"}
    buckets = {
        dict(k)["le"]: v
        for k, v in samples(fams, "modelwatch_scoring_duration_seconds_bucket").items()
        if ("version", "1") in k
    }
    assert buckets == {
        "0.05": 1,
        "0.1": 2,
        "0.25": 2,
        "0.5": 2,
        "1.0": 3,
        "2.5": 3,
        "5.0": 3,
        "10.0": 3,
        "30.0": 3,
        "60.0": 3,
        "120.0": 3,
        "300.0": 3,
        "+Inf": 4,
    }
    assert value(fams, "modelwatch_scoring_duration_seconds_count", **v1) == 4
    assert value(fams, "modelwatch_scoring_duration_seconds_sum", **v1) == pytest.approx(400.83)
    assert value(fams, "modelwatch_scoring_rows_total", **v1) == 4 * 21
    assert value(fams, "modelwatch_scoring_window_end_timestamp_seconds", **v1) == (T0 + 62 * D).timestamp()
    scored_at = value(fams, "modelwatch_scoring_last_batch_timestamp_seconds", **v1)
    assert abs(scored_at - datetime.now(UTC).timestamp()) < 300
    v2 = {"model": "m", "version": "2"}
    assert value(fams, "modelwatch_scoring_duration_seconds_bucket", **v2, le="1.0") == 0
    assert value(fams, "modelwatch_scoring_duration_seconds_bucket", **v2, le="2.5") == 1
    assert value(fams, "modelwatch_scoring_rows_total", **v2) == 0

    # active-learning queue: every status (zeros included), answers = labelled + skipped + processed, and the
    # oldest pending item's age against the newest prediction (T0 - 3d -> T0 + 2d), not against today
    assert samples(fams, "modelwatch_active_learning_items") == {
        (("model", "m"), ("status", s)): n
        for s, n in (("pending", 2), ("labelled", 1), ("skipped", 1), ("processed", 1), ("expired", 1))
    }
    assert value(fams, "modelwatch_active_learning_answers_total", model="m") == 3
    assert value(fams, "modelwatch_active_learning_processed_total", model="m") == 1
    assert value(fams, "modelwatch_active_learning_oldest_pending_age_days", model="m") == 5


def test_http_endpoint_serves_the_same_scrape(data, monitoring_uri):
    srv, thread = server.start(server.make_registry(monitoring_uri), "127.0.0.1", 0)
    try:
        host, port = srv.server_address[:2]
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as res:
            assert res.status == 200
            assert res.headers["Content-Type"].startswith("text/plain; version=")
            fams = scrape(res.read().decode())
    finally:
        srv.shutdown()
        srv.server_close()
    thread.join(5)
    assert value(fams, "modelwatch_database_up") == 1
    assert value(fams, "modelwatch_model_drift_score", **V1) == 0.6
    assert value(fams, "modelwatch_scoring_duration_seconds_count", model="m", version="1") == 4
    assert set(fams) == {d.name for d in collector.METRICS}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_down_answers_database_up_zero(tmp_path):
    # a TCP port nobody listens on, and a Unix socket directory without a server
    sock_dir = tmp_path.as_posix().replace("/", "%2F")
    for uri in (f"postgresql://nobody@127.0.0.1:{_free_port()}/none", f"postgresql://x@{sock_dir}/none"):
        fams = scrape(server.render(server.make_registry(uri)))
        assert value(fams, "modelwatch_database_up") == 0
        assert 0 < value(fams, "modelwatch_scrape_duration_seconds") < 10
        assert set(fams) == {"modelwatch_database_up", "modelwatch_scrape_duration_seconds"}


def test_a_timed_out_query_group_drops_only_its_metrics(data, monitoring_uri):
    """Another session holds a lock on alerts: the alerts query hits the statement timeout, the rest answers."""
    with storage.session(monitoring_uri) as locker:
        locker.execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")
        fams = scrape(server.render(server.make_registry(monitoring_uri, statement_timeout_ms=200)))
        locker.rollback()
    ok = {dict(k)["query"]: v for k, v in samples(fams, "modelwatch_scrape_query_success").items()}
    assert ok == {q: float(q != "alerts") for q in collector.QUERIES}
    assert value(fams, "modelwatch_database_up") == 1
    assert "modelwatch_open_alerts" not in fams
    assert value(fams, "modelwatch_model_drift_score", **V1) == 0.6  # read after the failed group: same snapshot
    assert value(fams, "modelwatch_retraining_triggers", model="m", status="pending") == 1


def test_training_failures_counter_never_goes_down_when_a_failed_job_is_retried(db, monitoring_uri):
    reg = server.make_registry(monitoring_uri)
    seen = []
    with storage.transaction(db) as cur:
        insert(
            cur, "training_jobs", {"trigger_id": 7, "model_name": "m", "algorithm": "lightgbm", "retrain_mode": "full"}
        )
    for status in ("failed", "running", "failed", "running", "succeeded"):
        with storage.transaction(db) as cur:
            cur.execute("UPDATE training_jobs SET status = %(s)s", {"s": status})
            cur.execute("UPDATE training_jobs SET status = %(s)s", {"s": status})  # no change: no new attempt
        fams = scrape(server.render(reg))
        seen.append(
            (
                value(fams, "modelwatch_model_training_failures_total", model="m"),
                value(fams, "modelwatch_model_training_successes_total", model="m"),
            )
        )
    assert seen == [(1, 0), (1, 0), (2, 0), (2, 0), (2, 1)]
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        with storage.transaction(db) as cur:
            cur.execute("DELETE FROM training_job_outcomes")


def test_rerun_of_a_scoring_batch_replaces_its_row(db, tmp_path):
    registry.register_version(
        db,
        model_name="m",
        algorithm="lightgbm",
        artifact=b"v1",
        artifact_dir=tmp_path,
        features=["f"],
        classes=["SELL", "HOLD", "BUY"],
        status="active",
    )
    with storage.transaction(db) as cur:
        batch(cur, secs=0.5, n=21)
        batch(cur, symbol="IXIC", secs=0.6, n=21)
    with storage.transaction(db) as cur:
        batch(cur, secs=0.25, n=20)  # the same window again
    rows = storage.fetch_dicts(
        db, "SELECT symbol, n_rows, n_missing_features, duration_s, run_id FROM scoring_batches ORDER BY symbol"
    )
    db.rollback()
    assert rows == [
        {"symbol": "IXIC", "n_rows": 21, "n_missing_features": 1, "duration_s": 0.6, "run_id": "run-IXIC-0.6"},
        {"symbol": "SPX", "n_rows": 20, "n_missing_features": 1, "duration_s": 0.25, "run_id": "run-SPX-0.25"},
    ]
    with pytest.raises(ValueError, match="finite"):
        with storage.transaction(db) as cur:
            batch(cur, secs=math.inf)


def test_cli_show_prints_one_scrape(data, monitoring_uri, capsys):
    from include.modelwatch.ops import cli

    assert cli.main(["metrics", "show", "--uri", monitoring_uri]) == 0
    fams = scrape(capsys.readouterr().out)
    assert value(fams, "modelwatch_model_health_status", **V1) == 2
    args = cli.build_parser().parse_args(["metrics", "serve"])
    assert (args.host, args.port, args.statement_timeout_ms) == ("127.0.0.1", 9464, 2000)


def test_constants_match_the_code_they_mirror():
    from include.modelwatch.monitoring.performance import HEALTH_CODES

    assert collector.HEALTH_CODES == HEALTH_CODES
