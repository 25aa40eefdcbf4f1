"""
### drift_hourly

Hourly drift evaluation of every active model version (one holding an alias
such as `champion` or `challenger`), one mapped task per version:

1. reads the window's predictions (features, class probabilities, confidence,
   predicted label) and their matured outcomes;
2. empty window -> recorded as `empty` in `drift_windows`, nothing else;
3. Great Expectations checks (schema, types, ranges, null share, row count);
   a failing window writes `data_quality_results`, a `data_quality` alert and
   **no** drift rows;
4. otherwise feature and prediction drift (KS, PSI, KL, JS, Wasserstein,
   chi-square against the version's stored reference profile, Benjamini-
   Hochberg across features, effect-size thresholds) and concept drift
   (error rate against the backtest baseline) go to `drift_results`;
   hysteresis (N of the last M windows) opens or resolves a `drift` alert.

Re-running a window replaces its rows in one transaction. On daily bars the
replay runs it once per market month (see README, "Replay").
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from include.tasks.common import DEFAULT_ARGS, window_params


@dag(
    dag_id="drift_hourly",
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),  # replay starts 2007; catchup is off
    catchup=False,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    params=window_params(),
    tags=["modelwatch", "drift", "monitoring"],
    doc_md=__doc__,
)
def drift_hourly():
    @task
    def active_model_versions() -> list[dict]:
        from include.tasks.drift import active_targets

        return active_targets()

    @task(pool="monitoring_db", map_index_template="{{ target['model_name'] }} v{{ target['version'] }}")
    def evaluate(target: dict, **context) -> dict:
        from include.tasks.drift import evaluate_target

        return evaluate_target(target, context)

    evaluate.expand(target=active_model_versions())


drift_hourly()
