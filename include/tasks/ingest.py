"""Task bodies of ``ingest_predictions``: find the batches waiting in the drop folder and the staging table, load or
quarantine each.

The drop folder is ``$MODELWATCH_INBOX_DIR`` (every worker must reach it, like the artifact directory). A batch is
one file; the library (:mod:`include.modelwatch.external.feed`) validates it with Great Expectations, loads it in one
transaction or quarantines it, and moves it out of the inbox. A refused batch is not a task failure: it is
recorded, logged with its error and quarantined, and the run goes on with the other batches.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from include.tasks.common import monitoring_db, run_id

log = logging.getLogger(__name__)


class InboxSensor(BaseSensorOperator):
    """Done as soon as a batch file waits in the inbox; its XCom is the listing (:func:`poke`)."""

    def poke(self, context: Any) -> PokeReturnValue:
        done, files = poke()
        return PokeReturnValue(is_done=done, xcom_value=files)


def waiting(kind: str | None = None) -> list[dict[str, str]]:
    """The batches waiting (of one kind when given): the inbox's files, then the staging table's batches."""
    from include.modelwatch.external import feed

    files = [f for f in feed.pending_files(feed.inbox_dir()) if kind is None or f.kind == kind]
    with monitoring_db() as conn:
        staged = [b for b in feed.staged_batches(conn) if kind is None or b.kind == kind]
    return [f.to_dict() for f in files] + [b.to_dict() for b in staged]


def poke() -> tuple[bool, list[dict[str, str]]]:
    """(anything waiting, the listing) for the sensor; logs the inbox it watches."""
    from include.modelwatch.external import feed

    batches = waiting()
    staged = sum("staged" in b for b in batches)
    log.info(
        "inbox %s: %d batch file(s) waiting; ingest_staging: %d batch(es)",
        feed.inbox_dir().resolve(),
        len(batches) - staged,
        staged,
    )
    return bool(batches), batches


def ingest_one(file: dict[str, str], context: dict[str, Any]) -> dict[str, Any]:
    """Load or quarantine one batch (a file, or a staged batch); logs what happened (the error names file or
    batch, column and rows)."""
    from pathlib import Path

    from include.modelwatch.external import feed
    from include.modelwatch.metrics import get_metrics

    batch: feed.BatchFile | feed.StagedBatch
    if "staged" in file:
        batch = feed.StagedBatch(file["kind"], file["staged"])
    else:
        batch = feed.BatchFile(file["kind"], Path(file["path"]))
        if not batch.path.exists():  # a retry after the file was already handled, or another run took it
            log.info("%s batch %s is no longer in the inbox: already handled", batch.kind, batch.name)
            return {"kind": batch.kind, "name": batch.name, "status": "gone"}
    with monitoring_db() as conn:
        result = feed.ingest(conn, batch, feed.inbox_dir(), run_id=run_id(context))
    if result.status == "gone":
        log.info("%s batch %s is no longer staged: already handled", batch.kind, batch.name)
        return result.to_dict()
    get_metrics().incr("ingest.batches", result.model or "unknown", batch.kind, result.status)
    if result.status == "quarantined":
        log.error("%s; moved to %s", result.describe(), result.moved_to)
    else:
        log.info("%s; moved to %s", result.describe(), result.moved_to)
    return result.to_dict()


def summarize(context: dict[str, Any]) -> dict[str, Any]:
    """One ``summary:`` line over the batches this run handled (read back from ``ingest_batches``), with each
    quarantined batch's error; the counts per kind and status."""
    from include.modelwatch.external import feed

    with monitoring_db() as conn:
        batches = feed.run_batches(conn, run_id(context))
    counts: dict[str, int] = {}
    for b in batches:
        key = f"{b['kind']} {b['status']}"
        counts[key] = counts.get(key, 0) + 1
        if b["status"] == "quarantined":
            log.warning("quarantined %s batch %s: %s", b["kind"], b["name"], b["error"])
    log.info(
        "summary: %d batch(es): %s",
        len(batches),
        ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none",
    )
    return {"batches": len(batches), **counts}
