"""Read queries of the monitoring API over ModelWatch's own housekeeping (migration 023): what ``maintenance_daily``
did per data interval, table and action (retention applied, partitions created)."""

from __future__ import annotations

from include.modelwatch.api import models as m
from include.modelwatch.api.queries_common import DEFAULT_LIMIT, check_choice, check_paging, equals, fetch_page
from include.modelwatch.ops import retention

MAINTENANCE_COLUMNS = (
    "interval_end, table_name AS table, action, policy_variable, retention_days, cutoff, rows_affected, "
    "rows_written, partitions, runs, duration_s, run_id"
)
ACTIONS = ("rollup", "delete", "strip_features", "partitions")
TABLES = tuple(dict.fromkeys((*retention.TABLES, *retention.PARTITIONED)))


def maintenance_runs(
    conn,
    *,
    table: str | None = None,
    action: str | None = None,
    run_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.MaintenanceRun]:
    """What ``maintenance_daily`` did, newest interval first (within one: by table, then action)."""
    check_paging(limit, offset)
    check_choice("table", table, TABLES)
    check_choice("action", action, ACTIONS)
    rows, total = fetch_page(
        conn,
        columns=MAINTENANCE_COLUMNS,
        source="maintenance_runs",
        predicates=[
            equals("table_name", "table", table),
            equals("action", "action", action),
            equals("run_id", "run_id", run_id),
        ],
        order_by="interval_end DESC, table_name, action",
        limit=limit,
        offset=offset,
    )
    return m.Page[m.MaintenanceRun](
        items=[m.MaintenanceRun.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )
