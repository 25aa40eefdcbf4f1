"""A/B tests through the real DAGs: start, both arms scored by score_signals (assignments stored, shadow scores),
ab_test_daily's evidence and branch down each path (promote, stop, inconclusive), the alias history, and a re-run
of a day that changes nothing.

The challengers are chosen so each path is certain: an "oracle" trained on 2008's own labels (in-sample, so far
more accurate on 2008 than the bootstrapped champion; a fixture, not a model anyone would deploy), and a copy of
the champion's artifact (identical predictions: no discordant row, so only ``max_days`` can end the test).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from include.modelwatch import registry
from include.modelwatch.ab import store
from include.modelwatch.data import storage
from tests.e2e.conftest import get_dag, rows, run_window

MONTHS = [("2008-01-01", "2008-02-01"), ("2008-02-01", "2008-03-01"), ("2008-03-01", "2008-04-01")]
START = datetime(2008, 1, 1, tzinfo=UTC)


def _iso(day: str) -> str:
    return f"{day}T00:00:00+00:00"


def _register(conn, champion_mv, artifact: bytes, run: str) -> int:
    mv = registry.register_version(
        conn,
        model_name=champion_mv.model_name,
        algorithm="lightgbm",
        artifact=artifact,
        artifact_dir=os.environ["MODELWATCH_ARTIFACT_DIR"],
        features=list(champion_mv.features),
        classes=list(champion_mv.classes),
        horizon_days=champion_mv.horizon_days,
        run_id=run,
    )
    return int(mv.version)


def _oracle_artifact() -> bytes:
    """LightGBM trained on 2008's bars and labels (look-ahead on purpose: a challenger certain to win)."""
    import pandas as pd

    from include.modelwatch.data import features
    from include.modelwatch.training import dataset, training

    bars = dataset.load_clean_bars(["SPX", "IXIC"])
    panel = dataset.feature_panel(bars[bars["date"] < pd.Timestamp("2008-05-01")], pd.Timestamp("2008-05-01"))
    panel = panel[(panel["date"] >= pd.Timestamp("2007-12-01")) & panel["label"].notna()]
    X = panel[list(features.FEATURE_COLUMNS)]
    model = training.train_model("lightgbm", X, panel["label"].astype(str).to_numpy(), seed=0)
    return training.serialize_model(model)


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _alias_rows(conn, after_id: int) -> list[dict]:
    """This test's alias changes (the history table outlives each test)."""
    return rows(
        conn,
        "SELECT alias, from_version, to_version, reason, run_id FROM model_alias_history WHERE id > %s ORDER BY id",
        (after_id,),
    )


