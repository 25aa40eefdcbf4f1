"""drift_hourly end to end on the real replay data: quiet in a calm month, volatility
drift in the 2008 crisis, re-runs replace rows, each branch path, binned mode."""

from __future__ import annotations

import json
import logging

from include.modelwatch.data import storage
from tests.e2e.conftest import page_after, run_window
from tests.e2e.conftest import rows as _rows

OCT = ("2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00")
SEP = ("2008-09-01T00:00:00+00:00",)
MAY07 = ("2007-05-01T00:00:00+00:00", "2007-06-01T00:00:00+00:00")


def _states(dag_run) -> dict[str, str]:
    """task_id -> state of the run's task instances (first map index; 'skipped'
    for a mapped task expanded over nothing or skipped by the branch)."""
    out: dict[str, str] = {}
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: t.map_index):
        out.setdefault(ti.task_id, str(ti.state).split(".")[-1].lower())
    return out


def test_crisis_window_drifts_calm_window_does_not_and_reruns_replace(champion, monitoring_uri, caplog):
    caplog.set_level(logging.INFO, logger="include.tasks")
    caplog.set_level(logging.INFO, logger="include.modelwatch.notify")
    conn = storage.connect(monitoring_uri)
    assert run_window("score_signals", MAY07[0], MAY07[1]).state == "success"
    assert run_window("score_signals", "2008-09-01T00:00:00+00:00", OCT[1]).state == "success"

    calm = run_window("drift_hourly", *MAY07)
    assert calm.state == "success"
    assert _states(calm)["compute_drift"] == "success"
    assert _states(calm)["record_empty_window"] == "skipped"
    may = _rows(
        conn, "SELECT status, drifted, level, drift_score FROM drift_windows WHERE window_start = %s", (MAY07[0],)
    )
    assert may == [{"status": "evaluated", "drifted": False, "level": "none", "drift_score": 0.0}]

    assert _states(calm)["announce_triggers"] == "skipped"  # nothing fired in a calm month
    # hysteresis: an alert needs 2 of the last 3 windows drifted; September 2008 is the first
    assert run_window("drift_hourly", SEP[0], OCT[0]).state == "success"
    assert _rows(conn, "SELECT count(*) AS n FROM retraining_triggers")[0]["n"] == 0
    caplog.clear()
    oct_run = run_window("drift_hourly", *OCT)
    assert oct_run.state == "success"
    # the window's task log ends with its page; the alert response's with the alerts page
    url = page_after(caplog, "summary: spx_signal v1 window 2008-10-01 00:00..2008-11-01 00:00 (")
    assert url == "http://localhost:8080/modelwatch/drift/spx_signal/1/2008-10-01T00%3A00%3A00Z"
    assert page_after(caplog, "summary: closed loop (drift").endswith("/modelwatch/alerts-and-triggers")
    # one notification for the drift alert's opening; no modelwatch_smtp connection here, so the dev-mode
    # log notifier wrote it to the task log and the outbox row is 'skipped'
    drift_alert = _rows(conn, "SELECT alert_id, severity, evidence FROM alerts WHERE kind = 'drift'")
    assert [(a["severity"], len(a["evidence"]["top_features"]) > 0) for a in drift_alert] == [("critical", True)]
    sent = _rows(conn, "SELECT kind, dedupe_key, status, model_version, subject, body FROM notifications")
    assert [(n["kind"], n["dedupe_key"], n["status"], n["model_version"]) for n in sent] == [
        ("alert", f"alert:{drift_alert[0]['alert_id']}:opened", "skipped", 1)
    ]
    subject = (
        "[ModelWatch] drift alert OPENED (critical): spx_signal v1, window 2008-10-01 00:00 .. 2008-11-01 00:00 UTC"
    )
    assert sent[0]["subject"] == subject
    features = sent[0]["body"].split("Top drifted features (test=statistic, p-value):\n")[1].split("\n\n")[0]
    # the alert's own top features, in its order, each with its tests' statistics
    assert [line.split(":")[0].strip() for line in features.splitlines()] == drift_alert[0]["evidence"]["top_features"]
    assert all(" ks=" in line and "(p=" in line for line in features.splitlines()), features
    assert "Page: http://localhost:8080/modelwatch/drift/spx_signal/1/2008-10-01T00%3A00%3A00Z" in sent[0]["body"]
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("notification not sent")]
    assert logged == [f"notification not sent (no modelwatch_smtp connection): {subject}\n{sent[0]['body']}"]
    # the closed loop: the critical drift alert became exactly one pending trigger for the champion
    champ = _rows(conn, "SELECT version FROM model_aliases WHERE alias = 'champion'")[0]["version"]
    trig = _rows(
        conn,
        "SELECT model_version, status, trigger_type, retrain_mode, priority, rule_name, window_end "
        "FROM retraining_triggers",
    )
    assert trig == [
        {
            "model_version": champ,
            "status": "pending",
            "trigger_type": "drift",
            "retrain_mode": "full",
            "priority": "high",
            "rule_name": "drift_full_retrain",
            "window_end": trig[0]["window_end"],
        }
    ]
    assert trig[0]["window_end"].isoformat() == OCT[1]
    assert _states(oct_run)["announce_triggers"] == "success"
    win = _rows(
        conn,
        "SELECT status, n_rows, drift_score, level, drifted, summary FROM drift_windows WHERE window_start = %s",
        (OCT[0],),
    )
    assert len(win) == 1
    assert win[0]["status"] == "evaluated" and win[0]["n_rows"] == 46 and win[0]["summary"]["mode"] == "rows"
    assert win[0]["drifted"] is True and win[0]["level"] == "critical" and win[0]["drift_score"] > 0.25

    drifted = {
        r["feature"]
        for r in _rows(
            conn, "SELECT DISTINCT feature FROM drift_results WHERE drifted AND window_start = %s", (OCT[0],)
        )
    }
    vol = {f for f in drifted if "vol" in f or "atr" in f}
    assert {"vol_21d", "vol_63d"} <= vol, f"volatility features not drifted in October 2008: {sorted(drifted)}"
    ks = _rows(
        conn,
        "SELECT statistic, p_value, details FROM drift_results "
        "WHERE window_start = %s AND feature = 'vol_21d' AND test = 'ks'",
        (OCT[0],),
    )
    assert ks and ks[0]["statistic"] > 0.5 and ks[0]["p_value"] < 1e-6
    # the threshold came from the reference's own 46-row windows, above the configured 0.2
    assert ks[0]["details"]["thresholds"]["wasserstein_norm"] > 0.2 and ks[0]["details"]["p_null"] < 1e-3
    concept = {
        r["test"]
        for r in _rows(conn, "SELECT test FROM drift_results WHERE window_start = %s AND kind = 'concept'", (OCT[0],))
    }
    assert concept == {"error_rate_delta", "auc_delta"}

    before = _rows(
        conn,
        "SELECT feature, test, statistic FROM drift_results WHERE window_start = %s ORDER BY feature, test",
        (OCT[0],),
    )
    assert run_window("drift_hourly", *OCT).state == "success"
    after = _rows(
        conn,
        "SELECT feature, test, statistic FROM drift_results WHERE window_start = %s ORDER BY feature, test",
        (OCT[0],),
    )
    assert after == before  # replaced, not duplicated
    # the re-run found its earlier decision: still one trigger, one 'fire' action, no asset event
    assert _rows(conn, "SELECT count(*) AS n FROM retraining_triggers")[0]["n"] == 1
    assert [r["action"] for r in _rows(conn, "SELECT action FROM closed_loop_actions")] == ["fire"]
    assert _rows(conn, "SELECT count(*) AS n FROM drift_windows WHERE window_start = %s", (OCT[0],))[0]["n"] == 1
    # ... and announced nothing twice
    assert _rows(conn, "SELECT count(*) AS n FROM notifications")[0]["n"] == 1

    # a window with no predictions takes the empty path: recorded, no drift rows
    empty_run = run_window("drift_hourly", "2030-01-01T00:00:00+00:00", "2030-01-01T01:00:00+00:00")
    assert empty_run.state == "success"
    assert _states(empty_run)["record_empty_window"] == "success"
    assert _states(empty_run)["compute_drift"] == "skipped"
    empty = _rows(conn, "SELECT status, n_rows FROM drift_windows WHERE window_start = '2030-01-01'")
    assert empty == [{"status": "empty", "n_rows": 0}]
    assert _rows(conn, "SELECT count(*) AS n FROM drift_results WHERE window_start = '2030-01-01'")[0]["n"] == 0
    conn.close()


def test_bad_window_raises_data_quality_alert_and_writes_no_drift(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    window = ("2008-10-01T00:00:00+00:00", "2008-10-08T00:00:00+00:00")
    assert run_window("score_signals", *window).state == "success"
    with storage.transaction(conn) as cur:  # a scorer bug writes a probability above 1
        cur.execute(
            "UPDATE predictions SET probabilities = jsonb_set(probabilities, '{BUY}', '1.7') "
            "WHERE ts = (SELECT min(ts) FROM predictions) AND symbol = 'SPX'"
        )
    run = run_window("drift_hourly", *window)
    assert run.state == "success"
    states = _states(run)
    assert states["raise_data_quality_alert"] == "success" and states["compute_drift"] == "skipped"
    win = _rows(conn, "SELECT status, summary FROM drift_windows WHERE window_start = %s", (window[0],))
    assert win[0]["status"] == "data_quality_failed"
    assert any("p_BUY" in f for f in win[0]["summary"]["failed_expectations"])
    assert _rows(conn, "SELECT count(*) AS n FROM drift_results WHERE window_start = %s", (window[0],))[0]["n"] == 0
    alert = _rows(conn, "SELECT kind, status, severity, message FROM alerts WHERE kind = 'data_quality'")
    assert len(alert) == 1 and alert[0]["status"] == "open" and "p_BUY" in alert[0]["message"]
    failed = _rows(
        conn, "SELECT column_name FROM data_quality_results WHERE window_start = %s AND NOT success", (window[0],)
    )
    assert {"p_BUY"} <= {r["column_name"] for r in failed}
    conn.close()


def test_binned_mode_counts_in_postgres_and_agrees_with_row_mode(champion, monitoring_uri):
    from airflow.models.variable import Variable

    conn = storage.connect(monitoring_uri)
    assert run_window("score_signals", "2008-09-01T00:00:00+00:00", OCT[1]).state == "success"
    assert run_window("drift_hourly", *OCT).state == "success"
    exact = {
        (r["feature"], r["test"]): r
        for r in _rows(
            conn, "SELECT feature, test, statistic, drifted FROM drift_results WHERE window_start = %s", (OCT[0],)
        )
    }
    Variable.set("modelwatch_drift_overrides", json.dumps({"spx_signal": {"sql_counts_min_rows": 1}}))
    try:
        assert run_window("drift_hourly", *OCT).state == "success"
    finally:
        Variable.set("modelwatch_drift_overrides", "{}")
    win = _rows(conn, "SELECT n_rows, summary FROM drift_windows WHERE window_start = %s", (OCT[0],))
    assert win[0]["summary"]["mode"] == "binned" and win[0]["n_rows"] == 46
    binned = {
        (r["feature"], r["test"]): r
        for r in _rows(
            conn, "SELECT feature, test, statistic, drifted FROM drift_results WHERE window_start = %s", (OCT[0],)
        )
    }
    assert set(binned) == set(exact)
    for key in [
        k for k in exact if k[1] in ("psi", "kl", "js", "chi2", "share_shift") and exact[k]["statistic"] is not None
    ]:
        assert abs(binned[key]["statistic"] - exact[key]["statistic"]) < 1e-9, key
    assert binned[("vol_21d", "ks")]["drifted"] and exact[("vol_21d", "ks")]["drifted"]
    assert abs(binned[("vol_21d", "ks")]["statistic"] - exact[("vol_21d", "ks")]["statistic"]) < 0.05
    conn.close()


def test_drift_windows_of_a_model_run_one_at_a_time(airflow_db):
    """Defect 6: hysteresis reads the earlier windows, so catch-up must not judge a window before the
    one before it is written (the per-model lock is tested in tests/db/test_drift_store.py)."""
    from tests.e2e.conftest import get_dag

    dag = get_dag("drift_hourly")
    assert dag.max_active_runs == 1
    assert dag.catchup is False


def test_a_bar_scored_with_a_missing_feature_is_counted_not_fatal(champion, monitoring_uri):
    """One bad bar (NaN feature, scored and marked 'missing_features') in a small window passes the window's
    checks; the window summary counts it and drift is still computed."""
    conn = storage.connect(monitoring_uri)
    window = ("2008-10-01T00:00:00+00:00", "2008-10-08T00:00:00+00:00")
    assert run_window("score_signals", *window).state == "success"
    with storage.transaction(conn) as cur:  # what scoring writes for a bar with a NaN volume_z_20
        cur.execute(
            "UPDATE predictions SET features = jsonb_set(features, '{volume_z_20}', 'null'), "
            "data_quality = 'missing_features', missing_features = ARRAY['volume_z_20'] "
            "WHERE ts = (SELECT min(ts) FROM predictions) AND symbol = 'SPX'"
        )
        cur.execute(
            "SELECT count(*) FROM predictions WHERE ts >= %(s)s AND ts < %(e)s", {"s": window[0], "e": window[1]}
        )
        n = cur.fetchone()[0]
    assert 1 < n < 20  # one row is far above a 5% share of this window
    run = run_window("drift_hourly", *window)
    assert run.state == "success"
    states = _states(run)
    assert states["compute_drift"] == "success" and states["raise_data_quality_alert"] == "skipped"
    win = _rows(conn, "SELECT status, n_rows, summary FROM drift_windows WHERE window_start = %s", (window[0],))
    assert win[0]["status"] == "evaluated" and win[0]["n_rows"] == n
    assert win[0]["summary"]["missing_features"] == {"rows": 1, "features": {"volume_z_20": 1}}
    nulls = _rows(
        conn,
        "SELECT success, observed FROM data_quality_results WHERE window_start = %s "
        "AND column_name = 'volume_z_20' AND expectation LIKE %s",
        (window[0], "%null%"),
    )
    assert len(nulls) == 1 and nulls[0]["success"] is True
    assert _rows(conn, "SELECT count(*) AS n FROM alerts WHERE kind = 'data_quality'")[0]["n"] == 0
    conn.close()


def _register_copy(conn, name: str, profile, artifact_dir) -> int:
    """A champion ``name`` v1 with the bootstrapped champion's features and the given reference profile, and
    a copy of the champion's predictions: a second model version with the same window."""
    from datetime import UTC, datetime

    from include.modelwatch import registry

    src = registry.get_alias(conn, "spx_signal", registry.CHAMPION)
    mv = registry.register_version(
        conn,
        model_name=name,
        algorithm=src.algorithm,
        artifact=b"a copy for the fleet test",
        artifact_dir=artifact_dir,
        features=src.features,
        classes=src.classes,
        reference_profile=profile,
        run_id="test_fleet",
        status=registry.ACTIVE,
    )
    with storage.transaction(conn) as cur:
        registry.set_alias(
            conn, name, registry.CHAMPION, mv.version, reason="fleet test", changed_at=datetime.now(UTC), cur=cur
        )
        cur.execute(
            "INSERT INTO predictions (model_name, model_version, ts, symbol, timeframe, features, predicted_label, "
            "probabilities, confidence, data_quality, missing_features, run_id) "
            "SELECT %(name)s, %(version)s, ts, symbol, timeframe, features, predicted_label, probabilities, "
            "confidence, data_quality, missing_features, run_id FROM predictions "
            "WHERE model_name = %(src)s AND model_version = %(src_version)s",
            {"name": name, "version": mv.version, "src": src.model_name, "src_version": src.version},
        )
    return mv.version


def _drop_models(conn, names: list[str]) -> None:
    """Remove the test's extra models (the next test's fixture keeps model_versions; its alias history,
    append-only, stays)."""
    conn.rollback()
    with storage.transaction(conn) as cur:
        cur.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint "
            "WHERE confrelid = 'model_versions'::regclass AND contype = 'f'"
        )
        for (table,) in cur.fetchall():
            cur.execute(f"DELETE FROM {table} WHERE model_name = ANY(%(names)s)", {"names": names})
        for table in ("drift_results", "alerts", "notifications"):
            cur.execute(f"DELETE FROM {table} WHERE model_name = ANY(%(names)s)", {"names": names})
        cur.execute(
            "DELETE FROM data_quality_results WHERE split_part(subject, ' v', 1) = ANY(%(names)s)", {"names": names}
        )
        cur.execute("DELETE FROM model_versions WHERE model_name = ANY(%(names)s)", {"names": names})


