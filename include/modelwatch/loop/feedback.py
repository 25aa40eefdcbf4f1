"""Feedback of the closed loop: did a retrain help? Live accuracy before and after each
completed retrain, written once per trigger for its own feedback period, and the per-rule
precision that follows (view ``feedback_loop_rule_stats``)."""

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


def update_feedback(conn, *, as_of: datetime, run_id: str | None, min_after: int = 20) -> list[dict[str, Any]]:
    """Write ``feedback_loop_metrics`` once for every trigger whose feedback period completed by ``as_of``.

    Before: the live accuracy of the champion the trigger was about, as of the
    completion. After (deployed only): the new champion's first live accuracy on
    entries since the deployment that rests on at least ``min_after`` matured
    outcomes; the period is complete at that snapshot's window end, which is the
    row's ``evaluated_at``. ``improved`` = after > before. A rejected or failed
    retrain left the model as it was: ``improved`` is false and the period is
    complete at the completion.

    A row is written once and never changed by later runs (or by other
    triggers), so it is a function of the trigger's own period whatever the
    order of the runs. Returns the rows written by this call.
    """
    out: list[dict[str, Any]] = []
    with transaction(conn) as cur:
        cur.execute(
            "SELECT trigger_id, model_name, model_version, rule_name, trigger_type, status, outcome, completed_at, "
            "result "
            "FROM retraining_triggers t WHERE status IN ('done', 'failed') AND completed_at <= %(as_of)s "
            "AND NOT EXISTS (SELECT 1 FROM feedback_loop_metrics f WHERE f.trigger_id = t.trigger_id) "
            "ORDER BY trigger_id",
            {"as_of": as_of},
        )
        cols = [c.name for c in cur.description]
        for t in [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]:
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
                _perf_before(cur, t["model_name"], before_v, upto=t["completed_at"])
                if before_v is not None
                else (None, 0)
            )
            after, n_after, evaluated_at = None, 0, t["completed_at"]
            improved: bool | None = False
            if deployed:
                after, n_after, evaluated_at = _perf_after(
                    cur, t["model_name"], after_v, since=t["completed_at"], upto=as_of, min_n=min_after
                )
                if evaluated_at is None:
                    continue  # the feedback period has not completed yet
                improved = (after > before) if (after is not None and before is not None) else None
            row = {
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
            cur.execute(
                "INSERT INTO feedback_loop_metrics (trigger_id, model_name, rule_name, trigger_type, outcome, "
                "completed_at, version_before, version_after, before_value, after_value, n_before, n_after, improved, "
                "evaluated_at, run_id) VALUES (%(trigger_id)s, %(model_name)s, %(rule_name)s, %(trigger_type)s, "
                "%(outcome)s, %(completed_at)s, "
                "%(version_before)s, %(version_after)s, %(before_value)s, %(after_value)s, %(n_before)s, %(n_after)s, "
                "%(improved)s, %(evaluated_at)s, %(run_id)s) ON CONFLICT (trigger_id) DO NOTHING",
                {**row, "run_id": run_id},
            )
            out.append(row)
    return out


def rule_stats(conn) -> list[dict[str, Any]]:
    return fetch_dicts(conn, "SELECT * FROM feedback_loop_rule_stats ORDER BY rule_name")
