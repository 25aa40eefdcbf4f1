"""airflow_settings.yaml loading/applying, the CLI, the statsd helper, URI parsing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from include.modelwatch.data import storage
from include.modelwatch.metrics import Metrics
from include.modelwatch.ops import settings

ROOT = Path(__file__).resolve().parents[2]


def test_expand_env_defaults_and_missing():
    env = {"A": "x", "EMPTY": ""}
    assert settings.expand("${A}/${B:-dflt}/${EMPTY:-e}", env) == "x/dflt/e"
    with pytest.raises(settings.SettingsError, match="MISSING"):
        settings.expand("${MISSING}", env)


def test_repo_settings_file_has_training_pool_and_monitoring_conn():
    s = settings.load(env={"MODELWATCH_DB_HOST": "/tmp/sock", "MODELWATCH_DB_PORT": "5433"})
    pools = {p["pool_name"]: p["pool_slot"] for p in s.pools}
    assert pools["training"] == 3
    conn = next(c for c in s.connections if c["conn_id"] == "monitoring_db")
    assert (conn["conn_type"], conn["conn_host"], conn["conn_port"], conn["conn_schema"]) == (
        "postgres",
        "/tmp/sock",
        5433,
        "modelwatch",
    )


def test_bad_settings_name_the_entry(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text("airflow:\n  pools:\n    - pool_name: p\n      pool_slot: -1\n")
    with pytest.raises(settings.SettingsError, match=r"pools\[0\]"):
        settings.load(f, env={})
    f.write_text("airflow:\n  connections:\n    - conn_id: c\n      conn_type: postgres\n      conn_port: abc\n")
    with pytest.raises(settings.SettingsError, match="connection c: conn_port 'abc'"):
        settings.load(f, env={})


def test_settings_apply_is_idempotent(airflow_db):
    from airflow.models.connection import Connection  # ORM models: the test reads the metadata DB's rows
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    s = settings.load()
    for _ in range(2):
        settings.apply_to_airflow(s)
    with create_session() as session:
        pools = {p.pool: p.slots for p in session.query(Pool).all()}
        conns = session.query(Connection).filter(Connection.conn_id == "monitoring_db").all()
        n_vars = session.query(Variable).filter(Variable.key.like("modelwatch_%")).count()
        assert pools["training"] == 3
        assert len(conns) == 1
        assert conns[0].schema == "modelwatch"
        assert n_vars == len(s.variables)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "include.modelwatch", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
    )


def test_cli_db_migrate_and_status(monitoring_uri):
    res = _cli("db", "migrate")
    assert res.returncode == 0, res.stderr
    assert "up to date" in res.stdout
    res = _cli("db", "status")
    assert res.returncode == 0
    assert "001  core" in res.stdout and "0 pending" in res.stdout


def test_cli_status_on_empty_database_reports_pending(pg):
    pg.ensure_database("cli_empty")
    res = _cli("db", "status", "--uri", pg.airflow_conn_uri("cli_empty"))
    assert res.returncode == 3
    assert "pending" in res.stdout


def test_parse_conn_uri_variants():
    assert storage.parse_conn_uri("postgres://u:p%40ss@db.example:5433/mw?sslmode=require") == {
        "user": "u",
        "password": "p@ss",
        "host": "db.example",
        "port": 5433,
        "dbname": "mw",
        "sslmode": "require",
    }
    assert storage.parse_conn_uri("postgres://postgres@%2FTmp%2FSock/modelwatch") == {
        "user": "postgres",
        "host": "/Tmp/Sock",
        "dbname": "modelwatch",
    }
    assert storage.parse_conn_uri("postgresql+psycopg2://postgres@/airflow?host=/tmp/s") == {
        "user": "postgres",
        "dbname": "airflow",
        "host": "/tmp/s",
    }
    with pytest.raises(ValueError, match="not a PostgreSQL"):
        storage.parse_conn_uri("mysql://x@y/z")


def test_metrics_off_is_noop_and_on_sends_statsd_packets():
    off = Metrics.from_env({})
    assert off.enabled is False
    off.incr("data_quality.failures", "spx signal", 2, count=3)
    assert off.sent == ["modelwatch.data_quality.failures.spx_signal.2:3|c"]

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    on = Metrics.from_env(
        {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(port),
        }
    )
    on.timing("drift.evaluate_seconds", 125.5, "spx_signal", 3)
    on.incr("loop.actions", "spx_signal", "drift", "fire")
    on.gauge("health.schema_version", 14)
    got = {sock.recv(512).decode() for _ in range(3)}
    sock.close()
    on.close()
    assert got == {  # as the statsd client formats them on the wire
        "modelwatch.drift.evaluate_seconds.spx_signal.3:125.500000|ms",
        "modelwatch.loop.actions.spx_signal.drift.fire:1|c",
        "modelwatch.health.schema_version:14.0|g",
    }
    on.gauge("health.schema_version", None)  # None values are skipped
    assert on.sent == [
        "modelwatch.drift.evaluate_seconds.spx_signal.3:125.5|ms",
        "modelwatch.loop.actions.spx_signal.drift.fire:1|c",
        "modelwatch.health.schema_version:14|g",
    ]