def test_one_broken_version_of_a_chunk_does_not_stop_the_others(champion, monitoring_uri, caplog, tmp_path):
    """Issue 15: four versions in one chunk; one has a broken reference profile (evaluation raises), one none at
    all (its window check raises). The two sound ones get their drift rows; compute_drift is red, retried, and
    names each failed version with its error; the re-runs replaced the rows, never duplicated them."""
    caplog.set_level(logging.INFO, logger="include.tasks")
    conn = storage.connect(monitoring_uri)
    window = ("2008-10-01T00:00:00+00:00", "2008-10-08T00:00:00+00:00")
    assert run_window("score_signals", *window).state == "success"
    profile = dict(champion.model.reference_profile or {})
    broken = {**profile, "numeric": {**profile["numeric"], "vol_21d": "not a feature profile"}}
    extra = ["spx_broken", "spx_copy", "spx_no_profile"]
    try:
        versions = {
            "spx_broken": _register_copy(conn, "spx_broken", broken, tmp_path),
            "spx_copy": _register_copy(conn, "spx_copy", profile, tmp_path),
            "spx_no_profile": _register_copy(conn, "spx_no_profile", None, tmp_path),
        }
        run = run_window("drift_hourly", *window)
        assert run.state == "failed"
        tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
        check, compute = tis[("check_window", 0)], tis[("compute_drift", 0)]
        assert set(k for k in tis if k[0] == "compute_drift") == {("compute_drift", 0)}  # one chunk
        labels = ", ".join(f"{m} v{versions[m]}" for m in ("spx_broken", "spx_copy", "spx_no_profile"))
        chunk = f"chunk 1/1: {labels}, spx_signal v1"
        assert compute.rendered_map_index == chunk
        assert str(check.state).endswith("success")  # three of four checked; the fourth goes on to compute_drift
        assert str(compute.state).endswith("failed") and compute.try_number == 3  # retried twice
        assert _states(run)["respond_to_alerts"] == "upstream_failed"

        win = _rows(
            conn,
            "SELECT model_name, status, n_rows FROM drift_windows WHERE window_start = %s ORDER BY model_name",
            (window[0],),
        )
        n = win[0]["n_rows"] if win else 0
        assert n > 1
        assert win == [
            {"model_name": "spx_copy", "status": "evaluated", "n_rows": n},
            {"model_name": "spx_signal", "status": "evaluated", "n_rows": n},
        ]
        results = _rows(
            conn,
            "SELECT model_name, count(*) AS n FROM drift_results WHERE window_start = %s GROUP BY model_name "
            "ORDER BY model_name",
            (window[0],),
        )
        assert [r["model_name"] for r in results] == ["spx_copy", "spx_signal"]
        assert results[0]["n"] == results[1]["n"] > 0  # the same window, the same profile, the same rows
        dq = _rows(conn, "SELECT DISTINCT subject FROM data_quality_results ORDER BY subject")
        assert [r["subject"] for r in dq] == [
            f"{m} v{versions.get(m, 1)}" for m in ("spx_broken", "spx_copy", "spx_signal")
        ]

        summaries = [
            r.getMessage() for r in caplog.records if r.getMessage().startswith(f"summary: {chunk}: compute_drift")
        ]
        failed = (
            f"FAILED: spx_broken v{versions['spx_broken']}: AttributeError: 'str' object has no attribute 'get'; "
            f"spx_no_profile v{versions['spx_no_profile']}: ValueError: spx_no_profile v{versions['spx_no_profile']}"
            ": no drift reference profile stored; re-register the version"
        )
        assert summaries == [f"summary: {chunk}: compute_drift done for 2 of 4 version(s); {failed}"] * 3
        # the sound versions' window logs (summary, then page) are there on every try
        sound = [m for m in (r.getMessage() for r in caplog.records) if m.startswith("summary: spx_copy v")]
        assert len([m for m in sound if " window 2008-10-01 00:00..2008-10-08 00:00 (" in m]) == 3
    finally:
        _drop_models(conn, extra)
        conn.close()
