"""Fleet load: a synthetic fleet of external models fed through the external-model contract, one ``drift_hourly``
run under the real scheduler, and what it costs (wall time, task instances, start-up vs work, DB growth, memory).

Run from the repo root: ``.venv/bin/python -m bench.fleet_load`` (``make fleet-bench``; ``--help`` for the sizes).
Writes ``bench/results/fleet_load.json`` and prints a report. Not part of ``make bench`` (about 15 minutes here).

1. A throwaway stack as ``make run`` starts it (``bench.fleet.running_stack``: embedded PostgreSQL, migrations,
   ``airflow_settings.yaml``, then api-server, scheduler with LocalExecutor, DAG processor, triggerer), in a fresh
   ``/tmp/mwl-*`` ``MODELWATCH_HOME``, on ``$MODELWATCH_PORT`` (else a free port), cron schedules off
   (``[scheduler] use_job_schedule = False``): the only run is the one triggered here. No replay, no market data.
2. The fleet, through the external-model contract (README, "Monitor your own model"): ``--versions`` versions
   (champion v1 and challenger v2 of ``ceil(versions / 2)`` models), each a spec with ``--features`` numeric
   features and a ``--reference-rows`` reference frame (Parquet), registered with ``external.register`` (the body
   of ``external register`` and ``POST /modelwatch/external-models``); then one prediction batch of ``--rows`` rows
   per version for the benchmark hour, dropped as Parquet into the inbox and loaded by ``external.feed.ingest``
   (the body of ``ingest_predictions``: Great Expectations checks, then the load), timed per batch. Every fifth
   version's batch is shifted (ten features by half a standard deviation), so some versions drift.
3. One ``drift_hourly`` run for that hour, triggered through the REST API and waited for (``bench.fleet.measure``:
   wall from the trigger request to the run's end, task instances, CPU seconds from ``/proc``). Around it: the
   size of every monitoring table (``pg_total_relation_size``) and of the Airflow metadata database before and
   after, a 1 Hz sampler of the load average and of every stack process's memory (``VmHWM``: each process's own
   peak, so a task process that lived between two samples still counts if it was seen once), and, per task
   instance, its start-up and its work from the API's times and its own log (:func:`breakdown`).
4. A projection to a larger fleet on a Celery deployment (:func:`project`, assumptions in its docstring).

The stack is stopped with SIGTERM at the end, also on Ctrl+C or an error; the home is deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import fleet as base
from include.modelwatch.data.storage import CONN_ENV
from include.modelwatch.ops import devstack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fleet_load.json"
DAG_ID = base.DAG_ID
WINDOW_START, WINDOW_END = base.WINDOW_START, base.WINDOW_END
CLASSES = ("down", "flat", "up")
SYMBOL, TIMEFRAME = "SYN", "1h"
SEED = 20
RUN_ID = "bench_fleet_load"
INBOX_ENV = "MODELWATCH_INBOX_DIR"
#: declared (min, max) of the features by shape, in bench.fleet._frame's order: normal, lognormal, uniform, Poisson
KIND_RANGES = ((-100.0, 100.0), (0.0, 1000.0), (-10.0, 10.0), (0.0, 1000.0))


def say(msg: str) -> None:
    print(f"[bench.fleet_load] {msg}", flush=True)


# --------------------------------------------------------------------------- the fleet (pure)


@dataclass(frozen=True)
class Member:
    model: str
    version: int
    alias: str
    shifted: bool
    seed: int


def fleet_members(n_versions: int) -> list[Member]:
    """The fleet: champion v1 and challenger v2 of ``ceil(n / 2)`` models; every fifth version shifted."""
    return [
        Member(model, version, alias, i % 5 == 4, SEED + i)
        for i, (model, version, alias) in enumerate(base.model_names(n_versions))
    ]


def feature_names(n_features: int) -> list[str]:
    return [f"feat_{j:02d}" for j in range(n_features)]


def spec_of(member: Member, n_features: int) -> dict[str, Any]:
    """The member's external-model spec (``external.schema.parse_spec``): numeric features with declared ranges
    wide enough for their shapes (``bench.fleet._frame``: normal, lognormal, uniform, Poisson; without a range the
    reference's range widened by its width each side applies, and a lognormal's tail in 10,000 rows can leave the
    range of 5,000 reference rows: the batch is refused), a declared accuracy baseline."""
    names = feature_names(n_features)
    ranges = [KIND_RANGES[j % len(KIND_RANGES)] for j in range(n_features)]
    return {
        "name": member.model,
        "classes": list(CLASSES),
        "owner": "fleet-bench@example.com",
        "horizon_days": 1,
        "description": "bench.fleet_load synthetic model",
        "features": [{"name": f, "min": lo, "max": hi} for f, (lo, hi) in zip(names, ranges, strict=True)],
        "baseline": {"accuracy": 0.5},
    }


def _predictions(rng: np.random.Generator, x: pd.DataFrame, ts: pd.DatetimeIndex) -> pd.DataFrame:
    proba = rng.dirichlet([2.0, 3.0, 2.0], size=len(x))
    proba = proba / proba.sum(axis=1, keepdims=True)
    out = pd.concat([pd.DataFrame({"ts": ts}), x.reset_index(drop=True)], axis=1)
    for k, c in enumerate(CLASSES):
        out[f"p_{c}"] = proba[:, k]
    out["predicted_label"] = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)]
    return out


def reference_frame(member: Member, n_features: int, rows: int) -> pd.DataFrame:
    """The member's reference frame (validation-period predictions): ``rows`` rows spread over the five days
    before the benchmark day, so the version is live from the benchmark day on."""
    rng = np.random.default_rng(member.seed)
    start = WINDOW_START.replace(hour=0) - timedelta(days=5)
    ts = pd.date_range(start, start + timedelta(days=5), periods=rows + 1, inclusive="left", tz=UTC)
    return _predictions(rng, base._frame(rng, rows, feature_names(n_features)), ts)


def batch_frame(member: Member, n_features: int, rows: int) -> pd.DataFrame:
    """The member's prediction batch for the benchmark hour, as the drop-folder contract takes it."""
    rng = np.random.default_rng(member.seed + 10_000)
    x = base._frame(rng, rows, feature_names(n_features), shift=0.5 if member.shifted else 0.0)
    ts = pd.date_range(WINDOW_START, WINDOW_END, periods=rows + 1, inclusive="left", tz=UTC)
    out = _predictions(rng, x, ts)
    head = pd.DataFrame(
        {"model_name": member.model, "model_version": member.version, "symbol": SYMBOL, "timeframe": TIMEFRAME},
        index=out.index,
    )
    return pd.concat([head, out], axis=1)


