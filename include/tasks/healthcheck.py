"""Task body of the ``modelwatch_healthcheck`` DAG."""

from __future__ import annotations

import logging
from typing import Any

from include.modelwatch.metrics import get_metrics
from include.modelwatch.ops import heartbeat
from include.tasks.common import data_interval, monitoring_db, run_id
from include.tasks.notify import deliver_pending

log = logging.getLogger(__name__)


def write_and_read_heartbeat(context: dict[str, Any]) -> dict[str, Any]:
    """UPSERT one heartbeat row for the run's interval and read it back."""
    start, end = data_interval(context)
    dag_id = context["dag"].dag_id
    with monitoring_db() as conn:
        version = heartbeat.schema_version(conn)
        heartbeat.write(
            conn, dag_id=dag_id, interval_start=start, interval_end=end, version=version, run_id=run_id(context)
        )
        rows = heartbeat.read(conn, dag_id=dag_id, interval_start=start)
        # every model's notifications still pending or failed (a person's resolve in the UI, a failed send)
        delivered = deliver_pending(conn)
    if len(rows) != 1:
        raise RuntimeError(f"heartbeat for {dag_id} {start} not readable back: {rows}")
    get_metrics().gauge("health.schema_version", version)
    log.info(
        "monitoring DB healthy: every migration applied (schema version %s); heartbeat %s -> %s written and read "
        "back; %s",
        version,
        start,
        end,
        delivered,
    )
    return {k: str(v) for k, v in rows[0].items()}
