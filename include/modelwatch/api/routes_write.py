"""Write routes: acknowledge and resolve alerts, request and cancel retraining.

Each needs a user the auth manager lets edit (``PUT``) the DAG that owns the data: the DAG raising the alert's
kind (drift_hourly / performance_daily), retrain_gated for triggers. The change goes through the library
functions the DAGs and the CLI use, in one transaction, and records the user's name.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, StringConstraints

from include.modelwatch.api.auth import GetUserDep, RetrainEditor, alert_dag, check_dag_access
from include.modelwatch.api.routes_common import DbDep
from include.modelwatch.data import storage
from include.modelwatch.loop import alerts as alert_store
from include.modelwatch.loop import triggers as trigger_store
from include.modelwatch.training import retrain

router = APIRouter(tags=["actions"])

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class AlertAction(BaseModel):
    alert_id: int
    model: str
    kind: str
    status: str  # the alert's status after the action
    by: str
    at: datetime
    note: str | None = None


class ResolveBody(BaseModel):
    note: Text = Field(description="Why the alert is resolved (required; stored as the alert's resolution)")


class TriggerBody(BaseModel):
    model: Text
    reason: Text = Field(description="Why retraining is requested (required)")
    mode: Literal["full", "incremental"] = "full"
    priority: Literal["low", "medium", "high", "critical"] = "high"
    request_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = Field(
        default=None,
        description="Idempotency key: repeating a request with the same key returns the same trigger "
        "instead of recording the request twice (default: a new key per request)",
    )


class TriggerRequested(BaseModel):
    trigger_id: int  # the model's pending trigger (new, upgraded, or the existing one the request was noted on)
    model: str
    status: str
    requested_by: str
    at: datetime


class CancelBody(BaseModel):
    reason: Text = Field(description="Why the trigger is cancelled (required)")


class TriggerCancelled(BaseModel):
    trigger_id: int
    model: str
    status: str
    by: str
    reason: str
    at: datetime


def now() -> datetime:
    """A person's action happens when it is made (not a task: there is no data interval to key on)."""
    return datetime.now(UTC)


def locked_alert(request: Request, user, cur, alert_id: int) -> dict:
    """The alert row, locked; 404 when it does not exist, 403 without edit rights on its DAG."""
    cur.execute(storage.read_sql("dml/api_alert_for_update.sql"), {"alert_id": alert_id})
    row = cur.fetchone()
    if row is None:
        raise HTTPException(404, f"alert {alert_id} does not exist")
    alert = dict(zip(("alert_id", "model_name", "kind", "status"), row, strict=True))
    check_dag_access(request, user, "PUT", alert_dag(alert["kind"]))
    return alert


@router.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge an open alert")
def acknowledge(alert_id: int, request: Request, user: GetUserDep, conn: DbDep) -> AlertAction:
    by, at = user.get_name(), now()
    with storage.transaction(conn) as cur:
        alert = locked_alert(request, user, cur, alert_id)
        if not alert_store.acknowledge_alert(cur, alert_id, by=by, at=at):
            raise HTTPException(409, f"alert {alert_id} is {alert['status']}; only an open alert can be acknowledged")
    return AlertAction(
        alert_id=alert_id, model=alert["model_name"], kind=alert["kind"], status="acknowledged", by=by, at=at
    )


@router.post("/alerts/{alert_id}/resolve", summary="Resolve an alert (a note is required)")
def resolve(alert_id: int, body: ResolveBody, request: Request, user: GetUserDep, conn: DbDep) -> AlertAction:
    by, at = user.get_name(), now()
    with storage.transaction(conn) as cur:
        alert = locked_alert(request, user, cur, alert_id)
        if alert["status"] == "resolved":
            raise HTTPException(409, f"alert {alert_id} is already resolved")
        # at most one unresolved alert per (model, kind): the one locked above
        change = alert_store.resolve_alert(
            cur, model_name=alert["model_name"], kind=alert["kind"], at=at, resolution=f"by {by}: {body.note}"
        )
        if change is None or change.alert_id != alert_id:
            raise HTTPException(409, f"alert {alert_id} could not be resolved")
    return AlertAction(
        alert_id=alert_id,
        model=alert["model_name"],
        kind=alert["kind"],
        status="resolved",
        by=by,
        at=at,
        note=body.note,
    )


@router.post("/triggers", summary="Request retraining of a model (a reason is required)")
def request_trigger(body: TriggerBody, user: RetrainEditor, conn: DbDep) -> TriggerRequested:
    # the library is idempotent per requested_by: one key per request (or the client's), the user's name first
    requested_by = f"api:{user.get_name()}:{body.request_id or uuid.uuid4().hex[:16]}"
    at = now()
    try:
        tid = trigger_store.create_manual_trigger(
            conn,
            body.model,
            body.reason,
            retrain_mode=body.mode,
            priority=body.priority,
            requested_by=requested_by,
            as_of=at,
        )
    except trigger_store.LoopError as e:  # no champion, concurrent trigger
        raise HTTPException(409, str(e)) from e
    except ValueError as e:  # refused by the rule (bad mode, priority, blank reason)
        raise HTTPException(422, str(e)) from e
    row = retrain.get_trigger(conn, tid)
    return TriggerRequested(trigger_id=tid, model=body.model, status=row["status"], requested_by=requested_by, at=at)


@router.post("/triggers/{trigger_id}/cancel", summary="Cancel a pending trigger (a reason is required)")
def cancel(trigger_id: int, body: CancelBody, user: RetrainEditor, conn: DbDep) -> TriggerCancelled:
    by, at = user.get_name(), now()
    try:
        row = retrain.get_trigger(conn, trigger_id)
    except retrain.RetrainError as e:
        raise HTTPException(404, str(e)) from e
    try:
        trigger_store.cancel_trigger(conn, trigger_id, reason=body.reason, by=by, at=at)
    except trigger_store.LoopError as e:  # not pending (any more)
        raise HTTPException(409, str(e)) from e
    return TriggerCancelled(
        trigger_id=trigger_id, model=row["model_name"], status="cancelled", by=by, reason=body.reason, at=at
    )


__all__ = ["router"]
