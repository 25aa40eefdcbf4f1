"""
### policy_replay

Does the closed loop pay off? Replays retraining **policies** over market history and compares them: never
retrain, a monthly or quarterly calendar retrain (always deployed), and the closed loop (the response rules'
triggers, gated; a variant with the gates off).

* **Manual only**: trigger with the form (model, first and last month, the period the metrics compare, policies).
* `plan`: checks the form (a bad field fails at once, naming it) and lists the policies.
* `replay` (mapped, one per policy, pool `policy_replay`): the DAGs' own task bodies month by month (scoring, drift,
  performance, response rules, retraining, gates, deployment) in a schema of the monitoring database of its own
  (`policy_<model>_<policy>`, rebuilt each run: the live tables are not touched), with the Variables at their
  defaults and no mail. A policy over 2007-2018 takes 10-20 minutes on 2 cores. Its result lands in the table
  `policy_replay_results`.
* `report`: the comparison table (the task log) and the JSON, Markdown and plots under
  `$MODELWATCH_HOME/results/policy_replay/<model>/` (the README's table comes from the same code).

The same from the CLI: `python -m include.modelwatch policy-replay --model spx_signal`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from include.modelwatch import defaults
from include.modelwatch.policy.policies import DEFAULT_POLICIES, POLICIES
from include.tasks.common import DEFAULT_ARGS


def _date(value: str, title: str, description: str) -> Param:
    return Param(value, type="string", format="date", title=title, description=description)


@dag(
    dag_id="policy_replay",
    schedule=None,
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),
    catchup=False,
    dagrun_timeout=timedelta(hours=12),
    max_active_runs=1,  # one replay at a time: each policy's schema is rebuilt by its run
    default_args=DEFAULT_ARGS,
    tags=["modelwatch", "policy", "replay"],
    doc_md=__doc__,
    params={
        "model_name": Param(defaults.MODEL_NAME, type="string", enum=sorted(defaults.NATIVE_MODELS), title="Model"),
        "start": _date("2007-01-01", "First month", "The replay starts with this date's month."),
        "end": _date("2019-01-01", "End (exclusive)", "The replay ends before this date's month."),
        "eval_start": _date("2009-01-01", "Compare from", "Start of the period the policies' metrics compare."),
        "eval_end": _date("2019-01-01", "Compare until (exclusive)", "End of that period."),
        "policies": Param(
            list(DEFAULT_POLICIES),
            type="array",
            items={"type": "string", "enum": list(POLICIES)},
            minItems=1,
            title="Policies",
            description="; ".join(f"{p.name}: {p.description}" for p in POLICIES.values()),
        ),
        "schedule_rules": Param(
            True,
            type="boolean",
            title="Time-based rules",
            description="Evaluate the model-age rule at each month's end, as retrain_gated's daily run does.",
        ),
    },
)
def policy_replay():
    @task
    def plan(**context) -> list[str]:
        from include.tasks.policy import plan as body

        return body(context)

    @task(
        pool="policy_replay",
        execution_timeout=timedelta(hours=4),
        map_index_template="{{ policy }}",
        multiple_outputs=False,
    )
    def replay(policy: str, **context) -> dict:
        from include.tasks.policy import replay_task

        return replay_task(policy, context)

    @task(execution_timeout=timedelta(minutes=30))
    def report(summaries: list[dict], **context) -> str:
        from include.tasks.policy import report_task

        return report_task(list(summaries), context)

    report(replay.expand(policy=plan()))


policy_replay()
