"""Task bodies of ``ab_test_daily`` (and the A/B start from ``retrain_gated``): each running test's evidence at
the window's end, the day's decision (``include.modelwatch.ab.decision.decide``) and the endings."""

from __future__ import annotations

import logging
from typing import Any

from include.modelwatch.api import urls
from include.tasks.common import log_page, monitoring_db, run_id, window

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
    z, z_p = stats.two_proportion_z(
        ev.assigned.hits_champion, ev.assigned.n_champion, ev.assigned.hits_challenger, ev.assigned.n_challenger
    )
    mc = stats.mcnemar(ev.paired.b, ev.paired.c, ev.paired.n)
    seq = evidence.sequential
    row = {
        "days_elapsed": int(days),
        "matured_rows": ev.paired.n,
        "both_right": ev.paired.both_right,
        "champion_only": ev.paired.champion_only,
        "challenger_only": ev.paired.challenger_only,
        "both_wrong": ev.paired.both_wrong,
        "n_champion": ev.assigned.n_champion,
        "hits_champion": ev.assigned.hits_champion,
        "n_challenger": ev.assigned.n_challenger,
        "hits_challenger": ev.assigned.hits_challenger,
        "z": z,
        "z_p_value": z_p,
        "mcnemar_p_value": mc.p_value,
        "seq_log_lr": seq.log_lr,
        "seq_log_threshold": seq.log_threshold,
        "seq_decision": seq.decision,
        "srm_p_value": decision.srm.p_value,
        "srm_mismatch": decision.srm.mismatch,
        "next_split": next_split,
        "arm_metrics": ev.arm_metrics,
        "decision": decision.action,
        "reason": decision.reason,
        "run_id": run_id(context),
    }
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
    log_page(log, "model", urls.model_path(test.model_name))
    return {
        "test_id": test.test_id,
        "model_name": test.model_name,
        "action": decision.action,
        "reason": decision.reason,
    }


def choose(evaluated: list[dict[str, Any]]) -> list[str]:
    from include.modelwatch.ab.endings import endings

    return endings([e["action"] for e in evaluated])


def end_tests(action: str, evaluated: list[dict[str, Any]], context: dict[str, Any]) -> list[int]:
    """Apply the day's ``action`` (promote | stop | inconclusive) to the tests that got it: the alias changes
    and the test's end in one transaction per test (``store.end_test``)."""
    from include.modelwatch.ab import store

    _, end = window(context)
    done = []
    with monitoring_db() as conn:
        for e in evaluated:
            if e["action"] != action:
                continue
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
