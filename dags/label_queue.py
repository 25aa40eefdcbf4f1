"""
### label_queue

People label what the model could not decide (**active learning**).

`score_signals` puts every champion prediction whose decision confidence
`p1 / (p1 + p2)` (the top class's share of the two best) lies in the model's
band into `active_learning_queue`, with a priority: 3 up to 0.52, 2 up to
0.54, 1 up to 0.55 (the predecessor's binary bands; per-model settings in
`active_learning_settings`, CLI `label settings`).

1. `refresh_queue`: realized outcomes onto items whose horizon closed; pending
   items older than `expire_after_days` behind the model's newest prediction
   expire.
2. `pick_items`: the top pending items by priority, then age (`batch_size`,
   or the form's `n`).
3. `label_item` (mapped): one human-in-the-loop request per item in
   **Browse -> Required Actions**: BUY, SELL, HOLD or Skip, plus notes. It
   shows the bar, the probabilities, the last closes and the features that
   pushed the model (SHAP). The answer is recorded with the user's name; a
   request nobody answers within 20 hours leaves the item pending. An item
   answered elsewhere meanwhile (CLI, ModelWatch page) is refused, named.
4. `respond_to_labels`: as of the model's newest scored bar, the
   `active_learning_retrain` rule (at least 50 labels no retrain used yet
   and old enough to train on: 136 scored sessions after them; cooldown
   72 h) writes a retraining trigger; `announce_triggers` wakes
   `retrain_gated` only when a trigger changed. The retrain puts the labels
   on its training rows (weight and disagreement rule per model; never on
   the out-of-sample rows) and marks them `processed`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from include.tasks.assets import RETRAINING_TRIGGERS
from include.tasks.common import DEFAULT_ARGS
from include.tasks.forms import model_field
from include.tasks.labelling import LabelOperator


@dag(
    dag_id="label_queue",
    schedule=CronDataIntervalTimetable("0 7 * * 1-5", timezone="UTC"),  # before the analysts' day
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),
    catchup=False,
    dagrun_timeout=timedelta(days=1),
    max_active_runs=1,  # one batch of requests at a time: no item is asked twice
    default_args=DEFAULT_ARGS,
    params={
        "model_name": model_field("label this model's queue (empty: every model with a champion)"),
        "n": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=200,
            title="Items",
            description="how many items to ask about (empty: the model's batch_size)",
        ),
    },
    tags=["modelwatch", "active-learning"],
    doc_md=__doc__,
)
def label_queue():
    @task(pool="monitoring_db", multiple_outputs=False)
    def refresh_queue(**context) -> dict:
        from include.tasks.labelling import refresh_queue as body

        return body(context)

    @task(pool="monitoring_db")
    def pick_items(**context) -> list[dict]:
        from include.tasks.labelling import pick_items as body

        return body(context)

    @task(trigger_rule="all_done", multiple_outputs=False)
    def respond_to_labels(**context) -> dict:
        from include.tasks.labelling import respond_to_labels as body

        return body(context)

    @task(outlets=[RETRAINING_TRIGGERS])
    def announce_triggers(result: dict) -> str:
        from include.tasks.loop import announce

        return announce(result)

    picked = pick_items()
    labelled = LabelOperator.partial(task_id="label_item").expand_kwargs(picked)
    responded = respond_to_labels()
    refresh_queue() >> picked
    labelled >> responded
    announce_triggers(responded)


label_queue()
