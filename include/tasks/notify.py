"""Notifications from the tasks: the SMTP settings of the Airflow connection ``modelwatch_smtp``
and delivery of the outbox after a task's transaction has committed.

A task enqueues its notification in the transaction of the change it announces
(``include.modelwatch.notify.outbox``) and then calls :func:`deliver_pending`,
which never fails the task: an SMTP error leaves the row 'failed' for the next
run to retry. Without the connection every pending row becomes 'skipped' and its
whole text is logged (the development notifier).
"""

from __future__ import annotations

import logging
from typing import Any

from include.tasks.common import page_url

log = logging.getLogger(__name__)

SMTP_CONN_ID = "modelwatch_smtp"


def base_url() -> str:
    """Airflow's ``[api] base_url`` without its trailing slash: page URLs in messages are built on it."""
    return page_url("")


def smtp_settings() -> Any:
    """The :class:`~include.modelwatch.notify.smtp.SmtpSettings` of ``modelwatch_smtp``, or None when the
    connection is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from include.modelwatch.notify.smtp import SmtpSettings

    try:
        conn = BaseHook.get_connection(SMTP_CONN_ID)
    except AirflowNotFoundException:
        return None
    return SmtpSettings.from_connection(
        host=conn.host, port=conn.port, login=conn.login, password=conn.password, extra=conn.extra_dejson
    )


def deliver_pending(conn, model_name: str | None = None) -> str:
    """Send the pending notifications (of ``model_name``, or all) after the task's commit; returns a summary
    fragment for the task's log. Logs, never raises: a failed delivery is retried by the next run."""
    from include.modelwatch.notify import outbox

    try:
        settings = smtp_settings()
        done = outbox.deliver(conn, settings, model_name=model_name)
    except Exception as exc:  # a broken connection definition or an unreachable DB must not fail monitoring
        log.warning("notifications not delivered (retried by the next run): %s: %s", type(exc).__name__, exc)
        try:
            conn.rollback()
        except Exception:
            pass
        return f"notifications: delivery error ({type(exc).__name__})"
    if done.sent or done.failed or done.skipped:
        log.info("notifications: %s", done.describe())
    return f"notifications: {done.describe()}"
