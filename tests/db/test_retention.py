"""Retention (include/modelwatch/ops/retention.py) on the real database: rows on both sides of every cutoff.

No row inside a retention window is touched (checksums before/after), rows outside are rolled up or removed with
the right aggregates, a second run is a no-op, and a failing run leaves the database as it was.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from include.modelwatch import defaults
from include.modelwatch.data import storage
from include.modelwatch.ops import retention

END = datetime(2008, 6, 1, tzinfo=UTC)  # the run's data interval end
DAYS = {p.table: defaults.VARIABLES[p.variable] for p in retention.POLICIES}
CUT = {t: retention.cutoff(END, d) for t, d in DAYS.items()}
FEATURES = ("rsi_14", "ret_5d")
TESTS = ("psi", "ks")

#: every table's rows, and each table's rows inside its retention window (or otherwise protected), as one checksum
CHECKSUM = "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t WHERE {where}"
IN_WINDOW = {
    "drift_results": "window_start >= %(cutoff)s",
    "predictions": "ts >= %(cutoff)s OR NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.prediction_id = t.prediction_id)",
    "notifications": "created_at >= %(cutoff)s OR status IN ('pending', 'failed')",
    "data_quality_results": "window_start >= %(cutoff)s OR source <> 'drift_window'",
}
KEPT = ("drift_windows", "drift_windows_daily", "outcomes", "model_versions", "alerts")


def _checksum(db, table: str, where: str = "true", params: dict | None = None) -> str:
    with db.cursor() as cur:
        cur.execute(CHECKSUM.format(table=table, where=where), params or {})
        out = cur.fetchone()[0]
    db.rollback()
    return out


def _state(db) -> dict[str, str]:
    """Checksum of every row of the retained tables and of the tables no policy touches."""
    return {t: _checksum(db, t) for t in (*retention.TABLES, *KEPT)}


def _in_window(db) -> dict[str, str]:
    return {t: _checksum(db, t, IN_WINDOW[t], {"cutoff": CUT[t]}) for t in retention.TABLES}


def _fill(db) -> None:
    """Rows on both sides of each cutoff (defaults: drift 2008-03-03, notifications 2007-12-04, predictions and data
    quality 2007-06-02)."""
    with storage.transaction(db) as cur:
        cur.execute("INSERT INTO model_versions (model_name, version, algorithm) VALUES ('m', 1, 'lightgbm')")
        # hourly windows 2008-02-29 00:00 .. 2008-03-05 23:00: three days before the drift cutoff, three after
        cur.execute(
            "INSERT INTO drift_windows (model_name, model_version, window_start, window_end, status, n_rows, "
            "drift_score, level, n_drifted, drifted) "
            "SELECT 'm', 1, t, t + interval '1 hour', 'evaluated', 40, extract(hour FROM t) / 24.0, "
            "CASE WHEN extract(hour FROM t) = 13 THEN 'warning' ELSE 'none' END, 0, false "
            "FROM generate_series(timestamptz '2008-02-29 00:00+00', timestamptz '2008-03-05 23:00+00', "
            "interval '1 hour') AS t"
        )
        # deterministic statistics; hour 13 drifted; the 'ks' test has no statistic at hour 5
        cur.execute(
            "INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, "
            "statistic, p_value, severity, drifted, n_current, details) "
            "SELECT 'm', 1, w.window_start, w.window_end, 'feature', f, t, "
            "CASE WHEN t = 'ks' AND extract(hour FROM w.window_start) = 5 THEN NULL "
            "ELSE (extract(hour FROM w.window_start) + extract(day FROM w.window_start)) / 100.0 + length(f) END, "
            "1.0 / (2 + extract(hour FROM w.window_start)), extract(hour FROM w.window_start), "
            "extract(hour FROM w.window_start) = 13, 40, jsonb_build_object('bins', 10) "
            "FROM drift_windows w, unnest(%(features)s::text[]) f, unnest(%(tests)s::text[]) t",
            {"features": list(FEATURES), "tests": list(TESTS)},
        )
        # one prediction a day 2007-05-28 .. 2007-06-06 (cutoff 2007-06-02); an outcome for all but 2007-05-30
        cur.execute(
            "INSERT INTO predictions (model_name, model_version, ts, symbol, features, predicted_label, "
            "probabilities, confidence) SELECT 'm', 1, t, 'SPX', jsonb_build_object('rsi_14', extract(day FROM t)), "
            '\'BUY\', \'{"BUY": 0.5, "HOLD": 0.3, "SELL": 0.2}\', 0.5 '
            "FROM generate_series(timestamptz '2007-05-28 21:00+00', timestamptz '2007-06-06 21:00+00', "
            "interval '1 day') AS t"
        )
        cur.execute(
            "INSERT INTO outcomes (prediction_id, realized_return, realized_label, horizon_days, matured_at) "
            "SELECT prediction_id, 0.01, 'BUY', 5, ts + interval '5 days' FROM predictions "
            "WHERE ts::date <> '2007-05-30'"
        )
        # notifications a day apart around 2007-12-04, cycling through the statuses
        cur.execute(
            "INSERT INTO notifications (kind, dedupe_key, model_name, subject, body, created_at, status) "
            "SELECT 'alert', 'alert:' || i || ':opened', 'm', 's', 'b', "
            "timestamptz '2007-11-28 12:00+00' + i * interval '1 day', "
            "(ARRAY['sent', 'skipped', 'pending', 'failed'])[1 + mod(i, 4)] FROM generate_series(0, 11) AS i"
        )
        # data quality around 2007-06-02: drift-window rows and training-dataset rows
        cur.execute(
            "INSERT INTO data_quality_results (source, subject, window_start, window_end, expectation, success) "
            "SELECT s, 'm v1', t, t + interval '1 hour', 'not_null', true "
            "FROM generate_series(timestamptz '2007-05-30 00:00+00', timestamptz '2007-06-04 00:00+00', "
            "interval '6 hours') AS t, unnest(ARRAY['drift_window', 'training_dataset']) s"
        )


ONE_DAY = (
    "SELECT * FROM drift_results WHERE feature = 'rsi_14' AND test = 'psi' "
    "AND (window_start AT TIME ZONE 'UTC')::date = %(d)s"
)


def _raw_drift(db) -> list[dict]:
    return storage.fetch_dicts(
        db, "SELECT * FROM drift_results WHERE window_start < %(c)s", {"c": CUT["drift_results"]}
    )


def _apply_all(db, end: datetime = END, run_id: str = "r1") -> dict[str, retention.Applied]:
    return {t: retention.apply(db, t, days=DAYS[t], interval_end=end, run_id=run_id) for t in retention.TABLES}


def test_cutoff_is_a_utc_day_start_from_the_interval_end():
    assert retention.cutoff(datetime(2008, 6, 1, 13, 30, tzinfo=UTC), 90) == datetime(2008, 3, 3, tzinfo=UTC)
    assert CUT == {
        "drift_results": datetime(2008, 3, 3, tzinfo=UTC),
        "predictions": datetime(2007, 6, 2, tzinfo=UTC),
        "notifications": datetime(2007, 12, 4, tzinfo=UTC),
        "data_quality_results": datetime(2007, 6, 2, tzinfo=UTC),
    }
    with pytest.raises(ValueError, match="no timezone"):
        retention.cutoff(datetime(2008, 6, 1), 90)
    with pytest.raises(ValueError, match="at least 1"):
        retention.cutoff(END, 0)
    with pytest.raises(ValueError, match="modelwatch_retention_notifications_days = '-3'"):
        defaults.parse("modelwatch_retention_notifications_days", "-3")
    assert defaults.parse("modelwatch_retention_drift_results_days", "30") == 30


def test_retention_touches_no_row_inside_the_window_and_rolls_up_or_removes_the_rest(db):
    _fill(db)
    raw = _raw_drift(db)
    in_before, all_before = _in_window(db), _state(db)
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM drift_results")
        n_drift = cur.fetchone()[0]
    db.rollback()
    assert len(raw) == 3 * 24 * 4 and n_drift == 6 * 24 * 4

    done = _apply_all(db)

    # inside the windows (and the protected rows): byte for byte the same; untouched tables too
    assert _in_window(db) == in_before
    after = _state(db)
    assert {t: after[t] == all_before[t] for t in KEPT} == dict.fromkeys(KEPT, True)
    assert {t: after[t] == all_before[t] for t in retention.TABLES} == dict.fromkeys(retention.TABLES, False)

    # drift_results: 3 days x 24 windows x 4 (feature, test) -> 3 x 4 daily rows with the right aggregates
    assert (done["drift_results"].rows_affected, done["drift_results"].rows_written) == (288, 12)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in raw:
        groups[(r["feature"], r["test"], r["window_start"].astimezone(UTC).date())].append(r)
    rolled = storage.fetch_dicts(
        db, "SELECT * FROM drift_results WHERE window_start < %(c)s ORDER BY window_start", {"c": CUT["drift_results"]}
    )
    assert len(rolled) == 12
    for row in rolled:
        src = groups[(row["feature"], row["test"], row["window_start"].astimezone(UTC).date())]
        stats = [s["statistic"] for s in src if s["statistic"] is not None]
        assert row["window_start"] == min(s["window_start"] for s in src)
        assert row["window_start"].astimezone(UTC).hour == 0
        assert row["window_end"] == max(s["window_end"] for s in src)
        assert row["statistic"] == pytest.approx(max(stats))
        assert row["p_value"] == pytest.approx(min(s["p_value"] for s in src)) == pytest.approx(1 / 25)
        assert row["severity"] == 23.0
        assert row["drifted"] is True
        assert row["n_current"] == 40 * 24
        d = row["details"]
        assert d["rollup"] == "daily" and d["n_windows"] == 24 and d["n_drifted_windows"] == 1
        assert d["n_statistic"] == len(stats) == (23 if row["test"] == "ks" else 24)
        assert d["mean_statistic"] == pytest.approx(sum(stats) / len(stats))

    # predictions: the 2 with an outcome before 2007-06-02 lose their snapshot, the one awaiting an outcome keeps it
    assert done["predictions"].rows_affected == 4  # 05-28, 05-29, 05-31, 06-01
    kept = storage.fetch_dicts(db, "SELECT ts::date AS d, features FROM predictions ORDER BY ts")
    assert [r["features"] == {} for r in kept] == [True, True, False, True, True, False, False, False, False, False]
    assert len(kept) == 10
    # notifications before 2007-12-04 (6 of them: i = 0..5): sent/skipped deleted, pending/failed kept
    assert done["notifications"].rows_affected == 4  # i = 0, 1, 4, 5
    left = storage.fetch_dicts(db, "SELECT dedupe_key FROM notifications ORDER BY id")
    assert [r["dedupe_key"] for r in left] == [f"alert:{i}:opened" for i in (2, 3, *range(6, 12))]
    # data quality: the 12 drift-window rows before 2007-06-02 (05-30 .. 06-01, 6 h apart) go, training rows stay
    assert done["data_quality_results"].rows_affected == 12

    # the maintenance_runs rows say the same, with the policy and the cutoff
    runs = {(r["table_name"], r["action"]): r for r in retention.runs(db, END)}
    assert {k: (r["rows_affected"], r["rows_written"], r["retention_days"], r["cutoff"]) for k, r in runs.items()} == {
        ("drift_results", "rollup"): (288, 12, 90, CUT["drift_results"]),
        ("predictions", "strip_features"): (4, 0, 365, CUT["predictions"]),
        ("notifications", "delete"): (4, 0, 180, CUT["notifications"]),
        ("data_quality_results", "delete"): (12, 0, 365, CUT["data_quality_results"]),
    }

    # a second run of the same interval is a no-op
    state = _state(db)
    again = _apply_all(db, run_id="r2")
    assert {t: (a.rows_affected, a.rows_written) for t, a in again.items()} == dict.fromkeys(retention.TABLES, (0, 0))
    assert _state(db) == state
    runs2 = {(r["table_name"], r["action"]): r for r in retention.runs(db, END)}
    assert {k: (r["rows_affected"], r["runs"], r["run_id"]) for k, r in runs2.items()} == {
        k: (r["rows_affected"], 2, "r2") for k, r in runs.items()
    }
    # so is the next day's run for drift (its cutoff, 2008-03-04, reaches one more day of raw windows: only that day)
    nxt = retention.apply(db, "drift_results", days=90, interval_end=END + timedelta(days=1))
    assert (nxt.rows_affected, nxt.rows_written) == (96, 4)


def test_a_window_rerun_into_a_rolled_up_day_is_merged_with_the_right_weights(db):
    _fill(db)
    retention.apply(db, "drift_results", days=90, interval_end=END)
    day = date(2008, 3, 1)
    before = storage.fetch_dicts(
        db,
        ONE_DAY,
        {"d": day},
    )
    assert len(before) == 1
    # a late window of that day written after the roll-up (a re-run of an old window)
    with storage.transaction(db) as cur:
        cur.execute(
            "INSERT INTO drift_windows (model_name, model_version, window_start, window_end, status, n_rows) "
            "VALUES ('m', 1, '2008-03-01 23:30+00', '2008-03-02 00:30+00', 'evaluated', 40)"
        )
        cur.execute(
            "INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, "
            "statistic, p_value, severity, drifted, n_current) VALUES ('m', 1, '2008-03-01 23:30+00', "
            "'2008-03-02 00:30+00', 'feature', 'rsi_14', 'psi', 100.0, 0.5, 1, false, 40)"
        )
    done = retention.apply(db, "drift_results", days=90, interval_end=END)
    assert (done.rows_affected, done.rows_written) == (2, 1)
    after = storage.fetch_dicts(
        db,
        ONE_DAY,
        {"d": day},
    )
    (old,), (new,) = before, after
    assert new["details"]["n_windows"] == 25 and new["statistic"] == 100.0
    assert new["details"]["mean_statistic"] == pytest.approx((old["details"]["mean_statistic"] * 24 + 100.0) / 25)
    assert new["window_end"].isoformat() == "2008-03-02T00:30:00+00:00"


def test_a_failing_run_leaves_the_database_unchanged(db, monkeypatch):
    _fill(db)
    before = _state(db)

    def boom(*args, **kwargs):
        raise RuntimeError("maintenance_runs write failed")

    monkeypatch.setattr(retention, "_record", boom)
    for table in retention.TABLES:
        with pytest.raises(RuntimeError, match="maintenance_runs write failed"):
            retention.apply(db, table, days=DAYS[table], interval_end=END)
    assert _state(db) == before
    assert retention.runs(db, END) == []


def test_ensure_partitions_creates_the_coming_months_once(db):
    start, end = datetime(2031, 1, 30, tzinfo=UTC), datetime(2031, 1, 31, tzinfo=UTC)
    assert retention.months(start, end) == [date(2031, 1, 1), date(2031, 2, 1), date(2031, 3, 1)]
    assert retention.months(datetime(2031, 11, 30, tzinfo=UTC), datetime(2031, 12, 1, tzinfo=UTC), 1) == [
        date(2031, 11, 1),
        date(2031, 12, 1),
        date(2032, 1, 1),
    ]
    first = retention.ensure_partitions(db, interval_start=start, interval_end=end, run_id="r1")
    assert {a.table: a.partitions for a in first} == {
        t: (f"{t}_p203101", f"{t}_p203102", f"{t}_p203103") for t in retention.PARTITIONED
    }
    again = retention.ensure_partitions(db, interval_start=start, interval_end=end, run_id="r2")
    assert {a.table: a.partitions for a in again} == dict.fromkeys(retention.PARTITIONED, ())
    for t in retention.PARTITIONED:
        assert {f"{t}_p203101", f"{t}_p203102", f"{t}_p203103", f"{t}_default"} <= set(retention.partitions(db, t))
    runs = retention.runs(db, end)
    assert {(r["table_name"], r["action"], tuple(r["partitions"]), r["runs"]) for r in runs} == {
        (t, "partitions", (f"{t}_p203101", f"{t}_p203102", f"{t}_p203103"), 2) for t in retention.PARTITIONED
    }


def test_the_api_reads_rolled_up_history(db):
    """The window page's query returns a rolled-up day on the day's first window; the heatmap's query reads it."""
    from include.modelwatch.api import queries_monitoring, queries_pages

    _fill(db)
    retention.apply(db, "drift_results", days=90, interval_end=END)
    detail = queries_monitoring.drift_window_features(
        db, model="m", version=1, window_start=datetime(2008, 3, 1, tzinfo=UTC)
    )
    assert sorted((r.feature, r.test) for r in detail.results) == sorted((f, t) for f in FEATURES for t in TESTS)
    assert {r.details["rollup"] for r in detail.results} == {"daily"}
    assert {r.details["n_windows"] for r in detail.results} == {24} and all(r.drifted for r in detail.results)
    later = queries_monitoring.drift_window_features(
        db, model="m", version=1, window_start=datetime(2008, 3, 1, 5, tzinfo=UTC)
    )
    assert later.results == []  # the day's other windows: their rows are in the day's roll-up
    heat = queries_pages.feature_severity(db, model="m", version=1, max_windows=10_000)
    days = {
        (r["window_start"].astimezone(UTC).date(), r["feature"]): r
        for r in heat
        if r["window_start"] < CUT["drift_results"]
    }
    assert set(days) == {(date(2008, 2, 29) + timedelta(days=i), f) for i in range(3) for f in FEATURES}
    assert {r["severity"] for r in days.values()} == {23.0}
