"""Fleet benchmark: one ``drift_hourly`` run over a synthetic fleet, under the real scheduler.

Run from the repo root: ``.venv/bin/python -m bench.fleet`` (``--help`` for the sizes; ``--no-compare`` skips the
per-version run). Writes ``bench/results/fleet.json`` and prints a table.

1. A throwaway stack as ``make run`` starts it (``include.modelwatch.ops.devstack.Stack``: embedded PostgreSQL,
   migrations, ``airflow_settings.yaml``, then api-server, scheduler with LocalExecutor, DAG processor and
   triggerer), in a fresh ``/tmp/mwf-*`` ``MODELWATCH_HOME`` on a free port. The scheduler's cron schedules are off
   (``[scheduler] use_job_schedule = False``), so the only run is the one triggered here.
2. The fleet is registered through the registry (``registry.register_version`` + ``set_alias``, as the bootstrap
   does): ``--versions`` model versions (champion v1 and challenger v2 of ``ceil(versions / 2)`` models), each
   with ``--features`` numeric features, a reference profile built by the bootstrap's
   ``candidate.reference_profile`` from ``--reference-rows`` rows, and one hour of ``--rows`` predictions written
   by ``signals.replace_predictions`` (what ``score_signals`` uses). Every fifth version's window is shifted
   (ten features by half a standard deviation), so some versions drift. No outcomes: concept drift is skipped.
3. One ``drift_hourly`` run is triggered through the REST API with that hour as its data interval and waited for.
   Measured: wall time from the trigger request to the run's ``end_date``; the task instances (count, states,
   summed durations); CPU seconds from ``/proc`` (utime + stime, children included) of every process of the
   stack: the task processes are the LocalExecutor workers' reaped children (each task runs in a process the
   worker forks, so its CPU lands in the worker's ``cutime``/``cstime`` when it exits); the workers' own CPU is
   the task supervision; PostgreSQL's backends land in the postmaster's children CPU. The snapshot after the run
   waits until every task process has exited (the run ends when the last task reported its state).
4. Unless ``--no-compare``: the stack is restarted with ``MODELWATCH_DRIFT_MAX_CHUNKS`` / ``_MIN_CHUNK_SIZE``
   set so that every chunk holds one version (the mapping before issue 15: one task instance per version and
   task), and the same window is run again (it replaces the first run's rows). Both runs must leave the same
   ``drift_windows`` verdicts.

The stack is stopped with SIGTERM at the end (``Stack.stop``), also on Ctrl+C or an error; the home is deleted
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.data.storage import CONN_ENV
from include.modelwatch.ops import devstack, replay

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fleet.json"
DAG_ID = "drift_hourly"
WINDOW_START = datetime(2025, 1, 6, 10, tzinfo=UTC)  # a Monday hour; no market data is involved
WINDOW_END = WINDOW_START + timedelta(hours=1)
TARGET_S = 300.0
RUN_TIMEOUT_S = 1800.0
SEED = 15
CLASSES = ("SELL", "HOLD", "BUY")
MAX_CHUNKS_ENV, MIN_CHUNK_SIZE_ENV = "MODELWATCH_DRIFT_MAX_CHUNKS", "MODELWATCH_DRIFT_MIN_CHUNK_SIZE"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(msg: str) -> None:
    print(f"[bench.fleet] {msg}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((devstack.HOST, 0))
        return int(sock.getsockname()[1])


class Api(replay.AirflowApi):
    def get(self, path: str) -> Any:
        status, body = self._request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (the API pages at ``[api] maximum_page_limit``, 100)."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(out)}")
            out += page["task_instances"]
            if not page["task_instances"] or len(out) >= page["total_entries"]:
                return out

    def trigger_window(self, run_id: str, nth: int) -> None:
        """A run of the benchmark window (its data interval); the ``nth`` run gets a logical date ``nth`` seconds
        into the window, as logical dates are unique per DAG (the tasks read only the data interval)."""
        status, body = self._request(
            "POST",
            f"/api/v2/dags/{DAG_ID}/dagRuns",
            {
                "dag_run_id": run_id,
                "logical_date": (WINDOW_START + timedelta(seconds=nth)).isoformat(),
                "data_interval_start": WINDOW_START.isoformat(),
                "data_interval_end": WINDOW_END.isoformat(),
                "conf": {},
                "note": "bench/fleet.py",
            },
        )
        if status not in (200, 201):
            raise RuntimeError(f"trigger {DAG_ID} {run_id} failed ({status}): {body}")


# --------------------------------------------------------------------------- the fleet


def model_names(n_versions: int) -> list[tuple[str, int, str]]:
    """(model, version, alias) of the fleet: champion v1 and challenger v2 of ceil(n / 2) models."""
    out = []
    for i in range(math.ceil(n_versions / 2)):
        out.append((f"fleet_{i:03d}", 1, "champion"))
        if len(out) < n_versions:
            out.append((f"fleet_{i:03d}", 2, "challenger"))
    return out


def _frame(rng: np.random.Generator, rows: int, features: list[str], shift: float = 0.0) -> pd.DataFrame:
    """Features of a few shapes (normal, lognormal, uniform, discrete); ``shift`` moves the first ten by that many
    standard deviations."""
    cols = {}
    for j, f in enumerate(features):
        kind = j % 4
        if kind == 0:
            x = rng.normal(0.0, 1.0, rows)
        elif kind == 1:
            x = rng.lognormal(0.0, 0.5, rows)
        elif kind == 2:
            x = rng.uniform(-1.0, 1.0, rows)
        else:
            x = rng.poisson(3.0, rows).astype(float)
        if j < 10 and shift:
            x = x + shift * float(np.std(x))
        cols[f] = x
    return pd.DataFrame(cols)


def seed_fleet(monitoring_uri: str, n_versions: int, n_features: int, rows: int, reference_rows: int, artifacts: Path):
    """Register the fleet and write its window's predictions; returns the fleet [(model, version, shifted)]."""
    from include.modelwatch import registry
    from include.modelwatch.data import signals, storage
    from include.modelwatch.training.candidate import reference_profile

    features = [f"feat_{j:02d}" for j in range(n_features)]
    step = (WINDOW_END - WINDOW_START) / rows
    fleet = []
    with storage.session(monitoring_uri) as conn:
        for i, (model, version, alias) in enumerate(model_names(n_versions)):
            rng = np.random.default_rng(SEED + i)
            ref = _frame(rng, reference_rows, features)
            proba_ref = rng.dirichlet([2.0, 3.0, 2.0], size=reference_rows)
            importance = {f: float(w) for f, w in zip(features, rng.uniform(0.5, 2.0, n_features), strict=True)}
            mv = registry.register_version(
                conn,
                model_name=model,
                algorithm="synthetic",
                artifact=f"bench fleet {model} v{version}".encode(),
                artifact_dir=artifacts,
                features=features,
                classes=list(CLASSES),
                params={"bench": "fleet"},
                reference_profile=reference_profile(ref, proba_ref, importance),
                run_id="bench_fleet",
                status=registry.ACTIVE,
            )
            if mv.version != version:
                raise RuntimeError(f"{model}: registered v{mv.version}, expected v{version} (not a fresh database?)")
            shifted = i % 5 == 4
            cur_x = _frame(rng, rows, features, shift=0.5 if shifted else 0.0)
            proba = rng.dirichlet([2.0, 3.0, 2.0], size=rows)
            labels = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)]
            records = cur_x.to_dict(orient="records")
            batch = [
                {
                    "ts": WINDOW_START + k * step,
                    "features": records[k],
                    "predicted_label": str(labels[k]),
                    "probabilities": dict(zip(CLASSES, map(float, proba[k]), strict=True)),
                    "confidence": float(proba[k].max()),
                }
                for k in range(rows)
            ]
            with storage.transaction(conn) as cur:
                registry.set_alias(
                    conn,
                    model,
                    alias,
                    mv.version,
                    reason="bench fleet",
                    changed_at=WINDOW_START - timedelta(days=1),
                    run_id="bench_fleet",
                    cur=cur,
                )
                signals.replace_predictions(
                    cur,
                    model_name=model,
                    model_version=mv.version,
                    symbol="SYN",
                    timeframe="1h",
                    window_start=WINDOW_START,
                    window_end=WINDOW_END,
                    rows=batch,
                    run_id="bench_fleet",
                )
            fleet.append((model, mv.version, shifted))
    return fleet