def write_fleet(members: list[Member], n_features: int, rows: int, reference_rows: int, out: Path, inbox: Path):
    """Specs (JSON) and reference frames under ``out``; each batch under ``inbox/predictions/`` (written under a
    dot name and renamed, as the contract asks). Returns [(member, spec path, reference path)]."""
    (inbox / "predictions").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for m in members:
        spec = out / f"{m.model}_v{m.version}.json"
        spec.write_text(json.dumps(spec_of(m, n_features), indent=1))
        ref = out / f"{m.model}_v{m.version}_reference.parquet"
        reference_frame(m, n_features, reference_rows).to_parquet(ref, index=False)
        tmp = inbox / "predictions" / f".{m.model}_v{m.version}.parquet"
        batch_frame(m, n_features, rows).to_parquet(tmp, index=False)
        tmp.rename(tmp.with_name(tmp.name[1:]))
        files.append((m, spec, ref))
    return files


# --------------------------------------------------------------------------- through the contract


def register_fleet(conn, files) -> list[float]:
    """Register every member through the contract (``external.register``); seconds per registration."""
    from include.modelwatch.external import register, schema

    secs = []
    for m, spec, ref in files:
        t = time.perf_counter()
        done = register.register_external(conn, schema.load_spec(spec), ref, alias=m.alias, by="bench.fleet_load")
        if done.model.version != m.version:
            raise RuntimeError(f"{m.model}: registered v{done.model.version}, expected v{m.version}")
        secs.append(time.perf_counter() - t)
    return secs


