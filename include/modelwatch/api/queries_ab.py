"""A/B test reads of the monitoring API (the predecessor's ``compare`` and ``traffic``): the tests, one test's
per-arm comparison on its latest evaluation day, and its traffic (assigned units per arm and session against
the configured split). Read-only; an unknown test raises :class:`ApiInputError` naming ``test_id``."""

from __future__ import annotations

from typing import Any

from include.modelwatch.api import models as m
from include.modelwatch.api.errors import ApiInputError
from include.modelwatch.api.queries_common import run, text

_TESTS = """
SELECT test_id, model_name AS model, champion_version, challenger_version, split, allocation, min_samples,
       max_days, alpha, status, reason, started_at, ended_at, started_by
FROM ab_tests WHERE (%(model)s::text IS NULL OR model_name = %(model)s::text) ORDER BY test_id DESC
"""


def ab_tests(conn, model: str | None = None) -> list[m.ABTestRow]:
    return [m.ABTestRow(**r) for r in run(conn, text(_TESTS), {"model": model})]


def _test(conn, test_id: int) -> dict[str, Any]:
    rows = run(conn, text(_TESTS.replace("WHERE (", "WHERE test_id = %(t)s AND (")), {"model": None, "t": test_id})
    if not rows:
        raise ApiInputError("test_id", f"A/B test {test_id} does not exist")
    return rows[0]


def ab_compare(conn, test_id: int) -> m.ABCompare:
    """The test and its latest evaluation day: per-arm metrics on the assigned rows, the paired table, the
    z-test, McNemar, the sequential test, the SRM check and the decision (None before the first evaluation)."""
    test = _test(conn, test_id)
    days = run(
        conn,
        text("SELECT * FROM ab_daily_results WHERE test_id = %(t)s ORDER BY day DESC LIMIT 1"),
        {"t": test_id},
    )
    latest = None
    if days:
        d = days[0]
        arms = d["arm_metrics"] or {}
        latest = m.ABDay(
            day=d["day"],
            days_elapsed=d["days_elapsed"],
            matured_rows=d["matured_rows"],
            paired={k: d[k] for k in ("both_right", "champion_only", "challenger_only", "both_wrong")},
            arms={arm: m.ABArm(**{k: arms.get(arm, {}).get(k) for k in m.ABArm.model_fields}) for arm in arms},
            z=d["z"],
            z_p_value=d["z_p_value"],
            mcnemar_p_value=d["mcnemar_p_value"],
            seq_log_lr=d["seq_log_lr"],
            seq_log_threshold=d["seq_log_threshold"],
            seq_decision=d["seq_decision"],
            srm_p_value=d["srm_p_value"],
            srm_mismatch=d["srm_mismatch"],
            decision=d["decision"],
            reason=d["reason"],
        )
    return m.ABCompare(test=m.ABTestRow(**test), latest=latest)


def ab_traffic(conn, test_id: int) -> m.ABTraffic:
    """Units assigned per arm and session, and the observed challenger share against the configured split."""
    test = _test(conn, test_id)
    rows = run(
        conn,
        text(
            "SELECT session_date AS day, count(*) FILTER (WHERE arm = 'champion') AS champion, "
            "count(*) FILTER (WHERE arm = 'challenger') AS challenger FROM ab_assignments WHERE test_id = %(t)s "
            "GROUP BY session_date ORDER BY session_date"
        ),
        {"t": test_id},
    )
    champion = sum(int(r["champion"]) for r in rows)
    challenger = sum(int(r["challenger"]) for r in rows)
    total = champion + challenger
    return m.ABTraffic(
        test_id=test_id,
        configured_split=float(test["split"]),
        observed_split=challenger / total if total else None,
        champion_units=champion,
        challenger_units=challenger,
        days=[m.ABTrafficDay(**r) for r in rows],
    )
