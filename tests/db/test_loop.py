"""The closed loop on the embedded PostgreSQL: stored rules, evaluation, triggers,
cooldowns, episodes, concurrency, manual triggers, CLI and feedback."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from include.modelwatch import registry
from include.modelwatch.data import storage
from include.modelwatch.loop import alerts, feedback, responses, rule_store, rules, triggers
from include.modelwatch.ops import cli
from include.modelwatch.training import retrain

T0 = datetime(2008, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _champion(db, tmp_path, model="m", train_end=date(2008, 9, 1), payload=b"v1") -> int:
    mv = registry.register_version(
        db,
        model_name=model,
        algorithm="lightgbm",
        artifact=payload,
        artifact_dir=tmp_path,
        features=["f"],
        classes=["SELL", "HOLD", "BUY"],
        train_end=train_end,
    )
    registry.set_alias(db, model, "champion", mv.version, reason="test", changed_at=T0 - timedelta(days=30))
    return mv.version


def _alert(db, model="m", kind="drift", score=0.4, at=T0, severity="critical"):
    with storage.transaction(db) as cur:
        ch = alerts.raise_alert(
            cur,
            model_name=model,
            model_version=1,
            kind=kind,
            severity=severity,
            title=f"{kind} alert",
            message="test",
            window_start=at - H,
            window_end=at,
            score=score,
        )
    return ch.alert_id


def _resolve(db, model="m", kind="drift", at=T0):
    with storage.transaction(db) as cur:
        alerts.resolve_alert(cur, model_name=model, kind=kind, at=at, resolution="test")


def _q(db, sql, params=None):
    out = storage.fetch_dicts(db, sql, params)
    db.rollback()
    return out


def _triggers(db, model="m"):
    return _q(
        db,
        "SELECT trigger_id, status, trigger_type, rule_name, retrain_mode, priority, reason, evidence "
        "FROM retraining_triggers WHERE model_name = %(model)s ORDER BY trigger_id",
        {"model": model},
    )


def test_migration_seeds_the_predecessor_defaults(db):
    stored = {r.name: r for r in rule_store.load_rules(db)}
    assert stored == {r.name: r for r in rules.DEFAULT_RULES}


@pytest.mark.parametrize("score,fires", [(0.2499, False), (0.25, False), (0.2501, True), (0.9, True)])
def test_drift_rule_boundary_through_the_database(db, tmp_path, score, fires):
    _champion(db, tmp_path)
    _alert(db, score=score)
    ev = responses.evaluate(db, "m", source="drift", as_of=T0, run_id="r1")
    trig = _triggers(db)
    assert [a["action"] for a in ev.actions] == ["fire" if fires else "no_change"]
    assert len(trig) == int(fires)
    if fires:
        t = trig[0]
        assert (t["status"], t["trigger_type"], t["retrain_mode"], t["priority"], t["rule_name"]) == (
            "pending",
            "drift",
            "full",
            "high",
            "drift_full_retrain",
        )
        assert f"drift_score {score:g} > threshold 0.25" in t["reason"]
        assert t["evidence"]["alert"]["alert_id"] == 1 and ev.trigger_id == t["trigger_id"] and ev.changed


def test_no_alert_no_decision_and_no_champion_no_trigger(db, tmp_path):
    assert responses.evaluate(db, "m", source="drift", as_of=T0).actions == []  # no champion at all
    _champion(db, tmp_path)
    ev = responses.evaluate(db, "m", source="drift", as_of=T0)
    assert ev.actions == [] and not ev.changed and _triggers(db) == []


def test_episode_fires_once_cooldown_and_new_episode(db, tmp_path):
    _champion(db, tmp_path)
    _alert(db, score=0.4, at=T0)
    assert responses.evaluate(db, "m", source="drift", as_of=T0).actions[0]["action"] == "fire"
    # the retrain takes the trigger; the alert stays open
    retrain.claim_trigger(db, run_id="retrain-1", claimed_at=T0 + H)
    nxt = responses.evaluate(db, "m", source="drift", as_of=T0 + 2 * H).actions[0]
    assert nxt["action"] == "suppressed_episode"  # same alert: same episode
    later = responses.evaluate(db, "m", source="drift", as_of=T0 + 30 * H).actions[0]
    assert later["action"] == "suppressed_episode" and "alert 1" in later["reason"]
    # the alert resolves and a new one opens 3 h later: a new episode, but inside the 24 h cooldown
    _resolve(db, at=T0 + 31 * H)
    _alert(db, score=0.5, at=T0 + 32 * H)
    cool = responses.evaluate(db, "m", source="drift", as_of=T0 + 23 * H).actions
    assert cool == []  # the new alert did not exist yet at that logical time
    cool = responses.evaluate(db, "m", source="drift", as_of=T0 + 32 * H).actions[0]
    assert cool["action"] == "fire"  # 32 h > 24 h cooldown and a new episode -> a second trigger
    trig = _triggers(db)
    assert [t["status"] for t in trig] == ["claimed", "pending"]
    acts = _q(db, "SELECT action FROM closed_loop_actions ORDER BY action_id")
    assert [a["action"] for a in acts] == ["fire", "suppressed_episode", "suppressed_episode", "fire"]


def test_cooldown_suppresses_a_new_episode_and_is_recorded(db, tmp_path):
    _champion(db, tmp_path)
    _alert(db, score=0.4, at=T0)
    responses.evaluate(db, "m", source="drift", as_of=T0)
    retrain.claim_trigger(db, run_id="retrain-1", claimed_at=T0 + H)
    _resolve(db, at=T0 + 2 * H)
    _alert(db, score=0.6, at=T0 + 5 * H)
    act = responses.evaluate(db, "m", source="drift", as_of=T0 + 5 * H).actions[0]
    assert act["action"] == "suppressed_cooldown" and "cooldown 24h" in act["reason"]
    assert [t["status"] for t in _triggers(db)] == ["claimed"]


def test_rerun_of_a_window_returns_its_decisions(db, tmp_path):
    _champion(db, tmp_path)
    _alert(db, score=0.4)
    first = responses.evaluate(db, "m", source="drift", as_of=T0, run_id="r1")
    again = responses.evaluate(db, "m", source="drift", as_of=T0, run_id="r1-retry")
    assert again.replayed and not again.changed
    assert [a["action"] for a in again.actions] == ["fire"] and again.trigger_id == first.trigger_id
    assert len(_triggers(db)) == 1
    assert _q(db, "SELECT count(*) AS n FROM closed_loop_actions")[0]["n"] == 1


def test_stronger_rule_upgrades_the_pending_trigger(db, tmp_path):
    _champion(db, tmp_path, train_end=date(2008, 8, 1))
    with storage.transaction(db) as cur:  # the weakest trigger there is: the predecessor's monthly incremental age rule
        cur.execute(
            "UPDATE automated_response_rules SET threshold = 30, retrain_mode = 'incremental' "
            "WHERE rule_name = 'age_full_retrain'"
        )
    age = responses.evaluate(db, "m", source="schedule", as_of=T0)
    assert age.actions[0]["action"] == "fire" and age.actions[0]["observed"] == 61.0
    t = _triggers(db)[0]
    assert (t["trigger_type"], t["priority"], t["retrain_mode"]) == ("age", "low", "incremental")
    _alert(db, kind="performance", score=0.15)
    up = responses.evaluate(db, "m", source="performance", as_of=T0 + H).actions[0]
    assert up["action"] == "upgrade" and up["trigger_id"] == t["trigger_id"]
    _alert(db, kind="drift", score=0.3)
    up2 = responses.evaluate(db, "m", source="drift", as_of=T0 + 2 * H).actions[0]
    assert up2["action"] == "upgrade"
    trig = _triggers(db)
    assert len(trig) == 1
    t = trig[0]
    assert (t["trigger_type"], t["rule_name"], t["priority"], t["retrain_mode"]) == (
        "drift",
        "drift_full_retrain",
        "high",
        "full",
    )
    upgrades = [u["to"]["rule_name"] for u in t["evidence"]["upgrades"]]
    assert upgrades == ["performance_incremental", "drift_full_retrain"]


def test_an_upgrade_moves_the_trigger_to_the_stronger_evidence_window(db, tmp_path):
    """The age rule's trigger has no data window; the drift evidence that upgrades it defines the retrain's data."""
    _champion(db, tmp_path, train_end=date(2007, 8, 1))  # over a year old on T0: the age rule fires
    responses.evaluate(db, "m", source="schedule", as_of=T0)
    row = _q(db, "SELECT window_start, window_end FROM retraining_triggers")
    assert row == [{"window_start": None, "window_end": None}]
    _alert(db, kind="drift", score=0.3)
    up = responses.evaluate(db, "m", source="drift", as_of=T0 + H, window=(T0, T0 + H)).actions[0]
    assert up["action"] == "upgrade"
    assert _q(db, "SELECT window_start, window_end FROM retraining_triggers") == [
        {"window_start": T0, "window_end": T0 + H}
    ]
    # a weaker rule later leaves the stronger pending trigger alone
    _resolve(db, kind="performance", at=T0 + 3 * H)
    _alert(db, kind="performance", score=0.2, at=T0 + 50 * H)
    weak = responses.evaluate(db, "m", source="performance", as_of=T0 + 50 * H).actions[0]
    assert weak["action"] == "no_change" and "already at least as strong" in weak["reason"]
    assert _triggers(db)[0]["priority"] == "high"


def test_pending_trigger_about_a_replaced_champion_is_cancelled(db, tmp_path):
    _champion(db, tmp_path)
    _alert(db, score=0.4)
    responses.evaluate(db, "m", source="drift", as_of=T0)
    v2 = registry.register_version(
        db,
        model_name="m",
        algorithm="lightgbm",
        artifact=b"v2",
        artifact_dir=tmp_path,
        features=["f"],
        classes=["SELL", "HOLD", "BUY"],
        train_end=date(2008, 9, 30),
    )
    registry.set_alias(db, "m", "champion", v2.version, reason="deployed by hand", changed_at=T0 + H)
    ev = responses.evaluate(db, "m", source="performance", as_of=T0 + 2 * H)
    assert [a["action"] for a in ev.actions] == ["cancelled"] and ev.changed
    assert "version 2 is the champion now" in ev.actions[0]["reason"]
    assert [t["status"] for t in _triggers(db)] == ["cancelled"]


def test_rule_override_and_disabled_rule(db, tmp_path):
    _champion(db, tmp_path)
    _alert(db, score=0.3)
    rule_store.set_rule(db, "drift_full_retrain", {"threshold": "0.35"}, model="m", by="test")
    assert responses.evaluate(db, "m", source="drift", as_of=T0).actions[0]["action"] == "no_change"
    rule_store.set_rule(db, "drift_full_retrain", {}, model="m", clear_override=True, by="test")
    rule_store.set_rule(db, "drift_full_retrain", {"enabled": "false"}, by="test")
    assert responses.evaluate(db, "m", source="drift", as_of=T0 + H).actions[0]["action"] == "disabled"
    assert _triggers(db) == []


@pytest.mark.parametrize(
    "changes,model,field",
    [
        ({"threshold": "1.5"}, None, "threshold"),
        ({"threshold": "0.3", "priority": "urgent"}, None, "priority"),
        ({"cooldown_hours": "-1"}, "m", "model_overrides['m'].cooldown_hours"),
        ({"metric": "risk_score"}, None, "metric"),
    ],
)
def test_bad_rule_change_is_rejected_whole(db, changes, model, field):
    before = _q(db, "SELECT * FROM automated_response_rules ORDER BY rule_name")
    with pytest.raises(rules.RuleError) as err:
        rule_store.set_rule(db, "drift_full_retrain", changes, model=model, by="test")
    assert err.value.field == field
    assert _q(db, "SELECT * FROM automated_response_rules ORDER BY rule_name") == before


@pytest.mark.parametrize(
    "sql,message",
    [
        (
            "UPDATE automated_response_rules SET threshold = 2 WHERE rule_name = 'drift_full_retrain'",
            "threshold: 2 out of range [0, 1] for metric drift_score",
        ),
        (
            """UPDATE automated_response_rules SET model_overrides = '{"m": {"treshold": 0.3}}'
        WHERE rule_name = 'drift_full_retrain'""",
            "model_overrides['m'].treshold: cannot be overridden",
        ),
        (
            """UPDATE automated_response_rules SET model_overrides = '{"m": {"priority": "urgent"}}'
        WHERE rule_name = 'age_full_retrain'""",
            "model_overrides['m'].priority: unknown priority urgent",
        ),
    ],
)
def test_bad_rule_in_plain_sql_is_rejected_by_the_database(db, sql, message):
    with pytest.raises(psycopg.Error) as err:
        with storage.transaction(db) as cur:
            cur.execute(sql)
    assert message in str(err.value)
    assert {r.name: r for r in rule_store.load_rules(db)} == {r.name: r for r in rules.DEFAULT_RULES}


def test_concurrent_evaluations_make_one_trigger(db, tmp_path, monitoring_uri):
    """Two sessions evaluate the same model at once (different sources and times): one trigger."""
    _champion(db, tmp_path)
    _alert(db, kind="drift", score=0.5)
    _alert(db, kind="performance", score=0.3)
    barrier = threading.Barrier(4)
    results: list = []
    errors: list = []

    def worker(source, as_of):
        conn = storage.connect(monitoring_uri)
        try:
            barrier.wait()
            results.append(responses.evaluate(conn, "m", source=source, as_of=as_of, run_id=f"{source}-{as_of}"))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            conn.close()

    jobs = [("drift", T0), ("performance", T0), ("drift", T0 + H), ("performance", T0 + H)]
    threads = [threading.Thread(target=worker, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 4
    trig = _triggers(db)
    assert len(trig) == 1 and trig[0]["status"] == "pending"
    assert trig[0]["priority"] == "high"  # whichever ran first, drift (high, full) is what stays
    created = [a for r in results for a in r.actions if a["action"] in ("fire", "upgrade")]
    assert sum(a["action"] == "fire" for a in created) == 1


def test_the_database_refuses_a_second_pending_trigger(db):
    ins = (
        "INSERT INTO retraining_triggers (model_name, trigger_type, retrain_mode, priority, reason, triggered_at) "
        "VALUES ('m', 'manual', 'full', 'high', 'x', %(at)s)"
    )
    with storage.transaction(db) as cur:
        cur.execute(ins, {"at": T0})
    with pytest.raises(psycopg.errors.UniqueViolation):
        with storage.transaction(db) as cur:
            cur.execute(ins, {"at": T0 + H})


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_manual_trigger_without_reason_is_refused(db, tmp_path, reason):
    _champion(db, tmp_path)
    with pytest.raises(ValueError, match="needs a non-empty reason"):
        triggers.create_manual_trigger(db, "m", reason, requested_by="alice", as_of=T0)
    assert _triggers(db) == []


def test_manual_trigger_is_idempotent_per_request_and_upgrades(db, tmp_path):
    _champion(db, tmp_path, train_end=date(2008, 8, 1))
    responses.evaluate(db, "m", source="schedule", as_of=T0)  # age: low incremental
    tid = triggers.create_manual_trigger(db, "m", "new data vendor", requested_by="run:abc", as_of=T0 + H)
    assert triggers.create_manual_trigger(db, "m", "new data vendor", requested_by="run:abc", as_of=T0 + H) == tid
    t = _triggers(db)
    assert len(t) == 1 and t[0]["trigger_type"] == "manual" and t[0]["priority"] == "high"
    assert "manual trigger by run:abc: new data vendor" == t[0]["reason"]
    with pytest.raises(triggers.LoopError, match="no champion"):
        triggers.create_manual_trigger(db, "unknown_model", "why not", requested_by="bob", as_of=T0)


def test_a_second_manual_request_is_refused_while_the_first_is_open(db, tmp_path):
    """Two people ask for the same model: the first trigger is pending, the second request is refused naming it,
    and nothing of it is recorded; the same holds while the first is claimed by a running retrain."""
    _champion(db, tmp_path)
    first = triggers.create_manual_trigger(db, "m", "new data vendor", requested_by="cli:alice", as_of=T0)
    actions_before = storage.fetch_dicts(db, "SELECT count(*) AS n FROM closed_loop_actions")[0]["n"]
    with pytest.raises(triggers.LoopError, match=rf"m: a manual retrain is already pending: trigger {first} "):
        triggers.create_manual_trigger(db, "m", "me too", requested_by="cli:bob", as_of=T0 + H)
    with storage.transaction(db) as cur:
        cur.execute("UPDATE retraining_triggers SET status = 'claimed' WHERE trigger_id = %(t)s", {"t": first})
    with pytest.raises(triggers.LoopError, match="already claimed by a running retrain"):
        triggers.create_manual_trigger(db, "m", "me too", requested_by="cli:bob", as_of=T0 + H)
    assert [(t["trigger_id"], t["status"]) for t in _triggers(db)] == [(first, "claimed")]
    assert storage.fetch_dicts(db, "SELECT count(*) AS n FROM closed_loop_actions")[0]["n"] == actions_before
    assert triggers.create_manual_trigger(db, "m", "new data vendor", requested_by="cli:alice", as_of=T0) == first


def test_same_requester_gets_a_new_trigger_after_the_first_finished(db, tmp_path):
    """Idempotency holds while the trigger is open; weeks later the same person's request is a new trigger."""
    _champion(db, tmp_path)
    first = triggers.create_manual_trigger(db, "m", "new data vendor", requested_by="cli:alice", as_of=T0)
    with storage.transaction(db) as cur:
        cur.execute(
            "UPDATE retraining_triggers SET status = 'done', outcome = 'rejected: business', completed_at = %(at)s "
            "WHERE trigger_id = %(tid)s",
            {"at": T0 + H, "tid": first},
        )
    second = triggers.create_manual_trigger(
        db, "m", "vendor fixed the feed", requested_by="cli:alice", as_of=T0 + 500 * H
    )
    assert second != first
    t = {r["trigger_id"]: r for r in _triggers(db)}
    assert t[first]["status"] == "done" and t[second]["status"] == "pending"
    assert t[second]["reason"] == "manual trigger by cli:alice: vendor fixed the feed"


