"""
### ab_test_daily

Daily judgement of every running champion/challenger **A/B test** (`ab_tests`;
start one with `python -m include.modelwatch ab start MODEL --challenger N`, or
let `retrain_gated` deploy a passing candidate as `challenger`).

While a test runs, `score_signals` scores every row with both versions (the
challenger's unassigned scores are shadow predictions) and stores each unit's
arm (SHA-256 of test id and `symbol@session`, `ab_assignments`); the signal a
unit receives is its arm's (view `served_signals`).

1. `evaluate_tests`: on the outcomes matured before the window's end, per test
   (one transaction each; one test's error does not stop the others): the
   paired 2x2 table of both models on the same rows, the assigned arms' hit
   rates and trading metrics, the predecessor's two-proportion z-test,
   McNemar, an **always-valid sequential test** on the sessions won by each
   model (a beta-binomial mixture SPRT: looking every day does not inflate
   false promotions) and the sample-ratio-mismatch check of the split. The
   decision (`include.modelwatch.ab.decision.decide`) and every number go to
   `ab_daily_results` (a re-run replaces the day's row).
2. `choose_endings` (branch) follows the endings the day's decisions need:
   - `promote_challenger`: the challenger becomes `champion` (alias change and
     history with reason and run, one transaction; the old champion stays
     registered), the `challenger` alias is removed, the test `promoted`;
   - `stop_challenger`: the champion proved better: `challenger` alias
     removed, the test `stopped` with the reason;
   - `close_inconclusive`: `max_days` sessions without a decision;
   - `keep_running`: no test ended today;
   - `request_promotion_approval`: when the model's policy asks for a human
     (variable `modelwatch_require_approval`, as for retraining), the
     promotion waits in `promotion_decision` (**Browse -> Required Actions**,
     assigned to `modelwatch_approvers`; no answer in 3 days = Reject):
     `promote_approved` promotes and records the approver,
     `promotion_not_approved` stops the test with who declined.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from include.modelwatch.ab.endings import (
    INCONCLUSIVE,
    PROMOTE,
    STOP,
    TASK_AB_ASK,
    TASK_AB_CONTINUE,
    TASK_AB_DECISION,
    TASK_AB_INCONCLUSIVE,
    TASK_AB_NOT_APPROVED,
    TASK_AB_PROMOTE,
    TASK_AB_PROMOTE_APPROVED,
    TASK_AB_STOP,
)
from include.tasks.approval import ApprovalOperator
from include.tasks.common import DEFAULT_ARGS, window_params


@dag(
    dag_id="ab_test_daily",
    schedule=CronDataIntervalTimetable("30 23 * * 1-5", timezone="UTC"),  # after score_signals' outcomes
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),
    catchup=False,
    dagrun_timeout=timedelta(days=4),  # a promotion's approval may wait 3 days (then Reject)
    max_active_runs=1,  # a test's days are judged in order
    default_args=DEFAULT_ARGS,
    params=window_params(),
    tags=["modelwatch", "ab-test"],
    doc_md=__doc__,
)
def ab_test_daily():
    @task(pool="monitoring_db", multiple_outputs=False)
    def evaluate_tests(**context) -> list[dict]:
        from include.tasks.ab import evaluate

        return evaluate(context)

    @task.branch
    def choose_endings(evaluated: list[dict]) -> list[str]:
        from include.tasks.ab import choose

        return choose(evaluated)

    @task(task_id=TASK_AB_PROMOTE)
    def promote_challenger(evaluated: list[dict], **context) -> list[int]:
        from include.tasks.ab import end_tests

        return end_tests(PROMOTE, evaluated, context)

    @task(task_id=TASK_AB_STOP)
    def stop_challenger(evaluated: list[dict], **context) -> list[int]:
        from include.tasks.ab import end_tests

        return end_tests(STOP, evaluated, context)

    @task(task_id=TASK_AB_INCONCLUSIVE)
    def close_inconclusive(evaluated: list[dict], **context) -> list[int]:
        from include.tasks.ab import end_tests

        return end_tests(INCONCLUSIVE, evaluated, context)

    @task(task_id=TASK_AB_CONTINUE)
    def keep_running(evaluated: list[dict]) -> int:
        return len(evaluated)

    @task(task_id=TASK_AB_ASK, multiple_outputs=False)
    def request_promotion_approval(evaluated: list[dict], **context) -> dict:
        from include.tasks.ab import request_promotion

        return request_promotion(evaluated, context)

    decision = ApprovalOperator(
        task_id=TASK_AB_DECISION,
        approvers_from=TASK_AB_ASK,
        subject="Promote the A/B challenger(s) to champion?",
        body="See the tests awaiting promotion in ab_test_daily's request_promotion_approval log.",
        options=["Approve", "Reject"],
        options_mapping={"Approve": TASK_AB_PROMOTE_APPROVED, "Reject": TASK_AB_NOT_APPROVED},
        response_timeout=timedelta(days=3),
        defaults="Reject",  # no answer in 3 days: the challenger is not promoted, the champion stays
    )

    @task(task_id=TASK_AB_PROMOTE_APPROVED)
    def promote_approved(evaluated: list[dict], **context) -> list[int]:
        from include.tasks.ab import apply_promotion

        return apply_promotion(True, evaluated, context)

    @task(task_id=TASK_AB_NOT_APPROVED)
    def promotion_not_approved(evaluated: list[dict], **context) -> list[int]:
        from include.tasks.ab import apply_promotion

        return apply_promotion(False, evaluated, context)

    evaluated = evaluate_tests()
    ask = request_promotion_approval(evaluated)
    choose_endings(evaluated) >> [
        promote_challenger(evaluated),
        stop_challenger(evaluated),
        close_inconclusive(evaluated),
        keep_running(evaluated),
        ask,
    ]
    ask >> decision >> [promote_approved(evaluated), promotion_not_approved(evaluated)]


ab_test_daily()
