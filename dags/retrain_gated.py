"""
### retrain_gated

Quality-gated retraining and deployment. Runs when a retraining trigger is
written (Asset `modelwatch_retraining_triggers`) and daily at 02:00 UTC.

1. `claim_trigger`: the scheduled 02:00 run first evaluates the time-based
   response rule (`age_full_retrain`: champion trained on data older than 365
   days). A manual run (trigger form: model, reason, retrain mode; or the same
   keys in conf) creates a manual trigger (refused, without retries, when the
   reason is blank). Then it claims the most urgent pending trigger
   atomically (`FOR UPDATE SKIP LOCKED`: concurrent runs never share one).
   Nothing pending -> `end_no_trigger` says why.
2. `assemble_training_data`: labelled bars whose horizon closed before the
   trigger's window end; the last `eval_sessions` sessions are the shared
   out-of-sample period (never sessions the champion trained on; at least
   `min_eval_sessions`), training stops an embargo before it. Checked with
   Great Expectations, versioned in `training_datasets`.
3. `train_candidate` (mapped per algorithm, pool `training`): purged
   walk-forward validation, final fit (warm start from the champion for
   incremental triggers), gates against the champion on the same
   out-of-sample rows -> `training_jobs`, `quality_gate_results`; the
   candidate is registered without an alias, status `candidate`.
4. `branch_on_gates`: deploy, reject (failing gates named) or ask a human
   (`human_decision`, approval in the UI) when a gate is borderline or the
   variable `modelwatch_require_approval` (e.g. `{"spx_signal": true}`) says so.
   The request is assigned to the model's approvers (variable
   `modelwatch_approvers`) and mailed to them; it expires after 3 days with
   "Reject". Who answered is recorded on the trigger and the alias history.
5. `deploy_candidate`: alias change + trigger outcome in one transaction; the
   candidate becomes `active`, the replaced version `retired`, the trigger's
   other candidates `rejected`. "Deploy as" `challenger` deploys for an A/B test.
   `reject_candidate` marks the candidates `rejected`; the champion stays.
6. `wake_next`: when triggers are still pending (one run claims one, e.g. of
   another model), updates the trigger Asset so the next run claims the next.

Quick-run knobs (form or conf; empty = default): `num_boost_round`,
`eval_sessions`, `min_eval_sessions`, `embargo`, `train_years`, `shuffle_labels`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, TriggerRule, dag, task

from include.modelwatch.decisions import TASK_DEPLOY, TASK_HUMAN, TASK_NO_TRIGGER, TASK_REJECT, TASK_TRAIN
from include.tasks.approval import DECISION_TASK, ApprovalOperator
from include.tasks.assets import RETRAINING_TRIGGERS
from include.tasks.common import DEFAULT_ARGS
from include.tasks.forms import ALGORITHMS, retrain_params

TASK_HUMAN_DECISION = DECISION_TASK
TASK_DEPLOY_APPROVED = "deploy_approved"
TASK_REJECT_NOT_APPROVED = "reject_not_approved"


@dag(
    dag_id="retrain_gated",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 2 * * *", timezone="UTC"), assets=RETRAINING_TRIGGERS
    ),
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),
    catchup=False,
    dagrun_timeout=timedelta(days=4),  # the human approval waits up to 3 days
    max_active_runs=3,
    default_args=DEFAULT_ARGS,
    tags=["modelwatch", "retraining"],
    doc_md=__doc__,
    params=retrain_params(),
)
def retrain_gated():
    @task
    def claim_trigger(**context) -> dict | None:
        from include.tasks.retrain import claim

        return claim(context)

    @task.branch
    def branch_on_trigger(claimed: dict | None) -> str:
        from include.modelwatch.decisions import choose_after_claim

        return choose_after_claim(claimed)

    @task(task_id=TASK_NO_TRIGGER)
    def end_no_trigger() -> str:
        import logging

        why = "no pending retraining trigger to claim (none pending, or claimed by another run): nothing trained"
        logging.getLogger(__name__).info("summary: %s", why)
        return why

    @task(task_id=TASK_TRAIN, multiple_outputs=False)
    def assemble_training_data(claimed: dict, **context) -> dict:
        from include.tasks.retrain import assemble

        return assemble(claimed, context)

    @task(pool="training", map_index_template="{{ algorithm }}", multiple_outputs=False)
    def train_candidate(dataset: dict, algorithm: str, **context) -> dict:
        from include.tasks.retrain import train_candidate as run

        return run(dataset, algorithm, context)

    # ALL_DONE_MIN_ONE_SUCCESS: runs when every candidate finished, even if one failed (it must not stop the
    # other's gates; when both failed, the dataset's success still lets pick_best mark the trigger failed), but
    # is skipped when its upstream was skipped (no trigger claimed), unlike ALL_DONE, which ran it on nothing.
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, multiple_outputs=False)
    def pick_best(dataset: dict, candidates, **context) -> dict:
        from include.tasks.retrain import pick_best as run

        return run(dataset, candidates, context)

    @task.branch
    def branch_on_gates(dataset: dict, best: dict) -> str:
        from include.tasks.retrain import choose

        return choose(dataset, best)

    @task(task_id=TASK_DEPLOY)
    def deploy_candidate(dataset: dict, best: dict, **context) -> int:
        from include.tasks.retrain import deploy

        return deploy(dataset, best, context)

    @task(task_id=TASK_REJECT)
    def reject_candidate(dataset: dict, best: dict, **context) -> str:
        from include.tasks.retrain import reject

        return reject(dataset, best, context)

    @task(task_id=TASK_HUMAN, multiple_outputs=False)
    def request_human_approval(dataset: dict, best: dict, **context) -> dict:
        from include.tasks.retrain import mark_awaiting

        return mark_awaiting(dataset, best, context)

    human = ApprovalOperator(
        task_id=TASK_HUMAN_DECISION,
        approvers_from=TASK_HUMAN,
        subject="Deploy retrained model {{ ti.xcom_pull(task_ids='pick_best')['version'] }}?",
        body=(
            "Candidate {{ ti.xcom_pull(task_ids='pick_best') }}; gate evidence in quality_gate_results "
            "for trigger {{ ti.xcom_pull(task_ids='" + TASK_TRAIN + "')['trigger_id'] }}."
        ),
        options=["Approve", "Reject"],
        options_mapping={"Approve": TASK_DEPLOY_APPROVED, "Reject": TASK_REJECT_NOT_APPROVED},
        response_timeout=timedelta(days=3),
        defaults="Reject",  # no answer in 3 days: the candidate is rejected, the champion stays
    )

    @task(task_id=TASK_DEPLOY_APPROVED)
    def deploy_approved(dataset: dict, best: dict, **context) -> str:
        from include.tasks.retrain import apply_approval

        return apply_approval(dataset, best, True, context)

    @task(task_id=TASK_REJECT_NOT_APPROVED)
    def reject_not_approved(dataset: dict, best: dict, **context) -> str:
        from include.tasks.retrain import apply_approval

        return apply_approval(dataset, best, False, context)

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def finish() -> None:
        from include.tasks.retrain import finish as finish_run

        finish_run()

    @task(outlets=[RETRAINING_TRIGGERS])
    def wake_next() -> str:
        from include.tasks.retrain import wake_next as body

        return body()

    claimed = claim_trigger()
    dataset = assemble_training_data(claimed)
    branch_on_trigger(claimed) >> [end_no_trigger(), dataset]
    candidates = train_candidate.partial(dataset=dataset).expand(algorithm=ALGORITHMS)
    best = pick_best(dataset, candidates)
    gate_branch = branch_on_gates(dataset, best)
    deployed = deploy_candidate(dataset, best)
    rejected = reject_candidate(dataset, best)
    asked = request_human_approval(dataset, best)
    gate_branch >> [deployed, rejected, asked]
    approved, not_approved = deploy_approved(dataset, best), reject_not_approved(dataset, best)
    asked >> human >> [approved, not_approved]
    [deployed, rejected, approved, not_approved] >> finish() >> wake_next()


retrain_gated()
