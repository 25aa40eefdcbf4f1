"""The exporter's active-learning series (``sql/dml/metrics_active_learning.sql``) against the throwaway PostgreSQL:
queue rows written directly, one scrape out, every value compared exactly: items per status (zero-filled for every
registered model), the answered and processed counters, and the oldest pending item's age on the data's clock
(bar times of 2008, so the wall clock cannot be what it measures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from include.modelwatch import registry
from include.modelwatch.active_learning import store
from include.modelwatch.data import storage
from include.modelwatch.observability import collector, server
from tests.db.test_prometheus_metrics import samples, scrape, value

D = timedelta(days=1)
H = timedelta(hours=1)
OCT = datetime(2008, 10, 1, tzinfo=UTC)
PROBS = {"SELL": 0.30, "HOLD": 0.33, "BUY": 0.37}


def prediction(cur, *, model: str, version: int = 1, symbol: str = "SPX", ts: datetime) -> int:
    cur.execute(
        "INSERT INTO predictions (model_name, model_version, ts, symbol, features, predicted_label, probabilities, "
        "confidence) VALUES (%(m)s, %(v)s, %(ts)s, %(s)s, %(f)s, 'BUY', %(p)s, 0.37) RETURNING prediction_id",
        {"m": model, "v": version, "ts": ts, "s": symbol, "f": Jsonb({"f": 1.0}), "p": Jsonb(PROBS)},
    )
    return int(cur.fetchone()[0])


def dataset(cur, model: str) -> int:
    cur.execute(
        "INSERT INTO training_datasets (trigger_id, model_name, fingerprint, date_start, date_end, n_rows) "
        "VALUES (1, %(m)s, %(fp)s, '2007-01-01', '2008-09-30', 100) RETURNING dataset_id",
        {"m": model, "fp": f"fp-{model}"},
    )
    return int(cur.fetchone()[0])


def item(
    cur,
    *,
    model: str,
    ts: datetime,
    status: str = "pending",
    version: int = 1,
    symbol: str = "SPX",
    pid: int | None = None,
    dataset_id: int | None = None,
) -> int:
    """One queue row written as it stands in ``status`` (INSERT: the transition trigger checks updates only)."""
    answered = status in ("labelled", "skipped", "processed")  # the CHECK: who and when on every answered item
    cur.execute(
        "INSERT INTO active_learning_queue (prediction_id, model_name, model_version, symbol, ts, features, "
        "probabilities, predicted_label, confidence, priority, status, manual_label, labelled_by, labelled_at, "
        "expired_at, training_dataset_id, processed_at) VALUES (%(pid)s, %(m)s, %(v)s, %(s)s, %(ts)s, %(f)s, %(p)s, "
        "'BUY', 0.53, 2, %(st)s, %(label)s, %(by)s, %(at)s, %(exp)s, %(ds)s, %(proc)s) RETURNING item_id",
        {
            "pid": pid,
            "m": model,
            "v": version,
            "s": symbol,
            "ts": ts,
            "f": Jsonb({"f": 1.0}),
            "p": Jsonb(PROBS),
            "st": status,
            "label": "SELL" if status in ("labelled", "processed") else None,
            "by": "ana" if answered else None,
            "at": datetime(2025, 1, 2, tzinfo=UTC) if answered else None,
            "exp": ts + 90 * D if status == "expired" else None,
            "ds": dataset_id,
            "proc": datetime(2025, 1, 3, tzinfo=UTC) if status == "processed" else None,
        },
    )
    return int(cur.fetchone()[0])


def register(db, tmp_path, model: str, versions: int = 1) -> None:
    for v in range(versions):
        registry.register_version(
            db,
            model_name=model,
            algorithm="lightgbm",
            artifact=f"{model}{v}".encode(),
            artifact_dir=tmp_path,
            features=["f"],
            classes=["SELL", "HOLD", "BUY"],
        )


def al(fams: dict[str, Any]) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The four active-learning samples of a scrape, {short name: {labels: value}}."""
    return {
        "items": samples(fams, "modelwatch_active_learning_items"),
        "answers": samples(fams, "modelwatch_active_learning_answers_total"),
        "processed": samples(fams, "modelwatch_active_learning_processed_total"),
        "oldest_pending_age_days": samples(fams, "modelwatch_active_learning_oldest_pending_age_days"),
    }


def items_of(model: str, **counts: int) -> dict[tuple[tuple[str, str], ...], float]:
    return {(("model", model), ("status", s)): float(counts.get(s, 0)) for s in collector.ACTIVE_LEARNING_STATUSES}


