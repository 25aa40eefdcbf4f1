"""Answer Airflow human-in-the-loop requests in end-to-end tests the way the UI does: the API's HITL response
(chosen option, the user, params) written on the request, then the parked task resumed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def answer(
    dag_id: str,
    task_id: str,
    choose: Callable[[Any], str],
    user: dict[str, str],
    stop: threading.Event,
    seen: list[dict[str, Any]],
) -> None:
    """Until ``stop``: answer every request of ``dag_id.task_id`` awaiting input with ``choose(hitl_detail)`` as
    ``user`` (``{"id", "name"}``); each request's subject, body and assigned users are appended to ``seen``."""
    from airflow.models.hitl import HITLDetail, HITLUser
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import handle_event_submit
    from airflow.sdk.timezone import utcnow
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    while not stop.is_set():
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
                seen.append({"subject": hd.subject, "body": hd.body, "assigned_users": hd.assigned_users})
                hd.responded_by = HITLUser(id=user["id"], name=user["name"])  # type: ignore[assignment]
                hd.responded_at = utcnow()
                hd.chosen_options = [choose(hd)]
                hd.params_input = {}
                handle_event_submit(TriggerEvent(hd.as_resume_event_payload()), task_instance=ti, session=s)
        time.sleep(0.3)
