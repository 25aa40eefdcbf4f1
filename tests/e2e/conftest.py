"""Shared end-to-end fixtures: a bootstrapped champion on the throwaway PostgreSQL."""

from __future__ import annotations

import os

import pytest

from tests.conftest import reset_rules

# Tables an e2e test may rely on staying put: the registry, market data, the
# baseline and the seeded response rules. Everything else is emptied per test.
KEEP_TABLES = (
    "schema_migrations",
    "monitored_models",
    "model_versions",
    "model_aliases",
    "model_alias_history",
    "market_bars",
    "backtest_baseline",
    "automated_response_rules",
)


@pytest.fixture()
def champion(airflow_db, monitoring_uri):
    """The real champion (trained on 1999-2006 bars; bootstrapped once, re-used while
    it exists) and empty run tables, so each end-to-end test starts from a known state."""
    from include.modelwatch.data import storage
    from include.modelwatch.ops import bootstrap

    with storage.session(monitoring_uri) as conn:
        with storage.transaction(conn) as cur:
            cur.execute(
                "SELECT string_agg(format('%%I', tablename), ', ') FROM pg_tables "
                "WHERE schemaname = 'public' AND NOT (tablename = ANY(%(keep)s))",
                {"keep": list(KEEP_TABLES)},
            )
            cur.execute(f"TRUNCATE {cur.fetchone()[0]} RESTART IDENTITY")
            reset_rules(cur)
            # a test that deployed or rolled back leaves other aliases behind: every
            # test starts with the bootstrapped version as the only active one
            cur.execute(
                "DELETE FROM model_aliases WHERE alias <> 'champion' OR model_name NOT IN "
                "(SELECT model_name FROM model_versions WHERE created_by_run = 'bootstrap')"
            )
            cur.execute(
                "UPDATE model_aliases a SET version = v.version FROM (SELECT model_name, min(version) AS version "
                "FROM model_versions WHERE created_by_run = 'bootstrap' GROUP BY model_name) v "
                "WHERE a.model_name = v.model_name AND a.alias = 'champion' AND a.version <> v.version"
            )
        result = bootstrap.bootstrap_champion(
            conn, artifact_dir=os.environ["MODELWATCH_ARTIFACT_DIR"], log=lambda *_: None
        )
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


def run_scheduled(dag_id: str, logical_date):
    """dag.test() as the scheduler would run it: a *scheduled* run (run_type SCHEDULED, triggered by the
    timetable, no conf), not the manual run dag.test() creates by default."""
    from unittest import mock

    from airflow.models import dagrun as dagrun_mod
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    def scheduled(*, dag, logical_date, run_after, conf, start_date, session, **_):
        # the body of dagrun.get_or_create_dagrun, with the scheduler's run type and run id
        from airflow.utils.state import DagRunState
        from sqlalchemy import select

        old = session.scalar(
            select(dagrun_mod.DagRun).where(
                dagrun_mod.DagRun.dag_id == dag.dag_id, dagrun_mod.DagRun.logical_date == logical_date
            )
        )
        if old:
            session.delete(old)
            session.commit()
        return dag.create_dagrun(
            run_id=dagrun_mod.DagRun.generate_run_id(
                run_type=DagRunType.SCHEDULED, logical_date=logical_date, run_after=run_after
            ),
            logical_date=logical_date,
            data_interval=dag.timetable.infer_manual_data_interval(run_after=logical_date),
            run_after=run_after,
            conf=conf,
            run_type=DagRunType.SCHEDULED,
            state=DagRunState.RUNNING,
            triggered_by=DagRunTriggeredByType.TIMETABLE,
            triggering_user_name=None,
            start_date=start_date,
            session=session,
        )

    with mock.patch.object(dagrun_mod, "get_or_create_dagrun", scheduled):
        return get_dag(dag_id).test(logical_date=logical_date, run_after=logical_date)


def rows(conn, sql: str, params=None) -> list[dict]:
    """Query the monitoring DB and end the read transaction."""
    from include.modelwatch.data import storage

    out = storage.fetch_dicts(conn, sql, params)
    conn.rollback()
    return out


def page_after(caplog, marker: str) -> str:
    """The task log line logged right after the first one containing ``marker`` (a task's summary), which must be
    its ModelWatch page line; returns the URL."""
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("include.tasks")]
    at = next(i for i, msg in enumerate(messages) if marker in msg)
    line = messages[at + 1]
    assert line.startswith("ModelWatch page ("), (marker, line)
    return line.rsplit(": ", 1)[1]
