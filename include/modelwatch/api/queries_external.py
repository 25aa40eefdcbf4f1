"""Read queries of the monitoring API over external models' feeds (migration 019): the batches
``ingest_predictions`` loaded or quarantined. Registering a model is a write route (:mod:`.routes_external`)."""

from __future__ import annotations

from include.modelwatch.api import models as m
from include.modelwatch.api.queries_common import DEFAULT_LIMIT, check_choice, check_paging, equals, fetch_page

BATCH_COLUMNS = (
    "batch_id, source, kind, name, model_name AS model, model_version AS version, status, n_rows, n_written, "
    "interval_start, interval_end, error, ingested_at, run_id"
)
KINDS = ("predictions", "outcomes")
STATUSES = ("loaded", "quarantined")


def ingest_batches(
    conn,
    *,
    model: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.IngestBatch]:
    """Batches of external models' feeds, newest first (a batch naming an unknown model is listed too)."""
    check_paging(limit, offset)
    check_choice("kind", kind, KINDS)
    check_choice("status", status, STATUSES)
    rows, total = fetch_page(
        conn,
        columns=BATCH_COLUMNS,
        source="ingest_batches",
        predicates=[
            equals("model_name", "model", model),
            equals("kind", "kind", kind),
            equals("status", "status", status),
        ],
        order_by="batch_id DESC",
        limit=limit,
        offset=offset,
    )
    return m.Page[m.IngestBatch](
        items=[m.IngestBatch.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )
