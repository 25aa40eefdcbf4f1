"""Policy replay: the DAGs' task bodies, month by month over market history, in a sandbox schema per policy.

Each policy (``include/modelwatch/policy/policies.py``) replays in its own PostgreSQL schema of the monitoring
database (``policy_<model>_<policy>``, rebuilt from scratch: migrations, then the bootstrap champion), with the
ModelWatch Variables at their defaults (the model's entry only) and no mail sent (:class:`common.Sandbox`).
Per market month, in the order of the DAG replay (``make run``):

1. ``score_signals``: ``ingest_bars``, ``score_symbol`` and ``record_outcomes`` for each of the model's symbols;
2. ``drift_hourly``: ``fleet_chunks``, ``check_chunk``, the branch ``route`` and each path task, then ``respond``;
3. ``performance_daily``: ``evaluate`` of each active version, then ``respond``;
4. ``rollback_model``'s automatic check (the closed loop only) as its scheduled run at the month's end;
5. ``retrain_gated`` (the closed loop, or a calendar policy's month): ``claim`` (a calendar policy's run asks for
   a manual retrain), ``assemble``, ``train_candidate`` per algorithm, ``pick_best``, the gate branch ``choose``
   and ``deploy`` / ``reject`` / ``mark_awaiting`` + ``apply_approval`` (nobody answers: the response timeout's
   default, Reject), repeated while a trigger is pending, as ``wake_next`` does.

Every call is the task body the DAG's task calls, with the context a DAG run would give it (data interval = the
month); the replay adds no decision of its own except the policy's (when a calendar retrain is due; gates off).
The closed loop's ``respond`` of a ``never`` or calendar policy is not run: their alerts are raised and counted,
no trigger is created.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

from include.modelwatch.policy.policies import Policy, after_gates, calendar_due

log = logging.getLogger(__name__)

MAX_RETRAIN_RUNS = 9  # retrain_gated runs at one month's end (wake_next: one per pending trigger)
REPLAY_ANSWER = "Reject"  # what the response timeout of human_decision chooses (retrain_gated: defaults="Reject")


@dataclass
class _DagRun:  # what the task bodies read of context["dag_run"]
    run_after: datetime
    run_type: str
    conf: dict[str, Any]


@dataclass
class _Dag:
    dag_id: str


@dataclass
class _TaskInstance:  # xcom_pull of what an upstream task pushed (the HITL response)
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return self.xcoms.get((str(task_ids), key))


def context(
    dag_id: str,
    run_id: str,
    start: datetime,
    end: datetime,
    *,
    conf: dict[str, Any] | None = None,
    run_type: str = "manual",
    xcoms: dict[tuple[str, str], Any] | None = None,
    logical_date: datetime | None = None,
) -> dict[str, Any]:
    """The Airflow context a DAG run of ``dag_id`` over the data interval [start, end) gives its tasks (the keys
    the task bodies read). ``logical_date`` defaults to ``start``."""
    return {
        "dag": _Dag(dag_id),
        "dag_run": _DagRun(end, run_type, dict(conf or {})),
        "run_id": run_id,
        "params": {},
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": start if logical_date is None else logical_date,
        "ti": _TaskInstance(dict(xcoms or {})),
    }


def schema_name(model: str, policy: str) -> str:
    return f"policy_{model}_{policy}".lower()


def schema_uri(uri: str, schema: str) -> str:
    """``uri`` with every session's ``search_path`` set to ``schema``."""
    sep = "&" if "?" in uri else "?"
    return f"{uri}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


def reset_schema(uri: str, schema: str) -> None:
    """Drop and re-create ``schema`` and apply every migration in it."""
    from psycopg import sql

    from include.modelwatch.data import storage
    from include.modelwatch.ops import migrations

    with storage.session(uri) as conn:
        with storage.transaction(conn) as cur:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    with storage.session(schema_uri(uri, schema)) as conn:
        # the schema comes from the connection's search_path option: a pooler that drops startup options (PgBouncer's
        # ignore_startup_parameters) would put the replay in the live tables; refuse before anything is written
        got = storage.fetch_dicts(conn, "SELECT current_schema() AS s")[0]["s"]
        conn.rollback()
        if got != schema:
            raise RuntimeError(
                f"the replay's connection works in schema {got!r}, not {schema!r}: the server ignored the "
                "search_path option (a connection pooler?); give --uri of the database itself"
            )
        migrations.migrate(conn)


