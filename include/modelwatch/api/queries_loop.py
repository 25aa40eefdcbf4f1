"""Read queries of the monitoring API over the closed loop: alerts, retraining triggers and training jobs
with their quality gates. Writes (acknowledge/resolve an alert, create/cancel a trigger) are in
:mod:`include.modelwatch.loop`, not here.

Newest first; ``[start, end)`` filters on ``opened_at`` (alerts), ``triggered_at`` (triggers) and
``started_at`` (training jobs).
"""

from __future__ import annotations

from datetime import datetime

from include.modelwatch.api import models as m
from include.modelwatch.api.queries_common import (
    DEFAULT_LIMIT,
    check_choice,
    check_model,
    check_range,
    common_filters,
    equals,
    fetch_page,
    run,
    text,
)
from include.modelwatch.loop.alerts import KINDS

#: The values the schema allows (CHECK constraints of migrations 003, 005 and 024).
ALERT_KINDS = KINDS
ALERT_STATUSES = ("open", "acknowledged", "resolved")
TRIGGER_STATUSES = ("pending", "claimed", "done", "failed", "cancelled", "external_retrain_requested")

ALERT_COLUMNS = (
    "alert_id, model_name AS model, model_version AS version, kind, status, severity, score, title, message, "
    "evidence, first_window, last_window, occurrences, opened_at, acknowledged_at, acknowledged_by, resolved_at, "
    "resolution"
)
TRIGGER_COLUMNS = (
    "trigger_id, model_name AS model, model_version AS version, trigger_type, retrain_mode, priority, rule_name, "
    "reason, evidence, status, window_start, window_end, triggered_at, created_by, claimed_at, claimed_by, "
    "completed_at, outcome, result"
)
JOB_COLUMNS = (
    "job_id, trigger_id, dataset_id, model_name AS model, algorithm, retrain_mode, status, params, metrics, "
    "candidate_version, error, started_by_run, started_at, finished_at, duration_s"
)
JOB_GATES = (
    "SELECT job_id, id, gate, status, value, threshold, message, evidence, candidate_version, champion_version, "
    "evaluated_at FROM quality_gate_results WHERE job_id = ANY(%(job_ids)s::bigint[]) ORDER BY job_id, id"
)


def alerts(
    conn,
    *,
    model: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.Alert]:
    """Alerts of every source, most recently opened first; ``[start, end)`` on ``opened_at``."""
    check_choice("kind", kind, ALERT_KINDS)
    check_choice("status", status, ALERT_STATUSES)
    check_range(start, end)
    check_model(conn, model)
    rows, total = fetch_page(
        conn,
        columns=ALERT_COLUMNS,
        source="alerts",
        predicates=[
            *common_filters(model=model, start=start, end=end, time_column="opened_at"),
            equals("kind", "kind", kind),
            equals("status", "status", status),
        ],
        order_by="opened_at DESC, alert_id DESC",
        limit=limit,
        offset=offset,
    )
    return m.Page[m.Alert](items=[m.Alert.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


def triggers(
    conn,
    *,
    model: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.Trigger]:
    """Retraining triggers, latest evaluation time first; ``[start, end)`` on ``triggered_at``."""
    check_choice("status", status, TRIGGER_STATUSES)
    check_range(start, end)
    check_model(conn, model)
    rows, total = fetch_page(
        conn,
        columns=TRIGGER_COLUMNS,
        source="retraining_triggers",
        predicates=[
            *common_filters(model=model, start=start, end=end, time_column="triggered_at"),
            equals("status", "status", status),
        ],
        order_by="triggered_at DESC, trigger_id DESC",
        limit=limit,
        offset=offset,
    )
    return m.Page[m.Trigger](items=[m.Trigger.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


def training_jobs(
    conn,
    *,
    model: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.TrainingJob]:
    """Training jobs, latest start first, each with the quality gates recorded for it (``job_id`` rows of
    ``quality_gate_results``; trigger-level gates without a job are not a job's). ``[start, end)`` on ``started_at``."""
    check_range(start, end)
    check_model(conn, model)
    rows, total = fetch_page(
        conn,
        columns=JOB_COLUMNS,
        source="training_jobs",
        predicates=common_filters(model=model, start=start, end=end, time_column="started_at"),
        order_by="started_at DESC, job_id DESC",
        limit=limit,
        offset=offset,
    )
    gates: dict[int, list[m.GateResult]] = {}
    if rows:
        for g in run(conn, text(JOB_GATES), {"job_ids": [int(r["job_id"]) for r in rows]}):
            job_id = int(g.pop("job_id"))
            gates.setdefault(job_id, []).append(m.GateResult.model_validate(g))
    items = [m.TrainingJob.model_validate({**r, "gates": gates.get(int(r["job_id"]), [])}) for r in rows]
    return m.Page[m.TrainingJob](items=items, total=total, limit=limit, offset=offset)