def test_cli_rules_and_triggers(db, tmp_path, monitoring_uri, capsys):
    _champion(db, tmp_path)
    assert cli.main(["rules", "list", "--uri", monitoring_uri]) == 0
    out = capsys.readouterr().out
    assert "drift_full_retrain" in out and "drift_score > 0.25" in out and "full/high" in out
    assert (
        cli.main(["rules", "set", "drift_full_retrain", "threshold=0.3", "cooldown_hours=12", "--uri", monitoring_uri])
        == 0
    )
    r = {x.name: x for x in rule_store.load_rules(db)}["drift_full_retrain"]
    assert (r.threshold, r.cooldown_hours) == (0.3, 12.0)
    assert cli.main(["rules", "set", "drift_full_retrain", "threshold=abc", "--uri", monitoring_uri]) == 1
    assert "threshold: must be a finite number" in capsys.readouterr().err
    assert cli.main(["trigger", "create", "m", "--reason", " ", "--uri", monitoring_uri]) == 1
    assert "non-empty reason" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "trigger",
                "create",
                "m",
                "--reason",
                "vendor change",
                "--by",
                "alice",
                "--at",
                "2008-10-02T00:00:00+00:00",
                "--uri",
                monitoring_uri,
            ]
        )
        == 0
    )
    assert "trigger 1" in capsys.readouterr().out
    assert cli.main(["trigger", "list", "--uri", monitoring_uri]) == 0
    assert "manual trigger by cli:alice: vendor change" in capsys.readouterr().out
    assert cli.main(["trigger", "cancel", "1", "--reason", "duplicate", "--by", "alice", "--uri", monitoring_uri]) == 0
    assert _triggers(db)[0]["status"] == "cancelled"


