"""retrain_gated end to end with dag.test() on the real champion and 2008 bars."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import quote

import pendulum

from include.modelwatch import registry
from include.modelwatch.data import storage
from tests.e2e import hitl
from tests.e2e.conftest import get_dag, page_after, rows, run_scheduled

FAST = {"num_boost_round": 40, "eval_sessions": 120, "train_years": 4}
WINDOW_END = datetime(2008, 10, 1, tzinfo=UTC)


def _trigger(conn, *, mode="full", at=WINDOW_END) -> int:
    with storage.transaction(conn) as cur:
        cur.execute(
            "INSERT INTO retraining_triggers (model_name, model_version, trigger_type, retrain_mode, priority, "
            "rule_name, reason, window_start, window_end, triggered_at) VALUES ('spx_signal', 1, 'drift', %s, 'high', "
            "'drift_score', 'drift score 0.41 > 0.25 (2008-09)', %s, %s, %s) RETURNING trigger_id",
            (mode, datetime(2008, 9, 1, tzinfo=UTC), at, at),
        )
        return int(cur.fetchone()[0])


def _run(conf: dict, when: str = "2008-10-02"):
    return get_dag("retrain_gated").test(logical_date=pendulum.parse(when), run_conf=conf)


def _candidate_versions(conn, trigger_id: int) -> list[int]:
    got = rows(
        conn,
        "SELECT candidate_version AS v FROM training_jobs WHERE trigger_id = %(t)s "
        "AND candidate_version IS NOT NULL ORDER BY candidate_version",
        {"t": trigger_id},
    )
    return [r["v"] for r in got]


def _lifecycle(conn, versions) -> dict[int, str]:
    statuses = registry.version_statuses(conn, "spx_signal")
    conn.rollback()
    return {v: statuses[v] for v in versions}


def _states(dr) -> dict[str, str]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in dr.get_task_instances()
    }


def test_scheduled_run_without_trigger_is_green(champion, monitoring_uri):
    """Defect 1: the 02:00 run with nothing pending must end with no failed task and the training path skipped."""
    # a day when the time-based rule (champion older than 365 days) does not fire: nothing is pending
    train_end = champion.model.train_end
    when = pendulum.datetime(train_end.year, train_end.month, train_end.day, 2, tz="UTC").add(days=10)
    dr = run_scheduled("retrain_gated", when)
    assert str(dr.run_type).split(".")[-1].lower() == "scheduled"
    tis = dr.get_task_instances()
    states = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in tis}
    assert states == {
        "claim_trigger": "success",
        "branch_on_trigger": "success",
        "end_no_trigger": "success",
        "assemble_training_data": "skipped",
        "train_candidate[0]": "skipped",
        "train_candidate[1]": "skipped",
        "pick_best": "skipped",
        "branch_on_gates": "skipped",
        "deploy_candidate": "skipped",
        "reject_candidate": "skipped",
        "request_human_approval": "skipped",
        "human_decision": "skipped",
        "deploy_approved": "skipped",
        "reject_not_approved": "skipped",
        "finish": "skipped",
        "wake_next": "skipped",
    }, states
    assert all(ti.try_number <= 1 for ti in tis), {ti.task_id: ti.try_number for ti in tis}  # nothing retried
    assert str(dr.state) == "success"
    conn = storage.connect(monitoring_uri)
    # as a scheduled run, it evaluated the time-based rule (10 days < 365: no fire); nothing was claimed or trained
    assert rows(conn, "SELECT count(*) AS n FROM retraining_triggers") == [{"n": 0}]
    assert rows(conn, "SELECT count(*) AS n FROM training_jobs") == [{"n": 0}]
    assert rows(conn, "SELECT source, action, rule_name, trigger_id FROM closed_loop_actions") == [
        {"source": "schedule", "action": "no_change", "rule_name": "age_full_retrain", "trigger_id": None}
    ]
    conn.close()


def test_no_trigger_ends_early(champion, monitoring_uri):
    dr = _run(FAST)
    st = _states(dr)
    assert str(dr.state) == "success", st
    assert st["end_no_trigger"] == "success" and st["assemble_training_data"] == "skipped"
    conn = storage.connect(monitoring_uri)
    assert rows(conn, "SELECT count(*) AS n FROM training_jobs") == [{"n": 0}]
    conn.close()


def test_manual_retrain_from_conf_needs_a_reason(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    refused = _run({**FAST, "model_name": "spx_signal", "reason": "  "})
    st = _states(refused)
    assert str(refused.state) == "failed" and st["claim_trigger"] == "failed"
    assert rows(conn, "SELECT count(*) AS n FROM retraining_triggers") == [{"n": 0}]
    done = _run({**FAST, "model_name": "spx_signal", "reason": "vendor changed the NASDAQ feed"})
    assert str(done.state) == "success", _states(done)
    trig = rows(conn, "SELECT trigger_type, rule_name, reason, status, claimed_by, outcome FROM retraining_triggers")
    assert len(trig) == 1 and trig[0]["trigger_type"] == "manual" and trig[0]["rule_name"] == "manual"
    assert trig[0]["reason"].endswith(": vendor changed the NASDAQ feed") and trig[0]["claimed_by"] == done.run_id
    assert trig[0]["status"] in ("done", "claimed") and trig[0]["outcome"]
    acts = rows(conn, "SELECT source, action, trigger_id FROM closed_loop_actions")
    assert acts == [{"source": "manual", "action": "fire", "trigger_id": 1}]
    conn.close()


def test_drift_trigger_retrains_and_records_gates(champion, monitoring_uri, caplog):
    caplog.set_level(logging.INFO, logger="include.tasks")
    conn = storage.connect(monitoring_uri)
    tid = _trigger(conn)
    dr = _run(FAST)
    st = _states(dr)
    jobs = rows(
        conn, "SELECT algorithm, status, candidate_version, duration_s, metrics FROM training_jobs ORDER BY algorithm"
    )
    gates = rows(conn, "SELECT job_id, gate, status, value, message FROM quality_gate_results ORDER BY job_id, gate")
    trig = rows(conn, "SELECT status, outcome, result FROM retraining_triggers WHERE trigger_id = %s", (tid,))[0]
    ds = rows(conn, "SELECT n_rows, rows_per_class, date_end, validation FROM training_datasets")
    assert [j["algorithm"] for j in jobs] == ["lightgbm", "xgboost"]
    assert all(j["status"] == "succeeded" and j["duration_s"] > 0 for j in jobs)
    assert len(gates) == 10
    assert ds[0]["validation"]["success"] is True and str(ds[0]["date_end"]) < "2008-04-01"
    # training ended an embargo before the shared out-of-sample period, which ends before the trigger
    m = jobs[0]["metrics"]
    assert m["train_end"] < m["eval_start"] <= m["eval_end"] < "2008-10-01"
    if trig["outcome"] == "deployed":
        assert registry.resolve_alias(conn, "spx_signal", "champion") == trig["result"]["deployed_version"]
    else:  # 2008: the retrained candidates lose to the champion; every failing gate is named
        assert trig["status"] == "done" and trig["outcome"].startswith("rejected: ")
        assert sorted(trig["outcome"][len("rejected: ") :].split(", ")) == sorted(trig["result"]["failing_gates"])
        assert registry.resolve_alias(conn, "spx_signal", "champion") == 1
    assert st["finish"] == "success" and str(dr.state) == "success"
    # the deciding task's log ends with the model's jobs-and-gates page, the run's with the triggers page
    decided = "summary: deployed" if trig["outcome"] == "deployed" else f"trigger {tid}: candidate v"
    assert page_after(caplog, decided).endswith("/modelwatch/models/spx_signal#jobs")
    assert page_after(caplog, "retrain_gated run finished").endswith("/modelwatch/alerts-and-triggers#triggers")
    conn.close()


LOOSE = {
    "spx_signal": {
        "performance": {"min_improvement": -1.0, "max_drop": 1.0, "alpha": 1e-9},
        "business": {"pf_tolerance": 100.0, "sharpe_tolerance": 100.0, "max_dd_limit": 10.0},
        "calibration": {"max_ece": 1.0, "max_brier": 2.0},
        "stability": {"max_label_flip": 10.0, "max_psi": 100.0},
    }
}


def _variables(**values):
    import json

    from airflow.models import Variable  # the metadata DB directly: the SDK's Variable needs a task context

    for k, v in values.items():
        Variable.set(k, json.dumps(v))  # noqa: AIR311


def test_passing_candidate_is_deployed_once_and_scored(champion, monitoring_uri):
    from tests.e2e.conftest import run_window

    conn = storage.connect(monitoring_uri)
    tid = _trigger(conn)
    _variables(modelwatch_gate_overrides=LOOSE, modelwatch_require_approval={})
    try:
        dr1 = _run(FAST)
        dr2 = _run(FAST, when="2008-10-03")  # a second run: the trigger is taken, nothing is deployed twice
    finally:
        _variables(modelwatch_gate_overrides={})
    assert _states(dr1)["deploy_candidate"] == "success"
    assert _states(dr2)["end_no_trigger"] == "success"
    trig = rows(conn, "SELECT status, outcome, result FROM retraining_triggers WHERE trigger_id = %s", (tid,))[0]
    new = trig["result"]["deployed_version"]
    assert (trig["status"], trig["outcome"], trig["result"]["previous_version"]) == ("done", "deployed", 1)
    assert registry.resolve_alias(conn, "spx_signal", "champion") == new
    # lifecycle: the deployed candidate is active, the replaced champion retired, the losing candidate rejected
    cands = _candidate_versions(conn, tid)
    assert new in cands and len(cands) == 2
    assert _lifecycle(conn, [1, *cands]) == {1: "retired", **{v: "active" if v == new else "rejected" for v in cands}}
    hist = [
        h for h in registry.alias_history(conn, "spx_signal", "champion") if h["run_id"] in (dr1.run_id, dr2.run_id)
    ]
    assert len(hist) == 1 and hist[0]["from_version"] == 1 and f"trigger {tid}" in hist[0]["reason"]
    # deployed with its own baseline and reference profile, so monitoring works for it
    assert rows(conn, "SELECT count(*) > 5 AS ok FROM backtest_baseline WHERE model_version = %(v)s", {"v": new}) == [
        {"ok": True}
    ]
    # stored under the canonical metric names (macro_f1, not f1_macro)
    names = {
        r["metric"] for r in rows(conn, "SELECT metric FROM backtest_baseline WHERE model_version = %(v)s", {"v": new})
    }
    assert {"macro_f1", "macro_precision", "macro_recall"} <= names and "f1_macro" not in names
    assert registry.get_version(conn, "spx_signal", new).reference_profile
    run_window("score_signals", "2008-10-01", "2008-10-15")
    assert {r["model_version"] for r in rows(conn, "SELECT DISTINCT model_version FROM predictions")} == {new}
    conn.close()


def test_shuffled_labels_candidate_is_rejected(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    tid = _trigger(conn)
    dr = _run({**FAST, "shuffle_labels": True})
    assert _states(dr)["reject_candidate"] == "success"
    trig = rows(conn, "SELECT outcome, result FROM retraining_triggers WHERE trigger_id = %s", (tid,))[0]
    best = trig["result"]["candidate_version"]
    failing = [
        g["gate"]
        for g in rows(
            conn,
            "SELECT gate FROM quality_gate_results WHERE candidate_version = %s AND status = 'fail' ORDER BY gate",
            (best,),
        )
    ]
    assert failing and trig["outcome"] == "rejected: " + ", ".join(trig["result"]["failing_gates"])
    cands = _candidate_versions(conn, tid)
    assert best in cands and _lifecycle(conn, cands) == {v: "rejected" for v in cands}
    assert sorted(trig["result"]["failing_gates"]) == failing
    assert registry.resolve_alias(conn, "spx_signal", "champion") == 1
    # the closed loop learns at once that this retrain did not improve the model
    fb = rows(conn, "SELECT trigger_id, rule_name, version_before, version_after, improved FROM feedback_loop_metrics")
    assert fb == [
        {"trigger_id": tid, "rule_name": "drift_score", "version_before": 1, "version_after": 1, "improved": False}
    ]
    conn.close()


APPROVER = {"id": "risk-officer", "name": "Risk Officer", "email": "risk-officer@modelwatch.invalid"}


import pytest  # noqa: E402


@pytest.mark.parametrize("choice", ["Approve", "Reject", "timeout"])
def test_human_approval(champion, monitoring_uri, choice):
    import threading

    conn = storage.connect(monitoring_uri)
    tid = _trigger(conn)
    _variables(
        modelwatch_gate_overrides=LOOSE,
        modelwatch_require_approval={"spx_signal": True},
        modelwatch_approvers={"spx_signal": [APPROVER], "*": ["admin"]},
    )
    stop, seen = threading.Event(), list[dict]()
    responder = threading.Thread(
        target=hitl.answer,
        # "timeout": nobody answers; the deadline passes and the scheduler's sweep applies the default
        args=(
            "retrain_gated",
            "human_decision",
            lambda _ti, _hd: None if choice == "timeout" else choice,
            APPROVER,
            stop,
            seen,
        ),
        daemon=True,
    )
    responder.start()
    try:
        dr = _run(FAST)
    finally:
        stop.set()
        _variables(modelwatch_gate_overrides={}, modelwatch_require_approval={}, modelwatch_approvers={})
    st = _states(dr)
    assert st["request_human_approval"] == "success" and st["human_decision"] == "success"
    # the request was assigned to the model's approver, not the "*" fallback
    assert seen[0]["assigned_users"] == [{"id": "risk-officer", "name": "Risk Officer"}]
    # the request shows what was retrained, each gate's verdict and what Approve does
    body = seen[0]["body"]
    assert f"retrained for trigger {tid} (drift: drift score 0.41 > 0.25 (2008-09))" in body
    assert "Borderline: **none (the model's policy asks for a human)**" in body
    assert "Approve deploys it as **champion**" in body
    assert [ln.split(" | ")[0].lstrip("| ") for ln in body.splitlines() if ln.startswith("| ") and "---" not in ln][
        1:
    ] == [
        "performance",
        "business",
        "calibration",
        "stability",
        "data_quality",
    ]
    trig = rows(conn, "SELECT status, outcome, result FROM retraining_triggers WHERE trigger_id = %s", (tid,))[0]
    champ = registry.resolve_alias(conn, "spx_signal", "champion")
    cands = _candidate_versions(conn, tid)
    approval = trig["result"]["approval"]
    if choice == "Approve":
        assert _lifecycle(conn, cands) == {v: "active" if v == champ else "rejected" for v in cands}
        assert st["deploy_approved"] == "success" and st["reject_not_approved"] == "skipped"
        assert trig["outcome"] == "deployed" and trig["result"]["approved_by"] == "Risk Officer (risk-officer)"
        assert champ == trig["result"]["deployed_version"] != 1
        history = rows(
            conn,
            "SELECT reason FROM model_alias_history WHERE model_name = 'spx_signal' AND alias = 'champion' "
            "AND to_version = %s",
            (champ,),
        )
        assert len(history) == 1 and history[0]["reason"].endswith("; approved by Risk Officer (risk-officer)")
    elif choice == "Reject":
        assert st["reject_not_approved"] == "success" and st["deploy_approved"] == "skipped"
        assert trig["outcome"] == "rejected: not approved by Risk Officer (risk-officer)"
        assert champ == 1 and _lifecycle(conn, cands) == {v: "rejected" for v in cands}
    else:  # nobody answered: the default "Reject" applied by the scheduler's sweep
        assert st["reject_not_approved"] == "success" and st["deploy_approved"] == "skipped"
        assert trig["outcome"] == (
            "rejected: not approved by nobody (no answer before the response timeout; the default applied)"
        )
        assert champ == 1 and _lifecycle(conn, cands) == {v: "rejected" for v in cands}
    if choice == "timeout":
        assert approval["chosen"] == ["Reject"] and approval["timed_out"] and approval["responded_by_id"] is None
    else:
        assert approval["chosen"] == [choice] and not approval["timed_out"]
        assert (approval["responded_by_id"], approval["responded_by_name"]) == ("risk-officer", "Risk Officer")
    assert str(dr.state) == "success"
    # the approval request was mailed to the approver, naming the answer page; the outcome went to the owners
    mails = rows(
        conn,
        "SELECT dedupe_key, addressed_to, body FROM notifications WHERE dedupe_key LIKE %s ORDER BY id",
        (f"retrain:{tid}:%",),
    )
    outcome = "deployed" if choice == "Approve" else "rejected"
    assert [m["dedupe_key"] for m in mails] == [f"retrain:{tid}:awaiting_approval", f"retrain:{tid}:{outcome}"]
    assert mails[0]["addressed_to"] == [APPROVER["email"]] and mails[1]["addressed_to"] == []
    assert "Approvers:  Risk Officer (risk-officer)" in mails[0]["body"]
    assert (
        f"/dags/retrain_gated/runs/{quote(dr.run_id, safe='')}/tasks/human_decision/required_actions"
        in (mails[0]["body"])
    )
    # the response the run acted on is the one recorded on the HITL detail row
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as s:
        hd = s.scalar(
            select(HITLDetail)
            .join(TI, TI.id == HITLDetail.ti_id)
            .where(TI.run_id == dr.run_id, TI.task_id == "human_decision")
        )
        assert hd.chosen_options == approval["chosen"]
        assert hd.responded_by_user_name == approval["responded_by_name"]
    conn.close()


def test_ab_first_policy_deploys_the_candidate_as_challenger_and_starts_an_ab_test(champion, monitoring_uri):
    from include.modelwatch.ab import store as ab_store

    conn = storage.connect(monitoring_uri)
    tid = _trigger(conn)
    _variables(
        modelwatch_gate_overrides=LOOSE, modelwatch_require_approval={}, modelwatch_ab_first={"spx_signal": True}
    )
    try:
        dr = _run(FAST)
    finally:
        _variables(modelwatch_gate_overrides={}, modelwatch_ab_first={})
    assert _states(dr)["deploy_candidate"] == "success"
    trig = rows(conn, "SELECT status, outcome, result FROM retraining_triggers WHERE trigger_id = %s", (tid,))[0]
    new = trig["result"]["deployed_version"]
    assert (trig["status"], trig["outcome"], trig["result"]["alias"]) == (
        "done",
        "deployed as challenger",
        "challenger",
    )
    # the champion stays; the candidate is the challenger of a running A/B test started by this run
    assert registry.resolve_alias(conn, "spx_signal", "champion") == 1
    assert registry.resolve_alias(conn, "spx_signal", "challenger") == new
    test = ab_store.running_test(conn, "spx_signal")
    assert test is not None and (test.champion_version, test.challenger_version) == (1, new)
    assert test.started_by == f"retrain_gated trigger {tid}" and f"trigger {tid}" in test.reason
    assert test.started_at == datetime(2008, 10, 1, tzinfo=UTC)  # the end of the trigger's window, not the wall clock
    mail = rows(conn, "SELECT body FROM notifications WHERE dedupe_key = %s", (f"retrain:{tid}:deployed",))
    assert f"deployed as challenger; A/B test {test.test_id} started" in mail[0]["body"]
    conn.close()
