"""
### drift_hourly

Hourly drift evaluation of every active model version (one holding an alias
such as `champion` or `challenger`). The tasks are mapped over **chunks** of
versions, not over versions: `active_model_versions` lists the fleet and cuts
it into at most 8 chunks of at least 4 versions
(`include/modelwatch/monitoring/drift/fleet.py`: sorted by model and version,
sizes differing by at most one), so the number of task instances grows with
the chunks, not with the models. Each mapped instance is named after its chunk
("chunk 2/5: spx_signal v1, ixic v3 ...") and processes its versions one after
the other, each in its own transaction:

1. `check_window` (mapped) reads each version's window (features, class
   probabilities, confidence, predicted label) and its matured outcomes and
   runs the Great Expectations checks (schema, types, ranges, null share),
   storing them in `data_quality_results`;
2. the branch `choose_paths` gives each version its path
   (`decisions.choose_drift_path`) and follows the paths that have versions;
   each path task is mapped over all chunks, processes the chunk's versions on
   its path and skips a chunk that has none:
   - `record_empty_window`: no predictions; recorded as `empty`, nothing else;
   - `raise_data_quality_alert`: a failed expectation; a `data_quality`
     alert and **no** drift rows;
   - `compute_drift`: feature and prediction drift (KS, PSI, KL, JS,
     Wasserstein, chi-square against the version's stored reference profile;
     Benjamini-Hochberg across features; effect sizes above both the
     configured thresholds and the reference's own variation) and concept
     drift (error rate and AUC delta against the backtest baseline) go to
     `drift_results`; hysteresis (N of the last M windows) opens or resolves
     a `drift` alert. Windows above `sql_counts_min_rows` rows are binned in
     PostgreSQL (`width_bucket`), so only counts leave the database;
3. `respond_to_alerts` evaluates the automated response rules on the open
   alerts (`include.modelwatch.loop.responses`): fires, upgrades or suppresses
   (cooldown, same episode) a `retraining_triggers` row, every decision in
   `closed_loop_actions`; `announce_triggers` updates the
   `modelwatch_retraining_triggers` Asset that schedules `retrain_gated`,
   and is skipped when no trigger changed.

One version's failure (a bad window, a broken profile) does not stop the
others of its chunk: they are processed and committed, then the task raises
one error naming each failed version and its error, so it is red and retried
(a retry runs the chunk again; every version's rows are replaced). A version
whose window check raised takes the `compute_drift` path, which checks it
again and evaluates it, or names the error; `check_window` itself fails only
when no version of its chunk could be checked.

Re-running a window replaces its rows, in one transaction per version.
Hysteresis reads the windows before the current one, so windows of a model are
decided one at a time and in order: `max_active_runs=1` (catch-up runs go oldest first, each
after the previous finished) and, for manual or replay runs that still meet,
a per-model advisory lock under which `compute_drift` reads the earlier
windows. Re-running an older window corrects only its own rows: an open
alert keeps the newest window's evidence. On daily bars the
replay runs it once per market month (see README, "Replay"). The branch is
not inside a mapped task group on purpose: Airflow 3.3 does not skip branch
siblings there (apache/airflow#67265).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, TriggerRule, dag, task

from include.modelwatch.decisions import TASK_COMPUTE_DRIFT as COMPUTE
from include.modelwatch.decisions import TASK_DQ_ALERT as DQ_ALERT
from include.modelwatch.decisions import TASK_RECORD_EMPTY as RECORD_EMPTY
from include.tasks.assets import RETRAINING_TRIGGERS
from include.tasks.common import DEFAULT_ARGS, window_params

CHUNK_LABEL = "{{ chunk['label'] }}"  # "chunk 2/5: spx_signal v1, ixic v3 ..." (fleet.chunk_label)


@dag(
    dag_id="drift_hourly",
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),  # replay starts 2007; catchup is off
    catchup=False,
    dagrun_timeout=timedelta(hours=3),
    max_active_runs=1,  # hysteresis reads the earlier windows: one window at a time, in order
    default_args=DEFAULT_ARGS,
    params=window_params(),
    tags=["modelwatch", "drift", "monitoring"],
    doc_md=__doc__,
)
def drift_hourly():
    @task
    def active_model_versions() -> list[dict]:
        from include.tasks.drift import fleet_chunks

        return fleet_chunks()

    @task(pool="monitoring_db", map_index_template=CHUNK_LABEL, multiple_outputs=False)
    def check_window(chunk: dict, **context) -> dict:
        from include.tasks.drift import check_chunk

        return check_chunk(chunk, context)

    @task.branch
    def choose_paths(checked: list[dict]) -> list[str]:
        from include.tasks.drift import flatten, route

        return [path for path, versions in route(flatten(checked)).items() if versions]

    @task(task_id=RECORD_EMPTY, pool="monitoring_db", map_index_template=CHUNK_LABEL, multiple_outputs=False)
    def record_empty_window(chunk: dict, **context) -> list[dict]:
        from include.tasks.drift import run_path

        return run_path(RECORD_EMPTY, chunk, context)

    @task(task_id=DQ_ALERT, pool="monitoring_db", map_index_template=CHUNK_LABEL, multiple_outputs=False)
    def raise_data_quality_alert(chunk: dict, **context) -> list[dict]:
        from include.tasks.drift import run_path

        return run_path(DQ_ALERT, chunk, context)

    @task(task_id=COMPUTE, pool="monitoring_db", map_index_template=CHUNK_LABEL, multiple_outputs=False)
    def compute_drift(chunk: dict, **context) -> list[dict]:
        from include.tasks.drift import run_path

        return run_path(COMPUTE, chunk, context)

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, multiple_outputs=False)
    def respond_to_alerts(**context) -> dict:
        from include.tasks.loop import respond

        return respond("drift", context)

    @task(outlets=[RETRAINING_TRIGGERS])
    def announce_triggers(result: dict) -> str:
        from include.tasks.loop import announce

        return announce(result)

    checked = check_window.expand(chunk=active_model_versions())
    paths = [
        record_empty_window.expand(chunk=checked),
        raise_data_quality_alert.expand(chunk=checked),
        compute_drift.expand(chunk=checked),
    ]
    responded = respond_to_alerts()
    choose_paths(checked) >> paths >> responded
    announce_triggers(responded)


drift_hourly()
