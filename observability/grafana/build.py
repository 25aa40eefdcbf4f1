"""Builds the ModelWatch Grafana dashboard (issue 14) with grafana-foundation-sdk: ``modelwatch_dashboard.json``.

    python observability/grafana/build.py            # (re)write modelwatch_dashboard.json next to this file
    python observability/grafana/build.py --check    # exit 1 when the committed JSON is not this builder's output

The predecessor's 8 panels, each query against a provisioned datasource referenced by uid
(``provisioning/datasources/modelwatch.yml``): ``prometheus`` (the ModelWatch exporter and node-exporter, jobs
``modelwatch`` and ``node`` of ``observability/prometheus/prometheus.yml``) and ``modelwatch-postgres`` (the
monitoring database, read-only queries). Template variables ``model`` and ``symbol`` come from the exporter's
labels; ``symbol`` ``*`` is the version over all symbols (the exporter's and ``live_performance_daily``'s own
convention), so PromQL matches it with ``=`` and SQL treats ``'*'`` as "no symbol filter".

The queue panel shows the retraining triggers and unresolved alerts beside the active-learning queue: its pending
items and the items retrains used in the last 24 h (the series the alert rules of ``rules.yml`` watch).

``tests/e2e/test_grafana_dashboard.py`` evaluates every query: PromQL through a real Prometheus that scraped the
exporter after DAG runs, SQL against the monitoring database.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "modelwatch_dashboard.json"

UID = "modelwatch-overview"
TITLE = "ModelWatch"
PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
POSTGRES = dm.DataSourceRef(type_val="grafana-postgresql-datasource", uid="modelwatch-postgres")

#: the champion, whatever else the version holds ("champion" or "challenger,champion")
CHAMPION = 'alias=~".*champion.*"'
#: per-version live metrics of the selected model and symbol
LIVE = f'model="$model", {CHAMPION}, symbol="$symbol"'
#: symbol filter of the SQL panels ('*' = all symbols)
SQL_SYMBOL = "('$symbol' = '*' OR p.symbol = '$symbol')"
#: filesystems that are not disks (as rules.yml HostDiskSpaceLow)
NOT_DISK = 'fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs"'


class SqlQuery(cogvariants.Dataquery):
    """A target of Grafana's PostgreSQL datasource (the SDK has no builder for it): raw SQL, code editor mode."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: str) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = fmt

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": POSTGRES.to_json(),
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, ref_id: str, raw_sql: str, fmt: typing.Literal["table", "time_series"]) -> None:
        self._q = SqlQuery(ref_id, _dedent(raw_sql), fmt)

    def build(self) -> SqlQuery:
        return self._q


def _dedent(sql: str) -> str:
    lines = [line.rstrip() for line in sql.strip("\n").splitlines()]
    indent = min(len(line) - len(line.lstrip()) for line in lines if line)
    return "\n".join(line[indent:] for line in lines)


