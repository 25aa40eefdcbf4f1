"""Read queries of the monitoring API over the active-learning queue (migration 017): the items and the queue's
statistics. Thin: the SQL is the store's (:mod:`include.modelwatch.active_learning.store`), which the DAG and the
CLI read through too; here the input is validated (-> :class:`ApiInputError` naming the field) and the rows
become view models. Labelling and skipping are write routes (:mod:`.routes_write`), also through the store.
"""

from __future__ import annotations

from typing import Any

from include.modelwatch.active_learning import store
from include.modelwatch.active_learning.band import STATUSES
from include.modelwatch.api import models as m
from include.modelwatch.api.queries_common import DEFAULT_LIMIT, check_choice, check_model, check_paging

#: ``status`` of the item list: one queue status, or every status
ALL = "all"
ITEM_STATUSES = (*STATUSES, ALL)


def label_item(item: store.Item) -> m.LabelItem:
    """The store's item as the API returns it (``model``/``version``, as every other route names them)."""
    row: dict[str, Any] = {k: getattr(item, k) for k in store.Item.__dataclass_fields__}
    row["model"], row["version"] = row.pop("model_name"), row.pop("model_version")
    return m.LabelItem.model_validate(row)


def items(
    conn, *, model: str | None = None, status: str = "pending", limit: int = DEFAULT_LIMIT, offset: int = 0
) -> m.Page[m.LabelItem]:
    """Queue items by priority (highest first), then age (oldest bar first); ``status`` ``all``: every status.
    ``total``: the items of that status (and model) in the queue."""
    check_choice("status", status, ITEM_STATUSES)
    check_paging(limit, offset)
    check_model(conn, model)
    wanted = None if status == ALL else status
    rows = store.list_items(conn, model_name=model, status=wanted, limit=limit, offset=offset)
    counts = store.queue_counts(conn, model)
    total = sum(int(c[s]) for c in counts for s in (STATUSES if wanted is None else (wanted,)))
    return m.Page[m.LabelItem](items=[label_item(r) for r in rows], total=total, limit=limit, offset=offset)


def agreement_row(row: dict[str, Any]) -> m.LabellerAgreement:
    human, model = float(row["human_agreement"]), float(row["model_agreement"])
    return m.LabellerAgreement(
        labelled_by=row["labelled_by"],
        items=int(row["items"]),
        human_agreement=human,
        model_agreement=model,
        below_model=human < model,
    )


def stats(conn, *, model: str | None = None) -> m.LabelStats:
    """Per model with queue items: counts per status, the oldest pending bar, the latest answer and its settings;
    the labellers' agreement with the realized outcome (each, then all together) next to the model's on the same
    items."""
    check_model(conn, model)
    counts = [
        m.QueueCounts(
            **{k: c[k] for k in ("pending", "labelled", "skipped", "processed", "expired")},
            model=c["model_name"],
            oldest_pending=c["oldest_pending"],
            last_answer=c["last_answer"],
            settings=m.LabelSettings(**store.settings_for(conn, c["model_name"]).as_dict()),
        )
        for c in store.queue_counts(conn, model)
    ]
    # the overall row comes back without items (and without shares) when no labelled item has matured yet
    agreement = [agreement_row(r) for r in store.agreement(conn, model) if int(r["items"]) > 0]
    return m.LabelStats(models=counts, agreement=agreement)


__all__ = ["ALL", "ITEM_STATUSES", "agreement_row", "items", "label_item", "stats"]
