"""The ``modelwatch_healthcheck`` DAG's proof of life: one heartbeat row per DAG and data interval.

``pipeline_heartbeats`` holds it; a re-run of an interval replaces its row (UPSERT).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from include.modelwatch.data import storage
from include.modelwatch.ops import migrations

UPSERT = """
INSERT INTO pipeline_heartbeats (dag_id, interval_start, interval_end, schema_version, run_id)
VALUES (%(dag_id)s, %(interval_start)s, %(interval_end)s, %(schema_version)s, %(run_id)s)
ON CONFLICT (dag_id, interval_start) DO UPDATE
SET interval_end = EXCLUDED.interval_end,
    schema_version = EXCLUDED.schema_version,
    run_id = EXCLUDED.run_id
"""

READ = """
SELECT dag_id, interval_start, interval_end, schema_version, run_id
FROM pipeline_heartbeats
WHERE dag_id = %(dag_id)s AND interval_start = %(interval_start)s
"""


def schema_version(conn) -> int:
    """The newest applied migration; raises naming every migration not applied (or changed after apply)."""
    states = migrations.status(conn)
    newer = [f"{r['version']:03d}_{r['name']}" for r in states if r["state"] == "unknown-to-this-code"]
    if newer:
        raise RuntimeError(
            f"monitoring database was migrated by newer code ({', '.join(newer)} unknown to this version): "
            "run the ModelWatch version that knows them"
        )
    pending = [f"{r['version']:03d}_{r['name']} ({r['state']})" for r in states if r["state"] != "applied"]
    if pending:
        raise RuntimeError(
            f"monitoring database has unapplied migrations: {', '.join(pending)}; run `modelwatch db migrate`"
        )
    return max((int(r["version"]) for r in states), default=0)  # type: ignore[call-overload]


def write(conn, *, dag_id: str, interval_start: datetime, interval_end: datetime, version: int, run_id: str) -> None:
    """Upsert the heartbeat of ``dag_id`` for its interval (one transaction)."""
    params = {
        "dag_id": dag_id,
        "interval_start": interval_start,
        "interval_end": interval_end,
        "schema_version": version,
        "run_id": run_id,
    }
    with storage.transaction(conn) as cur:
        cur.execute(UPSERT, params)


def read(conn, *, dag_id: str, interval_start: datetime) -> list[dict[str, Any]]:
    """The heartbeat rows of ``dag_id`` for the interval starting at ``interval_start`` (0 or 1)."""
    return storage.fetch_dicts(conn, READ, {"dag_id": dag_id, "interval_start": interval_start})
