"""The local stack behind ``make run``: embedded PostgreSQL + a full Airflow.

``modelwatch dev run`` does every step on a fresh machine and reuses the
state on the next start:

1. starts the embedded PostgreSQL (data in ``.modelwatch/pgdata``) unless both
   databases are external, and creates the ``airflow`` and ``modelwatch`` DBs;
2. ``airflow db migrate`` against PostgreSQL (skipped when already done for
   this Airflow version), then the monitoring migrations;
3. applies ``airflow_settings.yaml`` (connections, variables, pools);
4. starts the API server + UI, scheduler, DAG processor and triggerer on
   127.0.0.1:8080 (``MODELWATCH_PORT`` picks another port) with LocalExecutor
   and a bounded parallelism;
5. supervises them (:mod:`include.modelwatch.ops.supervise`): a component that
   exits is restarted with a backoff (1 s doubling to 60 s) and a log line; one
   component's exit (e.g. the triggerer on a PostgreSQL restart) never stops the
   others;
6. on Ctrl+C (SIGINT) or SIGTERM stops every process group it started, then the
   PostgreSQL postmaster that actually runs (a restarted one too), verifies each
   is gone, and leaves nothing running.

Dev mode only: the login admin/admin, and every listener on 127.0.0.1 (the API
server; the scheduler's and triggerer's log servers, which would bind every
interface, are not started: task logs are read from the local log folder;
PostgreSQL listens on a Unix socket only).

CeleryExecutor instead of LocalExecutor (``make run EXECUTOR=celery``, ``dev run --executor celery``): a local Redis
and two Celery workers, see :mod:`include.modelwatch.ops.celery_stack`.

External PostgreSQL: export ``AIRFLOW_CONN_MONITORING_DB`` (monitoring data)
and optionally ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` (Airflow metadata).

A second stack beside a user's ``make run`` (the browser tests start one):
``MODELWATCH_HOME`` selects the state directory (default ``.modelwatch``) and
``MODELWATCH_PORT`` the port (default 8080: the UI, the REST API the replay
calls, the execution API URL of task runs and the health check all use it).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import date
from pathlib import Path

from include.modelwatch.data.storage import CONN_ENV, parse_conn_uri
from include.modelwatch.ops import pgembed, supervise

ROOT = Path(__file__).resolve().parents[3]
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
HOST, DEFAULT_PORT = "127.0.0.1", 8080
PORT_ENV = "MODELWATCH_PORT"
# the replayed market history of ``make run``: [start, end), one run per month
REPLAY_START, REPLAY_END = date(2007, 1, 1), date(2009, 1, 1)
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: the log servers of the scheduler and the triggerer bind every interface (no host option): not started here, the
#: API server reads task and trigger logs from the local log folder
SKIP_SERVE_LOGS = ("scheduler", "triggerer")
#: the Debian packages' binaries (prometheus-node-exporter, prometheus, prometheus-alertmanager)
OBSERVE_BINARIES = ("/usr/bin/prometheus-node-exporter", "/usr/bin/prometheus", "/usr/bin/prometheus-alertmanager")
OBSERVE_PORTS = {"exporter": 9464, "node-exporter": 9100, "prometheus": 9090, "alertmanager": 9093}
DEV_MODE_NOTICE = (
    f"dev mode: user {ADMIN_USER}/{ADMIN_PASSWORD}, bound to {HOST} only; this account and this stack are for a "
    "developer's machine, never a shared host or production (README: Production deployments)"
)
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def state_dir() -> Path:
    return Path(os.environ.get("MODELWATCH_HOME", ROOT / ".modelwatch")).resolve()


def port() -> int:
    """The stack's port: ``$MODELWATCH_PORT`` or 8080; anything but an integer in 1..65535 is refused."""
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return DEFAULT_PORT
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{PORT_ENV}={raw!r}: not a port number") from None
    if not 1 <= value <= 65535:
        raise SystemExit(f"{PORT_ENV}={raw!r}: a port is 1..65535")
    return value


def base_url() -> str:
    """``http://127.0.0.1:<port>``: the UI, the REST API and the ``/modelwatch`` pages."""
    return f"http://{HOST}:{port()}"


