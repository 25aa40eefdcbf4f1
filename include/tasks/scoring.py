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

from include.tasks.common import market_source, monitoring_db, native_models, refusing_artifacts, run_id, window

log = logging.getLogger(__name__)

HISTORY_DAYS = 420  # calendar days of history the features need (252 sessions + margin)


def symbols() -> list[str]:
    """Every symbol a native model is trained on and scores (variable ``modelwatch_native_models``), once each."""
    return sorted({s for conf in native_models().values() for s in conf["symbols"]})


def scoring_targets() -> list[dict[str, str]]:
    """What ``score`` and ``record_outcomes`` map over: one (model, symbol) per symbol of each native model that
    has a champion. A native model without one yet is logged and left out (bootstrap trains it)."""
    from include.modelwatch import registry

    models = native_models()
    with monitoring_db() as conn:
        champions = {m["model_name"] for m in registry.monitored_models(conn, registry.NATIVE) if m["champion"]}
    missing = sorted(set(models) - champions)
    if missing:
        log.warning("native model(s) without a champion, not scored: %s (run the bootstrap)", ", ".join(missing))
    out = [
        {"model_name": name, "symbol": sym}
        for name in sorted(models)
        if name in champions
        for sym in models[name]["symbols"]
    ]
    log.info(
        "summary: %d (model, symbol) pair(s): %s", len(out), ", ".join(f"{t['model_name']}/{t['symbol']}" for t in out)
    )
    return out


def ingest_bars(context: dict[str, Any]) -> int:
    """UPSERT the source bars of the window (and the history features need) of every native model's symbols.

    A scheduled run's window ends now, so there a bar dated after it is impossible: from a ``folder:`` source (a
    live feed) it is refused (market.py's future-dated policy). A re-run, backfill or replay of an earlier window
    legitimately finds later bars, and so does the ``arch`` archive: they are cut at the window end, not an error.
    A bar already stored with other values is a late correction: it is overwritten and each change is logged."""
    import pandas as pd

    from include.modelwatch.data import market, scoring, signals, sources, storage
    from include.modelwatch.training import dataset

    start, end = window(context)
    syms = symbols()
    source = market_source()
    scheduled = str(getattr(context.get("dag_run"), "run_type", "")).split(".")[-1].lower() == "scheduled"
    live = scheduled and not isinstance(source, sources.ArchSource)
    as_of = (end - timedelta(microseconds=1)).date() if live else None
    bars = dataset.load_clean_bars(syms, source, as_of=as_of)
    sel, in_window = scoring.history_slice(bars, start.date(), end.date(), HISTORY_DAYS)
    with monitoring_db() as conn:
        since = start.date() - timedelta(days=HISTORY_DAYS)
        stored = pd.concat([signals.read_bars(conn, s, since, end.date()) for s in syms], ignore_index=True)
        found = market.apply_correction_policy(market.corrections(sel, stored))
        with storage.transaction(conn) as cur:
            n = signals.upsert_bars(cur, sel, source=source.name)
    for c in found:
        log.warning("late correction of a stored bar (overwritten): %s", c)
    log.info(
        "summary: market_bars upserted %d bars of %s from %s (%d inside %s..%s, the rest is feature history); "
        "%d late correction(s)",
        n,
        ", ".join(syms),
        source.name,
        in_window,
        f"{start:%Y-%m-%d}",
        f"{end:%Y-%m-%d}",
        len(found),
    )
    return in_window


def score_symbol(model_name: str, symbol: str, context: dict[str, Any]) -> dict[str, Any]:
    """Score the window's bars of ``symbol`` with the hash-checked champion and, while the model has a running
    A/B test, with its challenger too (shadow scores on every row; each unit's arm is stored); replace the
    window's rows of each version and record each batch (rows, duration) in ``scoring_batches``, all in one
    transaction. An artifact that fails its SHA-256 check (or is missing) is refused: nothing is written, a
    critical ``artifact_integrity`` alert is committed on its own, and the task fails."""
    import time

    from include.modelwatch import registry
    from include.modelwatch.ab import store as ab_store
    from include.modelwatch.active_learning import store as al_store
    from include.modelwatch.data import scoring, signals, storage
    from include.modelwatch.metrics import get_metrics
    from include.modelwatch.training import targets

    start, end = window(context)
    with monitoring_db() as conn:
        test = ab_store.running_test(conn, model_name)
        arms = [registry.CHAMPION] + ([ab_store.CHALLENGER] if test is not None else [])
        band = al_store.settings_for(conn, model_name)
        bars = None
        results = []
        captured: dict[int, int] = {}
        rid = run_id(context)
        with refusing_artifacts(conn, by="scoring", start=start, end=end, rid=rid, consequence="not scored"):
            with storage.transaction(conn) as cur:
                for alias in arms:
                    # the batch's duration (scoring_batches): model load .. predictions written
                    t0 = time.perf_counter()
                    mv, blob = registry.load_by_alias(conn, model_name, alias)
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
                    trades = targets.target_of(mv.params, mv.label).trading
                    if alias == registry.CHAMPION and trades:  # the served signal's undecided rows go to labelling
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
        training.deserialize_model(blob),
        mv.features,
        bars,
        start,
        end,
        symbol=symbol,
        label=mv.label,
        classes=mv.classes,
    )


def record_outcomes(name: str, symbol: str, context: dict[str, Any]) -> int:
    """Outcomes for ``name``'s predictions of ``symbol`` whose horizon closed before the window's end."""
    from include.modelwatch.data import scoring, signals, storage
    from include.modelwatch.training import targets

    start, end = window(context)
    with monitoring_db() as conn:
        pending = signals.predictions_awaiting_outcome(conn, name, symbol, end)
        rows: list[dict[str, Any]] = []
        if not pending.empty:
            first = scoring.first_pending_day(pending)
            history = max(targets.target_of(p).outcome_history_days for p in pending["params"])
            bars = signals.read_bars(conn, symbol, first - timedelta(days=history), end.date())
            try:
                rows = scoring.outcome_rows(pending, bars, end, run_id(context))
            except ValueError as exc:
                raise ValueError(f"{name} {symbol} outcomes before {end:%Y-%m-%d}: {exc}") from exc
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
