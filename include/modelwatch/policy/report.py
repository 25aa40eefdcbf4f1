"""A replayed policy's results, read from its sandbox schema; the comparison of the policies; table and plots.

Per policy: the live metrics month by month (of the predictions entered that month, with their matured outcomes,
whichever version made them) and over the evaluation period (default 2009-2018); retrains, deployments,
rejections and rollbacks; drift alerts per quarter split by calm and stressed months; the stress episodes caught;
compute time. Metrics come from ``monitoring/performance/metrics.live_metrics``, the function
``performance_daily`` computes live metrics with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from include.modelwatch.data.storage import fetch_dicts
from include.modelwatch.policy import periods

METRICS: tuple[str, ...] = ("accuracy", "hit_rate", "profit_factor", "brier")
PRIMARY = "accuracy"  # monitoring/performance/compare.PRIMARY_METRIC: the metric the loop acts on
RETRAINED = ("deployed", "rejected", "not_approved")
FLAGGED = ("warning", "critical")  # drift levels that flag a window


def _utc(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _num(v: Any, nd: int = 4) -> float | None:
    return None if v is None or pd.isna(v) else round(float(v), nd)


def live_frame(conn, model: str, end: date) -> tuple[pd.DataFrame, list[str]]:
    """Every prediction of ``model`` (any version) before ``end`` with its outcome matured before ``end``, and
    the model's classes."""
    from include.modelwatch import registry
    from include.modelwatch.monitoring.performance import store

    versions = fetch_dicts(
        conn, "SELECT version FROM model_versions WHERE model_name = %(m)s ORDER BY version", {"m": model}
    )
    classes = list(registry.get_version(conn, model, int(versions[0]["version"])).classes)
    lo, hi = datetime(1900, 1, 1, tzinfo=UTC), _utc(end)
    frames = [store.load_predictions(conn, model, int(v["version"]), lo, hi, hi, classes=classes) for v in versions]
    frames = [f for f in frames if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    conn.rollback()
    return df, classes


def metrics_of(df: pd.DataFrame, classes: Sequence[str]) -> dict[str, Any]:
    from include.modelwatch.monitoring.performance.metrics import live_metrics

    m = live_metrics(df, classes=classes) if len(df) else {"n": 0}
    return {"n": int(m.get("n") or 0), **{k: _num(m.get(k)) for k in METRICS}}


def monthly_metrics(df: pd.DataFrame, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not len(df):
        return {}
    month = pd.to_datetime(df["ts"], utc=True).dt.strftime("%Y-%m")
    return {str(m): metrics_of(part, classes) for m, part in df.groupby(month)}


def period_metrics(df: pd.DataFrame, classes: Sequence[str], start: date, end: date) -> dict[str, Any]:
    if not len(df):
        return metrics_of(df, classes)
    ts = pd.to_datetime(df["ts"], utc=True)
    return metrics_of(df[(ts >= pd.Timestamp(_utc(start))) & (ts < pd.Timestamp(_utc(end)))], classes)


def loop_counts(conn, model: str) -> dict[str, Any]:
    """Retrains (a candidate was trained and judged), deployments, rejections (gates or no approval), failures
    (no candidate: too little data or a failed job) and rollbacks, from the triggers and the alias history."""
    rows = fetch_dicts(
        conn,
        "SELECT trigger_type, outcome, to_char(coalesce(window_end, triggered_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') "
        "AS at FROM retraining_triggers WHERE model_name = %(m)s AND status IN ('done', 'failed') ORDER BY trigger_id",
        {"m": model},
    )
    rollbacks = fetch_dicts(
        conn,
        "SELECT count(*) AS n FROM model_alias_history WHERE model_name = %(m)s AND reason ILIKE 'rollback%%'",
        {"m": model},
    )[0]["n"]
    conn.rollback()

    def kind(outcome: str | None) -> str:
        o = (outcome or "").lower()
        if o.startswith("deployed"):
            return "deployed"
        if "not approved" in o:
            return "not_approved"
        if o.startswith("rejected"):
            return "rejected"
        return "failed"

    events = [{"date": r["at"], "trigger_type": r["trigger_type"], "outcome": kind(r["outcome"])} for r in rows]
    by_type: dict[str, int] = {}
    for e in events:
        by_type[e["trigger_type"]] = by_type.get(e["trigger_type"], 0) + 1
    return {
        "retrains": sum(e["outcome"] in RETRAINED for e in events),
        "deployments": sum(e["outcome"] == "deployed" for e in events),
        "rejections": sum(e["outcome"] in ("rejected", "not_approved") for e in events),
        "failed": sum(e["outcome"] == "failed" for e in events),
        "rollbacks": int(rollbacks),
        "triggers_by_type": by_type,
        "events": events,
    }


def gate_verdicts(conn, model: str) -> dict[str, dict[str, int]]:
    """Gate -> verdict -> count over the candidates the retrains acted on (each trigger's best candidate): which
    gates decided the loop's retrains."""
    rows = fetch_dicts(
        conn,
        "SELECT g.gate, g.status, count(*) AS n FROM quality_gate_results g JOIN retraining_triggers t "
        "ON t.trigger_id = g.trigger_id AND g.candidate_version = (t.result ->> 'candidate_version')::int "
        "WHERE t.model_name = %(m)s GROUP BY 1, 2 ORDER BY 1, 2",
        {"m": model},
    )
    conn.rollback()
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["gate"], {})[r["status"]] = int(r["n"])
    return out


def drift_alert_spans(conn, model: str) -> list[dict[str, Any]]:
    """The model's drift alert episodes (an alert stays open while the drift lasts): the month of the window it was
    raised on (``first_window``; ``opened_at`` is that window's end, the next month's first day), of the last
    window it covered, its severity and whether it was resolved."""
    rows = fetch_dicts(
        conn,
        "SELECT to_char(first_window AT TIME ZONE 'UTC', 'YYYY-MM') AS first, "
        "to_char(last_window AT TIME ZONE 'UTC', 'YYYY-MM') AS last, severity, status FROM alerts "
        "WHERE model_name = %(m)s AND kind = 'drift' ORDER BY first_window",
        {"m": model},
    )
    conn.rollback()
    return rows


def drift_levels(conn, model: str) -> dict[str, str | None]:
    """Month -> the drift level of its window (the highest over the versions evaluated on it)."""
    rows = fetch_dicts(
        conn,
        "SELECT to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM') AS month, max(CASE level WHEN 'critical' THEN 2 "
        "WHEN 'warning' THEN 1 WHEN 'none' THEN 0 END) AS lv FROM drift_windows WHERE model_name = %(m)s GROUP BY 1",
        {"m": model},
    )
    conn.rollback()
    return {r["month"]: (None if r["lv"] is None else ("none", "warning", "critical")[int(r["lv"])]) for r in rows}


def regime_inputs(conn, model: str, symbols: Sequence[str]) -> tuple[pd.Series, date, date]:
    """Monthly realized volatility of the model's symbols (from ``market_bars``) and its first champion's
    training period."""
    bars = pd.DataFrame(
        fetch_dicts(
            conn,
            "SELECT symbol, bar_date AS date, close FROM market_bars WHERE symbol = ANY(%(s)s) ORDER BY 1, 2",
            {"s": list(symbols)},
        )
    )
    first = fetch_dicts(
        conn,
        "SELECT train_start, train_end FROM model_versions WHERE model_name = %(m)s ORDER BY version LIMIT 1",
        {"m": model},
    )[0]
    conn.rollback()
    return periods.monthly_realized_vol(bars), first["train_start"], first["train_end"]


def policy_result(
    conn,
    *,
    model: str,
    policy: str,
    symbols: Sequence[str],
    months: Sequence[str],
    end: date,
    eval_start: date,
    eval_end: date,
    seconds: Mapping[str, float],
) -> dict[str, Any]:
    """One policy's result (JSON-ready) from its sandbox schema ``conn``."""
    df, classes = live_frame(conn, model, end)
    vol, train_start, train_end = regime_inputs(conn, model, symbols)
    reg = periods.regimes(vol, train_start, train_end)
    spans = drift_alert_spans(conn, model)
    levels = drift_levels(conn, model)
    alerts: dict[str, int] = {}
    for s in spans:
        alerts[s["first"]] = alerts.get(s["first"], 0) + 1
    return {
        "model": model,
        "policy": policy,
        "classes": classes,
        "evaluation": {
            "start": str(eval_start),
            "end": str(eval_end),
            **period_metrics(df, classes, eval_start, eval_end),
        },
        "overall": period_metrics(df, classes, date.fromisoformat(months[0] + "-01"), end),
        "monthly": monthly_metrics(df, classes),
        "loop": {**loop_counts(conn, model), "gate_verdicts": gate_verdicts(conn, model)},
        "drift_alerts": {
            "by_month": alerts,
            "episodes": spans,
            "per_quarter": periods.alerts_per_quarter(alerts, reg, months),
            "episodes_detected": periods.detections([(s["first"], s["last"]) for s in spans], months),
            # stricter: the drift evaluation flagged (warning or critical) the onset window or the next itself
            "episodes_flagged": periods.detections([(m, m) for m, lv in levels.items() if lv in FLAGGED], months),
            "levels": levels,
        },
        "regimes": {
            "training_period": [str(train_start), str(train_end)],
            "calm_max_vol": _num(reg.calm_max),
            "stress_min_vol": _num(reg.stress_min),
            "by_month": {m: reg.of(m) for m in months},
            "realized_vol": {m: _num(vol.get(m)) for m in months},
        },
        "compute_seconds": {k: round(float(v), 1) for k, v in seconds.items()},
    }


# ---------------------------------------------------------------------------------------------- comparison


def targets(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The issue's targets, measured: the closed loop against monthly retraining and never-retrain on the primary
    metric over the evaluation period with at most a third of monthly's retrains; calm-quarter alerts; episodes."""
    out: dict[str, Any] = {}
    loop, monthly, never = (results.get(k) for k in ("closed_loop", "monthly", "never"))
    if loop and monthly and never:
        lp, mp, np_ = (r["evaluation"][PRIMARY] for r in (loop, monthly, never))
        lr, mr = loop["loop"]["retrains"], monthly["loop"]["retrains"]
        out["loop_vs_monthly"] = {
            "closed_loop": lp,
            "monthly": mp,
            "never": np_,
            "retrains_closed_loop": lr,
            "retrains_monthly": mr,
            "matches_or_beats_monthly": lp is not None and mp is not None and lp >= mp,
            "beats_never": lp is not None and np_ is not None and lp > np_,
            "at_most_a_third_of_retrains": lr * 3 <= mr,
        }
    if loop:
        calm = loop["drift_alerts"]["per_quarter"][periods.CALM]
        det = loop["drift_alerts"]["episodes_detected"]
        flagged = loop["drift_alerts"].get("episodes_flagged", {})
        out["alerts"] = {
            "calm_quarters": calm["quarters"],
            "calm_quarters_over_one_alert": calm["quarters_over_one"],
            "calm_max_per_quarter": calm["per_quarter_max"],
            "at_most_one_per_calm_quarter": not calm["quarters_over_one"],
            "episodes_detected": det,
            "all_episodes_detected": all(v is not None for v in det.values()),
            "episodes_flagged": flagged,
            "all_episodes_flagged": all(v is not None for v in flagged.values()),
        }
    return out


def _fmt(v: Any, nd: int = 3) -> str:
    return "–" if v is None else f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def markdown(model: str, results: Mapping[str, Mapping[str, Any]]) -> str:
    """The comparison table of one model's policies (Markdown)."""
    any_r = next(iter(results.values()))
    ev = any_r["evaluation"]
    lines = [
        f"**{model}**: live metrics {ev['start']}..{ev['end']} (predictions entered in the period, matured outcomes)",
        "",
        "| policy | accuracy | hit rate | profit factor | Brier | retrains | deployed | rejected | failed | "
        "drift alerts (calm / normal / stressed quarters: mean per quarter) | stress episodes: alert active / "
        "window flagged | compute s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    from include.modelwatch.policy.policies import POLICIES

    known = list(POLICIES)
    for name, r in sorted(results.items(), key=lambda kv: known.index(kv[0]) if kv[0] in known else len(known)):
        e, lc, pq = r["evaluation"], r["loop"], r["drift_alerts"]["per_quarter"]
        det = r["drift_alerts"]["episodes_detected"]
        flagged = r["drift_alerts"].get("episodes_flagged", {})
        alerts = " / ".join(
            _fmt(pq[k]["per_quarter_mean"], 2) for k in (periods.CALM, periods.NORMAL, periods.STRESSED)
        )
        lines.append(
            f"| {name} | {_fmt(e['accuracy'])} | {_fmt(e['hit_rate'])} | {_fmt(e['profit_factor'])} | "
            f"{_fmt(e['brier'])} | {lc['retrains']} | {lc['deployments']} | {lc['rejections']} | {lc['failed']} | "
            f"{alerts} | {sum(v is not None for v in det.values())}/{len(det)} / "
            f"{sum(v is not None for v in flagged.values())}/{len(flagged)} | "
            f"{_fmt(r['compute_seconds'].get('total'), 0)} |"
        )
    return "\n".join(lines) + "\n"


def write(folder: Path, model: str, results: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]) -> list[Path]:
    """``<model>.json`` (every result, the targets, ``meta``), ``<model>.md`` and the two plots in ``folder``. The
    policies of an earlier result of the same replay (same ``meta``) that this one did not run are kept: replaying
    one policy again updates its row of the comparison."""
    from include.modelwatch.policy.policies import POLICIES

    folder.mkdir(parents=True, exist_ok=True)
    js = folder / f"{model}.json"
    if js.exists():
        old = json.loads(js.read_text())
        if all(old.get(k) == v for k, v in meta.items()):
            results = {**old.get("policies", {}), **results}
    known = list(POLICIES)
    results = dict(sorted(results.items(), key=lambda kv: known.index(kv[0]) if kv[0] in known else len(known)))
    doc = {"model": model, **meta, "targets": targets(results), "policies": results}
    js.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    md = folder / f"{model}.md"
    md.write_text(markdown(model, results))
    return [js, md, *plots(folder, model, results)]


def plots(folder: Path, model: str, results: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """``<model>_metric.png``: the primary metric over the trailing 12 months per policy, a tick per deployment;
    ``<model>_alerts.png``: monthly realized volatility with the calm / stress thresholds and the drift alerts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import date2num

    def month_x(months: Sequence[str]) -> Any:  # x positions of months (first day) for matplotlib
        return date2num([datetime.strptime(m[:7], "%Y-%m") for m in months])

    def finish(fig: Any, ax: Any, title: str, ylabel: str, path: Path, ncol: int = 1) -> Path:
        ax.xaxis_date()
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper right", fontsize=8, ncol=ncol)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    out = []
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for i, (name, r) in enumerate(results.items()):
        monthly = pd.DataFrame.from_dict(r["monthly"], orient="index")
        if monthly.empty:
            continue
        monthly = monthly.sort_index()
        n = monthly["n"].astype(float)
        hits = monthly[PRIMARY].astype(float).fillna(0.0) * n
        trailing = hits.rolling(12, min_periods=12).sum() / n.rolling(12, min_periods=12).sum()
        line = ax.plot(month_x(list(trailing.index)), trailing.to_numpy(), label=name, linewidth=1.4)[0]
        deployed = month_x([e["date"] for e in r["loop"]["events"] if e["outcome"] == "deployed"])
        if len(deployed):  # a row of ticks per policy along the bottom of the axes
            ax.plot(
                deployed,
                [0.03 + 0.035 * i] * len(deployed),
                "|",
                color=line.get_color(),
                markersize=9,
                markeredgewidth=1.5,
                transform=ax.get_xaxis_transform(),
            )
    title = f"{model}: live {PRIMARY} over the trailing 12 months by policy (ticks at the bottom: deployments)"
    out.append(finish(fig, ax, title, f"{PRIMARY} (matured predictions)", folder / f"{model}_metric.png", ncol=3))

    loop = results.get("closed_loop") or next(iter(results.values()))
    reg = loop["regimes"]
    vol = pd.Series(reg["realized_vol"], dtype=float)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(
        month_x(list(vol.index)),
        vol.to_numpy(),
        color="#4c78a8",
        linewidth=1.2,
        label="monthly realized volatility (annualized)",
    )
    ax.axhline(reg["calm_max_vol"], color="#54a24b", linestyle="--", linewidth=1, label="calm ≤ training p75")
    ax.axhline(reg["stress_min_vol"], color="#e45756", linestyle="--", linewidth=1, label="stressed > training p95")
    drift = loop["drift_alerts"]
    for i, ep in enumerate(drift.get("episodes", [])):  # an alert episode: from its first to its last window
        lo, hi = month_x([ep["first"], periods.next_months(ep["last"], 2)[1]])
        ax.axvspan(lo, hi, color="#f58518", alpha=0.15, label="drift alert open" if i == 0 else None)
    am = [m for m in vol.index if drift["by_month"].get(m)]
    if am:
        ax.scatter(month_x(am), [vol[m] for m in am], color="#f58518", zorder=3, s=28, label="drift alert raised")
    flagged = [m for m in vol.index if (drift.get("levels") or {}).get(m) in FLAGGED]
    if flagged:
        ax.scatter(
            month_x(flagged),
            [vol[m] for m in flagged],
            color="#e45756",
            marker="x",
            zorder=4,
            s=30,
            label="window's drift level warning / critical",
        )
    for ep in loop["drift_alerts"]["episodes_detected"]:
        ax.axvline(month_x([ep])[0], color="#999999", linewidth=0.8, alpha=0.6)
    title = f"{model} ({loop['policy']}): drift alerts against realized volatility (grey lines: stress episodes)"
    out.append(finish(fig, ax, title, "realized volatility", folder / f"{model}_alerts.png"))
    return out
