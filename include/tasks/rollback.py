"""Task bodies of ``rollback_model``: context and connection in, library call, results out.

What a run does comes from its trigger form (``params``) or its conf; the conf wins (tests and the API pass conf).
"""

from __future__ import annotations

import logging
from typing import Any

from include.tasks.common import data_interval, monitoring_db, refusing_artifacts, run_id
from include.tasks.forms import jsonable, refuse, request

log = logging.getLogger(__name__)


def rollback_plans(context: dict[str, Any]) -> list[dict[str, Any]]:
    """One :func:`rollback_plan` per model: the model of the form or conf, else every model with a champion (the
    automatic daily check)."""
    from include.modelwatch.loop import responses

    req = request(context)
    if req.get("model_name"):
        models = [str(req["model_name"])]
    elif req.get("target_version") is not None:
        refuse("a manual rollback names the model (model_name) as well as the target version")
    else:
        with monitoring_db() as conn:
            models = responses.models_with_champion(conn)
        log.info("summary: %d model(s) with a champion to check: %s", len(models), ", ".join(models) or "none")
    return [rollback_plan(m, context) for m in models]


def rollback_plan(model_name: str, context: dict[str, Any]) -> dict[str, Any]:
    """Manual (``model_name``, ``target_version``, ``reason`` from the form or conf) or automatic: the champion
    deployed last is compared with the previous one on daily live accuracy
    (``live_performance_daily``) over ``period_days`` before / after the change."""
    from datetime import timedelta

    from include.modelwatch import registry
    from include.modelwatch.decisions import should_rollback
    from include.modelwatch.training import retrain
    from include.modelwatch.vocabulary import check_text

    req = request(context)
    as_of = context.get("logical_date") or context["dag_run"].run_after
    for knob in ("period_days", "min_days", "target_version"):
        value = req.get(knob)
        if value is not None and (isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1):
            refuse(f"{model_name}: {knob} must be a positive integer, got {value!r}")
    try:
        check_text("reason", req.get("reason"))
        check_text("model_name", model_name)
    except ValueError as exc:
        refuse(f"{model_name!r}: {exc}")
    with monitoring_db() as conn:
        statuses = registry.version_statuses(conn, model_name)
        if not statuses:
            refuse(f"{model_name}: no such model (nothing registered under that name)")
        current = registry.resolve_alias(conn, model_name, registry.CHAMPION)
        if req.get("target_version") is not None:
            target = int(req["target_version"])
            if target not in statuses:
                refuse(f"{model_name} has no version {target} (registered: {sorted(statuses)})")
            reason = str(req.get("reason") or "").strip()
            if not reason:
                refuse(f"{model_name}: a manual rollback to v{target} needs a reason")
            log.info(
                "summary: %s: manual rollback of champion v%s to v%s requested: %s", model_name, current, target, reason
            )
            return {
                "model_name": model_name,
                "target_version": target,
                "current_version": current,
                "reason": f"manual: {reason}",
                "rollback": True,
                "manual": True,
                "as_of": str(as_of),
            }
        change = retrain.last_champion_change(conn, model_name, as_of)
        if not change or change["from_version"] is None:
            log.info(
                "summary: %s: champion v%s has no predecessor; nothing to compare, champion kept", model_name, current
            )
            return {"model_name": model_name, "rollback": False, "as_of": str(as_of)}
        period = timedelta(days=int(req.get("period_days", 30)))
        at = change["changed_at"]
        new = retrain.live_metric_series(conn, model_name, change["to_version"], at, min(as_of, at + period))
        prev = retrain.live_metric_series(conn, model_name, change["from_version"], at - period, at)
    worse, evidence = should_rollback(new, prev, min_days=int(req.get("min_days", 10)))
    log.info(
        "summary: %s: v%s (since %s) vs v%s: %s -> %s",
        model_name,
        change["to_version"],
        f"{at:%Y-%m-%d}",
        change["from_version"],
        evidence["reason"],
        "roll back" if worse else "keep",
    )
    return {
        "model_name": model_name,
        "target_version": change["from_version"],
        "current_version": change["to_version"],
        "reason": f"automatic: live accuracy significantly worse ({evidence['reason']})",
        "rollback": worse,
        "evidence": jsonable(evidence),
        "as_of": str(as_of),
    }


def do_rollbacks(plans: list[dict[str, Any]], context: dict[str, Any]) -> list[int]:
    """Roll back every model whose plan says so, each in its own transaction; the restored versions. A model this
    run already restored (the task's retry after a later model failed) is not rolled back twice."""
    from include.modelwatch import registry
    from include.modelwatch.decisions import plan_rolls_back

    done: list[int] = []
    for p in [p for p in plans if plan_rolls_back(p)]:
        with monitoring_db() as conn:
            history = registry.alias_history(conn, p["model_name"], registry.CHAMPION)
        last = history[-1] if history else None
        if last and last["to_version"] == int(p["target_version"]) and last["run_id"] == run_id(context):
            log.info("%s: v%s already restored by this run (a retry); skipped", p["model_name"], p["target_version"])
            done.append(int(p["target_version"]))
            continue
        done.append(do_rollback(p, context))
    return done


def keep_all(plans: list[dict[str, Any]]) -> list[str]:
    """Log each model that keeps its champion; why."""
    from include.modelwatch.decisions import plan_rolls_back

    return [keep(p) for p in plans if not plan_rolls_back(p)]


def do_rollback(plan: dict[str, Any], context: dict[str, Any]) -> int:
    from datetime import datetime

    from include.modelwatch.training import retrain

    start, end, rid = *data_interval(context), run_id(context)
    with monitoring_db() as conn:
        with refusing_artifacts(conn, by="rollback_model", start=start, end=end, rid=rid, consequence="not restored"):
            prev = retrain.rollback(
                conn,
                model_name=plan["model_name"],
                target_version=int(plan["target_version"]),
                reason=plan["reason"],
                changed_at=datetime.fromisoformat(plan["as_of"]),
                run_id=rid,
            )
    log.info(
        "summary: %s: champion restored to v%s (active again; v%s retired); %s",
        plan["model_name"],
        plan["target_version"],
        prev,
        plan["reason"],
    )
    return int(plan["target_version"])


def keep(plan: dict[str, Any]) -> str:
    evidence = (plan.get("evidence") or {}).get("reason") or "no predecessor to compare with"
    why = f"{plan['model_name']}: champion v{plan.get('current_version')} kept ({evidence})"
    log.info("summary: %s", why)
    return why
