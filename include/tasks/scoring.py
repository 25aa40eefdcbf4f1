"""Task bodies of ``score_signals``: ingest bars, score with the champion, record outcomes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from include.tasks.common import monitoring_db, run_id, window

HISTORY_DAYS = 420  # calendar days of history the features need (252 sessions + margin)


def _model_name(context: dict[str, Any]) -> str:
    from airflow.sdk import Variable

    return Variable.get("modelwatch_model_name", default="spx_signal")


def symbols() -> list[str]:
    import json

    from airflow.sdk import Variable

    return json.loads(Variable.get("modelwatch_symbols", default='["SPX"]'))


def ingest_bars(context: dict[str, Any]) -> int:
    """UPSERT the source bars of the window (and the history features need)."""
    import pandas as pd

    from include.modelwatch.ops import bootstrap

    from include.modelwatch.data import signals, storage
    start, end = window(context)
    syms = symbols()
    bars = bootstrap.load_clean_bars(syms)
    lo = pd.Timestamp(start.date() - timedelta(days=HISTORY_DAYS))
    sel = bars[(bars["date"] >= lo) & (bars["date"] < pd.Timestamp(end.date()))]
    with monitoring_db() as conn:
        with storage.transaction(conn) as cur:
            n = signals.upsert_bars(cur, sel)
    in_window = int(((sel["date"] >= pd.Timestamp(start.date())) & (sel["date"] < pd.Timestamp(end.date()))).sum())
    print(f"market_bars: upserted {n} bars of {', '.join(syms)} ({in_window} inside {start:%Y-%m-%d}..{end:%Y-%m-%d})")
    return in_window


def score_symbol(symbol: str, context: dict[str, Any]) -> dict[str, Any]:
    """Score the window's bars of ``symbol`` with the hash-checked champion; replace the window's rows."""
    import pandas as pd

    from include.modelwatch.ops import bootstrap
    from include.modelwatch.data import features, signals, storage
    from include.modelwatch import registry
    from include.modelwatch.training import training
    from include.modelwatch.metrics import get_metrics

    start, end = window(context)
    model_name = _model_name(context)
    with monitoring_db() as conn:
        mv, blob = registry.load_by_alias(conn, model_name, registry.CHAMPION)
        model = training.deserialize_model(blob)
        bars = signals.read_bars(conn, symbol, start.date() - timedelta(days=HISTORY_DAYS), end.date())
        rows: list[dict[str, Any]] = []
        if not bars.empty:
            feats = features.compute_features(bars)[mv.features]
            ts_index = pd.DatetimeIndex([signals.bar_ts(d) for d in feats.index])
            mask = (ts_index >= start) & (ts_index < end)
            todo = feats[mask]
            missing = todo[todo.isna().any(axis=1)]
            if len(missing):
                first = missing.index[0]
                cols = [c for c in mv.features if pd.isna(missing.iloc[0][c])]
                raise ValueError(f"{mv.label} {symbol} {first:%Y-%m-%d}: features {cols} are NaN (not enough history in market_bars?)")
            if len(todo):
                proba = training.predict_proba(model, todo)
                pred = bootstrap.prediction_frame(proba)
                for i, (d, frow) in enumerate(todo.iterrows()):
                    rows.append({
                        "ts": signals.bar_ts(d),
                        "features": frow.to_dict(),
                        "predicted_label": pred["predicted_label"].iat[i],
                        "probabilities": {c: float(proba[i, j]) for j, c in enumerate(features.CLASSES)},
                        "confidence": float(pred["confidence"].iat[i]),
                    })
        with storage.transaction(conn) as cur:
            n = signals.replace_predictions(
                cur, model_name=mv.model_name, model_version=mv.version, symbol=symbol, timeframe="1d",
                window_start=start, window_end=end, rows=rows, run_id=run_id(context),
            )
    counts = pd.Series([r["predicted_label"] for r in rows], dtype=object).value_counts().to_dict()
    get_metrics().gauge("scoring.predictions", n, mv.model_name, symbol)
    print(f"{mv.label} {symbol} {start:%Y-%m-%d}..{end:%Y-%m-%d}: {n} predictions {counts}")
    return {"symbol": symbol, "model": mv.label, "predictions": n, "labels": counts}


def record_outcomes(symbol: str, context: dict[str, Any]) -> int:
    """Outcomes for predictions whose horizon closed before the window's end."""
    import pandas as pd

    from include.modelwatch.data import features, signals, storage

    start, end = window(context)
    model_name = _model_name(context)
    with monitoring_db() as conn:
        pending = signals.predictions_awaiting_outcome(conn, model_name, symbol, end)
        written = 0
        rows: list[tuple] = []
        if not pending.empty:
            first = pd.Timestamp(pending["ts"].min()).tz_convert("UTC").date()
            bars = signals.read_bars(conn, symbol, first - timedelta(days=60), end.date())
            bars = bars[[signals.bar_ts(d) < end for d in bars["date"]]]
            for (horizon, params_json), grp in pending.groupby(["horizon_days", pending["params"].map(lambda p: (p.get("k", 0.5), p.get("vol_window", 21)))]):
                k, vol_window = params_json
                preds = pd.DataFrame({
                    "prediction_id": grp["prediction_id"].to_numpy(),
                    "date": [pd.Timestamp(t).tz_convert("UTC").tz_localize(None).normalize() for t in grp["ts"]],
                    "predicted_label": grp["predicted_label"].to_numpy(),
                })
                out = features.compute_outcomes(preds, bars, horizon=int(horizon), k=float(k), vol_window=int(vol_window))
                for r in out.itertuples(index=False):
                    rows.append((int(r.prediction_id), float(r.realized_return), str(r.realized_label), float(r.r_multiple),
                                 int(horizon), signals.bar_ts(r.matured_at), run_id(context)))
        with storage.transaction(conn) as cur:
            written = signals.upsert_outcomes(cur, rows)
    print(f"{model_name} {symbol}: {written} outcomes matured before {end:%Y-%m-%d} ({len(pending)} were pending)")
    return written
