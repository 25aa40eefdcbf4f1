"""A/B tests in the monitoring database (migration 016): start, assignment, evidence, daily results, the end.

* :func:`start_test` points the ``challenger`` alias at the challenger and inserts the ``ab_tests`` row in one
  transaction; PostgreSQL allows one running test per model.
* :func:`assign_units` stores each scored unit's arm (:func:`~include.modelwatch.ab.assignment.arm_for`), once:
  a re-run finds the stored arm.
* :func:`evidence` reads the rows both arms scored whose outcome matured before a day's end: the paired 2x2 table
  on every row (shadow scores included), the assigned arms' counts, and per session the discordant wins.
* :func:`record_day` replaces a day's ``ab_daily_results`` row; :func:`end_test` promotes (the same deploy as
  ``retrain_gated``: alias change and history with reason and run, one transaction, the old champion stays
  registered), stops or closes a test as inconclusive (the ``challenger`` alias removed, the reason recorded).

A hit is a correct label (``predicted_label = realized_label``): defined for every row, HOLD included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from include.modelwatch import registry
from include.modelwatch.ab import assignment
from include.modelwatch.ab.decision import (
    INCONCLUSIVE,
    PROMOTE,
    STATUS_AFTER,
    STATUS_CANCELLED,
    STATUS_RUNNING,
    STOP,
    validate_test_config,
)
from include.modelwatch.ab.stats import ArmCounts, PairedCounts
from include.modelwatch.data.storage import fetch_dicts, insert_sql, transaction
from include.modelwatch.vocabulary import CLASSES, check_text

CHALLENGER = "challenger"
DEFAULT_SPLIT = 0.5
DEFAULT_MIN_SAMPLES = 100
DEFAULT_MAX_DAYS = 60
#: per-arm metrics kept in ab_daily_results.arm_metrics (names of ``live_metrics``; plus ``rows``)
ARM_METRICS = ("accuracy", "n_trades", "hit_rate", "win_rate", "profit_factor", "avg_rr", "sharpe")
ALLOCATIONS = ("fixed", "thompson")


class ABError(ValueError):
    """A refused A/B operation; the message names the model, test or value. Nothing was changed."""


@dataclass(frozen=True)
class ABTest:
    test_id: int
    model_name: str
    champion_version: int
    challenger_version: int
    split: float
    allocation: str
    min_samples: int
    max_days: int
    alpha: float
    status: str
    reason: str
    started_at: datetime
    ended_at: datetime | None
    started_by: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ABTest:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_COLUMNS = (
    "test_id, model_name, champion_version, challenger_version, split, allocation, min_samples, max_days, alpha, "
    "status, reason, started_at, ended_at, started_by"
)


def start_test(
    conn,
    *,
    model_name: str,
    challenger_version: int,
    started_at: datetime,
    started_by: str,
    reason: str,
    split: float = DEFAULT_SPLIT,
    allocation: str = "fixed",
    min_samples: int = DEFAULT_MIN_SAMPLES,
    max_days: int = DEFAULT_MAX_DAYS,
    alpha: float = 0.05,
    run_id: str | None = None,
    alias_set: bool = False,
    cur=None,
) -> int:
    """Start a test of the model's champion against ``challenger_version``; returns its id. Refused (ABError
    naming the problem, nothing changed): no champion, an unknown or rejected version, the champion itself, a split
    outside (0, 1), a second running test of the model. ``alias_set``: the caller already pointed the
    ``challenger`` alias at the version in ``cur``'s transaction (``retrain_gated``'s deploy)."""
    if not reason or not reason.strip():
        raise ABError(f"{model_name}: starting an A/B test needs a reason")
    try:
        check_text("reason", reason)
    except ValueError as exc:
        raise ABError(f"{model_name}: {exc}") from exc
    if cur is None:
        with transaction(conn) as own:
            return start_test(
                conn,
                model_name=model_name,
                challenger_version=challenger_version,
                started_at=started_at,
                started_by=started_by,
                reason=reason,
                split=split,
                allocation=allocation,
                min_samples=min_samples,
                max_days=max_days,
                alpha=alpha,
                run_id=run_id,
                alias_set=alias_set,
                cur=own,
            )
    if allocation not in ALLOCATIONS:
        raise ABError(f"{model_name}: allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    champion = registry.resolve_alias(conn, model_name, registry.CHAMPION)
    if champion is None:
        raise ABError(f"{model_name}: no champion to test against")
    try:
        validate_test_config(
            champion_version=champion,
            challenger_version=challenger_version,
            split=split,
            min_samples=min_samples,
            max_days=max_days,
            alpha=alpha,
        )
    except ValueError as exc:
        raise ABError(f"{model_name}: {exc}") from None
    cur.execute(
        "SELECT status, classes, artifact_path FROM model_versions WHERE model_name = %(m)s AND version = %(v)s",
        {"m": model_name, "v": challenger_version},
    )
    row = cur.fetchone()
    if row is None:
        raise ABError(f"{model_name}: unknown version {challenger_version}")
    if list(row[1]) != list(CLASSES) or row[2] is None:
        what = f"predicts {list(row[1])}" + (" and is external" if row[2] is None else "")
        raise ABError(
            f"{model_name}: A/B tests compare the hit rate of BUY/SELL signals scored by ModelWatch; "
            f"v{challenger_version} {what}, so it cannot be A/B-tested"
        )
    if row[0] == registry.REJECTED:
        raise ABError(f"{model_name} v{challenger_version} was rejected by its quality gates; it cannot be tested")
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%(k)s))", {"k": f"ab:{model_name}"})
    cur.execute(
        "SELECT test_id, challenger_version FROM ab_tests WHERE model_name = %(m)s AND status = 'running'",
        {"m": model_name},
    )
    running = cur.fetchone()
    if running is not None:
        raise ABError(
            f"{model_name}: test {running[0]} (challenger v{running[1]}) is still running; stop it first "
            "(one running test per model)"
        )
    if alias_set:
        if registry.resolve_alias(conn, model_name, CHALLENGER) != challenger_version:
            raise ABError(f"{model_name}: the challenger alias does not point at v{challenger_version}")
    else:
        registry.set_alias(
            conn,
            model_name,
            CHALLENGER,
            challenger_version,
            reason=f"A/B test against champion v{champion}: {reason.strip()}",
            changed_at=started_at,
            run_id=run_id,
            cur=cur,
        )
    cur.execute(
        "INSERT INTO ab_tests (model_name, champion_version, challenger_version, split, allocation, min_samples, "
        "max_days, alpha, reason, started_at, started_by) VALUES (%(m)s, %(champ)s, %(chal)s, %(split)s, "
        "%(allocation)s, %(min)s, %(max)s, %(alpha)s, %(reason)s, %(at)s, %(by)s) RETURNING test_id",
        {
            "m": model_name,
            "champ": champion,
            "chal": challenger_version,
            "split": split,
            "allocation": allocation,
            "min": min_samples,
            "max": max_days,
            "alpha": alpha,
            "reason": reason.strip(),
            "at": started_at,
            "by": started_by,
        },
    )
    return int(cur.fetchone()[0])


def running_test(conn, model_name: str) -> ABTest | None:
    rows = fetch_dicts(
        conn, f"SELECT {_COLUMNS} FROM ab_tests WHERE model_name = %(m)s AND status = 'running'", {"m": model_name}
    )
    return ABTest.from_row(rows[0]) if rows else None


def running_tests(conn) -> list[ABTest]:
    rows = fetch_dicts(conn, f"SELECT {_COLUMNS} FROM ab_tests WHERE status = 'running' ORDER BY test_id", {})
    return [ABTest.from_row(r) for r in rows]


def get_test(conn, test_id: int) -> ABTest:
    rows = fetch_dicts(conn, f"SELECT {_COLUMNS} FROM ab_tests WHERE test_id = %(t)s", {"t": test_id})
    if not rows:
        raise ABError(f"A/B test {test_id} does not exist")
    return ABTest.from_row(rows[0])


def list_tests(conn, model_name: str | None = None) -> list[ABTest]:
    rows = fetch_dicts(
        conn,
        f"SELECT {_COLUMNS} FROM ab_tests WHERE (%(m)s::text IS NULL OR model_name = %(m)s::text) "
        "ORDER BY test_id DESC",
        {"m": model_name},
    )
    return [ABTest.from_row(r) for r in rows]


def daily_results(conn, test_id: int) -> list[dict[str, Any]]:
    return fetch_dicts(conn, "SELECT * FROM ab_daily_results WHERE test_id = %(t)s ORDER BY day", {"t": test_id})


def assign_units(cur, test: ABTest, units: Iterable[tuple[str, date]]) -> dict[str, str]:
    """Store the arm of each (symbol, session) unit (first assignment wins: a re-run finds it); returns
    unit -> arm for the given units."""
    rows = []
    for symbol, session in units:
        unit = assignment.unit_key(symbol, session)
        rows.append(
            {
                "t": test.test_id,
                "unit": unit,
                "symbol": symbol,
                "day": session,
                "arm": assignment.arm_for(test.test_id, unit, test.split),
                "split": test.split,
            }
        )
    if not rows:
        return {}
    cur.executemany(
        "INSERT INTO ab_assignments (test_id, unit, symbol, session_date, arm, split) "
        "VALUES (%(t)s, %(unit)s, %(symbol)s, %(day)s, %(arm)s, %(split)s) ON CONFLICT (test_id, unit) DO NOTHING",
        rows,
    )
    cur.execute(
        "SELECT unit, arm FROM ab_assignments WHERE test_id = %(t)s AND unit = ANY(%(units)s)",
        {"t": test.test_id, "units": [r["unit"] for r in rows]},
    )
    return {str(u): str(a) for u, a in cur.fetchall()}


#: Every assigned unit whose two predictions (champion and challenger version) both have a matured outcome
#: before the day's end, with both hits and the unit's arm.
_EVIDENCE_SQL = """
SELECT a.session_date, a.arm,
       (pc.predicted_label = oc.realized_label) AS champion_hit,
       (px.predicted_label = ox.realized_label) AS challenger_hit,
       s.ts, s.predicted_label, s.confidence,
       (s.probabilities->>'SELL')::float8 AS "p_SELL", (s.probabilities->>'HOLD')::float8 AS "p_HOLD",
       (s.probabilities->>'BUY')::float8 AS "p_BUY",
       so.realized_label, so.realized_return, so.r_multiple, so.matured_at, so.horizon_days
