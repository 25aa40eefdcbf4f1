"""A/B test reads of the monitoring API (the predecessor's ``compare`` and ``traffic``) and of the A/B pages: the
tests (with their latest evaluation day), one test's daily results, its per-arm comparison on its latest evaluation
day, and its traffic (assigned units per arm and session against the configured split). Read-only; an unknown test
raises :class:`ApiInputError` naming ``test_id``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from include.modelwatch.api import models as m
from include.modelwatch.api.errors import ApiInputError
from include.modelwatch.api.queries_common import check_choice, check_model, run, text

_TESTS = """
SELECT test_id, model_name AS model, champion_version, challenger_version, split, allocation, min_samples,
       max_days, alpha, status, reason, started_at, ended_at, started_by
FROM ab_tests WHERE (%(model)s::text IS NULL OR model_name = %(model)s::text) ORDER BY test_id DESC
"""

_SUMMARIES = """
SELECT t.test_id, t.model_name AS model, t.champion_version, t.challenger_version, t.split, t.allocation,
       t.min_samples, t.max_days, t.alpha, t.status, t.reason, t.started_at, t.ended_at, t.started_by,
       d.day AS latest_day, d.days_elapsed, d.matured_rows, d.decision AS latest_decision
FROM ab_tests t
LEFT JOIN LATERAL (
    SELECT day, days_elapsed, matured_rows, decision FROM ab_daily_results r
    WHERE r.test_id = t.test_id ORDER BY day DESC LIMIT 1
) d ON true
WHERE (%(model)s::text IS NULL OR t.model_name = %(model)s::text)
  AND (%(status)s::text IS NULL OR t.status = %(status)s::text)
ORDER BY t.test_id DESC
"""


def statuses() -> tuple[str, ...]:
    """A test's statuses, as the database's CHECK and the decision module name them."""
    from include.modelwatch.ab.decision import STATUSES

    return STATUSES


def ab_tests(conn, model: str | None = None) -> list[m.ABTestRow]:
    return [m.ABTestRow(**r) for r in run(conn, text(_TESTS), {"model": model})]


def ab_test_summaries(conn, model: str | None = None, status: str | None = None) -> list[m.ABTestSummary]:
    """Every test (of ``model``, in ``status``), newest first, with its latest evaluation day. An unknown model
    or status raises :class:`ApiInputError` naming the field."""
    check_model(conn, model)
    check_choice("status", status, statuses())
    return [m.ABTestSummary(**r) for r in run(conn, text(_SUMMARIES), {"model": model, "status": status})]


def _test(conn, test_id: int) -> dict[str, Any]:
    rows = run(conn, text(_TESTS.replace("WHERE (", "WHERE test_id = %(t)s AND (")), {"model": None, "t": test_id})
    if not rows:
        raise ApiInputError("test_id", f"A/B test {test_id} does not exist")
    return rows[0]


def ab_test(conn, test_id: int) -> m.ABTestRow:
    """One test (:class:`ApiInputError` naming ``test_id`` when it does not exist)."""
    return m.ABTestRow(**_test(conn, test_id))


def _day(d: dict[str, Any]) -> m.ABDay:
    arms = d["arm_metrics"] or {}
    return m.ABDay(
        day=d["day"],
        days_elapsed=d["days_elapsed"],
        matured_rows=d["matured_rows"],
        paired={k: d[k] for k in ("both_right", "champion_only", "challenger_only", "both_wrong")},
        arms={arm: m.ABArm(**{k: arms.get(arm, {}).get(k) for k in m.ABArm.model_fields}) for arm in arms},
        n_champion=d["n_champion"],
        hits_champion=d["hits_champion"],
        n_challenger=d["n_challenger"],
        hits_challenger=d["hits_challenger"],
        z=d["z"],
        z_p_value=d["z_p_value"],
        mcnemar_p_value=d["mcnemar_p_value"],
        seq_log_lr=d["seq_log_lr"],
        seq_log_threshold=d["seq_log_threshold"],
        seq_decision=d["seq_decision"],
        seq_unit=d.get("seq_unit"),
        seq_champion_wins=d.get("seq_champion_wins"),
        seq_challenger_wins=d.get("seq_challenger_wins"),
        seq_log_lr_challenger=_finite(d.get("seq_log_lr_challenger")),
        seq_log_lr_champion=_finite(d.get("seq_log_lr_champion")),
        srm_p_value=d["srm_p_value"],
        srm_mismatch=d["srm_mismatch"],
        decision=d["decision"],
        reason=d["reason"],
        next_split=d["next_split"],
        run_id=d["run_id"],
    )


def ab_days(conn, test_id: int) -> list[m.ABDay]:
    """Every evaluation day of the test, oldest first (each cumulative since the start)."""
    _test(conn, test_id)
    rows = run(conn, text("SELECT * FROM ab_daily_results WHERE test_id = %(t)s ORDER BY day"), {"t": test_id})
    return [_day(d) for d in rows]


def ab_compare(conn, test_id: int) -> m.ABCompare:
    """The test and its latest evaluation day: per-arm metrics on the assigned rows, the paired table, the
    z-test, McNemar, the sequential test, the SRM check and the decision (None before the first evaluation)."""
    test = _test(conn, test_id)
    days = run(
        conn,
        text("SELECT * FROM ab_daily_results WHERE test_id = %(t)s ORDER BY day DESC LIMIT 1"),
        {"t": test_id},
    )
    return m.ABCompare(test=m.ABTestRow(**test), latest=_day(days[0]) if days else None)


def ab_traffic(conn, test_id: int) -> m.ABTraffic:
    """Units assigned per arm and session (with the split they were assigned with), and the observed challenger
    share against the configured split."""
    test = _test(conn, test_id)
    rows = run(
        conn,
        text(
            "SELECT session_date AS day, count(*) FILTER (WHERE arm = 'champion') AS champion, "
            "count(*) FILTER (WHERE arm = 'challenger') AS challenger, avg(split) AS split "
            "FROM ab_assignments WHERE test_id = %(t)s GROUP BY session_date ORDER BY session_date"
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


# --------------------------------------------------------------------------- the sequential test's two sides


@dataclass(frozen=True)
class SequentialSides:
    """Both one-sided statistics of a day's sequential test.

    ``unit``: ``session`` (``b`` / ``c`` are the sessions won by the champion / the challenger) or ``row`` (the
    discordant rows). A side that underflows a double (far below the threshold) is None."""

    unit: str
    b: int
    c: int
    log_lr_challenger: float | None
    log_lr_champion: float | None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def sequential_sides(day: m.ABDay) -> SequentialSides | None:
    """The two sides of the day's sequential test as ``ab_test_daily`` stored them (migration 018); None for a
    day evaluated before (the page then shows the recorded larger statistic only)."""
    if day.seq_unit is None or day.seq_champion_wins is None or day.seq_challenger_wins is None:
        return None
    return SequentialSides(
        day.seq_unit, day.seq_champion_wins, day.seq_challenger_wins, day.seq_log_lr_challenger, day.seq_log_lr_champion
    )


__all__ = [
    "SequentialSides",
    "ab_compare",
    "ab_days",
    "ab_test",
    "ab_test_summaries",
    "ab_tests",
    "ab_traffic",
    "sequential_sides",
    "statuses",
]
