"""
### modelwatch_healthcheck

Daily proof that the monitoring database is reachable through the
`monitoring_db` connection and fully migrated: writes one heartbeat row per
data interval into `pipeline_heartbeats` (UPSERT, so re-runs replace it) and
reads it back. Fails with the list of unapplied migrations otherwise.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from include.tasks.common import DEFAULT_ARGS


@dag(
    dag_id="modelwatch_healthcheck",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    dagrun_timeout=timedelta(hours=1),
    default_args=DEFAULT_ARGS,
    tags=["modelwatch", "ops"],
    doc_md=__doc__,
)
def modelwatch_healthcheck():
    @task
    def heartbeat(**context):
        from include.tasks.healthcheck import write_and_read_heartbeat

        return write_and_read_heartbeat(context)

    heartbeat()


modelwatch_healthcheck()