FROM ab_assignments a
JOIN ab_tests t ON t.test_id = a.test_id
JOIN predictions pc ON pc.model_name = t.model_name AND pc.model_version = t.champion_version
     AND pc.symbol = a.symbol AND pc.timeframe = '1d' AND (pc.ts AT TIME ZONE 'UTC')::date = a.session_date
JOIN outcomes oc ON oc.prediction_id = pc.prediction_id AND oc.matured_at < %(day_end)s
JOIN predictions px ON px.model_name = t.model_name AND px.model_version = t.challenger_version
     AND px.symbol = a.symbol AND px.timeframe = '1d' AND (px.ts AT TIME ZONE 'UTC')::date = a.session_date
JOIN outcomes ox ON ox.prediction_id = px.prediction_id AND ox.matured_at < %(day_end)s
-- the served (assigned) arm's prediction and outcome, for its trading metrics
CROSS JOIN LATERAL (SELECT CASE WHEN a.arm = 'champion' THEN pc ELSE px END AS p,
                           CASE WHEN a.arm = 'champion' THEN oc ELSE ox END AS o) served
CROSS JOIN LATERAL (SELECT (served.p).*) s
CROSS JOIN LATERAL (SELECT (served.o).*) so
WHERE a.test_id = %(t)s
ORDER BY a.session_date, a.symbol
"""


@dataclass(frozen=True)
class DayEvidence:
    paired: PairedCounts
    assigned: ArmCounts
    sessions: tuple[int, int]  # sessions won by the champion, by the challenger (discordant rows per session)
    arm_metrics: dict[str, dict[str, Any]]
    assigned_units: tuple[int, int]  # every assigned unit so far (champion, challenger): the SRM check's counts
    expected_split: float  # the mean split the assigned units were drawn with (the SRM check's expectation)
    sessions_elapsed: int  # sessions assigned so far: the test's age in days


def evidence(conn, test: ABTest, day_end: datetime) -> DayEvidence:
    """The cumulative matured evidence of ``test`` at ``day_end``; each arm's trading metrics are the ones the
    performance monitoring computes (``live_metrics``) on the rows it served."""
    import pandas as pd

    from include.modelwatch.monitoring.performance.metrics import live_metrics

    rows = fetch_dicts(conn, _EVIDENCE_SQL, {"t": test.test_id, "day_end": day_end})
    cells = {"both_right": 0, "champion_only": 0, "challenger_only": 0, "both_wrong": 0}
    arms = {"champion": [0, 0], "challenger": [0, 0]}
    per_session: dict[date, list[int]] = {}
    for r in rows:
        ch, cx = bool(r["champion_hit"]), bool(r["challenger_hit"])
        key = "both_right" if ch and cx else "champion_only" if ch else "challenger_only" if cx else "both_wrong"
        cells[key] += 1
        arm = str(r["arm"])
        arms[arm][0] += 1
        arms[arm][1] += int(cx if arm == "challenger" else ch)
        won = per_session.setdefault(r["session_date"], [0, 0])
        won[0] += int(ch and not cx)
        won[1] += int(cx and not ch)
    session_champion = sum(1 for b, c in per_session.values() if b > c)
    session_challenger = sum(1 for b, c in per_session.values() if c > b)
    frame = pd.DataFrame(rows)
    metrics: dict[str, dict[str, Any]] = {}
    for arm in arms:
        served = frame[frame["arm"] == arm] if len(frame) else frame
        m = live_metrics(served) if len(served) else {}
        metrics[arm] = {k: m.get(k) for k in ARM_METRICS} | {"rows": len(served)}
    counts = fetch_dicts(
        conn,
        "SELECT arm, count(*) AS n, sum(split) AS splits, count(DISTINCT session_date) AS sessions "
        "FROM ab_assignments WHERE test_id = %(t)s AND session_date < %(day)s GROUP BY ROLLUP (arm)",
        {"t": test.test_id, "day": day_end.date()},
    )
    total = next((r for r in counts if r["arm"] is None), None)
    counts = [r for r in counts if r["arm"] is not None]
    assigned = {str(r["arm"]): int(r["n"]) for r in counts}
    n_assigned = sum(assigned.values())
    expected = sum(float(r["splits"]) for r in counts) / n_assigned if n_assigned else test.split
    return DayEvidence(
        paired=PairedCounts(**cells),
        assigned=ArmCounts(arms["champion"][0], arms["champion"][1], arms["challenger"][0], arms["challenger"][1]),
        sessions=(session_champion, session_challenger),
        arm_metrics=metrics,
        assigned_units=(assigned.get("champion", 0), assigned.get("challenger", 0)),
        expected_split=expected,
        sessions_elapsed=int(total["sessions"]) if total else 0,
    )


def day_row(
    paired: PairedCounts,
    assigned: ArmCounts,
    evidence: Any,
    decision: Any,
    *,
    days_elapsed: int,
    next_split: float,
    arm_metrics: Mapping[str, Any],
    run_id: str | None,
) -> dict[str, Any]:
    """The ``ab_daily_results`` row of one evaluation (the one place its columns are filled): the paired table,
    the assigned arms, the z-test, McNemar, both sides of the sequential test, SRM, the decision and its reason.
    ``evidence`` and ``decision`` are :class:`~include.modelwatch.ab.decision.Evidence` and the result of
    :func:`~include.modelwatch.ab.decision.decide`."""
    from include.modelwatch.ab import stats

    z, z_p = stats.two_proportion_z(
        assigned.hits_champion, assigned.n_champion, assigned.hits_challenger, assigned.n_challenger
    )
    seq = evidence.sequential
    return {
        "days_elapsed": int(days_elapsed),
        "matured_rows": paired.n,
        "both_right": paired.both_right,
        "champion_only": paired.champion_only,
        "challenger_only": paired.challenger_only,
        "both_wrong": paired.both_wrong,
        "n_champion": assigned.n_champion,
        "hits_champion": assigned.hits_champion,
        "n_challenger": assigned.n_challenger,
        "hits_challenger": assigned.hits_challenger,
        "z": z,
        "z_p_value": z_p,
        "mcnemar_p_value": stats.mcnemar(paired.b, paired.c, paired.n).p_value,
        "seq_log_lr": seq.log_lr,
        "seq_log_threshold": seq.log_threshold,
        "seq_decision": seq.decision,
        "seq_unit": seq.unit,
        "seq_champion_wins": seq.b,
        "seq_challenger_wins": seq.c,
        "seq_log_lr_challenger": seq.log_lr_challenger,
        "seq_log_lr_champion": seq.log_lr_champion,
        "srm_p_value": decision.srm.p_value,
        "srm_mismatch": decision.srm.mismatch,
        "next_split": next_split,
        "arm_metrics": dict(arm_metrics),
        "decision": decision.action,
        "reason": decision.reason,
        "run_id": run_id,
    }


def record_day(cur, test_id: int, day: date, row: Mapping[str, Any]) -> None:
    """Replace the ``ab_daily_results`` row of (test, day) and set the test's split to its ``next_split``."""
    cur.execute("DELETE FROM ab_daily_results WHERE test_id = %(t)s AND day = %(d)s", {"t": test_id, "d": day})
    values = {**row, "test_id": test_id, "day": day, "arm_metrics": json.dumps(row.get("arm_metrics") or {})}
    cur.execute(insert_sql("ab_daily_results", list(values)), values)
    cur.execute(
        "UPDATE ab_tests SET split = %(s)s WHERE test_id = %(t)s AND status = 'running'",
        {"s": row["next_split"], "t": test_id},
    )


