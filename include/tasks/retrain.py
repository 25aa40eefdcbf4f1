"""Task bodies of ``retrain_gated``: context and connection in, library call, results out.

The data a run works on is fixed by its claimed trigger (see
:mod:`include.modelwatch.training.dataset`); every step recomputes the same
frames from the same trigger, so a retry reproduces them and nothing large
goes through XCom. What a run does comes from its trigger form (``params``) or
its conf; the conf wins (tests and the API pass conf): see :mod:`include.tasks.forms`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from include.modelwatch import defaults
from include.modelwatch.api import urls
from include.tasks.approval import DECISION_TASK
from include.tasks.common import (
    data_interval,
    log_page,
    market_source,
    monitoring_db,
    native_models,
    page_url,
    refusing_artifacts,
    run_id,
    variable,
)
from include.tasks.forms import ALGORITHMS, DEPLOY_ALIASES, RETRAIN_MODES, jsonable, refuse, request, settings

log = logging.getLogger(__name__)


def _split(context: dict[str, Any]):  # the split knobs of the request
    from include.modelwatch.training.dataset import SplitSettings

    return SplitSettings.from_mapping(settings(context))


# ------------------------------------------------------------------ claim


def claim(context: dict[str, Any]) -> dict[str, Any] | None:
    """Create a manual trigger if the run asks for one (model + reason), then claim one trigger."""
    from include.modelwatch.loop import responses, triggers
    from include.modelwatch.training import retrain
    from include.tasks.notify import base_url

    req = request(context)
    rid = run_id(context)
    claimed_at = context["dag_run"].run_after
    model, reason = req.get("model_name"), req.get("reason")
    manual = model is not None or reason is not None
    if manual and not (model and str(reason or "").strip()):
        refuse(
            f"manual retrain refused: needs both model_name and a non-blank reason (got model_name={model!r}, "
            f"reason={reason!r})"
        )
    mode = req.get("retrain_mode", "full")
    if mode not in RETRAIN_MODES:
        refuse(f"manual retrain refused: retrain_mode must be one of {RETRAIN_MODES}, got {mode!r}")
    decided: list[str] = []
    with monitoring_db() as conn:
        run_type = str(getattr(context.get("dag_run"), "run_type", "")).split(".")[-1].lower()
        if run_type == "scheduled":  # the daily 02:00 run evaluates the time-based rules (model age)
            for name in responses.models_with_champion(conn):
                summary = responses.evaluate(
                    conn, name, source="schedule", as_of=claimed_at, run_id=rid, base_url=base_url()
                ).summary()
                log.info("%s", summary)
                decided.append(f"schedule rules for {name}: {summary}")
        if manual:
            try:
                tid = triggers.create_manual_trigger(
                    conn,
                    str(model),
                    str(reason),
                    retrain_mode=mode,
                    priority=req.get("priority", "high"),
                    requested_by=f"run:{rid}",
                    as_of=claimed_at,
                )
            except ValueError as exc:
                refuse(f"manual retrain refused: {exc}")
            decided.append(f"manual {mode} retrain of {model} requested by this run: trigger {tid}")
        trig = retrain.claim_trigger(conn, run_id=rid, claimed_at=claimed_at, model_name=model)
    if trig is None:
        decided.append(
            "no pending retraining trigger (or its model already has a retrain in progress): nothing to train"
        )
    else:
        decided.append(
            f"claimed trigger {trig['trigger_id']} of {trig['model_name']}: {trig['trigger_type']} / "
            f"{trig['retrain_mode']} / {trig['priority']}: {trig['reason']}"
        )
    log.info("summary: %s", "; ".join(decided))
    return None if trig is None else jsonable(trig)


# ------------------------------------------------------------------ data


def _frames(trigger: dict[str, Any], context: dict[str, Any]):
    """The trigger's frames (see :func:`candidate.trigger_frames`) with the human labels of the active-learning
    queue applied to the training rows (the model's weight and disagreement rule; ``info["human_labels"]`` says
    what they did, ``info["human_label_items"]`` which items), and the champion they are cut for. After
    ``assemble`` (``trigger`` is then its row), exactly the items the training set recorded."""
    from include.modelwatch import registry
    from include.modelwatch.active_learning import labels
    from include.modelwatch.active_learning import store as al_store
    from include.modelwatch.training import candidate

    model = trigger["model_name"]
    symbols = native_models().get(model, {}).get("symbols")  # the model's setting; else its champion's
    with monitoring_db() as conn:
        champ = registry.get_alias(conn, model, registry.CHAMPION)
        if champ.external:
            raise ValueError(f"{model} is an external model: ModelWatch cannot retrain it")
        frames = candidate.trigger_frames(trigger, _split(context), champ, symbols=symbols, source=market_source())
        dates = frames.train["date"]
        items = (
            al_store.training_labels(
                conn, model, dates.min().date(), dates.max().date(), item_ids=trigger.get("human_label_items")
            )
            if len(dates)
            else []
        )
        band = al_store.settings_for(conn, model)
    applied = labels.apply_human_labels(
        frames.train, items, label_weight=band.label_weight, on_disagreement=band.on_disagreement
    )
    frames.train = applied.frame
    frames.info["human_labels"] = applied.summary
    frames.info["human_label_items"] = applied.used_items
    return frames, champ


def assemble(trigger: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Build, GX-validate and version the training set of the trigger; fails naming model, column, window."""
    from include.modelwatch.data.quality import validate_frame
    from include.modelwatch.training import dataset, retrain

    try:
        frames, champ = _frames(trigger, context)
        train, info = frames.train, frames.info
        report = validate_frame(
            train, dataset.training_frame_spec(classes=champ.classes, feature_columns=champ.features)
        )
        fp = dataset.fingerprint(train)
        per_class = dataset.rows_per_class(train)
        with monitoring_db() as conn:
            ds = retrain.record_dataset(
                conn,
                trigger_id=trigger["trigger_id"],
                model_name=trigger["model_name"],
                fingerprint=fp,
                date_start=train["date"].min().date(),
                date_end=train["date"].max().date(),
                rows_per_class=per_class,
                validation={"success": report.success, "failures": [f.describe() for f in report.failures]},
                run_id=run_id(context),
                human_label_items=info["human_label_items"] if report.success else (),
                processed_at=dataset.trigger_end(trigger),
            )
        if not report.success:
            raise ValueError(
                f"{trigger['model_name']}: training set {info['train_start']}..{info['train_end']} "
                f"fails Great Expectations: " + "; ".join(f.describe() for f in report.failures)
            )
    except Exception as exc:
        _fail_trigger(trigger, context, f"training data: {exc}")
        raise
    log.info(
        "summary: trigger %s: training set %s: %d rows %s..%s per class %s (sha256 %s...); out-of-sample "
        "%s..%s (%d rows), embargo %s sessions; human labels: %s",
        trigger["trigger_id"],
        ds,
        len(train),
        info["train_start"],
        info["train_end"],
        per_class,
        fp[:12],
        info["eval_start"],
        info["eval_end"],
        len(frames.evaluation),
        info["embargo_sessions"],
        info["human_labels"],
    )
    return {**trigger, "dataset_id": ds, "fingerprint": fp, "n_rows": len(train), "rows_per_class": per_class, **info}


