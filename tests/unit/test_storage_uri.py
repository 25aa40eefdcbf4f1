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