def test_queue_series_per_model_on_the_data_clock(db, tmp_path, monitoring_uri):
    register(db, tmp_path, "a", versions=2)
    for model in ("b", "c", "d", "e"):
        register(db, tmp_path, model)
    with storage.transaction(db) as cur:
        # a: v1 scored until 10-14; v2 (scored later) has the newest prediction, 10-20 12:00
        for day in range(14):
            prediction(cur, model="a", ts=OCT + day * D)
        prediction(cur, model="a", version=2, ts=OCT + 19 * D + 12 * H)
        ds = dataset(cur, "a")
        item(cur, model="a", ts=OCT + 5 * D)  # the oldest pending: 10-06
        item(cur, model="a", ts=OCT + 12 * D)
        item(cur, model="a", version=2, ts=OCT + 19 * D + 12 * H)
        item(cur, model="a", ts=OCT - 30 * D, status="labelled")  # older answered and expired items: not pending
        item(cur, model="a", ts=OCT + 2 * D, status="labelled")
        item(cur, model="a", ts=OCT + 3 * D, status="skipped")
        item(cur, model="a", ts=OCT + 4 * D, symbol="IXIC", status="processed", dataset_id=ds)
        item(cur, model="a", ts=OCT - 200 * D, status="expired")
        # b: answered items only, no pending one: no age
        prediction(cur, model="b", ts=OCT)
        item(cur, model="b", ts=OCT, status="skipped")
        # c: registered, never queued anything: zeros, no age
        # d: the pending item's prediction (the newest) was deleted: the newest left is older; age 0, not negative
        prediction(cur, model="d", ts=OCT)
        newest = prediction(cur, model="d", ts=OCT + 2 * D)
        item(cur, model="d", ts=OCT + 2 * D, pid=newest)
        cur.execute("DELETE FROM predictions WHERE prediction_id = %(p)s", {"p": newest})
        # e: a pending item and no prediction of the model at all: no age
        pid = prediction(cur, model="e", ts=OCT)
        item(cur, model="e", ts=OCT, pid=pid)
        cur.execute("DELETE FROM predictions WHERE model_name = 'e'")
    db.rollback()

    fams = scrape(server.render(server.make_registry(monitoring_uri)))
    assert value(fams, "modelwatch_scrape_query_success", query="active_learning") == 1
    got = al(fams)
    assert got["items"] == {
        **items_of("a", pending=3, labelled=2, skipped=1, processed=1, expired=1),
        **items_of("b", skipped=1),
        **items_of("c"),
        **items_of("d", pending=1),
        **items_of("e", pending=1),
    }
    assert got["answers"] == {
        (("model", "a"),): 4.0,  # 2 labelled + 1 skipped + 1 processed; pending and expired are not answers
        (("model", "b"),): 1.0,
        (("model", "c"),): 0.0,
        (("model", "d"),): 0.0,
        (("model", "e"),): 0.0,
    }
    assert got["processed"] == {(("model", m),): float(m == "a") for m in "abcde"}
    # 10-06 00:00 -> 10-20 12:00 (v2's prediction: the model's newest over all versions) = 14.5 days
    assert got["oldest_pending_age_days"] == {(("model", "a"),): 14.5, (("model", "d"),): 0.0}


def test_counters_follow_the_queue_s_transitions_and_never_go_down(db, tmp_path, monitoring_uri):
    """Pending items answered, processed by a retrain and expired through the store's own functions: after each
    step one scrape of the same registry; expiry and a re-scored window never take an answer back."""
    register(db, tmp_path, "m")
    with storage.transaction(db) as cur:
        pids = [prediction(cur, model="m", ts=OCT + day * D) for day in range(4)]
        ids = [item(cur, model="m", ts=OCT + day * D, pid=pids[day]) for day in range(4)]
    reg = server.make_registry(monitoring_uri)
    at = datetime(2025, 1, 2, tzinfo=UTC)
    seen = []

    def step() -> None:
        got = al(scrape(server.render(reg)))
        seen.append(
            (
                got["items"][(("model", "m"), ("status", "pending"))],
                got["answers"][(("model", "m"),)],
                got["processed"][(("model", "m"),)],
                got["items"][(("model", "m"), ("status", "expired"))],
                got["oldest_pending_age_days"].get((("model", "m"),)),
            )
        )

    step()
    store.label(db, ids[1], "SELL", by="ana", at=at)
    step()
    store.skip(db, ids[0], by="ana", at=at)
    step()
    with storage.transaction(db) as cur:
        assert store.mark_processed(cur, [ids[1]], dataset(cur, "m"), at) == 1
    step()
    # scoring moves on 120 days: the two pending items pass expire_after_days (90) behind the newest prediction
    with storage.transaction(db) as cur:
        prediction(cur, model="m", ts=OCT + 123 * D)
    step()
    assert store.refresh(db, "m")["expired"] == 2
    step()
    assert seen == [
        (4, 0, 0, 0, 3.0),  # oldest pending 10-01, newest prediction 10-04
        (3, 1, 0, 0, 3.0),  # labelled
        (2, 2, 0, 0, 1.0),  # skipped: 10-01 left the queue, the oldest pending is 10-03
        (2, 2, 1, 0, 1.0),  # processed: still an answer
        (2, 2, 1, 0, 121.0),  # the data's clock moved
        (0, 2, 1, 2, None),  # expired: not answers; no pending item, no age
    ]


def test_a_locked_queue_drops_only_the_active_learning_series(db, tmp_path, monitoring_uri):
    register(db, tmp_path, "m")
    with storage.transaction(db) as cur:
        item(cur, model="m", ts=OCT, pid=prediction(cur, model="m", ts=OCT))
    db.rollback()
    with storage.session(monitoring_uri) as locker:
        locker.execute("LOCK TABLE active_learning_queue IN ACCESS EXCLUSIVE MODE")
        fams = scrape(server.render(server.make_registry(monitoring_uri, statement_timeout_ms=200)))
        locker.rollback()
    ok = {dict(k)["query"]: v for k, v in samples(fams, "modelwatch_scrape_query_success").items()}
    assert ok == {q: float(q != "active_learning") for q in collector.QUERIES}
    assert not [n for n in fams if n.startswith("modelwatch_active_learning_")]
    assert value(fams, "modelwatch_rejected_candidates_total", model="m") == 0  # the models group still answered
