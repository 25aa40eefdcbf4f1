"""The active-learning queue in the monitoring database (migration 017).

* :func:`capture` (inside ``score_signals``' transaction): the window's predictions of one version and symbol whose
  decision confidence lies in the model's band become ``pending`` items with their priority. Idempotent per
  window: a re-run re-links the items to the re-scored predictions and adds none; answered items keep what the
  person saw and answered.
* :func:`refresh`: realized outcomes onto items whose horizon closed, and pending items older than
  ``expire_after_days`` behind the model's newest prediction become ``expired`` (the data's clock, not the wall's).
* :func:`pick`: the top pending items by priority, then age. :func:`label` and :func:`skip` answer an item;
  the transition is checked in PostgreSQL (``pending`` only), so two people never label one item twice.
* :func:`training_labels` and :func:`mark_processed`: what a retrain uses, and the items it used becoming
  ``processed`` with their training set.
* :func:`queue_counts` and :func:`agreement`: the queue's state, and how often each labeller (and the model, on
  the same items) matched the realized outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from include.modelwatch.active_learning.band import LABELS, BandSettings, SettingsError, decision_confidence, priority
from include.modelwatch.data.storage import fetch_dicts, insert_sql, transaction
from include.modelwatch.vocabulary import check_text


class LabelError(ValueError):
    """A refused labelling operation; the message names the item, its state and who answered it. Nothing changed."""


@dataclass(frozen=True)
class Item:
    item_id: int
    model_name: str
    model_version: int
    symbol: str
    ts: datetime
    features: dict[str, Any]
    probabilities: dict[str, float]
    predicted_label: str
    confidence: float
    priority: int
    status: str
    manual_label: str | None
    labelled_by: str | None
    labelled_at: datetime | None
    notes: str | None
    realized_label: str | None
    realized_return: float | None
    training_dataset_id: int | None

    @property
    def label(self) -> str:
        """``item 12 (spx_signal v1 ^GSPC 2008-10-14)``."""
        return f"item {self.item_id} ({self.model_name} v{self.model_version} {self.symbol} {self.ts:%Y-%m-%d})"

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


_COLS = (
    "item_id, model_name, model_version, symbol, ts, features, probabilities, predicted_label, confidence, "
    "priority, status, manual_label, labelled_by, labelled_at, notes, realized_label, realized_return, "
    "training_dataset_id"
)


#: the queue as read: an outcome recorded since the last :func:`refresh` shows at once (joined from ``outcomes``)
_READ = (
    "(SELECT q.item_id, q.model_name, q.model_version, q.symbol, q.ts, q.features, q.probabilities, "
    "q.predicted_label, q.confidence, q.priority, q.status, q.manual_label, q.labelled_by, q.labelled_at, q.notes, "
    "coalesce(q.realized_label, o.realized_label) AS realized_label, "
    "coalesce(q.realized_return, o.realized_return) AS realized_return, q.training_dataset_id "
    "FROM active_learning_queue q LEFT JOIN outcomes o ON o.prediction_id = q.prediction_id) AS q"
)


def _item(row: Mapping[str, Any]) -> Item:
    return Item(**{k: row[k] for k in Item.__dataclass_fields__})


# ------------------------------------------------------------------ settings


def settings_for(conn, model_name: str) -> BandSettings:
    """The model's settings (``active_learning_settings``), else the defaults (the seed's bands)."""
    rows = fetch_dicts(conn, "SELECT * FROM active_learning_settings WHERE model_name = %(m)s", {"m": model_name})
    if not rows:
        return BandSettings()
    r = rows[0]
    return BandSettings(**{k: r[k] for k in BandSettings.__dataclass_fields__})


def set_settings(conn, model_name: str, changes: Mapping[str, Any], *, by: str, at: datetime) -> BandSettings:
    """Change some of the model's settings (validated, all or nothing; a :class:`SettingsError` names the field)."""
    if not model_name or not model_name.strip():
        raise SettingsError("a model name is required")
    with transaction(conn) as cur:
        cur.execute("SELECT 1 FROM model_versions WHERE model_name = %(m)s LIMIT 1", {"m": model_name})
        if cur.fetchone() is None:
            raise SettingsError(f"unknown model {model_name!r}")
        # two people changing settings at once: the second waits and starts from the first one's values
        cur.execute("SELECT 1 FROM active_learning_settings WHERE model_name = %(m)s FOR UPDATE", {"m": model_name})
        new = settings_for(conn, model_name).changed(model_name, changes)
        row = {"model_name": model_name, **new.as_dict(), "updated_by": by, "updated_at": at}
        cur.execute(
            insert_sql("active_learning_settings", list(row), conflict=["model_name"], update=list(row)[1:]), row
        )
    return new


