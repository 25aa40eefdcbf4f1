"""Database side of quality-gated retraining and rollback (Airflow-free).

Every function takes a psycopg (3) connection, writes in one transaction and is
keyed on the trigger (and algorithm), never on wall-clock time, so a re-run of
a task overwrites its own rows instead of adding new ones.

Lifecycle of a trigger: ``pending`` -> :func:`claim_trigger` -> ``claimed``
-> :func:`complete_trigger` -> ``done`` (outcome ``deployed`` /
``rejected: <gates>`` / ``awaiting_approval``) or ``failed``
(outcome ``failed: <error>``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from include.modelwatch import registry
from include.modelwatch.active_learning import store as al_store
from include.modelwatch.data.storage import fetch_dicts, transaction
from include.modelwatch.training.gates import GateResult
from include.modelwatch.vocabulary import finite_or_none

PRIORITY_ORDER = ("critical", "high", "medium", "low")
FINAL_STATUSES = ("done", "failed", "cancelled")

_TRIGGER_COLUMNS = (
    "trigger_id, model_name, model_version, trigger_type, retrain_mode, priority, rule_name, reason, "
    "evidence, status, window_start, window_end, triggered_at, created_by, claimed_at, claimed_by, "
    "completed_at, outcome, result"
)


class RetrainError(RuntimeError):
    """A retraining step cannot go on; the message names model, trigger and window."""


def _row(cur) -> dict[str, Any] | None:
    row = cur.fetchone()
    if row is None:
        return None
    return {d[0]: v for d, v in zip(cur.description, row, strict=True)}


def claim_trigger(conn, *, run_id: str, claimed_at: datetime, model_name: str | None = None) -> dict[str, Any] | None:
    """Atomically claim the most urgent pending trigger (optionally of one model).

    ``FOR UPDATE SKIP LOCKED`` lets concurrent runs pass over a row another run
    is claiming, so two runs never take the same trigger; a model that already
    has a claimed trigger is skipped (one retrain per model at a time). A run
    that already claimed a trigger gets the same one back (idempotent retry).
    Returns the trigger row or None when nothing is pending.
    """
    with transaction(conn) as cur:
        cur.execute(
            f"SELECT {_TRIGGER_COLUMNS} FROM retraining_triggers WHERE status = 'claimed' "
            "AND claimed_by = %(run_id)s ORDER BY trigger_id LIMIT 1",
            {"run_id": run_id},
        )
        mine = _row(cur)
        if mine is not None:
            return mine
        cur.execute(
            f"""
            UPDATE retraining_triggers SET status = 'claimed', claimed_at = %(at)s, claimed_by = %(run_id)s,
                updated_at = now()
            WHERE trigger_id = (
                SELECT t.trigger_id FROM retraining_triggers t
                WHERE t.status = 'pending' AND (%(model)s::text IS NULL OR t.model_name = %(model)s)
                  AND NOT EXISTS (SELECT 1 FROM retraining_triggers c
                                  WHERE c.model_name = t.model_name AND c.status = 'claimed')
                ORDER BY array_position(%(priorities)s::text[], t.priority), t.triggered_at, t.trigger_id
                LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING {_TRIGGER_COLUMNS}
            """,
            {"at": claimed_at, "run_id": run_id, "model": model_name, "priorities": list(PRIORITY_ORDER)},
        )
        return _row(cur)


def get_trigger(conn, trigger_id: int) -> dict[str, Any]:
    rows = fetch_dicts(
        conn, f"SELECT {_TRIGGER_COLUMNS} FROM retraining_triggers WHERE trigger_id = %(tid)s", {"tid": trigger_id}
    )
    if not rows:
        raise RetrainError(f"retraining trigger {trigger_id} does not exist")
    return rows[0]


def complete_trigger(
    conn, trigger_id: int, *, status: str, outcome: str, result: Mapping[str, Any], completed_at: datetime, cur=None
) -> None:
    """Close a claimed trigger with its outcome (``status`` 'done' or 'failed').

    ``awaiting_approval`` keeps the trigger claimed (status 'claimed') until a
    human decides. Pass ``cur`` to join a caller's transaction.
    """
    if status not in ("done", "failed", "claimed"):
        raise ValueError(f"trigger {trigger_id}: status must be done, failed or claimed, got {status!r}")

    def _apply(c) -> None:
        c.execute(
            "UPDATE retraining_triggers SET status = %(status)s, outcome = %(outcome)s, result = %(result)s, "
            "completed_at = CASE WHEN %(status)s = 'claimed' THEN NULL ELSE %(at)s::timestamptz END, "
            "updated_at = now() WHERE trigger_id = %(tid)s AND status IN ('claimed', 'done', 'failed')",
            {
                "status": status,
                "outcome": outcome,
                "result": json.dumps(dict(result), default=str),
                "at": completed_at,
                "tid": trigger_id,
            },
        )
        if c.rowcount != 1:
            raise RetrainError(f"retraining trigger {trigger_id} is not claimed; cannot record outcome {outcome!r}")

    if cur is not None:
        _apply(cur)
    else:
        with transaction(conn) as c:
            _apply(c)


def record_dataset(
    conn,
    *,
    trigger_id: int,
    model_name: str,
    fingerprint: str,
    date_start: date,
    date_end: date,
    rows_per_class: Mapping[str, int],
    validation: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    human_label_items: Sequence[int] = (),
    processed_at: datetime | None = None,
) -> int:
    """Version a training dataset; the same trigger and fingerprint give the same id. ``human_label_items``: the
    active-learning items whose labels it used; they become ``processed``, linked to it, in the same transaction
    (``human_labels`` counts them)."""
    n_rows = int(sum(int(v) for v in rows_per_class.values()))
    with transaction(conn) as cur:
        cur.execute(
            "INSERT INTO training_datasets (trigger_id, model_name, fingerprint, date_start, date_end, n_rows, "
            "rows_per_class, validation, created_by_run, human_labels) VALUES (%(tid)s, %(model)s, %(fp)s, "
            "%(start)s, %(end)s, %(n)s, %(per_class)s, %(validation)s, %(run_id)s, %(human)s) "
            "ON CONFLICT (trigger_id, fingerprint) DO UPDATE SET validation = EXCLUDED.validation "
            "RETURNING dataset_id",
            {
                "tid": trigger_id,
                "model": model_name,
                "fp": fingerprint,
                "start": date_start,
                "end": date_end,
                "n": n_rows,
                "per_class": json.dumps({str(k): int(v) for k, v in rows_per_class.items()}),
                "validation": json.dumps(dict(validation or {}), default=str),
                "run_id": run_id,
                "human": len(human_label_items),
            },
        )
        dataset_id = int(cur.fetchone()[0])
        if human_label_items:
            if processed_at is None:
                raise ValueError(f"{model_name} trigger {trigger_id}: processed_at is required with human labels")
            al_store.mark_processed(cur, human_label_items, dataset_id, processed_at)
        return dataset_id


def start_job(
    conn,
    *,
    trigger_id: int,
    dataset_id: int | None,
    model_name: str,
    algorithm: str,
    retrain_mode: str,
    params: Mapping[str, Any],
    started_at: datetime,
    run_id: str | None = None,
) -> int:
    """Open (or re-open on retry) the job of one algorithm for one trigger."""
    with transaction(conn) as cur:
        cur.execute(
            "INSERT INTO training_jobs (trigger_id, dataset_id, model_name, algorithm, retrain_mode, status, params, "
            "started_by_run, started_at) VALUES (%(tid)s, %(ds)s, %(model)s, %(algo)s, %(mode)s, 'running', "
            "%(params)s, %(run_id)s, %(at)s) "
            "ON CONFLICT (trigger_id, algorithm) DO UPDATE SET status = 'running', dataset_id = EXCLUDED.dataset_id, "
            "params = EXCLUDED.params, error = NULL, finished_at = NULL, duration_s = NULL, candidate_version = NULL, "
            "started_by_run = EXCLUDED.started_by_run, started_at = EXCLUDED.started_at RETURNING job_id",
            {
                "tid": trigger_id,
                "ds": dataset_id,
                "model": model_name,
                "algo": algorithm,
                "mode": retrain_mode,
                "params": json.dumps(dict(params), default=str),
                "run_id": run_id,
                "at": started_at,
            },
        )
        return int(cur.fetchone()[0])


def finish_job(
    conn,
    job_id: int,
    *,
    status: str,
    duration_s: float,
    finished_at: datetime,
    metrics: Mapping[str, Any] | None = None,
    candidate_version: int | None = None,
    error: str | None = None,
    cur=None,
) -> None:
    """Record a job's outcome ('succeeded' with its candidate version, or 'failed' with the error).

    Pass ``cur`` to take part in a caller's transaction."""
    if status not in ("succeeded", "failed"):
        raise ValueError(f"training job {job_id}: status must be succeeded or failed, got {status!r}")
    if cur is None:
        with transaction(conn) as own:
            finish_job(
                conn,
                job_id,
                status=status,
                duration_s=duration_s,
                finished_at=finished_at,
                metrics=metrics,
                candidate_version=candidate_version,
                error=error,
                cur=own,
            )
        return
    cur.execute(
        "UPDATE training_jobs SET status = %(status)s, duration_s = %(secs)s, finished_at = %(at)s, "
        "metrics = %(metrics)s, candidate_version = %(version)s, error = %(error)s WHERE job_id = %(job)s",
        {
            "status": status,
            "secs": float(duration_s),
            "at": finished_at,
            "metrics": json.dumps(dict(metrics or {}), default=float),
            "version": candidate_version,
            "error": error,
            "job": job_id,
        },
    )
    if cur.rowcount != 1:
        raise RetrainError(f"training job {job_id} does not exist")


def record_gates(
    conn,
    *,
    trigger_id: int,
    job_id: int | None,
    model_name: str,
    candidate_version: int | None,
    champion_version: int | None,
    results: Sequence[GateResult],
    evaluated_at: datetime,
    run_id: str | None = None,
    cur=None,
) -> int:
    """Replace the gate rows of (trigger, job) with ``results``; returns the row count.

    Pass ``cur`` to take part in a caller's transaction."""
    if cur is None:
        with transaction(conn) as own:
            return record_gates(
                conn,
                trigger_id=trigger_id,
                job_id=job_id,
                model_name=model_name,
                candidate_version=candidate_version,
                champion_version=champion_version,
                results=results,
                evaluated_at=evaluated_at,
                run_id=run_id,
                cur=own,
            )
    cur.execute(
        "DELETE FROM quality_gate_results WHERE trigger_id = %(tid)s AND job_id IS NOT DISTINCT FROM %(job)s",
        {"tid": trigger_id, "job": job_id},
    )
    for r in results:
        cur.execute(
            "INSERT INTO quality_gate_results (trigger_id, job_id, model_name, candidate_version, champion_version, "
            "gate, status, value, threshold, message, evidence, run_id, evaluated_at) "
            "VALUES (%(tid)s, %(job)s, %(model)s, %(cand)s, %(champ)s, %(gate)s, %(status)s, %(value)s, "
            "%(threshold)s, %(message)s, %(evidence)s, %(run_id)s, %(at)s)",
            {
                "tid": trigger_id,
                "job": job_id,
                "model": model_name,
                "cand": candidate_version,
                "champ": champion_version,
                "gate": r.name,
                "status": r.status,
                "value": finite_or_none(r.value),
                "threshold": finite_or_none(r.threshold),
                "message": r.message,
                "evidence": json.dumps(r.evidence, default=_json_default),
                "run_id": run_id,
                "at": evaluated_at,
            },
        )
    return len(results)


def _json_default(o: Any) -> Any:
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def deploy(
    conn,
    *,
    model_name: str,
    version: int,
    alias: str = registry.CHAMPION,
    reason: str,
    changed_at: datetime,
    run_id: str | None,
    trigger_id: int | None = None,
    outcome: str | None = None,
    result: Mapping[str, Any] | None = None,
    cur=None,
) -> int | None:
    """Point ``alias`` at the registered candidate and close its trigger, in one transaction (``cur``'s
    when given: the caller adds its own writes, e.g. the outcome's notification, and commits).

    The candidate becomes ``active``; the version it replaces becomes ``retired``
    once it holds no alias (it stays registered, addressable by version, and the
    alias history records the change, why and which run); the trigger's other
    candidates become ``rejected``. Returns the previous version of the alias.
    Nothing changes if any step fails.
    """
    registry.get_version(conn, model_name, version)  # raises if unknown
    if cur is None:
        with transaction(conn) as own:
            return deploy(
                conn,
                model_name=model_name,
                version=version,
                alias=alias,
                reason=reason,
                changed_at=changed_at,
                run_id=run_id,
                trigger_id=trigger_id,
                outcome=outcome,
                result=result,
                cur=own,
            )
    previous = registry.set_alias(
        conn, model_name, alias, version, reason=reason, changed_at=changed_at, run_id=run_id, cur=cur
    )
    if trigger_id is not None:
        reject_candidates(conn, trigger_id, keep=version, cur=cur)
        res = {"deployed_version": version, "previous_version": previous, "alias": alias, **dict(result or {})}
        complete_trigger(
            conn,
            trigger_id,
            status="done",
            outcome=outcome or "deployed",
            result=res,
            completed_at=changed_at,
            cur=cur,
        )
    return previous


def reject_candidates(conn, trigger_id: int, *, keep: int | None = None, cur=None) -> list[int]:
    """Mark every still-``candidate`` version trained for ``trigger_id`` (except ``keep``) ``rejected``;
    returns their versions. Pass ``cur`` to take part in a caller's transaction."""
    if cur is None:
        with transaction(conn) as own:
            return reject_candidates(conn, trigger_id, keep=keep, cur=own)
    cur.execute(
        "UPDATE model_versions v SET status = %(rejected)s FROM training_jobs j "
        "WHERE j.trigger_id = %(tid)s AND j.candidate_version IS NOT NULL AND v.model_name = j.model_name "
        "AND v.version = j.candidate_version AND v.status = %(candidate)s "
        "AND (%(keep)s::int IS NULL OR v.version <> %(keep)s::int) RETURNING v.version",
        {"rejected": registry.REJECTED, "candidate": registry.CANDIDATE, "tid": trigger_id, "keep": keep},
    )
    return sorted(int(r[0]) for r in cur.fetchall())


def reject(
    conn, *, trigger_id: int, outcome: str, result: Mapping[str, Any], completed_at: datetime, cur=None
) -> list[int]:
    """Close a trigger as rejected: its candidates become ``rejected`` and the champion stays, in one
    transaction (``cur``'s when given). Returns the rejected versions."""
    if cur is None:
        with transaction(conn) as own:
            return reject(
                conn, trigger_id=trigger_id, outcome=outcome, result=result, completed_at=completed_at, cur=own
            )
    rejected = reject_candidates(conn, trigger_id, cur=cur)
    complete_trigger(
        conn, trigger_id, status="done", outcome=outcome, result=result, completed_at=completed_at, cur=cur
    )
    return rejected


def rollback(
    conn,
    *,
    model_name: str,
    target_version: int,
    reason: str,
    changed_at: datetime,
    run_id: str | None,
    alias: str = registry.CHAMPION,
) -> int | None:
    """Restore ``target_version`` as ``alias`` exactly (same artifact, SHA-256 checked first).

    Refuses a version whose artifact is missing or modified, so a rollback never
    installs something that the scorer would then refuse, and a version that never
    served (``candidate``) or was ``rejected``. The target becomes ``active`` again,
    the version it replaces ``retired``. Returns the version that was replaced.
    """
    mv = registry.get_version(conn, model_name, target_version)
    if not mv.external:  # an external version has no artifact: ModelWatch only moves its alias
        registry.read_artifact(mv)  # ArtifactIntegrityError if corrupted
    if mv.status not in (registry.RETIRED, registry.ACTIVE):
        raise RetrainError(
            f"{model_name}: version {target_version} is {mv.status}, it never served; a rollback "
            f"restores a retired version"
        )
    current = registry.resolve_alias(conn, model_name, alias)
    if current == target_version:
        raise RetrainError(f"{model_name}: version {target_version} already is {alias}; nothing to roll back")
    return registry.set_alias(
        conn, model_name, alias, target_version, reason=f"rollback: {reason}", changed_at=changed_at, run_id=run_id
    )


def previous_alias_version(conn, model_name: str, alias: str = registry.CHAMPION) -> int | None:
    """The version ``alias`` pointed to before its latest change (the rollback target)."""
    hist = registry.alias_history(conn, model_name, alias)
    return int(hist[-1]["from_version"]) if hist and hist[-1]["from_version"] is not None else None


_STATUS_RANK = {"deploy": 0, "review": 1, "reject": 2}


def pick_candidate(candidates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The candidate to act on: best gate verdict (deploy < review < reject), then the
    highest out-of-sample accuracy, then the lowest version (deterministic)."""
    valid = [dict(c) for c in candidates if c]
    if not valid:
        raise RetrainError("no candidate was trained")
    return min(valid, key=lambda c: (_STATUS_RANK.get(c["status"], 3), -float(c["oos_accuracy"]), int(c["version"])))


def live_metric_series(
    conn, model_name: str, version: int, start: datetime, end: datetime, metric: str = "accuracy"
) -> list[float]:
    """Daily live values of ``metric`` (all symbols, ``live_performance_daily``) in ``(start, end]``."""
    allowed = ("accuracy", "macro_f1", "hit_rate", "profit_factor", "sharpe")
    if metric not in allowed:
        raise ValueError(f"metric must be one of {allowed}, got {metric!r}")
    from psycopg import sql

    q = sql.SQL(
        "SELECT {m} AS v FROM live_performance_daily WHERE model_name = %(model)s "
        "AND model_version = %(version)s AND symbol = '*' AND timeframe = '*' AND window_end > %(start)s "
        "AND window_end <= %(end)s "
        "AND {m} IS NOT NULL ORDER BY window_end"
    ).format(m=sql.Identifier(metric))
    with conn.cursor() as cur:
        cur.execute(q, {"model": model_name, "version": version, "start": start, "end": end})
        return [float(r[0]) for r in cur.fetchall()]


def last_champion_change(conn, model_name: str, as_of: datetime) -> dict[str, Any] | None:
    """The latest champion change at or before ``as_of`` (from_version, to_version, changed_at)."""
    rows = fetch_dicts(
        conn,
        "SELECT from_version, to_version, changed_at, reason, run_id FROM model_alias_history "
        "WHERE model_name = %(model)s AND alias = %(alias)s AND changed_at <= %(as_of)s "
        "ORDER BY changed_at DESC, id DESC LIMIT 1",
        {"model": model_name, "alias": registry.CHAMPION, "as_of": as_of},
    )
    return rows[0] if rows else None
