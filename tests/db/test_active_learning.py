"""The active-learning queue on the embedded PostgreSQL: capture at scoring (idempotent per window, re-linked after
a re-score), answering (every transition checked by PostgreSQL), outcomes and expiry on the data's clock, the labels
a retrain uses, statistics, settings, the ``new_labels`` response rule and the ``label`` CLI."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from include.modelwatch import registry
from include.modelwatch.active_learning import store
from include.modelwatch.active_learning.band import BandSettings, SettingsError
from include.modelwatch.data import signals, storage
from include.modelwatch.loop import responses
from include.modelwatch.ops import cli
from include.modelwatch.training import retrain

W0 = datetime(2008, 10, 1, tzinfo=UTC)
W1 = datetime(2008, 10, 11, tzinfo=UTC)
AT = datetime(2008, 10, 20, 9, 30, tzinfo=UTC)

#: one window's class probabilities per session, with the priority the default bands give them
PROBS: dict[date, tuple[dict[str, float], int]] = {
    date(2008, 10, 1): ({"SELL": 0.0, "HOLD": 0.48, "BUY": 0.52}, 3),  # 0.52: the priority-3 edge
    date(2008, 10, 2): ({"SELL": 0.53, "HOLD": 0.47, "BUY": 0.0}, 2),  # 0.53
    date(2008, 10, 3): ({"SELL": 0.0, "HOLD": 0.55, "BUY": 0.45}, 1),  # 0.55: the band's edge
    date(2008, 10, 6): ({"SELL": 0.1, "HOLD": 0.3, "BUY": 0.6}, 0),  # 0.667
    date(2008, 10, 7): ({"SELL": 0.2, "HOLD": 0.35, "BUY": 0.45}, 0),  # 0.5625
    date(2008, 10, 8): ({"SELL": 0.3, "HOLD": 0.33, "BUY": 0.37}, 2),  # 0.5286: three classes, top two count
    date(2008, 10, 9): ({"SELL": 0.34, "HOLD": 0.32, "BUY": 0.34}, 3),  # a tie: 0.5
    date(2008, 10, 10): ({"SELL": 0.05, "HOLD": 0.4, "BUY": 0.55}, 0),  # 0.579
}
IN_BAND = {d: p for d, (_, p) in PROBS.items() if p}


def _version(db, tmp_path, model="m", payload=b"v1") -> int:
    return registry.register_version(
        db,
        model_name=model,
        algorithm="lightgbm",
        artifact=payload,
        artifact_dir=tmp_path,
        features=["f1", "f2"],
        classes=["SELL", "HOLD", "BUY"],
        train_end=date(2008, 6, 30),
    ).version


def _rows(probs_by_day: dict[date, dict[str, float]]) -> list[dict[str, Any]]:
    return [
        {
            "ts": signals.bar_ts(d),
            "features": {"f1": round(0.1 * i, 1), "f2": None if i == 0 else 1.5},
            "predicted_label": max(p, key=lambda k: p[k]),
            "probabilities": p,
            "confidence": max(p.values()),
        }
        for i, (d, p) in enumerate(probs_by_day.items())
    ]


def _score(
    db,
    probs_by_day: dict[date, dict[str, float]] | None = None,
    *,
    version=1,
    symbol="SPX",
    model="m",
    start=W0,
    end=W1,
    run_id="r1",
    settings: BandSettings | None = None,
) -> dict[int, int]:
    """What score_symbol does: the window's predictions replaced, then captured, in one transaction."""
    probs = probs_by_day if probs_by_day is not None else {d: p for d, (p, _) in PROBS.items()}
    band = settings or store.settings_for(db, model)
    with storage.transaction(db) as cur:
        signals.replace_predictions(
            cur,
            model_name=model,
            model_version=version,
            symbol=symbol,
            timeframe="1d",
            window_start=start,
            window_end=end,
            rows=_rows(probs),
            run_id=run_id,
        )
        return store.capture(
            cur,
            model_name=model,
            model_version=version,
            symbol=symbol,
            window_start=start,
            window_end=end,
            settings=band,
            run_id=run_id,
        )