# --------------------------------------------------------------------------- CPU from /proc


def _stat(pid: int) -> dict[str, Any] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; fields[0] is the state (field 3)
    return {
        "ppid": int(fields[1]),
        "start": int(fields[19]),
        "self": (int(fields[11]) + int(fields[12])) / CLK_TCK,
        "children": (int(fields[13]) + int(fields[14])) / CLK_TCK,
        "cmd": cmd,
    }


def cpu_snapshot(stack: devstack.Stack) -> dict[tuple[int, int], dict[str, Any]]:
    """Every process of the stack, keyed by (pid, start time): the components, PostgreSQL's postmaster, anything
    naming the home, and all their descendants (the executor workers and the task processes rewrite their
    command line and environment with setproctitle, so only their ancestry names them)."""
    roots = set(devstack.processes_of(stack.home)) | {p.pid for p in stack.procs.values()}
    if stack.pg is not None and stack.pg.pid:
        roots.add(int(stack.pg.pid))
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = st

    def ours(pid: int) -> bool:
        seen = set()
        while pid in stats and pid not in seen:
            if pid in roots:
                return True
            seen.add(pid)
            pid = stats[pid]["ppid"]
        return False

    return {(pid, st["start"]): {**st, "pid": pid} for pid, st in stats.items() if pid != os.getpid() and ours(pid)}