def prom(ref_id: str, expr: str, legend: str, *, instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().ref_id(ref_id).expr(expr).legend_format(legend).datasource(PROMETHEUS)
    return q.instant() if instant else q.range()


def pos(x: int, y: int, w: int, h: int) -> dm.GridPos:
    return dm.GridPos(h=h, w=w, x=x, y=y)


# ------------------------------------------------------------------------------------------------ panels


def trading_overview() -> stat.Panel:
    metrics = (
        ("A", "modelwatch_win_rate", "win rate"),
        ("B", "modelwatch_precision", "macro precision"),
        ("C", "modelwatch_model_accuracy", "accuracy"),
        ("D", "modelwatch_hit_rate", "hit rate"),
        ("E", "modelwatch_profit_factor", "profit factor"),
        ("F", "modelwatch_avg_rr", "avg R/R"),
        ("G", "modelwatch_live_matured_predictions", "matured predictions"),
    )
    p = (
        stat.Panel()
        .id(1)
        .title("Trading performance overview")
        .description(
            "Newest live metrics of the champion of $model (symbol $symbol, trailing 63 entry days; "
            "live_performance_daily via the exporter). Alert thresholds: observability/prometheus/rules.yml."
        )
        .datasource(PROMETHEUS)
        .grid_pos(pos(0, 0, 24, 5))
        .decimals(3)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    for ref, name, legend in metrics:
        p = p.with_target(prom(ref, f"{name}{{{LIVE}}}", legend, instant=True))
    return p


def model_drift() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(2)
        .title("Model drift")
        .description(
            "Drift score (0..1, importance-weighted) of the newest evaluated drift window per active version, "
            "concept drift (highest concept-test severity / 100) and the 5 features with the highest PSI."
        )
        .datasource(PROMETHEUS)
        .grid_pos(pos(0, 5, 12, 8))
        .min(0)
        .with_target(prom("A", 'modelwatch_model_drift_score{model="$model"}', "drift score v{{version}} ({{alias}})"))
        .with_target(
            prom("B", 'modelwatch_concept_drift_score{model="$model"}', "concept drift v{{version}} ({{alias}})")
        )
        .with_target(prom("C", f'topk(5, modelwatch_psi_drift_score{{model="$model", {CHAMPION}}})', "PSI {{feature}}"))
    )


def scoring_latency() -> timeseries.Panel:
    # the exporter rebuilds the histogram from the stored scoring batches on every scrape, so its increase over a
    # window is the batches written in it; score_signals runs once a weekday: the trailing day holds the last run
    bucket = 'increase(modelwatch_scoring_duration_seconds_bucket{model="$model"}[1d])'
    return (
        timeseries.Panel()
        .id(3)
        .title("Scoring latency p95/p99")
        .description(
            "95th and 99th percentile duration of the scoring batches (one symbol's data interval: champion load, "
            "features, predict, write) written in the trailing 24 hours (score_signals runs once per weekday)."
        )
        .datasource(PROMETHEUS)
        .grid_pos(pos(12, 5, 12, 8))
        .unit("s")
        .min(0)
        .with_target(prom("A", f"histogram_quantile(0.95, sum by (le, version) ({bucket}))", "p95 v{{version}}"))
        .with_target(prom("B", f"histogram_quantile(0.99, sum by (le, version) ({bucket}))", "p99 v{{version}}"))
    )


def queue() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(4)
        .title("Retraining & active-learning queue")
        .description(
            "What waits for the closed loop: retraining triggers pending (for retrain_gated) or claimed (being "
            "retrained) and unresolved alerts per severity. The active-learning queue (issue 17) exports nothing "
            "yet: its two series (C, D, as in rules.yml) stay empty until it does."
        )
        .datasource(PROMETHEUS)
        .grid_pos(pos(0, 13, 12, 8))
        .min(0)
        .decimals(0)
        .with_target(
            prom("A", 'sum by (status) (modelwatch_retraining_triggers{model="$model"})', "triggers {{status}}")
        )
        .with_target(
            prom("B", 'sum by (severity) (modelwatch_open_alerts{model="$model"})', "unresolved alerts {{severity}}")
        )
        .with_target(
            prom(
                "C",
                'sum(modelwatch_active_learning_items{model="$model", status="pending"})',
                "active learning: pending",
            )
        )
        .with_target(
            prom(
                "D",
                'sum(increase(modelwatch_active_learning_processed_total{model="$model"}[1d]))',
                "active learning: processed (24h)",
            )
        )
    )


PERFORMANCE_BY_MODEL = """
    SELECT DISTINCT ON (l.model_name, l.model_version)
           l.model_name AS model, l.model_version AS version, a.aliases AS alias, l.window_end AS as_of,
           l.n AS matured, l.accuracy, l.macro_f1, l.hit_rate, l.win_rate, l.profit_factor, l.sharpe,
           l.max_drawdown, h.status AS health
    FROM live_performance_daily l
    JOIN (SELECT model_name, version, string_agg(alias, ',' ORDER BY alias) AS aliases
          FROM model_aliases GROUP BY model_name, version) a
      ON a.model_name = l.model_name AND a.version = l.model_version
    LEFT JOIN LATERAL (SELECT status FROM model_health_daily h
                       WHERE h.model_name = l.model_name AND h.model_version = l.model_version
                       ORDER BY h.window_end DESC LIMIT 1) h ON true
    WHERE l.symbol = '*' AND l.timeframe = '*'
    ORDER BY l.model_name, l.model_version, l.window_end DESC
"""


def performance_by_model() -> table.Panel:
    return (
        table.Panel()
        .id(5)
        .title("Performance by model")
        .description(
            "Every active model version (one that holds an alias): its newest live metrics over all symbols "
            "(live_performance_daily) and newest health (model_health_daily)."
        )
        .datasource(POSTGRES)
        .grid_pos(pos(12, 13, 12, 8))
        .decimals(3)
        .with_target(Sql("A", PERFORMANCE_BY_MODEL, "table"))
    )


def system_health() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(6)
        .title("System health")
        .description(
            "Host CPU, memory and disk use (node-exporter, as the HostCpuHigh/HostMemoryHigh/HostDiskSpaceLow "
            "rules) and, on the right axis, whether the scrape targets and the monitoring database are up."
        )
        .datasource(PROMETHEUS)
        .grid_pos(pos(0, 21, 12, 8))
        .unit("percent")
        .min(0)
        .with_target(
            prom(
                "A",
                '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[$__rate_interval])))',
                "CPU busy {{instance}}",
            )
        )
        .with_target(
            prom(
                "B",
                "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
                "memory used {{instance}}",
            )
        )
        .with_target(
            prom(
                "C",
                f"100 * (1 - node_filesystem_avail_bytes{{{NOT_DISK}}} / node_filesystem_size_bytes{{{NOT_DISK}}})",
                "disk used {{mountpoint}}",
            )
        )
        .with_target(prom("D", 'up{job=~"modelwatch|node"}', "target up {{job}}"))
        .with_target(prom("E", "modelwatch_database_up", "monitoring DB up"))
        .override_by_query(
            "D",
            [
                dm.DynamicConfigValue(id_val="unit", value="bool_yes_no"),
                dm.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                dm.DynamicConfigValue(id_val="max", value=1),
            ],
        )
        .override_by_query(
            "E",
            [
                dm.DynamicConfigValue(id_val="unit", value="bool_yes_no"),
                dm.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                dm.DynamicConfigValue(id_val="max", value=1),
            ],
        )
    )


