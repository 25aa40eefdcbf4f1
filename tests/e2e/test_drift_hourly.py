"""drift_hourly end to end on the real 2008 crisis: volatility features drift, re-runs replace rows."""

from __future__ import annotations

from include.modelwatch import storage
from tests.e2e.conftest import rows as _rows
from tests.e2e.conftest import run_window

OCT = ("2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00")


def test_crisis_window_shows_volatility_drift_and_reruns_replace(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    assert run_window("score_signals", "2008-09-01T00:00:00+00:00", OCT[1]).state == "success"
    assert run_window("drift_hourly", *OCT).state == "success"

    win = _rows(conn, "SELECT status, n_rows, drift_score, level, drifted FROM drift_windows WHERE window_start = %s", (OCT[0],))
    assert len(win) == 1
    assert win[0]["status"] == "evaluated" and win[0]["n_rows"] == 46
    assert win[0]["drifted"] is True and win[0]["level"] == "critical"

    drifted = {r["feature"] for r in _rows(conn, "SELECT DISTINCT feature FROM drift_results WHERE drifted AND window_start = %s", (OCT[0],))}
    vol = {f for f in drifted if "vol" in f or "atr" in f}
    assert vol, f"no volatility feature drifted in October 2008: {sorted(drifted)}"
    ks = _rows(conn, "SELECT statistic, p_value FROM drift_results WHERE window_start = %s AND feature = 'vol_21d' AND test = 'ks'", (OCT[0],))
    assert ks and ks[0]["statistic"] > 0.5 and ks[0]["p_value"] < 1e-6

    before = _rows(conn, "SELECT feature, test, statistic FROM drift_results WHERE window_start = %s ORDER BY feature, test", (OCT[0],))
    assert run_window("drift_hourly", *OCT).state == "success"
    after = _rows(conn, "SELECT feature, test, statistic FROM drift_results WHERE window_start = %s ORDER BY feature, test", (OCT[0],))
    assert after == before  # replaced, not duplicated

    # a window with no predictions is recorded as empty, not an error
    assert run_window("drift_hourly", "2030-01-01T00:00:00+00:00", "2030-01-01T01:00:00+00:00").state == "success"
    empty = _rows(conn, "SELECT status, n_rows FROM drift_windows WHERE window_start = '2030-01-01'")
    assert empty == [{"status": "empty", "n_rows": 0}]
    assert _rows(conn, "SELECT count(*) AS n FROM drift_results WHERE window_start = '2030-01-01'")[0]["n"] == 0
    conn.close()
