"""retrain_gated end to end with dag.test() on the real champion and 2008 bars."""

from __future__ import annotations

from datetime import datetime, timezone

import pendulum

from include.modelwatch import registry, storage
from tests.e2e.conftest import get_dag, rows

FAST = {"num_boost_round": 40, "eval_sessions": 120, "train_years": 4}
WINDOW_END = datetime(2008, 10, 1, tzinfo=timezone.utc)


def _trigger(conn, *, mode="full", at=WINDOW_END) -> int:
    with storage.transaction(conn) as cur:
        cur.execute(
            "INSERT INTO retraining_triggers (model_name, model_version, trigger_type, retrain_mode, priority, rule_name, "
            "reason, window_start, window_end, triggered_at) VALUES ('spx_signal', 1, 'drift', %s, 'high', "
            "'drift_score', 'drift score 0.41 > 0.25 (2008-09)', %s, %s, %s) RETURNING trigger_id",
            (mode, datetime(2008, 9, 1, tzinfo=timezone.utc), at, at))
        return int(cur.fetchone()[0])


def _run(conf: dict, when: str = "2008-10-02"):
    return get_dag("retrain_gated").test(logical_date=pendulum.parse(when), run_conf=conf)


def _states(dr) -> dict[str, str]:
    return {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in dr.get_task_instances()}


def test_no_trigger_ends_early(champion, monitoring_uri):
    dr = _run(FAST)
    st = _states(dr)
    assert str(dr.state) == "success", st
    assert st["end_no_trigger"] == "success" and st["assemble_training_data"] == "skipped"
    conn = storage.connect(monitoring_uri)
    assert rows(conn, "SELECT count(*) AS n FROM training_jobs") == [{"n": 0}]
    conn.close()


def test_drift_trigger_retrains_and_records_gates(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    tid = _trigger(conn)
    dr = _run(FAST)
    st = _states(dr)
    jobs = rows(conn, "SELECT algorithm, status, candidate_version, duration_s, metrics FROM training_jobs ORDER BY algorithm")
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
        assert sorted(trig["outcome"][len("rejected: "):].split(", ")) == sorted(trig["result"]["failing_gates"])
        assert registry.resolve_alias(conn, "spx_signal", "champion") == 1
    assert st["finish"] == "success" and str(dr.state) == "success"
    conn.close()
