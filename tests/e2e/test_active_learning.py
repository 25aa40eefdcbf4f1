"""Active learning through the real DAGs: score_signals captures the undecided predictions with their priorities,
label_queue opens one human-in-the-loop request per item and records the answers given through the same HITL path
the UI uses (with the real user), the active_learning_retrain rule writes a trigger, retrain_gated trains with the
labels (``training_datasets.human_labels``), and the items become ``processed``.

The "analyst" answering the requests follows a simple rule a person might: BUY after a rising week, SELL after a
falling one (the 5-session return before the bar), so the label/outcome agreement measured here is not built in.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pendulum

from include.modelwatch.active_learning import band, store
from include.modelwatch.data import storage
from include.modelwatch.loop import responses, rule_store
from tests.e2e import hitl
from tests.e2e.conftest import get_dag, rows, run_window

MONTHS = [("2008-01-01", "2008-02-01"), ("2008-02-01", "2008-03-01")]
#: the model scores on: the January-February labels become old enough to train on (136 sessions)
LATER = [(f"2008-{m:02d}-01", f"2008-{m + 1:02d}-01") for m in range(3, 10)]
ANALYST = {"id": "analyst-1", "name": "Ana Lyst"}
FAST = {"num_boost_round": 40, "eval_sessions": 120, "train_years": 4}
N_ITEMS = 14


def _iso(day: str) -> str:
    return f"{day}T00:00:00+00:00"


def _momentum_label(conn, item_id: int) -> str:
    """BUY after a rising week, SELL after a falling one (closes of the 6 sessions up to the bar)."""
    closes = rows(
        conn,
        "SELECT b.close FROM market_bars b JOIN active_learning_queue q ON q.symbol = b.symbol "
        "AND b.bar_date <= (q.ts AT TIME ZONE 'UTC')::date WHERE q.item_id = %s ORDER BY b.bar_date DESC LIMIT 6",
        (item_id,),
    )
    return "BUY" if closes[0]["close"] > closes[-1]["close"] else "SELL"


def _analyst(conn, stop: threading.Event, seen: list, answered: dict[int, str], timeout_index: int, skip_index: int):
    """Answer label_item requests like the UI does (:func:`tests.e2e.hitl.answer`): the momentum rule, with a
    note; ``timeout_index``: nobody answers (the deadline passes; the scheduler's sweep resumes the task with a
    timeout); ``skip_index``: Skip. ``seen`` gets each request, ``answered`` item -> choice."""

    def choose(ti, hd) -> str | None:
        item_id = _item_of(hd.body)
        if ti.map_index == timeout_index:
            return None
        answered[item_id] = "Skip" if ti.map_index == skip_index else _momentum_label(conn, item_id)
        return answered[item_id]

    hitl.answer(
        "label_queue", "label_item", choose, ANALYST, stop, seen, params=lambda c: {"notes": f"e2e: {c} by rule"}
    )


def _item_of(body: str | None) -> int:
    """The item id the request's body names ("(item 12, priority 3)")."""
    return int((body or "").split("(item ")[1].split(",")[0])


def _states(dr) -> dict[str, str]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in dr.get_task_instances()
    }


