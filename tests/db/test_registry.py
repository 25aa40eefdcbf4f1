"""Model registry against the embedded PostgreSQL."""

from __future__ import annotations

import errno
import os
import re
import resource
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.modelwatch import registry
from include.modelwatch.data import storage
from include.modelwatch.registry import artifacts
from tests.db.dbstate import snapshot

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_TABLES = ("monitored_models", "model_versions", "model_aliases", "model_alias_history")

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
    with open(tmp_path / "m" / "v1" / "model.bin", "ab") as fh:
        fh.write(b"tampered")
    found, registered = registry.sha256_bytes(b"originaltampered"), registry.sha256_bytes(b"original")
    with pytest.raises(registry.ArtifactIntegrityError) as refused:
        registry.load_by_alias(db, "m", "champion")
    assert str(refused.value) == (
        f"m v1: artifact file://{tmp_path}/m/v1/model.bin has SHA-256 {found}, the registry expects {registered}; "
        "refusing to load a modified or corrupted model"
    )
    assert (refused.value.version, refused.value.expected, refused.value.actual) == (1, registered, found)
    (tmp_path / "m" / "v1" / "model.bin").unlink()
    with pytest.raises(registry.ArtifactIntegrityError, match=f"m v1: artifact file://.* is missing .*{registered}"):
        registry.load_by_alias(db, "m", "champion")


# ------------------------------------------------------------------ artifact stores (issue 20: shared artifacts)


def test_a_local_folder_is_stored_as_a_file_url_written_atomically(db, tmp_path):
    mv = _register(db, tmp_path, b"local bytes")
    assert mv.artifact_path == mv.artifact_url == f"file://{tmp_path}/m/v1/model.bin"
    assert (tmp_path / "m" / "v1" / "model.bin").read_bytes() == b"local bytes"
    assert [p.name for p in (tmp_path / "m" / "v1").iterdir()] == ["model.bin"]  # no temporary file left
    assert registry.read_artifact(mv) == b"local bytes"


def test_a_relative_folder_becomes_an_absolute_file_url(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mv = _register(db, ".modelwatch/artifacts", b"relative")
    assert mv.artifact_path == f"file://{tmp_path}/.modelwatch/artifacts/m/v1/model.bin"


def test_a_row_registered_with_a_plain_path_still_loads(db, tmp_path):
    """Rows written before artifacts moved to URLs hold a plain local path: read as a local file, hash-checked."""
    mv = _register(db, tmp_path, b"old row")
    plain = str(tmp_path / "m" / "v1" / "model.bin")
    with storage.transaction(db) as cur:
        cur.execute("UPDATE model_versions SET artifact_path = %(p)s WHERE model_name = 'm'", {"p": plain})
    registry.set_alias(db, "m", "champion", mv.version, reason="bootstrap", changed_at=T0)
    old, data = registry.load_by_alias(db, "m", "champion")
    assert (old.artifact_path, old.artifact_url, data) == (plain, f"file://{plain}", b"old row")
    (tmp_path / "m" / "v1" / "model.bin").write_bytes(b"old r0w")
    with pytest.raises(registry.ArtifactIntegrityError, match=f"m v1: artifact file://{plain} has SHA-256"):
        registry.load_by_alias(db, "m", "champion")


def test_an_fsspec_memory_store(db, tmp_path):
    store = f"memory://registry-test-{tmp_path.name}/artifacts"
    v1 = _register(db, store, b"in memory")
    v2 = _register(db, store + "/", b"second")  # a trailing slash is the same store
    assert v1.artifact_path == f"{store}/m/v1/model.bin" and v2.artifact_path == f"{store}/m/v2/model.bin"
    assert (registry.read_artifact(v1), registry.read_artifact(v2)) == (b"in memory", b"second")
    assert v1.artifact_sha256 == registry.sha256_bytes(b"in memory")
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0)
    artifacts.path(v1.artifact_path).write_bytes(b"in mem0ry")
    with pytest.raises(registry.ArtifactIntegrityError) as refused:
        registry.load_by_alias(db, "m", "champion")
    assert str(refused.value).startswith(
        f"m v1: artifact {store}/m/v1/model.bin has SHA-256 {registry.sha256_bytes(b'in mem0ry')}, "
        f"the registry expects {v1.artifact_sha256}; refusing"
    )