@contextmanager
def _artifacts(path: str) -> Iterator[str]:
    """Model artifacts of the replay under ``path`` (the registry writes to ``$MODELWATCH_ARTIFACT_DIR``)."""
    from include.modelwatch import defaults

    old = os.environ.get(defaults.ARTIFACT_DIR_ENV)
    os.environ[defaults.ARTIFACT_DIR_ENV] = path
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop(defaults.ARTIFACT_DIR_ENV, None)
        else:
            os.environ[defaults.ARTIFACT_DIR_ENV] = old


@dataclass
class PolicyRun:
    """What a replayed policy did: its sandbox schema, each month's steps, retrain outcomes and time spent."""

    model: str
    policy: str
    schema: str
    months: list[str] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # DAG runs that would have failed
    seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, step: str, secs: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + secs


def replay_policy(
    *,
    uri: str,
    model: str,
    conf: dict[str, Any],
    policy: Policy,
    start: date,
    end: date,
    artifact_dir: str,
    source_spec: str = "arch",
    schedule_rules: bool = False,
    say: Callable[[str], object] = log.info,
) -> PolicyRun:
    """Replay ``policy`` for ``model`` (its ``{"target", "symbols"}`` entry) over the months of [start, end) in
    the schema :func:`schema_name` of the monitoring database ``uri`` (rebuilt first). ``schedule_rules``: also
    evaluate the time-based response rules (model age) at each month's end, as ``retrain_gated``'s daily
    scheduled run does (the DAG replay of ``make run`` runs retrain_gated on the trigger Asset only)."""
    from include.modelwatch.data import storage
    from include.modelwatch.data.sources import source_from_spec
    from include.modelwatch.metrics import muted
    from include.modelwatch.ops import bootstrap
    from include.modelwatch.ops.replay import month_windows
    from include.tasks.common import Sandbox, sandboxed

    schema = schema_name(model, policy.name)
    if not schema.replace("_", "").isalnum() or len(schema) > 63:
        raise ValueError(f"model {model!r}: schema name {schema!r} must be letters, digits and _, at most 63 long")
    run = PolicyRun(model=model, policy=policy.name, schema=schema)
    box = Sandbox(
        uri=schema_uri(uri, schema),
        variables={"modelwatch_native_models": {model: conf}, "modelwatch_market_source": source_spec},
    )
    folder = os.path.join(artifact_dir, schema)
    t0 = time.perf_counter()
    reset_schema(uri, schema)
    with _artifacts(folder), sandboxed(box), muted():
        with storage.session(box.uri) as conn:
            bootstrap.bootstrap_champion(
                conn,
                artifact_dir=folder,
                model_name=model,
                target=conf.get("target"),
                symbols=conf.get("symbols"),
                source=source_from_spec(source_spec),
                log=lambda line: log.info("%s", line),
            )
        run.add_time("bootstrap", time.perf_counter() - t0)
        windows = month_windows(start, end)
        first = windows[0][0].date()
        for ws, we in windows:
            month = f"{ws:%Y-%m}"
            rid = f"policy_{policy.name}__{month}"
            steps: list[tuple[str, Callable[[], None]]] = [
                ("score_signals", partial(_score, run, rid, ws, we)),
                ("drift_hourly", partial(_drift, run, rid, ws, we, policy)),
                ("performance_daily", partial(_performance, run, rid, ws, we, policy)),
            ]
            if policy.responds:
                steps.append(("rollback_model", partial(_rollback, run, rid, we)))
                steps.append(
                    ("retrain_gated", partial(_retrain, run, rid, ws, we, policy, schedule_rules=schedule_rules))
                )
            elif calendar_due(policy, first, ws.date()):
                reason = f"policy replay: {policy.name} retrain"
                steps.append(("retrain_gated", partial(_retrain, run, rid, ws, we, policy, manual_reason=reason)))
            for step, call in steps:
                try:  # a DAG run that fails is one failed run: the next month runs on, as the scheduler's would
                    call()
                except Exception as exc:
                    log.exception("%s %s %s: %s failed", model, policy.name, month, step)
                    run.failures.append({"month": month, "step": step, "error": f"{type(exc).__name__}: {exc}"})
            run.months.append(month)
            say(f"{model} {policy.name} {month}: " + _month_line(run, month))
    run.add_time("total", time.perf_counter() - t0)
    return run


def _month_line(run: PolicyRun, month: str) -> str:
    done = [r for r in run.retrains if r["month"] == month]
    return "; ".join(f"trigger {r['trigger_id']} ({r['trigger_type']}) -> {r['outcome']}" for r in done) or "-"


