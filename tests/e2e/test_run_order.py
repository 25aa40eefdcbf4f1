"""Results do not depend on the order of runs (issue 12, defect 9).

In the replay a month's ``drift_hourly`` and ``performance_daily`` start
together, so either may finish first. The same windows run in two orders on a
clean database must leave every monitoring table with the same content (ids,
run ids and the wall-clock time a row was written aside)."""

from __future__ import annotations

from include.modelwatch.data import storage
from tests.conftest import reset_rules
from tests.e2e.conftest import KEEP_TABLES, run_window

SCORED = [
    ("2008-07-01", "2008-08-01"),
    ("2008-08-01", "2008-09-01"),
    ("2008-09-01", "2008-10-01"),
    ("2008-10-01", "2008-11-01"),
    ("2008-11-01", "2008-12-01"),
]
MONITORED = SCORED[2:]


def _iso(day: str) -> str:
    return f"{day}T00:00:00+00:00"


def _reset(conn) -> None:
    with storage.transaction(conn) as cur:
        cur.execute(
            "SELECT string_agg(format('%%I', tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND NOT (tablename = ANY(%(keep)s))",
            {"keep": list(KEEP_TABLES)},
        )
        cur.execute(f"TRUNCATE {cur.fetchone()[0]} RESTART IDENTITY")
        reset_rules(cur)


def _content(conn) -> dict[str, list[str]]:
    """Every run table's rows, without identity columns, run ids, write times and measured wall times."""
    tables = [
        r["tablename"]
        for r in storage.fetch_dicts(
            conn,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND NOT (tablename = ANY(%(keep)s)) "
            "ORDER BY 1",
            {"keep": list(KEEP_TABLES)},
        )
    ]
    out: dict[str, list[str]] = {}
    for t in tables:
        cols = storage.fetch_dicts(
            conn,
            "SELECT column_name, column_default FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = %(t)s ORDER BY ordinal_position",
            {"t": t},
        )
        keep = [
            c["column_name"]
            for c in cols
            if not (
                c["column_name"] in ("run_id", "created_by", "created_by_run", "dag_run_id", "duration_s", "sent_at")
                or c["column_name"].endswith(("_id", "_ids"))
                or "nextval" in (c["column_default"] or "")
                or "now()" in (c["column_default"] or "")
            )
        ]
        got = storage.fetch_dicts(conn, "SELECT " + ", ".join(f'"{c}"' for c in keep) + f' FROM "{t}"')
        out[t] = sorted(repr(sorted(r.items())) for r in got)
    conn.rollback()
    return out


def _run(conn, drift_first: bool) -> dict[str, list[str]]:
    _reset(conn)
    for start, end in SCORED[:2]:
        assert run_window("score_signals", _iso(start), _iso(end)).state == "success"
    for start, end in MONITORED:
        assert run_window("score_signals", _iso(start), _iso(end)).state == "success"
        order = ("drift_hourly", "performance_daily") if drift_first else ("performance_daily", "drift_hourly")
        for dag_id in order:
            assert run_window(dag_id, _iso(start), _iso(end)).state == "success", (dag_id, start)
    return _content(conn)


def test_drift_and_performance_in_either_order_give_the_same_tables(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    first = _run(conn, drift_first=True)
    second = _run(conn, drift_first=False)
    assert first.keys() == second.keys()
    assert first["model_health_daily"] and first["drift_windows"]  # both monitors wrote something
    differ = {
        t: (sorted(set(first[t]) - set(second[t]))[:3], sorted(set(second[t]) - set(first[t]))[:3])
        for t in first
        if first[t] != second[t]
    }
    assert differ == {}
    conn.close()
