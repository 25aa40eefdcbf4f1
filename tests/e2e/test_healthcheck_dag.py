"""End-to-end smoke: a real DAG run through dag.test() against the embedded PostgreSQL."""

from __future__ import annotations

import pendulum


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder="dags")
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def test_healthcheck_writes_and_reads_heartbeat(airflow_db, db):
    dag = _dag("modelwatch_healthcheck")
    logical = pendulum.datetime(2026, 3, 4, tz="UTC")
    for _ in range(2):  # second run of the same interval replaces, never duplicates
        run = dag.test(logical_date=logical)
        assert run.state == "success"
    with db.cursor() as cur:
        cur.execute("SELECT dag_id, interval_start, interval_end, schema_version FROM pipeline_heartbeats")
        rows = cur.fetchall()
        cur.execute("SELECT max(version) FROM schema_migrations")
        head = cur.fetchone()[0]
    assert len(rows) == 1
    dag_id, start, end, version = rows[0]
    assert dag_id == "modelwatch_healthcheck"
    # a manual run of a data-interval timetable covers the last complete day
    assert start == logical.subtract(days=1)
    assert end == logical
    assert version == head
