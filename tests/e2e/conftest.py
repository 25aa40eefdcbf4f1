"""Shared end-to-end fixtures: a bootstrapped champion on the throwaway PostgreSQL."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def champion(airflow_db, monitoring_uri):
    """Bootstrap the real champion once per session (trained on 1999-2006 bars)."""
    from include.modelwatch import bootstrap, storage

    conn = storage.connect(monitoring_uri)
    with storage.transaction(conn) as cur:
        cur.execute(
            "SELECT string_agg(format('%I', tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        cur.execute(f"TRUNCATE {cur.fetchone()[0]} RESTART IDENTITY CASCADE")
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