@pytest.mark.parametrize("path", ["promote", "stop", "inconclusive"])
def test_ab_test_through_the_dags(champion, monitoring_uri, path):
    conn = storage.connect(monitoring_uri)
    first_id = rows(conn, "SELECT coalesce(max(id), 0) AS id FROM model_alias_history")[0]["id"]
    v1 = champion.model.version
    mv1 = registry.get_version(conn, "spx_signal", v1)
    if path == "inconclusive":
        challenger = _register(conn, mv1, registry.read_artifact(mv1), "e2e-copy")
        champ = v1
        settings = {"max_days": 15, "min_samples": 10}
    else:
        oracle = _register(conn, mv1, _oracle_artifact(), "e2e-oracle")
        if path == "promote":
            champ, challenger = v1, oracle
        else:  # the oracle is champion; the bootstrapped model challenges it and loses
            registry.set_alias(conn, "spx_signal", "champion", oracle, reason="e2e: oracle champion", changed_at=START)
            champ, challenger = oracle, v1
        settings = {"max_days": 200, "min_samples": 20}
    tid = store.start_test(
        conn,
        model_name="spx_signal",
        challenger_version=challenger,
        started_at=START,
        started_by="e2e",
        reason="e2e A/B test",
        split=0.5,
        **settings,
    )
    assert registry.resolve_alias(conn, "spx_signal", "challenger") == challenger
    # a second running test of the model is refused, and changes nothing
    with pytest.raises(store.ABError, match=f"test {tid} .* is still running"):
        store.start_test(
            conn, model_name="spx_signal", challenger_version=challenger, started_at=START, started_by="e2e", reason="x"
        )

    ended = None
    for month_start, month_end in MONTHS:
        assert run_window("score_signals", _iso(month_start), _iso(month_end)).state == "success"
        dr = run_window("ab_test_daily", _iso(month_start), _iso(month_end))
        assert dr.state == "success"
        if store.get_test(conn, tid).status != "running":
            ended = (month_start, month_end, dr)
            break
        conn.rollback()
        assert _states(dr)["keep_running"] == "success"
    assert ended is not None, f"the {path} test did not end in {MONTHS}"
    month_start, month_end, dr = ended
    st = _states(dr)
    task = {"promote": "promote_challenger", "stop": "stop_challenger", "inconclusive": "close_inconclusive"}[path]
    others = {
        "promote_challenger",
        "stop_challenger",
        "close_inconclusive",
        "keep_running",
        "request_promotion_approval",
        "promotion_decision",
        "promote_approved",
        "promotion_not_approved",
    } - {task}
    assert st[task] == "success" and all(st[o] == "skipped" for o in others), st

    # both arms scored every row, each unit's arm stored; the served signal is the arm's
    scored = rows(
        conn,
        "SELECT model_version, count(*) AS n FROM predictions WHERE ts >= %s AND ts < %s GROUP BY model_version",
        (START, _iso(month_end)),
    )
    n_by_version = {r["model_version"]: r["n"] for r in scored}
    assert n_by_version[champ] == n_by_version[challenger] > 0
    assigned = rows(conn, "SELECT arm, count(*) AS n FROM ab_assignments WHERE test_id = %s GROUP BY arm", (tid,))
    arms = {r["arm"]: r["n"] for r in assigned}
    assert sum(arms.values()) == n_by_version[champ] and set(arms) == {"champion", "challenger"}
    served = rows(
        conn, "SELECT count(*) AS n FROM served_signals WHERE ts >= %s AND ts < %s", (START, _iso(month_end))
    )[0]["n"]
    assert served == n_by_version[champ]  # one served signal per bar: the shadow scores are not served

    test = store.get_test(conn, tid)
    days = store.daily_results(conn, tid)
    last = days[-1]
    assert last["decision"] == path and test.status == {"promote": "promoted", "stop": "stopped"}.get(
        path, "inconclusive"
    )
    assert test.reason == last["reason"] and test.ended_at == datetime.fromisoformat(_iso(month_end))
    # both sides of the sequential test are stored, on the sessions won; the larger is the recorded statistic
    assert last["seq_unit"] == "session"
    assert max(last["seq_log_lr_challenger"], last["seq_log_lr_champion"]) == last["seq_log_lr"]
    assert (
        f"sessions won (champion {last['seq_champion_wins']}, challenger {last['seq_challenger_wins']})"
        in (last["reason"])
    )
    assert (
        last["matured_rows"]
        == last["both_right"] + last["champion_only"] + last["challenger_only"] + (last["both_wrong"])
    )
    history = [h for h in _alias_rows(conn, first_id) if h["reason"].startswith(f"A/B test {tid} ")]
    why = f"A/B test {tid} {test.status}: {test.reason}"
    if path == "promote":
        assert last["challenger_only"] > last["champion_only"] and last["seq_decision"] == "challenger_better"
        assert registry.resolve_alias(conn, "spx_signal", "champion") == challenger
        assert registry.version_statuses(conn, "spx_signal")[champ] == "retired"  # still registered
        assert [(h["alias"], h["from_version"], h["to_version"], h["reason"]) for h in history] == [
            ("champion", champ, challenger, why),
            ("challenger", challenger, None, why),
        ]
        assert {h["run_id"] for h in history} == {dr.run_id}
    else:
        assert registry.resolve_alias(conn, "spx_signal", "champion") == champ
        assert [(h["alias"], h["from_version"], h["to_version"]) for h in history] == [("challenger", challenger, None)]
        if path == "stop":
            assert last["champion_only"] > last["challenger_only"] and last["seq_decision"] == "champion_better"
        else:
            assert last["champion_only"] == last["challenger_only"] == 0 and last["days_elapsed"] >= 15
    assert registry.resolve_alias(conn, "spx_signal", "challenger") is None

    # re-running the deciding day changes nothing: the test is over, its rows and the aliases stay
    before = (rows(conn, "SELECT * FROM ab_daily_results ORDER BY day"), _alias_rows(conn, first_id), test)
    rerun = run_window("ab_test_daily", _iso(month_start), _iso(month_end))
    assert rerun.state == "success" and _states(rerun)["keep_running"] == "success"
    after = (
        rows(conn, "SELECT * FROM ab_daily_results ORDER BY day"),
        _alias_rows(conn, first_id),
        store.get_test(conn, tid),
    )
    assert after == before
    assert get_dag("ab_test_daily").get_task("choose_endings").downstream_task_ids == {
        "promote_challenger",
        "stop_challenger",
        "close_inconclusive",
        "keep_running",
        "request_promotion_approval",
    }
    conn.close()


