"""The policy replay takes the decisions the DAGs take: the closed loop over 2007-2008, replayed by
``include/tasks/policy.py``, against the real DAGs run month by month with ``dag.test()``.

Each side starts from its own fresh schema of the throwaway monitoring database (migrations, then the same
bootstrap champion): the DAG side through the ``monitoring_db`` connection pointed at its schema, the replay in the
schema of its policy. Per month the DAG side runs ``score_signals``, ``drift_hourly``, ``performance_daily`` on the
month's window, then ``rollback_model`` and ``retrain_gated`` as the scheduler's daily runs at the month's end
(the automatic rollback check; the model-age rule), and ``retrain_gated``
again while a trigger is pending, as ``wake_next`` asks; a human approval is left to its response timeout. Every
decision table is then compared row for row: drift windows, alerts, live-vs-backtest comparisons, the response
rules' actions, triggers and their outcomes, training jobs, gate verdicts, registered versions, alias history.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import date, timedelta

import pendulum
import pytest

from include.modelwatch import defaults
from include.modelwatch.data import storage
from include.modelwatch.ops import bootstrap
from include.modelwatch.ops.replay import month_windows
from include.modelwatch.policy.policies import POLICIES
from include.tasks import policy as replay
from tests.e2e import hitl
from tests.e2e.conftest import get_dag, rows, run_scheduled, run_window

MODEL = defaults.MODEL_NAME
START, END = date(2007, 1, 1), date(2009, 1, 1)
DAG_SCHEMA = "dags_closed_loop"

# the decisions, without ids of runs and wall-clock columns (claimed_at of a manual run is its wall-clock start)
DECISIONS = {
    "drift_windows": "SELECT model_version, window_start, window_end, status, n_rows, round(drift_score::numeric, 6) "
    "AS drift_score, level, n_drifted, drifted, alert_state FROM drift_windows ORDER BY 1, 2",
    "alerts": "SELECT alert_id, model_version, kind, severity, status, round(score::numeric, 6) AS score, title, "
    "first_window, last_window, occurrences, opened_at, resolved_at FROM alerts ORDER BY alert_id",
    "comparisons": "SELECT model_version, window_start, window_end, metric, is_primary, "
    "round(live_value::numeric, 6) AS live, round(rel_diff::numeric, 6) AS rel FROM live_vs_backtest_comparison "
    "ORDER BY window_end, model_version, metric",
    "actions": "SELECT model_version, source, rule_name, action, trigger_id, alert_id, metric, "
    "round(observed::numeric, 6) AS observed, threshold, evaluated_at FROM closed_loop_actions ORDER BY action_id",
    "triggers": "SELECT trigger_id, model_version, trigger_type, retrain_mode, priority, rule_name, status, "
    "window_start, window_end, triggered_at, completed_at, outcome FROM retraining_triggers ORDER BY trigger_id",
    "datasets": "SELECT trigger_id, fingerprint, date_start, date_end, rows_per_class FROM training_datasets "
    "ORDER BY trigger_id",
    "jobs": "SELECT trigger_id, algorithm, retrain_mode, status, candidate_version FROM training_jobs",
    "gates": "SELECT trigger_id, candidate_version, champion_version, gate, status, round(value::numeric, 6) AS value, "
    "threshold, evaluated_at FROM quality_gate_results",
    "versions": "SELECT version, algorithm, status, train_start, train_end, features FROM model_versions",
    "aliases": "SELECT alias, from_version, to_version, changed_at FROM model_alias_history ORDER BY id",
}


VERSION_COLUMNS = ("version", "model_version", "candidate_version", "champion_version", "from_version", "to_version")


def _decisions(uri: str) -> dict[str, list[dict]]:
    """The decision tables, a version named by what made it (the bootstrap, or a trigger's candidate of an
    algorithm): the two candidates of a retrain train in either order under dag.test(), so their numbers may swap."""
    with storage.session(uri) as conn:
        names = {
            r["candidate_version"]: f"trigger {r['trigger_id']} {r['algorithm']}"
            for r in rows(conn, "SELECT trigger_id, algorithm, candidate_version FROM training_jobs")
        } | {r["version"]: "bootstrap" for r in rows(conn, "SELECT version FROM model_versions WHERE version = 1")}
        out = {}
        for name, sql in DECISIONS.items():
            got = [{k: names.get(v, v) if k in VERSION_COLUMNS else v for k, v in r.items()} for r in rows(conn, sql)]
            out[name] = (
                got if "ORDER BY" in sql else sorted(got, key=lambda r: json.dumps(r, default=str, sort_keys=True))
            )
        return out


def _fresh_schema_with_champion(monitoring_uri: str, schema: str, artifacts: str) -> str:
    replay.reset_schema(monitoring_uri, schema)
    uri = replay.schema_uri(monitoring_uri, schema)
    with storage.session(uri) as conn:
        bootstrap.bootstrap_champion(conn, artifact_dir=artifacts, model_name=MODEL, log=lambda *_: None)
    return uri


def _pending(uri: str) -> int:
    with storage.session(uri) as conn:
        return rows(conn, "SELECT count(*) AS n FROM retraining_triggers WHERE status = 'pending'")[0]["n"]


@pytest.fixture(scope="module")
def dag_side(airflow_db, monitoring_uri, tmp_path_factory):
    """The closed loop through the real DAGs (dag.test), in schema DAG_SCHEMA, with artifacts of its own and the
    ModelWatch Variables at their defaults (airflow_settings.yaml, which tests/unit/test_defaults.py keeps equal
    to them), as the replay has them."""
    from include.modelwatch.ops import settings

    settings.apply_to_airflow(settings.load())
    artifacts = str(tmp_path_factory.mktemp("dag_artifacts"))
    uri = _fresh_schema_with_champion(monitoring_uri, DAG_SCHEMA, artifacts)
    old = {k: os.environ[k] for k in ("AIRFLOW_CONN_MONITORING_DB", "MODELWATCH_ARTIFACT_DIR")}
    os.environ.update(AIRFLOW_CONN_MONITORING_DB=uri, MODELWATCH_ARTIFACT_DIR=artifacts)
    stop, seen = threading.Event(), []
    # nobody answers a human approval: its response timeout applies the default (Reject)
    responder = threading.Thread(
        target=hitl.answer,
        args=("retrain_gated", "human_decision", lambda ti, hd: None, {"id": "-", "name": "-"}, stop, seen),
        daemon=True,
    )
    responder.start()
    states: list[tuple[str, str, str]] = []
    try:
        for ws, we in month_windows(START, END):
            for dag_id in ("score_signals", "drift_hourly", "performance_daily"):
                dr = run_window(dag_id, ws.isoformat(), we.isoformat())
                states.append((dag_id, f"{ws:%Y-%m}", str(dr.state)))
            month_end = pendulum.instance(we)
            dr = run_scheduled("rollback_model", month_end)
            states.append(("rollback_model", f"{ws:%Y-%m}", str(dr.state)))
            dr = run_scheduled("retrain_gated", month_end)
            states.append(("retrain_gated", f"{ws:%Y-%m}", str(dr.state)))
            attempt = 0
            while _pending(uri):  # wake_next: the next run claims the next trigger
                attempt += 1
                assert attempt < 5, f"{ws:%Y-%m}: triggers still pending after {attempt} runs"
                dr = get_dag("retrain_gated").test(logical_date=month_end + timedelta(minutes=attempt))
                states.append(("retrain_gated", f"{ws:%Y-%m}+{attempt}", str(dr.state)))
    finally:
        stop.set()
        responder.join(timeout=5)
        os.environ.update(old)
    return {"uri": uri, "states": states, "hitl": seen}


@pytest.fixture(scope="module")
def replay_side(monitoring_uri, tmp_path_factory):
    run = replay.replay_policy(
        uri=monitoring_uri,
        model=MODEL,
        conf=dict(defaults.NATIVE_MODELS[MODEL]),
        policy=POLICIES["closed_loop"],
        start=START,
        end=END,
        artifact_dir=str(tmp_path_factory.mktemp("policy_artifacts")),
        schedule_rules=True,
    )
    return {"uri": replay.schema_uri(monitoring_uri, run.schema), "run": run}


def test_every_dag_run_succeeded(dag_side):
    failed = [s for s in dag_side["states"] if s[2] != "success"]
    assert not failed, failed
    assert len([s for s in dag_side["states"] if s[0] == "score_signals"]) == 24


def test_the_replay_takes_the_decisions_the_dags_take(dag_side, replay_side):
    dags, replayed = _decisions(dag_side["uri"]), _decisions(replay_side["uri"])
    for table in DECISIONS:
        assert replayed[table] == dags[table], table
    # the period holds decisions worth comparing: drift windows and alerts, rule actions, a retrain and its gates
    assert len(dags["drift_windows"]) == 24 and dags["alerts"] and dags["actions"]
    assert dags["triggers"] and dags["jobs"] and dags["gates"]
    assert {t["trigger_type"] for t in dags["triggers"]} >= {"age"}


def test_the_replay_logs_each_retrain_it_ran(replay_side, dag_side):
    run = replay_side["run"]
    assert run.months == [f"{ws:%Y-%m}" for ws, _ in month_windows(START, END)]
    triggers = [t for t in _decisions(dag_side["uri"])["triggers"] if t["status"] in ("done", "failed")]
    assert [r["trigger_id"] for r in run.retrains] == [t["trigger_id"] for t in triggers]
    for logged, row in zip(run.retrains, triggers, strict=True):
        assert logged["trigger_type"] == row["trigger_type"]
        kind = logged["outcome"]
        assert (row["outcome"] or "").startswith({"not_approved": "rejected: not approved"}.get(kind, kind)), (
            logged,
            row,
        )
