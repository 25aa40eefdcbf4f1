"""A/B tests on the embedded PostgreSQL: start (and what it refuses), stable assignment, the matured evidence, the
daily row, and each ending with its alias history."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from include.modelwatch import registry
from include.modelwatch.ab import assignment, store
from include.modelwatch.ab.decision import INCONCLUSIVE, PROMOTE, STOP
from include.modelwatch.data import storage

T0 = datetime(2008, 6, 2, tzinfo=UTC)


def _versions(db, tmp_path, n=3, model="m") -> list[int]:
    out = []
    for i in range(n):
        mv = registry.register_version(
            db,
            model_name=model,
            algorithm="lightgbm",
            artifact=f"model {i}".encode(),
            artifact_dir=tmp_path,
            features=["f"],
            classes=["SELL", "HOLD", "BUY"],
        )
        out.append(mv.version)
    registry.set_alias(db, model, registry.CHAMPION, out[0], reason="bootstrap", changed_at=T0)
    return out


def _start(db, challenger, **kw):
    return store.start_test(
        db,
        model_name="m",
        challenger_version=challenger,
        started_at=T0,
        started_by="tester",
        reason="gates passed",
        **kw,
    )


def test_start_points_the_challenger_alias_and_refuses_bad_input(db, tmp_path):
    v1, v2, v3 = _versions(db, tmp_path)
    tid = _start(db, v2, split=0.3, min_samples=50, max_days=20)
    test = store.get_test(db, tid)
    assert (test.champion_version, test.challenger_version, test.split, test.status) == (v1, v2, 0.3, "running")
    assert registry.resolve_alias(db, "m", "challenger") == v2
    hist = registry.alias_history(db, "m", "challenger")
    assert [(h["to_version"], h["reason"]) for h in hist] == [(v2, f"A/B test against champion v{v1}: gates passed")]
    refused = [
        (lambda: _start(db, v3), f"m: test {tid} (challenger v{v2}) is still running"),
        (
            lambda: store.start_test(
                db, model_name="x", challenger_version=1, started_at=T0, started_by="t", reason="r"
            ),
            "x: no champion",
        ),
    ]
    for call, message in refused:
        with pytest.raises(store.ABError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call()
    store.end_test(db, tid, STOP, reason="enough", ended_at=T0 + timedelta(days=1), run_id="r1")
    for kwargs, message in (
        ({"challenger_version": v1}, "same version"),
        ({"challenger_version": 99}, "unknown version 99"),
        ({"challenger_version": v3, "split": 1.0}, "split must be strictly between 0 and 1"),
        ({"challenger_version": v3, "split": 0.0}, "split must be strictly between 0 and 1"),
    ):
        with pytest.raises(store.ABError, match=message):
            store.start_test(db, model_name="m", started_at=T0, started_by="t", reason="r", **kwargs)
    # nothing of the refused starts remains: one test, stopped; no challenger alias
    assert [t.status for t in store.list_tests(db, "m")] == ["stopped"]
    assert registry.resolve_alias(db, "m", "challenger") is None
    # ending a test that is not running changes nothing
    with pytest.raises(store.ABError, match=f"A/B test {tid} of m is not running"):
        store.end_test(db, tid, PROMOTE, reason="late", ended_at=T0, run_id="r2")
    assert registry.resolve_alias(db, "m", "champion") == v1


def test_assignment_is_stored_once_and_stable(db, tmp_path):
    _, v2, _ = _versions(db, tmp_path)
    test = store.get_test(db, _start(db, v2))
    units = [(s, date(2008, 6, 2) + timedelta(days=d)) for s in ("SPX", "IXIC") for d in range(30)]
    with storage.transaction(db) as cur:
        first = store.assign_units(cur, test, units)
    with storage.transaction(db) as cur:
        again = store.assign_units(cur, test, units[:10])
    assert len(first) == 60 and again == {k: first[k] for k in list(first) if k in again} and len(again) == 10
    for (symbol, day), unit in zip(units, [assignment.unit_key(s, d) for s, d in units], strict=True):
        assert first[unit] == assignment.arm_for(test.test_id, unit, 0.5), (symbol, day)
    assert set(first.values()) == {"champion", "challenger"}


def _prediction(cur, version, symbol, day, label, realized, r_multiple, matured):
    ts = datetime(day.year, day.month, day.day, 21, tzinfo=UTC)
    cur.execute(
        "INSERT INTO predictions (model_name, model_version, ts, symbol, features, predicted_label, probabilities, "
        "confidence) VALUES ('m', %s, %s, %s, '{}', %s, %s, 0.5) RETURNING prediction_id",
        (version, ts, symbol, label, json.dumps({c: 0.5 if c == label else 0.25 for c in ("SELL", "HOLD", "BUY")})),
    )
    pid = cur.fetchone()[0]
    cur.execute(
        "INSERT INTO outcomes (prediction_id, realized_return, realized_label, r_multiple, horizon_days, matured_at) "
        "VALUES (%s, 0.01, %s, %s, 5, %s)",
        (pid, realized, r_multiple, matured),
    )


def test_evidence_counts_paired_rows_assigned_arms_and_sessions(db, tmp_path):
    v1, v2, _ = _versions(db, tmp_path)
    test = store.get_test(db, _start(db, v2))
    days = [date(2008, 6, 2) + timedelta(days=d) for d in range(4)]
    with storage.transaction(db) as cur:
        arms = store.assign_units(cur, test, [("SPX", d) for d in days])
        # (each prediction row carries its own outcome row; day 3 matures after the evaluation day)
        for i, d in enumerate(days):
            matured = datetime(2008, 6, 20 if i < 3 else 30, tzinfo=UTC)
            _prediction(cur, v1, "SPX", d, "BUY", "BUY" if i < 3 else "SELL", 1.0 if i < 3 else -1.0, matured)
            _prediction(cur, v2, "SPX", d, "SELL", "SELL" if i >= 1 else "BUY", 1.0 if i >= 1 else -1.0, matured)
    ev = store.evidence(db, test, datetime(2008, 6, 25, tzinfo=UTC))
    # matured before the evaluation day: days 0..2; the champion is right on all three, the challenger on 1 and 2
    assert ev.paired.n == 3
    arm_of = [arms[assignment.unit_key("SPX", d)] for d in days[:3]]
    champ_hits = [True, True, True]
    chall_hits = [False, True, True]
    cells = {
        "both_right": sum(a and b for a, b in zip(champ_hits, chall_hits, strict=True)),
        "champion_only": sum(a and not b for a, b in zip(champ_hits, chall_hits, strict=True)),
    }
    assert (ev.paired.both_right, ev.paired.champion_only, ev.paired.challenger_only) == (
        cells["both_right"],
        cells["champion_only"],
        0,
    )
    assert ev.assigned.n_champion == arm_of.count("champion") and ev.assigned.n_challenger == arm_of.count("challenger")
    assert ev.sessions == (1, 0)  # day 0: the champion won the session's only discordant row
    assert sum(ev.assigned_units) == 4 and ev.arm_metrics["champion"]["rows"] == arm_of.count("champion")
    assert ev.sessions_elapsed == 4  # sessions assigned before the evaluation day, matured or not
    # each arm's metrics are live_metrics on the rows it served (the champion's are all right: accuracy 1)
    if arm_of.count("champion"):
        assert ev.arm_metrics["champion"]["accuracy"] == 1.0
    # the signal each unit received is its arm's prediction, once; the other arm's score is a shadow
    served = storage.fetch_dicts(
        db, "SELECT model_version, (ts AT TIME ZONE 'UTC')::date AS day FROM served_signals ORDER BY ts", {}
    )
    want = {"champion": v1, "challenger": v2}
    assert [(r["day"], r["model_version"]) for r in served] == [
        (d, want[arms[assignment.unit_key("SPX", d)]]) for d in days
    ]


@pytest.mark.parametrize("action", [PROMOTE, STOP, INCONCLUSIVE])
def test_each_ending_changes_aliases_in_one_transaction(db, tmp_path, action):
    v1, v2, _ = _versions(db, tmp_path)
    tid = _start(db, v2)
    end = T0 + timedelta(days=30)
    ended = store.end_test(db, tid, action, reason="sequential test decided", ended_at=end, run_id="run-9")
    assert ended.status == {"promote": "promoted", "stop": "stopped", "inconclusive": "inconclusive"}[action]
    assert ended.ended_at == end and ended.reason == "sequential test decided"
    assert registry.resolve_alias(db, "m", "challenger") is None
    statuses = registry.version_statuses(db, "m")
    why = f"A/B test {tid} {ended.status}: sequential test decided"
    if action == PROMOTE:
        assert registry.resolve_alias(db, "m", "champion") == v2
        assert statuses[v1] == "retired" and statuses[v2] == "active"  # the old champion stays registered
        champ = registry.alias_history(db, "m", "champion")[-1]
        assert (champ["from_version"], champ["to_version"], champ["reason"], champ["run_id"]) == (
            v1,
            v2,
            why,
            "run-9",
        )
    else:
        assert registry.resolve_alias(db, "m", "champion") == v1
        assert statuses[v2] == "retired"
    last = registry.alias_history(db, "m", "challenger")[-1]
    assert (last["from_version"], last["to_version"], last["reason"]) == (v2, None, why)


def test_thompson_allocation_moves_the_split_and_the_srm_expectation_follows(db, tmp_path):
    _, v2, _ = _versions(db, tmp_path)
    tid = _start(db, v2, allocation="thompson", split=0.5)
    week1 = [("SPX", date(2008, 6, 2) + timedelta(days=d)) for d in range(20)]
    with storage.transaction(db) as cur:
        store.assign_units(cur, store.get_test(db, tid), week1)
    row = {
        "days_elapsed": 20,
        "matured_rows": 0,
        "both_right": 0,
        "champion_only": 0,
        "challenger_only": 0,
        "both_wrong": 0,
        "n_champion": 0,
        "hits_champion": 0,
        "n_challenger": 0,
        "hits_challenger": 0,
        "seq_decision": "continue",
        "srm_mismatch": False,
        "decision": "continue",
        "reason": "r",
        "next_split": 0.8,
    }
    with storage.transaction(db) as cur:
        store.record_day(cur, tid, date(2008, 6, 22), row)
    assert store.get_test(db, tid).split == 0.8  # the next sessions are assigned with the new split
    week2 = [("SPX", date(2008, 6, 23) + timedelta(days=d)) for d in range(20)]
    with storage.transaction(db) as cur:
        arms = store.assign_units(cur, store.get_test(db, tid), week2)
    assert all(a == assignment.arm_for(tid, u, 0.8) for u, a in arms.items())
    ev = store.evidence(db, store.get_test(db, tid), datetime(2008, 7, 20, tzinfo=UTC))
    assert sum(ev.assigned_units) == 40 and ev.expected_split == pytest.approx((20 * 0.5 + 20 * 0.8) / 40)
    with pytest.raises(store.ABError, match="allocation must be one of"):
        store.start_test(
            db, model_name="x", challenger_version=1, started_at=T0, started_by="t", reason="r", allocation="greedy"
        )