def _fail_trigger(trigger: dict[str, Any], context: dict[str, Any], error: str) -> None:
    from include.modelwatch.training import dataset, retrain

    with monitoring_db() as conn:
        try:
            retrain.complete_trigger(
                conn,
                trigger["trigger_id"],
                status="failed",
                outcome=f"failed: {error}"[:500],
                result={"error": error, "run_id": run_id(context)},
                completed_at=dataset.trigger_end(trigger),
            )
        except retrain.RetrainError as exc:
            log.warning("could not mark trigger %s failed: %s", trigger["trigger_id"], exc)


# ------------------------------------------------------------------ train + gates


def train_candidate(dataset_row: dict[str, Any], algorithm: str, context: dict[str, Any]) -> dict[str, Any]:
    """Train one candidate, gate it against the champion on the same out-of-sample rows,
    register it (status 'candidate', no alias) and record job and gate rows."""
    from include.modelwatch import registry
    from include.modelwatch.data.storage import transaction
    from include.modelwatch.training import candidate, dataset, retrain, targets, training

    rid, split = run_id(context), _split(context)
    model_name, tid = dataset_row["model_name"], dataset_row["trigger_id"]
    when = dataset.trigger_end(dataset_row)
    mode = dataset_row["retrain_mode"]
    params = candidate.job_params(num_boost_round=settings(context)["num_boost_round"], retrain_mode=mode, split=split)
    with monitoring_db() as conn:
        job = retrain.start_job(
            conn,
            trigger_id=tid,
            dataset_id=dataset_row["dataset_id"],
            model_name=model_name,
            algorithm=algorithm,
            retrain_mode=mode,
            params=params,
            started_at=when,
            run_id=rid,
        )
    t0 = time.perf_counter()
    try:
        frames, champ = _frames(dataset_row, context)
        if dataset.fingerprint(frames.train) != dataset_row["fingerprint"]:
            raise ValueError(
                f"{model_name} trigger {tid}: the training rows differ from training set {dataset_row['dataset_id']} "
                "(sha256 mismatch): the data or its human labels changed since assemble_training_data"
            )
        with monitoring_db() as conn:  # a refused champion artifact is alerted (its own transaction), then fails
            start, end = data_interval(context)
            with refusing_artifacts(
                conn, by="retrain_gated", start=start, end=end, rid=rid, consequence="not retrained"
            ):
                champion_model = training.deserialize_model(registry.read_artifact(champ))
        ev = candidate.train_for_trigger(
            frames,
            champion_model,
            model_name=model_name,
            algorithm=algorithm,
            params=params,
            split=split,
            overrides=variable("modelwatch_gate_overrides").get(model_name, {}),
            target=targets.target_of(champ.params, champ.label),
        )
        secs = time.perf_counter() - t0
        fields = candidate.registration(
            ev, frames.train, params=params, champion_params=champ.params, trigger_id=tid, horizon=split.horizon
        )
        with monitoring_db() as conn:
            # version, baseline, gate rows and job outcome: one transaction, so a
            # failure here leaves no half-registered candidate behind
            with transaction(conn) as cur:
                mv = registry.register_version(
                    conn,
                    model_name=model_name,
                    algorithm=algorithm,
                    artifact_dir=defaults.artifact_dir(),
                    run_id=rid,
                    cur=cur,
                    **fields,
                )
                registry.write_baseline(cur, mv, ev.baseline, *ev.baseline_period)
                retrain.record_gates(
                    conn,
                    trigger_id=tid,
                    job_id=job,
                    model_name=model_name,
                    candidate_version=mv.version,
                    champion_version=champ.version,
                    results=ev.results,
                    evaluated_at=when,
                    run_id=rid,
                    cur=cur,
                )
                retrain.finish_job(
                    conn,
                    job,
                    status="succeeded",
                    duration_s=secs,
                    finished_at=when,
                    candidate_version=mv.version,
                    metrics=candidate.job_metrics(ev, frames.info),
                    cur=cur,
                )
    except Exception as exc:
        with monitoring_db() as conn:
            retrain.finish_job(
                conn,
                job,
                status="failed",
                duration_s=time.perf_counter() - t0,
                finished_at=when,
                error=candidate.job_error(exc),
            )
        raise RuntimeError(f"{model_name} trigger {tid}: {algorithm} training failed: {exc}") from exc
    candidate.record_train_time(model_name, algorithm, secs)
    for line in candidate.gate_lines(ev.results):
        log.info("%s", line)
    summary = candidate.summary_line(ev, algorithm=algorithm, label=mv.label, info=frames.info, seconds=secs)
    log.info("summary: %s", summary)
    return candidate.candidate_result(
        ev, algorithm=algorithm, job_id=job, version=mv.version, champion_version=champ.version
    )