def _is_worker(p: dict[str, Any], stack: devstack.Stack) -> bool:
    return "LocalExecutor" in p["cmd"] and p["ppid"] == stack.procs["scheduler"].pid


def _role(p: dict[str, Any], stack: devstack.Stack, workers: set[int]) -> str:
    names = {proc.pid: comp for comp, proc in stack.procs.items()}
    if p["pid"] in names:
        return names[p["pid"]]
    if p["pid"] in workers:
        return "executor worker"
    if p["ppid"] in workers:
        return "task processes"  # a task process not reaped yet
    if "postgres" in p["cmd"]:
        return "postgres"
    return names.get(p["ppid"], "other")  # e.g. the api-server's worker process


def wait_idle(stack: devstack.Stack, timeout: float = 60.0) -> bool:
    """Wait until no executor worker has a child left (every task process exited and was reaped, so its CPU is
    in the worker's children CPU); True if so within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = cpu_snapshot(stack).values()
        workers = {p["pid"] for p in procs if _is_worker(p, stack)}
        if not any(p["ppid"] in workers for p in procs):
            return True
        time.sleep(0.5)
    return False


def cpu_delta(before: dict, after: dict, stack: devstack.Stack) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by role; ``task processes`` = the executor workers' children."""
    out: dict[str, float] = {}

    def add(role: str, seconds: float) -> None:
        out[role] = out.get(role, 0.0) + max(0.0, seconds)

    workers = {p["pid"] for p in after.values() if _is_worker(p, stack)}
    for key, p in after.items():
        b = before.get(key, {"self": 0.0, "children": 0.0})
        role = _role(p, stack, workers)
        if role == "executor worker":
            add("task processes", p["children"] - b["children"])
            add("executor workers", p["self"] - b["self"])
        else:
            add(role, p["self"] - b["self"] + p["children"] - b["children"])
    return {k: round(v, 2) for k, v in sorted(out.items())}


# --------------------------------------------------------------------------- one run


