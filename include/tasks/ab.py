"""Task bodies of ``ab_test_daily`` (and the A/B start from ``retrain_gated``): each running test's evidence at
the window's end, the day's decision (``include.modelwatch.ab.decision.decide``) and the endings."""

from __future__ import annotations

import logging
from typing import Any

from include.modelwatch.api import urls
from include.tasks.common import log_page, monitoring_db, page_url, run_id, variable, window

log = logging.getLogger(__name__)


def evaluate(context: dict[str, Any]) -> list[dict[str, Any]]:
    """Judge every running test on its cumulative matured outcomes before the window's end and replace that
    day's ``ab_daily_results`` row; one transaction per test, and one test's error does not stop the others (the
    task fails after the others are recorded, naming each failed test)."""
    from include.modelwatch.ab import store

    _, end = window(context)
    out, failed = [], []
    with monitoring_db() as conn:
        for test in store.running_tests(conn):
            try:
                out.append(_evaluate_one(conn, test, end, context))
            except Exception as exc:  # isolate: the other tests are still judged and recorded
                conn.rollback()
                log.exception("A/B test %s of %s: evaluation failed", test.test_id, test.model_name)
                failed.append(f"test {test.test_id} ({test.model_name}): {type(exc).__name__}: {exc}")
    if failed:
        raise RuntimeError("A/B evaluation failed for " + "; ".join(failed))
    if not out:
        log.info("summary: no running A/B test")
    return out


def _evaluate_one(conn, test: Any, end: Any, context: dict[str, Any]) -> dict[str, Any]:
    from include.modelwatch.ab import stats, store
    from include.modelwatch.ab.decision import Evidence, TestState, decide
    from include.modelwatch.data.storage import transaction

    ev = store.evidence(conn, test, end)
    days = ev.sessions_elapsed
    # sessions, not rows, are the sequential test's units: the symbols of one session share its market move
    evidence = Evidence.build(ev.paired, ev.assigned, alpha=test.alpha, sessions=ev.sessions)
    state = TestState(
        split=ev.expected_split, min_samples=test.min_samples, max_days=test.max_days, days_elapsed=int(days)
    )
    decision = decide(state, evidence)
    a = ev.assigned
    next_split = (
        stats.thompson_split(a.hits_champion, a.n_champion, a.hits_challenger, a.n_challenger, seed=test.test_id)
        if test.allocation == "thompson"
        else test.split
    )
    row = store.day_row(
        ev.paired,
        ev.assigned,
        evidence,
        decision,
        days_elapsed=int(days),
        next_split=next_split,
        arm_metrics=ev.arm_metrics,
        run_id=run_id(context),
    )
    with transaction(conn) as cur:
        store.record_day(cur, test.test_id, end.date(), row)
    if test.allocation == "thompson":
        log.info("A/B test %s: Thompson sampling sets the challenger's split to %.3f", test.test_id, next_split)
    log.info(
        "summary: A/B test %s of %s (champion v%s vs challenger v%s), day %s (%d sessions): %s: %s",
        test.test_id,
        test.model_name,
        test.champion_version,
        test.challenger_version,
        f"{end:%Y-%m-%d}",
        days,
        decision.action.upper(),
        decision.reason,
    )
    log_page(log, "A/B test", urls.ab_test_path(test.test_id))
    from include.modelwatch.ab.endings import PROMOTE
    from include.tasks.retrain import policy_requires_human

    return {
        "test_id": test.test_id,
        "model_name": test.model_name,
        "champion_version": test.champion_version,
        "challenger_version": test.challenger_version,
        "action": decision.action,
        "reason": decision.reason,
        "needs_approval": decision.action == PROMOTE and policy_requires_human(test.model_name),
    }


def choose(evaluated: list[dict[str, Any]]) -> list[str]:
    from include.modelwatch.ab.endings import endings

    return endings([e["action"] for e in evaluated], [bool(e.get("needs_approval")) for e in evaluated])