# ------------------------------------------------------------------ decide


def pick_best(
    dataset_row: dict[str, Any], candidates: list[dict[str, Any]] | None, context: dict[str, Any]
) -> dict[str, Any]:
    """The candidate to act on among the jobs that finished (a failed job
    returns nothing): deployable first, then review, then reject; highest
    accuracy within. When every job failed the trigger is marked failed and
    the task fails."""
    from include.modelwatch.training.retrain import pick_candidate

    done = [c for c in (candidates or []) if c]
    if not done:
        _fail_trigger(dataset_row, context, "every training job failed (see training_jobs)")
        raise RuntimeError(
            f"{dataset_row['model_name']} trigger {dataset_row['trigger_id']}: every training job failed"
        )
    best = pick_candidate(done)
    log.info(
        "summary: %d of %d candidates trained; acting on %s v%s (gates %s, out-of-sample accuracy %.4f)",
        len(done),
        len(ALGORITHMS),
        best["algorithm"],
        best["version"],
        best["status"],
        best["oos_accuracy"],
    )
    return best


def finish() -> None:
    """Last task of every retrain_gated run: where to read what happened."""
    log.info("summary: retrain_gated run finished; the trigger's outcome is in retraining_triggers")
    log_page(log, "alerts and triggers", urls.alerts_path() + "#triggers")


