"""The fleet of a drift run, cut into chunks: several model versions per mapped task.

Pure (no Airflow, no database). ``drift_hourly`` maps its per-version tasks over
chunks, not over versions: a task's start-up (a process, the imports, the
connection) cost more than evaluating a small window, so the number of task
instances grows with the chunks (at most :data:`MAX_CHUNKS`), not with the models.

:func:`chunk_fleet` sorts the targets by (model, version) and splits them into
contiguous chunks of almost equal size (sizes differ by at most one): as many
chunks as fit with at least :data:`MIN_CHUNK_SIZE` versions each, at most
:data:`MAX_CHUNKS`, so a large fleet's chunks hold ``ceil(n / MAX_CHUNKS)``
versions. The same fleet always gives the same chunks, so a re-run or a retry
processes the same versions in the same order.

The task that cuts the fleet (``include.tasks.drift.fleet_chunks``) reads
``MODELWATCH_DRIFT_MAX_CHUNKS`` / ``MODELWATCH_DRIFT_MIN_CHUNK_SIZE`` from its
environment when set, else these constants (``bench/fleet.py`` sets both to
compare with one version per task).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Most chunks (mapped task instances per drift task) of one run.
MAX_CHUNKS: int = 8
#: Fewest versions per chunk (a small fleet is not spread over many short tasks).
MIN_CHUNK_SIZE: int = 4
#: Longest chunk label (the mapped task's name in the UI; Airflow stores up to 250 characters).
LABEL_MAX_CHARS: int = 120


def version_label(target: Mapping[str, Any]) -> str:
    """``"spx_signal v1"``."""
    return f"{target['model_name']} v{int(target['version'])}"


def chunk_count(n: int, max_chunks: int = MAX_CHUNKS, min_size: int = MIN_CHUNK_SIZE) -> int:
    """Chunks for a fleet of ``n``: as many as fit with at least ``min_size`` versions each, at most
    ``max_chunks``; at least one for any fleet (0 for none)."""
    if n < 0:
        raise ValueError(f"n: the fleet size must be >= 0, got {n}")
    if max_chunks < 1 or min_size < 1:
        raise ValueError(f"max_chunks and min_size must be >= 1, got {max_chunks} and {min_size}")
    return 0 if n == 0 else min(max_chunks, max(1, n // min_size))


def chunk_size(n: int, max_chunks: int = MAX_CHUNKS, min_size: int = MIN_CHUNK_SIZE) -> int:
    """Versions in the largest chunk of a fleet of ``n``: ``ceil(n / max_chunks)`` for a large fleet, never
    below ``min_size`` (unless the whole fleet is smaller), 0 for no fleet."""
    k = chunk_count(n, max_chunks, min_size)
    return 0 if k == 0 else math.ceil(n / k)


def chunk_label(index: int, of: int, targets: Sequence[Mapping[str, Any]], max_chars: int = LABEL_MAX_CHARS) -> str:
    """``"chunk 2/5: spx_signal v1, ixic v3"``; cut after the last version that fits in ``max_chars``,
    with ``" ... (+k)"`` naming how many were left out."""
    head = f"chunk {index}/{of}: "
    names = [version_label(t) for t in targets]
    for shown in range(len(names), 0, -1):
        rest = len(names) - shown
        text = head + ", ".join(names[:shown]) + (f" ... (+{rest})" if rest else "")
        if len(text) <= max_chars:
            return text
    return f"{head}... (+{len(names)})"


def chunk_fleet(
    targets: Sequence[Mapping[str, Any]], max_chunks: int = MAX_CHUNKS, min_size: int = MIN_CHUNK_SIZE
) -> list[dict[str, Any]]:
    """The targets (dicts with ``model_name`` and ``version``) in chunks, as the mapped tasks take them:
    ``{"chunk": i (1-based), "of": n_chunks, "label": chunk_label(...), "targets": [...]}``.

    Sorted by (model, version), contiguous, sizes differing by at most one; no targets -> no chunks.
    A (model, version) listed twice is refused: it would be evaluated twice in one run.
    """
    ordered = sorted((dict(t) for t in targets), key=lambda t: (str(t["model_name"]), int(t["version"])))
    keys = [(t["model_name"], int(t["version"])) for t in ordered]
    if len(set(keys)) != len(keys):
        dupes = sorted({f"{m} v{v}" for m, v in keys if keys.count((m, v)) > 1})
        raise ValueError(f"model versions listed more than once: {', '.join(dupes)}")
    n = len(ordered)
    k = chunk_count(n, max_chunks, min_size)
    if k == 0:
        return []
    base, extra = divmod(n, k)  # the first `extra` chunks take one more
    out, at = [], 0
    for i in range(k):
        part = ordered[at : at + base + (1 if i < extra else 0)]
        at += len(part)
        out.append({"chunk": i + 1, "of": k, "label": chunk_label(i + 1, k, part), "targets": part})
    return out
