"""rollback_model end to end: a rollback restores the earlier champion exactly."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pendulum

from include.modelwatch import registry, vocabulary
from include.modelwatch.data import features, storage
from include.modelwatch.registry import artifacts
from include.modelwatch.training import retrain, training
from tests.e2e.conftest import get_dag, rows, run_window

T_DEPLOY = datetime(2008, 9, 1, tzinfo=UTC)
PRED_SQL = (
    "SELECT model_version, symbol, ts, probabilities::text AS p, predicted_label FROM predictions ORDER BY symbol, ts"
)


def _register_v2(conn, champion) -> registry.ModelVersion:
    """A second version: the champion retrained for 10 more rounds (warm start) on its own rows."""
    import pandas as pd

    from include.modelwatch.ops import bootstrap

    bars = bootstrap.load_clean_bars(["SPX"])
    panel = bootstrap.feature_panel(bars[bars["date"] < pd.Timestamp("2007-01-01")], pd.Timestamp("2007-01-01"))
    panel = panel[panel["label"].notna()].tail(600)
    old = training.deserialize_model(registry.read_artifact(champion.model))
    model = training.train_model(
        "lightgbm",
        panel[list(features.FEATURE_COLUMNS)],
        panel["label"].astype(str),
        init_model=old,
        num_boost_round=10,
    )
    return registry.register_version(
        conn,
        model_name="spx_signal",
        algorithm="lightgbm",
        artifact=training.serialize_model(model),
        artifact_dir=os.environ["MODELWATCH_ARTIFACT_DIR"],
        features=list(features.FEATURE_COLUMNS),
        classes=list(vocabulary.CLASSES),
        run_id="test_rollback",
    )


def _rollback(conf: dict):
    dr = get_dag("rollback_model").test(logical_date=pendulum.parse("2008-10-02"), run_conf=conf)
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def test_rollback_restores_identical_predictions(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    v1 = champion.model.version
    run_window("score_signals", "2008-09-01", "2008-10-01")
    before = rows(conn, PRED_SQL)
    assert len(before) > 10 and {r["model_version"] for r in before} == {v1}

    v2 = _register_v2(conn, champion)
    assert (
        retrain.deploy(
            conn,
            model_name="spx_signal",
            version=v2.version,
            reason="test: deploy v2",
            changed_at=T_DEPLOY,
            run_id="test",
        )
        == v1
    )
    run_window("score_signals", "2008-09-01", "2008-10-01")
    with_v2 = rows(conn, PRED_SQL + "")
    assert {r["model_version"] for r in with_v2} >= {v2.version}

    dr, st = _rollback({"model_name": "spx_signal", "target_version": v1, "reason": "v2 worse live"})
    assert str(dr.state) == "success" and st["rollback_champion"] == "success" and st["keep_champion"] == "skipped"
    assert registry.resolve_alias(conn, "spx_signal", "champion") == v1
    last = registry.alias_history(conn, "spx_signal", "champion")[-1]
    assert (last["from_version"], last["to_version"]) == (v2.version, v1)
    assert last["reason"] == "rollback: manual: v2 worse live" and last["run_id"] == dr.run_id
    # lifecycle: the restored version is active again, the one it replaced retired
    statuses = registry.version_statuses(conn, "spx_signal")
    conn.rollback()
    assert (statuses[v1], statuses[v2.version]) == ("active", "retired")

    with storage.transaction(conn) as cur:  # forget every prediction, so the re-score is compared from scratch
        cur.execute("TRUNCATE predictions, outcomes, active_learning_queue")
    run_window("score_signals", "2008-09-01", "2008-10-01")
    after = rows(conn, PRED_SQL)
    assert after == before  # same version, same rows, byte-identical probabilities
    conn.close()


def test_corrupted_artifact_is_refused(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    v2 = _register_v2(conn, champion)
    retrain.deploy(
        conn, model_name="spx_signal", version=v2.version, reason="test: deploy v2", changed_at=T_DEPLOY, run_id="test"
    )
    v3 = _register_v2(conn, champion)
    stored = artifacts.path(v3.artifact_path)
    corrupted = stored.read_bytes() + b"corrupt"
    stored.write_bytes(corrupted)
    dr, st = _rollback({"model_name": "spx_signal", "target_version": v3.version, "reason": "bad target"})
    assert str(dr.state) == "failed" and st["rollback_champion"] == "failed"
    assert registry.resolve_alias(conn, "spx_signal", "champion") == v2.version
    # the refusal is a critical artifact_integrity alert of the refused version (committed although the task failed)
    with conn.cursor() as cur:
        cur.execute("SELECT model_version, kind, severity, status, title, message FROM alerts")
        alerts = cur.fetchall()
    found = registry.sha256_bytes(corrupted)
    assert alerts == [
        (
            v3.version,
            "artifact_integrity",
            "critical",
            "open",
            f"spx_signal v{v3.version}: artifact refused by rollback_model",
            f"artifact {v3.artifact_path}: registered SHA-256 {v3.artifact_sha256}, found SHA-256 {found}; "
            "not restored",
        )
    ]
    conn.close()


def test_automatic_without_live_evidence_keeps_champion(champion, monitoring_uri):
    dr, st = _rollback({})
    assert str(dr.state) == "success" and st["keep_champion"] == "success" and st["rollback_champion"] == "skipped"


def test_manual_rollback_without_reason_fails_without_retrying(champion, monitoring_uri, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="include.tasks")
    conn = storage.connect(monitoring_uri)
    v2 = _register_v2(conn, champion)
    retrain.deploy(
        conn, model_name="spx_signal", version=v2.version, reason="test: deploy v2", changed_at=T_DEPLOY, run_id="test"
    )
    dr, st = _rollback({"model_name": "spx_signal", "target_version": champion.model.version, "reason": "  "})
    # failed at once (a bad request does not get better on retry), nothing changed
    assert st["plan_rollback"] == "failed" and st["rollback_champion"] == "upstream_failed"
    assert registry.resolve_alias(conn, "spx_signal", "champion") == v2.version
    # the failure notifier of every task: no modelwatch_smtp connection here, so the message is logged, once
    sent = [r.getMessage() for r in caplog.records if "task failure notification" in r.getMessage()]
    assert len(sent) == 1, sent
    assert sent[0].startswith(
        "task failure notification not sent (no modelwatch_smtp connection): "
        "[ModelWatch] task failed: rollback_model.plan_rollback (manual__"
    )
    assert "Error: " in sent[0] and "reason" in sent[0]
    conn.close()