def _perf_row(db, version, window_end, eval_start, accuracy, n):
    with storage.transaction(db) as cur:
        cur.execute(
            "INSERT INTO live_performance_daily (model_name, model_version, window_start, window_end, eval_start, "
            "eval_end, n, n_trades, n_days, accuracy) VALUES ('m', %(version)s, %(window_start)s, %(window_end)s, "
            "%(eval_start)s, %(eval_end)s, %(n)s, %(n)s, 20, %(accuracy)s)",
            {
                "version": version,
                "window_start": window_end - timedelta(days=1),
                "window_end": window_end,
                "eval_start": eval_start,
                "eval_end": window_end.date(),
                "n": n,
                "accuracy": accuracy,
            },
        )


def _retrain_to_v2(db, tmp_path, **deploy) -> tuple[int, int]:
    """A drift trigger claimed by a retrain that registers v2 and deploys it (``deploy`` kwargs)."""
    v1 = _champion(db, tmp_path)
    _alert(db, score=0.4)
    responses.evaluate(db, "m", source="drift", as_of=T0)
    claimed = retrain.claim_trigger(db, run_id="retrain-1", claimed_at=T0 + H)
    v2 = registry.register_version(
        db,
        model_name="m",
        algorithm="lightgbm",
        artifact=b"v2",
        artifact_dir=tmp_path,
        features=["f"],
        classes=["SELL", "HOLD", "BUY"],
    ).version
    retrain.deploy(
        db,
        model_name="m",
        version=v2,
        changed_at=T0 + 2 * H,
        run_id="retrain-1",
        trigger_id=claimed["trigger_id"],
        **deploy,
    )
    return v1, v2


