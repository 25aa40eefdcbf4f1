"""Glue shared by every DAG: default args, the monitoring DB connection, the
run's data interval. Light imports only: DAG files import this at parse time."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from typing import Any

OWNER = "modelwatch"
MONITORING_CONN_ID = "monitoring_db"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    # MODELWATCH_RETRY_DELAY_SECONDS shortens the wait (tests use 1 s)
    "retry_delay": timedelta(seconds=int(os.environ.get("MODELWATCH_RETRY_DELAY_SECONDS", "120"))),
}


def monitoring_db() -> AbstractContextManager[Any]:
    """``with monitoring_db() as conn:`` a psycopg (3) connection to the monitoring database.

    Opened through ``PostgresHook`` on the Airflow connection ``monitoring_db``
    (env var, secrets backend or metadata DB; every connection extra is
    honoured) and closed when the block ends. The one way tasks reach the DB.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from include.modelwatch.data import storage

    return storage.session(opener=lambda: storage.client_side(PostgresHook(postgres_conn_id=MONITORING_CONN_ID).get_conn()))


def data_interval(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """The run's data interval; tasks key every write on it (never on wall-clock now())."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        anchor = context.get("logical_date") or context["dag_run"].run_after
        start = end = anchor
    return start, end


def window(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """The window a run works on: its data interval, unless the run's params name one.

    ``window_start``/``window_end`` params (ISO timestamps, UTC if naive) let a
    user re-run any window from the trigger form; tests use them too.
    """
    params = context.get("params") or {}
    ws, we = params.get("window_start"), params.get("window_end")
    if ws and we:
        start, end = _utc(ws), _utc(we)
        if end <= start:
            raise ValueError(f"window_end {end} must be after window_start {start}")
        return start, end
    return data_interval(context)


def _utc(value: Any) -> datetime:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def window_params() -> dict[str, Any]:
    """DAG params that expose the window override in the trigger form."""
    from airflow.sdk import Param

    return {
        "window_start": Param(None, type=["null", "string"], description="optional ISO start; default: the data interval"),
        "window_end": Param(None, type=["null", "string"], description="optional ISO end (exclusive)"),
    }


def run_id(context: dict[str, Any]) -> str:
    return str(context["run_id"])
