"""Fault injection with real processes on one real stack (see conftest.py and harness.py).

Every case injects its fault into a real component and checks the end state against the fault-free end state:
row count and checksum of every table of the monitoring DB (stable columns; see ``harness.snapshot``), the alias
state and the trigger state. The cases run in file order and build on each other (one stack, one replayed month):

1. a task SIGKILLed in the middle of its write, per writer: scoring, drift, performance (the reference is the
   replay's own fault-free end state of the same window: the re-run must reproduce it exactly), then the trigger
   claim, the deploy and the rollback (the reference is a fault-free run of the same operation just before it: the
   faulted run must change the same tables by the same rows and leave the same trigger and alias state);
2. the embedded PostgreSQL restarted (``pg_ctl restart -m fast``) while performance_daily writes, and the
   scheduler SIGKILLed while drift_hourly writes: the stack restarts what exited (``make run``'s supervision), the
   running task fails cleanly and its retry succeeds, the run completes with the fault-free end state;
3. two ``retrain_gated`` runs started at once under the real scheduler: exactly one claims the trigger;
4. two manual retrain requests for one model at once (two CLI processes): one trigger pending, one refused.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from include.modelwatch.decisions import TASK_DEPLOY, TASK_NO_TRIGGER, TASK_ROLLBACK
from include.modelwatch.ops import pgembed
from tests.faults import harness as h
from tests.faults.conftest import RESULTS, ROOT, SESSION, FaultStack

WINDOW = (datetime(2008, 9, 1, tzinfo=UTC), datetime(2008, 10, 1, tzinfo=UTC))
MODEL = "spx_signal"
#: a quick retrain (as tests/e2e/test_retrain_gated.py) whose candidate passes loosened gates: it deploys
FAST = {"num_boost_round": 40, "eval_sessions": 120, "train_years": 4}
LOOSE = {
    MODEL: {
        "performance": {"min_improvement": -1.0, "max_drop": 1.0, "alpha": 1e-9},
        "business": {"pf_tolerance": 100.0, "sharpe_tolerance": 100.0, "max_dd_limit": 10.0},
        "calibration": {"max_ece": 1.0, "max_brier": 2.0},
        "stability": {"max_label_flip": 10.0, "max_psi": 100.0},
    }
}
RUN_TIMEOUT = 900.0
_SHARED: dict[str, Any] = {}


# --------------------------------------------------------------------------- helpers


def rows(dsn: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def counts_delta(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> dict[str, int]:
    return {t: after.get(t, (0, ""))[0] - before.get(t, (0, ""))[0] for t in sorted(set(before) | set(after))}


def lost_and_duplicated(expected: dict[str, int], got: dict[str, int]) -> tuple[int, int]:
    """Rows missing and rows in excess, over all tables, of ``got`` against ``expected`` (row counts or deltas)."""
    lost = sum(max(0, expected.get(t, 0) - got.get(t, 0)) for t in set(expected) | set(got))
    dup = sum(max(0, got.get(t, 0) - expected.get(t, 0)) for t in set(expected) | set(got))
    return lost, dup


def start(fs: FaultStack, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> None:
    """A manual run of ``dag_id`` over the replayed month (no logical date: the window comes from its params)."""
    fs.api.trigger(dag_id, run_id, *WINDOW, conf=conf, logical=False)


def finish(fs: FaultStack, dag_id: str, run_id: str) -> str:
    return fs.api.wait(dag_id, run_id, timeout=RUN_TIMEOUT)


def aliases(fs: FaultStack) -> dict[str, int]:
    got = rows(fs.dsn, "SELECT alias, version FROM model_aliases WHERE model_name = %s ORDER BY alias", (MODEL,))
    return {r["alias"]: r["version"] for r in got}


def statuses(fs: FaultStack) -> dict[int, str]:
    got = rows(fs.dsn, "SELECT version, status FROM model_versions WHERE model_name = %s", (MODEL,))
    return {r["version"]: r["status"] for r in got}


def record(fault: str, outcome: str, lost: int, dup: int, **extra: Any) -> None:
    RESULTS.append({"fault": fault, "outcome": outcome, "rows_lost": lost, "rows_duplicated": dup, **extra})


def killed_tries(fs: FaultStack, dag_id: str, run_id: str, kill: h.Kill) -> list[tuple[int, str]]:
    tries = h.ti_tries(fs.airflow_dsn, dag_id, run_id, kill.task_id)
    assert kill.pids, f"{kill.task_id}: no task process was killed"
    assert kill.blocked_backends >= 1, f"{kill.task_id}: killed outside its write transaction"
    return tries


# --------------------------------------------------------------------------- kills of the window writers

WRITERS = [
    # (writer, DAG, task, the table whose write the task blocks on; earlier writes of the same transaction are done)
    ("scoring", "score_signals", "score", "scoring_batches"),  # after the window's predictions were upserted
    ("drift", "drift_hourly", "compute_drift", "drift_results"),  # after the drift window row was replaced
    ("performance", "performance_daily", "evaluate", "interpretability_log"),  # after 3 of its 4 window DELETEs
]


@pytest.mark.parametrize(("writer", "dag_id", "task_id", "table"), WRITERS, ids=[w[0] for w in WRITERS])
def test_sigkill_in_the_middle_of_a_window_write(fstack: FaultStack, writer, dag_id, task_id, table):
    """SIGKILL of the writing task while its transaction is open: the retry rewrites the window and the tables end
    exactly as after the fault-free replay of the same window (rows and content)."""
    before = h.snapshot(fstack.dsn)
    run_id = f"fault_kill_{writer}_{SESSION}"
    kill = h.kill_in_write(
        fstack.dsn, fstack.airflow_dsn, dag_id, run_id, task_id, table, lambda: start(fstack, dag_id, run_id)
    )
    state = finish(fstack, dag_id, run_id)
    recovery = time.monotonic() - kill.at
    after = h.snapshot(fstack.dsn)
    tries = killed_tries(fstack, dag_id, run_id, kill)
    lost, dup = lost_and_duplicated({t: v[0] for t, v in before.items()}, {t: v[0] for t, v in after.items()})
    changed = h.diff(before, after)
    record(
        f"SIGKILL {writer} ({dag_id}.{task_id}) mid-write",
        f"run {state}, retried; state {'identical' if not changed else 'DIFFERS'}",
        lost,
        dup,
        tries=max(t for t, _ in tries),
        recovery_s=round(recovery, 1),
        killed_tasks=len(kill.pids),
        killed_with_uncommitted_rows=kill.with_uncommitted_writes,
        differs=changed,
    )
    assert state == "success"
    assert all(s == "success" for _, s in tries) and max(t for t, _ in tries) >= 2, tries
    assert (lost, dup, changed) == (0, 0, {})


# --------------------------------------------------------------------------- PostgreSQL restart, scheduler kill


def _window_rerun_with(fstack: FaultStack, name: str, dag_id: str, task_id: str, table: str, inject) -> None:
    """Re-run the replayed window of ``dag_id``, inject a fault while ``task_id`` holds its write transaction, and
    check the run completes with the tables exactly as before (the replay's fault-free end state)."""
    before = h.snapshot(fstack.dsn)
    run_id = f"fault_{name}_{SESSION}"
    hit = h.in_write(
        fstack.dsn, fstack.airflow_dsn, dag_id, run_id, task_id, table, lambda: start(fstack, dag_id, run_id), inject
    )
    state = finish(fstack, dag_id, run_id)
    recovery = time.monotonic() - hit.at
    after = h.snapshot(fstack.dsn)
    tries = h.ti_tries(fstack.airflow_dsn, dag_id, run_id, task_id)
    lost, dup = lost_and_duplicated({t: v[0] for t, v in before.items()}, {t: v[0] for t, v in after.items()})
    changed = h.diff(before, after)
    _SHARED[name] = {"state": state, "tries": tries, "changed": changed, "lost": lost, "dup": dup}
    record(
        {
            "pg_restart": f"PostgreSQL restarted (pg_ctl restart -m fast) during {dag_id}.{task_id}'s write",
            "scheduler_kill": f"scheduler SIGKILLed during {dag_id}.{task_id}'s write",
        }[name],
        f"run {state}; task tries {max(t for t, _ in tries)}; state {'identical' if not changed else 'DIFFERS'}",
        lost,
        dup,
        tries=max(t for t, _ in tries),
        recovery_s=round(recovery, 1),
        differs=changed,
    )
    assert state == "success" and all(s == "success" for _, s in tries), tries
    assert (lost, dup, changed) == (0, 0, {})


def test_postgres_restart_mid_write(fstack: FaultStack):
    """The embedded PostgreSQL restarts while performance_daily's evaluate holds its write transaction: the task
    fails cleanly (its transaction rolled back with the connection), its retry succeeds, the stack stays up."""
    _window_rerun_with(
        fstack,
        "pg_restart",
        "performance_daily",
        "evaluate",
        "interpretability_log",
        lambda _pids: pgembed.restart_postmaster(fstack.stack.socket_dir),
    )
    assert max(t for t, _ in _SHARED["pg_restart"]["tries"]) >= 2  # the running task failed and was retried


def test_scheduler_sigkill_mid_run(fstack: FaultStack):
    """The scheduler is SIGKILLed while a drift_hourly run's compute_drift is mid-write: the stack restarts the
    scheduler and the run completes with the state of the fault-free run."""
    killed: list[int] = []

    def kill_scheduler(_pids: list[int]) -> None:
        killed.extend(h.component_pids(fstack.stack.home, "scheduler"))
        assert killed, "no scheduler process found"
        h.sigkill(killed)

    _window_rerun_with(fstack, "scheduler_kill", "drift_hourly", "compute_drift", "drift_results", kill_scheduler)
    deadline = time.monotonic() + 120
    while not (now := h.component_pids(fstack.stack.home, "scheduler")) and time.monotonic() < deadline:
        time.sleep(1)
    assert now and not set(now) & set(killed), f"the scheduler was not restarted (killed {killed})"


# --------------------------------------------------------------------------- retrain_gated: claim, deploy


def _variables(fs: FaultStack, **values: Any) -> None:
    import json

    for key, value in values.items():
        status, body = fs.api._request("PATCH", f"/api/v2/variables/{key}", {"key": key, "value": json.dumps(value)})
        assert status == 200, (key, status, body)


def _drift_trigger(fs: FaultStack) -> int:
    """A pending drift trigger for the replayed month (as the drift response rule writes it)."""
    with psycopg.connect(fs.dsn, autocommit=True) as conn:
        version = aliases(fs)["champion"]
        row = conn.execute(
            "INSERT INTO retraining_triggers (model_name, model_version, trigger_type, retrain_mode, priority, "
            "rule_name, reason, window_start, window_end, triggered_at) VALUES (%s, %s, 'drift', 'full', 'high', "
            "'drift_score', 'fault suite: drift score 0.41 > 0.25 (2008-09)', %s, %s, %s) RETURNING trigger_id",
            (MODEL, version, WINDOW[0], WINDOW[1], WINDOW[1]),
        ).fetchone()
        assert row is not None
        return int(row[0])


TRIGGER_STATE = "status, outcome, trigger_type, retrain_mode, priority, reason, window_start, window_end"


def trigger_state(fs: FaultStack, tid: int) -> list[dict[str, Any]]:
    return rows(fs.dsn, f"SELECT claimed_by, {TRIGGER_STATE} FROM retraining_triggers WHERE trigger_id = %s", (tid,))


def test_two_retrain_runs_at_once_one_claims(fstack: FaultStack):
    """Two retrain_gated runs queued together under the real scheduler and LocalExecutor: exactly one claims the
    pending trigger and deploys; the other finds nothing to train. This is also the fault-free reference retrain
    of the next case."""
    _variables(fstack, modelwatch_gate_overrides=LOOSE, modelwatch_require_approval={})
    tid = _drift_trigger(fstack)
    before = h.snapshot(fstack.dsn)
    champion_before = aliases(fstack)["champion"]
    t0 = time.monotonic()
    runs = [f"fault_race_a_{SESSION}", f"fault_race_b_{SESSION}"]
    for rid in runs:
        start(fstack, "retrain_gated", rid, conf=FAST)
    states = {rid: finish(fstack, "retrain_gated", rid) for rid in runs}
    after = h.snapshot(fstack.dsn)
    trig = trigger_state(fstack, tid)
    claims = {
        rid: h.ti_tries(fstack.airflow_dsn, "retrain_gated", rid, TASK_NO_TRIGGER) for rid in runs
    }  # the run that found nothing took the end_no_trigger branch
    claimed_by = [rid for rid in runs if claims[rid] and claims[rid][0][1] == "skipped"]
    deployed = aliases(fstack)["champion"]
    record(
        "two retrain_gated runs at once (real scheduler)",
        f"claimed by {len(claimed_by)} run; trigger {trig[0]['status']} ({trig[0]['outcome']})",
        0,
        0,
        tries=1,
        recovery_s=round(time.monotonic() - t0, 1),
    )
    assert states == {rid: "success" for rid in runs}
    assert trig[0]["claimed_by"] in runs and claimed_by == [trig[0]["claimed_by"]], (trig, claims)
    assert (trig[0]["status"], trig[0]["outcome"]) == ("done", "deployed")
    assert deployed != champion_before and statuses(fstack)[champion_before] == "retired"
    _SHARED["retrain_ref"] = {
        "delta": counts_delta(before, after),
        "trigger": {k: v for k, v in trig[0].items() if k != "claimed_by"},
        "previous": champion_before,
        "deployed": deployed,
    }


def test_sigkill_during_claim_and_during_deploy(fstack: FaultStack):
    """One retrain of the same kind of trigger whose claim is killed inside its UPDATE and whose deploy is killed
    after it moved the alias (uncommitted): each retry finishes the job once. Against the fault-free retrain just
    before: the same rows per table, the same trigger state, the alias moved once."""
    ref = _SHARED.get("retrain_ref")
    assert ref, "needs test_two_retrain_runs_at_once_one_claims (the fault-free reference retrain)"
    tid = _drift_trigger(fstack)
    before = h.snapshot(fstack.dsn)
    champion_before = aliases(fstack)["champion"]
    rid = f"fault_kill_claim_deploy_{SESSION}"
    claim = h.kill_in_write(
        fstack.dsn,
        fstack.airflow_dsn,
        "retrain_gated",
        rid,
        "claim_trigger",
        "retraining_triggers",
        lambda: start(fstack, "retrain_gated", rid, conf=FAST),
    )
    deadline = time.monotonic() + RUN_TIMEOUT
    while h.ti_tries(fstack.airflow_dsn, "retrain_gated", rid, "claim_trigger") != [(2, "success")]:
        assert time.monotonic() < deadline, "the killed claim was not retried"
        time.sleep(0.5)
    recovery_claim = time.monotonic() - claim.at
    deploy = h.kill_in_write(
        fstack.dsn, fstack.airflow_dsn, "retrain_gated", rid, TASK_DEPLOY, "model_alias_history", lambda: None
    )
    state = finish(fstack, "retrain_gated", rid)
    recovery_deploy = time.monotonic() - deploy.at
    after = h.snapshot(fstack.dsn)
    trig = trigger_state(fstack, tid)
    delta = counts_delta(before, after)
    lost, dup = lost_and_duplicated(ref["delta"], delta)
    history = rows(
        fstack.dsn,
        "SELECT from_version, to_version FROM model_alias_history WHERE model_name = %s AND alias = 'champion' "
        "AND run_id = %s",
        (MODEL, rid),
    )
    claim_tries = killed_tries(fstack, "retrain_gated", rid, claim)
    deploy_tries = killed_tries(fstack, "retrain_gated", rid, deploy)
    for name, kill, tries, recovery in (
        ("trigger claim (retrain_gated.claim_trigger)", claim, claim_tries, recovery_claim),
        ("deploy (retrain_gated.deploy_candidate)", deploy, deploy_tries, recovery_deploy),
    ):
        record(
            f"SIGKILL {name} mid-write",
            f"run {state}, retried; trigger {trig[0]['status']}/{trig[0]['outcome']}",
            lost,
            dup,
            tries=max(t for t, _ in tries),
            recovery_s=round(recovery, 1),
            killed_with_uncommitted_rows=kill.with_uncommitted_writes,
        )
    assert state == "success"
    assert claim_tries == [(2, "success")] and deploy_tries == [(2, "success")], (claim_tries, deploy_tries)
    assert trig[0]["claimed_by"] == rid
    same = {k: v for k, v in trig[0].items() if k != "claimed_by"}
    assert same == ref["trigger"]
    assert (lost, dup) == (0, 0), (ref["delta"], delta)
    assert [(r["from_version"], r["to_version"]) for r in history] == [(champion_before, aliases(fstack)["champion"])]
    assert statuses(fstack)[champion_before] == "retired" and aliases(fstack)["champion"] != champion_before
    _SHARED["versions"] = (ref["deployed"], aliases(fstack)["champion"])


# --------------------------------------------------------------------------- rollback


def test_sigkill_during_rollback(fstack: FaultStack):
    """A fault-free rollback to the previous champion, then a rollback back whose task is killed after it moved the
    alias (uncommitted): the retry restores once; the same rows per table as the fault-free rollback."""
    assert "versions" in _SHARED, "needs the two retrains before"
    first, second = _SHARED["versions"]  # champion now: second; first is retired
    conf = {"model_name": MODEL, "reason": "fault suite"}
    s0 = h.snapshot(fstack.dsn)
    start(fstack, "rollback_model", f"fault_rollback_ref_{SESSION}", conf={**conf, "target_version": first})
    assert finish(fstack, "rollback_model", f"fault_rollback_ref_{SESSION}") == "success"
    s1 = h.snapshot(fstack.dsn)
    assert aliases(fstack)["champion"] == first
    rid = f"fault_kill_rollback_{SESSION}"
    kill = h.kill_in_write(
        fstack.dsn,
        fstack.airflow_dsn,
        "rollback_model",
        rid,
        TASK_ROLLBACK,
        "model_alias_history",
        lambda: start(fstack, "rollback_model", rid, conf={**conf, "target_version": second}),
    )
    state = finish(fstack, "rollback_model", rid)
    recovery = time.monotonic() - kill.at
    s2 = h.snapshot(fstack.dsn)
    lost, dup = lost_and_duplicated(counts_delta(s0, s1), counts_delta(s1, s2))
    tries = killed_tries(fstack, "rollback_model", rid, kill)
    history = rows(
        fstack.dsn,
        "SELECT from_version, to_version FROM model_alias_history WHERE model_name = %s AND run_id = %s",
        (MODEL, rid),
    )
    record(
        "SIGKILL rollback (rollback_model.rollback_champion) mid-write",
        f"run {state}, retried; champion v{aliases(fstack)['champion']}",
        lost,
        dup,
        tries=max(t for t, _ in tries),
        recovery_s=round(recovery, 1),
        killed_with_uncommitted_rows=kill.with_uncommitted_writes,
    )
    assert state == "success" and tries == [(2, "success")], tries
    assert (lost, dup) == (0, 0)
    assert [(r["from_version"], r["to_version"]) for r in history] == [(first, second)]
    assert aliases(fstack)["champion"] == second
    assert (statuses(fstack)[first], statuses(fstack)[second]) == ("retired", "active")


# --------------------------------------------------------------------------- manual triggers


def test_two_manual_triggers_race(fstack: FaultStack):
    """Two people ask for a retrain of the same model at the same moment (two CLI processes): one trigger is
    pending, the other request is refused with a message naming that trigger; nothing else is written."""
    model = "spx_vol_regime"
    before = h.snapshot(fstack.dsn)
    cmd = [sys.executable, "-m", "include.modelwatch", "trigger", "create", model, "--at", "2008-10-01T00:00:00+00:00"]
    procs = [
        subprocess.Popen(
            [*cmd, "--by", who, "--reason", f"{who} wants a retrain"],
            cwd=ROOT,
            env=fstack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("alice", "bob")
    ]
    outs = [(p.wait(120), *p.communicate()) for p in procs]
    pending = rows(
        fstack.dsn,
        "SELECT trigger_id, created_by FROM retraining_triggers WHERE model_name = %s AND status = 'pending'",
        (model,),
    )
    after = h.snapshot(fstack.dsn)
    delta = {t: n for t, n in counts_delta(before, after).items() if n}
    ok = [o for o in outs if o[0] == 0]
    refused = [o for o in outs if o[0] != 0]
    record(
        "two manual triggers for one model at once (2 CLI processes)",
        f"{len(pending)} pending, {len(refused)} refused",
        0,
        max(0, len(pending) - 1),
    )
    assert len(ok) == 1 and len(refused) == 1, outs
    assert len(pending) == 1 and f"pending trigger {pending[0]['trigger_id']}" in ok[0][1]
    assert f"a manual retrain is already pending: trigger {pending[0]['trigger_id']}" in refused[0][2], refused
    assert delta == {"retraining_triggers": 1, "closed_loop_actions": 1}, delta
    # leave no pending trigger behind
    res = subprocess.run(
        [sys.executable, "-m", "include.modelwatch", "trigger", "cancel", str(pending[0]["trigger_id"])]
        + ["--by", "fault-suite", "--reason", "fault suite cleanup"],
        cwd=ROOT,
        env=fstack.env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
