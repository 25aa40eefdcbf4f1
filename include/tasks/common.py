"""Glue shared by every DAG: default args, the monitoring DB connection, the
run's data interval. Light imports only: DAG files import this at parse time."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from include.tasks.notify import TaskFailureNotifier

OWNER = "modelwatch"
MONITORING_CONN_ID = "monitoring_db"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    # a killed task (a worker lost, PostgreSQL restarted) retries after 15-30 s, then 30-60 s (Airflow doubles the
    # delay per try and adds up to the same again as jitter), never more than 10 minutes;
    # MODELWATCH_RETRY_DELAY_SECONDS sets the first delay (tests use 1 s)
    "retry_delay": timedelta(seconds=int(os.environ.get("MODELWATCH_RETRY_DELAY_SECONDS", "15"))),
    "retry_exponential_backoff": 2.0,  # the multiplier (Airflow 3: a float; True would mean 1, no backoff)
    "max_retry_delay": timedelta(minutes=10),
    # a hung task (a stuck query, a training run that never ends) fails and frees its pool slot; the slowest
    # task measured, a candidate's training on a shared 2-core machine, takes under 2 minutes
    "execution_timeout": timedelta(minutes=30),
    # a task that failed for good is mailed (or logged without the modelwatch_smtp connection)
    "on_failure_callback": [TaskFailureNotifier()],
}


@dataclass(frozen=True)
class Sandbox:
    """Where a policy replay (``include/tasks/policy.py``) runs the task bodies instead of Airflow's: the monitoring
    database ``uri`` (its own schema) and the ModelWatch Variables ``variables`` (the rest keep their defaults; the
    live Variables are not read, so a replay depends on its inputs only). No mail is sent from a sandbox."""

    uri: str
    variables: Mapping[str, Any] = field(default_factory=dict)


_SANDBOX: ContextVar[Sandbox | None] = ContextVar("modelwatch_sandbox", default=None)


def sandbox() -> Sandbox | None:
    """The sandbox the task bodies run in, or None (the normal case: a task of a DAG)."""
    return _SANDBOX.get()


@contextmanager
def sandboxed(box: Sandbox) -> Iterator[Sandbox]:
    """Run the task bodies called in the block against ``box``."""
    token = _SANDBOX.set(box)
    try:
        yield box
    finally:
        _SANDBOX.reset(token)


def monitoring_db() -> AbstractContextManager[Any]:
    """``with monitoring_db() as conn:`` a psycopg (3) connection to the monitoring database.

    Opened through ``PostgresHook`` on the Airflow connection ``monitoring_db``
    (env var, secrets backend or metadata DB; every connection extra is
    honoured) and closed when the block ends. The one way tasks reach the DB.
    """
    from include.modelwatch.data import storage

    box = sandbox()
    if box is not None:
        return storage.session(box.uri)
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return storage.session(
        opener=lambda: storage.client_side(PostgresHook(postgres_conn_id=MONITORING_CONN_ID).get_conn())
    )


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
    if bool(ws) != bool(we):
        given, missing = ("window_start", "window_end") if ws else ("window_end", "window_start")
        raise ValueError(f"{given} is set but {missing} is not: set both to re-run a window, or neither")
    if ws and we:
        start, end = _utc("window_start", ws), _utc("window_end", we)
        if end <= start:
            raise ValueError(f"window_end {end} must be after window_start {start}")
        return start, end
    return data_interval(context)


def _utc(field: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(
                f"{field} {value!r} is not an ISO 8601 timestamp (e.g. 2008-10-01T00:00:00+00:00)"
            ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def window_params() -> dict[str, Any]:
    """DAG params that expose the window override in the trigger form as two date-time pickers.

    Both empty (the default, and what the scheduler uses): the run works on its data
    interval. Both set: the run works on [start, end) instead, e.g. to re-run a past
    month. The values are ISO 8601 timestamps (the picker writes them); a time without
    a zone is read as UTC.
    """
    from airflow.sdk import Param

    section = "Re-run another window (optional)"
    return {
        "window_start": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Window start (UTC)",
            description="First instant of the window to process. Leave both window fields empty to process "
            "this run's data interval. If you set one, set the other too.",
            section=section,
        ),
        "window_end": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Window end (UTC, exclusive)",
            description="End of the window: data up to, but not including, this instant. "
            "Must be after the window start.",
            section=section,
        ),
    }


def run_id(context: dict[str, Any]) -> str:
    return str(context["run_id"])


def variable(name: str) -> Any:
    """Airflow Variable ``name``, parsed, with its default from :mod:`include.modelwatch.defaults`.

    The one way tasks read a ModelWatch Variable (at run time, never at DAG parse). In a :class:`Sandbox`: the
    sandbox's value, else the default.
    """
    from include.modelwatch import defaults

    box = sandbox()
    if box is not None:
        given = box.variables.get(name)
        return defaults.parse(name, None if given is None else given if isinstance(given, str) else json.dumps(given))
    from airflow.sdk import Variable

    return defaults.parse(name, Variable.get(name, default=defaults.text(name)))


def native_models() -> dict[str, dict[str, Any]]:
    """The models ModelWatch trains itself (variable ``modelwatch_native_models``): name -> target and symbols."""
    return variable("modelwatch_native_models")


def market_source() -> Any:
    """The market-data source of the variable ``modelwatch_market_source`` (``arch`` or ``folder:/path``)."""
    from include.modelwatch.data import sources

    return sources.source_from_spec(variable("modelwatch_market_source"))


def page_url(path: str) -> str:
    """A ModelWatch page's absolute URL under Airflow's ``[api] base_url`` (as Airflow's own log links)."""
    from airflow.sdk.configuration import conf

    from include.modelwatch.api import urls

    return urls.absolute(conf.get("api", "base_url", fallback=urls.DEFAULT_BASE_URL), path)


def log_page(log: Any, what: str, path: str) -> str:
    """End a task's log with the URL of the page that shows its result; returns the URL."""
    url = page_url(path)
    log.info("ModelWatch page (%s): %s", what, url)
    return url


@contextmanager
def refusing_artifacts(conn: Any, *, by: str, start: datetime, end: datetime, rid: str | None, consequence: str):
    """``with refusing_artifacts(conn, by="performance_daily", ...):`` a model artifact that fails its SHA-256 check
    (or is missing) in the block: its writes are rolled back, the version's critical ``artifact_integrity`` alert is
    raised (or updated) in its own committed transaction and notified, the refusal is logged and the error
    re-raised (the task fails; its retries find the same alert). ``by``: who refused it; ``consequence``: what
    did not happen because of it (both in the alert's text)."""
    from include.modelwatch import registry

    try:
        yield
    except registry.ArtifactIntegrityError as exc:
        conn.rollback()
        _alert_refused_artifact(conn, exc, by, start, end, rid, consequence)
        raise


def _alert_refused_artifact(
    conn: Any, exc: Any, by: str, start: datetime, end: datetime, rid: str | None, consequence: str
) -> None:
    from include.modelwatch.data import storage
    from include.modelwatch.loop import alerts
    from include.modelwatch.notify import outbox
    from include.tasks.notify import base_url, deliver_pending

    found = "missing" if exc.actual is None else f"SHA-256 {exc.actual}"
    with storage.transaction(conn) as cur:
        change = alerts.raise_alert(
            cur,
            model_name=exc.model_name,
            model_version=exc.version,
            kind="artifact_integrity",
            severity="critical",
            title=f"{exc.model_name} v{exc.version}: artifact refused by {by}",
            message=f"artifact {exc.url}: registered SHA-256 {exc.expected}, found {found}; {consequence}",
            window_start=start,
            window_end=end,
            evidence={"url": exc.url, "registered_sha256": exc.expected, "actual_sha256": exc.actual},
            run_id=rid,
        )
        outbox.enqueue_alert_change(cur, change, base_url=base_url(), window_start=start, window_end=end)
    delivered = deliver_pending(conn, exc.model_name)
    logging.getLogger(__name__).error(
        "summary: %s v%s REFUSED by %s: %s; artifact_integrity alert %d %s, %s; %s",
        exc.model_name,
        exc.version,
        by,
        exc,
        change.alert_id,
        change.action,
        consequence,
        delivered,
    )
