"""Glue shared by every DAG: default args, the monitoring DB connection, the
run's data interval. Light imports only: DAG files import this at parse time."""

from __future__ import annotations

import os
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


def monitoring_conn():
    """psycopg2 connection to the monitoring database (Airflow connection ``monitoring_db``).

    Resolved through Airflow (env var, secrets backend or metadata DB), opened
    with psycopg2 like the CLI does, so tasks and CLI share one code path.
    """
    import psycopg2
    from airflow.sdk import BaseHook

    c = BaseHook.get_connection(MONITORING_CONN_ID)
    kwargs = {"host": c.host, "port": c.port, "user": c.login, "password": c.password, "dbname": c.schema}
    kwargs.update({k: v for k, v in (c.extra_dejson or {}).items() if k in {"sslmode", "sslrootcert", "connect_timeout", "application_name"}})
    return psycopg2.connect(**{k: v for k, v in kwargs.items() if v not in (None, "")})


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