# ------------------------------------------------------------------ capture


def capture(
    cur,
    *,
    model_name: str,
    model_version: int,
    symbol: str,
    window_start: datetime,
    window_end: datetime,
    settings: BandSettings,
    run_id: str | None,
    timeframe: str = "1d",
) -> dict[int, int]:
    """Queue the window's in-band predictions of one version and symbol (call in the scoring transaction, after
    the predictions were written). Returns ``{priority: items}`` of the window. A disabled model captures nothing
    (its items stay). Every item of the window, answered or not, is re-linked to the prediction of its bar."""
    key = {"m": model_name, "v": model_version, "s": symbol, "start": window_start, "end": window_end}
    # a window scored again (its predictions deleted and written anew) keeps its items' links, in band or not,
    # so answered items still get their realized outcome (refresh joins on prediction_id)
    cur.execute(
        "UPDATE active_learning_queue q SET prediction_id = p.prediction_id FROM predictions p "
        "WHERE p.model_name = q.model_name AND p.model_version = q.model_version AND p.symbol = q.symbol "
        "AND p.ts = q.ts AND p.timeframe = %(tf)s AND q.model_name = %(m)s AND q.model_version = %(v)s "
        "AND q.symbol = %(s)s AND q.ts >= %(start)s AND q.ts < %(end)s "
        "AND q.prediction_id IS DISTINCT FROM p.prediction_id",
        {**key, "tf": timeframe},
    )
    if not settings.enabled:
        return {}
    cur.execute(
        "SELECT prediction_id, ts, features, probabilities, predicted_label FROM predictions "
        "WHERE model_name = %(m)s AND model_version = %(v)s AND symbol = %(s)s AND timeframe = %(tf)s "
        "AND ts >= %(start)s AND ts < %(end)s ORDER BY ts",
        {"m": model_name, "v": model_version, "s": symbol, "tf": timeframe, "start": window_start, "end": window_end},
    )
    rows = cur.fetchall()
    in_band: list[dict[str, Any]] = []
    for pid, ts, feats, probs, predicted in rows:
        probs = probs if isinstance(probs, dict) else json.loads(probs)
        try:
            conf = decision_confidence(probs)
        except ValueError as exc:
            raise ValueError(f"{model_name} v{model_version} {symbol} {ts:%Y-%m-%d}: probabilities: {exc}") from exc
        p = priority(conf, settings)
        if p:
            in_band.append(
                {
                    "pid": pid,
                    "ts": ts,
                    "features": json.dumps(feats) if not isinstance(feats, str) else feats,
                    "probs": json.dumps(probs),
                    "pred": predicted,
                    "conf": min(max(conf, 0.5), 1.0),
                    "prio": p,
                }
            )
    # pending items of the window no longer in the band (e.g. the band changed) leave the queue
    cur.execute(
        "DELETE FROM active_learning_queue WHERE model_name = %(m)s AND model_version = %(v)s AND symbol = %(s)s "
        "AND ts >= %(start)s AND ts < %(end)s AND status = 'pending' AND NOT (ts = ANY(%(keep)s))",
        {**key, "keep": [r["ts"] for r in in_band]},
    )
    counts: dict[int, int] = {}
    for r in in_band:
        cur.execute(
            "INSERT INTO active_learning_queue AS q (prediction_id, model_name, model_version, symbol, ts, features, "
            "probabilities, predicted_label, confidence, priority, captured_run_id) VALUES (%(pid)s, %(m)s, %(v)s, "
            "%(s)s, %(ts)s, %(features)s, %(probs)s, %(pred)s, %(conf)s, %(prio)s, %(run)s) "
            "ON CONFLICT (model_name, model_version, symbol, ts) DO UPDATE SET prediction_id = EXCLUDED.prediction_id, "
            "features = CASE WHEN q.status = 'pending' THEN EXCLUDED.features ELSE q.features END, "
            "probabilities = CASE WHEN q.status = 'pending' THEN EXCLUDED.probabilities ELSE q.probabilities END, "
            "predicted_label = CASE WHEN q.status = 'pending' THEN EXCLUDED.predicted_label "
            "ELSE q.predicted_label END, "
            "confidence = CASE WHEN q.status = 'pending' THEN EXCLUDED.confidence ELSE q.confidence END, "
            "priority = CASE WHEN q.status = 'pending' THEN EXCLUDED.priority ELSE q.priority END, "
            "captured_run_id = EXCLUDED.captured_run_id",
            {**r, **key, "run": run_id},
        )
        counts[r["prio"]] = counts.get(r["prio"], 0) + 1
    return counts


