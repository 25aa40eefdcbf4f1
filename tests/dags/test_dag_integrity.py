"""DAG integrity in the Astro template's spirit, checked in a fresh interpreter.

Parsing happens in a subprocess so that nothing this test session imported
(pandas through other tests, say) can hide a heavy import at DAG parse time.
Inside it, every way to open a DB or network connection is patched to record
the attempt, so "parsing makes no DB or connection calls" is deterministic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "scipy", "sklearn", "lightgbm", "xgboost", "great_expectations", "numpy")

_PROBE = r"""
import json, socket, sys
calls = []
def _record(kind):
    def f(*a, **k):
        calls.append(kind)
        raise RuntimeError(f"{kind} during DAG parse")
    return f
socket.socket.connect = _record("socket.connect")
socket.create_connection = _record("socket.create_connection")
import psycopg2
psycopg2.connect = _record("psycopg2.connect")
import psycopg
psycopg.connect = _record("psycopg.connect")
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import Variable
Variable.get = staticmethod(_record("Variable.get"))
before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1])
out = {
    "errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
    "calls": calls,
    "modules": sorted(m for m in sys.modules if m not in before),
    "dags": {
        d.dag_id: {
            "tags": sorted(d.tags or []),
            "owner": (d.default_args or {}).get("owner"),
            "retries": (d.default_args or {}).get("retries"),
            "catchup": d.catchup,
            "doc_md": bool(d.doc_md),
            "start_date": str(d.start_date),
            "fileloc": d.fileloc,
            "dagrun_timeout": d.dagrun_timeout.total_seconds() if d.dagrun_timeout else None,
            "tasks": {
                t.task_id: {
                    "retries": t.retries,
                    "retry_delay": t.retry_delay.total_seconds(),
                    "retry_exponential_backoff": t.retry_exponential_backoff,
                    "max_retry_delay": t.max_retry_delay.total_seconds() if t.max_retry_delay else None,
                    "owner": t.owner,
                    "execution_timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                    "response_timeout": (
                        t.response_timeout.total_seconds() if getattr(t, "response_timeout", None) else None
                    ),
                    "defaults": getattr(t, "defaults", None),
                }
                for t in d.tasks
            },
        }
        for d in bag.dags.values()
    },
}
print("@@" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed() -> dict:
    env = os.environ.copy()
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT / "dags")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("@@"))
    return json.loads(line[2:])


def test_no_import_errors(parsed):
    assert parsed["errors"] == {}


def test_every_dag_file_defines_dags(parsed):
    files = {Path(d["fileloc"]).name for d in parsed["dags"].values()}
    expected = {p.name for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_")}
    assert files == expected


def test_dag_conventions(parsed):
    assert parsed["dags"], "no DAGs found"
    for dag_id, d in parsed["dags"].items():
        assert d["tags"], f"{dag_id} has no tags"
        assert "modelwatch" in d["tags"], dag_id
        assert d["owner"] == "modelwatch", dag_id
        assert d["retries"] is not None and d["retries"] >= 2, dag_id
        assert isinstance(d["catchup"], bool), dag_id
        assert d["doc_md"], f"{dag_id} has no doc_md"
        assert d["start_date"].endswith("+00:00"), f"{dag_id} start_date not UTC: {d['start_date']}"


def test_every_task_is_bounded_in_time_and_retried(parsed):
    """Rule 5: retries >= 2, the owner and an execution_timeout on every task (a hung task, e.g. training, never holds
    a pool slot forever); every DAG run has a dagrun_timeout; the human approval waits a bounded time and then
    takes its default, "Reject"."""
    for dag_id, d in parsed["dags"].items():
        assert d["dagrun_timeout"] and d["dagrun_timeout"] > 0, dag_id
        for task_id, t in d["tasks"].items():
            where = f"{dag_id}.{task_id}"
            assert t["retries"] >= 2 and t["owner"] == "modelwatch", where
            if t["response_timeout"] is not None:  # the HITL operator: its wait is the response timeout
                assert t["defaults"] == ["Reject"], where
                assert t["response_timeout"] < d["dagrun_timeout"], where
            assert t["execution_timeout"] and 0 < t["execution_timeout"] <= d["dagrun_timeout"], where
    human = parsed["dags"]["retrain_gated"]["tasks"]["human_decision"]
    assert human["response_timeout"] == 3 * 24 * 3600 and human["defaults"] == ["Reject"]


def test_a_failed_task_retries_soon_with_an_exponential_backoff(parsed):
    """A killed task (SIGKILL, a PostgreSQL restart) retries after MODELWATCH_RETRY_DELAY_SECONDS (default 15 s; this
    session sets 1 s), doubling per try, at most 10 minutes: not after Airflow's fixed 5 minutes nor a fixed 2."""
    first = float(os.environ.get("MODELWATCH_RETRY_DELAY_SECONDS", "15"))
    for dag_id, d in parsed["dags"].items():
        for task_id, t in d["tasks"].items():
            where = f"{dag_id}.{task_id}"
            assert (t["retry_delay"], t["retry_exponential_backoff"], t["max_retry_delay"]) == (first, 2.0, 600.0), (
                where,
                t,
            )


def test_the_default_first_retry_delay_is_15_seconds():
    env = {k: v for k, v in os.environ.items() if k != "MODELWATCH_RETRY_DELAY_SECONDS"}
    probe = "from include.tasks.common import DEFAULT_ARGS as A; print(A['retry_delay'].total_seconds())"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-1] == "15.0"


