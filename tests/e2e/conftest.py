"""Shared end-to-end fixtures: a bootstrapped champion on the throwaway PostgreSQL."""

from __future__ import annotations

import os

import pytest


RUN_TABLES = "predictions, outcomes, drift_windows, drift_results, data_quality_results, alerts, pipeline_heartbeats"


@pytest.fixture()
def champion(airflow_db, monitoring_uri):
    """The real champion (trained on 1999-2006 bars; bootstrapped once, re-used while
    it exists) and empty run tables, so each end-to-end test starts from a known state."""
    from include.modelwatch import bootstrap, storage

    conn = storage.connect(monitoring_uri)
    with storage.transaction(conn) as cur:
        cur.execute(f"TRUNCATE {RUN_TABLES} RESTART IDENTITY CASCADE")
    result = bootstrap.bootstrap_champion(conn, artifact_dir=os.environ["MODELWATCH_ARTIFACT_DIR"], log=lambda *_: None)
    conn.close()
    return result


def get_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder="dags")
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def run_window(dag_id: str, start: str, end: str):
    """Run a DAG through dag.test() on an explicit window; returns the DagRun."""
    import pendulum

    dag = get_dag(dag_id)
    return dag.test(logical_date=pendulum.parse(end), run_conf={"window_start": start, "window_end": end})


def rows(conn, sql: str, params=None) -> list[dict]:
    """Query the monitoring DB and end the read transaction."""
    from include.modelwatch import storage

    out = storage.fetch_dicts(conn, sql, params)
    conn.rollback()
    return out