def end_test(
    conn, test_id: int, action: str, *, reason: str, ended_at: datetime, run_id: str | None, cur=None
) -> ABTest:
    """End a running test: PROMOTE (the challenger becomes champion through the registry's alias change, the
    ``challenger`` alias is removed), STOP or INCONCLUSIVE (the ``challenger`` alias is removed; the champion
    stays), or ``'cancelled'`` (by a person). One transaction; refused for a test that is not running."""
    if action not in (PROMOTE, STOP, INCONCLUSIVE, STATUS_CANCELLED):
        raise ABError(f"A/B test {test_id}: unknown ending {action!r}")
    if not reason or not reason.strip():
        raise ABError(f"A/B test {test_id}: ending it needs a reason")
    if cur is None:
        with transaction(conn) as own:
            return end_test(conn, test_id, action, reason=reason, ended_at=ended_at, run_id=run_id, cur=own)
    test = _locked(cur, test_id)
    if test.status != STATUS_RUNNING:
        raise ABError(f"A/B test {test_id} of {test.model_name} is not running (status {test.status}); nothing done")
    status = STATUS_AFTER.get(action, STATUS_CANCELLED)
    why = f"A/B test {test_id} {status}: {reason.strip()}"
    if action == PROMOTE:
        registry.set_alias(
            conn,
            test.model_name,
            registry.CHAMPION,
            test.challenger_version,
            reason=why,
            changed_at=ended_at,
            run_id=run_id,
            cur=cur,
        )
    if registry.resolve_alias(conn, test.model_name, CHALLENGER) == test.challenger_version:
        registry.set_alias(
            conn, test.model_name, CHALLENGER, None, reason=why, changed_at=ended_at, run_id=run_id, cur=cur
        )
    cur.execute(
        "UPDATE ab_tests SET status = %(s)s, reason = %(r)s, ended_at = %(at)s, run_id = %(run)s WHERE test_id = %(t)s",
        {"s": status, "r": reason.strip(), "at": ended_at, "run": run_id, "t": test_id},
    )
    return _locked(cur, test_id)


def _locked(cur, test_id: int) -> ABTest:
    """The test's row, locked for the caller's transaction."""
    cur.execute(f"SELECT {_COLUMNS} FROM ab_tests WHERE test_id = %(t)s FOR UPDATE", {"t": test_id})
    row = cur.fetchone()
    if row is None:
        raise ABError(f"A/B test {test_id} does not exist")
    return ABTest.from_row(dict(zip([d.name for d in cur.description], row, strict=True)))