# ------------------------------------------------------------------ expiry and outcomes


def newest_scored(cur, model_name: str) -> datetime | None:
    """The model's newest scored bar (any version): the queue's clock, for expiry and the labelling rule."""
    cur.execute("SELECT max(ts) FROM predictions WHERE model_name = %(m)s", {"m": model_name})
    return cur.fetchone()[0]


def refresh(conn, model_name: str) -> dict[str, int]:
    """Realized outcomes onto the model's items whose horizon closed, and expiry of pending items older than
    ``expire_after_days`` behind the model's newest prediction. One transaction; returns the counts changed."""
    settings = settings_for(conn, model_name)
    with transaction(conn) as cur:
        cur.execute(
            "UPDATE active_learning_queue q SET realized_label = o.realized_label, realized_return = o.realized_return "
            "FROM outcomes o WHERE o.prediction_id = q.prediction_id AND q.model_name = %(m)s "
            "AND (q.realized_label, q.realized_return) IS DISTINCT FROM (o.realized_label, o.realized_return)",
            {"m": model_name},
        )
        outcomes = cur.rowcount
        newest = newest_scored(cur, model_name)
        expired = 0
        if newest is not None:
            cur.execute(
                "UPDATE active_learning_queue SET status = 'expired', expired_at = %(newest)s "
                "WHERE model_name = %(m)s AND status = 'pending' AND ts < %(newest)s - make_interval(days => %(d)s)",
                {"m": model_name, "newest": newest, "d": int(settings.expire_after_days)},
            )
            expired = cur.rowcount
    return {"outcomes": outcomes, "expired": expired}


# ------------------------------------------------------------------ reading


def get_item(conn, item_id: int) -> Item:
    rows = fetch_dicts(conn, f"SELECT {_COLS} FROM {_READ} WHERE item_id = %(i)s", {"i": item_id})
    if not rows:
        raise LabelError(f"no active-learning item {item_id}")
    return _item(rows[0])


def list_items(
    conn, *, model_name: str | None = None, status: str | None = "pending", limit: int = 50, offset: int = 0
) -> list[Item]:
    """Items by priority (highest first), then age (oldest first); ``status=None``: every status."""
    rows = fetch_dicts(
        conn,
        f"SELECT {_COLS} FROM {_READ} WHERE (%(m)s::text IS NULL OR model_name = %(m)s) "
        "AND (%(st)s::text IS NULL OR status = %(st)s) ORDER BY priority DESC, ts, item_id LIMIT %(n)s OFFSET %(o)s",
        {"m": model_name, "st": status, "n": int(limit), "o": int(offset)},
    )
    return [_item(r) for r in rows]


