"""Task bodies of ``drift_hourly``: a chunk of model versions, each version's window validated, evaluated, stored.

The mapped tasks take a chunk of versions (``include.modelwatch.monitoring.drift.fleet``);
:func:`check_chunk` and :func:`run_path` run the per-version bodies (:func:`check_window`,
:func:`record_empty`, :func:`raise_dq_alert`, :func:`compute_drift`) one version after the
other, each with its own connection and transaction, so one version's failure neither
stops nor undoes the others: the failures are collected and raised together at the end
(:class:`VersionsFailed`). Context and connection in, library call
(``include.modelwatch.monitoring.drift`` and its ``store``), results out. Every version's
summary line is followed by its ModelWatch page; every task's log ends with the chunk's summary line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from include.modelwatch.api import urls
from include.tasks.common import log_page, monitoring_db, run_id, variable, window

log = logging.getLogger(__name__)
#: override fleet.MAX_CHUNKS / fleet.MIN_CHUNK_SIZE (bench/fleet.py: one version per task, as before chunking)
MAX_CHUNKS_ENV, MIN_CHUNK_SIZE_ENV = "MODELWATCH_DRIFT_MAX_CHUNKS", "MODELWATCH_DRIFT_MIN_CHUNK_SIZE"


def _span(start, end) -> str:
    return f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}"


def active_targets() -> list[dict[str, Any]]:
    from include.modelwatch import registry

    with monitoring_db() as conn:
        targets = [{"model_name": r["model_name"], "version": r["version"]} for r in registry.active_versions(conn)]
    log.info(
        "summary: %d active model version(s): %s",
        len(targets),
        ", ".join(f"{t['model_name']} v{t['version']}" for t in targets) or "none",
    )
    return targets


def _config(mv):
    from include.modelwatch.monitoring import drift

    overrides = variable("modelwatch_drift_overrides").get(mv.model_name)
    return drift.DriftConfig.from_dict(overrides)


def _load(conn, target: dict[str, Any], context: dict[str, Any]):
    from include.modelwatch import registry

    mv = registry.get_version(conn, target["model_name"], int(target["version"]))
    if not mv.reference_profile:
        raise ValueError(f"{mv.label}: no drift reference profile stored; re-register the version")
    start, end = window(context)
    return mv, start, end


def fleet_chunks() -> list[dict[str, Any]]:
    """The active versions (:func:`active_targets`) in chunks (``fleet.chunk_fleet``): what the tasks map over."""
    from include.modelwatch.monitoring.drift import fleet

    max_chunks = int(os.environ.get(MAX_CHUNKS_ENV) or fleet.MAX_CHUNKS)
    min_size = int(os.environ.get(MIN_CHUNK_SIZE_ENV) or fleet.MIN_CHUNK_SIZE)
    chunks = fleet.chunk_fleet(active_targets(), max_chunks=max_chunks, min_size=min_size)
    log.info(
        "summary: %d chunk(s) (at most %d, at least %d version(s) each unless the fleet is smaller): %s",
        len(chunks),
        max_chunks,
        min_size,
        "; ".join(c["label"] for c in chunks) or "none",
    )
    return chunks


def path_of(checked: dict[str, Any]) -> str:
    """A checked version's path task id (``decisions.choose_drift_path``)."""
    from include.modelwatch import decisions

    return decisions.choose_drift_path(checked.get("rows") or 0, checked.get("dq_passed", False), "error" in checked)


