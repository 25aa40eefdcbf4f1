"""What every read query of the monitoring API shares: input validation (-> :class:`ApiInputError`)
and the one paging/filter helper that builds ``WHERE``, ``count(*)``, ``ORDER BY``, ``LIMIT``/``OFFSET``.

Reads only: nothing here commits or rolls back; the caller owns the connection and its transaction.
SQL text is fixed in this package and takes named parameters only; a filter that is not given adds no
predicate (composed with :mod:`psycopg.sql`, so an unfiltered list still uses the table's indexes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from include.modelwatch.api.errors import ApiInputError

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Predicate:
    """One ``WHERE`` condition with the named parameter it reads; left out when ``value`` is None."""

    condition: sql.Composable
    param: str
    value: Any


def run(conn, query: sql.Composable, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``query`` as dicts keyed by column name."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        if cur.description is None:
            return []
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def text(statement: str) -> sql.SQL:
    """A fixed SQL statement of this package as a composable."""
    return sql.SQL(statement)


# --------------------------------------------------------------------------- validation


def check_paging(limit: int, offset: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ApiInputError("limit", f"must be an integer in 1..{MAX_LIMIT}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ApiInputError("offset", f"must be an integer >= 0, got {offset!r}")


def check_time(field: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ApiInputError(field, f"needs a timezone (e.g. 2024-01-31T00:00:00Z), got {value.isoformat()}")


def check_range(start: datetime | None, end: datetime | None) -> None:
    """``start``/``end`` are timezone-aware and ``start < end`` (the range is ``[start, end)``)."""
    check_time("start", start)
    check_time("end", end)
    if start is not None and end is not None and start >= end:
        raise ApiInputError("start", f"must be before end, got start={start.isoformat()} end={end.isoformat()}")


def check_choice(field: str, value: str | None, allowed: Iterable[str]) -> None:
    options = tuple(allowed)
    if value is not None and value not in options:
        raise ApiInputError(field, f"unknown {field} {value!r}; expected one of {list(options)}")


def check_model(conn, model: str | None, version: int | None = None) -> None:
    """``model`` is registered and ``version`` exists (of ``model`` when given, else of any model)."""
    if model is not None:
        known = text("SELECT 1 AS x FROM model_versions WHERE model_name = %(model)s LIMIT 1")
        rows = run(conn, known, {"model": model})
        if not rows:
            raise ApiInputError("model", f"unknown model {model!r}")
    if version is None:
        return
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ApiInputError("version", f"must be a positive integer, got {version!r}")
    rows = run(
        conn,
        text(
            "SELECT 1 AS x FROM model_versions WHERE version = %(version)s "
            "AND (%(model)s::text IS NULL OR model_name = %(model)s::text) LIMIT 1"
        ),
        {"model": model, "version": version},
    )
    if not rows:
        owner = f"model {model!r}" if model is not None else "any model"
        raise ApiInputError("version", f"unknown version {version} of {owner}")


# --------------------------------------------------------------------------- filters and paging


def equals(column: str, param: str, value: Any) -> Predicate:
    """``column = %(param)s`` when ``value`` is given."""
    return Predicate(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(param)), param, value)


def common_filters(
    *,
    model: str | None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    time_column: str,
    model_column: str = "model_name",
    version_column: str = "model_version",
) -> list[Predicate]:
    """The model / version / ``[start, end)`` predicates every list shares; the range is on ``time_column``."""
    t = sql.Identifier(time_column)
    return [
        equals(model_column, "model", model),
        equals(version_column, "version", version),
        Predicate(sql.SQL("{} >= {}").format(t, sql.Placeholder("start")), "start", start),
        Predicate(sql.SQL("{} < {}").format(t, sql.Placeholder("end")), "end", end),
    ]


def where(predicates: Sequence[Predicate]) -> tuple[sql.Composable, dict[str, Any]]:
    """``WHERE ...`` of the predicates that have a value (empty when none has), and their parameters."""
    given = [p for p in predicates if p.value is not None]
    if not given:
        return sql.SQL(""), {}
    clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(p.condition for p in given)
    return clause, {p.param: p.value for p in given}


def fetch_page(
    conn,
    *,
    columns: str,
    source: str,
    predicates: Sequence[Predicate],
    order_by: str,
    limit: int,
    offset: int,
    key: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of ``SELECT <columns> FROM <source> [WHERE ...] ORDER BY <order_by>`` and the total row count
    matching the filters. ``columns``, ``source``, ``order_by`` and ``key`` are fixed SQL text of this package.

    ``key``: the source's unique key columns (comma-separated; ``order_by`` must be a total order). A page past
    the first (``offset > 0``) then finds its keys first, which an index in ``order_by`` order (migration 011)
    answers with an index-only scan, and reads the full rows of those ``limit`` keys only: skipping 100,000 rows
    reads index entries, not 100,000 table rows. Same rows, same order as without ``key``."""
    check_paging(limit, offset)
    clause, params = where(predicates)
    total_rows = run(conn, text("SELECT count(*) AS total FROM ") + text(source) + clause, params)
    total = int(total_rows[0]["total"])
    if total <= offset:
        return [], total
    paging = text(" ORDER BY ") + text(order_by) + text(" LIMIT %(limit)s OFFSET %(offset)s")
    if key is not None and offset > 0:
        keys = text("SELECT ") + text(key) + text(" FROM ") + text(source) + clause + paging
        query = (
            text("SELECT ")
            + text(columns)
            + text(" FROM ")
            + text(source)
            + text(" JOIN (")
            + keys
            + text(") AS page USING (")
            + text(key)
            + text(") ORDER BY ")
            + text(order_by)
        )
    else:
        query = text("SELECT ") + text(columns) + text(" FROM ") + text(source) + clause + paging
    return run(conn, query, {**params, "limit": limit, "offset": offset}), total
