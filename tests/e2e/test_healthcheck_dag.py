"""End-to-end smoke: a real DAG run through dag.test() against the embedded PostgreSQL."""

from __future__ import annotations

import pendulum


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder="dags")
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def test_healthcheck_writes_and_reads_heartbeat(airflow_db, db):
    # a notification queued outside a monitoring run (a person resolved an alert in the UI) waits for a delivery
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO notifications (kind, dedupe_key, model_name, subject, body, created_at) "
            "VALUES ('alert', 'alert:0:resolved', 'm', 'm: alert resolved', 'body', now())"
        )
    db.commit()
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
    # the healthcheck delivered it: no modelwatch_smtp connection here, so it is logged and marked skipped
    with db.cursor() as cur:
        cur.execute("SELECT status, attempts FROM notifications WHERE dedupe_key = 'alert:0:resolved'")
        assert cur.fetchone() == ("skipped", 0)  # attempts count SMTP tries