def test_parse_makes_no_db_or_network_calls(parsed):
    assert parsed["calls"] == []


def test_parse_imports_no_heavy_module(parsed):
    heavy = sorted({m.split(".")[0] for m in parsed["modules"]} & set(HEAVY))
    assert heavy == []


def test_dag_files_stay_thin():
    for path in (ROOT / "dags").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 220, f"{path.name} is over ~200 lines"


def test_drift_branch_targets_are_the_decision_constants():
    """The branch returns decisions.TASK_* ids; the DAG's task ids must be exactly those."""
    from airflow.dag_processing.dagbag import DagBag

    from include.modelwatch import decisions
    from include.tasks.drift import route

    dag = DagBag(dag_folder=str(ROOT / "dags" / "drift_hourly.py")).dags["drift_hourly"]
    branch = dag.get_task("choose_paths")
    targets = {decisions.TASK_RECORD_EMPTY, decisions.TASK_DQ_ALERT, decisions.TASK_COMPUTE_DRIFT}
    assert set(branch.downstream_task_ids) == targets
    checked = [
        {"model_name": "m", "version": 1, "rows": 0, "dq_passed": True},
        {"model_name": "m", "version": 2, "rows": 40, "dq_passed": False},
        {"model_name": "n", "version": 1, "rows": 40, "dq_passed": True},
        {"model_name": "n", "version": 2, "rows": 9, "dq_passed": True},
    ]
    routes = route(checked)
    assert set(routes) == targets
    assert [c["version"] for c in routes[decisions.TASK_COMPUTE_DRIFT]] == [1, 2]
    assert routes[decisions.TASK_RECORD_EMPTY] == [checked[0]] and routes[decisions.TASK_DQ_ALERT] == [checked[1]]


def test_drift_tasks_are_mapped_over_chunks_of_versions():
    """Issue 15: the per-version tasks take a chunk of versions each (fleet.chunk_fleet), named after it; the
    path tasks expand over check_window's checked chunks, and only the path tasks feed respond_to_alerts."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "drift_hourly.py")).dags["drift_hourly"]
    expands = {
        t.task_id: {k: v.operator.task_id for k, v in t.op_kwargs_expand_input.value.items()}
        for t in dag.tasks
        if hasattr(t, "op_kwargs_expand_input")
    }
    assert expands == {
        "check_window": {"chunk": "active_model_versions"},
        "record_empty_window": {"chunk": "check_window"},
        "raise_data_quality_alert": {"chunk": "check_window"},
        "compute_drift": {"chunk": "check_window"},
    }
    for task_id in expands:
        task = dag.get_task(task_id)
        assert task.map_index_template == "{{ chunk['label'] }}", task_id
        assert task.pool == "monitoring_db", task_id
    assert dag.get_task("choose_paths").upstream_task_ids == {"check_window"}
    assert dag.get_task("respond_to_alerts").upstream_task_ids == set(expands) - {"check_window"}