def _timed(run: PolicyRun, step: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        run.add_time(step, time.perf_counter() - t0)


def _score(run: PolicyRun, rid: str, ws: datetime, we: datetime) -> None:
    from include.tasks import scoring

    ctx = context("score_signals", rid, ws, we)
    _timed(run, "score_signals", lambda: scoring.ingest_bars(ctx))
    for t in scoring.scoring_targets():
        _timed(run, "score_signals", partial(scoring.score_symbol, t["model_name"], t["symbol"], ctx))
    for t in scoring.scoring_targets():
        _timed(run, "score_signals", partial(scoring.record_outcomes, t["model_name"], t["symbol"], ctx))


def _drift(run: PolicyRun, rid: str, ws: datetime, we: datetime, policy: Policy) -> None:
    from include.tasks import drift, loop

    ctx = context("drift_hourly", rid, ws, we)

    def body() -> None:
        checked = [drift.check_chunk(chunk, ctx) for chunk in drift.fleet_chunks()]
        for path, versions in drift.route(drift.flatten(checked)).items():
            if not versions:
                continue
            for chunk in checked:
                if any(drift.path_of(c) == path for c in chunk["checked"]):
                    drift.run_path(path, chunk, ctx)
        if policy.responds:
            loop.respond("drift", ctx)

    _timed(run, "drift_hourly", body)


def _performance(run: PolicyRun, rid: str, ws: datetime, we: datetime, policy: Policy) -> None:
    from include.tasks import loop, performance

    ctx = context("performance_daily", rid, ws, we)

    def body() -> None:
        for target in performance.active_targets():
            performance.evaluate(target, ctx)
        if policy.responds:
            loop.respond("performance", ctx)

    _timed(run, "performance_daily", body)


def _rollback(run: PolicyRun, rid: str, we: datetime) -> None:
    """``rollback_model``'s automatic check as its scheduled run at the month's end: a champion deployed by the loop
    that does significantly worse than its predecessor is rolled back."""
    from include.tasks import rollback

    ctx = context("rollback_model", f"{rid}__rollback", we, we, run_type="scheduled", logical_date=we)

    def body() -> None:
        plans = rollback.rollback_plans(ctx)
        for version in rollback.do_rollbacks(plans, ctx):
            run.rollbacks.append({"month": f"{we:%Y-%m}", "restored_version": version})
        rollback.keep_all(plans)

    _timed(run, "rollback_model", body)


def _retrain(
    run: PolicyRun,
    rid: str,
    ws: datetime,
    we: datetime,
    policy: Policy,
    *,
    manual_reason: str | None = None,
    schedule_rules: bool = False,
) -> None:
    """``retrain_gated`` runs at the month's end until no trigger is left (``wake_next``); the first one asks for
    the calendar policy's retrain, or (``schedule_rules``) is the daily scheduled run."""
    from include.tasks import retrain

    conf: dict[str, Any] = (
        {"model_name": run.model, "reason": manual_reason, **dict(policy.retrain_conf)} if manual_reason else {}
    )
    run_type = "scheduled" if schedule_rules else "manual"
    for attempt in range(1, MAX_RETRAIN_RUNS + 1):
        ctx = context("retrain_gated", f"{rid}__{attempt}", ws, we, conf=conf, run_type=run_type)
        claimed = _timed(run, "retrain_gated", partial(retrain.claim, ctx))
        run_type = "manual"
        if claimed is None:
            return
        outcome = _timed(run, "retrain_gated", partial(_retrain_one, claimed, ctx, policy))
        conf = {}
        if attempt == MAX_RETRAIN_RUNS:
            log.warning("%s %s: %d retrain runs at one month's end; the pending rest waits", run.model, ws, attempt)
        run.retrains.append(
            {
                "month": f"{ws:%Y-%m}",
                "trigger_id": claimed["trigger_id"],
                "trigger_type": claimed["trigger_type"],
                "rule_name": claimed.get("rule_name"),
                "retrain_mode": claimed["retrain_mode"],
                **outcome,
            }
        )


def _retrain_one(claimed: dict[str, Any], ctx: dict[str, Any], policy: Policy) -> dict[str, Any]:
    from include.modelwatch import decisions
    from include.tasks import retrain
    from include.tasks.approval import DECISION_TASK, RESPONSE_KEY
    from include.tasks.forms import ALGORITHMS

    try:
        dataset = retrain.assemble(claimed, ctx)
    except Exception as exc:  # the task fails; assemble marked the trigger failed
        return {"outcome": "failed", "error": f"{type(exc).__name__}: {exc}"}
    candidates = []
    for algorithm in policy.algorithms or ALGORITHMS:
        try:
            candidates.append(retrain.train_candidate(dataset, algorithm, ctx))
        except Exception as exc:  # a failed job: pick_best acts on the others
            log.warning("%s: %s", algorithm, exc)
    try:
        best = retrain.pick_best(dataset, candidates, ctx)
    except RuntimeError as exc:
        return {"outcome": "failed", "error": str(exc)}
    branch = after_gates(policy, retrain.choose(dataset, best))
    info = {
        "candidate_version": best["version"],
        "algorithm": best["algorithm"],
        "gates": best["status"],
        "oos_accuracy": best.get("oos_accuracy"),
        "champion_version": best.get("champion_version"),
    }
    if branch == decisions.TASK_DEPLOY:
        retrain.deploy(dataset, best, ctx)
        return {**info, "outcome": "deployed"}
    if branch == decisions.TASK_REJECT:
        return {**info, "outcome": "rejected", "detail": retrain.reject(dataset, best, ctx)}
    retrain.mark_awaiting(dataset, best, ctx)
    answer = {
        "chosen": [REPLAY_ANSWER],
        "responded_by_id": None,
        "responded_by_name": None,
        "responded_at": ctx["data_interval_end"].astimezone(UTC).isoformat(),
        "timed_out": True,
    }
    ctx["ti"].xcoms[(DECISION_TASK, RESPONSE_KEY)] = answer
    return {**info, "outcome": "not_approved", "detail": retrain.apply_approval(dataset, best, False, ctx)}


@contextmanager
def _quiet(level: int | None) -> Iterator[None]:
    """The replayed task bodies' loggers at ``level`` for the block (None: unchanged); this module's stay."""
    names = [f"include.tasks.{m}" for m in ("scoring", "drift", "performance", "loop", "rollback", "retrain", "notify")]
    loggers = [logging.getLogger(n) for n in [*names, "include.modelwatch"]]
    before = [lg.level for lg in loggers]
    if level is not None:
        for lg in loggers:
            lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, before, strict=True):
            lg.setLevel(old)


