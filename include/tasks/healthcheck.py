"""Task body of the ``modelwatch_healthcheck`` DAG."""

from __future__ import annotations

from typing import Any

from include.modelwatch.ops import migrations
from include.modelwatch.data import storage
from include.modelwatch.metrics import get_metrics
from include.tasks.common import data_interval, monitoring_db, run_id


def write_and_read_heartbeat(context: dict[str, Any]) -> dict[str, Any]:
    """UPSERT one heartbeat row for the run's interval and read it back."""
    start, end = data_interval(context)
    dag_id = context["dag"].dag_id
    with monitoring_db() as conn:
        states = migrations.status(conn)
        pending = [f"{r['version']:03d}_{r['name']}" for r in states if r["state"] != "applied"]
        if pending:
            raise RuntimeError(f"monitoring database has unapplied migrations: {', '.join(pending)}; run `modelwatch db migrate`")
        schema_version = max((r["version"] for r in states), default=0)
        with storage.transaction(conn) as cur:
            cur.execute(storage.read_sql("dml/upsert_heartbeat.sql"), (dag_id, start, end, schema_version, run_id(context)))
        rows = storage.fetch_dicts(
            conn,
            "SELECT dag_id, interval_start, interval_end, schema_version, run_id "
            "FROM pipeline_heartbeats WHERE dag_id = %s AND interval_start = %s",
            (dag_id, start),
        )
    if len(rows) != 1:
        raise RuntimeError(f"heartbeat for {dag_id} {start} not readable back: {rows}")
    get_metrics().gauge("health.schema_version", schema_version)
    print(f"monitoring DB healthy: schema version {schema_version}, heartbeat {start} -> {end}")
    return {k: str(v) for k, v in rows[0].items()}