def _q(db, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with db.cursor() as cur:
        cur.execute(sql, params)
        cols = [d[0] for d in cur.description]
        out = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    db.rollback()
    return out


def _queue(db) -> dict[date, dict[str, Any]]:
    rows = _q(db, "SELECT q.*, (q.ts AT TIME ZONE 'UTC')::date AS day FROM active_learning_queue q ORDER BY ts")
    return {r["day"]: r for r in rows}


def _prediction_ids(db, version=1, symbol="SPX") -> dict[date, int]:
    rows = _q(
        db,
        "SELECT (ts AT TIME ZONE 'UTC')::date AS day, prediction_id FROM predictions "
        "WHERE model_name = 'm' AND model_version = %s AND symbol = %s",
        (version, symbol),
    )
    return {r["day"]: r["prediction_id"] for r in rows}


def _item_on(db, day: date) -> int:
    return int(_queue(db)[day]["item_id"])


# --------------------------------------------------------------------------- capture


def test_capture_queues_only_in_band_predictions_with_their_priority(db, tmp_path):
    _version(db, tmp_path)
    counts = _score(db)
    assert counts == {3: 2, 2: 2, 1: 1}
    q = _queue(db)
    assert {d: r["priority"] for d, r in q.items()} == IN_BAND
    pids = _prediction_ids(db)
    for d, r in q.items():
        probs = PROBS[d][0]
        top = sorted(probs.values(), reverse=True)
        assert r["confidence"] == pytest.approx(top[0] / (top[0] + top[1]))
        assert (r["status"], r["prediction_id"], r["probabilities"], r["captured_run_id"]) == (
            "pending",
            pids[d],
            probs,
            "r1",
        )
        assert r["predicted_label"] == max(probs, key=lambda k: probs[k]) and r["model_version"] == 1
        assert r["manual_label"] is None and r["labelled_by"] is None and r["realized_label"] is None
    assert q[date(2008, 10, 1)]["features"] == {"f1": 0.0, "f2": None}  # the scored snapshot, NaN as null
    assert q[date(2008, 10, 8)]["confidence"] == pytest.approx(0.37 / 0.70)
    assert q[date(2008, 10, 9)]["confidence"] == 0.5
    # pick: priority first, then age
    assert [(it.ts.date(), it.priority) for it in store.pick(db, "m")] == [
        (date(2008, 10, 1), 3),
        (date(2008, 10, 9), 3),
        (date(2008, 10, 2), 2),
        (date(2008, 10, 8), 2),
        (date(2008, 10, 3), 1),
    ]
    assert len(store.pick(db, "m", 2)) == 2
    with pytest.raises(store.LabelError, match="m: the number of items to label must be >= 1, got 0"):
        store.pick(db, "m", 0)


def test_capture_is_per_version_and_symbol_and_a_disabled_model_captures_nothing(db, tmp_path):
    _version(db, tmp_path)
    _version(db, tmp_path, payload=b"v2")
    _score(db, {date(2008, 10, 1): PROBS[date(2008, 10, 1)][0]}, symbol="NDX")
    _score(db, {date(2008, 10, 2): PROBS[date(2008, 10, 2)][0]}, version=2)
    assert {(r["symbol"], r["model_version"], r["day"]) for r in _queue(db).values()} == {
        ("NDX", 1, date(2008, 10, 1)),
        ("SPX", 2, date(2008, 10, 2)),
    }
    off = BandSettings(enabled=False)
    assert _score(db, settings=off) == {}
    assert len(_q(db, "SELECT 1 FROM active_learning_queue")) == 2  # its items stay, none added


def test_recapture_after_the_window_was_scored_again_adds_no_duplicates_and_relinks(db, tmp_path):
    _version(db, tmp_path)
    _score(db)
    labelled_day, skipped_day, pending_day = date(2008, 10, 1), date(2008, 10, 2), date(2008, 10, 8)
    store.label(db, _item_on(db, labelled_day), "SELL", by="alice", at=AT, note="looks weak")
    store.skip(db, _item_on(db, skipped_day), by="bob", at=AT)
    before = _queue(db)
    # the same scores again through replace_predictions (prediction ids stable): nothing changes
    assert _score(db, run_id="r2") == {3: 2, 2: 2, 1: 1}
    again = _queue(db)
    assert {d: r["item_id"] for d, r in again.items()} == {d: r["item_id"] for d, r in before.items()}
    pids = _prediction_ids(db)
    assert {d: r["prediction_id"] for d, r in again.items()} == {d: pids[d] for d in again}
    # the window deleted and written anew (new prediction ids) with other numbers:
    # the labelled bar is now out of band, the pending one at another priority
    old_ids = _prediction_ids(db)
    with storage.transaction(db) as cur:
        cur.execute("DELETE FROM predictions WHERE model_name = 'm'")
    unlinked = _queue(db)
    assert all(r["prediction_id"] is None for r in unlinked.values())  # ON DELETE SET NULL, items kept
    assert unlinked[labelled_day]["status"] == "labelled"  # the FK's update passes the transition trigger
    rescored = {d: p for d, (p, _) in PROBS.items()}
    rescored[labelled_day] = {"SELL": 0.1, "HOLD": 0.2, "BUY": 0.7}  # out of band now
    rescored[pending_day] = {"SELL": 0.0, "HOLD": 0.455, "BUY": 0.545}  # 0.545: priority 1 now
    assert _score(db, rescored, run_id="r3") == {3: 1, 2: 1, 1: 2}
    after = _queue(db)
    new_ids = _prediction_ids(db)
    assert not set(new_ids.values()) & set(old_ids.values())
    assert {d: r["item_id"] for d, r in after.items()} == {d: r["item_id"] for d, r in before.items()}
    assert len(_q(db, "SELECT 1 FROM active_learning_queue")) == len(IN_BAND)  # no duplicate
    # every item re-linked to its bar's new prediction, the out-of-band labelled one too
    assert {d: r["prediction_id"] for d, r in after.items()} == {d: new_ids[d] for d in after}
    lab = after[labelled_day]  # what the person saw and answered is kept
    assert (lab["status"], lab["manual_label"], lab["labelled_by"], lab["notes"]) == (
        "labelled",
        "SELL",
        "alice",
        "looks weak",
    )
    assert lab["probabilities"] == PROBS[labelled_day][0] and lab["priority"] == 3
    assert lab["confidence"] == pytest.approx(0.52) and lab["predicted_label"] == "BUY"
    assert (after[skipped_day]["status"], after[skipped_day]["labelled_by"]) == ("skipped", "bob")
    pend = after[pending_day]  # a pending item takes the new scores
    assert (pend["priority"], pend["probabilities"], pend["captured_run_id"]) == (1, rescored[pending_day], "r3")
    assert pend["confidence"] == pytest.approx(0.545)


def test_a_narrower_band_removes_out_of_band_pending_items_only(db, tmp_path):
    _version(db, tmp_path)
    _score(db)
    store.label(db, _item_on(db, date(2008, 10, 3)), "HOLD", by="alice", at=AT)  # 0.55, labelled
    new = store.set_settings(
        db, "m", {"band_max": "0.525", "priority2_max": "0.51", "priority3_max": "0.505"}, by="ops", at=AT
    )
    assert _score(db, settings=new, run_id="r2") == {3: 1, 1: 1}
    q = _queue(db)
    # 0.5 -> 3, 0.52 -> 1 (between 0.51 and 0.525); 0.53 and 0.5286 pending and out: removed; 0.55 labelled: kept
    assert {d: (r["priority"], r["status"]) for d, r in q.items()} == {
        date(2008, 10, 1): (1, "pending"),
        date(2008, 10, 3): (1, "labelled"),
        date(2008, 10, 9): (3, "pending"),
    }


# --------------------------------------------------------------------------- answering


def test_label_and_skip_transitions_and_what_is_refused(db, tmp_path):
    _version(db, tmp_path)
    _score(db)
    a, b, c = (_item_on(db, d) for d in (date(2008, 10, 1), date(2008, 10, 2), date(2008, 10, 3)))
    it = store.label(db, a, " buy ", by=" alice ", at=AT, note="after the crash")
    assert (it.status, it.manual_label, it.labelled_by, it.labelled_at, it.notes) == (
        "labelled",
        "BUY",
        "alice",
        AT,
        "after the crash",
    )
    assert store.get_item(db, a) == it
    assert it.label == f"item {a} (m v1 SPX 2008-10-01)"
    sk = store.skip(db, b, by="bob", at=AT + timedelta(hours=1), note="no idea")
    assert (sk.status, sk.manual_label, sk.labelled_by, sk.notes) == ("skipped", None, "bob", "no idea")
    twice = (
        f"item {a} (m v1 SPX 2008-10-01) is labelled (BUY by alice at 2008-10-20 09:30 UTC): "
        "only a pending item can be labelled or skipped"
    )
    bad_label = f"item {c}: label must be one of ['BUY', 'SELL', 'HOLD'], got 'STRONG BUY'"
    refused = [
        (lambda: store.label(db, a, "SELL", by="carol", at=AT), re.escape(twice)),
        (lambda: store.skip(db, a, by="carol", at=AT), re.escape("is labelled (BUY by alice")),
        (
            lambda: store.label(db, b, "BUY", by="carol", at=AT),
            f"item {b} .* is skipped " + re.escape("(skipped by bob at 2008-10-20 10:30 UTC)"),
        ),
        (lambda: store.label(db, 999, "BUY", by="carol", at=AT), "no active-learning item 999"),
        (lambda: store.skip(db, 999, by="carol", at=AT), "no active-learning item 999"),
        (lambda: store.get_item(db, 999), "no active-learning item 999"),
        (lambda: store.label(db, c, "STRONG BUY", by="carol", at=AT), re.escape(bad_label)),
        (lambda: store.label(db, c, "BUY", by="  ", at=AT), f"item {c}: who answers is required"),
    ]
    for call, message in refused:
        with pytest.raises(store.LabelError, match=message):
            call()
    assert store.get_item(db, c).status == "pending"  # nothing changed by the refusals
    # expired and processed items are refused too
    with storage.transaction(db) as cur:
        cur.execute("UPDATE active_learning_queue SET status = 'expired' WHERE item_id = %s", (c,))
    with pytest.raises(store.LabelError, match=f"item {c} .* is expired: only a pending item"):
        store.label(db, c, "BUY", by="carol", at=AT)
    tid = _trigger(db)
    retrain.record_dataset(
        db,
        trigger_id=tid,
        model_name="m",
        fingerprint="fp",
        date_start=date(2008, 1, 1),
        date_end=date(2008, 10, 31),
        rows_per_class={"BUY": 1},
        human_label_items=[a],
        processed_at=AT,
    )
    with pytest.raises(store.LabelError, match=f"item {a} .* is processed \\(BUY by alice"):
        store.skip(db, a, by="carol", at=AT)
    assert [i.item_id for i in store.list_items(db, model_name="m", status="processed")] == [a]


@pytest.mark.parametrize(
    "setup,sql,message",
    [
        ("label", "UPDATE active_learning_queue SET status = 'pending', manual_label = NULL, labelled_by = NULL, "
         "labelled_at = NULL WHERE item_id = %(i)s", "labelled -> pending is not allowed (it was labelled by alice"),
        ("label", "UPDATE active_learning_queue SET manual_label = 'SELL' WHERE item_id = %(i)s",
         "labelled -> labelled is not allowed"),
        ("label", "UPDATE active_learning_queue SET labelled_by = 'mallory' WHERE item_id = %(i)s",
         "labelled -> labelled is not allowed"),
        ("label", "UPDATE active_learning_queue SET status = 'skipped', manual_label = NULL WHERE item_id = %(i)s",
         "labelled -> skipped is not allowed"),
        ("skip", "UPDATE active_learning_queue SET status = 'labelled', manual_label = 'BUY' WHERE item_id = %(i)s",
         "skipped -> labelled is not allowed (it was skipped by alice"),
        ("expire", "UPDATE active_learning_queue SET status = 'pending', expired_at = NULL WHERE item_id = %(i)s",
         "expired -> pending is not allowed (it was expired by nobody"),
        ("expire", "UPDATE active_learning_queue SET status = 'labelled', manual_label = 'BUY', labelled_by = 'x', "
         "labelled_at = now() WHERE item_id = %(i)s", "expired -> labelled is not allowed"),
        ("none", "UPDATE active_learning_queue SET status = 'processed', training_dataset_id = NULL "
         "WHERE item_id = %(i)s", "pending -> processed is not allowed"),
        # the CHECKs: a label exactly on labelled and processed items, who and when on answered ones
        ("none", "UPDATE active_learning_queue SET manual_label = 'BUY' WHERE item_id = %(i)s",
         "active_learning_queue_check"),
        ("none", "UPDATE active_learning_queue SET status = 'labelled', manual_label = 'BUY' WHERE item_id = %(i)s",
         "active_learning_queue_check"),
        ("none", "UPDATE active_learning_queue SET status = 'skipped', labelled_by = 'x' WHERE item_id = %(i)s",
         "active_learning_queue_check"),
        ("none", "UPDATE active_learning_queue SET status = 'done' WHERE item_id = %(i)s",
         "pending -> done is not allowed"),  # the trigger runs before the status CHECK
        ("none", "UPDATE active_learning_queue SET confidence = 0.4 WHERE item_id = %(i)s",
         "active_learning_queue_confidence_check"),
        ("none", "UPDATE active_learning_queue SET priority = 4 WHERE item_id = %(i)s",
         "active_learning_queue_priority_check"),
    ],
)  # fmt: skip
def test_postgresql_refuses_illegal_writes_in_raw_sql(db, tmp_path, setup, sql, message):
    _version(db, tmp_path)
    _score(db)
    i = _item_on(db, date(2008, 10, 1))
    if setup == "label":
        store.label(db, i, "BUY", by="alice", at=AT)
    elif setup == "skip":
        store.skip(db, i, by="alice", at=AT)
    elif setup == "expire":
        with storage.transaction(db) as cur:
            cur.execute(
                "UPDATE active_learning_queue SET status = 'expired', expired_at = now() WHERE item_id = %s", (i,)
            )
    before = store.get_item(db, i)
    db.rollback()
    with pytest.raises(psycopg.errors.CheckViolation, match=re.escape(message)):
        with storage.transaction(db) as cur:
            cur.execute(sql, {"i": i})
    assert store.get_item(db, i) == before


def test_postgresql_allows_outcome_and_link_updates_of_answered_items(db, tmp_path):
    _version(db, tmp_path)
    _score(db)
    i = _item_on(db, date(2008, 10, 1))
    store.label(db, i, "BUY", by="alice", at=AT)
    with storage.transaction(db) as cur:
        cur.execute(
            "UPDATE active_learning_queue SET realized_label = 'SELL', realized_return = -0.02, notes = 'n' "
            "WHERE item_id = %s",
            (i,),
        )
    it = store.get_item(db, i)
    assert (it.status, it.manual_label, it.realized_label, it.realized_return, it.notes) == (
        "labelled",
        "BUY",
        "SELL",
        -0.02,
        "n",
    )


# --------------------------------------------------------------------------- outcomes and expiry


def _outcome(db, day: date, label: str, ret: float, version=1, symbol="SPX") -> None:
    pid = _prediction_ids(db, version, symbol)[day]
    with storage.transaction(db) as cur:
        signals.upsert_outcomes(
            cur,
            [
                {
                    "prediction_id": pid,
                    "realized_return": ret,
                    "realized_label": label,
                    "r_multiple": 0.0,
                    "horizon_days": 5,
                    "matured_at": signals.bar_ts(day + timedelta(days=7)),
                    "run_id": "o1",
                }
            ],
        )


def test_refresh_sets_realized_outcomes_and_expires_on_the_datas_clock(db, tmp_path):
    _version(db, tmp_path)
    # an old window: its bars lie 90 days and more behind the newest prediction (2008-10-10)
    old = {date(2008, 7, 11): PROBS[date(2008, 10, 1)][0], date(2008, 7, 12): PROBS[date(2008, 10, 2)][0]}
    old_label = {date(2008, 7, 10): PROBS[date(2008, 10, 3)][0]}
    _score(db, {**old_label, **old}, start=datetime(2008, 7, 1, tzinfo=UTC), end=datetime(2008, 7, 13, tzinfo=UTC))
    store.label(db, _item_on(db, date(2008, 7, 10)), "BUY", by="alice", at=AT)  # old but answered: never expires
    assert store.refresh(db, "m") == {"outcomes": 0, "expired": 0}  # the model's newest bar is 2008-07-12
    _score(db)
    _outcome(db, date(2008, 10, 1), "SELL", -0.031)
    _outcome(db, date(2008, 10, 6), "BUY", 0.02)  # an out-of-band prediction: no item
    _outcome(db, date(2008, 7, 10), "BUY", 0.015)
    assert store.refresh(db, "m") == {"outcomes": 2, "expired": 1}
    q = _queue(db)
    # 2008-07-11 21:00 is more than 90 days before 2008-10-10 21:00; 2008-07-12 21:00 exactly 90 days: stays
    assert q[date(2008, 7, 11)]["status"] == "expired"
    assert q[date(2008, 7, 11)]["expired_at"] == signals.bar_ts(date(2008, 10, 10))
    assert q[date(2008, 7, 12)]["status"] == "pending"
    assert q[date(2008, 7, 10)]["status"] == "labelled"
    assert (q[date(2008, 10, 1)]["realized_label"], q[date(2008, 10, 1)]["realized_return"]) == ("SELL", -0.031)
    assert (q[date(2008, 7, 10)]["realized_label"], q[date(2008, 7, 10)]["realized_return"]) == ("BUY", 0.015)
    assert all(r["realized_label"] is None for d, r in q.items() if d not in (date(2008, 10, 1), date(2008, 7, 10)))
    # idempotent; a corrected outcome (same label, other return) is taken; a shorter expiry expires more
    assert store.refresh(db, "m") == {"outcomes": 0, "expired": 0}
    _outcome(db, date(2008, 10, 1), "SELL", -0.029)
    store.set_settings(db, "m", {"expire_after_days": "5"}, by="ops", at=AT)
    assert store.refresh(db, "m") == {"outcomes": 1, "expired": 4}
    q = _queue(db)
    assert q[date(2008, 10, 1)]["realized_return"] == -0.029
    # newest 2008-10-10 21:00 - 5 days = 2008-10-05 21:00: pending 10-01, 10-02, 10-03 and 07-12 are behind it
    assert {d for d, r in q.items() if r["status"] == "expired"} == {
        date(2008, 7, 11),
        date(2008, 7, 12),
        date(2008, 10, 1),
        date(2008, 10, 2),
        date(2008, 10, 3),
    }
    with pytest.raises(store.LabelError, match="is expired"):
        store.label(db, _item_on(db, date(2008, 10, 2)), "BUY", by="alice", at=AT)


# --------------------------------------------------------------------------- retraining


def _trigger(db, model="m", at=W1) -> int:
    with storage.transaction(db) as cur:
        cur.execute(
            "INSERT INTO retraining_triggers (model_name, model_version, trigger_type, retrain_mode, priority, "
            "rule_name, reason, status, window_start, window_end, triggered_at) VALUES (%s, 1, 'active_learning', "
            "'full', 'medium', 'active_learning_retrain', 'new_labels 50 >= 50', 'pending', %s, %s, %s) "
            "RETURNING trigger_id",
            (model, at, at, at),
        )
        return int(cur.fetchone()[0])


def _finish(db, tid: int) -> None:
    with storage.transaction(db) as cur:
        cur.execute("UPDATE retraining_triggers SET status = 'done' WHERE trigger_id = %s", (tid,))


def test_training_labels_and_processed_items_through_record_dataset(db, tmp_path):
    _version(db, tmp_path)
    _score(db)
    days = [date(2008, 10, 1), date(2008, 10, 2), date(2008, 10, 3), date(2008, 10, 8)]
    ids = [_item_on(db, d) for d in days]
    # labelled in another order than the bars: the answers come in the order they were given
    for k, (i, lab) in enumerate(zip([ids[2], ids[0], ids[3]], ["HOLD", "BUY", "SELL"], strict=True)):
        store.label(db, i, lab, by="alice", at=AT + timedelta(minutes=k))
    store.skip(db, ids[1], by="alice", at=AT)
    tid = _trigger(db)
    got = store.training_labels(db, "m", date(2008, 10, 1), date(2008, 10, 3))
    db.rollback()
    assert got == [  # 10-08 is outside the sessions; the skipped item has no label
        {"item_id": ids[2], "symbol": "SPX", "date": date(2008, 10, 3), "manual_label": "HOLD"},
        {"item_id": ids[0], "symbol": "SPX", "date": date(2008, 10, 1), "manual_label": "BUY"},
    ]
    used = [g["item_id"] for g in got]
    # processed_at is required with human labels: refused and nothing written
    with pytest.raises(ValueError, match=f"m trigger {tid}: processed_at is required with human labels"):
        retrain.record_dataset(
            db,
            trigger_id=tid,
            model_name="m",
            fingerprint="fp1",
            date_start=date(2008, 1, 1),
            date_end=date(2008, 10, 3),
            rows_per_class={"BUY": 3, "SELL": 2},
            human_label_items=used,
        )
    assert _q(db, "SELECT * FROM training_datasets") == []
    ds = retrain.record_dataset(
        db,
        trigger_id=tid,
        model_name="m",
        fingerprint="fp1",
        date_start=date(2008, 1, 1),
        date_end=date(2008, 10, 3),
        rows_per_class={"BUY": 3, "SELL": 2},
        human_label_items=used,
        processed_at=W1,
    )
    assert _q(db, "SELECT human_labels FROM training_datasets WHERE dataset_id = %s", (ds,)) == [{"human_labels": 2}]
    for i in used:
        it = store.get_item(db, i)
        assert (it.status, it.training_dataset_id, it.manual_label) == ("processed", ds, {ids[2]: "HOLD"}.get(i, "BUY"))
    assert _q(db, "SELECT processed_at FROM active_learning_queue WHERE item_id = %s", (used[0],)) == [
        {"processed_at": W1}
    ]
    assert store.get_item(db, ids[3]).status == "labelled"  # not used: left for a later retrain
    # a re-run of the same trigger sees the same items (processed by its dataset), and re-records the same id
    again = store.training_labels(db, "m", date(2008, 10, 1), date(2008, 10, 3))
    db.rollback()
    assert again == got
    assert (
        retrain.record_dataset(
            db,
            trigger_id=tid,
            model_name="m",
            fingerprint="fp1",
            date_start=date(2008, 1, 1),
            date_end=date(2008, 10, 3),
            rows_per_class={"BUY": 3, "SELL": 2},
            human_label_items=used,
            processed_at=W1,
        )
        == ds
    )
    assert {store.get_item(db, i).training_dataset_id for i in used} == {ds}
    # a label is a permanent fact: a later retrain over those sessions uses the processed ones again, plus 10-08;
    # with item_ids, exactly the items a training set recorded
    _finish(db, tid)
    later = store.training_labels(db, "m", date(2008, 10, 1), date(2008, 10, 31))
    db.rollback()
    assert [g["item_id"] for g in later] == [ids[2], ids[0], ids[3]]
    assert store.training_labels(db, "m", date(2008, 10, 1), date(2008, 10, 31), item_ids=[ids[3]]) == [later[2]]
    assert store.training_labels(db, "m", date(2008, 10, 1), date(2008, 10, 31), item_ids=[]) == []
    db.rollback()
    with storage.transaction(db) as cur:
        assert store.mark_processed(cur, [], ds, W1) == 0
        assert store.mark_processed(cur, [ids[0], ids[1]], ds, W1) == 0  # processed and skipped: untouched


# --------------------------------------------------------------------------- statistics


def test_queue_counts_and_agreement_per_labeller_against_the_model(db, tmp_path):
    _version(db, tmp_path)
    _score(db)
    d1, d2, d3, d8, d9 = (date(2008, 10, d) for d in (1, 2, 3, 8, 9))
    # predicted: 10-01 BUY, 10-02 SELL, 10-03 HOLD, 10-08 BUY, 10-09 SELL; realized below
    store.label(db, _item_on(db, d1), "SELL", by="alice", at=AT - timedelta(days=10))  # right (model wrong)
    store.label(db, _item_on(db, d2), "SELL", by="alice", at=AT)  # right (model right)
    store.label(db, _item_on(db, d3), "BUY", by="bob", at=AT)  # wrong (model right)
    store.label(db, _item_on(db, d8), "HOLD", by="bob", at=AT + timedelta(days=1))  # wrong (model right)
    store.skip(db, _item_on(db, d9), by="bob", at=AT + timedelta(days=2))
    for d, lab in ((d1, "SELL"), (d2, "SELL"), (d3, "HOLD"), (d8, "BUY")):
        _outcome(db, d, lab, 0.01)
    store.refresh(db, "m")
    agree = store.agreement(db, "m")
    db.rollback()
    assert agree == [
        {"labelled_by": "alice", "items": 2, "human_agreement": 1.0, "model_agreement": 0.5},
        {"labelled_by": "bob", "items": 2, "human_agreement": 0.0, "model_agreement": 1.0},  # worse than the model
        {"labelled_by": None, "items": 4, "human_agreement": 0.5, "model_agreement": 0.75},
    ]
    counts = store.queue_counts(db)
    db.rollback()
    assert counts == [
        {
            "model_name": "m",
            "pending": 0,
            "labelled": 4,
            "skipped": 1,
            "processed": 0,
            "expired": 0,
            "oldest_pending": None,
            "last_answer": AT + timedelta(days=2),
            "answered_7d": 4,  # the answer 12 days before the last one is outside the week
        }
    ]
    assert store.queue_counts(db, "other") == [] and store.agreement(db, "other") == []


# --------------------------------------------------------------------------- settings


def test_set_settings_validates_all_or_nothing(db, tmp_path):
    _version(db, tmp_path)
    assert store.settings_for(db, "m") == BandSettings()
    with pytest.raises(SettingsError, match="unknown model 'nope'"):
        store.set_settings(db, "nope", {"batch_size": "5"}, by="ops", at=AT)
    with pytest.raises(SettingsError, match="a model name is required"):
        store.set_settings(db, " ", {"batch_size": "5"}, by="ops", at=AT)
    for bad, message in (
        ({"batch_size": "5", "band_max": "0.4"}, "m: band bounds must satisfy"),
        ({"batch_size": "5", "colour": "red"}, r"unknown setting\(s\) \['colour'\]"),
        ({"label_weight": "heavy"}, "label_weight='heavy' is not a valid float"),
    ):
        with pytest.raises(SettingsError, match=message):
            store.set_settings(db, "m", bad, by="ops", at=AT)
    assert _q(db, "SELECT * FROM active_learning_settings") == []  # nothing changed
    s = store.set_settings(db, "m", {"batch_size": "5", "on_disagreement": "outcome"}, by="ops", at=AT)
    assert store.settings_for(db, "m") == s == BandSettings(on_disagreement="outcome", batch_size=5)
    s2 = store.set_settings(db, "m", {"label_weight": "4"}, by="ann", at=AT + timedelta(hours=1))
    assert (s2.batch_size, s2.label_weight, s2.on_disagreement) == (5, 4.0, "outcome")  # earlier changes kept
    row = _q(db, "SELECT updated_by, updated_at, label_weight FROM active_learning_settings WHERE model_name = 'm'")
    assert row == [{"updated_by": "ann", "updated_at": AT + timedelta(hours=1), "label_weight": 4.0}]
    with pytest.raises(SettingsError, match="batch_size must be in 1..200, got 0"):
        store.set_settings(db, "m", {"batch_size": "0"}, by="ops", at=AT)
    assert store.settings_for(db, "m") == s2
    # the database holds the same bounds whoever writes
    with pytest.raises(psycopg.errors.CheckViolation):
        with storage.transaction(db) as cur:
            cur.execute("UPDATE active_learning_settings SET priority3_max = 0.6 WHERE model_name = 'm'")
    assert len(store.pick(db, "m")) == 0  # batch size 5 of an empty queue


# --------------------------------------------------------------------------- the response rule


def _label_many(db, n: int, start_day: date = date(2008, 1, 1)) -> list[int]:
    days = [start_day + timedelta(days=k) for k in range(n)]
    _score(
        db,
        {d: {"SELL": 0.0, "HOLD": 0.49, "BUY": 0.51} for d in days},
        start=signals.bar_ts(days[0]) - timedelta(hours=1),
        end=signals.bar_ts(days[-1]) + timedelta(hours=1),
    )
    ids = [_item_on(db, d) for d in days]
    for i in ids:
        store.label(db, i, "BUY", by="alice", at=AT)
    return ids


def test_new_labels_rule_fires_an_active_learning_trigger_at_50(db, tmp_path):
    v = _version(db, tmp_path)
    registry.set_alias(db, "m", "champion", v, reason="test", changed_at=W0)
    rule = _q(db, "SELECT * FROM automated_response_rules WHERE rule_name = 'active_learning_retrain'")
    assert [(r["metric"], r["operator"], r["threshold"], r["retrain_mode"], r["priority"]) for r in rule] == [
        ("new_labels", ">=", 50.0, "full", "medium")
    ]
    ids = _label_many(db, 49)
    # too recent to train on: no retrain's training rows can hold these sessions yet
    ev = responses.evaluate(db, "m", source="labelling", as_of=W1 - timedelta(days=1), run_id="l0")
    assert [(a["action"], a["observed"]) for a in ev.actions] == [("no_change", 0.0)]
    # the model scores on (a session a day here): 135 sessions after the last label are one short of
    # store.USABLE_AFTER_SESSIONS for it; the 48 before it have their later labelled sessions too
    later = [date(2008, 6, 2) + timedelta(days=k) for k in range(store.USABLE_AFTER_SESSIONS)]
    confident = {"SELL": 0.05, "HOLD": 0.05, "BUY": 0.9}  # outside the band: nothing captured
    _score(
        db,
        {d: confident for d in later[:-1]},
        start=signals.bar_ts(later[0]),
        end=signals.bar_ts(later[-2]) + timedelta(hours=1),
    )
    assert store.USABLE_AFTER_SESSIONS == 136
    with storage.transaction(db) as cur:
        assert store.usable_new_labels(cur, "m") == 48
    _score(
        db, {later[-1]: confident}, start=signals.bar_ts(later[-1]), end=signals.bar_ts(later[-1]) + timedelta(hours=1)
    )
    ev = responses.evaluate(db, "m", source="labelling", as_of=W1, run_id="l1")
    assert [(a["action"], a["rule_name"], a["observed"]) for a in ev.actions] == [
        ("no_change", "active_learning_retrain", 49.0)
    ]
    assert ev.trigger_id is None and _q(db, "SELECT * FROM retraining_triggers") == []
    # processed labels do not count: 49 labelled + 1 processed is still 49 new labels
    one_more = _label_many(db, 1, date(2008, 3, 1))
    tid = _trigger(db)
    retrain.record_dataset(
        db,
        trigger_id=tid,
        model_name="m",
        fingerprint="fp",
        date_start=date(2008, 1, 1),
        date_end=date(2008, 3, 1),
        rows_per_class={"BUY": 1},
        human_label_items=one_more,
        processed_at=W1,
    )
    _finish(db, tid)
    ev = responses.evaluate(db, "m", source="labelling", as_of=W1 + timedelta(days=1), run_id="l2")
    assert [a["action"] for a in ev.actions] == ["no_change"] and ev.actions[0]["observed"] == 49.0
    _label_many(db, 1, date(2008, 4, 1))  # the 50th new label
    ev = responses.evaluate(db, "m", source="labelling", as_of=W1 + timedelta(days=2), run_id="l3")
    assert [(a["action"], a["observed"], a["threshold"]) for a in ev.actions] == [("fire", 50.0, 50.0)]
    trig = _q(
        db,
        "SELECT trigger_id, trigger_type, rule_name, retrain_mode, priority, status, model_version "
        "FROM retraining_triggers WHERE status = 'pending'",
    )
    assert trig == [
        {
            "trigger_id": ev.trigger_id,
            "trigger_type": "active_learning",
            "rule_name": "active_learning_retrain",
            "retrain_mode": "full",
            "priority": "medium",
            "status": "pending",
            "model_version": v,
        }
    ]
    src = _q(db, "SELECT DISTINCT source FROM closed_loop_actions WHERE model_name = 'm'")
    assert src == [{"source": "labelling"}]
    # a re-run of the same window replays its decision; no second trigger
    replay = responses.evaluate(db, "m", source="labelling", as_of=W1 + timedelta(days=2), run_id="l3-retry")
    assert replay.replayed and replay.trigger_id == ev.trigger_id
    assert len(_q(db, "SELECT 1 FROM retraining_triggers WHERE status = 'pending'")) == 1
    assert len(ids) == 49


# --------------------------------------------------------------------------- the CLI


def test_label_cli(db, tmp_path, monitoring_uri, capsys):
    _version(db, tmp_path)
    uri = ["--uri", monitoring_uri]
    assert cli.main(["label", "stats", *uri]) == 0  # an empty queue: no agreement rows, no crash
    assert capsys.readouterr().out.strip() == "the queue is empty"
    assert cli.main(["label", "list", *uri]) == 0
    assert capsys.readouterr().out.strip() == "no pending items"
    _score(db)
    a, b = _item_on(db, date(2008, 10, 1)), _item_on(db, date(2008, 10, 9))
    assert cli.main(["label", "list", *uri]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(IN_BAND)
    assert out[0].split()[:6] == [str(a), "p3", "m", "v1", "SPX", "2008-10-01"]
    assert "said BUY  conf 0.520  (BUY 0.52 HOLD 0.48 SELL 0.00)  pending" in out[0]  # jsonb's key order
    assert [line.split()[1] for line in out] == ["p3", "p3", "p2", "p2", "p1"]
    at = ["--at", "2008-10-20T09:30:00+00:00"]
    assert cli.main(["label", "set", str(a), "buy", "--by", "alice", *at, "--note", "rebound", *uri]) == 0
    assert capsys.readouterr().out.strip() == f"item {a} (m v1 SPX 2008-10-01): BUY by cli:alice"
    it = store.get_item(db, a)
    assert (it.status, it.manual_label, it.labelled_by, it.labelled_at, it.notes) == (
        "labelled",
        "BUY",
        "cli:alice",
        AT,
        "rebound",
    )
    # a second label is refused, naming who labelled it; the exit code says so
    assert cli.main(["label", "set", str(a), "SELL", "--by", "bob", *uri]) == 1
    err = capsys.readouterr().err
    assert f"error: item {a} (m v1 SPX 2008-10-01) is labelled (BUY by cli:alice at 2008-10-20 09:30 UTC)" in err
    assert store.get_item(db, a).manual_label == "BUY"
    assert cli.main(["label", "skip", str(b), "--by", "bob", *at, *uri]) == 0
    assert capsys.readouterr().out.strip() == f"item {b} (m v1 SPX 2008-10-09): skipped by cli:bob"
    assert cli.main(["label", "skip", "4242", "--by", "bob", *uri]) == 1
    assert "error: no active-learning item 4242" in capsys.readouterr().err
    assert cli.main(["label", "list", "--status", "all", "--model", "m", *uri]) == 0
    listed = capsys.readouterr().out
    assert "labelled  BUY by cli:alice" in listed and "skipped  - by cli:bob" in listed
    assert cli.main(["label", "list", "--status", "expired", *uri]) == 0
    assert capsys.readouterr().out.strip() == "no expired items"
    assert cli.main(["label", "stats", *uri]) == 0  # labelled, not matured: counts only
    assert capsys.readouterr().out.splitlines()[1:] == []
    _outcome(db, date(2008, 10, 1), "SELL", -0.01)  # alice wrong, and so is the model (BUY)
    store.refresh(db, "m")
    assert cli.main(["label", "stats", *uri]) == 0
    stats = capsys.readouterr().out.splitlines()
    assert stats[0] == (
        "m: pending 3, labelled 1, skipped 1, processed 0, expired 0; oldest pending 2008-10-02 21:00:00+00:00"
    )
    assert stats[1] == "  cli:alice: 1 matured item(s), human label = outcome 0.000, model 0.000"
    assert stats[2] == "  all labellers: 1 matured item(s), human label = outcome 0.000, model 0.000"
    # settings: show, change, refuse
    assert cli.main(["label", "settings", "m", *uri]) == 0
    assert capsys.readouterr().out.strip() == (
        "m: enabled=True, band_max=0.55, priority2_max=0.54, priority3_max=0.52, label_weight=2.0, "
        "on_disagreement=human, expire_after_days=90, batch_size=10"
    )
    assert cli.main(["label", "settings", "m", "batch_size=3", "label_weight=1.5", "--by", "ops", *uri]) == 0
    assert "label_weight=1.5" in capsys.readouterr().out and store.settings_for(db, "m").batch_size == 3
    assert cli.main(["label", "settings", "m", "band_max=0.3", "batch_size=7", *uri]) == 1
    assert "error: nothing changed: m: band bounds must satisfy" in capsys.readouterr().err
    assert cli.main(["label", "settings", "m", "batch_size", *uri]) == 1
    assert "error: nothing changed: m: batch_size='' is not a valid int" in capsys.readouterr().err
    assert cli.main(["label", "settings", "ghost", "batch_size=2", *uri]) == 1
    assert "unknown model 'ghost'" in capsys.readouterr().err
    assert store.settings_for(db, "m").batch_size == 3
    assert _q(db, "SELECT updated_by FROM active_learning_settings") == [{"updated_by": "cli:ops"}]
    with pytest.raises(SystemExit):  # argparse refuses a label outside the three classes
        cli.main(["label", "set", str(b), "MAYBE", *uri])
