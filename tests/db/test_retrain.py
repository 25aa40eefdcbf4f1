"""Retraining bookkeeping (claim, datasets, jobs, gates, deploy, rollback) on the embedded PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest

from include.modelwatch import registry
from include.modelwatch.data import storage
from include.modelwatch.registry import artifacts
from include.modelwatch.training import retrain
from include.modelwatch.training.gates import GateResult

T0 = datetime(2008, 10, 1, tzinfo=UTC)
T1 = datetime(2008, 11, 1, tzinfo=UTC)


def _trigger(db, model="m", priority="medium", at=T0, status="pending") -> int:
    with storage.transaction(db) as cur:
        cur.execute(
            "INSERT INTO retraining_triggers (model_name, model_version, trigger_type, retrain_mode, priority, "
            "rule_name, reason, status, window_start, window_end, triggered_at) "
            "VALUES (%s, 1, 'drift', 'full', %s, 'drift_rule', 'drift score 0.4 > 0.25', %s, %s, %s, %s) "
            "RETURNING trigger_id",
            (model, priority, status, at, at, at),
        )
        return int(cur.fetchone()[0])


def _register(db, tmp_path, payload: bytes, model="m"):
    return registry.register_version(
        db,
        model_name=model,
        algorithm="lightgbm",
        artifact=payload,
        artifact_dir=tmp_path,
        features=["f"],
        classes=["SELL", "HOLD", "BUY"],
    )


def _status(db, tid):
    return retrain.get_trigger(db, tid)


def test_claim_takes_most_urgent_then_nothing(db):
    low = _trigger(db, "a", "low", T0)
    crit = _trigger(db, "b", "critical", T1)
    first = retrain.claim_trigger(db, run_id="r1", claimed_at=T1)
    assert first["trigger_id"] == crit and first["status"] == "claimed" and first["claimed_by"] == "r1"
    # the same run asking again gets its own claim back (task retry)
    assert retrain.claim_trigger(db, run_id="r1", claimed_at=T1)["trigger_id"] == crit
    second = retrain.claim_trigger(db, run_id="r2", claimed_at=T1)
    assert second["trigger_id"] == low
    assert retrain.claim_trigger(db, run_id="r3", claimed_at=T1) is None


def test_model_with_claimed_trigger_is_skipped(db):
    _trigger(db, "m", "high", T0, status="claimed")
    _trigger(db, "m", "critical", T1)
    assert retrain.claim_trigger(db, run_id="r9", claimed_at=T1) is None


def test_concurrent_claims_never_share_a_trigger(db, monitoring_uri):
    tid = _trigger(db)
    got: list = []
    barrier = threading.Barrier(6)

    def worker(i):
        with storage.session(monitoring_uri) as conn:
            barrier.wait()
            got.append(retrain.claim_trigger(conn, run_id=f"run{i}", claimed_at=T1))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [g for g in got if g is not None]
    assert len(got) == 6 and len(claimed) == 1 and claimed[0]["trigger_id"] == tid


def test_dataset_versioning_is_idempotent(db):
    tid = _trigger(db)
    a = retrain.record_dataset(
        db,
        trigger_id=tid,
        model_name="m",
        fingerprint="abc",
        date_start=date(2007, 1, 1),
        date_end=date(2008, 9, 30),
        rows_per_class={"SELL": 10, "HOLD": 20, "BUY": 5},
    )
    b = retrain.record_dataset(
        db,
        trigger_id=tid,
        model_name="m",
        fingerprint="abc",
        date_start=date(2007, 1, 1),
        date_end=date(2008, 9, 30),
        rows_per_class={"SELL": 10, "HOLD": 20, "BUY": 5},
    )
    assert a == b
    row = storage.fetch_dicts(db, "SELECT n_rows, rows_per_class FROM training_datasets")
    db.rollback()
    assert row == [{"n_rows": 35, "rows_per_class": {"SELL": 10, "HOLD": 20, "BUY": 5}}]


def test_job_lifecycle_and_retry(db):
    tid = _trigger(db)
    j = retrain.start_job(
        db,
        trigger_id=tid,
        dataset_id=None,
        model_name="m",
        algorithm="xgboost",
        retrain_mode="full",
        params={"rounds": 50},
        started_at=T1,
        run_id="r1",
    )
    retrain.finish_job(db, j, status="failed", duration_s=1.5, finished_at=T1, error="boom")
    j2 = retrain.start_job(
        db,
        trigger_id=tid,
        dataset_id=None,
        model_name="m",
        algorithm="xgboost",
        retrain_mode="full",
        params={"rounds": 50},
        started_at=T1,
        run_id="r1",
    )
    assert j2 == j
    retrain.finish_job(
        db, j, status="succeeded", duration_s=2.0, finished_at=T1, candidate_version=2, metrics={"accuracy": 0.4}
    )
    r = storage.fetch_dicts(db, "SELECT status, error, candidate_version, duration_s, metrics FROM training_jobs")
    db.rollback()
    assert r == [
        {"status": "succeeded", "error": None, "candidate_version": 2, "duration_s": 2.0, "metrics": {"accuracy": 0.4}}
    ]


def test_gate_rows_replace_on_rerun(db):
    tid = _trigger(db)
    res = [
        GateResult("performance", "pass", 0.4, 0.05, {"p": 0.01}, "ok"),
        GateResult("calibration", "fail", float("nan"), 0.1, {}, "ece too high"),
    ]
    for _ in range(2):
        retrain.record_gates(
            db,
            trigger_id=tid,
            job_id=1,
            model_name="m",
            candidate_version=2,
            champion_version=1,
            results=res,
            evaluated_at=T1,
            run_id="r1",
        )
    r = storage.fetch_dicts(db, "SELECT gate, status, value FROM quality_gate_results ORDER BY gate")
    db.rollback()
    assert r == [
        {"gate": "calibration", "status": "fail", "value": None},
        {"gate": "performance", "status": "pass", "value": 0.4},
    ]


def test_deploy_is_atomic_and_closes_trigger(db, tmp_path):
    tid = _trigger(db)
    retrain.claim_trigger(db, run_id="r1", claimed_at=T1)
    _register(db, tmp_path, b"one")
    _register(db, tmp_path, b"two")
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    with pytest.raises(registry.RegistryError):
        retrain.deploy(db, model_name="m", version=9, reason="x", changed_at=T1, run_id="r1", trigger_id=tid)
    assert registry.resolve_alias(db, "m", "champion") == 1 and _status(db, tid)["status"] == "claimed"
    prev = retrain.deploy(
        db,
        model_name="m",
        version=2,
        reason="retrain (trigger 1): gates passed",
        changed_at=T1,
        run_id="r1",
        trigger_id=tid,
    )
    assert prev == 1 and registry.resolve_alias(db, "m", "champion") == 2
    t = _status(db, tid)
    assert (t["status"], t["outcome"], t["result"]["deployed_version"], t["result"]["previous_version"]) == (
        "done",
        "deployed",
        2,
        1,
    )
    assert retrain.previous_alias_version(db, "m") == 1


def test_deploy_rolls_back_alias_when_trigger_not_claimed(db, tmp_path):
    tid = _trigger(db)  # still pending: closing it must fail, and the alias must stay
    _register(db, tmp_path, b"one")
    _register(db, tmp_path, b"two")
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    with pytest.raises(retrain.RetrainError, match=f"trigger {tid} is not claimed"):
        retrain.deploy(db, model_name="m", version=2, reason="x", changed_at=T1, run_id="r1", trigger_id=tid)
    assert registry.resolve_alias(db, "m", "champion") == 1
    assert len(registry.alias_history(db, "m")) == 1


def test_rollback_restores_and_refuses_corrupted(db, tmp_path):
    v1 = _register(db, tmp_path, b"one")
    _register(db, tmp_path, b"two")
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    registry.set_alias(db, "m", "champion", 2, reason="deploy", changed_at=T1)
    assert retrain.rollback(db, model_name="m", target_version=1, reason="live worse", changed_at=T1, run_id="rb") == 2
    assert registry.load_by_alias(db, "m")[1] == b"one"
    with pytest.raises(retrain.RetrainError, match="already is champion"):
        retrain.rollback(db, model_name="m", target_version=1, reason="x", changed_at=T1, run_id="rb")
    registry.set_alias(db, "m", "champion", 2, reason="deploy again", changed_at=T1)
    artifacts.path(v1.artifact_path).write_bytes(b"tampered")
    with pytest.raises(registry.ArtifactIntegrityError):
        retrain.rollback(db, model_name="m", target_version=1, reason="x", changed_at=T1, run_id="rb")
    assert registry.resolve_alias(db, "m", "champion") == 2


def test_pick_candidate_prefers_verdict_then_accuracy():
    c = [
        {"version": 2, "status": "reject", "oos_accuracy": 0.9},
        {"version": 3, "status": "review", "oos_accuracy": 0.4},
        {"version": 4, "status": "review", "oos_accuracy": 0.5},
    ]
    assert retrain.pick_candidate(c)["version"] == 4
    assert retrain.pick_candidate(c + [{"version": 5, "status": "deploy", "oos_accuracy": 0.1}])["version"] == 5
    with pytest.raises(retrain.RetrainError, match="no candidate"):
        retrain.pick_candidate([None])


def _candidates(db, tmp_path, tid) -> tuple[int, int]:
    """Champion v1 and two candidates (v2 lightgbm, v3 xgboost) trained for trigger ``tid``."""
    _register(db, tmp_path, b"one")
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    out = []
    for algo, payload in (("lightgbm", b"two"), ("xgboost", b"three")):
        mv = _register(db, tmp_path, payload)
        job = retrain.start_job(
            db,
            trigger_id=tid,
            dataset_id=None,
            model_name="m",
            algorithm=algo,
            retrain_mode="full",
            params={},
            started_at=T1,
            run_id="r1",
        )
        retrain.finish_job(db, job, status="succeeded", duration_s=1.0, finished_at=T1, candidate_version=mv.version)
        out.append(mv.version)
    return out[0], out[1]


def _lifecycle(db) -> dict[int, str]:
    out = registry.version_statuses(db, "m")
    db.rollback()
    return out


def test_deploy_activates_retires_the_champion_and_rejects_the_other_candidate(db, tmp_path):
    tid = _trigger(db)
    retrain.claim_trigger(db, run_id="r1", claimed_at=T1)
    best, other = _candidates(db, tmp_path, tid)
    assert _lifecycle(db) == {1: "active", best: "candidate", other: "candidate"}
    retrain.deploy(db, model_name="m", version=best, reason="gates passed", changed_at=T1, run_id="r1", trigger_id=tid)
    assert _lifecycle(db) == {1: "retired", best: "active", other: "rejected"}


def test_reject_marks_every_candidate_of_the_trigger_and_keeps_the_champion(db, tmp_path):
    tid = _trigger(db)
    retrain.claim_trigger(db, run_id="r1", claimed_at=T1)
    best, other = _candidates(db, tmp_path, tid)
    assert retrain.reject(
        db, trigger_id=tid, outcome="rejected: performance", result={"candidate_version": best}, completed_at=T1
    ) == [best, other]
    assert _lifecycle(db) == {1: "active", best: "rejected", other: "rejected"}
    assert _status(db, tid)["outcome"] == "rejected: performance" and registry.resolve_alias(db, "m", "champion") == 1


def test_rollback_reactivates_the_target_and_refuses_a_version_that_never_served(db, tmp_path):
    _register(db, tmp_path, b"one")
    _register(db, tmp_path, b"two")
    _register(db, tmp_path, b"three")
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    registry.set_alias(db, "m", "champion", 2, reason="deploy", changed_at=T1)
    with pytest.raises(retrain.RetrainError, match="version 3 is candidate, it never served"):
        retrain.rollback(db, model_name="m", target_version=3, reason="x", changed_at=T1, run_id="rb")
    assert retrain.rollback(db, model_name="m", target_version=1, reason="live worse", changed_at=T1, run_id="rb") == 2
    assert _lifecycle(db) == {1: "active", 2: "retired", 3: "candidate"}
