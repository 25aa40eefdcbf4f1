"""score_signals end to end on real S&P 500 / NASDAQ bars with the bootstrapped champion."""

from __future__ import annotations

import pandas as pd

from include.modelwatch.data import storage
from tests.e2e.conftest import rows as _rows
from tests.e2e.conftest import run_window


def test_scores_window_records_outcomes_and_is_idempotent(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    run = run_window("score_signals", "2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00")
    assert run.state == "success"
    preds = _rows(conn, "SELECT prediction_id, symbol, ts, predicted_label, probabilities, confidence, model_version "
                        "FROM predictions ORDER BY symbol, ts")
    # October 2008 had 23 NYSE sessions; two symbols
    assert len(preds) == 46
    assert {p["symbol"] for p in preds} == {"SPX", "IXIC"}
    assert all(p["model_version"] == champion.model.version for p in preds)
    for p in preds:
        probs = p["probabilities"]
        assert abs(sum(probs.values()) - 1) < 1e-9
        assert p["confidence"] == max(probs.values())
        assert p["predicted_label"] == max(probs, key=probs.get)
    first_ids = [p["prediction_id"] for p in preds]

    # outcomes: a prediction matures 5 sessions later, so the last 5 sessions of October have none yet
    outs = _rows(conn, "SELECT p.symbol, p.ts, o.realized_return, o.matured_at FROM outcomes o JOIN predictions p USING (prediction_id)")
    assert len(outs) == 2 * (23 - 5)
    assert all(o["matured_at"] < pd.Timestamp("2008-11-01", tz="UTC") for o in outs)

    # hand check one outcome: SPX entry 2008-10-10, horizon 5 -> exit 2008-10-17, log(close_exit/close_entry)
    bars = {r["bar_date"].isoformat(): r["close"] for r in _rows(conn, "SELECT bar_date, close FROM market_bars WHERE symbol='SPX'")}
    import math

    spx = next(o for o in outs if o["symbol"] == "SPX" and o["ts"].date().isoformat() == "2008-10-10")
    assert abs(spx["realized_return"] - math.log(bars["2008-10-17"] / bars["2008-10-10"])) < 1e-12

    # re-run of the same window: same rows, same ids, nothing duplicated
    assert run_window("score_signals", "2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00").state == "success"
    again = _rows(conn, "SELECT prediction_id FROM predictions ORDER BY symbol, ts")
    assert [r["prediction_id"] for r in again] == first_ids
    assert _rows(conn, "SELECT count(*) AS n FROM outcomes")[0]["n"] == len(outs)

    # next window matures the rest of October
    assert run_window("score_signals", "2008-11-01T00:00:00+00:00", "2008-12-01T00:00:00+00:00").state == "success"
    oct_outs = _rows(conn, "SELECT count(*) AS n FROM outcomes o JOIN predictions p USING (prediction_id) WHERE p.ts < '2008-11-01'")
    assert oct_outs[0]["n"] == 46
    conn.close()