def test_feedback_before_after_and_rule_precision(db, tmp_path):
    v1, v2 = _retrain_to_v2(db, tmp_path, reason="gates passed")
    _perf_row(db, v1, T0, date(2008, 7, 1), 0.31, 120)
    _perf_row(db, v2, T0 + timedelta(days=10), date(2008, 10, 2), 0.40, 12)  # too few outcomes yet
    # the feedback period (the first snapshot with >= 20 outcomes after the deployment) is not complete: no row
    assert feedback.update_feedback(db, as_of=T0 + timedelta(days=10), run_id="perf-1") == []
    _perf_row(db, v2, T0 + timedelta(days=20), date(2008, 10, 2), 0.42, 40)
    rows = feedback.update_feedback(db, as_of=T0 + timedelta(days=20), run_id="perf-2")
    assert (rows[0]["version_before"], rows[0]["version_after"]) == (v1, v2)
    assert rows[0]["before_value"] == 0.31 and rows[0]["after_value"] == 0.42 and rows[0]["improved"] is True
    assert _q(db, "SELECT count(*) AS n FROM feedback_loop_metrics")[0]["n"] == 1
    stats = {r["rule_name"]: r for r in feedback.rule_stats(db)}
    assert stats["drift_full_retrain"]["fired"] == 1 and stats["drift_full_retrain"]["precision"] == 1.0
    assert stats["age_full_retrain"]["fired"] == 0 and stats["age_full_retrain"]["precision"] is None


