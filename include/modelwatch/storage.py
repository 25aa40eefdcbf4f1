"""Connections to the monitoring database and small SQL helpers.

Everything in ``include.modelwatch`` that touches PostgreSQL takes a DB-API
(psycopg2) connection as its first argument. Inside Airflow tasks that
connection comes from ``PostgresHook("monitoring_db").get_conn()``; from the
CLI and tests it comes from :func:`connect`, which reads the same connection
URI Airflow reads (``AIRFLOW_CONN_MONITORING_DB``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

CONN_ID = "monitoring_db"
CONN_ENV = "AIRFLOW_CONN_MONITORING_DB"
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def parse_conn_uri(uri: str) -> dict[str, Any]:
    """Turn an Airflow connection URI into psycopg2 ``connect`` keyword arguments.

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
    if hostport.count(":") == 1 and not hostport.startswith("%2F"):
        host, _, port = hostport.partition(":")
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
    """The monitoring database URI from the environment, or a clear error."""
    env = os.environ if env is None else env
    uri = env.get(CONN_ENV)
    if not uri:
        raise RuntimeError(
            f"{CONN_ENV} is not set: run through `make run`/`make test`, or export it "
            "(e.g. postgresql://user:pass@host:5432/modelwatch)"
        )
    return uri


def connect(uri: str | None = None):  # -> psycopg2 connection
    """Open a psycopg2 connection to the monitoring database."""
    import psycopg2

    return psycopg2.connect(**parse_conn_uri(uri or monitoring_uri()))


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


def fetch_dicts(conn, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run a query and return its rows as dicts."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        if cur.description is None:
            return []
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
