"""Glue shared by every DAG: default args, the monitoring DB connection, the
run's data interval. Light imports only: DAG files import this at parse time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

OWNER = "modelwatch"
MONITORING_CONN_ID = "monitoring_db"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def monitoring_conn():
    """psycopg2 connection to the monitoring database (Airflow connection ``monitoring_db``)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=MONITORING_CONN_ID).get_conn()


def data_interval(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """The run's data interval; tasks key every write on it (never on wall-clock now())."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        anchor = context.get("logical_date") or context["dag_run"].run_after
        start = end = anchor
    return start, end


def run_id(context: dict[str, Any]) -> str:
    return str(context["run_id"])
