"""
### performance_daily

Daily live-performance evaluation of every active model version (one holding
an alias such as `champion` or `challenger`), mapped per version. "As of" is
the window end: a prediction counts only when its outcome matured before it
(labels arrive one horizon, 5 sessions, after the signal).

`evaluate` (mapped, pool `monitoring_db`) per version, in one transaction:

1. **live metrics** over the last 63 entry days with matured outcomes:
   accuracy, precision / recall / F1 per class and macro, hit rate, win rate,
   profit factor, average R/R, Sharpe (annualized, sqrt(252 / horizon)), max
   drawdown, Brier, ECE, average confidence; for the version (`*`) and per
   symbol / timeframe -> `live_performance_daily`;
2. **live vs backtest**: each metric against `backtest_baseline`, 95% circular
   block-bootstrap CI over entry days (block = max(n^(1/3), horizon));
   degraded only when the whole CI is below baseline x (1 - tolerance)
   (variable `modelwatch_performance_tolerance`, 0.10) ->
   `live_vs_backtest_comparison`. The primary metric (accuracy) opens or
   resolves the champion's `performance` alert; its score is the relative drop;
3. **label-free estimate** (CBPE idea) of accuracy and macro F1 for the
   window's predictions without matured outcome, from isotonic-calibrated
   probabilities; the calibrator is checked on the most recent matured
   outcomes and the estimate is withheld (`unreliable`) when its calibration
   decayed. Later runs fill in the realized value and the error ->
   `performance_estimates`;
4. **model health** (healthy / warning / critical) from drift score,
   performance, data-quality failures and model age (variable
   `modelwatch_max_model_age_days`, 30) -> `model_health_daily`, view
   `model_health_current`. The window's drift score comes from `drift_hourly`,
   which may finish before or after this run: `respond_to_alerts` of both DAGs
   recomputes the window's health row, so the last one sees both inputs;
5. **interpretability**: gain share and mean |SHAP| per feature of the
   window's predictions -> `interpretability_log`.

Then `respond_to_alerts` refreshes the window's health rows, evaluates the
performance response rule on the open `performance` alert (a relative drop
above 10%: incremental retrain) and writes `feedback_loop_metrics` once per
completed retrain whose feedback period is over (live accuracy before, and the
new champion's first accuracy on at least 20 outcomes matured after the
deployment; never rewritten by later runs); `announce_triggers` updates the
`modelwatch_retraining_triggers` Asset only when a trigger changed.

No statsd metrics: the ModelWatch Prometheus exporter serves these values from
the monitoring database. The task log ends with a short report. Re-running a
window replaces its rows.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, TriggerRule, dag, task

from include.tasks.assets import RETRAINING_TRIGGERS
from include.tasks.common import DEFAULT_ARGS, window_params


@dag(
    dag_id="performance_daily",
    schedule=CronDataIntervalTimetable("0 23 * * 1-5", timezone="UTC"),
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),  # replay starts 2007; catchup is off
    catchup=False,
    dagrun_timeout=timedelta(hours=3),
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=window_params(),
    tags=["modelwatch", "performance", "monitoring"],
    doc_md=__doc__,
)
def performance_daily():
    @task
    def active_model_versions() -> list[dict]:
        from include.tasks.performance import active_targets

        return active_targets()

    @task(
        pool="monitoring_db",
        multiple_outputs=False,
        map_index_template="{{ target['model_name'] }} v{{ target['version'] }}",
    )
    def evaluate(target: dict, **context) -> dict:
        from include.tasks.performance import evaluate as run

        return run(target, context)

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, multiple_outputs=False)
    def respond_to_alerts(**context) -> dict:
        from include.tasks.loop import respond

        return respond("performance", context)

    @task(outlets=[RETRAINING_TRIGGERS])
    def announce_triggers(result: dict) -> str:
        from include.tasks.loop import announce

        return announce(result)

    responded = respond_to_alerts()
    evaluate.expand(target=active_model_versions()) >> responded
    announce_triggers(responded)


performance_daily()
