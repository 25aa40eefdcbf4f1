"""Database side of the signal pipeline: bars in, predictions and outcomes out.

Idempotency rules:

* ``market_bars`` rows are UPSERTed on (symbol, bar_date).
* ``predictions`` of one model version and symbol inside a window are
  replaced as a set: UPSERT on (model, version, symbol, timeframe, ts), then
  rows of the window that the new set does not contain are deleted, all in
  one transaction. ``prediction_id`` stays stable, so outcomes stay attached.
* ``outcomes`` are UPSERTed on ``prediction_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime, time, timezone
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.data.storage import fetch_dicts, read_sql

# Daily bars are stamped at the US cash close (16:00 New York ~ 21:00 UTC) so
# a bar belongs to the data interval that contains its close.
BAR_CLOSE_UTC = time(21, 0, tzinfo=timezone.utc)


def bar_ts(d: date | pd.Timestamp) -> datetime:
    d = pd.Timestamp(d).date()
    return datetime.combine(d, BAR_CLOSE_UTC)


def upsert_bars(cur, bars: pd.DataFrame, source: str = "arch") -> int:
    """UPSERT daily bars (columns symbol, date, open, high, low, close, volume)."""
    if bars.empty:
        return 0
    rows = [
        (r.symbol, pd.Timestamp(r.date).date(), float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume), source)
        for r in bars.itertuples(index=False)
    ]
    cur.executemany(read_sql("dml/upsert_bars.sql"), rows)
    return len(rows)


def read_bars(conn, symbol: str, start: date, end: date) -> pd.DataFrame:
    """Bars of ``symbol`` with start <= date < end, oldest first."""
    rows = fetch_dicts(
        conn,
        "SELECT symbol, bar_date AS date, open, high, low, close, volume FROM market_bars "
        "WHERE symbol = %s AND bar_date >= %s AND bar_date < %s ORDER BY bar_date",
        (symbol, start, end),
    )
    conn.rollback()
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
    """Make the window's predictions of (model version, symbol) exactly ``rows``."""
    payload = [
        (
            model_name, model_version, r["ts"], symbol, timeframe,
            json.dumps({k: (None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)) for k, v in r["features"].items()}),
            r["predicted_label"], json.dumps(r["probabilities"]), float(r["confidence"]), run_id,
        )
        for r in rows
    ]
    for ts in (p[2] for p in payload):
        if not (window_start <= ts < window_end):
            raise ValueError(f"{model_name} v{model_version} {symbol}: prediction at {ts} lies outside window [{window_start}, {window_end})")
    kept: list[int] = []
    if payload:
        cur.executemany(read_sql("dml/upsert_predictions.sql"), payload, returning=True)
        kept = [row[0] for _ in cur.results() for row in cur.fetchall()]
    cur.execute(
        "DELETE FROM predictions WHERE model_name = %s AND model_version = %s AND symbol = %s AND timeframe = %s "
        "AND ts >= %s AND ts < %s AND NOT (prediction_id = ANY(%s))",
        (model_name, model_version, symbol, timeframe, window_start, window_end, kept),
    )
    return len(payload)


def predictions_awaiting_outcome(conn, model_name: str, symbol: str, before: datetime) -> pd.DataFrame:
    """Predictions of ``model_name`` for ``symbol`` before ``before`` that have no outcome yet."""
    rows = fetch_dicts(
        conn,
        "SELECT p.prediction_id, p.model_version, p.ts, p.predicted_label, p.features, mv.horizon_days, mv.params "
        "FROM predictions p JOIN model_versions mv ON mv.model_name = p.model_name AND mv.version = p.model_version "
        "LEFT JOIN outcomes o ON o.prediction_id = p.prediction_id "
        "WHERE p.model_name = %s AND p.symbol = %s AND p.ts < %s AND o.prediction_id IS NULL ORDER BY p.ts",
        (model_name, symbol, before),
    )
    conn.rollback()
    return pd.DataFrame(rows)


def upsert_outcomes(cur, rows: list[tuple[Any, ...]]) -> int:
    """rows: (prediction_id, realized_return, realized_label, r_multiple, horizon_days, matured_at, run_id)."""
    if not rows:
        return 0
    cur.executemany(read_sql("dml/upsert_outcomes.sql"), rows)
    return len(rows)