def _ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure(stack: devstack.Stack, label: str, n_versions: int, nth: int) -> dict[str, Any]:
    api = Api(devstack.base_url(), devstack.ADMIN_USER, devstack.ADMIN_PASSWORD)
    api.wait_for_dag(DAG_ID)  # parsed, and unpaused
    time.sleep(5.0)  # let the start-up settle (the DAG processor's first parse, the triggerer)
    run_id = f"bench_fleet__{label}"
    before = cpu_snapshot(stack)
    t0 = time.time()
    api.trigger_window(run_id, nth)
    say(f"{label}: triggered {DAG_ID} {run_id}; waiting ...")
    state = api.wait(DAG_ID, run_id, timeout=RUN_TIMEOUT_S)
    seen_end = time.time()
    idle = wait_idle(stack)  # the run ends when its last task reported; its process may still be exiting
    after = cpu_snapshot(stack)
    run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    tis = api.task_instances(run_id)
    end = _ts(run.get("end_date")) or seen_end
    by_task: dict[str, dict[str, Any]] = {}
    for ti in tis:
        t = by_task.setdefault(ti["task_id"], {"instances": 0, "states": {}, "duration_s": 0.0})
        t["instances"] += 1
        t["states"][ti["state"]] = t["states"].get(ti["state"], 0) + 1
        t["duration_s"] = round(t["duration_s"] + float(ti.get("duration") or 0.0), 2)
    cpu = cpu_delta(before, after, stack)
    ran = [ti for ti in tis if ti["state"] not in ("skipped", None)]
    out = {
        "label": label,
        "run_id": run_id,
        "state": state,
        "wall_s": round(end - t0, 2),
        "queued_to_end_s": round(end - (_ts(run.get("queued_at")) or t0), 2),
        "task_instances": len(tis),
        "task_instances_run": len(ran),
        "task_instance_seconds": round(sum(float(ti.get("duration") or 0.0) for ti in tis), 2),
        "by_task": by_task,
        "chunk_labels": sorted({ti.get("rendered_map_index") or "" for ti in tis if ti["task_id"] == "check_window"}),
        "cpu_s": cpu,
        "cpu_all_task_processes_reaped": idle,
        "cpu_s_total": round(sum(cpu.values()), 2),
        "cpu_s_per_model_tasks": round(cpu.get("task processes", 0.0) / n_versions, 3),
        "cpu_s_per_model_total": round(sum(cpu.values()) / n_versions, 3),
    }
    say(
        f"{label}: {state} in {out['wall_s']:.1f}s, {len(tis)} task instances, "
        f"task CPU {cpu.get('task processes', 0.0):.1f}s, stack CPU {out['cpu_s_total']:.1f}s"
    )
    return out


def verdicts(monitoring_uri: str) -> list[tuple]:
    from include.modelwatch.data import storage

    with storage.session(monitoring_uri) as conn:
        rows = storage.fetch_dicts(
            conn,
            "SELECT model_name, model_version, status, n_rows, round(drift_score::numeric, 9) AS score, level, "
            "drifted FROM drift_windows WHERE window_start = %(s)s ORDER BY model_name, model_version",
            {"s": WINDOW_START},
        )
    return [tuple(str(v) for v in r.values()) for r in rows]


@contextmanager
def running_stack(home: Path, env: dict[str, str]) -> Iterator[devstack.Stack]:
    """Prepare (PostgreSQL, migrations, settings) and start Airflow in ``home`` with ``env`` exported; stop it
    all (SIGTERM, then whatever is left) when the block ends, whatever happens."""
    os.environ.update(env)
    stack = devstack.Stack(home)
    try:
        stack.prepare()
        yield stack
    finally:
        stack.stop()
        for key in env:
            os.environ.pop(key, None)


def start_airflow(stack: devstack.Stack) -> float:
    t = time.monotonic()
    stack.start_airflow()
    stack.wait_healthy(timeout=300)
    return time.monotonic() - t


# --------------------------------------------------------------------------- main