def ingest_inbox(conn, inbox: Path) -> list[dict[str, Any]]:
    """Load every dropped batch as ``ingest_predictions`` does (``external.feed.ingest``), timed per batch; a
    quarantined batch fails the benchmark with its error."""
    from include.modelwatch.external import feed

    out = []
    for batch in feed.pending_files(inbox):
        t = time.perf_counter()
        res = feed.ingest(conn, batch, inbox, run_id=RUN_ID)
        if res.status != "loaded":
            raise RuntimeError(f"batch {batch.name} not loaded: {res.describe()}")
        out.append({"batch": batch.name, "rows": res.n_written, "s": round(time.perf_counter() - t, 2)})
    return out


# --------------------------------------------------------------------------- sizes, load, memory

_SIZES = """
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1
"""


def table_sizes(uri: str) -> dict[str, int]:
    """Bytes of every table of the database at ``uri`` (indexes and TOAST included)."""
    from include.modelwatch.data import storage

    with storage.session(uri) as conn:
        rows = storage.fetch_dicts(conn, _SIZES)
        conn.rollback()
    return {r["name"]: int(r["bytes"]) for r in rows}


def database_bytes(uri: str) -> int:
    from include.modelwatch.data import storage

    with storage.session(uri) as conn:
        rows = storage.fetch_dicts(conn, "SELECT pg_database_size(current_database()) AS b")
        conn.rollback()
    return int(rows[0]["b"])


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Tables that grew (or shrank), bytes, largest first."""
    d = {t: after.get(t, 0) - before.get(t, 0) for t in set(before) | set(after)}
    return dict(sorted(((t, v) for t, v in d.items() if v), key=lambda kv: -abs(kv[1])))


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Sampler(threading.Thread):
    """Every ``every`` s: the 1-minute load average, and the memory of every process of the stack (RSS now, and
    ``VmHWM``, the process's own peak RSS so far). Keeps the peaks by role (``bench.fleet`` roles)."""

    def __init__(self, stack: devstack.Stack, every: float = 1.0):
        super().__init__(daemon=True)
        self.stack, self.every = stack, every
        self.halt = threading.Event()
        self.load: list[float] = []
        self.peak_total_rss_mb = 0.0
        self.peak_hwm_mb: dict[str, float] = {}
        self.task_processes_seen: set[tuple[int, int]] = set()

    def run(self) -> None:
        while not self.halt.is_set():
            self.load.append(float(Path("/proc/loadavg").read_text().split()[0]))
            procs = base.cpu_snapshot(self.stack)
            workers = {p["pid"] for p in procs.values() if base._is_worker(p, self.stack)}
            total = 0.0
            for key, p in procs.items():
                role = base._role(p, self.stack, workers)
                total += _status_kb(p["pid"], "VmRSS") / 1024
                hwm = _status_kb(p["pid"], "VmHWM") / 1024
                self.peak_hwm_mb[role] = max(self.peak_hwm_mb.get(role, 0.0), hwm)
                if role == "task processes":
                    self.task_processes_seen.add(key)
            self.peak_total_rss_mb = max(self.peak_total_rss_mb, total)
            self.halt.wait(self.every)

    def stop(self) -> dict[str, Any]:
        self.halt.set()
        self.join(timeout=10)
        return {
            "load_1min": {
                "first": self.load[0] if self.load else None,
                "max": max(self.load, default=None),
                "mean": round(statistics.fmean(self.load), 2) if self.load else None,
                "last": self.load[-1] if self.load else None,
                "samples": len(self.load),
            },
            "peak_total_rss_mb": round(self.peak_total_rss_mb),
            "peak_process_mb_by_role": {k: round(v) for k, v in sorted(self.peak_hwm_mb.items())},
            "task_processes_sampled": len(self.task_processes_seen),
        }


# --------------------------------------------------------------------------- start-up vs work, per task instance

_VERSION_LINE = re.compile(r"^summary: (\S+ v\d+) window ")


def _when(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00"))


def log_events(path: Path) -> list[tuple[datetime, str]]:
    """(timestamp, event) of every JSON line of an Airflow 3 task log."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
            out.append((_when(rec["timestamp"]), str(rec.get("event", ""))))
        except (ValueError, KeyError, TypeError):
            continue
    return [(t, e) for t, e in out if t is not None]


def breakdown(ti: dict[str, Any], events: list[tuple[datetime, str]]) -> dict[str, Any]:
    """One task instance's time: ``queued_s`` (queued until its process started), ``duration_s`` (start to end),
    split from its log into ``pre_execute_s`` (start until the end of Airflow's "Pre Execute" group: the
    process and the DAG file's parse), ``body_s`` (until "Done. Returned value" or the skip), ``post_s`` (the
    rest: XCom push, state report). For a chunk task the body holds one summary line per model version; the
    steady ``per_version_s`` is the spacing of those lines, ``work_s`` = versions x that, and ``startup_s`` =
    duration - work (process, parse, imports, first connection, exit). Other tasks (and a chunk of one version):
    ``work_s`` = the body, imports included."""
    start, end = _when(ti.get("start_date")), _when(ti.get("end_date"))
    queued = _when(ti.get("queued_when"))
    out: dict[str, Any] = {
        "task_id": ti["task_id"],
        "map_index": ti.get("map_index"),
        "state": ti.get("state"),
        "queued_s": round((start - queued).total_seconds(), 2) if start and queued else None,
        "duration_s": round(float(ti.get("duration") or 0.0), 2),
    }
    if not (start and end and events):
        return out
    pre_end = next((t for t, e in events if e == "::endgroup::"), None)
    done = next((t for t, e in events if e.startswith(("Done. Returned value", "Skipping task"))), None)
    done = done or next((t for t, e in reversed(events) if "summary:" in e), None)
    versions: dict[str, datetime] = {}
    for t, e in events:
        m = _VERSION_LINE.match(e)
        if m and m.group(1) not in versions:
            versions[m.group(1)] = t
    if pre_end:
        out["pre_execute_s"] = round((pre_end - start).total_seconds(), 2)
    if pre_end and done:
        out["body_s"] = round((done - pre_end).total_seconds(), 2)
        out["post_s"] = round((end - done).total_seconds(), 2)
    stamps = sorted(versions.values())
    out["versions"] = len(stamps)
    if len(stamps) >= 2:
        per = (stamps[-1] - stamps[0]).total_seconds() / (len(stamps) - 1)
        out["per_version_s"] = round(per, 3)
        out["work_s"] = round(per * len(stamps), 2)
        out["startup_s"] = round(out["duration_s"] - out["work_s"], 2)
    elif "body_s" in out:
        out["work_s"] = out["body_s"]
        out["startup_s"] = round(out["duration_s"] - out["work_s"], 2)
    return out


def task_log(airflow_home: Path, run_id: str, ti: dict[str, Any]) -> Path | None:
    folder = airflow_home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
    if int(ti.get("map_index", -1)) >= 0:
        folder = folder / f"map_index={ti['map_index']}"
    path = folder / f"attempt={max(1, int(ti.get('try_number') or 1))}.log"
    return path if path.exists() else None


def summarize_tasks(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task id: instances, and the median / sum of each time of those that ran."""
    out: dict[str, dict[str, Any]] = {}
    for task_id in dict.fromkeys(r["task_id"] for r in rows):
        mine = [r for r in rows if r["task_id"] == task_id]
        ran = [r for r in mine if r["state"] == "success"]
        s: dict[str, Any] = {"instances": len(mine), "ran": len(ran)}
        for k in ("queued_s", "duration_s", "pre_execute_s", "startup_s", "work_s", "per_version_s"):
            vals = [r[k] for r in ran if r.get(k) is not None]
            if vals:
                s[f"median_{k}"] = round(statistics.median(vals), 3)
                if k != "per_version_s":
                    s[f"sum_{k}"] = round(sum(vals), 2)
        out[task_id] = s
    return out


# --------------------------------------------------------------------------- projection


def project(result: dict[str, Any], versions: int = 500, slots: tuple[int, ...] = (2, 8, 16, 32)) -> dict[str, Any]:
    """The cost of one ``drift_hourly`` run at ``versions`` on a Celery fleet with ``S`` worker slots, from this
    run's figures. Assumptions: each slot has its own core (so a version's work costs its single-core time,
    ``per_version_cpu_s`` = the task processes' CPU seconds / versions measured here, not the wall time of four
    tasks sharing two cores); a mapped task costs ``startup_s`` (median measured start-up of a chunk task) plus its
    versions' work; the ``monitoring_db`` pool and ``MODELWATCH_DRIFT_MAX_CHUNKS`` are raised to ``S`` (else they
    cap the parallelism at 4 and 8); the two mapped phases (``check_window``, ``compute_drift``) run one after the
    other, each as ``ceil(chunks / S)`` waves; the unmapped tasks and the scheduler's hand-offs cost the measured
    rest (the run's wall minus its two mapped phases' walls), unchanged. DB growth scales with versions."""
    run = result["run"]
    tasks = result["tasks"]
    cpu_task = run["cpu_s"].get("task processes", 0.0)
    per_version_cpu = cpu_task / result["versions"]
    check, compute = tasks.get("check_window", {}), tasks.get("compute_drift", {})
    startup = statistics.fmean([check.get("median_startup_s", 0.0), compute.get("median_startup_s", 0.0)])
    work_share = {
        "check_window": check.get("sum_work_s", 0.0),
        "compute_drift": compute.get("sum_work_s", 0.0),
    }
    total_work = sum(work_share.values()) or 1.0
    rest = max(0.0, run["wall_s"] - result["phase_wall_s"]["check_window"] - result["phase_wall_s"]["compute_drift"])
    rows = []
    for s in slots:
        chunks = s
        per_chunk = math.ceil(versions / chunks)
        phases = {
            t: math.ceil(chunks / s) * (startup + per_chunk * per_version_cpu * share / total_work)
            for t, share in work_share.items()
        }
        rows.append(
            {
                "slots": s,
                "chunks": chunks,
                "versions_per_chunk": per_chunk,
                "task_instances": result["run"]["task_instances"] - 2 * result["chunks"] + 2 * chunks,
                "wall_s": round(rest + sum(phases.values())),
                "cpu_s": round(versions * per_version_cpu + 2 * chunks * startup),
            }
        )
    scale = versions / result["versions"]
    return {
        "versions": versions,
        "per_version_cpu_s": round(per_version_cpu, 2),
        "startup_s_per_chunk_task": round(startup, 2),
        "rest_s": round(rest, 1),
        "by_slots": rows,
        "db_growth_per_day_mb": round(result["db_growth_per_day_mb"]["monitoring_drift_run"] * scale, 1),
        "ingest_growth_per_day_mb": round(result["db_growth_per_day_mb"]["predictions_ingest"] * scale, 1),
        "assumptions": project.__doc__.split("Assumptions: ", 1)[1].replace("\n    ", " ").strip(),
    }


# --------------------------------------------------------------------------- one run


def phase_wall(tis: list[dict[str, Any]], task_id: str) -> float:
    """First start to last end of a task's instances that ran."""
    spans = [
        (_when(t["start_date"]), _when(t["end_date"]))
        for t in tis
        if t["task_id"] == task_id and t["state"] == "success" and t.get("start_date") and t.get("end_date")
    ]
    if not spans:
        return 0.0
    return round((max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds(), 2)  # type: ignore[operator]


def run_once(stack: devstack.Stack, n_versions: int) -> dict[str, Any]:
    monitoring = stack.env[CONN_ENV]
    airflow_db = stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    sizes_before, af_before = table_sizes(monitoring), database_bytes(airflow_db)
    sampler = Sampler(stack)
    sampler.start()
    try:
        run = base.measure(stack, "chunked", n_versions, 0)
    finally:
        sampled = sampler.stop()
    sizes_after, af_after = table_sizes(monitoring), database_bytes(airflow_db)
    api = base.Api(devstack.base_url(), devstack.ADMIN_USER, devstack.ADMIN_PASSWORD)
    tis = api.task_instances(run["run_id"])
    airflow_home = Path(stack.env["AIRFLOW_HOME"])
    rows = []
    for ti in sorted(tis, key=lambda t: (t["task_id"], t.get("map_index", -1))):
        path = task_log(airflow_home, run["run_id"], ti)
        rows.append(breakdown(ti, log_events(path) if path else []))
    return {
        "run": run,
        "sampled": sampled,
        "task_instances": rows,
        "tasks": summarize_tasks(rows),
        "phase_wall_s": {t: phase_wall(tis, t) for t in ("check_window", "compute_drift")},
        "monitoring_growth_bytes": growth(sizes_before, sizes_after),
        "monitoring_bytes_after": sum(sizes_after.values()),
        "airflow_db_growth_bytes": af_after - af_before,
    }


def report(result: dict[str, Any]) -> str:
    run, s = result["run"], result["sampled"]
    lines = [
        f"fleet: {result['versions']} versions x {result['features']} features x {result['rows_per_window']} rows "
        f"({result['versions'] * result['rows_per_window']:,} predictions in the hour), external-model contract",
        f"registration: {result['register_s']['total']:.0f}s ({result['register_s']['median']:.2f}s per version); "
        f"ingest: {result['ingest_s']['total']:.0f}s ({result['ingest_s']['median']:.2f}s per "
        f"{result['rows_per_window']:,}-row batch, median; {result['ingest_s']['rows_per_s']:,.0f} rows/s)",
        f"drift_hourly: {run['state']} in {run['wall_s']:.1f}s (target {base.TARGET_S:.0f}s), "
        f"{run['task_instances']} task instances ({run['task_instances_run']} ran), {result['chunks']} chunks",
        f"load average (1 min) during the run: first {s['load_1min']['first']}, mean {s['load_1min']['mean']}, "
        f"max {s['load_1min']['max']}",
        f"CPU seconds: {run['cpu_s']} (total {run['cpu_s_total']})",
        f"peak memory: one task process {s['peak_process_mb_by_role'].get('task processes', 0)} MB, "
        f"whole stack {s['peak_total_rss_mb']} MB",
        "",
        f"{'task':<26}{'TIs':>4}{'ran':>4}{'queued':>8}{'duration':>9}{'pre-exec':>9}{'start-up':>9}{'work':>8}"
        f"{'s/version':>10}",
    ]
    for task_id, t in result["tasks"].items():

        def f(key: str, t: dict[str, Any] = t) -> str:
            v = t.get(key)
            return "-" if v is None else f"{v:.2f}"

        lines.append(
            f"{task_id:<26}{t['instances']:>4}{t['ran']:>4}{f('median_queued_s'):>8}{f('median_duration_s'):>9}"
            f"{f('median_pre_execute_s'):>9}{f('median_startup_s'):>9}{f('median_work_s'):>8}"
            f"{f('median_per_version_s'):>10}"
        )
    g = result["db_growth_per_day_mb"]
    lines += [
        "(medians over the instances that ran, seconds)",
        "",
        f"DB growth per day: drift run x24 = {g['monitoring_drift_run']:.1f} MB monitoring "
        f"+ {g['airflow_drift_run']:.1f} MB Airflow metadata; the hour's predictions x24 = "
        f"{g['predictions_ingest']:.0f} MB",
        f"grown by the run: { {k: round(v / 1e3) for k, v in list(result['monitoring_growth_bytes'].items())[:6]} } kB",
        "",
        f"projection, {result['projection']['versions']} versions on Celery "
        f"({result['projection']['per_version_cpu_s']} CPU s per version, "
        f"{result['projection']['startup_s_per_chunk_task']} s start-up per chunk task):",
    ]
    for r in result["projection"]["by_slots"]:
        lines.append(
            f"  {r['slots']:>3} slots: {r['chunks']} chunks of {r['versions_per_chunk']}, "
            f"{r['task_instances']} task instances, ~{r['wall_s']} s wall, {r['cpu_s']} CPU s"
        )
    p = result["projection"]
    lines.append(
        f"  DB growth per day: {p['db_growth_per_day_mb']} MB drift, {p['ingest_growth_per_day_mb']} MB predictions"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fleet_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", type=int, default=50)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--rows", type=int, default=10_000, help="predictions per version in the hour")
    ap.add_argument("--reference-rows", type=int, default=5_000)
    ap.add_argument("--project", type=int, default=500, help="versions of the projection")
    ap.add_argument("--keep", action="store_true", help="keep the /tmp/mwl-* home")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the stack's stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    home = Path(tempfile.mkdtemp(prefix="mwl-", dir="/tmp"))  # short: PostgreSQL's socket lives in it
    port = int(os.environ.get(devstack.PORT_ENV) or base.free_port())
    for key in (CONN_ENV, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", base.MAX_CHUNKS_ENV, base.MIN_CHUNK_SIZE_ENV):
        os.environ.pop(key, None)  # always the embedded PostgreSQL of this home, default chunking
    env = {
        "MODELWATCH_HOME": str(home),
        devstack.PORT_ENV: str(port),
        "MODELWATCH_ARTIFACT_DIR": str(home / "artifacts"),
        INBOX_ENV: str(home / "inbox"),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the triggered run
    }
    for key in ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"):
        env[key] = os.environ.get(key) or str(base.free_port())  # not another stack's 8793 / 8794
    say(f"home {home}, port {port}; {args.versions} versions x {args.features} features x {args.rows} rows")
    members = fleet_members(args.versions)
    result: dict[str, Any] = {
        "versions": args.versions,
        "features": args.features,
        "rows_per_window": args.rows,
        "reference_rows": args.reference_rows,
        "target_s": base.TARGET_S,
        "command": "make fleet-bench (.venv/bin/python -m bench.fleet_load)",
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_note": "a shared 2-core machine: other work ran beside the benchmark (see sampled.load_1min)",
        },
        "shifted_versions": [f"{m.model} v{m.version}" for m in members if m.shifted],
    }
    try:
        with base.running_stack(home, env) as stack:
            from include.modelwatch.data import storage

            monitoring = stack.env[CONN_ENV]
            t = time.monotonic()
            files = write_fleet(members, args.features, args.rows, args.reference_rows, home / "fleet", home / "inbox")
            result["generate_s"] = round(time.monotonic() - t, 1)
            with storage.session(monitoring) as conn:
                reg = register_fleet(conn, files)
                before_ingest = table_sizes(monitoring)  # after the one-off registration (reference profiles)
                say(f"{len(reg)} versions registered in {sum(reg):.0f}s; ingesting {len(files)} batches ...")
                t = time.monotonic()
                batches = ingest_inbox(conn, home / "inbox")
                ingest_total = time.monotonic() - t
            ingest_growth = growth(before_ingest, table_sizes(monitoring))
            result["register_s"] = {"total": round(sum(reg), 1), "median": round(statistics.median(reg), 2)}
            loaded = sum(b["rows"] for b in batches)
            result["ingest_s"] = {
                "total": round(ingest_total, 1),
                "median": round(statistics.median(b["s"] for b in batches), 2),
                "max": max(b["s"] for b in batches),
                "rows": loaded,
                "rows_per_s": round(loaded / ingest_total),
            }
            result["ingest_growth_bytes"] = ingest_growth
            say(f"{loaded:,} predictions ingested in {ingest_total:.0f}s; starting Airflow ...")
            result["airflow_start_s"] = round(base.start_airflow(stack), 1)
            result.update(run_once(stack, args.versions))
            result["chunks"] = result["tasks"].get("check_window", {}).get("instances", 0)
            result["verdicts"] = base.verdicts(monitoring)
    except KeyboardInterrupt:
        say("interrupted; the stack was stopped")
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    v = result.pop("verdicts")
    result["verdicts"] = {
        "windows": len(v),
        "evaluated": sum(1 for r in v if r[2] == "evaluated"),
        "drifted": sum(1 for r in v if r[6] == "True"),
    }
    result["db_growth_per_day_mb"] = {
        "monitoring_drift_run": round(sum(result["monitoring_growth_bytes"].values()) * 24 / 1e6, 2),
        "airflow_drift_run": round(result["airflow_db_growth_bytes"] * 24 / 1e6, 2),
        "predictions_ingest": round(sum(result["ingest_growth_bytes"].values()) * 24 / 1e6, 1),
    }
    run = result["run"]
    result["within_target"] = run["state"] == "success" and run["wall_s"] < base.TARGET_S
    result["projection"] = project(result, args.project)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print(report(result))
    print(
        f"\nverdicts: {result['verdicts']}; target: one run under {base.TARGET_S:.0f}s: "
        f"{'yes' if result['within_target'] else 'NO'}\nwrote {args.out}"
    )
    return 0 if run["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
