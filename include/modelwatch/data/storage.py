"""Connections to the monitoring database and small SQL helpers.

Everything in ``include.modelwatch`` that touches PostgreSQL takes a DB-API
(psycopg 3) connection as its first argument. There is one way to open one:
:func:`session`, a context manager that always closes it. Inside Airflow tasks
``include.tasks.common.monitoring_db()`` opens it through
``PostgresHook("monitoring_db")`` (every connection extra honoured); the CLI
and tests call ``session()`` with no opener, which reads the same connection
URI Airflow reads (``AIRFLOW_CONN_MONITORING_DB``).

Writes go through :func:`transaction`. A library *read* never commits or
rolls back: the connection may belong to a caller in the middle of its own
transaction.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

CONN_ID = "monitoring_db"
CONN_ENV = "AIRFLOW_CONN_MONITORING_DB"
SQL_DIR = Path(__file__).resolve().parents[3] / "sql"


def parse_conn_uri(uri: str) -> dict[str, Any]:
    """Turn an Airflow connection URI into libpq ``connect`` keyword arguments.

    Accepts ``postgres://``, ``postgresql://`` and ``postgresql+psycopg2://``.
    The host may be a URL-encoded Unix socket directory
    (``postgres://postgres@%2Ftmp%2Fsock/modelwatch``) or, libpq style, given
    as ``?host=/tmp/sock``. Unlike ``urllib``, the host keeps its case.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.split("+")[0] not in {"postgres", "postgresql"}:
        raise ValueError(f"not a PostgreSQL connection URI: {uri.split('@')[-1]!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    kwargs: dict[str, Any] = {}
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        if user:
            kwargs["user"] = unquote(user)
        if password:
            kwargs["password"] = unquote(password)
    else:
        hostport = netloc
    host, port = hostport, ""
    head, colon, tail = hostport.rpartition(":")
    if colon and tail.isdigit() and not head.endswith(":"):  # host:port, %2Fsocket%2Fdir:port, [::1]:port
        host, port = (head[1:-1] if head.startswith("[") and head.endswith("]") else head), tail
    if host:
        kwargs["host"] = unquote(host)
    if port:
        kwargs["port"] = int(port)
    if path:
        kwargs["dbname"] = unquote(path)
    for key, value in parse_qsl(query):
        if key == "__extra__":
            continue
        kwargs[key] = value
    return kwargs


def monitoring_uri(env: Mapping[str, str] | None = None) -> str:
    """The monitoring database URI: ``$AIRFLOW_CONN_MONITORING_DB``, else the running local stack's embedded
    server (``make run``: its socket in ``$MODELWATCH_HOME/pgdata``, so the CLI works beside it), else a clear
    error."""
    env = os.environ if env is None else env
    uri = env.get(CONN_ENV)
    if uri:
        return uri
    home = Path(env.get("MODELWATCH_HOME") or SQL_DIR.parent / ".modelwatch").resolve()
    pgdata = home / "pgdata"
    if (pgdata / ".s.PGSQL.5432").exists():
        from urllib.parse import quote

        return f"postgres://postgres@{quote(str(pgdata), safe='')}/modelwatch"
    raise RuntimeError(
        f"{CONN_ENV} is not set and no local stack is running in {home} (`make run`): start it, or export "
        f"{CONN_ENV} (e.g. postgresql://user:pass@host:5432/modelwatch)"
    )


def connect(uri: str | None = None):  # -> psycopg.Connection
    """Open a psycopg (3) connection to the monitoring database (client-side binding, see :func:`client_side`)."""
    import psycopg

    return client_side(psycopg.connect(**parse_conn_uri(uri or monitoring_uri())))


def client_side(conn):
    """Make ``conn`` (psycopg 3, as PostgresHook returns it) bind parameters client-side.

    ModelWatch's SQL uses ``%(name)s`` parameters in places the server cannot type
    (``interval``, DDL, literals inside expressions); ``ClientCursor`` merges
    them into the statement as psycopg2 did. Returns ``conn``.
    """
    import psycopg

    conn.cursor_factory = psycopg.ClientCursor
    return conn


@contextlib.contextmanager
def session(uri: str | None = None, *, opener: Callable[[], Any] | None = None) -> Iterator[Any]:
    """A monitoring-DB connection for the block, closed afterwards whatever happens.

    ``opener`` returns a new DB-API connection (tasks pass PostgresHook's);
    otherwise :func:`connect` opens ``uri`` (default: ``AIRFLOW_CONN_MONITORING_DB``).
    """
    conn = opener() if opener is not None else connect(uri)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def transaction(conn) -> Iterator[Any]:
    """Run a block in one transaction: commit on success, roll back on any error.

    Every write of a task goes through this, so a failed task leaves the
    database exactly as it was.
    """
    cur = conn.cursor()
    try:
        yield cur
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()


def read_sql(name: str) -> str:
    """Text of ``sql/<name>`` (the SQL that DAGs run lives in files, not f-strings)."""
    return (SQL_DIR / name).read_text()


def insert_sql(table: str, columns: Sequence[str], *, conflict: Sequence[str] = (), update: Sequence[str] = ()):
    """``INSERT INTO table (c1, c2) VALUES (%(c1)s, %(c2)s)`` composed with :mod:`psycopg.sql` (names quoted as
    identifiers, values bound by name), for a column list that is not fixed text (a dict's or dataclass's keys).
    ``conflict``: the key of ``ON CONFLICT (...) DO UPDATE SET c = EXCLUDED.c`` for each of ``update``."""
    from psycopg import sql

    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(map(sql.Placeholder, columns)),
    )
    if conflict:
        sets = [sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in update]
        query += sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
            sql.SQL(", ").join(map(sql.Identifier, conflict)), sql.SQL(", ").join(sets)
        )
    return query


def fetch_dicts(conn, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run a query (named ``%(name)s`` parameters only) and return its rows as dicts."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        if cur.description is None:
            return []
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
