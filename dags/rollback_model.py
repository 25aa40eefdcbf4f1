"""
### rollback_model

Restores a previous champion exactly (same registered artifact, SHA-256
verified before the alias moves; a corrupted artifact is refused).

* **Manual**: trigger with the form (model, target version, reason), or the
  same keys in conf: `{"model_name": "spx_signal", "target_version": 1, "reason": "..."}`.
  The target must be a version that served before (status `retired`); it
  becomes `active` again and the replaced champion `retired`.
* **Automatic** (daily 03:30 UTC), for every model with a champion (or the
  model of the form): if the champion deployed last has daily live accuracy
  (`live_performance_daily`) significantly worse than its predecessor's over
  `period_days` (default 30) before / after the change (one-sided
  Mann-Whitney, alpha 0.05, at least `min_days` = 10 days each), the
  predecessor is restored. `plan_rollback` plans every model; `decide` takes
  `rollback_champion` when some model rolls back and `keep_champion` when
  some keeps its champion (both when both).

The alias history records why and which run; the next `score_signals` run
scores with the restored version.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, TriggerRule, dag, task

from include.modelwatch.decisions import TASK_KEEP, TASK_ROLLBACK
from include.tasks.common import DEFAULT_ARGS
from include.tasks.forms import rollback_params


@dag(
    dag_id="rollback_model",
    schedule=CronTriggerTimetable("30 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),
    catchup=False,
    dagrun_timeout=timedelta(hours=1),
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["modelwatch", "retraining", "rollback"],
    doc_md=__doc__,
    params=rollback_params(),
)
def rollback_model():
    @task
    def plan_rollback(**context) -> list[dict]:
        from include.tasks.rollback import rollback_plans

        return rollback_plans(context)

    @task.branch
    def decide(plans: list[dict]) -> list[str]:
        from include.modelwatch.decisions import choose_rollbacks

        return choose_rollbacks(plans)

    @task(task_id=TASK_ROLLBACK)
    def rollback_champion(plans: list[dict], **context) -> list[int]:
        from include.tasks.rollback import do_rollbacks

        return do_rollbacks(plans, context)

    @task(task_id=TASK_KEEP)
    def keep_champion(plans: list[dict]) -> list[str]:
        from include.tasks.rollback import keep_all

        return keep_all(plans)

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def finish() -> None:
        import logging

        logging.getLogger(__name__).info("summary: rollback_model run finished; see model_alias_history")

    plan = plan_rollback()
    decide(plan) >> [rollback_champion(plan), keep_champion(plan)] >> finish()


rollback_model()
