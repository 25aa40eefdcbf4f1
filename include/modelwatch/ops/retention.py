"""Retention and partition upkeep of the monitoring database (the ``maintenance_daily`` DAG).

Every policy is keyed on the run's data interval: its cutoff is the UTC day start of ``interval_end`` minus the
policy's days (a Variable, :mod:`include.modelwatch.defaults`), never wall-clock time, so a re-run of an interval
does exactly what the first run did, and once applied, nothing more (idempotent). Each table's policy runs in one
transaction together with its ``maintenance_runs`` row (migration 023): a failure changes nothing.

=====================  ============================================  ==============================================
table                  Variable (default days)                       what happens to rows older than the cutoff
=====================  ============================================  ==============================================
drift_results          modelwatch_retention_drift_results_days (90)  rolled up: one row per model version, kind,
                                                                     feature, test and UTC day (see :data:`ROLLUP`)
predictions            modelwatch_retention_prediction_features_     ``features`` emptied to ``{}`` once the
                       days (365)                                    prediction's outcome is recorded; the
                                                                     prediction row itself is kept
notifications          modelwatch_retention_notifications_days       deleted when settled (sent or skipped); pending
                       (180)                                         and failed ones are kept
data_quality_results   modelwatch_retention_data_quality_days (365)  drift-window rows deleted; other sources kept
=====================  ============================================  ==============================================

Never touched: what decisions reference (alerts, retraining triggers, model versions, alias history, gate
verdicts, training jobs and datasets, closed-loop actions), drift_windows and their daily rollup, outcomes,
performance rows, and scoring_batches (the source of a Prometheus counter and histogram, which must not go down).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from include.modelwatch.data import storage

#: Tables partitioned by month (migration 022) and how many months past the run's month get a partition ahead.
PARTITIONED = ("drift_results", "data_quality_results")
MONTHS_AHEAD = 2


@dataclass(frozen=True)
class Policy:
    table: str
    action: str  # 'rollup' | 'delete' | 'strip_features' (maintenance_runs.action)
    variable: str


POLICIES: tuple[Policy, ...] = (
    Policy("drift_results", "rollup", "modelwatch_retention_drift_results_days"),
    Policy("predictions", "strip_features", "modelwatch_retention_prediction_features_days"),
    Policy("notifications", "delete", "modelwatch_retention_notifications_days"),
    Policy("data_quality_results", "delete", "modelwatch_retention_data_quality_days"),
)
TABLES = tuple(p.table for p in POLICIES)


@dataclass(frozen=True)
class Applied:
    """What one policy did for one interval: rows removed or changed (``rows_affected``), roll-up rows written."""

    table: str
    action: str
    variable: str | None
    days: int | None
    cutoff: datetime | None
    rows_affected: int
    rows_written: int = 0
    partitions: tuple[str, ...] = ()
    duration_s: float = 0.0

    def line(self) -> str:
        if self.action == "partitions":
            return f"{self.table}: partitions created: {', '.join(self.partitions) or 'none (all exist)'}"
        verb = {"rollup": "rolled up", "delete": "deleted", "strip_features": "feature snapshots emptied"}[self.action]
        extra = f" into {self.rows_written} daily row(s)" if self.action == "rollup" else ""
        return (
            f"{self.table}: {self.rows_affected} row(s) {verb}{extra}, older than {self.cutoff:%Y-%m-%d %H:%M} UTC "
            f"({self.variable} = {self.days} days) in {self.duration_s:.2f} s"
        )


def policy(table: str) -> Policy:
    for p in POLICIES:
        if p.table == table:
            return p
    raise KeyError(f"no retention policy for table {table!r}; policies: {list(TABLES)}")


def cutoff(interval_end: datetime, days: int) -> datetime:
    """The UTC day start of ``interval_end - days``: rows strictly before it are out of the retention window.

    Whole days, so a roll-up day is never split; ``interval_end`` must be timezone-aware.
    """
    if interval_end.tzinfo is None:
        raise ValueError(f"interval_end {interval_end} has no timezone: pass the run's data interval end (UTC)")
    if int(days) < 1:
        raise ValueError(f"retention of {days} days: expected at least 1")
    t = (interval_end - timedelta(days=int(days))).astimezone(UTC)
    return datetime(t.year, t.month, t.day, tzinfo=UTC)


#: hourly drift_results rows of whole UTC days before the cutoff, per (version, kind, feature, test, day): the
#: strongest statistic, the lowest p-value, the highest severity, drifted if any window was, and in ``details`` the
#: mean statistic, how many windows (and drifted windows) the day had. Earlier roll-ups count with their own weights,
#: so re-running over a day that a re-run of an old window refilled stays exact; a day already rolled up (one roll-up
#: row) is left alone. The row keeps the day's first window_start, a drift_windows row (the foreign key holds), so
#: the window page (queries_monitoring.DRIFT_RESULTS) and the feature heatmap (queries_pages.FEATURE_SEVERITY) read
#: it like any window's rows.
ROLLUP = """
CREATE TEMP TABLE retention_rollup ON COMMIT DROP AS
SELECT model_name, model_version, kind, feature, test, day,
       min(window_start) AS window_start, max(window_end) AS window_end,
       max(statistic) AS statistic, min(p_value) AS p_value, max(severity) AS severity, bool_or(drifted) AS drifted,
       sum(n_current)::integer AS n_current, count(*) AS n_source_rows,
       sum(w) AS n_windows, sum(ws) AS n_statistic, sum(m * ws) / nullif(sum(ws), 0) AS mean_statistic,
       sum(nd) AS n_drifted_windows