def table(runs: list[dict[str, Any]], n_versions: int) -> str:
    head = f"{'mapping':<12} {'state':<8} {'wall s':>7} {'TIs':>5} {'TI s':>7} {'task CPU s':>11} {'stack CPU s':>12} "
    head += f"{'task CPU s/model':>17} {'stack CPU s/model':>18}"
    lines = [head, "-" * len(head)]
    for r in runs:
        lines.append(
            f"{r['label']:<12} {r['state']:<8} {r['wall_s']:>7.1f} {r['task_instances']:>5} "
            f"{r['task_instance_seconds']:>7.1f} {r['cpu_s'].get('task processes', 0.0):>11.1f} "
            f"{r['cpu_s_total']:>12.1f} {r['cpu_s_per_model_tasks']:>17.2f} {r['cpu_s_per_model_total']:>18.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", type=int, default=50)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--rows", type=int, default=10_000, help="predictions per version in the window")
    ap.add_argument("--reference-rows", type=int, default=5_000)
    ap.add_argument("--no-compare", action="store_true", help="skip the run with one version per task")
    ap.add_argument("--keep", action="store_true", help="keep the /tmp/mwf-* home")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the stacks' stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    home = Path(tempfile.mkdtemp(prefix="mwf-", dir="/tmp"))  # short: PostgreSQL's socket lives in it
    port = free_port()
    for key in (CONN_ENV, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", MAX_CHUNKS_ENV, MIN_CHUNK_SIZE_ENV):
        os.environ.pop(key, None)  # always the embedded PostgreSQL of this home, default chunking first
    base = {
        "MODELWATCH_HOME": str(home),
        devstack.PORT_ENV: str(port),
        "MODELWATCH_ARTIFACT_DIR": str(home / "artifacts"),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the triggered run
        # the log servers of the worker and the triggerer: free ports, not another stack's 8793 / 8794
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    say(f"home {home}, port {port}; {args.versions} versions x {args.features} features x {args.rows} rows")
    result: dict[str, Any] = {
        "versions": args.versions,
        "features": args.features,
        "rows_per_window": args.rows,
        "reference_rows": args.reference_rows,
        "target_s": TARGET_S,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": [],
    }
    try:
        with running_stack(home, base) as stack:
            monitoring = stack.env[CONN_ENV]
            t = time.monotonic()
            fleet = seed_fleet(
                monitoring, args.versions, args.features, args.rows, args.reference_rows, home / "artifacts"
            )
            result["seed_s"] = round(time.monotonic() - t, 1)
            result["shifted_versions"] = [f"{m} v{v}" for m, v, s in fleet if s]
            say(f"fleet registered, {args.versions * args.rows} predictions written in {result['seed_s']:.0f}s")
            result["airflow_start_s"] = round(start_airflow(stack), 1)
            result["runs"].append(measure(stack, "chunked", args.versions, 0))
            first = verdicts(monitoring)
        if not args.no_compare:
            one = {MAX_CHUNKS_ENV: str(max(1, args.versions)), MIN_CHUNK_SIZE_ENV: "1"}
            with running_stack(home, {**base, **one}) as stack:
                start_airflow(stack)
                result["runs"].append(measure(stack, "per_version", args.versions, 1))
                second = verdicts(stack.env[CONN_ENV])
            result["same_verdicts"] = first == second
        result["verdicts"] = {
            "windows": len(first),
            "evaluated": sum(1 for r in first if r[2] == "evaluated"),
            "drifted": sum(1 for r in first if r[6] == "True"),
        }
    except KeyboardInterrupt:
        say("interrupted; the stack was stopped")
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    chunked = result["runs"][0]
    result["within_target"] = chunked["state"] == "success" and chunked["wall_s"] < TARGET_S
    if len(result["runs"]) == 2:
        result["speedup_wall"] = round(result["runs"][1]["wall_s"] / chunked["wall_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result["runs"], args.versions))
    print(
        f"\nverdicts: {result['verdicts']}; chunks: {'; '.join(chunked['chunk_labels'])}"
        + (f"\nsame verdicts in both runs: {result['same_verdicts']}" if "same_verdicts" in result else "")
        + f"\ntarget: chunked run under {TARGET_S:.0f}s: {'yes' if result['within_target'] else 'NO'}"
        + f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
    )
    return 0 if chunked["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