def _feedback(db) -> list[dict]:
    return _q(
        db,
        "SELECT trigger_id, before_value, after_value, n_after, improved, evaluated_at, run_id "
        "FROM feedback_loop_metrics ORDER BY trigger_id",
    )


def test_feedback_is_written_once_for_its_own_period_whatever_the_order_of_runs(db, tmp_path):
    """Issue 12, defect 9: later performance runs rewrote a trigger's feedback (value and evaluated_at)."""
    v1, v2 = _retrain_to_v2(db, tmp_path, reason="gates passed")
    _perf_row(db, v1, T0, date(2008, 7, 1), 0.31, 120)
    _perf_row(db, v2, T0 + timedelta(days=20), date(2008, 10, 2), 0.42, 40)
    _perf_row(db, v2, T0 + timedelta(days=30), date(2008, 10, 2), 0.25, 80)
    # runs in time order: the window ending day 20 completes the period
    feedback.update_feedback(db, as_of=T0 + timedelta(days=20), run_id="perf-20")
    first = _feedback(db)
    assert [(r["after_value"], r["n_after"], r["evaluated_at"]) for r in first] == [(0.42, 40, T0 + timedelta(days=20))]
    # a later run changes nothing
    assert feedback.update_feedback(db, as_of=T0 + timedelta(days=30), run_id="perf-30") == []
    assert _feedback(db) == first
    # the later window run first (e.g. a catch-up out of order): the same row
    with storage.transaction(db) as cur:
        cur.execute("DELETE FROM feedback_loop_metrics")
    feedback.update_feedback(db, as_of=T0 + timedelta(days=30), run_id="perf-20")
    assert _feedback(db) == first


