"""Fixtures of the browser tests (``make browser``; not part of ``make test``).

One real stack per session, as ``make run`` starts it but isolated: ``python -m include.modelwatch dev run
--replay-start 2008-06-01 --replay-end 2009-01-01`` in a subprocess, with ``MODELWATCH_HOME`` a fresh
``/tmp/mwb-*`` directory (short: PostgreSQL's Unix socket lives in it) and ``MODELWATCH_PORT`` a free port, so a
user's ``make run`` on 8080 is never touched. The session waits until the replay finished with every run green and
the ``retrain_gated`` run that the October 2008 drift trigger woke is terminal, then hands the stack to the tests.
June 2008 onwards reproduces the replay's drift episode (warning in September, critical in October, one trigger),
the rejected retrain with its gates and the live-vs-backtest band (the training set and the candidates' evaluation
period do not depend on where the replay starts).

Fixtures (use them in any ``tests/browser/test_*.py``):

``stack`` (session) -> :class:`Stack`
    ``base_url`` (``http://127.0.0.1:<port>``), ``url(path)``, ``home``, ``logs`` (``<home>/logs``: devstack.log and
    one log per Airflow component), ``monitoring_uri`` (for ``storage.session``), ``dsn`` (plain psycopg),
    ``token()`` (admin JWT), ``api(method, path, body)`` -> ``(status, json)`` with that JWT, and
    ``query(sql, params)`` -> rows as dicts from the monitoring DB (a fresh connection per call, so the rows an
    action just wrote are visible).
``browser`` (session)
    Playwright's Chromium, always ``/usr/bin/chromium`` (the Debian package; Playwright's download is not used)
    with :data:`CHROMIUM_ARGS`.
``page`` (per test)
    A logged-in page (1400x1000) of a fresh browser context: the ``_token`` cookie from ``POST /auth/token``, checked
    once per session to really log in to the Airflow UI (else the session logs in through the UI's form). Every
    console error and uncaught page error is collected; the test fails at teardown if any is left (see
    ``console``). A failing test also leaves ``FAILED-<test>.png`` in the screenshot directory.
``console`` (per test) -> :class:`ConsoleErrors`
    The same collector: ``console.assert_clean("fleet page")`` fails right there naming the errors;
    ``console.allow(r"regex")`` accepts matching messages (e.g. an expected 4xx an action provokes).
``screenshot`` (per test)
    ``screenshot("fleet.png")`` (or ``screenshot("x.png", other_page)``) writes a full-page PNG into
    ``$MODELWATCH_SCREENSHOTS`` (default ``<repo>/.modelwatch/screenshots``) and returns its path.

Chart helpers live in ``tests/browser/charts.py``: ``wait_for_charts(page)`` and ``marks(page, "timeline")``, the
data points each chart drew (from the Vega view the ``page`` fixture's init script keeps, checked against the SVG).

Environment:

* ``MODELWATCH_BROWSER_TIMEOUT``: seconds allowed for the stack to be up, replayed and retrained (default 1800);
* ``MODELWATCH_BROWSER_HOME`` + ``MODELWATCH_BROWSER_PORT``: use a stack already running there (started with
  ``MODELWATCH_HOME=... MODELWATCH_PORT=... .venv/bin/python -m include.modelwatch dev run --replay-start
  2008-06-01``) instead of starting one: quick iterations on a test; the stack is neither waited for nor stopped;
* ``MODELWATCH_BROWSER_KEEP=1``: keep the session's ``/tmp/mwb-*`` home (it is kept anyway when the stack failed).

On failure to come up, the error names the log files; the stack is stopped with SIGTERM (as Ctrl+C in
``make run``), waited for, and anything still running from its home is killed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from include.modelwatch.ops import devstack
from tests.browser.charts import INIT_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
REPLAY_START, REPLAY_END = "2008-06-01", "2009-01-01"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN = {"username": "admin", "password": "admin"}
VIEWPORT = {"width": 1400, "height": 1000}
#: the model the page tests look at (the direction model, whose replay episode the README describes)
MODEL = "spx_signal"
#: what the session reports at its end (pytest_terminal_summary): the stack's timings, kept homes, kills
REPORT: list[str] = []
REPLAY_DONE = "[modelwatch] replay done in "
REPLAY_FAILED = "[modelwatch] replay finished with failures"


def screenshot_dir() -> Path:
    return Path(os.environ.get("MODELWATCH_SCREENSHOTS") or ROOT / ".modelwatch" / "screenshots")


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """A running ModelWatch stack (embedded PostgreSQL + Airflow + the /modelwatch pages)."""

    base_url: str
    home: Path
    port: int
    _token: str | None = field(default=None, repr=False)

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def socket_dir(self) -> Path:
        return self.home / "pgdata"  # pgembed.expected_socket_dir: a short home keeps the socket in pgdata

    @property
    def monitoring_uri(self) -> str:
        from include.modelwatch.ops import pgembed

        return pgembed.airflow_conn_uri(self.socket_dir, "modelwatch")

    @property
    def dsn(self) -> str:
        from include.modelwatch.ops import pgembed

        return pgembed.dsn(self.socket_dir, "modelwatch")

    def url(self, path: str) -> str:
        return self.base_url + path

    def token(self) -> str:
        if self._token is None:
            status, body = self.api("POST", "/auth/token", ADMIN, auth=False)
            assert status in (200, 201), f"POST /auth/token answered {status}: {body}"
            self._token = body["access_token"]
        return self._token

    def api(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(
            self.url(path),
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw or b"null")
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        from include.modelwatch.data import storage

        with storage.session(self.monitoring_uri) as conn:
            return storage.fetch_dicts(conn, sql, params or {})

    def log_files(self) -> list[Path]:
        return sorted(self.logs.glob("*.log"))

    def describe_logs(self, tail: int = 40) -> str:
        names = ", ".join(str(p) for p in self.log_files()) or f"(none yet in {self.logs})"
        devlog = self.logs / "devstack.log"
        last = devlog.read_text(errors="replace").splitlines()[-tail:] if devlog.exists() else []
        return f"logs: {names}\nlast lines of {devlog}:\n" + "\n".join(last)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(home: Path, port: int) -> dict[str, str]:
    """The environment of the stack's subprocess: this session's, without the Airflow / ModelWatch settings that
    tests/conftest.py exported for the throwaway test database, plus the stack's home and port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MODELWATCH_"))}
    (home / "run").mkdir(mode=0o700, exist_ok=True)
    env.update(
        MODELWATCH_HOME=str(home),
        MODELWATCH_PORT=str(port),
        # scheduled runs of today may fail once before the bootstrap registered the champion; their retry
        # (2 minutes by default) would hold the replay's first month back
        MODELWATCH_RETRY_DELAY_SECONDS="5",
        XDG_RUNTIME_DIR=str(home / "run"),
        PYTHONUNBUFFERED="1",
    )
    return env


