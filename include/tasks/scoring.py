"""Task bodies of ``score_signals``: ingest bars, score with the champion, record outcomes.

A bar with a NaN feature (e.g. zero volume, so no ``volume_z_20``) is scored with
its NaN and its prediction marked ``data_quality = 'missing_features'``; see
:mod:`include.modelwatch.data.scoring` for the policy. Each task's log ends with a
summary line.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from include.tasks.common import monitoring_db, run_id, variable, window

log = logging.getLogger(__name__)

HISTORY_DAYS = 420  # calendar days of history the features need (252 sessions + margin)
OUTCOME_HISTORY_DAYS = 60  # calendar days before the oldest pending prediction (its risk unit needs 22 bars)


def model_name() -> str:
    """The monitored model (variable ``modelwatch_model_name``)."""
    return variable("modelwatch_model_name")


def symbols() -> list[str]:
    """The scored symbols (variable ``modelwatch_symbols``)."""
    return variable("modelwatch_symbols")


def ingest_bars(context: dict[str, Any]) -> int:
    """UPSERT the source bars of the window (and the history features need)."""
    from include.modelwatch.data import scoring, signals, storage
    from include.modelwatch.ops import bootstrap

    start, end = window(context)
    syms = symbols()
    sel, in_window = scoring.history_slice(bootstrap.load_clean_bars(syms), start.date(), end.date(), HISTORY_DAYS)
    with monitoring_db() as conn:
        with storage.transaction(conn) as cur:
            n = signals.upsert_bars(cur, sel)
    log.info(
        "summary: market_bars upserted %d bars of %s (%d inside %s..%s, the rest is feature history)",
        n,
        ", ".join(syms),
        in_window,
        f"{start:%Y-%m-%d}",
        f"{end:%Y-%m-%d}",
    )
    return in_window


def score_symbol(symbol: str, context: dict[str, Any]) -> dict[str, Any]:
    """Score the window's bars of ``symbol`` with the hash-checked champion and, while the model has a running
    A/B test, with its challenger too (shadow scores on every row; each unit's arm is stored); replace the
    window's rows of each version and record each batch (rows, duration) in ``scoring_batches``, all in one
    transaction."""
    import time

    from include.modelwatch import registry
    from include.modelwatch.ab import store as ab_store
    from include.modelwatch.active_learning import store as al_store
    from include.modelwatch.data import scoring, signals, storage
    from include.modelwatch.metrics import get_metrics

    start, end = window(context)
    with monitoring_db() as conn:
        test = ab_store.running_test(conn, model_name())
        arms = [registry.CHAMPION] + ([ab_store.CHALLENGER] if test is not None else [])
        band = al_store.settings_for(conn, model_name())
        bars = None
        results = []
        captured: dict[int, int] = {}
        with storage.transaction(conn) as cur:
            for alias in arms:
                t0 = time.perf_counter()  # the batch's duration (scoring_batches): model load .. predictions written
                mv, blob = registry.load_by_alias(conn, model_name(), alias)
                if bars is None:
                    bars = signals.read_bars(conn, symbol, start.date() - timedelta(days=HISTORY_DAYS), end.date())
                scored = _score(mv, blob, bars, start, end, symbol)
                n = signals.replace_predictions(
                    cur,
                    model_name=mv.model_name,
                    model_version=mv.version,
                    symbol=symbol,
                    timeframe="1d",
                    window_start=start,
                    window_end=end,
                    rows=scored.rows,
                    run_id=run_id(context),
                )
                scoring.record_batch(
                    cur,
                    model_name=mv.model_name,
                    model_version=mv.version,
                    symbol=symbol,
                    timeframe="1d",
                    window_start=start,
                    window_end=end,
                    n_rows=n,
                    n_missing_features=len(scored.flagged),
                    duration_s=time.perf_counter() - t0,
                    run_id=run_id(context),
                )
                if alias == registry.CHAMPION:  # the served signal's undecided rows go to the labelling queue
                    captured = al_store.capture(
                        cur,
                        model_name=mv.model_name,
                        model_version=mv.version,
                        symbol=symbol,
                        window_start=start,
                        window_end=end,
                        settings=band,
                        run_id=run_id(context),
                    )
                results.append((alias, mv, scored, n))
            assigned: dict[str, str] = {}
            if test is not None:
                sessions = sorted({r["ts"].date() for r in results[0][2].rows if r["ts"] >= test.started_at})
                assigned = ab_store.assign_units(cur, test, [(symbol, d) for d in sessions])
    out: dict[str, Any] = {"symbol": symbol}
    for alias, mv, scored, n in results:
        for r in scored.flagged:
            log.warning(
                "%s %s %s: features %s are NaN; scored with NaN (native missing-value handling), "
                "marked data_quality=missing_features",
                mv.label,
                symbol,
                f"{r['ts']:%Y-%m-%d}",
                r["missing_features"],
            )
        get_metrics().incr("scoring.predictions", mv.model_name, mv.version, symbol, count=n)
        get_metrics().incr("scoring.missing_feature_rows", mv.model_name, mv.version, symbol, count=len(scored.flagged))
        log.info(
            "summary: %s (%s) %s..%s %s", mv.label, alias, f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}", scored.summary()
        )
        if alias == registry.CHAMPION:
            log.info(
                "summary: active learning: %d of %d prediction(s) of %s queued for labelling (priority 3/2/1: %s)",
                sum(captured.values()),
                n,
                symbol,
                "/".join(str(captured.get(p, 0)) for p in (3, 2, 1)),
            )
            out.update(
                active_learning={str(p): captured.get(p, 0) for p in (3, 2, 1)},
                model=mv.label,
                predictions=n,
                labels=scored.label_counts(),
                missing_feature_rows=[
                    {"ts": r["ts"].isoformat(), "features": r["missing_features"]} for r in scored.flagged
                ],
            )
        else:
            out.update(challenger=mv.label, shadow_predictions=n)
    if test is not None:
        to_challenger = sum(arm == ab_store.CHALLENGER for arm in assigned.values())
        log.info(
            "summary: A/B test %s of %s: %d sessions of %s assigned, %d to the challenger (split %.2f); both arms "
            "scored every row",
            test.test_id,
            test.model_name,
            len(assigned),
            symbol,
            to_challenger,
            test.split,
        )
        out.update(ab_test=test.test_id, assigned_to_challenger=to_challenger, assigned=len(assigned))
    return out


def _score(mv: Any, blob: bytes, bars: Any, start: Any, end: Any, symbol: str) -> Any:
    from include.modelwatch.data import scoring
    from include.modelwatch.training import training

    return scoring.score_window(
        training.deserialize_model(blob), mv.features, bars, start, end, symbol=symbol, label=mv.label
    )


def record_outcomes(symbol: str, context: dict[str, Any]) -> int:
    """Outcomes for predictions whose horizon closed before the window's end."""
    from include.modelwatch.data import scoring, signals, storage

    start, end = window(context)
    name = model_name()
    with monitoring_db() as conn:
        pending = signals.predictions_awaiting_outcome(conn, name, symbol, end)
        rows: list[dict[str, Any]] = []
        if not pending.empty:
            first = scoring.first_pending_day(pending)
            bars = signals.read_bars(conn, symbol, first - timedelta(days=OUTCOME_HISTORY_DAYS), end.date())
            rows = scoring.outcome_rows(pending, bars, end, run_id(context))
        with storage.transaction(conn) as cur:
            written = signals.upsert_outcomes(cur, rows)
    log.info(
        "summary: %s %s: %d outcomes matured before %s (%d predictions were pending, %d still immature)",
        name,
        symbol,
        written,
        f"{end:%Y-%m-%d}",
        len(pending),
        len(pending) - written,
    )
    return written
