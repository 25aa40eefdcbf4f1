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

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

SMTP_CONN_ID = "modelwatch_smtp"


def base_url() -> str:
    """Airflow's ``[api] base_url`` without its trailing slash: page URLs in messages are built on it."""
    from include.tasks.common import page_url

    return page_url("")


def smtp_settings() -> Any:
    """The :class:`~include.modelwatch.notify.smtp.SmtpSettings` of ``modelwatch_smtp``, or None when the
    connection is not defined or the task bodies run in a policy replay's sandbox (a replay mails nobody)."""
    from include.tasks.common import sandbox

    if sandbox() is not None:
        return None
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


class TaskFailureNotifier(BaseNotifier):
    """``on_failure_callback`` of every ModelWatch task (``DEFAULT_ARGS``): when a task has failed for good (its
    retries spent, or a refused request), mail the DAG, task, run, try, error and log URL to the ``to`` list of
    ``modelwatch_smtp``; without that connection, log the message (the development notifier). Never raises."""

    def notify(self, context: Any) -> None:
        ti = context["ti"]
        run = context.get("run_id") or getattr(ti, "run_id", "?")
        subject, body = failure_message(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            map_index=getattr(ti, "map_index", -1),
            run_id=str(run),
            try_number=getattr(ti, "try_number", None),
            error=context.get("exception"),
            log_url=getattr(ti, "log_url", ""),
        )
        try:
            settings = smtp_settings()
            if settings is None or not settings.to:
                log.warning("task failure notification not sent (no modelwatch_smtp connection): %s\n%s", subject, body)
                return
            from include.modelwatch.notify import smtp

            smtp.send(settings, settings.to, subject, body, key=f"task-failure:{ti.dag_id}:{ti.task_id}:{run}")
            log.info("task failure notification sent to %s: %s", ", ".join(settings.to), subject)
        except Exception as exc:  # a notifier must never turn one failure into two
            log.warning("task failure notification failed: %s: %s; %s", type(exc).__name__, exc, subject)


def failure_message(
    *, dag_id: str, task_id: str, map_index: int, run_id: str, try_number: int | None, error: Any, log_url: str
) -> tuple[str, str]:
    """Subject and body of a failed task's mail."""
    task = task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"
    subject = f"[ModelWatch] task failed: {dag_id}.{task} ({run_id})"
    body = (
        f"The task {task} of {dag_id} failed for good (run {run_id}, try {try_number}).\n\n"
        f"Error: {type(error).__name__ + ': ' if error is not None else ''}{error}\n"
        f"Log: {log_url}\n"
    )
    return subject, body
