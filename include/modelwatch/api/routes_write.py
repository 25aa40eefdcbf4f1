"""Write routes: acknowledge and resolve alerts, request and cancel retraining, request a rollback, label or skip
an item of the active-learning queue.

Each needs a user the auth manager lets edit (``PUT``) the DAG that owns the data: the DAG raising the alert's
kind (drift_hourly / performance_daily), retrain_gated for triggers, rollback_model for rollbacks, label_queue
for the active-learning queue. The change
goes through the library functions the DAGs and the CLI use, in one transaction, and records the user's name.
A rollback is a ``rollback_model`` DAG run, created in-process exactly as Airflow's ``POST /api/v2/dags/{dag_id}
/dagRuns`` creates one (manual run, triggered by the REST API, queued for the scheduler).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from airflow.configuration import conf
from airflow.sdk.timezone import coerce_datetime
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from include.modelwatch import registry
from include.modelwatch.active_learning import store as label_store
from include.modelwatch.api import urls
from include.modelwatch.api.auth import (
    ROLLBACK_DAG,
    GetUserDep,
    LabelEditor,
    RetrainEditor,
    alert_dag,
    check_dag_access,
    dag_access,
)
from include.modelwatch.api.errors import ApiInputError
from include.modelwatch.api.routes_common import DbDep
from include.modelwatch.data import storage
from include.modelwatch.loop import alerts as alert_store
from include.modelwatch.loop import triggers as trigger_store
from include.modelwatch.notify import outbox
from include.modelwatch.training import retrain
from include.modelwatch.vocabulary import check_text

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

router = APIRouter(tags=["actions"])

ROLLBACK_TARGET_STATUSES = (registry.RETIRED, registry.ACTIVE)  # versions that served before (or serve now)
RollbackEditor = Annotated["BaseUser", Depends(dag_access("PUT", ROLLBACK_DAG))]


def _no_nul(value: str | None) -> str | None:
    return check_text("text", value)


#: free text of a request (a reason, a note): any characters but NUL, stored verbatim through parameters
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), AfterValidator(_no_nul)]


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
        # the "resolved" mail, in the same transaction; sent by the next monitoring or healthcheck run
        outbox.enqueue_alert_change(
            cur, change, base_url=conf.get("api", "base_url", fallback=urls.DEFAULT_BASE_URL), at=at
        )
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


class RollbackBody(BaseModel):
    model: Text
    target_version: int = Field(ge=1, description="The version to restore as champion (status retired or active)")
    reason: Text = Field(description="Why the rollback is requested (required; recorded in the alias history)")


class RollbackRequested(BaseModel):
    dag_run_id: str  # the rollback_model run that performs the rollback
    model: str
    target_version: int
    requested_by: str


def checked_target(conn, model: str, version: int) -> None:
    """404 unless ``model`` has ``version``; 422 (field ``target_version``) unless it is retired or active."""
    statuses = registry.version_statuses(conn, model)
    if not statuses:
        raise HTTPException(404, f"model {model} does not exist")
    if version not in statuses:
        raise HTTPException(404, f"model {model} has no version {version}")
    if statuses[version] not in ROLLBACK_TARGET_STATUSES:
        raise ApiInputError(
            "target_version", f"version {version} of {model} is {statuses[version]}; only a retired or active one"
        )


def trigger_rollback_run(conf: dict, user_name: str) -> str:
    """Create a queued manual ``rollback_model`` run with ``conf``, as Airflow's trigger endpoint does
    (``airflow.api_fastapi.core_api.routes.public.dag_run.trigger_dag_run``); its run id."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    with create_session(scoped=False) as session:
        dm = session.scalar(select(DagModel).where(~DagModel.is_stale, DagModel.dag_id == ROLLBACK_DAG).limit(1))
        dag = DBDagBag().get_latest_version_of_dag(ROLLBACK_DAG, session=session) if dm else None
        if dm is None or dag is None:
            raise HTTPException(404, f"DAG {ROLLBACK_DAG} is not deployed (not parsed by the DAG processor yet?)")
        if dm.has_import_errors:
            raise HTTPException(409, f"DAG {ROLLBACK_DAG} has import errors and cannot be triggered")
        run_after = coerce_datetime(now())
        try:
            run = dag.create_dagrun(
                run_id=dag.timetable.generate_run_id(
                    run_type=DagRunType.MANUAL, run_after=run_after, data_interval=None
                ),
                logical_date=None,
                data_interval=None,
                run_after=run_after,
                conf=conf,
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.REST_API,
                triggering_user_name=user_name,
                state=DagRunState.QUEUED,
                session=session,
            )
        except ValueError as e:  # refused by the DAG's params (e.g. a model it does not serve)
            raise HTTPException(422, f"{ROLLBACK_DAG} refused the request: {e}") from e
        return str(run.run_id)


