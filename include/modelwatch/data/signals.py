"""Database side of the signal pipeline: bars in, predictions and outcomes out.

Idempotency rules:

* ``market_bars`` rows are UPSERTed on (symbol, bar_date).
* ``predictions`` of one model version and symbol inside a window are
  replaced as a set: UPSERT on (model, version, symbol, timeframe, ts), then
  rows of the window that the new set does not contain are deleted, all in
  one transaction. ``prediction_id`` stays stable, so outcomes stay attached.
* ``outcomes`` are UPSERTed on ``prediction_id``.

Every prediction carries its data-quality status (migration 009):
``data_quality`` is ``'ok'`` or ``'missing_features'``, and ``missing_features``
names the features that were NaN (stored as JSON null in ``features``); see
:mod:`include.modelwatch.data.scoring` for the policy.

Reads here never commit or roll back: the caller owns the connection's
transaction (writes go through ``storage.transaction``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any

import pandas as pd

from include.modelwatch.data.storage import fetch_dicts, read_sql
from include.modelwatch.vocabulary import finite_or_none

# Daily bars are stamped at the US cash close (16:00 New York ~ 21:00 UTC) so
# a bar belongs to the data interval that contains its close.
BAR_CLOSE_UTC = time(21, 0, tzinfo=UTC)

#: ``predictions.data_quality`` values (CHECK constraint of migration 009).
DATA_QUALITY_OK = "ok"
DATA_QUALITY_MISSING = "missing_features"

_SELECT_BARS = """
SELECT symbol, bar_date AS date, open, high, low, close, volume
FROM market_bars
WHERE symbol = %(symbol)s AND bar_date >= %(start)s AND bar_date < %(end)s
ORDER BY bar_date
"""

_DELETE_STALE_PREDICTIONS = """
DELETE FROM predictions
WHERE model_name = %(model_name)s AND model_version = %(model_version)s AND symbol = %(symbol)s
  AND timeframe = %(timeframe)s AND ts >= %(start)s AND ts < %(end)s AND NOT (prediction_id = ANY(%(kept)s))
"""

_SELECT_AWAITING_OUTCOME = """
SELECT p.prediction_id, p.model_version, p.ts, p.predicted_label, p.features, mv.horizon_days, mv.params
FROM predictions p
JOIN model_versions mv ON mv.model_name = p.model_name AND mv.version = p.model_version
LEFT JOIN outcomes o ON o.prediction_id = p.prediction_id
WHERE p.model_name = %(model_name)s AND p.symbol = %(symbol)s AND p.ts < %(before)s AND o.prediction_id IS NULL
ORDER BY p.ts
"""


def bar_ts(d: date | pd.Timestamp) -> datetime:
    d = pd.Timestamp(d).date()
    return datetime.combine(d, BAR_CLOSE_UTC)


def feature_value(v: Any) -> Any:
    """A feature value as stored: a category (text) as it is, a number when finite, else None (JSON null)."""
    return v if isinstance(v, str) else finite_or_none(v)


def missing_features(values: dict[str, Any]) -> list[str]:
    """Names of the NaN / None / infinite values of a feature snapshot, in its order (categories count as present)."""
    return [k for k, v in values.items() if feature_value(v) is None]


def upsert_bars(cur, bars: pd.DataFrame, source: str = "arch") -> int:
    """UPSERT daily bars (columns symbol, date, open, high, low, close, volume)."""
    if bars.empty:
        return 0
    rows = [
        {
            "symbol": r["symbol"],
            "bar_date": pd.Timestamp(r["date"]).date(),
            "open": float(r["open"]),
            "high": float(r["high"]),
            "low": float(r["low"]),
            "close": float(r["close"]),
            "volume": float(r["volume"]),
            "source": source,
        }
        for r in bars.to_dict("records")
    ]
    cur.executemany(read_sql("dml/upsert_bars.sql"), rows)
    return len(rows)


def read_bars(conn, symbol: str, start: date, end: date) -> pd.DataFrame:
    """Bars of ``symbol`` with start <= date < end, oldest first."""
    rows = fetch_dicts(conn, _SELECT_BARS, {"symbol": symbol, "start": start, "end": end})
    df = pd.DataFrame(rows, columns=["symbol", "date", "open", "high", "low", "close", "volume"])
    df["date"] = pd.to_datetime(df["date"])
    return df


def replace_predictions(
    cur,
    *,
    model_name: str,
    model_version: int,
    symbol: str,
    timeframe: str,
    window_start: datetime,
    window_end: datetime,
    rows: Iterable[dict[str, Any]],
    run_id: str | None,
) -> int:
    """Make the window's predictions of (model version, symbol) exactly ``rows``.

    Each row: ``ts, features, predicted_label, probabilities, confidence``. NaN
    features are stored as JSON null, and the row's ``data_quality`` /
    ``missing_features`` are derived from that snapshot, so the mark always
    matches what is stored.
    """
    payload = []
    for r in rows:
        snapshot = {k: feature_value(v) for k, v in r["features"].items()}
        missing = missing_features(snapshot)
        payload.append(
            {
                "model_name": model_name,
                "model_version": model_version,
                "ts": r["ts"],
                "symbol": symbol,
                "timeframe": timeframe,
                "features": json.dumps(snapshot),
                "predicted_label": r["predicted_label"],
                "probabilities": json.dumps(r["probabilities"]),
                "confidence": float(r["confidence"]),
                "data_quality": DATA_QUALITY_MISSING if missing else DATA_QUALITY_OK,
                "missing_features": missing or None,
                "run_id": run_id,
            }
        )
    for p in payload:
        if not (window_start <= p["ts"] < window_end):
            raise ValueError(
                f"{model_name} v{model_version} {symbol}: prediction at {p['ts']} lies outside window "
                f"[{window_start}, {window_end})"
            )
    kept: list[int] = []
    if payload:
        cur.executemany(read_sql("dml/upsert_predictions.sql"), payload, returning=True)
        kept = [row[0] for _ in cur.results() for row in cur.fetchall()]
    cur.execute(
        _DELETE_STALE_PREDICTIONS,
        {
            "model_name": model_name,
            "model_version": model_version,
            "symbol": symbol,
            "timeframe": timeframe,
            "start": window_start,
            "end": window_end,
            "kept": kept,
        },
    )
    return len(payload)


def predictions_awaiting_outcome(conn, model_name: str, symbol: str, before: datetime) -> pd.DataFrame:
    """Predictions of ``model_name`` for ``symbol`` before ``before`` that have no outcome yet."""
    rows = fetch_dicts(conn, _SELECT_AWAITING_OUTCOME, {"model_name": model_name, "symbol": symbol, "before": before})
    return pd.DataFrame(rows)


def upsert_outcomes(cur, rows: list[dict[str, Any]]) -> int:
    """rows: dicts with prediction_id, realized_return, realized_label, r_multiple, horizon_days, matured_at, run_id."""
    if not rows:
        return 0
    cur.executemany(read_sql("dml/upsert_outcomes.sql"), rows)
    return len(rows)