def measure(
    *,
    uri: str,
    model: str,
    conf: dict[str, Any],
    policy: Policy,
    start: date,
    end: date,
    eval_start: date,
    eval_end: date,
    artifact_dir: str,
    source_spec: str = "arch",
    schedule_rules: bool = True,
    say: Callable[[str], object] = log.info,
    log_level: int | None = None,
) -> dict[str, Any]:
    """:func:`replay_policy`, then the policy's result (``policy/report.policy_result``) read from its schema.
    ``log_level``: of the replayed task bodies' loggers while it runs (the CLI and the DAG keep them quiet)."""
    from include.modelwatch.data import storage
    from include.modelwatch.policy import report

    with _quiet(log_level):
        run = replay_policy(
            uri=uri,
            model=model,
            conf=conf,
            policy=policy,
            start=start,
            end=end,
            artifact_dir=artifact_dir,
            source_spec=source_spec,
            schedule_rules=schedule_rules and policy.responds,
            say=say,
        )
    with storage.session(schema_uri(uri, run.schema)) as conn:
        result = report.policy_result(
            conn,
            model=model,
            policy=policy.name,
            symbols=conf["symbols"],
            months=run.months,
            end=end,
            eval_start=eval_start,
            eval_end=eval_end,
            seconds=run.seconds,
        )
    return {
        **result,
        "schema": run.schema,
        "schedule_rules": schedule_rules and policy.responds,
        "retrain_log": run.retrains,
        "rollback_log": run.rollbacks,
        "failures": run.failures,
    }


