"""Drift window storage on PostgreSQL: hysteresis decisions of one model are serialized (defect 6)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from include.modelwatch.data import storage
from include.modelwatch.monitoring.drift import DriftConfig, store

SEP, OCT, NOV, DEC = (datetime(2008, m, 1, tzinfo=UTC) for m in (9, 10, 11, 12))
CONFIG = DriftConfig()  # 2 of the last 3 windows fire, 3 clean resolve


def _model(db) -> None:
    with storage.transaction(db) as cur:
        cur.execute("INSERT INTO model_versions (model_name, version, algorithm) VALUES ('m', 1, 'lgbm')")


def _decide_and_write(cur, start, end, drifted):
    history, hyst = store.decide_alert_state(cur, "m", 1, start, drifted, CONFIG)
    store.clear_window(cur, "m", 1, start)
    store.insert_window(
        cur, "m", 1, start, end, status="evaluated", n_rows=40, run_id="t", drifted=drifted, alert_state=hyst.state
    )
    return history, hyst


def test_next_window_waits_for_the_previous_one_and_then_sees_it(db, monitoring_uri):
    """Catch-up with two concurrent runs: November is decided while October is still being written.
    November must wait for October's commit and judge itself with October in its history."""
    _model(db)
    with storage.transaction(db) as cur:
        _decide_and_write(cur, SEP, OCT, True)  # September drifted, committed (one window: still clear)
    out: dict = {}

    def november() -> None:
        with storage.session(monitoring_uri) as conn, storage.transaction(conn) as cur:
            out["history"], out["hyst"] = _decide_and_write(cur, NOV, DEC, True)
        out["done_at"] = time.monotonic()

    with storage.transaction(db) as cur:  # October's run holds its transaction open
        oct_history, oct_hyst = _decide_and_write(cur, OCT, NOV, True)
        worker = threading.Thread(target=november)
        worker.start()
        time.sleep(1.0)
        blocked = worker.is_alive()
        committed_at = time.monotonic()
    worker.join(timeout=30)
    assert (oct_history, oct_hyst.state, oct_hyst.transition) == ([True, True], "firing", "fire")
    assert blocked, "November was decided while October's window was still uncommitted"
    assert out["done_at"] >= committed_at
    # November saw October (already firing): it keeps the state instead of firing a second time
    assert out["history"] == [True, True, True]
    assert (out["hyst"].state, out["hyst"].transition) == ("firing", None)
    states = storage.fetch_dicts(db, "SELECT window_start, alert_state FROM drift_windows ORDER BY window_start")
    db.rollback()
    assert [(r["window_start"], r["alert_state"]) for r in states] == [(SEP, "clear"), (OCT, "firing"), (NOV, "firing")]


def test_locks_of_different_models_do_not_block_each_other(db, monitoring_uri):
    with storage.transaction(db) as cur:
        store.lock_model(cur, "m")
        with storage.session(monitoring_uri) as other, storage.transaction(other) as cur2:
            cur2.execute(
                "SELECT pg_try_advisory_xact_lock(hashtextextended(%(k)s, 0)) AS ok",
                {"k": f"{store.LOCK_NAMESPACE}:other_model"},
            )
            assert cur2.fetchone()[0] is True
            cur2.execute(
                "SELECT pg_try_advisory_xact_lock(hashtextextended(%(k)s, 0)) AS ok", {"k": f"{store.LOCK_NAMESPACE}:m"}
            )
            assert cur2.fetchone()[0] is False
