"""
### score_signals

Daily. Scores the market bars of its data interval with the model's
`champion` (loaded by alias, SHA-256 verified) and records the outcomes of
earlier predictions whose horizon has closed.

1. `ingest_bars`: UPSERT the interval's daily bars (plus the history the
   features need) from the source into `market_bars`.
2. `score` (mapped per symbol of variable `modelwatch_symbols`): features with
   no look-ahead, class probabilities, confidence; the interval's predictions
   of the champion version are *replaced*, never duplicated. A bar with a NaN
   feature (e.g. zero volume) is scored with its NaN and marked
   `data_quality = 'missing_features'` (the NaN names in `missing_features`).
3. `record_outcomes` (mapped per symbol): realized return, realized label and
   R multiple for predictions whose horizon closed before the interval end.

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
    def list_symbols() -> list[str]:
        from include.tasks.scoring import symbols

        return symbols()

    @task(map_index_template="{{ symbol }}", multiple_outputs=False)
    def score(symbol: str, **context) -> dict:
        from include.tasks.scoring import score_symbol

        return score_symbol(symbol, context)

    @task(map_index_template="{{ symbol }}")
    def record_outcomes(symbol: str, **context) -> int:
        from include.tasks.scoring import record_outcomes as run

        return run(symbol, context)

    syms = list_symbols()
    scored = score.expand(symbol=syms)
    ingest_bars() >> syms
    scored >> record_outcomes.expand(symbol=syms)


score_signals()
