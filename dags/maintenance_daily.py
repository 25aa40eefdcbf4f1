"""
### maintenance_daily

Keeps the monitoring database's size bounded (README "Retention").

1. `create_partitions`: the monthly partitions of `drift_results` and
   `data_quality_results` (migration 022) for this month and the next two;
   rows the default partition held for a new month move into it.
2. `retain_<table>`: the table's retention policy, one transaction each. The
   cutoff is the UTC day start of the data interval end minus the policy's
   days (Variables `modelwatch_retention_*_days`), never wall-clock time, so a
   re-run does nothing more:
   - `drift_results` (90 days): hourly rows rolled up to one row per model
     version, feature, test and UTC day (max statistic and severity, min
     p-value, drifted if any window was; mean statistic and window counts in
     `details`);
   - `predictions` (365 days): the raw `features` snapshot of predictions
     whose outcome is recorded is emptied; the predictions are kept;
   - `notifications` (180 days): sent and skipped ones are deleted;
   - `data_quality_results` (365 days): drift-window rows are deleted.
3. `report`: what this interval's maintenance did, per table, from
   `maintenance_runs` (also written in each policy's transaction).

Alerts, triggers, model versions, alias history, gate verdicts, drift
windows, outcomes and scoring batches are never purged.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from include.modelwatch.ops.retention import TABLES
from include.tasks.common import DEFAULT_ARGS


@dag(
    dag_id="maintenance_daily",
    schedule=CronDataIntervalTimetable("30 3 * * *", timezone="UTC"),  # a quiet hour, after performance_daily
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),  # as the monitoring DAGs: replays of market history
    catchup=False,
    dagrun_timeout=timedelta(hours=2),
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["modelwatch", "ops"],
    doc_md=__doc__,
)
def maintenance_daily():
    @task(pool="monitoring_db", multiple_outputs=False)
    def create_partitions(**context) -> dict:
        from include.tasks.maintenance import create_partitions as body

        return body(context)

    @task(pool="monitoring_db", multiple_outputs=False)
    def retain(table: str, **context) -> dict:
        from include.tasks.maintenance import apply_retention

        return apply_retention(context, table)

    @task
    def report(**context) -> list:
        from include.tasks.maintenance import report as body

        return body(context)

    parts = create_partitions()
    retained = [retain.override(task_id=f"retain_{t}")(table=t) for t in TABLES]
    parts >> retained
    retained >> report()


maintenance_daily()
