"""The active-learning queue in the ModelWatch API and its labelling page, as Airflow's API server serves them:
items captured by the scoring path (``store.capture``) from known predictions, outcomes brought on by
``store.refresh``; reads as a viewer (GET on label_queue), labels and skips as users who may edit label_queue,
the user's name recorded, refused transitions (labelled, skipped, expired, processed) answered 409 with the
store's message, and what the page shows."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from include.modelwatch.active_learning import store
from include.modelwatch.data import storage
from tests.db import test_api_app as app_fixtures

# the Airflow API server app, its client and the users' JWTs, as tests/db/test_api_app.py builds them
airflow_app, client, tokens = app_fixtures.airflow_app, app_fixtures.client, app_fixtures.tokens
auth, row = app_fixtures.auth, app_fixtures.row
P = "/modelwatch"
D = timedelta(days=1)
DAY1 = datetime(2008, 10, 6, tzinfo=UTC)
SYMBOL = "^GSPC"
# one session each; confidence p1 / (p1 + p2): 0.5128 (priority 3), 0.5395 (2), 0.5432 (1), 0.7778 (outside the
# band: not queued), 0.5070 (3)
PROBABILITIES = [
    {"BUY": 0.40, "HOLD": 0.38, "SELL": 0.22},
    {"SELL": 0.41, "BUY": 0.35, "HOLD": 0.24},
    {"HOLD": 0.44, "BUY": 0.37, "SELL": 0.19},
    {"BUY": 0.70, "HOLD": 0.20, "SELL": 0.10},
    {"BUY": 0.36, "SELL": 0.35, "HOLD": 0.29},
]
#: matured outcomes of the first two sessions: (realized label, realized return)
OUTCOMES = {0: ("SELL", -0.031), 1: ("SELL", -0.012)}


def top(p: dict[str, float]) -> str:
    return max(p, key=lambda k: p[k])


def predict(cur, version: int, ts: datetime, probs: dict[str, float]) -> int:
    cur.execute(
        "INSERT INTO predictions (model_name, model_version, ts, symbol, features, predicted_label, probabilities, "
        "confidence) VALUES ('m', %(v)s, %(ts)s, %(s)s, %(f)s, %(label)s, %(p)s, %(c)s) RETURNING prediction_id",
        {
            "v": version,
            "ts": ts,
            "s": SYMBOL,
            "f": json.dumps({"ret_1d": -0.01, "vol_5d": 0.02}),
            "label": top(probs),
            "p": json.dumps(probs),
            "c": max(probs.values()),
        },
    )
    return cur.fetchone()[0]


@pytest.fixture()
def queue(db, tmp_path) -> dict[str, int]:
    """Model m's champion scored five sessions; four were queued (one is outside the band); the first two matured.
    Returns the item ids by session index."""
    version = app_fixtures.champion(db, tmp_path)
    with storage.transaction(db) as cur:
        pids = [predict(cur, version, DAY1 + i * D, p) for i, p in enumerate(PROBABILITIES)]
        for i, (label, ret) in OUTCOMES.items():
            cur.execute(
                "INSERT INTO outcomes (prediction_id, realized_return, realized_label, horizon_days, matured_at) "
                "VALUES (%(p)s, %(r)s, %(l)s, 5, %(at)s)",
                {"p": pids[i], "r": ret, "l": label, "at": DAY1 + (i + 5) * D},
            )
        captured = store.capture(
            cur,
            model_name="m",
            model_version=version,
            symbol=SYMBOL,
            window_start=DAY1,
            window_end=DAY1 + 5 * D,
            settings=store.settings_for(db, "m"),
            run_id="scheduled__2008-10-10",
        )
    assert captured == {3: 2, 2: 1, 1: 1}
    assert store.refresh(db, "m") == {"outcomes": 2, "expired": 0}
    ids = {r["ts"]: r["item_id"] for r in storage.fetch_dicts(db, "SELECT item_id, ts FROM active_learning_queue")}
    db.rollback()
    return {i: ids[DAY1 + i * D] for i in (0, 1, 2, 4)}


def post(client, token: str, item_id: int, action: str, body: dict | None = None):
    return client.post(f"{P}/active-learning/items/{item_id}/{action}", headers=auth(token), json=body)


def item_row(db, item_id: int) -> dict:
    return row(
        db,
        "SELECT status, manual_label, labelled_by, notes, labelled_at FROM active_learning_queue WHERE item_id = %(i)s",
        {"i": item_id},
    )


# ------------------------------------------------------------------ reads


def test_viewer_reads_pending_items_by_priority_then_age(client, tokens, queue):
    h = auth(tokens["vera"])
    res = client.get(f"{P}/active-learning/items", headers=h)
    assert res.status_code == 200, res.text
    page = res.json()
    assert (page["total"], page["limit"], page["offset"]) == (4, 50, 0)
    # priority 3 (sessions 0 and 4, oldest first), then 2 (session 1), then 1 (session 2)
    assert [i["item_id"] for i in page["items"]] == [queue[0], queue[4], queue[1], queue[2]]
    first = page["items"][0]
    assert first == {
        "item_id": queue[0],
        "model": "m",
        "version": 1,
        "symbol": SYMBOL,
        "ts": "2008-10-06T00:00:00Z",
        "features": {"ret_1d": -0.01, "vol_5d": 0.02},
        "probabilities": PROBABILITIES[0],
        "predicted_label": "BUY",
        "confidence": pytest.approx(0.40 / 0.78, abs=1e-12),
        "priority": 3,
        "status": "pending",
        "manual_label": None,
        "labelled_by": None,
        "labelled_at": None,
        "notes": None,
        "realized_label": "SELL",
        "realized_return": -0.031,
        "training_dataset_id": None,
    }
    assert [(i["priority"], i["realized_label"]) for i in page["items"][1:]] == [(3, None), (2, "SELL"), (1, None)]

    second = client.get(f"{P}/active-learning/items", headers=h, params={"limit": 2, "offset": 2, "model": "m"})
    assert [i["item_id"] for i in second.json()["items"]] == [queue[1], queue[2]] and second.json()["total"] == 4
    assert client.get(f"{P}/active-learning/items", headers=h, params={"status": "labelled"}).json() == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    for params, field in (({"status": "done"}, "status"), ({"model": "nope"}, "model"), ({"limit": 0}, "limit")):
        res = client.get(f"{P}/active-learning/items", headers=h, params=params)
        assert (res.status_code, res.json()["field"]) == (422, field), params

    stats = client.get(f"{P}/active-learning/stats", headers=h)
    assert stats.status_code == 200, stats.text
    assert stats.json() == {
        "models": [
            {
                "model": "m",
                "pending": 4,
                "labelled": 0,
                "skipped": 0,
                "processed": 0,
                "expired": 0,
                "oldest_pending": "2008-10-06T00:00:00Z",
                "last_answer": None,
                "settings": {
                    "enabled": True,
                    "band_max": 0.55,
                    "priority2_max": 0.54,
                    "priority3_max": 0.52,
                    "label_weight": 2.0,
                    "on_disagreement": "human",
                    "expire_after_days": 90,
                    "batch_size": 10,
                },
            }
        ],
        "agreement": [],
    }
    res = client.get(f"{P}/active-learning/stats", headers=h, params={"model": "nope"})
    assert (res.status_code, res.json()["field"]) == (422, "model")


def test_reading_needs_a_user(client, queue):
    for path in ("/active-learning/items", "/active-learning/stats", "/labelling"):
        res = client.get(P + path)
        assert (res.status_code, res.json()) == (401, {"detail": "Not authenticated"}), path


# ------------------------------------------------------------------ writes


def test_labels_and_skips_record_the_user_and_refuse_a_second_answer(client, tokens, db, queue):
    # a viewer may read but not answer: 403 and nothing changes
    res = post(client, tokens["vera"], queue[0], "label", {"label": "SELL"})
    assert (res.status_code, res.json()) == (403, {"detail": "Forbidden"})
    res = post(client, tokens["vera"], queue[2], "skip", {})
    assert (res.status_code, res.json()) == (403, {"detail": "Forbidden"})
    assert client.post(f"{P}/active-learning/items/{queue[0]}/label", json={"label": "SELL"}).status_code == 401
    assert item_row(db, queue[0])["status"] == "pending"

    before = datetime.now(UTC)
    res = post(client, tokens["ada"], queue[0], "label", {"label": "SELL", "note": "  the bounce failed "})
    assert res.status_code == 200, res.text
    body = res.json()
    assert {k: v for k, v in body.items() if k != "at"} == {
        "item_id": queue[0],
        "model": "m",
        "version": 1,
        "symbol": SYMBOL,
        "ts": "2008-10-06T00:00:00Z",
        "status": "labelled",
        "label": "SELL",
        "by": "ada",
        "note": "the bounce failed",
    }
    got = item_row(db, queue[0])
    assert (got["status"], got["manual_label"], got["labelled_by"], got["notes"]) == (
        "labelled",
        "SELL",
        "ada",
        "the bounce failed",
    )
    assert before <= got["labelled_at"] <= datetime.now(UTC)
    assert datetime.fromisoformat(body["at"]) == got["labelled_at"]

    # a second answer is refused with the store's message (who answered, when) and changes nothing
    again = post(client, tokens["ed"], queue[0], "label", {"label": "BUY"})
    assert again.status_code == 409, again.text
    detail = again.json()["detail"]
    assert detail.startswith(f"item {queue[0]} (m v1 {SYMBOL} 2008-10-06) is labelled (SELL by ada at ")
    assert detail.endswith("UTC): only a pending item can be labelled or skipped")
    assert post(client, tokens["ed"], queue[0], "skip", {}).status_code == 409
    assert item_row(db, queue[0]) == got

    # the editor labels another item; the label is checked like every body field (422 naming it)
    for bad in ({"label": "MAYBE"}, {"label": "buy"}, {}, {"label": "BUY", "note": "x" * 2001}):
        res = post(client, tokens["ed"], queue[1], "label", bad)
        assert res.status_code == 422, (bad, res.text)
        assert [e["loc"][-1] for e in res.json()["detail"]] == ["note" if "note" in bad else "label"], bad
    res = post(client, tokens["ed"], queue[1], "label", {"label": "HOLD", "note": ""})
    assert (res.status_code, res.json()["by"], res.json()["note"]) == (200, "ed", None)
    assert item_row(db, queue[1])["notes"] is None

    # skip: no body, or a note
    res = client.post(f"{P}/active-learning/items/{queue[2]}/skip", headers=auth(tokens["ed"]))
    assert res.status_code == 200, res.text
    assert (res.json()["status"], res.json()["label"], res.json()["by"]) == ("skipped", None, "ed")
    got = item_row(db, queue[2])
    assert (got["status"], got["manual_label"], got["labelled_by"], got["notes"]) == ("skipped", None, "ed", None)
    res = post(client, tokens["ada"], queue[2], "label", {"label": "BUY"})
    assert res.status_code == 409 and " is skipped (skipped by ed at " in res.json()["detail"]

    res = post(client, tokens["ed"], 999999, "label", {"label": "BUY"})
    assert (res.status_code, res.json()) == (404, {"detail": "active-learning item 999999 does not exist"})
    res = post(client, tokens["ed"], 999999, "skip", {"note": "?"})
    assert res.status_code == 404

    # the listing and the statistics follow: ada matched the outcome where the model did not; ed did not where
    # the model did (marked below the model)
    h = auth(tokens["vera"])
    labelled = client.get(f"{P}/active-learning/items", headers=h, params={"status": "labelled"}).json()
    assert [(i["item_id"], i["manual_label"], i["labelled_by"]) for i in labelled["items"]] == [
        (queue[0], "SELL", "ada"),
        (queue[1], "HOLD", "ed"),
    ]
    assert [i["item_id"] for i in client.get(f"{P}/active-learning/items", headers=h).json()["items"]] == [queue[4]]
    assert client.get(f"{P}/active-learning/items", headers=h, params={"status": "all"}).json()["total"] == 4
    stats = client.get(f"{P}/active-learning/stats", headers=h, params={"model": "m"}).json()
    counts = stats["models"][0]
    assert [counts[k] for k in ("pending", "labelled", "skipped", "processed", "expired")] == [1, 2, 1, 0, 0]
    assert counts["oldest_pending"] == "2008-10-10T00:00:00Z" and counts["last_answer"] is not None
    assert stats["agreement"] == [
        {"labelled_by": "ada", "items": 1, "human_agreement": 1.0, "model_agreement": 0.0, "below_model": False},
        {"labelled_by": "ed", "items": 1, "human_agreement": 0.0, "model_agreement": 1.0, "below_model": True},
        {"labelled_by": None, "items": 2, "human_agreement": 0.5, "model_agreement": 0.5, "below_model": False},
    ]


def test_expired_and_processed_items_are_refused_409(client, tokens, db, queue):
    # a newer prediction (outside the band) moves the model's clock: every pending item is now more than a day
    # behind it and expires
    store.set_settings(db, "m", {"expire_after_days": 1}, by="test", at=DAY1)
    with storage.transaction(db) as cur:
        predict(cur, 1, DAY1 + 9 * D, PROBABILITIES[3])
    assert store.refresh(db, "m") == {"outcomes": 0, "expired": 4}
    res = post(client, tokens["ed"], queue[4], "label", {"label": "BUY"})
    assert res.status_code == 409 and res.json()["detail"] == (
        f"item {queue[4]} (m v1 {SYMBOL} 2008-10-10) is expired: only a pending item can be labelled or skipped"
    )
    assert item_row(db, queue[4])["status"] == "expired"


def test_a_processed_item_is_refused_409(client, tokens, db, queue):
    assert post(client, tokens["ed"], queue[1], "label", {"label": "SELL"}).status_code == 200
    with storage.transaction(db) as cur:
        cur.execute(
            "INSERT INTO training_datasets (trigger_id, model_name, fingerprint, date_start, date_end, n_rows) "
            "VALUES (1, 'm', 'fp', '2000-01-01', '2008-10-31', 100) RETURNING dataset_id"
        )
        dataset = cur.fetchone()[0]
        assert store.mark_processed(cur, [queue[1]], dataset, DAY1 + 30 * D) == 1
    for action, body in (("label", {"label": "BUY"}), ("skip", {"note": "late"})):
        res = post(client, tokens["ada"], queue[1], action, body)
        assert res.status_code == 409, res.text
        assert re.fullmatch(
            rf"item {queue[1]} \(m v1 \^GSPC 2008-10-07\) is processed \(SELL by ed at [\d: -]+ UTC\): "
            r"only a pending item can be labelled or skipped",
            res.json()["detail"],
        ), res.json()["detail"]
    got = item_row(db, queue[1])
    assert (got["status"], got["manual_label"], got["labelled_by"]) == ("processed", "SELL", "ed")


# ------------------------------------------------------------------ the page


def page_rows(html: str) -> list[tuple[int, str]]:
    return [(int(i), body) for i, body in re.findall(r'<tr id="item-(\d+)">(.*?)</tr>', html, re.S)]


def test_labelling_page_lists_pending_items_with_their_actions_and_the_stats(client, tokens, db, queue):
    assert post(client, tokens["ada"], queue[0], "label", {"label": "SELL"}).status_code == 200
    assert post(client, tokens["ed"], queue[1], "label", {"label": "HOLD"}).status_code == 200
    res = client.get(f"{P}/labelling", headers=auth(tokens["vera"]))
    assert res.status_code == 200, res.text
    assert '<a href="/modelwatch/labelling">Labelling</a>' in res.text  # the nav entry
    assert "Pending items (2 of 2)" in res.text
    rows = page_rows(res.text)
    assert [i for i, _ in rows] == [queue[4], queue[2]]  # priority 3, then 1
    (i4, r4), (i2, r2) = rows
    cells = dict(re.findall(r'<td class="(\w+)">(.*?)</td>', r4, re.S))
    assert cells == {
        "priority": "3",
        "symbol": SYMBOL,
        "date": "2008-10-10",
        "predicted": "BUY",
        "confidence": "0.507",
        "probabilities": "BUY 0.360<br>SELL 0.350<br>HOLD 0.290",
    }
    for label in ("BUY", "SELL", "HOLD"):
        assert (
            f'name="label" value="{label}" data-url="{P}/active-learning/items/{i4}/label" '
            f'data-done="Item #{i4} labelled {label}">{label}</button>'
        ) in r4
    assert f'data-url="{P}/active-learning/items/{i4}/skip" data-done="Item #{i4} skipped">Skip</button>' in r4
    assert 'name="note" maxlength="2000"' in r4 and "required" not in r4
    assert f"/active-learning/items/{i2}/label" in r2 and '<td class="priority">1</td>' in r2

    # the stats block: counts per model and the labellers, ed (below the model) marked
    queue_row = re.search(r'<tr id="queue-m">(.*?)</tr>', res.text, re.S).group(1)
    counts = dict(re.findall(r'<td class="(pending|labelled|skipped|processed|expired)">(\d+)</td>', queue_row))
    assert counts == {"pending": "2", "labelled": "2", "skipped": "0", "processed": "0", "expired": "0"}
    assert "<td>2008-10-08</td>" in queue_row and "0.52 / 0.54 / 0.55" in queue_row
    labellers = re.findall(r'<tr class="([\w-]*)"(?: id="labeller-(\w+)")?>(.*?)</tr>', res.text, re.S)
    assert [(cls, who) for cls, who, _ in labellers] == [("", "ada"), ("below-model", "ed"), ("", "")]
    assert "below the model" in labellers[1][2] and "0.0%" in labellers[1][2] and "100.0%" in labellers[1][2]
    assert "all labellers" in labellers[2][2] and "below the model" not in labellers[2][2]

    # a model filter; a bad one is refused naming the field
    res = client.get(f"{P}/labelling?model=m", headers=auth(tokens["vera"]))
    assert [i for i, _ in page_rows(res.text)] == [queue[4], queue[2]]
    res = client.get(f"{P}/labelling?model=nope", headers=auth(tokens["vera"]))
    assert res.status_code == 422 and res.json()["field"] == "model"


def test_a_pending_items_outcome_is_not_shown_even_when_matured(client, tokens, queue):
    """A label given while seeing the outcome would only copy it: the page hides it (the API still has it)."""
    res = client.get(f"{P}/labelling", headers=auth(tokens["vera"]))
    rows = dict(page_rows(res.text))
    assert queue[0] in rows and queue[1] in rows  # both matured, both pending
    assert "-3.10%" not in res.text and "-1.20%" not in res.text and 'class="realized"' not in res.text
    items = client.get(f"{P}/active-learning/items", headers=auth(tokens["vera"])).json()["items"]
    assert {i["item_id"]: i["realized_label"] for i in items}[queue[0]] == "SELL"
    assert "No labelled item has a matured outcome yet." in res.text and "The queue is empty." not in res.text


def test_an_empty_queue_says_so(client, tokens, db, tmp_path):
    app_fixtures.champion(db, tmp_path)
    res = client.get(f"{P}/labelling", headers=auth(tokens["vera"]))
    assert res.status_code == 200
    assert page_rows(res.text) == [] and "No pending item: nothing the model could not decide" in res.text
    assert "The queue is empty." in res.text