def wake_next() -> str:
    """Let the trigger-table Asset event through when triggers are still pending (another model's, say): a run
    claims one trigger, so the next run claims the next one instead of waiting for the daily 02:00 run."""
    from airflow.sdk.exceptions import AirflowSkipException

    from include.modelwatch.loop import triggers

    with monitoring_db() as conn:
        pending = triggers.pending_count(conn)
    if not pending:
        raise AirflowSkipException("no pending trigger left: no further retrain_gated run")
    log.info("summary: %d pending trigger(s) left: the next retrain_gated run claims the next one", pending)
    return f"{pending} pending"


def policy_requires_human(model_name: str) -> bool:
    policy = variable("modelwatch_require_approval")
    return bool(policy.get(model_name, policy.get("*", False)))


def choose(dataset_row: dict[str, Any], best: dict[str, Any]) -> str:
    from include.modelwatch.decisions import choose_after_gates
    from include.modelwatch.training.gates import GateSummary

    summary = GateSummary(best["status"], tuple(best["failing"]), tuple(best["borderline"]))
    human = policy_requires_human(dataset_row["model_name"])
    branch = choose_after_gates(summary, human)
    log.info(
        "summary: %s trigger %s: best candidate v%s (%s) gates %s; failing %s, borderline %s; policy requires "
        "approval: %s -> %s",
        dataset_row["model_name"],
        dataset_row["trigger_id"],
        best["version"],
        best["algorithm"],
        best["status"],
        best["failing"] or "none",
        best["borderline"] or "none",
        human,
        branch,
    )
    return branch


def deploy(
    dataset_row: dict[str, Any],
    best: dict[str, Any],
    context: dict[str, Any],
    *,
    approved_by: str | None = None,
    approval: dict[str, Any] | None = None,
) -> int:
    from include.modelwatch.ab import store as ab_store
    from include.modelwatch.data.storage import transaction
    from include.modelwatch.training import dataset, retrain
    from include.tasks.notify import deliver_pending

    alias = request(context).get("deploy_alias", "champion")
    if alias not in DEPLOY_ALIASES:
        refuse(f"{dataset_row['model_name']}: deploy_alias must be one of {DEPLOY_ALIASES}, got {alias!r}")
    if alias == "champion" and variable("modelwatch_ab_first").get(dataset_row["model_name"]):
        alias = "challenger"  # the model's policy: a passing candidate is A/B-tested before it replaces the champion
        log.info("%s: variable modelwatch_ab_first: deploying as challenger for an A/B test", dataset_row["model_name"])
    why = (
        f"retrain_gated: trigger {dataset_row['trigger_id']} ({dataset_row['trigger_type']}: "
        f"{dataset_row['reason']}); {best['algorithm']} v{best['version']} passed the gates"
    )
    if approved_by:
        why += f"; approved by {approved_by}"
    with monitoring_db() as conn:
        with transaction(conn) as cur:
            prev = retrain.deploy(
                conn,
                model_name=dataset_row["model_name"],
                version=best["version"],
                alias=alias,
                reason=why,
                changed_at=dataset.trigger_end(dataset_row),
                run_id=run_id(context),
                trigger_id=dataset_row["trigger_id"],
                outcome="deployed" if alias == "champion" else f"deployed as {alias}",
                result={
                    "algorithm": best["algorithm"],
                    "gates": best["status"],
                    "approved_by": approved_by,
                    **({"approval": approval} if approval else {}),
                },
                cur=cur,
            )
            ab_test = None
            if alias == "challenger":  # the deployment starts the A/B test, in the same transaction
                ab_test = ab_store.start_test(
                    conn,
                    model_name=dataset_row["model_name"],
                    challenger_version=best["version"],
                    started_at=dataset.trigger_end(dataset_row),
                    started_by=f"retrain_gated trigger {dataset_row['trigger_id']}",
                    reason=why,
                    run_id=run_id(context),
                    alias_set=True,
                    cur=cur,
                )
            _notify(
                cur,
                "deployed",
                dataset_row,
                best,
                approved_by=approved_by,
                alias=alias,
                detail=None if alias == "champion" else f"deployed as {alias}; A/B test {ab_test} started",
            )
        deliver_pending(conn, dataset_row["model_name"])
    feedback = _record_feedback(dataset_row, context)
    log.info(
        "summary: deployed %s v%s as %s (now active; previous v%s retired unless it holds another alias): %s%s",
        dataset_row["model_name"],
        best["version"],
        alias,
        prev,
        why,
        feedback,
    )
    log_page(log, "training jobs and gates", urls.model_path(dataset_row["model_name"], "jobs"))
    return best["version"]


