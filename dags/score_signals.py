"""
### score_signals

Daily. Scores the market bars of its data interval with the `champion` of
every native model (variable `modelwatch_native_models`: each model's target
and symbols; loaded by alias, SHA-256 verified) and records the outcomes of
earlier predictions whose horizon has closed.

1. `ingest_bars`: UPSERT the interval's daily bars (plus the history the
   features need) of every native model's symbols from the market source
   (variable `modelwatch_market_source`) into `market_bars`; a changed
   stored bar (late correction) is overwritten and logged.
2. `list_targets`: one (model, symbol) per symbol of each model with a champion.
3. `score` (mapped per model and symbol): features with no look-ahead, class
   probabilities, confidence; the interval's predictions of the champion
   version are *replaced*, never duplicated. A bar with a NaN feature (e.g.
   zero volume) is scored with its NaN and marked
   `data_quality = 'missing_features'` (the NaN names in `missing_features`).
4. `record_outcomes` (mapped per model and symbol): realized return and
   realized label (and, for the direction model, R multiple) of predictions
   whose horizon closed before the interval end.

Params `window_start` / `window_end` re-run any window from the trigger form.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from include.tasks.common import DEFAULT_ARGS, window_params


@dag(
    dag_id="score_signals",
    schedule=CronDataIntervalTimetable("0 22 * * 1-5", timezone="UTC"),
    start_date=pendulum.datetime(2006, 12, 1, tz="UTC"),  # replay starts 2007; catchup is off
    catchup=False,
    dagrun_timeout=timedelta(hours=3),
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=window_params(),
    tags=["modelwatch", "scoring"],
    doc_md=__doc__,
)
def score_signals():
    @task
    def ingest_bars(**context) -> int:
        from include.tasks.scoring import ingest_bars as run

        return run(context)

    @task
    def list_targets() -> list[dict]:
        from include.tasks.scoring import scoring_targets

        return scoring_targets()

    @task(map_index_template="{{ target['model_name'] }} {{ target['symbol'] }}", multiple_outputs=False)
    def score(target: dict, **context) -> dict:
        from include.tasks.scoring import score_symbol

        return score_symbol(target["model_name"], target["symbol"], context)

    @task(map_index_template="{{ target['model_name'] }} {{ target['symbol'] }}")
    def record_outcomes(target: dict, **context) -> int:
        from include.tasks.scoring import record_outcomes as run

        return run(target["model_name"], target["symbol"], context)

    targets = list_targets()
    scored = score.expand(target=targets)
    ingest_bars() >> targets
    scored >> record_outcomes.expand(target=targets)


score_signals()