def run_all(
    *,
    uri: str,
    model: str,
    conf: dict[str, Any],
    policies: list[Policy],
    start: date,
    end: date,
    eval_start: date,
    eval_end: date,
    out_dir: str,
    artifact_dir: str,
    source_spec: str = "arch",
    schedule_rules: bool = True,
    jobs: int = 1,
    log_level: int | None = None,
) -> dict[str, Any]:
    """Every policy of ``policies`` (``jobs`` at a time, each in its own process), then the result files
    (``policy/report.write``) in ``out_dir``. Returns the results by policy."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context
    from pathlib import Path

    from include.modelwatch.policy import report

    kwargs: dict[str, Any] = dict(
        uri=uri,
        model=model,
        conf=conf,
        start=start,
        end=end,
        eval_start=eval_start,
        eval_end=eval_end,
        artifact_dir=artifact_dir,
        source_spec=source_spec,
        schedule_rules=schedule_rules,
        say=print,
        log_level=log_level,
    )
    meta = {
        "start": str(start),
        "end": str(end),
        "eval_start": str(eval_start),
        "eval_end": str(eval_end),
        "schedule_rules": schedule_rules,
        "source": source_spec,
        "symbols": list(conf["symbols"]),
        "target": conf.get("target"),
    }
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}

    def done(name: str, result: dict[str, Any]) -> None:  # written at once: a long replay keeps what it finished
        results[name] = result
        for path in report.write(Path(out_dir), model, {name: result}, meta):
            print(f"wrote {path} ({name})")

    if jobs > 1:  # spawn, not fork: LightGBM's OpenMP threads do not survive a fork
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(measure, policy=p, **kwargs): p.name for p in policies}
            for future in as_completed(futures):
                try:
                    done(futures[future], future.result())
                except Exception as exc:  # the others' results are still written
                    failed[futures[future]] = f"{type(exc).__name__}: {exc}"
    else:
        for p in policies:
            try:
                done(p.name, measure(policy=p, **kwargs))
            except Exception as exc:
                failed[p.name] = f"{type(exc).__name__}: {exc}"
    if failed:
        raise RuntimeError("policy replay failed for " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return {p.name: results[p.name] for p in policies}


# ---------------------------------------------------------------------------------------------- the DAG's tasks


@dataclass(frozen=True)
class Request:
    """The ``policy_replay`` form, checked."""

    model: str
    conf: dict[str, Any]
    start: date
    end: date
    eval_start: date
    eval_end: date
    policies: tuple[str, ...]
    schedule_rules: bool

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Request:
        from include.modelwatch import defaults
        from include.modelwatch.policy.policies import parse_policies

        model = str(params.get("model_name") or defaults.MODEL_NAME)
        if model not in defaults.NATIVE_MODELS:
            raise ValueError(f"model_name: {model!r} is not a native model ({', '.join(defaults.NATIVE_MODELS)})")
        days = {}
        for name in ("start", "end", "eval_start", "eval_end"):
            try:
                days[name] = date.fromisoformat(str(params.get(name)))
            except ValueError:
                raise ValueError(f"{name}: {params.get(name)!r} is not a date (YYYY-MM-DD)") from None
        if days["end"] <= days["start"]:
            raise ValueError(f"end {days['end']} must be after start {days['start']}")
        if days["eval_end"] <= days["eval_start"]:
            raise ValueError(f"eval_end {days['eval_end']} must be after eval_start {days['eval_start']}")
        if days["eval_start"] < days["start"] or days["eval_end"] > days["end"]:
            raise ValueError(
                f"eval_start..eval_end {days['eval_start']}..{days['eval_end']} must lie within the replay "
                f"{days['start']}..{days['end']}"
            )
        policies = tuple(p.name for p in parse_policies(params.get("policies") or ()))
        return cls(
            model,
            dict(defaults.NATIVE_MODELS[model]),
            policies=policies,
            schedule_rules=bool(params.get("schedule_rules", True)),
            **days,
        )


def plan(context: dict[str, Any]) -> list[str]:
    """Check the form; the policies to replay (what ``replay`` maps over)."""
    from include.tasks.forms import refuse

    try:
        req = Request.from_params(dict(context.get("params") or {}))
    except ValueError as exc:
        refuse(f"policy replay refused: {exc}")
        raise
    log.info(
        "summary: replay %s %s..%s (metrics compared %s..%s) under %s; schedule rules %s",
        req.model,
        req.start,
        req.end,
        req.eval_start,
        req.eval_end,
        ", ".join(req.policies),
        "on" if req.schedule_rules else "off",
    )
    return list(req.policies)


def monitoring_conn_uri() -> str:
    """The ``monitoring_db`` connection as a URI (the replay opens its schemas on the same database)."""
    from airflow.sdk import BaseHook

    from include.tasks.common import MONITORING_CONN_ID

    return BaseHook.get_connection(MONITORING_CONN_ID).get_uri()


def _home() -> str:
    return os.path.abspath(os.environ.get("MODELWATCH_HOME") or ".modelwatch")


def replay_task(policy_name: str, context: dict[str, Any]) -> dict[str, Any]:
    """Replay one policy, store its result in ``policy_replay_results`` (replacing the same replay's) and return
    the figures the report's table needs."""
    from include.modelwatch.data import storage
    from include.modelwatch.policy.policies import POLICIES
    from include.tasks.common import monitoring_db, run_id

    req = Request.from_params(dict(context.get("params") or {}))
    result = measure(
        uri=monitoring_conn_uri(),
        model=req.model,
        conf=req.conf,
        policy=POLICIES[policy_name],
        start=req.start,
        end=req.end,
        eval_start=req.eval_start,
        eval_end=req.eval_end,
        artifact_dir=os.path.join(_home(), "policy_replay_artifacts"),
        schedule_rules=req.schedule_rules,
        log_level=logging.WARNING,  # the replayed tasks' own logs would fill this log with 144 months of lines
    )
    key = {
        "model": req.model,
        "policy": policy_name,
        "rs": req.start,
        "re": req.end,
        "es": req.eval_start,
        "ee": req.eval_end,
        "sr": req.schedule_rules,
    }
    with monitoring_db() as conn:
        with storage.transaction(conn) as cur:
            cur.execute(
                "DELETE FROM policy_replay_results WHERE model_name = %(model)s AND policy = %(policy)s AND "
                "replay_start = %(rs)s AND replay_end = %(re)s AND eval_start = %(es)s AND eval_end = %(ee)s AND "
                "schedule_rules = %(sr)s",
                key,
            )
            cur.execute(
                "INSERT INTO policy_replay_results (model_name, policy, replay_start, replay_end, eval_start, "
                "eval_end, schedule_rules, result, run_id) VALUES (%(model)s, %(policy)s, %(rs)s, %(re)s, %(es)s, "
                "%(ee)s, %(sr)s, %(result)s::jsonb, %(run)s)",
                {**key, "result": json.dumps(result, default=str), "run": run_id(context)},
            )
    ev, lc = result["evaluation"], result["loop"]
    log.info(
        "summary: %s %s: %s %s..%s %s; %d retrain(s), %d deployed, %d rejected, %d failed; %.0f s",
        req.model,
        policy_name,
        "accuracy",
        ev["start"],
        ev["end"],
        ev["accuracy"],
        lc["retrains"],
        lc["deployments"],
        lc["rejections"],
        lc["failed"],
        result["compute_seconds"].get("total", 0.0),
    )
    return {"policy": policy_name, "accuracy": ev["accuracy"], "retrains": lc["retrains"]}


def report_task(summaries: list[dict[str, Any]], context: dict[str, Any]) -> str:
    """The comparison (task log) and its files under ``$MODELWATCH_HOME/results/policy_replay/<model>/``, from
    the rows the ``replay`` tasks stored."""
    from pathlib import Path

    from include.modelwatch.data import storage
    from include.modelwatch.policy import report
    from include.tasks.common import monitoring_db

    req = Request.from_params(dict(context.get("params") or {}))
    with monitoring_db() as conn:
        rows = storage.fetch_dicts(
            conn,
            "SELECT policy, result FROM policy_replay_results WHERE model_name = %(m)s AND replay_start = %(rs)s "
            "AND replay_end = %(re)s AND eval_start = %(es)s AND eval_end = %(ee)s AND schedule_rules = %(sr)s "
            "AND policy = ANY(%(p)s)",
            {
                "sr": req.schedule_rules,
                "m": req.model,
                "rs": req.start,
                "re": req.end,
                "es": req.eval_start,
                "ee": req.eval_end,
                "p": [s["policy"] for s in summaries],
            },
        )
    order = [s["policy"] for s in summaries]
    results = {r["policy"]: r["result"] for r in sorted(rows, key=lambda r: order.index(r["policy"]))}
    meta = {
        "start": str(req.start),
        "end": str(req.end),
        "eval_start": str(req.eval_start),
        "eval_end": str(req.eval_end),
        "schedule_rules": req.schedule_rules,
        "source": "arch",
        "symbols": list(req.conf["symbols"]),
        "target": req.conf.get("target"),
    }
    folder = Path(_home()) / "results" / "policy_replay" / req.model
    written = report.write(folder, req.model, results, meta)
    table = report.markdown(req.model, results)
    log.info("comparison:\n%s", table)
    log.info("summary: %d policies compared; files: %s", len(results), ", ".join(str(p) for p in written))
    return table