def _record_feedback(dataset_row: dict[str, Any], context: dict[str, Any]) -> str:
    """Start the trigger's feedback row at once (before-value; a rejection is final);
    performance_daily fills in the after-value as outcomes mature. Returns a summary fragment."""
    from include.modelwatch.loop import feedback
    from include.modelwatch.training import dataset

    with monitoring_db() as conn:
        rows = feedback.update_feedback(conn, as_of=dataset.trigger_end(dataset_row), run_id=run_id(context))
    mine = [r for r in rows if r["trigger_id"] == dataset_row["trigger_id"]]
    return "".join(
        f"; feedback: trigger {r['trigger_id']} ({r['rule_name']}): live accuracy before "
        f"{r['before_value']} (v{r['version_before']}); improved={r['improved']}"
        for r in mine
    )


def reject(
    dataset_row: dict[str, Any],
    best: dict[str, Any],
    context: dict[str, Any],
    *,
    why: str | None = None,
    approval: dict[str, Any] | None = None,
) -> str:
    from include.modelwatch.data.storage import transaction
    from include.modelwatch.training import dataset, retrain
    from include.tasks.notify import deliver_pending

    failing = best.get("failing") or []
    outcome = f"rejected: {why}" if why else f"rejected: {', '.join(failing) or 'gates'}"
    with monitoring_db() as conn:
        with transaction(conn) as cur:
            rejected = retrain.reject(
                conn,
                trigger_id=dataset_row["trigger_id"],
                outcome=outcome,
                result={
                    "candidate_version": best["version"],
                    "algorithm": best["algorithm"],
                    "failing_gates": failing,
                    "previous_version": best["champion_version"],
                    "run_id": run_id(context),
                    **({"approval": approval} if approval else {}),
                },
                completed_at=dataset.trigger_end(dataset_row),
                cur=cur,
            )
            _notify(cur, "rejected", dataset_row, best, detail=outcome)
        deliver_pending(conn, dataset_row["model_name"])
    feedback = _record_feedback(dataset_row, context)
    log.info(
        "summary: %s trigger %s: candidate v%s %s; failing gates: %s; versions %s now rejected; champion v%s stays%s",
        dataset_row["model_name"],
        dataset_row["trigger_id"],
        best["version"],
        outcome,
        ", ".join(failing) or "none",
        rejected,
        best["champion_version"],
        feedback,
    )
    log_page(log, "training jobs and gates", urls.model_path(dataset_row["model_name"], "jobs"))
    return outcome


