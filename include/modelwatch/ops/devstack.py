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
5. on Ctrl+C (SIGINT) or SIGTERM stops every process group it started, then
   PostgreSQL, and leaves nothing running.

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
from include.modelwatch.ops import pgembed

ROOT = Path(__file__).resolve().parents[3]
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
HOST, DEFAULT_PORT = "127.0.0.1", 8080
PORT_ENV = "MODELWATCH_PORT"
# the replayed market history of ``make run``: [start, end), one run per month
REPLAY_START, REPLAY_END = date(2007, 1, 1), date(2009, 1, 1)
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: the Debian packages' binaries (prometheus-node-exporter, prometheus, prometheus-alertmanager)
OBSERVE_BINARIES = ("/usr/bin/prometheus-node-exporter", "/usr/bin/prometheus", "/usr/bin/prometheus-alertmanager")
OBSERVE_PORTS = {"exporter": 9464, "node-exporter": 9100, "prometheus": 9090, "alertmanager": 9093}
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
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(airflow_home / ".jwt_secret"),
            "AIRFLOW__API__SECRET_KEY": _secret(airflow_home / ".api_secret"),
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
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
    """Pids (other than this process) whose command line or environment names ``home``, and whose command line
    contains ``command``: what a stack using that state directory still has running (Linux /proc)."""
    mark, pids = str(home).encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if command in cmdline and (mark in cmdline or mark in (entry / "environ").read_bytes()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


class Stack:
    """Owns PostgreSQL and the Airflow processes of one ``make run``."""

    def __init__(self, home: Path | None = None, executor: str = "local") -> None:
        self.home = home or state_dir()
        self.executor = executor
        self.home.mkdir(parents=True, exist_ok=True)
        self.pg: pgembed.EmbeddedPostgres | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
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
            args = [self._airflow(), comp]
            if comp == "api-server":
                args += ["--host", HOST, "--port", str(api_port)]
            out = open(logs / f"{comp}.log", "ab")
            self.procs[comp] = subprocess.Popen(
                args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        say(f"started {', '.join(COMPONENTS)} (logs in {logs})")

    def start_executor(self, *, after_api: bool = False) -> None:
        """The executor's own processes: with ``executor="celery"`` Redis before Airflow's, the Celery workers once
        the API server is healthy (``after_api``; :func:`celery_stack.components`); nothing for LocalExecutor (the
        scheduler runs the tasks)."""
        if self.executor != "celery":
            return
        from include.modelwatch.ops import celery_stack

        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        started = []
        for comp in celery_stack.components(self.home, self.env):
            if comp.after_api != after_api:
                continue
            for number in comp.ports:
                if port_in_use(HOST, number):
                    raise SystemExit(f"{HOST}:{number} is already in use; cannot start {comp.name}")
            out = open(logs / f"{comp.name}.log", "ab")
            self.procs[comp.name] = subprocess.Popen(
                comp.args,
                env={**self.env, **comp.env},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
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
            out = open(logs / f"{name}.log", "ab")
            self.procs[name] = subprocess.Popen(
                args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
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
            for comp, proc in self.procs.items():
                if proc.poll() is not None:
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

    def stop(self) -> None:
        """Stop every process group started here, then PostgreSQL."""
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
        self.procs.clear()
        # a running task's supervisor detaches into a process group of its own: it would outlive the scheduler
        for pid in processes_of(self.home, command=b"airflow"):  # not PostgreSQL: it stops cleanly below
            try:
                os.kill(pid, signal.SIGKILL)
                say(f"stopped a task process the scheduler left running (pid {pid})")
            except (ProcessLookupError, PermissionError):
                pass
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
            say("PostgreSQL stopped")


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
    try:
        stack.prepare()
        if after_start is None:
            bootstrap(stack)
        stack.start_executor()
        stack.start_airflow()
        if observe:
            stack.start_observability()
        stack.wait_healthy()
        stack.start_executor(after_api=True)
        up = time.monotonic() - t0
        say(f"Airflow is up in {up:.1f}s: {base_url()}  (login {ADMIN_USER} / {ADMIN_PASSWORD})")
        if after_start is not None:
            after_start(stack)
        else:
            populate(stack, replay_start, replay_end)
        say("press Ctrl+C to stop everything")
        while True:
            for comp, proc in stack.procs.items():
                if proc.poll() is not None:
                    say(f"airflow {comp} exited with {proc.returncode}; stopping")
                    return 1
            time.sleep(1.0)
    except KeyboardInterrupt:
        say("stopping ...")
        return 0
    finally:
        stack.stop()
        say("all processes stopped")