FROM (
    SELECT r.*, (r.window_start AT TIME ZONE 'UTC')::date AS day,
           r.details->>'rollup' IS NOT NULL AS is_rollup,
           coalesce((r.details->>'n_windows')::bigint, 1) AS w,
           coalesce((r.details->>'n_statistic')::bigint, CASE WHEN r.statistic IS NULL THEN 0 ELSE 1 END) AS ws,
           coalesce((r.details->>'mean_statistic')::float8, r.statistic) AS m,
           coalesce((r.details->>'n_drifted_windows')::bigint, r.drifted::int) AS nd
    FROM drift_results r
    WHERE r.window_start < %(cutoff)s
) x
GROUP BY model_name, model_version, kind, feature, test, day
HAVING NOT (count(*) = 1 AND bool_and(is_rollup))
"""
#: one pass over the partitions before the cutoff against a hashed set of the groups (a join on the day's range ran
#: a nested loop: 480 s for 133,200 rows, against 3 s this way)
ROLLUP_DELETE = """
DELETE FROM drift_results r
WHERE r.window_start < %(cutoff)s
  AND (r.model_name, r.model_version, r.kind, r.feature, r.test, (r.window_start AT TIME ZONE 'UTC')::date) IN (
      SELECT model_name, model_version, kind, feature, test, day FROM retention_rollup)
"""
ROLLUP_INSERT = """
INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, statistic,
                           p_value, severity, drifted, n_current, details)
SELECT model_name, model_version, window_start, window_end, kind, feature, test, statistic, p_value, severity,
       drifted, n_current,
       jsonb_build_object('rollup', 'daily', 'day', day, 'n_windows', n_windows, 'n_statistic', n_statistic,
                          'mean_statistic', mean_statistic, 'max_statistic', statistic,
                          'n_drifted_windows', n_drifted_windows, 'last_window_end', window_end)
FROM retention_rollup
"""
#: predictions keep their row (label, probabilities, confidence, outcome); only the raw feature snapshot goes, and
#: only once the outcome is recorded (signals reads the features of predictions still awaiting one)
STRIP_FEATURES = """
UPDATE predictions p SET features = '{}'::jsonb
WHERE p.ts < %(cutoff)s AND p.features <> '{}'::jsonb
  AND EXISTS (SELECT 1 FROM outcomes o WHERE o.prediction_id = p.prediction_id)
"""
DELETE_NOTIFICATIONS = """
DELETE FROM notifications WHERE created_at < %(cutoff)s AND status IN ('sent', 'skipped')
"""
DELETE_DATA_QUALITY = """
DELETE FROM data_quality_results WHERE source = 'drift_window' AND window_start < %(cutoff)s
"""
RECORD = """
INSERT INTO maintenance_runs (interval_end, table_name, action, policy_variable, retention_days, cutoff,
                              rows_affected, rows_written, partitions, duration_s, run_id)
VALUES (%(interval_end)s, %(table)s, %(action)s, %(variable)s, %(days)s, %(cutoff)s, %(rows_affected)s,
        %(rows_written)s, %(partitions)s, %(duration_s)s, %(run_id)s)
ON CONFLICT (interval_end, table_name, action) DO UPDATE SET
    policy_variable = EXCLUDED.policy_variable, retention_days = EXCLUDED.retention_days, cutoff = EXCLUDED.cutoff,
    rows_affected = maintenance_runs.rows_affected + EXCLUDED.rows_affected,
    rows_written = maintenance_runs.rows_written + EXCLUDED.rows_written,
    partitions = maintenance_runs.partitions || EXCLUDED.partitions,
    runs = maintenance_runs.runs + 1, duration_s = EXCLUDED.duration_s, run_id = EXCLUDED.run_id
