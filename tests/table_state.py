"""Row counts and content checksums of tables: what a fault test compares before and after the fault."""

from __future__ import annotations


def table_state(conn, *tables: str) -> dict[str, tuple[int, str]]:
    """``{table: (rows, md5 of every row's text in order)}``; ends the read transaction."""
    from psycopg import sql

    out: dict[str, tuple[int, str]] = {}
    with conn.cursor() as cur:
        for table in tables:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {} t"
                ).format(sql.Identifier(table))
            )
            n, digest = cur.fetchone()
            out[table] = (int(n), str(digest))
    conn.rollback()
    return out
