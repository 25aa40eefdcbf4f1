"""Where the CLI finds the monitoring database: the connection variable, else the running local stack's socket."""

from __future__ import annotations

import pytest

from include.modelwatch.data import storage


def test_the_connection_variable_wins(tmp_path):
    env = {"AIRFLOW_CONN_MONITORING_DB": "postgresql://u:p@db:5432/mw", "MODELWATCH_HOME": str(tmp_path)}
    assert storage.monitoring_uri(env) == "postgresql://u:p@db:5432/mw"


def test_the_local_stack_socket_is_found(tmp_path):
    (tmp_path / "pgdata").mkdir()
    env = {"MODELWATCH_HOME": str(tmp_path)}
    with pytest.raises(RuntimeError, match="no local stack is running in"):
        storage.monitoring_uri(env)
    (tmp_path / "pgdata" / ".s.PGSQL.5432").touch()
    uri = storage.monitoring_uri(env)
    assert uri == f"postgres://postgres@{str(tmp_path / 'pgdata').replace('/', '%2F')}/modelwatch"
    assert storage.parse_conn_uri(uri)["host"] == str(tmp_path / "pgdata")


@pytest.mark.parametrize(
    ("uri", "host", "port"),
    [
        ("postgres://u@db.example:6543/mw", "db.example", 6543),
        ("postgres://u@db.example/mw", "db.example", None),
        # Airflow's Connection.get_uri() of the embedded server: the socket directory, then the port
        ("postgres://postgres@%2Ftmp%2Fmw%2Fpgdata:5432/modelwatch?sslmode=disable", "/tmp/mw/pgdata", 5432),
        ("postgres://postgres@%2Ftmp%2Fmw%2Fpgdata/modelwatch", "/tmp/mw/pgdata", None),
        ("postgres://u@[::1]:5433/mw", "::1", 5433),
    ],
)
def test_host_and_port_are_split(uri, host, port):
    got = storage.parse_conn_uri(uri)
    assert got["host"] == host and got.get("port") == port and got["dbname"] in ("mw", "modelwatch")