SIGNALS_OVER_TIME = f"""
    SELECT $__timeGroupAlias(p.ts, '1d'), p.predicted_label AS metric, count(*) AS value
    FROM predictions p
    WHERE $__timeFilter(p.ts) AND p.model_name = '$model' AND {SQL_SYMBOL}
    GROUP BY 1, 2
    ORDER BY 1, 2
"""


def signals_over_time() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(7)
        .title("Signals over time")
        .description(
            "BUY / HOLD / SELL signals of $model per bar day (predictions; symbol $symbol). Data time is the bar "
            "time: for a replay of 2008, set the time range to 2008."
        )
        .datasource(POSTGRES)
        .grid_pos(pos(12, 21, 12, 8))
        .decimals(0)
        .draw_style(cm.GraphDrawStyle.BARS)
        .stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
        .fill_opacity(80)
        .with_target(Sql("A", SIGNALS_OVER_TIME, "time_series"))
    )


# the equity curve of metrics.py: per entry day the mean signed log return of the day's trades (0 for a HOLD-only
# day), each daily cohort holding 1/horizon of the capital; drawdown from the running peak (at least 0)
PORTFOLIO = f"""
    WITH daily AS (
        SELECT date_trunc('day', p.ts) AS day,
               coalesce(avg(CASE p.predicted_label WHEN 'BUY' THEN o.realized_return
                                                   WHEN 'SELL' THEN -o.realized_return END), 0) AS ret,
               max(o.horizon_days) AS horizon
        FROM predictions p JOIN outcomes o USING (prediction_id)
        WHERE $__timeFilter(p.ts) AND p.model_name = '$model' AND {SQL_SYMBOL}
        GROUP BY 1
    ), curve AS (
        SELECT day, sum(ret / horizon) OVER (ORDER BY day) AS cum FROM daily
    )
    SELECT day AS "time", cum AS "cumulative return",
           greatest(max(cum) OVER (ORDER BY day), 0) - cum AS "drawdown"
    FROM curve
    ORDER BY 1
"""


def portfolio() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(8)
        .title("Portfolio performance")
        .description(
            "Equity curve of $model's signals (symbol $symbol) by entry day, as live metrics compute it: the mean "
            "signed log return of the day's trades, each daily cohort holding 1/horizon of the capital, and the "
            "drawdown from the running peak. Only matured predictions (with an outcome) count."
        )
        .datasource(POSTGRES)
        .grid_pos(pos(0, 29, 24, 8))
        .unit("percentunit")
        .with_target(Sql("A", PORTFOLIO, "time_series"))
    )


# --------------------------------------------------------------------------------------------- dashboard


def variables() -> list[dashboard.QueryVariable]:
    model = (
        dashboard.QueryVariable("model")
        .label("model")
        .datasource(PROMETHEUS)
        .query("label_values(modelwatch_model_alias_info, model)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .current(dm.VariableOption(text="spx_signal", value="spx_signal", selected=True))
    )
    symbol = (
        dashboard.QueryVariable("symbol")
        .label("symbol")
        .description("* = the model version over all symbols")
        .datasource(PROMETHEUS)
        .query('label_values(modelwatch_live_matured_predictions{model="$model"}, symbol)')
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .current(dm.VariableOption(text="*", value="*", selected=True))
    )
    return [model, symbol]


def build() -> dict[str, typing.Any]:
    """The dashboard as the JSON object Grafana imports (the dashboard model, not an API envelope)."""
    d = (
        dashboard.Dashboard(TITLE)
        .uid(UID)
        .description("ModelWatch: trading signals' live performance, drift, scoring, queue, host (issue 14)")
        .tags(["modelwatch", "mlops"])
        .editable()
        .refresh("30s")
        .time("now-7d", "now")
        .timezone("utc")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )
    for v in variables():
        d = d.with_variable(v)
    for panel in (
        trading_overview(),
        model_drift(),
        scoring_latency(),
        queue(),
        performance_by_model(),
        system_health(),
        signals_over_time(),
        portfolio(),
    ):
        d = d.with_panel(panel)
    out: dict[str, typing.Any] = json.loads(JSONEncoder(sort_keys=True).encode(d.build()))
    return out


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed JSON instead of writing it")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python {Path(__file__).relative_to(Path.cwd())}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