def test_feedback_row_is_the_same_when_the_later_window_ran_first(db, tmp_path):
    """Issue 12, defect 9: a catch-up that ran the day-30 performance window before the day-20 one kept the
    day-30 snapshot as the trigger's feedback forever; the rule is the first snapshot with >= 20 outcomes."""
    v1, v2 = _retrain_to_v2(db, tmp_path, reason="gates passed")
    _perf_row(db, v1, T0, date(2008, 7, 1), 0.31, 120)
    day20, day30 = T0 + timedelta(days=20), T0 + timedelta(days=30)

    def run(order: list[datetime]) -> list[dict]:
        with storage.transaction(db) as cur:
            cur.execute("DELETE FROM feedback_loop_metrics")
            cur.execute("DELETE FROM live_performance_daily WHERE model_version = %(v)s", {"v": v2})
        snapshots = {day20: (0.42, 40), day30: (0.25, 80)}
        for end in order:  # each performance window writes its snapshot, then the feedback
            _perf_row(db, v2, end, date(2008, 10, 2), *snapshots[end])
            feedback.update_feedback(db, as_of=end, run_id=f"perf-{(end - T0).days}")
        return _feedback(db)

    in_order = run([day20, day30])
    assert [(r["after_value"], r["n_after"], r["improved"], r["evaluated_at"], r["run_id"]) for r in in_order] == [
        (0.42, 40, True, day20, "perf-20")
    ]
    assert run([day30, day20]) == in_order
    # and a later re-run of the day-30 window changes nothing
    assert feedback.update_feedback(db, as_of=day30, run_id="perf-30-rerun") == []
    assert _feedback(db) == in_order