def port_in_use(host: str, number: int) -> bool:
    """True when something already accepts connections on ``host:number``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, number)) == 0


def say(msg: str) -> None:
    print(f"[modelwatch] {msg}", flush=True)


def _secret(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))  # 86 characters: long enough for HS512
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(
    home: Path, metadata_uri: str, monitoring_uri: str, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment shared by every Airflow process and CLI call of this stack."""
    env = dict(os.environ if base is None else base)
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    pw_file = airflow_home / "simple_auth_manager_passwords.json"
    pw_file.write_text(f'{{"{ADMIN_USER}": "{ADMIN_PASSWORD}"}}')
    db = parse_conn_uri(monitoring_uri)
    api_port = port()
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pw_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_uri,
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(api_port),
            # the URL of the page links in task logs, approval requests and mails: this stack's (a user's own kept)
            "AIRFLOW__API__BASE_URL": env.get("AIRFLOW__API__BASE_URL") or f"http://{HOST}:{api_port}/",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(airflow_home / ".jwt_secret"),
            "AIRFLOW__API__SECRET_KEY": _secret(airflow_home / ".api_secret"),
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            # dev mode binds 127.0.0.1 only: no scheduler health server (it would bind 0.0.0.0)
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": HOST,
            CONN_ENV: monitoring_uri,
            "MODELWATCH_DB_HOST": str(db.get("host", "localhost")),
            "MODELWATCH_DB_PORT": str(db.get("port", 5432)),
            "MODELWATCH_DB_NAME": str(db.get("dbname", "modelwatch")),
            "MODELWATCH_DB_USER": str(db.get("user", "postgres")),
            "MODELWATCH_DB_PASSWORD": str(db.get("password", "")),
            "MODELWATCH_HOME": str(home),
            "MODELWATCH_ARTIFACT_DIR": env.get("MODELWATCH_ARTIFACT_DIR", str(home / "artifacts")),
            "MODELWATCH_INBOX_DIR": env.get("MODELWATCH_INBOX_DIR", str(home / "inbox")),
            "GX_ANALYTICS_ENABLED": "False",
            "NO_COLOR": "1",
        }
    )
    return env