def pick(conn, model_name: str, n: int | None = None) -> list[Item]:
    """The next ``n`` (default: the model's ``batch_size``) pending items to label: priority, then age."""
    size = int(n) if n is not None else settings_for(conn, model_name).batch_size
    if size < 1:
        raise LabelError(f"{model_name}: the number of items to label must be >= 1, got {size}")
    return list_items(conn, model_name=model_name, status="pending", limit=size)


# ------------------------------------------------------------------ answering


def _answer(conn, item_id: int, *, status: str, label: str | None, by: str, note: str | None, at: datetime) -> Item:
    if not by or not str(by).strip():
        raise LabelError(f"item {item_id}: who answers is required")
    try:
        check_text("note", note)
    except ValueError as exc:
        raise LabelError(f"item {item_id}: {exc}") from exc
    with transaction(conn) as cur:
        cur.execute(
            "UPDATE active_learning_queue SET status = %(st)s, manual_label = %(label)s, labelled_by = %(by)s, "
            "labelled_at = %(at)s, notes = %(note)s WHERE item_id = %(i)s AND status = 'pending' "
            f"RETURNING {_COLS}",
            {"st": status, "label": label, "by": str(by).strip(), "at": at, "note": note, "i": item_id},
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(f"SELECT {_COLS} FROM active_learning_queue WHERE item_id = %(i)s", {"i": item_id})
            found = cur.fetchone()
            if found is None:
                raise LabelError(f"no active-learning item {item_id}")
            it = _item(dict(zip([d[0] for d in cur.description], found, strict=True)))
            answered = it.manual_label or "skipped"
            done = (
                f" ({answered} by {it.labelled_by} at {it.labelled_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
                if it.labelled_at is not None
                else ""
            )
            raise LabelError(f"{it.label} is {it.status}{done}: only a pending item can be labelled or skipped")
        return _item(dict(zip([d[0] for d in cur.description], row, strict=True)))


def label(conn, item_id: int, manual_label: str, *, by: str, at: datetime, note: str | None = None) -> Item:
    """Label a pending item BUY, SELL or HOLD (one transaction; refused with the reason otherwise)."""
    lab = str(manual_label).strip().upper()
    if lab not in LABELS:
        raise LabelError(f"item {item_id}: label must be one of {list(LABELS)}, got {manual_label!r}")
    return _answer(conn, item_id, status="labelled", label=lab, by=by, note=note, at=at)


def skip(conn, item_id: int, *, by: str, at: datetime, note: str | None = None) -> Item:
    """Skip a pending item (nobody could say): it leaves the queue without a label."""
    return _answer(conn, item_id, status="skipped", label=None, by=by, note=note, at=at)


# ------------------------------------------------------------------ retraining


#: a label is usable once a retrain's training rows can hold its session: the default out-of-sample period plus
#: the embargo and the label horizon (``training.dataset.SplitSettings``: 126 + 5 + 5 sessions) lie after it
USABLE_AFTER_SESSIONS = 126 + 5 + 5


def training_labels(
    conn, model_name: str, start: date, end: date, item_ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Human labels a retrain may use for its training sessions ``start..end``: the model's labelled and processed
    items (a label is a permanent fact about its symbol and session, whichever retrain used it first), in the order
    they were given. ``item_ids``: exactly these (the ones the training set recorded), so every candidate of a
    trigger trains on the same rows even when people keep labelling meanwhile."""
    return fetch_dicts(
        conn,
        "SELECT item_id, symbol, (ts AT TIME ZONE 'UTC')::date AS date, manual_label FROM active_learning_queue q "
        "WHERE model_name = %(m)s AND (ts AT TIME ZONE 'UTC')::date BETWEEN %(start)s AND %(end)s "
        "AND status IN ('labelled', 'processed') AND (%(ids)s::bigint[] IS NULL OR item_id = ANY(%(ids)s::bigint[])) "
        "ORDER BY labelled_at, item_id",
        {"m": model_name, "start": start, "end": end, "ids": None if item_ids is None else list(item_ids)},
    )


def usable_new_labels(cur, model_name: str) -> int:
    """Labelled items no retrain used yet whose session is at least :data:`USABLE_AFTER_SESSIONS` of the model's
    scored sessions old (the data's clock): the labels a retrain triggered now would train on."""
    cur.execute(
        "WITH sessions AS (SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date AS d FROM predictions "
        "WHERE model_name = %(m)s) SELECT count(*) FROM active_learning_queue q WHERE q.model_name = %(m)s "
        "AND q.status = 'labelled' AND (SELECT count(*) FROM sessions s WHERE s.d > (q.ts AT TIME ZONE 'UTC')::date) "
        ">= %(n)s",
        {"m": model_name, "n": USABLE_AFTER_SESSIONS},
    )
    return int(cur.fetchone()[0])


def mark_processed(cur, item_ids: Sequence[int], dataset_id: int, at: datetime) -> int:
    """The labelled items a training set used become ``processed``, linked to it (in the dataset's transaction)."""
    if not item_ids:
        return 0
    cur.execute(
        "UPDATE active_learning_queue SET status = 'processed', training_dataset_id = %(ds)s, processed_at = %(at)s "
        "WHERE item_id = ANY(%(ids)s) AND status = 'labelled'",
        {"ds": dataset_id, "at": at, "ids": list(item_ids)},
    )
    return cur.rowcount


# ------------------------------------------------------------------ statistics


def queue_counts(conn, model_name: str | None = None) -> list[dict[str, Any]]:
    """Per model: items per status, the oldest pending item's bar time, the newest answer's time
    (``last_answer``) and the items answered (labelled or skipped) in the 7 days up to it (``answered_7d``, the
    labelling rate's window)."""
    return fetch_dicts(
        conn,
        "SELECT model_name, count(*) FILTER (WHERE status = 'pending') AS pending, "
        "count(*) FILTER (WHERE status = 'labelled') AS labelled, count(*) FILTER (WHERE status = 'skipped') AS "
        "skipped, count(*) FILTER (WHERE status = 'processed') AS processed, count(*) FILTER (WHERE status = "
        "'expired') AS expired, min(ts) FILTER (WHERE status = 'pending') AS oldest_pending, "
        "max(labelled_at) AS last_answer, "
        "count(*) FILTER (WHERE labelled_at > last_model_answer - interval '7 days') AS answered_7d "
        "FROM (SELECT *, max(labelled_at) OVER (PARTITION BY model_name) AS last_model_answer "
        "FROM active_learning_queue WHERE %(m)s::text IS NULL OR model_name = %(m)s) q "
        "GROUP BY model_name ORDER BY model_name",
        {"m": model_name},
    )


def agreement(conn, model_name: str | None = None) -> list[dict[str, Any]]:
    """Per labeller and overall (``labelled_by`` NULL): labelled items whose outcome matured, the share where the
    human label matched it, and the model's share on the same items; a labeller below the model shows it. No
    matured labelled item: no row (not an overall row of NULL shares)."""
    return fetch_dicts(
        conn,
        "SELECT labelled_by, count(*) AS items, avg((manual_label = realized_label)::int)::float8 AS human_agreement, "
        f"avg((predicted_label = realized_label)::int)::float8 AS model_agreement FROM {_READ} "
        "WHERE manual_label IS NOT NULL AND realized_label IS NOT NULL AND (%(m)s::text IS NULL OR model_name = %(m)s) "
        "GROUP BY GROUPING SETS ((labelled_by), ()) HAVING count(*) > 0 ORDER BY labelled_by NULLS LAST",
        {"m": model_name},
    )
