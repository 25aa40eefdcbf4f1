"""Task bodies of ``maintenance_daily``: monthly partitions ahead, then each table's retention policy, then the
report. The logic is :mod:`include.modelwatch.ops.retention`; every cutoff comes from the run's data interval end."""

from __future__ import annotations

import logging
from typing import Any

from include.tasks.common import data_interval, log_page, monitoring_db, run_id, variable

log = logging.getLogger(__name__)


def create_partitions(context: dict[str, Any]) -> dict[str, list[str]]:
    """The monthly partitions of the interval's months and the next ones (one transaction per table)."""
    from include.modelwatch.ops import retention

    start, end = data_interval(context)
    with monitoring_db() as conn:
        done = retention.ensure_partitions(conn, interval_start=start, interval_end=end, run_id=run_id(context))
    for d in done:
        log.info("%s", d.line())
    return {d.table: list(d.partitions) for d in done}


def apply_retention(context: dict[str, Any], table: str) -> dict[str, Any]:
    """``table``'s retention policy for the run's interval (its Variable's days), in one transaction."""
    from include.modelwatch.ops import retention

    pol = retention.policy(table)
    days = variable(pol.variable)
    _, end = data_interval(context)
    with monitoring_db() as conn:
        done = retention.apply(conn, table, days=days, interval_end=end, run_id=run_id(context))
    log.info("%s", done.line())
    return {
        "table": table,
        "action": done.action,
        "days": days,
        "cutoff": done.cutoff.isoformat() if done.cutoff else None,
        "rows_affected": done.rows_affected,
        "rows_written": done.rows_written,
    }


def report(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The interval's ``maintenance_runs`` rows (what every run of it did), one log line per table."""
    from include.modelwatch.api import urls
    from include.modelwatch.ops import retention

    _, end = data_interval(context)
    with monitoring_db() as conn:
        rows = retention.runs(conn, end)
    for r in rows:
        log.info(
            "%s %s: %s row(s) changed, %s written, partitions %s (cutoff %s, %s run(s))",
            r["table_name"],
            r["action"],
            r["rows_affected"],
            r["rows_written"],
            list(r["partitions"]) or "-",
            r["cutoff"],
            r["runs"],
        )
    removed = {r["table_name"]: int(r["rows_affected"]) for r in rows if r["action"] != "partitions"}
    log.info("summary: maintenance of the interval ending %s: rows changed per table %s", end, removed)
    log_page(log, "maintenance of this run", urls.maintenance_path(run_id(context)))
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]
