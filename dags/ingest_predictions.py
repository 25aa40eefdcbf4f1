"""
### ingest_predictions

Every 15 minutes. Loads the predictions and outcomes of **external models** (registered with
`python -m include.modelwatch external register`) from the drop folder `$MODELWATCH_INBOX_DIR`
(README, "Monitor your own model"):

    inbox/predictions/*.parquet|*.csv   model_name, [model_version], ts, symbol, [timeframe],
                                        the features, p_<class> per class, [predicted_label]
    inbox/outcomes/*.parquet|*.csv      model_name, ts, symbol, [timeframe], realized_label,
                                        [realized_return], [matured_at]

or INSERTs each batch's rows into the table `ingest_staging` under one `batch` key (features
and class probabilities as JSON objects); both shapes take the same path below.

1. `wait_for_batches` (sensor, reschedule mode): done as soon as a file waits; skips the run
   when none arrived within 14 minutes.
2. `ingest_prediction_batch` (mapped per file): Great Expectations checks the batch against the
   version's registered schema (columns, dtypes, the ranges and levels from its reference frame,
   no NaN probabilities) plus one model per file, probabilities summing to 1 and no duplicate
   keys. A good batch replaces the version's predictions of its symbols on its days in one
   transaction (idempotent: the same file twice leaves the same rows); a bad one is **refused whole**, with
   the file, column and rows in the error, moved to `inbox/quarantine/` beside a `.error.txt`,
   recorded in `ingest_batches`, and nothing else changes.
3. `ingest_outcome_batch` (mapped per file, after the predictions): outcomes that arrive later
   are joined to the predictions of their (symbol, ts); an outcome without a prediction refuses
   its batch.
4. `summarize`: one `summary:` line, quarantined batches as warnings.

`drift_hourly` and `performance_daily` then treat the external model like any other active
version; a retrain rule that fires for it is recorded as `external_retrain_requested` and mailed
to its owner instead of waking `retrain_gated`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, TriggerRule, dag, task

from include.tasks.common import DEFAULT_ARGS
from include.tasks.ingest import InboxSensor


@dag(
    dag_id="ingest_predictions",
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # the inbox holds what arrived; a missed quarter-hour is picked up by the next run
    dagrun_timeout=timedelta(hours=1),
    max_active_runs=1,  # one run moves a file at a time
    default_args=DEFAULT_ARGS,
    tags=["modelwatch", "ingestion", "external-models"],
    doc_md=__doc__,
)
def ingest_predictions():
    @task
    def prediction_files() -> list[dict]:
        from include.tasks.ingest import waiting

        return waiting("predictions")

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)  # also when no prediction file was waiting
    def outcome_files() -> list[dict]:
        from include.tasks.ingest import waiting

        return waiting("outcomes")

    @task(
        pool="monitoring_db",
        multiple_outputs=False,
        map_index_template="{{ file.get('staged') or file['path'].split('/')[-1] }}",
    )
    def ingest_prediction_batch(file: dict, **context) -> dict:
        from include.tasks.ingest import ingest_one

        return ingest_one(file, context)

    @task(
        pool="monitoring_db",
        multiple_outputs=False,
        map_index_template="{{ file.get('staged') or file['path'].split('/')[-1] }}",
    )
    def ingest_outcome_batch(file: dict, **context) -> dict:
        from include.tasks.ingest import ingest_one

        return ingest_one(file, context)

    @task(pool="monitoring_db", multiple_outputs=False, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def summarize(**context) -> dict:
        from include.tasks.ingest import summarize as body

        return body(context)

    listed = prediction_files()
    loaded = ingest_prediction_batch.expand(file=listed)
    outcomes = outcome_files()
    done = ingest_outcome_batch.expand(file=outcomes)
    waiting = InboxSensor(
        task_id="wait_for_batches", poke_interval=60, timeout=14 * 60, mode="reschedule", soft_fail=True
    )
    waiting >> listed
    [listed, loaded] >> outcomes
    [outcomes, done] >> summarize()


ingest_predictions()
