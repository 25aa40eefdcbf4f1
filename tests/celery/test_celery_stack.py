"""``make celery``: the local stack under CeleryExecutor (``dev run --executor celery``), end to end.

One real stack per session, started as ``make run EXECUTOR=celery`` starts it but isolated (a fresh ``/tmp/mwc-*``
home, free ports for the API, Redis and the log servers; the helpers of ``tests/browser/conftest.py``): embedded
PostgreSQL, Redis (the Debian ``redis-server``) and two Celery workers, replaying June..December 2008 (the drift
episode, its trigger and the retrain it wakes, whose candidates train in the ``training`` pool). The tests then read
the Airflow metadata DB and the monitoring DB and check that

* every replayed DAG run succeeded and no DAG run failed;
* the task instances ran on both workers (``task_instance.hostname``) and nowhere else;
* the replay ended as under LocalExecutor (the README's 2008 episode: one drift trigger for ``spx_signal``, its retrain
  rejected, v1 still champion) and every champion's artifact loads with its SHA-256 check;
* Redis listens on 127.0.0.1 only with its data in the state dir, and nothing is left running after SIGTERM.

``MODELWATCH_CELERY_TIMEOUT`` (seconds, default 3600) bounds the start + replay + retrain (see the README for the
times measured; a 2-core machine shared with busy neighbours needs most of it).
``MODELWATCH_CELERY_HOME`` + ``MODELWATCH_CELERY_PORT`` + ``MODELWATCH_CELERY_REDIS_PORT``: check a stack already
running there (started by this fixture, kept with ``MODELWATCH_CELERY_KEEP=1``, or by hand as the fixture starts it)
instead of starting one; it is waited for and not stopped.
"""

from __future__ import annotations

from include.modelwatch.ops import celery_stack
from tests.browser.conftest import MODEL
from tests.celery.conftest import REPLAY_MONTHS, REPORT, CeleryStack


def test_every_replayed_run_succeeded(stack: CeleryStack) -> None:
    runs = stack.airflow_rows("SELECT dag_id, run_id, state FROM dag_run ORDER BY dag_id, run_id")
    failed = [r for r in runs if r["state"] == "failed"]
    assert not failed, f"failed DAG runs under CeleryExecutor: {failed}"
    replayed = [r for r in runs if r["run_id"].startswith("replay__")]
    by_dag: dict[str, int] = {}
    for r in replayed:
        assert r["state"] == "success", f"{r['dag_id']} {r['run_id']} ended {r['state']}"
        by_dag[r["dag_id"]] = by_dag.get(r["dag_id"], 0) + 1
    for dag_id in ("score_signals", "drift_hourly", "performance_daily"):
        assert by_dag.get(dag_id) == REPLAY_MONTHS, f"{dag_id}: {by_dag.get(dag_id)} replayed runs, not {REPLAY_MONTHS}"


def test_tasks_ran_on_both_workers_and_nowhere_else(stack: CeleryStack) -> None:
    rows = stack.airflow_rows(
        "SELECT hostname, pool, count(*) AS n FROM task_instance "
        "WHERE state IN ('success', 'failed', 'up_for_retry', 'skipped') AND start_date IS NOT NULL "
        "AND hostname <> '' GROUP BY hostname, pool ORDER BY hostname, pool"
    )
    per_worker: dict[str, int] = {}
    for r in rows:
        per_worker[r["hostname"]] = per_worker.get(r["hostname"], 0) + r["n"]
    REPORT.append(f"task instances per worker (hostname, pool, count): {[tuple(r.values()) for r in rows]}")
    assert set(per_worker) == set(celery_stack.WORKERS), f"task instances ran on {per_worker}"
    assert all(n >= 10 for n in per_worker.values()), f"one worker did (almost) nothing: {per_worker}"
    training = [r for r in rows if r["pool"] == "training"]
    assert sum(r["n"] for r in training) >= 2, f"the retrain's candidates did not train in the training pool: {rows}"
    # Celery's state of each worker agrees: every task it received ran (no task lost between broker and worker)
    lost = stack.airflow_rows(
        "SELECT dag_id, task_id, run_id, state FROM task_instance WHERE state IN ('queued', 'scheduled') "
        "AND run_id LIKE 'replay__%%'"
    )
    assert not lost, f"replayed task instances never ran: {lost}"


def test_registry_ends_as_under_local_executor(stack: CeleryStack) -> None:
    """The README's June..December 2008 episode (LocalExecutor): one drift trigger for the direction model, its
    retrain rejected (v1 stays champion, its candidates are registered as rejected versions)."""
    from include.modelwatch import registry
    from include.modelwatch.data import storage

    triggers = stack.query(
        "SELECT trigger_type, status FROM retraining_triggers WHERE model_name = %(m)s ORDER BY trigger_id",
        {"m": MODEL},
    )
    drift = [t for t in triggers if t["trigger_type"] == "drift"]
    assert len(drift) == 1, f"{MODEL}: drift triggers {triggers}"
    assert drift[0]["status"] not in ("pending", "claimed"), drift
    champions = stack.query(
        "SELECT a.model_name, v.version FROM model_aliases a JOIN model_versions v "
        "ON v.model_name = a.model_name AND v.version = a.version WHERE a.alias = 'champion' ORDER BY 1"
    )
    assert {c["model_name"]: c["version"] for c in champions}.get(MODEL) == 1, champions
    with storage.session(stack.monitoring_uri) as conn:
        for c in champions:  # the artifact one worker (or the bootstrap) wrote loads, its SHA-256 checked
            mv, data = registry.load_by_alias(conn, c["model_name"], registry.CHAMPION)
            assert mv.version == c["version"] and len(data) > 1000


def test_redis_is_local_with_data_in_the_state_dir(stack: CeleryStack) -> None:
    import psutil

    listeners = [
        c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == stack.redis_port
    ]
    assert listeners and all(c.laddr.ip == "127.0.0.1" for c in listeners), listeners
    assert (stack.home / "redis" / "appendonlydir").is_dir(), list((stack.home / "redis").iterdir())
    answered = celery_stack.ping_workers({"AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{stack.redis_port}/0"})
    assert [a.split("@")[0] for a in answered] == sorted(celery_stack.WORKERS), answered
