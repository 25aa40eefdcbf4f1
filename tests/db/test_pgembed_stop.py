"""The embedded PostgreSQL's stop (include/modelwatch/ops/pgembed.py) stops the postmaster that actually runs: after a
``pg_ctl restart`` that is a new process, which pgserver's own cleanup would leave running, orphaned (what the
issue-20 fault probe saw when make run said "PostgreSQL stopped")."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from include.modelwatch.ops import pgembed


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_stop_after_a_pg_ctl_restart_stops_the_new_postmaster_and_verifies_it():
    home = Path(tempfile.mkdtemp(prefix="mwp-", dir="/tmp"))
    pgdata = home / "pgdata"
    pg = pgembed.start(pgdata)
    try:
        first = pgembed.running_postmaster(pgdata)
        assert first is not None and first == pg.pid
        second = pgembed.restart_postmaster(pgdata)
        assert second == pgembed.running_postmaster(pgdata)
        assert second is not None and second != first and not _alive(first)
        assert pg.stop() == second
        assert not _alive(second) and pgembed.running_postmaster(pgdata) is None
        assert pg.stop() is None  # nothing runs any more: nothing to stop, nothing claimed
    finally:
        left = pgembed.running_postmaster(pgdata)
        if left is not None:
            os.kill(left, 9)
        shutil.rmtree(home, ignore_errors=True)


def test_running_postmaster_ignores_a_stale_pid_file(tmp_path):
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n")  # a live pid, but no PostgreSQL
    assert pgembed.running_postmaster(tmp_path) is None
    (tmp_path / "postmaster.pid").write_text("not a pid\n")
    assert pgembed.running_postmaster(tmp_path) is None
    assert pgembed.running_postmaster(tmp_path / "missing") is None