def test_active_learning_from_capture_to_retraining(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    version = champion.model.version
    # the replay moves months in minutes: keep January's items from expiring while the model scores on to September
    store.set_settings(conn, "spx_signal", {"expire_after_days": 400}, by="e2e", at=datetime(2008, 1, 1, tzinfo=UTC))
    for start, end in MONTHS:
        assert run_window("score_signals", _iso(start), _iso(end)).state == "success"

    # --- capture: exactly the champion's predictions in the band, with the seed's priorities
    preds = rows(
        conn,
        "SELECT prediction_id, probabilities FROM predictions WHERE model_name = 'spx_signal' AND model_version = %s",
        (version,),
    )
    settings = band.BandSettings()
    expected = {}
    for p in preds:
        conf = band.decision_confidence(p["probabilities"])
        if band.priority(conf, settings):
            expected[p["prediction_id"]] = (band.priority(conf, settings), round(conf, 12))
    queue = rows(conn, "SELECT item_id, prediction_id, priority, confidence, status FROM active_learning_queue")
    assert {q["prediction_id"]: (q["priority"], round(q["confidence"], 12)) for q in queue} == expected
    assert 0 < len(queue) < len(preds) and {q["status"] for q in queue} == {"pending"}
    by_priority = {p: sum(1 for v in expected.values() if v[0] == p) for p in (1, 2, 3)}
    assert all(by_priority.values()), by_priority  # every band captured something on two months of 2008
    # a re-run of a window adds nothing: same items, re-linked to the re-scored predictions
    assert run_window("score_signals", _iso(MONTHS[0][0]), _iso(MONTHS[0][1])).state == "success"
    again = rows(conn, "SELECT item_id, prediction_id FROM active_learning_queue ORDER BY item_id")
    assert [r["item_id"] for r in again] == sorted(q["item_id"] for q in queue)
    assert all(r["prediction_id"] is not None for r in again)

    # --- labelling through HITL requests: the rule fires at 5 new labels (a per-model override of the threshold)
    rule_store.set_rule(conn, "active_learning_retrain", {"threshold": 5}, model="spx_signal", by="e2e")
    top = store.pick(conn, "spx_signal", N_ITEMS)
    stop, seen, answered = threading.Event(), list[dict](), dict[int, str]()
    analyst = threading.Thread(target=_analyst, args=(conn, stop, seen, answered, 1, 0), daemon=True)
    analyst.start()
    try:
        dr = get_dag("label_queue").test(
            logical_date=pendulum.datetime(2008, 3, 3, 7, tz="UTC"), run_conf={"model_name": "spx_signal", "n": N_ITEMS}
        )
    finally:
        stop.set()
    st = _states(dr)
    assert str(dr.state) == "success", st
    assert {st[f"label_item[{i}]"] for i in range(N_ITEMS)} == {"success"}
    # the labels are too recent to train on (their sessions are the out-of-sample period of a retrain now):
    # the rule does not fire yet
    assert st["respond_to_labels"] == "success" and st["announce_triggers"] == "skipped"
    assert rows(conn, "SELECT count(*) AS n FROM retraining_triggers")[0]["n"] == 0
    # the requests were the top items by priority, then age, in that order
    asked_at = {r["map_index"]: _item_of(r["body"]) for r in seen}
    asked = [asked_at[i] for i in range(N_ITEMS)]
    assert asked == [it.item_id for it in top]
    assert [it.priority for it in top] == sorted((it.priority for it in top), reverse=True)
    items = {
        r["item_id"]: r for r in rows(conn, "SELECT * FROM active_learning_queue WHERE item_id = ANY(%s)", (asked,))
    }
    skipped, timed_out = asked[0], asked[1]
    assert items[skipped]["status"] == "skipped" and items[skipped]["manual_label"] is None
    assert items[skipped]["labelled_by"] == "Ana Lyst (analyst-1)"
    assert items[timed_out]["status"] == "pending" and items[timed_out]["labelled_by"] is None
    labelled = asked[2:]
    for i in labelled:
        assert items[i]["status"] == "labelled" and items[i]["manual_label"] == answered[i]
        assert items[i]["labelled_by"] == "Ana Lyst (analyst-1)" and items[i]["notes"] == f"e2e: {answered[i]} by rule"
    # the outcomes that matured inside the scored months (the horizon of late February's bars closes in March)
    matured = [i for i in labelled if items[i]["realized_label"] is not None]
    assert len(labelled) - 2 <= len(matured) <= len(labelled)
    agree = {a["labelled_by"]: a for a in store.agreement(conn, "spx_signal")}
    conn.rollback()
    assert agree[None]["items"] == len(matured) == agree["Ana Lyst (analyst-1)"]["items"]
    human = sum(items[i]["manual_label"] == items[i]["realized_label"] for i in matured) / len(matured)
    model = sum(items[i]["predicted_label"] == items[i]["realized_label"] for i in matured) / len(matured)
    assert abs(agree[None]["human_agreement"] - human) < 1e-12 and abs(agree[None]["model_agreement"] - model) < 1e-12
    print(f"e2e labels: {len(labelled)}, {len(matured)} matured; human = outcome {human:.3f}, model {model:.3f}")
    # a second answer to a labelled item is refused, naming who labelled it
    try:
        store.label(conn, labelled[0], "HOLD", by="someone else", at=datetime(2008, 3, 3, tzinfo=UTC))
        raise AssertionError("a second label was accepted")
    except store.LabelError as exc:
        assert f"item {labelled[0]}" in str(exc) and "by Ana Lyst (analyst-1)" in str(exc)

    # --- the model scores on to September; the next labelling run (one item, skipped) finds the labels usable
    for start, end in LATER:
        assert run_window("score_signals", _iso(start), _iso(end)).state == "success"
    stop = threading.Event()
    analyst = threading.Thread(target=_analyst, args=(conn, stop, [], {}, -1, 0), daemon=True)
    analyst.start()
    try:
        dr = get_dag("label_queue").test(
            logical_date=pendulum.datetime(2008, 10, 1, 7, tz="UTC"), run_conf={"model_name": "spx_signal", "n": 1}
        )
    finally:
        stop.set()
    st = _states(dr)
    assert st["label_item[0]"] == "success" and st["announce_triggers"] == "success", st
    trig = rows(
        conn,
        "SELECT trigger_id, trigger_type, retrain_mode, priority, rule_name, status, triggered_at "
        "FROM retraining_triggers",
    )
    assert len(trig) == 1 and trig[0]["trigger_type"] == "active_learning" and trig[0]["status"] == "pending"
    assert trig[0]["rule_name"] == "active_learning_retrain" and trig[0]["retrain_mode"] == "full"
    # as of the data's clock: the model's newest scored bar (2008-09-30), not the wall clock
    newest = rows(conn, "SELECT max(ts) AS t FROM predictions")[0]["t"]
    assert trig[0]["triggered_at"] == newest and newest.date() == datetime(2008, 9, 30).date()
    # evaluating the labelling rules again at the same logical time changes nothing
    ev = responses.evaluate(conn, "spx_signal", source="labelling", as_of=newest, run_id="e2e")
    assert ev.replayed and not ev.changed and ev.trigger_id == trig[0]["trigger_id"]

    # --- retrain_gated trains with the labels (out of sample: the last 120 sessions; the January-February labels are
    # training rows now); the items become processed, linked to the training set
    dr = get_dag("retrain_gated").test(logical_date=pendulum.parse("2008-10-02"), run_conf=FAST)
    st = _states(dr)
    assert st["assemble_training_data"] == "success" and st["train_candidate[0]"] == "success", st
    ds = rows(conn, "SELECT dataset_id, human_labels, date_start, date_end FROM training_datasets")
    # every label trains now (late February's outcome matured in March)
    assert len(ds) == 1 and ds[0]["human_labels"] == len(labelled)
    after = rows(
        conn,
        "SELECT item_id, status, training_dataset_id FROM active_learning_queue WHERE item_id = ANY(%s)",
        (labelled,),
    )
    assert {r["item_id"]: (r["status"], r["training_dataset_id"]) for r in after} == {
        i: ("processed", ds[0]["dataset_id"]) for i in labelled
    }
    jobs = rows(conn, "SELECT metrics FROM training_jobs WHERE status = 'succeeded'")
    assert len(jobs) == 2 and all(j["metrics"]["human_labels"]["human_labels"] == len(labelled) for j in jobs)
    assert all(j["metrics"]["human_label_items"] == sorted(labelled) for j in jobs)
    done = rows(conn, "SELECT status FROM retraining_triggers WHERE trigger_id = %s", (trig[0]["trigger_id"],))
    assert done[0]["status"] == "done"
    # the queue's counts after the whole path
    counts = store.queue_counts(conn, "spx_signal")[0]
    conn.rollback()
    assert (counts["labelled"], counts["processed"], counts["skipped"]) == (0, len(labelled), 2)
    conn.close()
