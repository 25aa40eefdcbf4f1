"""Fault-injection helpers for ``tests/faults`` (``make faults``): snapshots of the monitoring DB, runs over the
stack's REST API, and the kill of a task while it holds its write transaction.

How a kill lands "in the middle of the write", deterministically and without any hook in the product code: the test
opens a transaction that holds ``LOCK TABLE <t> IN SHARE ROW EXCLUSIVE MODE`` on a table the task writes (reads go
on, every write waits). The task then runs up to that write and blocks inside its own open transaction, which
``pg_stat_activity`` shows (``wait_event_type = 'Lock'``; ``backend_xid`` set when it already wrote rows before,
e.g. the predictions of a scoring batch before its ``scoring_batches`` row). The task's process (the LocalExecutor
worker's child titled ``airflow worker -- <task_instance.id>``) is then SIGKILLed, and only then is the lock
released: the orphaned backend runs the blocked statement, finds its client gone and rolls the whole transaction
back. Airflow's supervisor reports the task failed; its retry (after ``MODELWATCH_RETRY_DELAY_SECONDS``) redoes it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from include.modelwatch.ops import devstack

#: tables whose content is not the monitoring state (bookkeeping of migrations)
SKIP_TABLES = ("schema_migrations",)
#: columns that differ between two equally correct runs: who ran it and when (wall clock)
VOLATILE_NAMES = ("claimed_by", "created_by", "requested_by")


def volatile_columns(cur, table: str) -> set[str]:
    """Serial / identity keys, wall-clock defaults (now()), run ids, and foreign keys to serial keys: a retry draws
    new sequence values and another clock reading, which is not a difference in state."""
    cur.execute(
        "SELECT column_name, coalesce(column_default, ''), is_identity, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s",
        (table,),
    )
    out: set[str] = set()
    for name, default, identity, _dtype in cur.fetchall():
        d = default.lower()
        if (
            identity == "YES"
            or d.startswith("nextval(")
            or "now()" in d
            or "current_timestamp" in d
            or "clock_timestamp" in d
            or name in VOLATILE_NAMES
            or name.endswith("run_id")
            or name.startswith("duration")
        ):
            out.add(name)
    # foreign keys that point at a serial column of another table
    cur.execute(
        "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
        "AND a.attnum = ANY (c.conkey) JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = ANY (c.confkey) "
        "JOIN pg_attrdef d ON d.adrelid = r.attrelid AND d.adnum = r.attnum "
        "WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%'",
        (f"public.{table}",),
    )
    out.update(r[0] for r in cur.fetchall())
    return out


def snapshot(dsn: str) -> dict[str, tuple[int, str]]:
    """``{table: (rows, md5)}`` of every table of the monitoring DB: the md5 of its rows (stable columns only,
    as text, sorted) so that a lost, duplicated or changed row changes it."""
    out: dict[str, tuple[int, str]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        for (table,) in cur.fetchall():
            if table in SKIP_TABLES:
                continue
            skip = volatile_columns(cur, table)
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = %s ORDER BY ordinal_position",
                (table,),
            )
            cols = [r[0] for r in cur.fetchall() if r[0] not in skip]
            if not cols:
                continue
            row = ", ".join(f'"{c}"' for c in cols)
            cur.execute(
                f"SELECT count(*), coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '') FROM "  # noqa: S608
                f'(SELECT ROW({row})::text AS r FROM public."{table}") t'
            )
            n, digest = cur.fetchone() or (0, "")
            out[table] = (int(n), str(digest))
    return out


def diff(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> dict[str, str]:
    """Tables whose count or checksum differ, with a readable reason ({} when equal)."""
    out = {}
    for table in sorted(set(before) | set(after)):
        b, a = before.get(table), after.get(table)
        if b != a:
            out[table] = f"rows {b[0] if b else None} -> {a[0] if a else None}" + (
                "" if b and a and b[0] != a[0] else " (same count, content differs)"
            )
    return out


# --------------------------------------------------------------------------- processes


def task_pids(ti_id: str) -> list[int]:
    """Pids of the task process of task instance ``ti_id``: the LocalExecutor worker's child titled
    ``airflow worker -- <ti id>`` (the worker itself is ``airflow worker -- LocalExecutor: <ti id>``)."""
    want = f"airflow worker -- {ti_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip() == want:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@dataclass
class Kill:
    """What a kill hit: the task instances, their pids, whether they had already written in that transaction."""

    task_id: str
    ti_ids: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    blocked_backends: int = 0
    with_uncommitted_writes: int = 0
    at: float = 0.0


def running_tis(airflow_dsn: str, dag_id: str, run_id: str, task_id: str) -> list[str]:
    with psycopg.connect(airflow_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id::text FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s "
            "AND state = 'running'",
            (dag_id, run_id, task_id),
        ).fetchall()
    return [r[0] for r in rows]


def ti_tries(airflow_dsn: str, dag_id: str, run_id: str, task_id: str) -> list[tuple[int, str]]:
    """(try_number, state) of each (mapped) instance of the task in the run."""
    with psycopg.connect(airflow_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT try_number, state FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s "
            "ORDER BY map_index",
            (dag_id, run_id, task_id),
        ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def blocked_writers(cur, table: str) -> list[dict[str, Any]]:
    """Backends of other sessions waiting for a lock on ``table`` inside an open transaction."""
    cur.execute(
        "SELECT a.pid, a.backend_xid IS NOT NULL AS wrote, a.query FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND l.relation = %s::regclass "
        "AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL",
        (f"public.{table}",),
    )
    return [{"pid": r[0], "wrote": r[1], "query": r[2]} for r in cur.fetchall()]


@contextmanager
def write_lock(dsn: str, table: str) -> Iterator[psycopg.Connection]:
    """Hold every write to ``table`` (reads go on) until the block ends."""
    conn = psycopg.connect(dsn)
    try:
        conn.execute(f'LOCK TABLE public."{table}" IN SHARE ROW EXCLUSIVE MODE')
        yield conn
    finally:
        try:
            conn.rollback()
            conn.close()
        except psycopg.Error:  # the server restarted under it (the PostgreSQL-restart case)
            pass


def in_write(
    dsn: str,
    airflow_dsn: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    table: str,
    start_run: Callable[[], object],
    inject: Callable[[list[int]], None],
    timeout: float = 600.0,
) -> Kill:
    """Lock ``table`` for writes, call ``start_run()``, wait until ``task_id`` of the run blocks on its write
    inside its transaction, call ``inject(task pids)`` (the fault), then release the lock."""
    kill = Kill(task_id)
    with write_lock(dsn, table):
        with psycopg.connect(dsn, autocommit=True) as mon, mon.cursor() as cur:
            start_run()
            deadline = time.monotonic() + timeout
            settle = None
            while True:
                assert time.monotonic() < deadline, f"{dag_id} {run_id}: {task_id} never blocked writing {table}"
                tis = running_tis(airflow_dsn, dag_id, run_id, task_id)
                blocked = blocked_writers(cur, table)
                pids = [p for ti in tis for p in task_pids(ti)]
                if tis and blocked and pids:
                    settle = settle or time.monotonic()
                    # every running instance blocked (mapped tasks), or give the others 5 s
                    if len(blocked) >= len(tis) or time.monotonic() - settle > 5:
                        break
                time.sleep(0.2)
        kill.ti_ids, kill.pids = tis, pids
        kill.blocked_backends = len(blocked)
        kill.with_uncommitted_writes = sum(1 for b in blocked if b["wrote"])
        inject(pids)
        kill.at = time.monotonic()
        time.sleep(0.5)
    return kill


def sigkill(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def kill_in_write(
    dsn: str,
    airflow_dsn: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    table: str,
    start_run: Callable[[], object],
    timeout: float = 600.0,
) -> Kill:
    """SIGKILL the task process(es) of ``task_id`` while they hold their write transaction (see :func:`in_write`)."""
    return in_write(dsn, airflow_dsn, dag_id, run_id, task_id, table, start_run, sigkill, timeout)


def component_pids(home: Path, component: str) -> list[int]:
    """Pids of ``airflow <component>`` of the stack in ``home`` (e.g. the scheduler, not its LocalExecutor
    workers, whose process titles say ``airflow worker``)."""
    out = []
    for pid in devstack.processes_of(home, command=component.encode()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"/airflow") for a in argv) and component.encode() in argv:
            out.append(pid)
    return out