def _awaiting(evaluated: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from include.modelwatch.ab.endings import PROMOTE

    return [e for e in evaluated if e["action"] == PROMOTE and e.get("needs_approval")]


def request_promotion(evaluated: list[dict[str, Any]], context: dict[str, Any]) -> dict[str, Any]:
    """The promotions the models' policy puts before a human: the request's approvers (``modelwatch_approvers``,
    as for retraining) and the Markdown they read (each test's evidence); the tests keep running until then."""
    from include.modelwatch.training import approval

    asked = _awaiting(evaluated)
    users: list[dict[str, str]] = []
    lines = ["The A/B tests below found the challenger better. Approve promotes each; Reject stops each test.", ""]
    for e in asked:
        approvers = approval.approvers_for(variable(approval.VARIABLE), e["model_name"])
        users += [u for u in (approval.hitl_users(approvers) or []) if u not in users]
        lines.append(
            f"- **{e['model_name']}**: test {e['test_id']}, challenger v{e['challenger_version']} against champion "
            f"v{e['champion_version']}: {e['reason']}"
        )
        log.info(
            "summary: A/B test %s of %s: promotion of v%s awaits a human decision (approvers: %s)",
            e["test_id"],
            e["model_name"],
            e["challenger_version"],
            ", ".join(a.describe() for a in approvers) or "anyone allowed to answer",
        )
    lines += ["", "Evidence: " + ", ".join(page_url(urls.model_path(e["model_name"])) for e in asked)]
    return {"assigned_users": users or None, "body": "\n".join(lines)}


def apply_promotion(approved: bool, evaluated: list[dict[str, Any]], context: dict[str, Any]) -> list[int]:
    """After the human's answer: promote (the reason names the approver) or stop each awaiting test."""
    from include.modelwatch.ab import store
    from include.modelwatch.ab.endings import PROMOTE, STOP, TASK_AB_DECISION
    from include.tasks.approval import response_of

    response = response_of(context, TASK_AB_DECISION)
    who = response.who() if response is not None else "nobody (no response recorded)"
    _, end = window(context)
    done = []
    with monitoring_db() as conn:
        for e in _awaiting(evaluated):
            if store.get_test(conn, e["test_id"]).status != "running":  # ended by an earlier try of this task
                log.info("A/B test %s is no longer running: already applied", e["test_id"])
                continue
            reason = f"{e['reason']}; approved by {who}" if approved else f"promotion not approved by {who}"
            test = store.end_test(
                conn, e["test_id"], PROMOTE if approved else STOP, reason=reason, ended_at=end, run_id=run_id(context)
            )
            log.info("summary: A/B test %s of %s %s: %s", test.test_id, test.model_name, test.status, reason)
            log_page(log, "alias history", urls.model_path(test.model_name, "aliases"))
            done.append(test.test_id)
    return done


def end_tests(action: str, evaluated: list[dict[str, Any]], context: dict[str, Any]) -> list[int]:
    """Apply the day's ``action`` (promote | stop | inconclusive) to the tests that got it: the alias changes
    and the test's end in one transaction per test (``store.end_test``)."""
    from include.modelwatch.ab import store

    _, end = window(context)
    done = []
    with monitoring_db() as conn:
        for e in evaluated:
            if e["action"] != action or e.get("needs_approval"):
                continue  # a promotion awaiting a human is applied by apply_promotion
            test = store.end_test(conn, e["test_id"], action, reason=e["reason"], ended_at=end, run_id=run_id(context))
            log.info(
                "summary: A/B test %s of %s %s (champion now v%s): %s",
                test.test_id,
                test.model_name,
                test.status,
                test.challenger_version if action == "promote" else test.champion_version,
                e["reason"],
            )
            log_page(log, "alias history", urls.model_path(test.model_name, "aliases"))
            done.append(test.test_id)
    return done
