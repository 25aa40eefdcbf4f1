"""Model registry against the embedded PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.modelwatch import registry
from include.modelwatch.data import storage

T0 = datetime(2007, 1, 2, tzinfo=UTC)


def _register(db, tmp_path, payload: bytes = b"model-bytes", **kw):
    return registry.register_version(
        db,
        model_name="m",
        algorithm="lightgbm",
        artifact=payload,
        artifact_dir=tmp_path,
        features=["f1", "f2"],
        classes=["SELL", "HOLD", "BUY"],
        feature_importance={"f1": 2.0, "f2": 1.0},
        **kw,
    )


def test_register_numbers_versions_and_hashes_artifact(db, tmp_path):
    v1 = _register(db, tmp_path, b"one")
    v2 = _register(db, tmp_path, b"two")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.artifact_sha256 == registry.sha256_bytes(b"one")
    assert registry.read_artifact(v2) == b"two"
    assert v1.features == ["f1", "f2"] and v1.feature_importance == {"f1": 2.0, "f2": 1.0}


def test_alias_change_is_recorded_with_reason_and_run(db, tmp_path):
    _register(db, tmp_path)
    _register(db, tmp_path)
    assert registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0, run_id="r1") is None
    assert registry.set_alias(db, "m", "champion", 2, reason="retrain passed gates", changed_at=T0, run_id="r2") == 1
    assert registry.get_alias(db, "m", "champion").version == 2
    hist = registry.alias_history(db, "m", "champion")
    assert [(h["from_version"], h["to_version"], h["reason"], h["run_id"]) for h in hist] == [
        (None, 1, "bootstrap", "r1"),
        (1, 2, "retrain passed gates", "r2"),
    ]
    assert registry.active_versions(db) == [{"model_name": "m", "version": 2, "aliases": ["champion"]}]


def test_alias_needs_reason_and_existing_version(db, tmp_path):
    _register(db, tmp_path)
    with pytest.raises(ValueError, match="reason"):
        registry.set_alias(db, "m", "champion", 1, reason="  ", changed_at=T0)
    with pytest.raises(registry.RegistryError, match="no version 7"):
        registry.set_alias(db, "m", "champion", 7, reason="x", changed_at=T0)
    assert registry.alias_history(db, "m") == []  # nothing half-applied


def test_corrupted_artifact_is_refused(db, tmp_path):
    mv = _register(db, tmp_path, b"original")
    registry.set_alias(db, "m", "champion", mv.version, reason="bootstrap", changed_at=T0)
    with open(mv.artifact_path, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(registry.ArtifactIntegrityError, match="m v1.*refusing"):
        registry.load_by_alias(db, "m", "champion")


def test_failed_registration_leaves_no_file_and_no_row(db, tmp_path):
    import psycopg

    with pytest.raises(psycopg.errors.DataError, match="not-a-date"):
        _register(db, tmp_path, dataset_fingerprint="x", train_start="not-a-date")
    assert not list(tmp_path.rglob("model.bin"))
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM model_versions")
        assert cur.fetchone()[0] == 0
    db.rollback()


def test_unknown_alias_message_names_model(db):
    with pytest.raises(registry.RegistryError, match="model nope has no 'champion' alias"):
        registry.get_alias(db, "nope", "champion")


def test_registration_inside_a_failed_caller_transaction_leaves_no_version(db, tmp_path):
    """retrain_gated registers a candidate with its baseline, gates and job outcome in one
    transaction: when a later step fails, no half-registered version remains."""
    from include.modelwatch.data import storage

    with pytest.raises(RuntimeError, match="gate rows"):
        with storage.transaction(db) as cur:
            mv = registry.register_version(
                db,
                model_name="m",
                algorithm="lightgbm",
                artifact=b"candidate",
                artifact_dir=tmp_path,
                features=["f"],
                classes=["A", "B"],
                cur=cur,
            )
            assert mv.version == 1 and mv.artifact_sha256
            raise RuntimeError("writing gate rows failed")
    assert storage.fetch_dicts(db, "SELECT count(*) AS n FROM model_versions")[0]["n"] == 0
    db.rollback()
    again = _register(db, tmp_path, b"next")  # the version number is free again
    assert again.version == 1 and registry.read_artifact(again) == b"next"


# ------------------------------------------------------------------ lifecycle (defect 5, migration 008)


def _statuses(db) -> dict[int, str]:
    out = registry.version_statuses(db, "m")
    db.rollback()
    return out


def test_lifecycle_candidate_active_retired_and_back(db, tmp_path):
    _register(db, tmp_path, b"one")
    _register(db, tmp_path, b"two")
    assert _statuses(db) == {1: "candidate", 2: "candidate"}
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    assert _statuses(db) == {1: "active", 2: "candidate"}
    registry.set_alias(db, "m", "champion", 2, reason="deploy", changed_at=T0)
    assert _statuses(db) == {1: "retired", 2: "active"}
    registry.set_alias(db, "m", "champion", 1, reason="rollback", changed_at=T0)  # retired -> active
    assert _statuses(db) == {1: "active", 2: "retired"}


def test_a_version_holding_another_alias_stays_active(db, tmp_path):
    for payload in (b"one", b"two", b"three"):
        _register(db, tmp_path, payload)
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    registry.set_alias(db, "m", "challenger", 2, reason="A/B test", changed_at=T0)
    assert _statuses(db) == {1: "active", 2: "active", 3: "candidate"}
    registry.set_alias(db, "m", "champion", 2, reason="challenger won", changed_at=T0)
    assert _statuses(db) == {1: "retired", 2: "active", 3: "candidate"}
    registry.set_alias(db, "m", "challenger", None, reason="A/B test over", changed_at=T0)
    assert _statuses(db) == {1: "retired", 2: "active", 3: "candidate"}  # still champion
    assert registry.active_versions(db) == [{"model_name": "m", "version": 2, "aliases": ["champion"]}]


def test_bootstrap_registers_active_and_nothing_else_is_accepted(db, tmp_path):
    mv = _register(db, tmp_path, b"boot", status="active")
    assert mv.status == "active"
    with pytest.raises(ValueError, match="registered as 'candidate' or 'active', not 'retired'"):
        _register(db, tmp_path, b"x", status="retired")


@pytest.mark.parametrize(
    "before, after",
    [
        ("candidate", "retired"),
        ("active", "candidate"),
        ("active", "rejected"),
        ("retired", "rejected"),
        ("retired", "candidate"),
        ("rejected", "active"),
        ("rejected", "candidate"),
        ("active", "registered"),
    ],
)
def test_postgres_refuses_an_illegal_transition(db, tmp_path, before, after):
    import psycopg

    _register(db, tmp_path, b"one")
    path = {"candidate": [], "active": ["active"], "retired": ["active", "retired"], "rejected": ["rejected"]}[before]
    with storage.transaction(db) as cur:
        for step in path:
            cur.execute("UPDATE model_versions SET status = %(s)s WHERE model_name = 'm' AND version = 1", {"s": step})
    with pytest.raises(psycopg.errors.CheckViolation, match="illegal status transition|status_check"):
        with storage.transaction(db) as cur:
            cur.execute("UPDATE model_versions SET status = %(s)s WHERE model_name = 'm' AND version = 1", {"s": after})
    assert _statuses(db) == {1: before}


def test_postgres_refuses_a_new_version_that_starts_retired(db):
    import psycopg

    with pytest.raises(psycopg.errors.CheckViolation, match="starts as candidate or active, not retired"):
        with storage.transaction(db) as cur:
            cur.execute(
                "INSERT INTO model_versions (model_name, version, algorithm, features, classes, status) "
                "VALUES ('m', 1, 'lightgbm', '[]', '[]', 'retired')"
            )


def test_a_rejected_version_cannot_take_an_alias(db, tmp_path):
    import psycopg

    _register(db, tmp_path, b"one")
    _register(db, tmp_path, b"two")
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    registry.set_status(db, "m", 2, "rejected")
    with pytest.raises(psycopg.errors.CheckViolation, match="rejected -> active"):
        registry.set_alias(db, "m", "champion", 2, reason="deploy anyway", changed_at=T0)
    assert registry.resolve_alias(db, "m", "champion") == 1 and _statuses(db) == {1: "active", 2: "rejected"}
    assert len(registry.alias_history(db, "m")) == 1  # nothing half-applied