APPROVER = {"id": "risk-officer", "name": "Risk Officer"}


@pytest.mark.parametrize("choice", ["Approve", "Reject"])
def test_promotion_waits_for_a_human_when_the_policy_says_so(champion, monitoring_uri, choice):
    import json
    import threading

    from airflow.models import Variable  # the metadata DB directly: the SDK's Variable needs a task context

    from tests.e2e import hitl

    conn = storage.connect(monitoring_uri)
    first_id = rows(conn, "SELECT coalesce(max(id), 0) AS id FROM model_alias_history")[0]["id"]
    v1 = champion.model.version
    oracle = _register(conn, registry.get_version(conn, "spx_signal", v1), _oracle_artifact(), "e2e-oracle")
    tid = store.start_test(
        conn,
        model_name="spx_signal",
        challenger_version=oracle,
        started_at=START,
        started_by="e2e",
        reason="e2e A/B test with approval",
        max_days=200,
        min_samples=20,
    )
    Variable.set("modelwatch_require_approval", json.dumps({"spx_signal": True}))  # noqa: AIR311
    Variable.set("modelwatch_approvers", json.dumps({"spx_signal": [APPROVER]}))  # noqa: AIR311
    stop, seen = threading.Event(), []
    responder = threading.Thread(
        target=hitl.answer, args=("ab_test_daily", "promotion_decision", lambda _ti, _hd: choice, APPROVER, stop, seen)
    )
    responder.daemon = True
    responder.start()
    try:
        for month_start, month_end in MONTHS:
            assert run_window("score_signals", _iso(month_start), _iso(month_end)).state == "success"
            dr = run_window("ab_test_daily", _iso(month_start), _iso(month_end))
            assert dr.state == "success"
            if store.get_test(conn, tid).status != "running":
                break
            conn.rollback()
    finally:
        stop.set()
        Variable.set("modelwatch_require_approval", "{}")  # noqa: AIR311
        Variable.set("modelwatch_approvers", "{}")  # noqa: AIR311
    st = _states(dr)
    test = store.get_test(conn, tid)
    last = store.daily_results(conn, tid)[-1]
    assert last["decision"] == "promote"  # the evidence decided; the human decides whether it happens
    assert st["request_promotion_approval"] == "success" and st["promotion_decision"] == "success"
    assert st["promote_challenger"] == "skipped"  # never without the human
    # the request went to the model's approver and names the test and its evidence
    assert len(seen) == 1 and seen[0]["assigned_users"] == [APPROVER]
    assert f"test {tid}, challenger v{oracle} against champion v{v1}: {last['reason']}" in seen[0]["body"]
    history = [h for h in _alias_rows(conn, first_id) if h["reason"].startswith(f"A/B test {tid} ")]
    if choice == "Approve":
        assert st["promote_approved"] == "success" and st["promotion_not_approved"] == "skipped"
        assert test.status == "promoted" and test.reason == f"{last['reason']}; approved by Risk Officer (risk-officer)"
        assert registry.resolve_alias(conn, "spx_signal", "champion") == oracle
        assert [(h["alias"], h["from_version"], h["to_version"]) for h in history] == [
            ("champion", v1, oracle),
            ("challenger", oracle, None),
        ]
        assert all(h["reason"].endswith("approved by Risk Officer (risk-officer)") for h in history)
    else:
        assert st["promotion_not_approved"] == "success" and st["promote_approved"] == "skipped"
        assert test.status == "stopped" and test.reason == "promotion not approved by Risk Officer (risk-officer)"
        assert registry.resolve_alias(conn, "spx_signal", "champion") == v1
        assert [(h["alias"], h["from_version"], h["to_version"]) for h in history] == [("challenger", oracle, None)]
    assert registry.resolve_alias(conn, "spx_signal", "challenger") is None
    conn.close()