"""
READ_RUNS = """
SELECT interval_end, table_name, action, policy_variable, retention_days, cutoff, rows_affected, rows_written,
       partitions, runs, duration_s, run_id
FROM maintenance_runs WHERE interval_end = %(interval_end)s ORDER BY table_name, action
"""
ENSURE_PARTITION = "SELECT modelwatch_ensure_month_partition(%(table)s::regclass, %(month)s)"


def _record(cur, done: Applied, interval_end: datetime, run_id: str | None) -> None:
    """The ``maintenance_runs`` row of ``done``, in the caller's transaction."""
    cur.execute(
        RECORD,
        {
            "interval_end": interval_end,
            "table": done.table,
            "action": done.action,
            "variable": done.variable,
            "days": done.days,
            "cutoff": done.cutoff,
            "rows_affected": done.rows_affected,
            "rows_written": done.rows_written,
            "partitions": list(done.partitions),
            "duration_s": done.duration_s,
            "run_id": run_id,
        },
    )


def apply(conn, table: str, *, days: int, interval_end: datetime, run_id: str | None = None) -> Applied:
    """Apply ``table``'s retention policy for the interval ending at ``interval_end``, in one transaction with its
    ``maintenance_runs`` row. Returns what it did (0 rows when already applied)."""
    pol = policy(table)
    cut = cutoff(interval_end, days)
    params = {"cutoff": cut}
    t0 = time.perf_counter()
    with storage.transaction(conn) as cur:
        written = 0
        if pol.action == "rollup":
            cur.execute(ROLLUP, params)
            cur.execute("ANALYZE retention_rollup")
            cur.execute(ROLLUP_DELETE, params)
            affected = cur.rowcount
            cur.execute(ROLLUP_INSERT)
            written = cur.rowcount
        else:
            if table == "predictions":
                cur.execute(STRIP_FEATURES, params)
            elif table == "notifications":
                cur.execute(DELETE_NOTIFICATIONS, params)
            else:
                cur.execute(DELETE_DATA_QUALITY, params)
            affected = cur.rowcount
        done = Applied(
            table, pol.action, pol.variable, int(days), cut, int(affected), int(written),
            duration_s=time.perf_counter() - t0,
        )  # fmt: skip
        _record(cur, done, interval_end, run_id)
    return done


def months(interval_start: datetime, interval_end: datetime, ahead: int = MONTHS_AHEAD) -> list[date]:
    """First days of the UTC months from ``interval_start``'s through ``ahead`` months after ``interval_end``'s."""
    first = interval_start.astimezone(UTC)
    last = interval_end.astimezone(UTC)
    y, m = first.year, first.month
    stop = (last.year * 12 + last.month - 1) + ahead
    out = []
    while y * 12 + m - 1 <= stop:
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def ensure_partitions(
    conn,
    *,
    interval_start: datetime,
    interval_end: datetime,
    run_id: str | None = None,
    tables: Sequence[str] = PARTITIONED,
    ahead: int = MONTHS_AHEAD,
) -> list[Applied]:
    """Create the monthly partitions of ``tables`` for the interval's months and ``ahead`` months after; one
    transaction per table (rows the default partition held for a new month move into it)."""
    out = []
    wanted = months(interval_start, interval_end, ahead)
    for table in tables:
        t0 = time.perf_counter()
        with storage.transaction(conn) as cur:
            created = []
            for month in wanted:
                cur.execute(ENSURE_PARTITION, {"table": table, "month": month})
                if cur.fetchone()[0]:
                    created.append(f"{table}_p{month:%Y%m}")
            done = Applied(
                table, "partitions", None, None, None, 0, partitions=tuple(created),
                duration_s=time.perf_counter() - t0,
            )  # fmt: skip
            _record(cur, done, interval_end, run_id)
        out.append(done)
    return out


def runs(conn, interval_end: datetime) -> list[dict[str, Any]]:
    """The ``maintenance_runs`` rows of the interval ending at ``interval_end``."""
    return storage.fetch_dicts(conn, READ_RUNS, {"interval_end": interval_end})


def partitions(conn, table: str) -> list[str]:
    """Names of ``table``'s partitions, sorted."""
    rows = storage.fetch_dicts(
        conn,
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %(table)s::regclass ORDER BY 1",
        {"table": table},
    )
    return [r["name"] for r in rows]