def test_another_worker_process_loads_what_this_one_registered(db, tmp_path, monitoring_uri):
    """The registry row alone tells a second worker where the artifact is: the subprocess has another working
    directory and another MODELWATCH_ARTIFACT_DIR, and loads the champion by its stored file:// URL."""
    store = f"file://{tmp_path}/shared"
    payload = os.urandom(50_000)
    mv = _register(db, store, payload)
    registry.set_alias(db, "m", "champion", mv.version, reason="bootstrap", changed_at=T0)
    worker = tmp_path / "worker2"
    worker.mkdir()
    code = (
        "import sys\n"
        "from include.modelwatch import registry\n"
        "from include.modelwatch.data import storage\n"
        "with storage.session(sys.argv[1]) as conn:\n"
        "    mv, blob = registry.load_by_alias(conn, 'm', 'champion')\n"
        "print(mv.artifact_path, registry.sha256_bytes(blob), len(blob))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODELWATCH_ARTIFACT_DIR": str(worker / "elsewhere")}
    done = subprocess.run(
        [sys.executable, "-c", code, monitoring_uri], cwd=worker, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"{store}/m/v1/model.bin", registry.sha256_bytes(payload), "50000"]


@pytest.fixture(params=["tmpfs", "fsize_limit"])
def full_disk(request, tmp_path):
    """A local store that fails writes past 64 KiB, by a real mechanism: a 64 KiB tmpfs (``mount``, needs root:
    ENOSPC) or this process's file-size limit (``RLIMIT_FSIZE``: EFBIG). Yields (folder, errno)."""
    where = tmp_path / "store"
    where.mkdir()
    if request.param == "tmpfs":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip(f"mount refused ({mounted.stderr.decode().strip()}); the fsize_limit case covers the fault")
        try:
            yield where, errno.ENOSPC
        finally:
            subprocess.run(["umount", str(where)], check=True)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        yield where, errno.EFBIG
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_full_disk_registers_nothing(db, full_disk):
    """Issue 20 fault: the artifact write fails (disk full). No version is registered without its artifact, the
    error names the model, version and URL, the registry tables are unchanged, no partial file is left."""
    where, code = full_disk
    v1 = _register(db, where, b"fits")
    registry.set_alias(db, "m", "champion", v1.version, reason="bootstrap", changed_at=T0)
    before = snapshot(db, *REGISTRY_TABLES)
    big = os.urandom(200_000)
    for model in ("m", "fresh"):  # a new version of a known model, and a model's first version
        url = f"file://{where}/{model}/v{2 if model == 'm' else 1}/model.bin"
        with pytest.raises(registry.ArtifactStoreError) as failed:
            registry.register_version(
                db, model_name=model, algorithm="lightgbm", artifact=big, artifact_dir=where, features=["f"],
                classes=["A", "B"],
            )  # fmt: skip
        assert re.fullmatch(
            rf"{model} v\d: writing its artifact \(200000 bytes\) to {re.escape(url)} failed: .*; "
            "the version is not registered",
            str(failed.value),
        ), str(failed.value)
        assert failed.value.__cause__.errno == code
    assert snapshot(db, *REGISTRY_TABLES) == before
    assert before["model_versions"][0] == 1 and before["model_alias_history"][0] == 1
    files = sorted(str(p.relative_to(where)) for p in where.rglob("*") if p.is_file())
    assert files == ["m/v1/model.bin"]  # no partial model.bin, no temporary file
    # the failed write freed its space: a version that fits is registered as v2
    assert _register(db, where, b"fits too").version == 2


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
