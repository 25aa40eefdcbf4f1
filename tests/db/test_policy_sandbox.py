"""The policy replay's sandbox: task bodies on a schema of their own with default Variables and no mail; the DAG's
tasks store each policy's result and write the comparison files."""

from __future__ import annotations

import json
from datetime import date

import pytest

from include.modelwatch.data import storage
from include.tasks import common
from include.tasks import policy as replay
from include.tasks.notify import smtp_settings


def test_task_bodies_in_a_sandbox_use_its_schema_and_variables(monitoring_uri, monkeypatch):
    replay.reset_schema(monitoring_uri, "sandbox_test")
    box = common.Sandbox(
        uri=replay.schema_uri(monitoring_uri, "sandbox_test"), variables={"modelwatch_ab_first": {"m": True}}
    )

    def no_airflow(*_a, **_k):
        raise AssertionError("a sandboxed task body read a live Airflow Variable or connection")

    monkeypatch.setattr("airflow.sdk.Variable.get", no_airflow)
    monkeypatch.setattr("airflow.sdk.BaseHook.get_connection", no_airflow)
    with common.sandboxed(box):
        with common.monitoring_db() as conn:
            assert storage.fetch_dicts(conn, "SELECT current_schema() AS s")[0]["s"] == "sandbox_test"
            assert storage.fetch_dicts(conn, "SELECT count(*) AS n FROM schema_migrations")[0]["n"] >= 21
        assert common.variable("modelwatch_ab_first") == {"m": True}
        assert common.variable("modelwatch_performance_tolerance") == 0.10  # the default
        assert smtp_settings() is None  # a replay mails nobody
    assert common.sandbox() is None
    with storage.session(monitoring_uri) as conn:  # the live schema is untouched
        assert storage.fetch_dicts(conn, "SELECT current_schema() AS s")[0]["s"] == "public"
        conn.rollback()


def test_rebuilding_a_schema_drops_what_it_held(monitoring_uri):
    replay.reset_schema(monitoring_uri, "sandbox_test2")
    uri = replay.schema_uri(monitoring_uri, "sandbox_test2")
    with storage.session(uri) as conn:
        with storage.transaction(conn) as cur:
            cur.execute(
                "INSERT INTO pipeline_heartbeats (dag_id, interval_start, interval_end, schema_version) "
                "VALUES ('x', now(), now(), 1)"
            )
    replay.reset_schema(monitoring_uri, "sandbox_test2")
    with storage.session(uri) as conn:
        assert storage.fetch_dicts(conn, "SELECT count(*) AS n FROM pipeline_heartbeats")[0]["n"] == 0


PARAMS = {
    "model_name": "spx_signal",
    "start": "2007-01-01",
    "end": "2007-04-01",
    "eval_start": "2007-02-01",
    "eval_end": "2007-04-01",
    "policies": ["never"],
    "schedule_rules": True,
}


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELWATCH_HOME", str(tmp_path))
    return tmp_path


def test_the_dag_tasks_store_the_result_and_write_the_comparison(db, home):
    ctx = {"params": PARAMS, "run_id": "manual__test"}
    assert replay.plan(ctx) == ["never"]
    summary = replay.replay_task("never", ctx)
    stored = storage.fetch_dicts(db, "SELECT policy, schedule_rules, result FROM policy_replay_results")
    db.rollback()
    assert len(stored) == 1 and stored[0]["policy"] == "never" and stored[0]["schedule_rules"] is True
    result = stored[0]["result"]
    assert result["loop"]["retrains"] == 0 == summary["retrains"]
    assert sorted(result["monthly"]) == ["2007-01", "2007-02", "2007-03"]
    # 2007-02..03 entries with outcomes matured before 2007-04-01: two sessions' worth of predictions at least
    assert result["evaluation"]["n"] > 60 and 0.0 < result["evaluation"]["accuracy"] < 1.0
    assert result["evaluation"]["accuracy"] == summary["accuracy"]
    assert result["regimes"]["training_period"][1] == "2006-12-21"  # the bootstrap champion's last training day
    # a second run replaces the row
    replay.replay_task("never", ctx)
    assert storage.fetch_dicts(db, "SELECT count(*) AS n FROM policy_replay_results")[0]["n"] == 1
    db.rollback()
    table = replay.report_task([summary], ctx)
    assert "| never | " in table and f"{result['evaluation']['accuracy']:.3f}" in table
    folder = home / "results" / "policy_replay" / "spx_signal"
    doc = json.loads((folder / "spx_signal.json").read_text())
    assert doc["policies"]["never"]["evaluation"] == result["evaluation"]
    assert (folder / "spx_signal.md").read_text() == table
    assert (folder / "spx_signal_metric.png").stat().st_size > 10_000
    assert (folder / "spx_signal_alerts.png").stat().st_size > 10_000


def test_a_bad_form_fails_at_once_naming_the_field():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="policy replay refused: end 2006-01-01 must be after start"):
        replay.plan({"params": PARAMS | {"end": "2006-01-01"}})
    assert date(2007, 1, 1) == replay.Request.from_params(PARAMS).start
