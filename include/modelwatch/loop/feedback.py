"""Feedback of the closed loop: did a retrain help? Live accuracy before and after each
completed retrain, derived per trigger from its own feedback period by a fixed rule (and kept
equal to it whatever the order of the runs), and the per-rule precision that follows (view
``feedback_loop_rule_stats``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from include.modelwatch.data.storage import fetch_dicts, transaction
from include.modelwatch.loop import rules as R


def _perf_before(cur, model_name: str, version: int, *, upto: datetime) -> tuple[float | None, int]:
    """Latest overall live accuracy of a version computed as of ``upto``."""
    cur.execute(
        "SELECT accuracy, n FROM live_performance_daily WHERE model_name = %(model)s AND model_version = %(version)s "
        "AND symbol = '*' AND timeframe = '*' AND window_end <= %(upto)s AND accuracy IS NOT NULL "
        "ORDER BY window_end DESC LIMIT 1",
        {"model": model_name, "version": version, "upto": upto},
    )
    row = cur.fetchone()
    return (float(row[0]), int(row[1])) if row else (None, 0)


def _perf_after(
    cur, model_name: str, version: int, *, since: datetime, upto: datetime, min_n: int
) -> tuple[float | None, int, datetime | None]:
    """The first overall live accuracy of a version on entries from ``since`` on that rests on at
    least ``min_n`` matured outcomes (window end <= ``upto``): (value, n, its window end)."""
    cur.execute(
        "SELECT accuracy, n, window_end FROM live_performance_daily WHERE model_name = %(model)s "
        "AND model_version = %(version)s AND symbol = '*' AND timeframe = '*' AND window_end <= %(upto)s "
        "AND eval_start >= %(since)s::date AND accuracy IS NOT NULL AND n >= %(min_n)s "
        "ORDER BY window_end LIMIT 1",
        {"model": model_name, "version": version, "since": since, "upto": upto, "min_n": min_n},
    )
    row = cur.fetchone()
    return (float(row[0]), int(row[1]), row[2]) if row else (None, 0, None)


_COLUMNS = (
    "model_name",
    "rule_name",
    "trigger_type",
    "outcome",
    "completed_at",
    "version_before",
    "version_after",
    "before_value",
    "after_value",
    "n_before",
    "n_after",
    "improved",
    "evaluated_at",
)
# Insert a trigger's row, or update it when (and only when) a value differs: the row is recomputed from
# the stored snapshots on every call, so a window that ran late still corrects it and re-runs are no-ops.
_UPSERT = (
    "INSERT INTO feedback_loop_metrics (trigger_id, "
    + ", ".join(_COLUMNS)
    + ", run_id) VALUES (%(trigger_id)s, "
    + ", ".join(f"%({c})s" for c in _COLUMNS)
    + ", %(run_id)s) ON CONFLICT (trigger_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_COLUMNS, "run_id"))
    + " WHERE ("
    + ", ".join(f"feedback_loop_metrics.{c}" for c in _COLUMNS)
    + ") IS DISTINCT FROM ("
    + ", ".join(f"EXCLUDED.{c}" for c in _COLUMNS)
    + ") RETURNING trigger_id"
)


def feedback_row(cur, t: dict[str, Any], *, upto: datetime, min_after: int) -> dict[str, Any] | None:
    """The feedback row of one completed trigger ``t`` (a ``retraining_triggers`` row) by the fixed rule,
    over the snapshots with window end <= ``upto``; None while its feedback period is not complete.

    Before: the live accuracy of the champion the trigger was about, as of the completion. After
    (deployed as champion only): the new champion's first live accuracy on entries since the
    deployment that rests on at least ``min_after`` matured outcomes; the period is complete at that
    snapshot's window end, which is ``evaluated_at``. ``improved`` = after > before. A rejected or
    failed retrain (or a challenger deployment) left live traffic as it was: ``improved`` is false and
    the period is complete at the completion.
    """
    res = t["result"] or {}
    # only a new champion changes live performance; a challenger serves no live traffic yet
    to_champion = res.get("alias", "champion") == "champion"
    before_v = (res.get("previous_version") if to_champion else None) or t["model_version"]
    deployed = (
        t["status"] == "done"
        and (t["outcome"] or "").startswith("deployed")
        and to_champion
        and res.get("deployed_version")
    )
    after_v = int(res["deployed_version"]) if deployed else before_v
    before, n_before = (
        _perf_before(cur, t["model_name"], before_v, upto=t["completed_at"]) if before_v is not None else (None, 0)
    )
    after, n_after, evaluated_at = None, 0, t["completed_at"]
    improved: bool | None = False
    if deployed:
        after, n_after, evaluated_at = _perf_after(
            cur, t["model_name"], after_v, since=t["completed_at"], upto=upto, min_n=min_after
        )
        if evaluated_at is None:
            return None  # the feedback period has not completed yet
        improved = (after > before) if (after is not None and before is not None) else None
    return {
        "trigger_id": t["trigger_id"],
        "model_name": t["model_name"],
        "rule_name": t["rule_name"] or R.MANUAL_RULE_NAME,
        "trigger_type": t["trigger_type"],
        "outcome": t["outcome"] or t["status"],
        "completed_at": t["completed_at"],
        "version_before": before_v,
        "version_after": after_v,
        "before_value": before,
        "after_value": after,
        "n_before": n_before,
        "n_after": n_after,
        "improved": improved,
        "evaluated_at": evaluated_at,
    }


def update_feedback(conn, *, as_of: datetime, run_id: str | None, min_after: int = 20) -> list[dict[str, Any]]:
    """Bring ``feedback_loop_metrics`` up to date with the stored snapshots, as of ``as_of``.

    Every trigger completed by ``as_of``, and every trigger that already has a row, gets its row
    recomputed by the fixed rule of :func:`feedback_row` over the snapshots with window end <=
    ``as_of`` (or <= the row's own ``evaluated_at`` when that is later, so an older window that ran
    late corrects it too) and upserted; a row changes only when a value differs, and then records this
    ``run_id``. A row whose period is no longer complete by that bound is left as it was. So the final
    rows are a function of the stored snapshots, whatever the order the windows ran in (a catch-up
    that runs day 30 before day 20 ends with the day-20 snapshot), and a re-run changes nothing.
    Returns the rows written (inserted or changed) by this call.
    """
    out: list[dict[str, Any]] = []
    with transaction(conn) as cur:
        cur.execute(
            "SELECT t.trigger_id, t.model_name, t.model_version, t.rule_name, t.trigger_type, t.status, t.outcome, "
            "t.completed_at, t.result, f.evaluated_at AS stored_evaluated_at "
            "FROM retraining_triggers t LEFT JOIN feedback_loop_metrics f ON f.trigger_id = t.trigger_id "
            "WHERE t.status IN ('done', 'failed') AND (t.completed_at <= %(as_of)s OR f.trigger_id IS NOT NULL) "
            "ORDER BY t.trigger_id",
            {"as_of": as_of},
        )
        cols = [c.name for c in cur.description]
        for t in [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]:
            stored = t["stored_evaluated_at"]
            upto = max(as_of, stored) if stored is not None else as_of
            row = feedback_row(cur, t, upto=upto, min_after=min_after)
            if row is None:
                continue
            cur.execute(_UPSERT, {**row, "run_id": run_id})
            if cur.fetchone() is not None:
                out.append(row)
    return out


def rule_stats(conn) -> list[dict[str, Any]]:
    return fetch_dicts(conn, "SELECT * FROM feedback_loop_rule_stats ORDER BY rule_name")