def test_feedback_before_value_written_late_by_an_older_window_corrects_the_row(db, tmp_path):
    """The champion's snapshot before the retrain is written by a window that ends before the completion;
    if that window runs after the feedback row exists, its own run still corrects the row."""
    v1, v2 = _retrain_to_v2(db, tmp_path, reason="gates passed")
    day20 = T0 + timedelta(days=20)
    _perf_row(db, v2, day20, date(2008, 10, 2), 0.42, 40)
    feedback.update_feedback(db, as_of=day20, run_id="perf-20")
    assert [(r["before_value"], r["improved"]) for r in _feedback(db)] == [(None, None)]
    _perf_row(db, v1, T0, date(2008, 7, 1), 0.31, 120)
    rows = feedback.update_feedback(db, as_of=T0, run_id="perf-0")
    assert [(r["before_value"], r["n_before"], r["after_value"], r["improved"]) for r in rows] == [
        (0.31, 120, 0.42, True)
    ]
    assert [(r["before_value"], r["improved"], r["evaluated_at"]) for r in _feedback(db)] == [(0.31, True, day20)]


def test_feedback_of_a_challenger_deployment_keeps_the_champion(db, tmp_path):
    """A candidate deployed as challenger serves no live traffic: the retrain is
    judged on the champion, which did not change (so: not improved)."""
    v1, v2 = _retrain_to_v2(db, tmp_path, reason="A/B test", alias="challenger", outcome="deployed as challenger")
    _perf_row(db, v1, T0, date(2008, 7, 1), 0.31, 120)
    _perf_row(db, v2, T0 + timedelta(days=20), date(2008, 10, 2), 0.42, 40)
    rows = feedback.update_feedback(db, as_of=T0 + timedelta(days=20), run_id="perf-1")
    assert (rows[0]["version_before"], rows[0]["version_after"]) == (v1, v1)
    assert rows[0]["outcome"] == "deployed as challenger" and rows[0]["after_value"] is None
    assert rows[0]["improved"] is False and registry.resolve_alias(db, "m", registry.CHAMPION) == v1