def start_dev_run(st: Stack, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``python -m include.modelwatch dev run <args>`` for the stack of ``st`` (``args`` may also replace the whole
    command line after the interpreter, e.g. ``"-c", code``), its output appended to ``logs/devstack.log``, in a
    process group of its own (:func:`stop_stack` stops it)."""
    cmd = list(args) if args[:1] == ("-c",) else ["-m", "include.modelwatch", "dev", "run", *args]
    with open(st.logs / "devstack.log", "ab") as out:
        return subprocess.Popen(
            [sys.executable, *cmd], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_stack(proc: subprocess.Popen[bytes], home: Path, grace: float = 120.0) -> list[int]:
    """SIGTERM the ``dev run`` process (it stops Airflow, then PostgreSQL), wait, then kill what is left of the
    stack (its process group, then any process naming ``home``). Returns the pids that had to be killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    killed = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        killed.append(proc.pid)
    except (ProcessLookupError, PermissionError):
        pass
    proc.poll()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = devstack.processes_of(home)
        for pid in left:
            try:
                os.kill(pid, sig)
                killed.append(pid)
            except ProcessLookupError:
                pass
        if left:
            time.sleep(3)
    return sorted(set(killed))


class StackWaiter:
    """Polls a starting stack; each ``check_*`` returns True when its phase is done and fails with the logs."""

    def __init__(self, stack: Stack, proc: subprocess.Popen[bytes] | None, deadline: float) -> None:
        self.stack, self.proc, self.deadline = stack, proc, deadline

    def fail(self, why: str) -> None:
        pytest.fail(f"browser-test stack in {self.stack.home}: {why}\n{self.stack.describe_logs()}", pytrace=False)

    def alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.fail(f"`dev run` exited with {self.proc.returncode} before the tests started")

    def replay_done(self) -> bool:
        devlog = self.stack.logs / "devstack.log"
        text = devlog.read_text(errors="replace") if devlog.exists() else ""
        if REPLAY_FAILED in text:
            self.fail("the replay finished with failed runs")
        return REPLAY_DONE in text

    def retrain_done(self) -> bool:
        """The direction model's drift trigger exists and none of its triggers is pending or claimed any more (its
        retrain ran: the run the trigger's Asset event woke, or a scheduled one that claimed it). The other native
        model's retrains may wait for a human's approval (a borderline gate) for days: they are not waited for."""
        triggers = self.stack.query(
            "SELECT count(*) FILTER (WHERE trigger_type = 'drift') AS drift, "
            "count(*) FILTER (WHERE status IN ('pending', 'claimed')) AS open FROM retraining_triggers "
            "WHERE model_name = %(m)s",
            {"m": MODEL},
        )[0]
        if triggers["drift"] == 0 or triggers["open"] > 0:
            return False
        status, body = self.stack.api("GET", "/api/v2/dags/retrain_gated/dagRuns?limit=100")
        return status == 200 and any(r["run_type"] == "asset_triggered" for r in body["dag_runs"])

    def until(self, what: str, done) -> None:
        while time.monotonic() < self.deadline:
            self.alive()
            try:
                if done():
                    return
            except (OSError, urllib.error.URLError):
                pass  # the API server or PostgreSQL is not answering yet
            time.sleep(3)
        self.fail(f"timed out waiting for {what} (MODELWATCH_BROWSER_TIMEOUT)")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    attach_home, attach_port = os.environ.get("MODELWATCH_BROWSER_HOME"), os.environ.get("MODELWATCH_BROWSER_PORT")
    if attach_home and attach_port:
        yield Stack(f"http://127.0.0.1:{int(attach_port)}", Path(attach_home).resolve(), int(attach_port))
        return
    timeout = float(os.environ.get("MODELWATCH_BROWSER_TIMEOUT", "1800"))
    home = Path(tempfile.mkdtemp(prefix="mwb-", dir="/tmp"))
    (home / "logs").mkdir()
    port = free_port()
    st = Stack(f"http://127.0.0.1:{port}", home, port)
    t0 = time.monotonic()
    proc = start_dev_run(st, stack_env(home, port), "--replay-start", REPLAY_START, "--replay-end", REPLAY_END)
    ok = False
    try:
        waiter = StackWaiter(st, proc, t0 + timeout)
        waiter.until("the replay to finish", waiter.replay_done)
        t_replay = time.monotonic() - t0
        waiter.until("the retrain_gated run of the drift trigger", waiter.retrain_done)
        REPORT.append(
            f"stack {st.base_url} (home {home}): up and replayed {REPLAY_START}..{REPLAY_END} in {t_replay:.0f}s, "
            f"drift trigger's retrain done at {time.monotonic() - t0:.0f}s"
        )
        yield st
        ok = True
    finally:
        t_stop = time.monotonic()
        killed = stop_stack(proc, home)
        REPORT.append(
            f"stack stopped in {time.monotonic() - t_stop:.0f}s"
            + (f"; killed leftovers {killed}" if killed else "; nothing left running")
        )
        if ok and not os.environ.get("MODELWATCH_BROWSER_KEEP"):
            shutil.rmtree(home, ignore_errors=True)
        else:
            REPORT.append(f"kept the stack's home with its logs: {home}")


# --------------------------------------------------------------------------- the browser


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("browser stack")
        for line in [*REPORT, f"screenshots in {screenshot_dir()}"]:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def _no_stale_failure_screenshots() -> None:
    """A FAILED-<test>.png belongs to this session's failures only."""
    for old in screenshot_dir().glob("FAILED-*.png"):
        old.unlink()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make browser` installs the Debian package chromium"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _logged_in(page) -> bool:
    return "/auth/login" not in page.url and page.get_by_role("link", name="Dags").count() > 0


@pytest.fixture(scope="session")
def login_state(stack: Stack, browser) -> dict[str, Any]:
    """Storage state of a logged-in admin: the JWT as the UI's ``_token`` cookie, verified on the Airflow home
    page; when the cookie alone does not log in, the UI's login form is used."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        context.add_cookies([{"name": "_token", "value": stack.token(), "url": stack.base_url}])
        page = context.new_page()
        page.goto(stack.url("/"))
        page.wait_for_load_state("networkidle")
        if not _logged_in(page):
            context.clear_cookies()
            page.goto(stack.url("/auth/login?next=/"))
            page.get_by_label("Username").fill(ADMIN["username"])
            page.get_by_label("Password").fill(ADMIN["password"])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login)"))
            page.wait_for_load_state("networkidle")
        assert _logged_in(page), f"not logged in to the Airflow UI: at {page.url}"
        return context.storage_state()
    finally:
        context.close()


class ConsoleErrors:
    """Console errors and uncaught exceptions of a page (and its frames)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Accept messages matching ``pattern`` (regex) from now on, e.g. an expected 4xx an action provokes."""
        self._allowed.append(re.compile(pattern))

    def add(self, text: str) -> None:
        if not any(p.search(text) for p in self._allowed):
            self.errors.append(text)

    def attach(self, page) -> None:
        def on_console(msg) -> None:
            if msg.type == "error":
                loc = msg.location or {}
                self.add(f"console.error at {loc.get('url', '?')}:{loc.get('lineNumber', '?')}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.add(f"uncaught {exc}"))

    def assert_clean(self, where: str = "the page") -> None:
        errors, self.errors = self.errors, []
        assert not errors, f"console errors on {where}:\n" + "\n".join(errors)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture()
def console() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture()
def page(request, browser, login_state, console: ConsoleErrors):
    context = browser.new_context(viewport=VIEWPORT, storage_state=login_state)
    context.set_default_timeout(30_000)
    context.add_init_script(INIT_SCRIPT)  # keeps each chart's Vega view for tests/browser/charts.py
    pg = context.new_page()
    console.attach(pg)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        out = screenshot_dir()
        out.mkdir(parents=True, exist_ok=True)
        try:
            pg.screenshot(path=str(out / f"FAILED-{request.node.name}.png"), full_page=True)
        except Exception:  # the page may be gone; the test's own failure is what matters
            pass
    context.close()
    console.assert_clean(f"the pages of {request.node.name} (after the test)")


@pytest.fixture()
def screenshot(page):
    out = screenshot_dir()
    out.mkdir(parents=True, exist_ok=True)

    def take(name: str, target=None) -> Path:
        path = out / name
        (target or page).screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"{path}: suspiciously small screenshot"
        return path

    return take