def _notify(cur, outcome: str, dataset_row: dict[str, Any], best: dict[str, Any], **extra: Any) -> None:
    """Enqueue the outcome's notification to the model's owners in ``cur``'s transaction, the one that
    records the outcome (the key ``retrain:<trigger>:<outcome>`` makes a retry enqueue nothing twice); the
    caller delivers it after the commit (``deliver_pending``)."""
    from include.modelwatch.notify import outbox
    from include.modelwatch.training import dataset
    from include.tasks.notify import base_url

    outbox.enqueue_retrain_outcome(
        cur,
        outcome=outcome,
        trigger_id=dataset_row["trigger_id"],
        candidate_version=best.get("version"),
        champion_version=best.get("champion_version"),
        algorithm=best.get("algorithm"),
        job_id=best.get("job_id"),
        at=dataset.trigger_end(dataset_row),
        base_url=base_url(),
        **extra,
    )


def mark_awaiting(dataset_row: dict[str, Any], best: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Record that the candidate waits for a human and mail the request to the model's approvers
    (``modelwatch_approvers``) and owners; returns ``{"assigned_users": ...}`` for ``human_decision``."""
    from include.modelwatch.data.storage import fetch_dicts, transaction
    from include.modelwatch.training import approval, dataset, retrain
    from include.tasks.notify import deliver_pending

    model = dataset_row["model_name"]
    approvers = approval.approvers_for(variable(approval.VARIABLE), model)
    with monitoring_db() as conn:
        with transaction(conn) as cur:
            retrain.complete_trigger(
                conn,
                dataset_row["trigger_id"],
                status="claimed",
                outcome="awaiting_approval",
                result={
                    "candidate_version": best["version"],
                    "borderline_gates": best["borderline"],
                    "run_id": run_id(context),
                    "approvers": approval.as_records(approvers),
                },
                completed_at=dataset.trigger_end(dataset_row),
                cur=cur,
            )
            _notify(
                cur,
                "awaiting_approval",
                dataset_row,
                best,
                approvers=[a.describe() for a in approvers],
                addressed_to=approval.emails(approvers),
                answer_url=page_url(
                    urls.airflow_task_path(context["dag"].dag_id, run_id(context), DECISION_TASK, "required_actions")
                ),
            )
        deliver_pending(conn, model)
        gates = fetch_dicts(
            conn,
            "SELECT gate, status, message FROM quality_gate_results WHERE trigger_id = %(t)s "
            "AND candidate_version = %(v)s ORDER BY id",
            {"t": dataset_row["trigger_id"], "v": best["version"]},
        )
    deploy_as = request(context).get("deploy_alias") or "champion"
    if deploy_as == "champion" and variable("modelwatch_ab_first").get(model):
        deploy_as = "challenger"  # as deploy() will decide
    body = approval.request_body(
        dataset_row,
        best,
        gates,
        deploy_as=deploy_as,
        page=page_url(urls.model_path(model, "jobs")),
    )
    log.info(
        "summary: trigger %s: candidate v%s awaits a human decision (borderline gates: %s; policy or review); "
        "approvers: %s",
        dataset_row["trigger_id"],
        best["version"],
        ", ".join(best["borderline"]) or "none",
        ", ".join(a.describe() for a in approvers) or f"anyone allowed to answer ({approval.VARIABLE} has none)",
    )
    log_page(log, "training jobs and gates", urls.model_path(model, "jobs"))
    return {"assigned_users": approval.hitl_users(approvers), "body": body}


def apply_approval(dataset_row: dict[str, Any], best: dict[str, Any], approved: bool, context: dict[str, Any]) -> str:
    """Deploy or reject after the human's answer: ``human_decision`` branches here and its XCom ``response``
    names who answered and when (or that the response timeout applied the default)."""
    from include.tasks.approval import response_of

    response = response_of(context, DECISION_TASK)
    if response is None:
        refuse(
            f"{dataset_row['model_name']}: {DECISION_TASK} recorded no response for trigger {dataset_row['trigger_id']}"
        )
    who = response.who()
    if approved:
        deploy(dataset_row, best, context, approved_by=who, approval=response.as_record())
        return "deployed"
    return reject(dataset_row, best, context, why=f"not approved by {who}", approval=response.as_record())
