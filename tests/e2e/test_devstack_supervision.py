"""The local stack of ``make run`` (include/modelwatch/ops/devstack.py) under faults, for real: embedded PostgreSQL
and the four Airflow components in a temporary ``MODELWATCH_HOME`` on free ports (as tests/browser/conftest.py
starts one, without the bootstrap and the replay: ``devstack.run(after_start=...)``).

One test, in the order a user meets the faults (about 3-4 minutes on a shared 2-core machine):

1. every listening socket of the stack's processes is on 127.0.0.1;
2. the scheduler is killed with SIGKILL: the supervisor logs it and starts a new one (new pid), whose heartbeat
   makes ``/api/v2/monitor/health`` healthy again; nothing else is restarted;
3. PostgreSQL is restarted (``pg_ctl restart -m fast`` as its system user): a new postmaster; whatever crashed on
   the dropped connection is restarted, and the stack serves a healthy health check afterwards;
4. a window is re-run with ``replay --window 2026-01 --rerun``: the run is cleared and its task runs a second try
   (a re-trigger with the same logical date would be refused with HTTP 409);
5. SIGTERM: no postmaster and no process of the stack is left, and the log says "PostgreSQL stopped" naming the
   postmaster that really ran (the restarted one), only after it is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from include.modelwatch.ops import devstack, pgembed
from tests.browser.conftest import Stack, free_port, stack_env, start_dev_run, stop_stack

ROOT = Path(__file__).resolve().parents[2]
START = "from include.modelwatch.ops import devstack; raise SystemExit(devstack.run(after_start=lambda stack: None))"
DAG = "modelwatch_healthcheck"  # needs no market data nor champion: a heartbeat row per data interval


def _wait(what: str, done: Callable[[], object], timeout: float, log: Path) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = done()
            if value:
                return value
        except OSError:
            pass
        time.sleep(1.0)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last lines of {log}:\n{tail}")


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _component(root: int, name: str) -> int | None:
    """The pid of Airflow component ``name`` that ``root`` (make run) started: a child of it leading its own
    process group, whose command line names it (the API server renames itself ``airflow api_server -- ...``)."""
    for pid in _descendants(root):
        words = _cmdline(pid).replace("api_server", "api-server").split()
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            leader = os.getpgid(pid) == pid
        except (OSError, IndexError, ValueError):
            continue
        if ppid == root and leader and name in words[:3] and _alive(pid):
            return pid
    return None


def _listening(pids: set[int]) -> dict[tuple[str, int], set[int]]:
    """(address, port) -> pids of ``pids`` that hold a listening TCP socket there (IPv4 and IPv6, /proc/net)."""
    by_inode: dict[str, tuple[str, int]] = {}
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A":  # LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            raw = bytes.fromhex(addr_hex)
            # /proc/net prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            by_inode[cols[9]] = (socket.inet_ntop(family, raw), int(port_hex, 16))
    out: dict[tuple[str, int], set[int]] = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in by_inode:
                out.setdefault(by_inode[link[8:-1]], set()).add(pid)
    return out


def _health(stack: Stack) -> dict:
    with urllib.request.urlopen(stack.url("/api/v2/monitor/health"), timeout=5) as resp:
        return json.loads(resp.read())


def _healthy_since(stack: Stack, since: datetime) -> bool:
    """Every component healthy, and the scheduler's heartbeat is newer than ``since`` (a new scheduler beats)."""
    health = _health(stack)
    if not all((health.get(k) or {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "triggerer")):
        return False
    beat = health["scheduler"].get("latest_scheduler_heartbeat")
    return bool(beat) and datetime.fromisoformat(beat) > since


def _replay(stack: Stack, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "include.modelwatch", "replay", "--url", stack.base_url, "--window", "2026-01"]
    return subprocess.run(
        [*cmd, "--stages", DAG, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def test_make_run_restarts_what_exits_survives_a_postgres_restart_and_stops_for_real():
    home = Path(tempfile.mkdtemp(prefix="mws-", dir="/tmp"))  # short: PostgreSQL's socket lives in it
    (home / "logs").mkdir()
    port = free_port()
    stack = Stack(f"http://127.0.0.1:{port}", home, port)
    log = home / "logs" / "devstack.log"
    env = stack_env(home, port)
    env.update(
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
    )
    proc = start_dev_run(stack, env, "-c", START)
    ok = False
    try:
        _wait("the stack to be up", lambda: "Airflow is up in" in log.read_text(), 240, log)
        text = log.read_text()
        assert "[modelwatch] dev mode: user admin/admin, bound to 127.0.0.1 only" in text.splitlines()[0]

        # 1. every listener of the stack on 127.0.0.1 (the API server; no log server, no PostgreSQL TCP port)
        listening = _listening(_descendants(proc.pid) | set(devstack.processes_of(home)))
        assert ("127.0.0.1", port) in listening, listening
        assert {addr for addr, _ in listening} == {"127.0.0.1"}, listening

        # 2. SIGKILL the scheduler: restarted (new pid), healthy again; the others keep their pids
        others = {name: _component(proc.pid, name) for name in ("api-server", "dag-processor", "triggerer")}
        old = _component(proc.pid, "scheduler")
        assert old and all(others.values()), (old, others)
        killed_at = datetime.now(UTC)
        os.kill(old, signal.SIGKILL)
        _wait(
            "the supervisor to notice the killed scheduler",
            lambda: "scheduler exited with code -9; restarting in 1s (restart #1)" in log.read_text(),
            30,
            log,
        )
        new = _wait("a new scheduler", lambda: (p := _component(proc.pid, "scheduler")) and p != old and p, 60, log)
        assert f"scheduler restarted (pid {new})" in log.read_text()
        _wait("a healthy scheduler heartbeat after the kill", lambda: _healthy_since(stack, killed_at), 120, log)
        assert {name: _component(proc.pid, name) for name in others} == others

        # 3. PostgreSQL restarted under the stack: a new postmaster, the stack healthy again
        pgdata = home / "pgdata"
        first_pm = pgembed.running_postmaster(pgdata)
        assert first_pm is not None
        restarted_at = datetime.now(UTC)
        second_pm = pgembed.restart_postmaster(pgdata)
        assert second_pm is not None and second_pm != first_pm and not _alive(first_pm)
        _wait("a healthy stack after the PostgreSQL restart", lambda: _healthy_since(stack, restarted_at), 180, log)
        assert proc.poll() is None, "make run stopped after the PostgreSQL restart"

        # 4. re-run a window: first run, then --rerun clears it (second try of its task), nothing new is triggered
        first = _replay(stack, env)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        again = _replay(stack, env, "--rerun")
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert f"re-run 2026-01 {DAG}: cleared its run replay__2026-01" in again.stdout
        status, tis = stack.api("GET", f"/api/v2/dags/{DAG}/dagRuns/replay__2026-01/taskInstances")
        assert status == 200 and [(t["task_id"], t["state"], t["try_number"]) for t in tis["task_instances"]] == [
            ("heartbeat", "success", 2)
        ]
        status, runs = stack.api("GET", f"/api/v2/dags/{DAG}/dagRuns?logical_date_gte=2026-01-01T00:00:00Z&limit=50")
        jan = [r["dag_run_id"] for r in runs["dag_runs"] if r["logical_date"].startswith("2026-01-01T00:00:00")]
        assert jan == ["replay__2026-01"]  # cleared and re-run, not duplicated

        # 5. SIGTERM: everything stops, and the log says so only after it is true
        tree = _descendants(proc.pid) | set(devstack.processes_of(home)) | {second_pm}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(180) == 0
        assert pgembed.running_postmaster(pgdata) is None and not _alive(second_pm)
        assert [p for p in tree if _alive(p)] == []
        assert devstack.processes_of(home) == []
        lines = log.read_text().splitlines()
        assert f"[modelwatch] PostgreSQL stopped (postmaster pid {second_pm} is gone)" in lines
        assert lines[-1] == "[modelwatch] all processes stopped"
        assert not any("NOT stopped" in line for line in lines)
        ok = True
    finally:
        stop_stack(proc, home, grace=120)
        if ok:
            shutil.rmtree(home, ignore_errors=True)