@router.post("/rollbacks", summary="Request a rollback to a previous version (a reason is required)")
def request_rollback(body: RollbackBody, user: RollbackEditor, conn: DbDep) -> RollbackRequested:
    checked_target(conn, body.model, body.target_version)
    requested_by = user.get_name()
    conf = {
        "model_name": body.model,
        "target_version": body.target_version,
        "reason": body.reason,
        "requested_by": requested_by,
    }
    run_id = trigger_rollback_run(conf, requested_by)
    return RollbackRequested(
        dag_run_id=run_id, model=body.model, target_version=body.target_version, requested_by=requested_by
    )


# --------------------------------------------------------------------------- active-learning queue

#: an optional note: blank (as an empty form field sends it) is no note
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(_no_nul)] | None


class LabelBody(BaseModel):
    label: Literal["BUY", "SELL", "HOLD"] = Field(description="What the signal should have been")
    note: Note = Field(default=None, description="Why (optional; stored with the label)")


class SkipBody(BaseModel):
    note: Note = Field(default=None, description="Why nobody can tell (optional)")


class LabelAction(BaseModel):
    item_id: int
    model: str
    version: int
    symbol: str
    ts: datetime  # the item's bar
    status: str  # the item's status after the action: labelled | skipped
    label: str | None  # the human label (None: skipped)
    by: str
    at: datetime
    note: str | None = None


def answer_item(conn, item_id: int, answer: Callable[[], label_store.Item]) -> LabelAction:
    """Run ``answer`` (the store's label or skip of a pending item) and say what it did: 404 when the item does
    not exist, 409 with the store's message when it is no longer pending (labelled, skipped, expired,
    processed: the database refuses the transition, so two people never answer one item twice)."""
    try:
        it = answer()
    except label_store.LabelError as e:
        try:
            label_store.get_item(conn, item_id)
        except label_store.LabelError:
            raise HTTPException(404, f"active-learning item {item_id} does not exist") from e
        raise HTTPException(409, str(e)) from e
    assert it.labelled_by is not None and it.labelled_at is not None  # an answered item says who and when
    return LabelAction(
        item_id=it.item_id,
        model=it.model_name,
        version=it.model_version,
        symbol=it.symbol,
        ts=it.ts,
        status=it.status,
        label=it.manual_label,
        by=it.labelled_by,
        at=it.labelled_at,
        note=it.notes,
    )


def labeller(user: BaseUser) -> str:
    """A labeller as the labelling requests in Airflow record one ("name (id)" when they differ), so one person
    is one row of the agreement table whichever way they answered."""
    from include.modelwatch.training.approval import Approver

    return Approver(str(user.get_id()), user.get_name()).describe()


@router.post(
    "/active-learning/items/{item_id}/label",
    summary="Label a pending active-learning item BUY, SELL or HOLD (a note is optional)",
)
def label_item(item_id: int, body: LabelBody, user: LabelEditor, conn: DbDep) -> LabelAction:
    by, at = labeller(user), now()
    note = body.note or None
    return answer_item(conn, item_id, lambda: label_store.label(conn, item_id, body.label, by=by, at=at, note=note))


@router.post(
    "/active-learning/items/{item_id}/skip",
    summary="Skip a pending active-learning item: nobody can tell (a note is optional)",
)
def skip_item(item_id: int, user: LabelEditor, conn: DbDep, body: SkipBody | None = None) -> LabelAction:
    by, at = labeller(user), now()
    note = (body.note if body is not None else None) or None
    return answer_item(conn, item_id, lambda: label_store.skip(conn, item_id, by=by, at=at, note=note))


__all__ = ["router"]