def route(checked: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each checked version's path (:func:`path_of`): path task id -> versions."""
    from include.modelwatch import decisions

    out: dict[str, list[dict[str, Any]]] = {
        decisions.TASK_RECORD_EMPTY: [],
        decisions.TASK_DQ_ALERT: [],
        decisions.TASK_COMPUTE_DRIFT: [],
    }
    for c in checked:
        out[path_of(c)].append(c)
    log.info(
        "summary: "
        + "; ".join(
            f"{path}: "
            + (
                ", ".join(f"{c['model_name']} v{c['version']}" + (" (check failed)" if "error" in c else "") for c in v)
                or "none"
            )
            for path, v in out.items()
        )
    )
    return out


def flatten(checked_chunks) -> list[dict[str, Any]]:
    """The checked versions of every chunk (``check_chunk`` results), in chunk order."""
    return [c for chunk in checked_chunks for c in chunk["checked"]]


def on_path(path: str, chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunk's versions that take ``path``; skips this mapped task instance when there are none."""
    from airflow.sdk.exceptions import AirflowSkipException

    versions = [c for c in chunk["checked"] if path_of(c) == path]
    if not versions:
        taken = ", ".join(f"{c['model_name']} v{c['version']}: {path_of(c)}" for c in chunk["checked"])
        raise AirflowSkipException(f"{chunk['label']}: no version takes {path} ({taken})")
    return versions


class VersionsFailed(RuntimeError):
    """Some versions of a chunk failed; the others were processed and committed."""


def each_version(
    what: str, chunk: dict[str, Any], versions: list[dict[str, Any]], body: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``body(version)`` for every version, in order; a version that raises does not stop the others (each
    body commits its own transaction). Ends the log with the chunk's summary line, then raises
    :class:`VersionsFailed` naming every failed version and its error, if any: the task is red and retried,
    and a retry runs the chunk again (every body replaces its window's rows)."""
    from include.modelwatch.monitoring.drift.fleet import version_label

    done: list[dict[str, Any]] = []
    failed: list[str] = []
    for v in versions:
        try:
            done.append(body(v))
        except Exception as exc:  # isolation: the chunk's other versions still run (a timeout is no Exception)
            log.exception("%s: %s failed; the chunk's other versions go on", version_label(v), what)
            failed.append(f"{version_label(v)}: {type(exc).__name__}: {exc}")
    log.info(
        "summary: %s: %s done for %d of %d version(s)%s",
        chunk["label"],
        what,
        len(done),
        len(versions),
        f"; FAILED: {'; '.join(failed)}" if failed else "",
    )
    if failed:
        raise VersionsFailed(
            f"{what} failed for {len(failed)} of {len(versions)} version(s) of {chunk['label']} "
            f"(the others are stored): {'; '.join(failed)}"
        )
    return done


def check_chunk(chunk: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """:func:`check_window` for each version of the chunk. A version whose check raises is kept with its
    ``error`` (it takes the compute_drift path, which checks it again); the others go on. Only when no
    version could be checked does the task fail (and is retried): nothing to go on with."""
    from include.modelwatch.monitoring.drift.fleet import version_label

    checked: list[dict[str, Any]] = []
    for t in chunk["targets"]:
        try:
            checked.append(check_window(t, context))
        except Exception as exc:  # isolation: the chunk's other versions still run
            log.exception("%s: window check failed; compute_drift checks it again", version_label(t))
            checked.append({**t, "rows": None, "dq_passed": False, "error": f"{type(exc).__name__}: {exc}"})
    errors = [f"{version_label(c)}: {c['error']}" for c in checked if "error" in c]
    log.info(
        "summary: %s: %d of %d version(s) checked%s",
        chunk["label"],
        len(checked) - len(errors),
        len(checked),
        f"; check FAILED (compute_drift checks again): {'; '.join(errors)}" if errors else "",
    )
    if checked and len(errors) == len(checked):
        raise VersionsFailed(f"check_window failed for every version of {chunk['label']}: {'; '.join(errors)}")
    return {"chunk": chunk["chunk"], "of": chunk["of"], "label": chunk["label"], "checked": checked}


def run_path(path: str, chunk: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    """The path task ``path`` for the chunk's versions on it (:func:`on_path`), one after the other
    (:func:`each_version`)."""
    from include.modelwatch import decisions

    bodies: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
        decisions.TASK_RECORD_EMPTY: record_empty,
        decisions.TASK_DQ_ALERT: raise_dq_alert,
        decisions.TASK_COMPUTE_DRIFT: _recheck_then_compute,
    }
    body = bodies[path]
    return each_version(path, chunk, on_path(path, chunk), lambda v: body(v, context))


def _recheck_then_compute(checked: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """:func:`compute_drift`; a version whose check failed is checked again first (so a retry heals a
    passing failure) and evaluated if its window now takes this path."""
    from include.modelwatch import decisions

    if "error" in checked:
        log.warning(
            "%s v%s: checking again (check_window: %s)", checked["model_name"], checked["version"], checked["error"]
        )
        target = {k: v for k, v in checked.items() if k not in ("rows", "dq_passed", "error")}
        checked = check_window(target, context)
        if path_of(checked) != decisions.TASK_COMPUTE_DRIFT:
            raise RuntimeError(
                f"checked again, the window takes {path_of(checked)}, not {decisions.TASK_COMPUTE_DRIFT}: "
                "re-run the window"
            )
    return compute_drift(checked, context)


def check_window(target: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Read the window and validate it with Great Expectations; store the
    expectation results. Returns what the branch decides on."""
    from include.modelwatch.data import quality, storage
    from include.modelwatch.monitoring import drift
    from include.modelwatch.monitoring.drift import checks, store

    with monitoring_db() as conn:
        mv, start, end = _load(conn, target, context)
        config = _config(mv)
        n = store.count_window(conn, mv.model_name, mv.version, start, end)
        how = drift.window_mode(n, config)
        binned = how.binned
        df = store.window_frame(conn, mv.model_name, mv.version, start, end, every=how.every)
        spec = checks.window_spec(
            mv.features, mv.classes, len(df), config.max_null_share, categorical=mv.categorical_features
        )
        report = quality.validate_frame(df, spec) if len(df) else None
        missing = store.missing_features(conn, mv.model_name, mv.version, start, end)
        with storage.transaction(conn) as cur:
            store.replace_quality_results(cur, mv.label, start, end, report.results if report else [], run_id(context))
    failed = [f.describe() for f in report.failures] if report else []
    log.info(
        "summary: %s window %s: %d rows, %d scored with missing features%s; %s%s",
        mv.label,
        _span(start, end),
        n,
        missing["rows"],
        f" ({_missing_text(missing)})" if missing["rows"] else "",
        "no data"
        if report is None
        else f"{len(report.results)} expectations, {len(failed)} failed "
        f"(a feature may miss in {config.max_null_share:.0%} of rows, at least one row)",
        f" (checked on a sample of {len(df)} rows; drift is binned in PostgreSQL)" if binned else "",
    )
    return {
        **target,
        "rows": n,
        "mode": how.mode,
        "dq_passed": report is None or report.success,
        "failed": failed,
        "missing_features": missing,
    }


def _missing_text(missing: dict[str, Any]) -> str:
    return ", ".join(f"{f}: {k}" for f, k in sorted(missing["features"].items()))


def record_empty(checked: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from include.modelwatch.data import storage
    from include.modelwatch.monitoring.drift import store

    with monitoring_db() as conn:
        mv, start, end = _load(conn, checked, context)
        with storage.transaction(conn) as cur:
            store.clear_window(cur, mv.model_name, mv.version, start)
            store.insert_window(
                cur, mv.model_name, mv.version, start, end, status="empty", n_rows=0, run_id=run_id(context)
            )
    log.info("summary: %s window %s: empty (no predictions); recorded, no drift computed", mv.label, _span(start, end))
    log_page(log, "this window", urls.drift_window_path(mv.model_name, mv.version, start))
    return {"model": mv.label, "status": "empty"}


def raise_dq_alert(checked: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from include.modelwatch.data import storage
    from include.modelwatch.loop import alerts
    from include.modelwatch.metrics import get_metrics
    from include.modelwatch.monitoring.drift import store
    from include.modelwatch.notify import outbox
    from include.tasks.notify import base_url, deliver_pending

    failed = list(checked["failed"])
    page_base = base_url()
    with monitoring_db() as conn:
        mv, start, end = _load(conn, checked, context)
        with storage.transaction(conn) as cur:
            store.lock_model(cur, mv.model_name)
            store.clear_window(cur, mv.model_name, mv.version, start)
            store.insert_window(
                cur,
                mv.model_name,
                mv.version,
                start,
                end,
                status="data_quality_failed",
                n_rows=checked["rows"],
                run_id=run_id(context),
                summary={"failed_expectations": failed, "missing_features": checked.get("missing_features")},
            )
            change = alerts.raise_alert(
                cur,
                model_name=mv.model_name,
                model_version=mv.version,
                kind="data_quality",
                severity="critical",
                title=f"{mv.label}: data quality failed",
                message=f"window {_span(start, end)}: " + "; ".join(failed[:5]),
                window_start=start,
                window_end=end,
                evidence={"failed": failed},
                run_id=run_id(context),
            )
            outbox.enqueue_alert_change(cur, change, base_url=page_base, window_start=start, window_end=end)
        deliver_pending(conn, mv.model_name)
    get_metrics().incr("data_quality.failures", mv.model_name, mv.version, count=len(failed))
    for line in failed:
        log.warning("failed expectation: %s", line)
    log.info(
        "summary: %s window %s: DATA QUALITY FAILED (%d expectation(s)), no drift rows written; "
        "data_quality alert %d %s",
        mv.label,
        _span(start, end),
        len(failed),
        change.alert_id,
        change.action,
    )
    log_page(log, "this window", urls.drift_window_path(mv.model_name, mv.version, start))
    return {"model": mv.label, "status": "data_quality_failed", "failed": failed}


def compute_drift(checked: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from include.modelwatch.data import storage
    from include.modelwatch.loop import alerts
    from include.modelwatch.metrics import get_metrics
    from include.modelwatch.monitoring import drift
    from include.modelwatch.monitoring.drift import concept as concept_drift
    from include.modelwatch.monitoring.drift import store
    from include.modelwatch.notify import outbox
    from include.tasks.notify import base_url, deliver_pending

    rid = run_id(context)
    page_base = base_url()
    metrics = get_metrics()
    binned = checked.get("mode") == "binned"
    missing = checked.get("missing_features") or {"rows": 0, "features": {}}
    with monitoring_db() as conn:
        mv, start, end = _load(conn, checked, context)
        config = _config(mv)
        n = store.count_window(conn, mv.model_name, mv.version, start, end)
        if n != checked["rows"]:
            raise RuntimeError(
                f"{mv.label} window {_span(start, end)}: {n} rows now, {checked['rows']} when "
                "validated; predictions changed underneath, re-run the window"
            )
        t0 = time.perf_counter()  # drift.evaluate_seconds: read / bin the window .. verdict
        if binned:
            numeric, categorical = store.binned_counts(
                conn, mv.model_name, mv.version, start, end, mv.reference_profile
            )
            result = drift.evaluate_binned(mv.reference_profile, numeric, categorical, n, config)
            df = store.matured_frame(conn, mv.model_name, mv.version, start, end, mv.classes)
        else:
            df = store.window_frame(conn, mv.model_name, mv.version, start, end)
            result = drift.evaluate_window(mv.reference_profile, df, config)
        base = store.baseline_metrics(conn, mv.model_name, mv.version)
        concept = drift.concept_rows(df, base.get("accuracy"), base.get("roc_auc_ovr"), mv.classes)
        verdict = drift.window_verdict(result, concept)
        evaluate_ms = (time.perf_counter() - t0) * 1000.0
        change = None
        with storage.transaction(conn) as cur:
            # one window of a model at a time: the earlier windows are read under the lock (defect 6)
            history, hyst = store.decide_alert_state(cur, mv.model_name, mv.version, start, verdict.drifted, config)
            plan = drift.alert_plan(result, concept, hyst, config, mv.label, start)
            store.clear_window(cur, mv.model_name, mv.version, start)
            store.insert_window(
                cur,
                mv.model_name,
                mv.version,
                start,
                end,
                status="evaluated",
                n_rows=n,
                run_id=rid,
                drift_score=result.drift_score,
                level=result.level,
                n_drifted=plan.n_drifted,
                drifted=plan.drifted,
                alert_state=hyst.state,
                summary={
                    **result.summary(),
                    "mode": checked.get("mode", "rows"),
                    "concept": concept,
                    "missing_features": missing,
                },
            )
            store.insert_results(
                cur,
                mv.model_name,
                mv.version,
                start,
                end,
                [(drift.result_kind(r["feature"]), r) for r in result.to_rows()] + [("concept", r) for r in concept],
            )
            if plan.action == "raise":
                change = alerts.raise_alert(
                    cur,
                    model_name=mv.model_name,
                    model_version=mv.version,
                    kind="drift",
                    severity=str(plan.severity),
                    score=plan.score,
                    title=str(plan.title),
                    message=str(plan.message),
                    window_start=start,
                    window_end=end,
                    evidence=plan.evidence,
                    run_id=rid,
                )
            elif plan.action == "resolve":
                change = alerts.resolve_alert(
                    cur,
                    model_name=mv.model_name,
                    kind="drift",
                    at=end,
                    window_start=start,
                    resolution=str(plan.resolution),
                )
            # the alert's transition (opened / escalated / resolved) is announced once, with this commit
            outbox.enqueue_alert_change(cur, change, base_url=page_base, window_start=start, window_end=end)
        deliver_pending(conn, mv.model_name)
    metrics.timing("drift.evaluate_seconds", evaluate_ms, mv.model_name, mv.version)
    for line in result.summary_lines(top=5):
        log.info("%s", line)
    for r in concept:
        log.info("%s", concept_drift.summary_line(r))
    alert = (
        "no alert change" if change is None else f"drift alert {change.alert_id} {change.action} ({change.severity})"
    )
    log.info(
        "summary: %s window %s (%d rows, %d with missing features%s): drift score %.3f, level %s, drifted=%s "
        "(%d of last %d windows); alert state %s%s; %s",
        mv.label,
        _span(start, end),
        n,
        missing["rows"],
        ", binned in PostgreSQL" if binned else "",
        result.drift_score,
        result.level,
        plan.drifted,
        sum(history[-config.fire_m :]),
        min(len(history), config.fire_m),
        hyst.state,
        f" [{hyst.transition}]" if hyst.transition else "",
        alert,
    )
    log_page(log, "this window", urls.drift_window_path(mv.model_name, mv.version, start))
    return {
        "model": mv.label,
        "status": "evaluated",
        "drift_score": result.drift_score,
        "level": result.level,
        "drifted": plan.drifted,
        "alert_state": hyst.state,
    }