def processes_of(home: Path, command: bytes = b"") -> list[int]:
    """Pids (other than this process) whose command line or environment names ``home``, or that hold a file under
    ``home`` open (a process that renamed itself, as Airflow's do with setproctitle, has overwritten its environment;
    its output still goes to ``home/logs``), and whose command line contains ``command``: what a stack using that
    state directory still has running (Linux /proc)."""
    mark, pids = str(home).encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if command in cmdline and (
                mark in cmdline or mark in (entry / "environ").read_bytes() or _holds_file_under(entry, str(home))
            ):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _holds_file_under(proc: Path, home: str) -> bool:
    """``proc`` has a file under ``home`` open; PostgreSQL's processes (their data directory) do not count: the
    server is stopped by its postmaster, and a backend whose database is named airflow is no Airflow process."""
    try:
        if os.readlink(proc / "exe").endswith(("/postgres", "/postmaster")):
            return False
        fds = list((proc / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd).startswith(home + os.sep):
                return True
        except OSError:
            continue
    return False


class Stack:
    """Owns PostgreSQL and the Airflow processes of one ``make run``."""

    def __init__(self, home: Path | None = None, executor: str = "local") -> None:
        self.home = home or state_dir()
        self.executor = executor
        self.home.mkdir(parents=True, exist_ok=True)
        self.pg: pgembed.EmbeddedPostgres | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        #: how each process of ``procs`` was started (the supervisor restarts it the same way)
        self.commands: dict[str, list[str]] = {}
        #: environment a process of ``procs`` gets on top of ``env`` (the Celery workers' own log ports, hostnames)
        self.extra_env: dict[str, dict[str, str]] = {}
        self.supervisor: supervise.Supervisor[subprocess.Popen[bytes]] | None = None
        self.env: dict[str, str] = {}

    # -- setup -----------------------------------------------------------------
    def prepare(self) -> dict[str, str]:
        """Databases, migrations and settings; returns the Airflow environment."""
        monitoring = os.environ.get(CONN_ENV)
        metadata = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        if not (monitoring and metadata):
            t = time.monotonic()
            self.pg = pgembed.start(self.home / "pgdata")
            for name in ("airflow", "modelwatch"):
                self.pg.ensure_database(name)
            say(f"embedded PostgreSQL up in {time.monotonic() - t:.1f}s (socket {self.pg.socket_dir})")
            monitoring = monitoring or self.pg.airflow_conn_uri("modelwatch")
            metadata = metadata or self.pg.sqlalchemy_uri("airflow")
        else:
            say("using external PostgreSQL for both databases")
        self.env = airflow_env(self.home, metadata, monitoring)
        if self.executor == "celery":
            from include.modelwatch.ops import celery_stack

            self.env.update(celery_stack.env_overrides(metadata))
        self._airflow_db_migrate()
        self._cli("db", "migrate")
        self._cli("settings", "apply")
        return self.env

    def _airflow_db_migrate(self) -> None:
        from importlib.metadata import version

        marker = self.home / "airflow" / ".db_migrated"
        stamp = f"{version('apache-airflow')} {self.env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}"
        if marker.exists() and marker.read_text() == stamp:
            return
        t = time.monotonic()
        self._run([self._airflow(), "db", "migrate"])
        marker.write_text(stamp)
        say(f"airflow db migrate done in {time.monotonic() - t:.1f}s")

    def _airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def _cli(self, *args: str) -> None:
        self._run([sys.executable, "-m", "include.modelwatch", *args])

    def _run(self, cmd: list[str]) -> None:
        res = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(res.stdout[-4000:] + res.stderr[-4000:])
            raise SystemExit(f"step failed ({res.returncode}): {' '.join(cmd[1:])}")
        for line in res.stdout.strip().splitlines()[-5:]:
            say(line)

    # -- processes ---------------------------------------------------------------
    def start_airflow(self) -> None:
        api_port = port()
        if port_in_use(HOST, api_port):  # else the health check below would ask the other server
            raise SystemExit(
                f"{HOST}:{api_port} is already in use (another make run?); stop it or set {PORT_ENV} to a free port"
            )
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        for comp in COMPONENTS:
            self.spawn(comp, airflow_command(self._airflow(), comp, api_port))
        say(f"started {', '.join(COMPONENTS)} (logs in {logs})")

    def spawn(
        self, name: str, args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``name`` (``args`` and extra ``env``, or how it was started before) in a process group of its own,
        output appended to ``logs/<name>.log``; it goes into ``procs``."""
        if args is not None:
            self.commands[name] = args
        if env is not None:
            self.extra_env[name] = env
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                self.commands[name],
                env={**self.env, **self.extra_env.get(name, {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def supervise(self, backoff: supervise.Backoff | None = None) -> supervise.Supervisor[subprocess.Popen[bytes]]:
        """Restart any process of ``procs`` that exits, with a backoff (a background thread; stopped by stop())."""
        self.supervisor = supervise.Supervisor(self.procs, self.spawn, backoff=backoff, say=say, reap=_reap)
        self.supervisor.start()
        return self.supervisor

    def start_executor(self, *, after_api: bool = False) -> None:
        """The executor's own processes: with ``executor="celery"`` Redis before Airflow's, the Celery workers once
        the API server is healthy (``after_api``; :func:`celery_stack.components`); nothing for LocalExecutor (the
        scheduler runs the tasks). They are supervised like the Airflow components."""
        if self.executor != "celery":
            return
        from include.modelwatch.ops import celery_stack

        started = []
        for comp in celery_stack.components(self.home, self.env):
            if comp.after_api != after_api:
                continue
            for number in comp.ports:
                if port_in_use(HOST, number):
                    raise SystemExit(f"{HOST}:{number} is already in use; cannot start {comp.name}")
            self.spawn(comp.name, list(comp.args), dict(comp.env))
            started.append(comp.name)
            if comp.name == "redis":
                celery_stack.wait_redis(self.env)
                say(f"CeleryExecutor: Redis on {celery_stack.broker_url(self.env)}")
        if after_api:
            say(f"Celery workers {', '.join(started)} up: {', '.join(celery_stack.wait_workers(self.env))}")

    def start_observability(self) -> None:
        """ModelWatch's Prometheus exporter, node-exporter, Prometheus (with ``observability/prometheus``: scrape
        config and alert rules) and Alertmanager (``observability/alertmanager.yml``), all on 127.0.0.1 at the ports
        ``prometheus.yml`` names, data under the state dir; stopped with the rest (they are in ``procs``)."""
        missing = [b for b in OBSERVE_BINARIES if not Path(b).exists()]
        if missing:
            raise SystemExit(f"{', '.join(missing)} missing: install the Debian packages (make observe does)")
        logs, data = self.home / "logs", self.home / "observe"
        commands = {
            "exporter": [
                sys.executable,
                "-m",
                "include.modelwatch",
                "metrics",
                "serve",
                "--host",
                HOST,
                "--port",
                "9464",
            ],
            "node-exporter": [OBSERVE_BINARIES[0], f"--web.listen-address={HOST}:9100"],
            "prometheus": [
                OBSERVE_BINARIES[1],
                f"--config.file={ROOT / 'observability' / 'prometheus' / 'prometheus.yml'}",
                f"--storage.tsdb.path={data / 'prometheus'}",
                f"--web.listen-address={HOST}:9090",
            ],
            "alertmanager": [
                OBSERVE_BINARIES[2],
                f"--config.file={ROOT / 'observability' / 'alertmanager.yml'}",
                f"--storage.path={data / 'alertmanager'}",
                f"--web.listen-address={HOST}:9093",
                "--cluster.listen-address=",
            ],
        }
        for name, args in commands.items():
            if port_in_use(HOST, OBSERVE_PORTS[name]):
                raise SystemExit(f"{HOST}:{OBSERVE_PORTS[name]} is already in use; cannot start {name}")
            (data / name).mkdir(parents=True, exist_ok=True)
            self.spawn(name, args)
        say(
            f"observability: Prometheus http://{HOST}:9090, Alertmanager http://{HOST}:9093, "
            f"ModelWatch metrics http://{HOST}:9464/metrics (logs in {logs})"
        )

    def wait_healthy(self, timeout: float = 120.0) -> dict[str, object]:
        import json

        deadline = time.monotonic() + timeout
        url = f"{base_url()}/api/v2/monitor/health"
        last = ""
        while time.monotonic() < deadline:
            for comp, proc in list(self.procs.items()):
                if self.supervisor is None and proc.poll() is not None:  # supervised: it is restarted
                    raise SystemExit(
                        f"airflow {comp} exited with {proc.returncode}; see {self.home / 'logs' / (comp + '.log')}"
                    )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    health = json.loads(resp.read())
                if all(
                    (health.get(k) or {}).get("status") == "healthy"
                    for k in ("metadatabase", "scheduler", "dag_processor", "triggerer")
                ):
                    return health
                last = str(health)
            except OSError as exc:
                last = str(exc)
            time.sleep(1.0)
        raise SystemExit(f"Airflow did not become healthy in {timeout:.0f}s: {last}")

    def stop(self) -> list[int]:
        """Stop every process group started here, then PostgreSQL; says only what it verified. Returns the pids
        still running (empty: everything is gone)."""
        if self.supervisor is not None:
            self.supervisor.stop()  # no restart of what is being stopped
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 25
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            try:  # the group may hold task runners even after its leader exited
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()
        # a running task's supervisor detaches into a process group of its own: it would outlive the scheduler
        for pid in processes_of(self.home, command=b"airflow"):  # not PostgreSQL: it stops cleanly below
            try:
                os.kill(pid, signal.SIGKILL)
                say(f"stopped a task process the scheduler left running (pid {pid})")
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 10
        while (left := [p for p in processes_of(self.home, command=b"airflow") if _alive(p)]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        if left:
            say(f"NOT stopped: airflow processes {left} still run after SIGKILL")
        if self.pg is not None:
            pg, self.pg = self.pg, None
            try:
                stopped = pg.stop()
            except RuntimeError as exc:
                say(f"PostgreSQL NOT stopped: {exc}")
                return [*left, pgembed.running_postmaster(pg.pgdata) or -1]
            running = pgembed.running_postmaster(pg.pgdata)
            if running is not None:  # another handle keeps it (never in make run), or it started again
                say(f"PostgreSQL NOT stopped: postmaster {running} still serves {pg.pgdata}")
                return [*left, running]
            say(f"PostgreSQL stopped (postmaster pid {stopped} is gone)" if stopped else "PostgreSQL was not running")
        return left


def airflow_command(airflow: str, comp: str, api_port: int) -> list[str]:
    """The command line of Airflow component ``comp``: the API server on 127.0.0.1 only; the scheduler and the
    triggerer without their log servers (:data:`SKIP_SERVE_LOGS`)."""
    args = [airflow, comp]
    if comp == "api-server":
        args += ["--host", HOST, "--port", str(api_port)]
    if comp in SKIP_SERVE_LOGS:
        args.append("--skip-serve-logs")
    return args


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _reap(name: str, proc: subprocess.Popen[bytes]) -> None:
    """After ``name`` exited: kill what is left of its process group (e.g. the API server's worker holding the
    port, the scheduler's executor workers), so that the restarted one starts clean."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(1.0)


def replay_command(start: date = REPLAY_START, end: date = REPLAY_END) -> list[str]:
    """The ``replay`` CLI call of :func:`populate`: months ``[start, end)`` against this stack's URL."""
    return [
        sys.executable,
        "-m",
        "include.modelwatch",
        "replay",
        "--url",
        base_url(),
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
    ]


def bootstrap(stack: Stack) -> None:
    """Train and register each native model's first champion (idempotent), and make the external models' drop
    folder. Runs before the scheduler starts: the DAGs' first scheduled runs then find a champion instead of
    failing and waiting out a retry delay."""
    t = time.monotonic()
    inbox = Path(stack.env.get("MODELWATCH_INBOX_DIR") or stack.home / "inbox")
    for kind in ("predictions", "outcomes"):
        (inbox / kind).mkdir(parents=True, exist_ok=True)
    stack._cli("bootstrap")
    say(f"bootstrap done in {time.monotonic() - t:.1f}s; external models' drop folder: {inbox}")


def populate(stack: Stack, start: date = REPLAY_START, end: date = REPLAY_END) -> None:
    """Replay the months [start, end) (default 2007-2008) through the real DAGs (skips what is done); the
    champion is bootstrapped first if it is not yet."""
    bootstrap(stack)
    say(f"replaying {start:%Y-%m}..{end:%Y-%m} (end excluded; one run per market month) ...")
    t = time.monotonic()
    res = subprocess.run(replay_command(start, end), env={**stack.env, "PYTHONUNBUFFERED": "1"}, cwd=ROOT)
    state = "done" if res.returncode == 0 else f"finished with failures (exit {res.returncode})"
    say(f"replay {state} in {time.monotonic() - t:.1f}s: open {base_url()} to browse runs and tables")


def run(
    after_start: Callable[[Stack], None] | None = None,
    *,
    replay_start: date = REPLAY_START,
    replay_end: date = REPLAY_END,
    observe: bool = False,
    executor: str = "local",
) -> int:
    """Entry point of ``make run``: set up, start, print the URL, wait for Ctrl+C.

    Without ``after_start`` the champion is bootstrapped and the months [replay_start, replay_end) replayed.
    ``observe``: also the observability stack (:meth:`Stack.start_observability`). ``executor``: ``local``
    (LocalExecutor) or ``celery`` (Redis + two Celery workers, :meth:`Stack.start_executor`).
    """
    t0 = time.monotonic()
    stack = Stack(executor=executor)
    stopping = {"flag": False}

    def on_signal(signum: int, _frame: object) -> None:
        if not stopping["flag"]:
            stopping["flag"] = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    say(DEV_MODE_NOTICE)
    try:
        stack.prepare()
        if after_start is None:
            bootstrap(stack)
        stack.start_executor()
        stack.start_airflow()
        if observe:
            stack.start_observability()
        stack.supervise()
        stack.wait_healthy()
        stack.start_executor(after_api=True)
        up = time.monotonic() - t0
        say(f"Airflow is up in {up:.1f}s: {base_url()}  (dev mode login {ADMIN_USER} / {ADMIN_PASSWORD})")
        if after_start is not None:
            after_start(stack)
        else:
            populate(stack, replay_start, replay_end)
        say("press Ctrl+C to stop everything (a component that exits is restarted)")
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        say("stopping ...")
        return 0
    finally:
        left = stack.stop()
        say(f"NOT everything stopped: pids {left} still run" if left else "all processes stopped")
