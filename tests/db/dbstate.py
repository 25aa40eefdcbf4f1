"""The state of the monitoring database as row counts and checksums, to prove that a refused input left it as it
was (issue 20, bad-input corpus): :func:`snapshot` before, :func:`snapshot` after, :func:`changed` between them."""

from __future__ import annotations

from include.modelwatch.data import storage

#: Every ModelWatch table of the schema (the migrations' bookkeeping included: a refused migration must not touch it).
_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"


def snapshot(conn, *tables: str) -> dict[str, tuple[int, str]]:
    """table -> (row count, md5 of its rows as text in sorted order) for ``tables``, by default every table of the
    public schema; ends the read transaction."""
    from psycopg import sql

    out: dict[str, tuple[int, str]] = {}
    with conn.cursor() as cur:
        if not tables:
            cur.execute(_TABLES)
            tables = tuple(t for (t,) in cur.fetchall())
        for table in tables:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"
                ).format(sql.Identifier(table))
            )
            n, digest = cur.fetchone()
            out[table] = (int(n), str(digest))
    conn.rollback()
    return out


def changed(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> set[str]:
    """The tables whose rows differ (or that appeared or went)."""
    return {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}


def empty_tables(conn) -> None:
    """Empty every data table but the migrations' bookkeeping and the seeded response rules (the ``db`` fixture calls
    this; append-only tables refuse DELETE, TRUNCATE is a table-level reset for tests)."""
    with storage.transaction(conn) as cur:
        cur.execute(
            "SELECT string_agg(format('%I', tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename NOT IN ('schema_migrations', 'automated_response_rules')"
        )
        tables = cur.fetchone()[0]
        if tables:
            cur.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
