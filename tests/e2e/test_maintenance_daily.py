"""maintenance_daily end to end: a scheduled dag.test() run applies every retention policy with its cutoff taken from
the data interval end, creates the coming months' partitions and reports per table; a second run changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pendulum

from include.modelwatch.ops import retention
from tests.db.test_retention import _fill, _in_window, _state
from tests.e2e.conftest import rows, run_scheduled

LOGICAL = pendulum.datetime(2008, 6, 1, 3, 30, tz="UTC")  # the cron's slot: the interval ends here


def test_maintenance_daily_applies_retention_once_and_reports(airflow_db, db, caplog):
    from airflow.models.variable import Variable

    _fill(db)
    in_window = _in_window(db)
    Variable.set("modelwatch_retention_notifications_days", "400")  # noqa: AIR311
    try:
        caplog.set_level("INFO")
        run = run_scheduled("maintenance_daily", LOGICAL)
        assert run.state == "success"
        assert run.data_interval_end == LOGICAL
        # nothing inside any retention window changed
        assert _in_window(db) == in_window
        got = {
            (r["table_name"], r["action"]): (r["rows_affected"], r["rows_written"], r["retention_days"], r["cutoff"])
            for r in rows(db, "SELECT * FROM maintenance_runs WHERE action <> 'partitions'")
        }
        assert got == {
            ("drift_results", "rollup"): (288, 12, 90, datetime(2008, 3, 3, tzinfo=UTC)),
            ("predictions", "strip_features"): (4, 0, 365, datetime(2007, 6, 2, tzinfo=UTC)),
            # the Variable set above: 400 days back from 2008-06-01 03:30 is before every notification
            ("notifications", "delete"): (0, 0, 400, datetime(2007, 4, 28, tzinfo=UTC)),
            ("data_quality_results", "delete"): (12, 0, 365, datetime(2007, 6, 2, tzinfo=UTC)),
        }
        for t in retention.PARTITIONED:
            assert {f"{t}_p200806", f"{t}_p200807", f"{t}_p200808"} <= set(retention.partitions(db, t))
        log = caplog.text
        assert "drift_results: 288 row(s) rolled up into 12 daily row(s), older than 2008-03-03 00:00 UTC" in log
        assert "summary: maintenance of the interval ending 2008-06-01 03:30:00+00:00" in log
        page = "/modelwatch/maintenance?run_id=scheduled__2008-06-01T03%3A30%3A00%2B00%3A00"
        assert f"ModelWatch page (maintenance of this run): http://localhost:8080{page}" in log

        # the same interval again: no data row changes, the report counts two runs and the same totals
        state = _state(db)
        assert run_scheduled("maintenance_daily", LOGICAL).state == "success"
        assert _state(db) == state
        again = rows(db, "SELECT table_name, rows_affected, runs FROM maintenance_runs WHERE action <> 'partitions'")
        assert {r["table_name"]: (r["rows_affected"], r["runs"]) for r in again} == {
            "drift_results": (288, 2),
            "predictions": (4, 2),
            "notifications": (0, 2),
            "data_quality_results": (12, 2),
        }
    finally:
        Variable.delete("modelwatch_retention_notifications_days")  # noqa: AIR311