@pytest.mark.parametrize(
    "run_type,claims_age_trigger", [("scheduled", True), ("asset_triggered", False), ("manual", False)]
)
def test_only_the_scheduled_retrain_run_evaluates_the_age_rule(db, tmp_path, run_type, claims_age_trigger):
    """retrain_gated's claim step, run as the 02:00 schedule would run it (the age rule is time-based)."""
    from types import SimpleNamespace

    from include.tasks import retrain as retrain_tasks

    _champion(db, tmp_path, train_end=date(2007, 8, 1))
    ctx = {"dag_run": SimpleNamespace(conf={}, run_after=T0, run_type=run_type), "run_id": f"{run_type}__x"}
    claimed = retrain_tasks.claim(ctx)
    if claims_age_trigger:
        assert (claimed["trigger_type"], claimed["retrain_mode"], claimed["priority"]) == ("age", "full", "low")
        assert claimed["claimed_by"] == "scheduled__x" and "model_age_days 427 > threshold 365" in claimed["reason"]
    else:
        assert claimed is None and _triggers(db) == []


def test_the_loop_task_log_ends_with_its_summary_line(db, tmp_path, caplog):
    """Each task log ends with a short summary, then the URL of the page that shows it: the feedback lines used
    to come after the last decision lines, and the closing line had no ``summary:`` marker."""
    import logging

    from include.tasks import loop as loop_tasks

    v1, v2 = _retrain_to_v2(db, tmp_path, reason="gates passed")
    _perf_row(db, v1, T0, date(2008, 7, 1), 0.31, 120)
    end = T0 + timedelta(days=20)
    _perf_row(db, v2, end, date(2008, 10, 2), 0.42, 40)
    ctx = {"params": {"window_start": (end - timedelta(days=1)).isoformat(), "window_end": end.isoformat()}}
    with caplog.at_level(logging.INFO, logger=loop_tasks.__name__):
        result = loop_tasks.respond("performance", {**ctx, "run_id": "perf-20"})
    lines = [r.getMessage() for r in caplog.records if r.name == loop_tasks.__name__]
    assert result["feedback_rows"] == 1 and any(line.startswith("feedback: trigger 1 ") for line in lines)
    assert lines[-2].startswith("summary: closed loop (performance, window 2008-10-20T00:00:00+00:00 .. ")
    assert "1 feedback row(s) written or corrected" in lines[-2]
    assert lines[-1] == "ModelWatch page (alerts and triggers): http://localhost:8080/modelwatch/alerts-and-triggers"
