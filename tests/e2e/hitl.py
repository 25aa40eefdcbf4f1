"""Answer Airflow human-in-the-loop requests in end-to-end tests the way the UI does: the API's HITL response
(chosen option, the user, params) written on the request, then the parked task resumed; or let a request time out
(its deadline passed, then the scheduler's own sweep resumes it)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any


def answer(
    dag_id: str,
    task_id: str,
    choose: Callable[[Any, Any], str | None],
    user: dict[str, str],
    stop: threading.Event,
    seen: list[dict[str, Any]],
    params: Callable[[str], dict[str, Any]] = lambda _: {},
) -> None:
    """Until ``stop``: answer every request of ``dag_id.task_id`` awaiting input with ``choose(ti, hitl_detail)``
    as ``user`` (``{"id", "name"}``) and ``params(choice)``; ``choose`` returning None lets the request time out.
    Each request's map index, subject, body and assigned users are appended to ``seen``."""
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.hitl import HITLDetail, HITLUser
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import handle_event_submit
    from airflow.sdk.timezone import utcnow
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    class _Sweeper:  # the scheduler method needs only a logger
        log = logging.getLogger("sweep")

    while not stop.is_set():
        sweep = False
        with create_session() as s:
            tis = s.scalars(
                select(TI)
                .where(TI.dag_id == dag_id, TI.task_id == task_id, TI.state == TaskInstanceState.AWAITING_INPUT)
                .with_for_update(of=TI)
            ).all()
            for ti in tis:
                hd = s.get(HITLDetail, ti.id)
                if hd is None:
                    continue
                seen.append(
                    {
                        "map_index": ti.map_index,
                        "subject": hd.subject,
                        "body": hd.body,
                        "assigned_users": hd.assigned_users,
                    }
                )
                choice = choose(ti, hd)
                if choice is None:  # nobody answers: the deadline passes
                    ti.trigger_timeout = utcnow() - timedelta(seconds=1)
                    sweep = True
                    continue
                hd.responded_by = HITLUser(id=user["id"], name=user["name"])  # type: ignore[assignment]
                hd.responded_at = utcnow()
                hd.chosen_options = [choice]
                hd.params_input = params(choice)
                handle_event_submit(TriggerEvent(hd.as_resume_event_payload()), task_instance=ti, session=s)
        if sweep:
            SchedulerJobRunner.check_awaiting_input_timeouts(_Sweeper())  # type: ignore[arg-type]
        time.sleep(0.3)
