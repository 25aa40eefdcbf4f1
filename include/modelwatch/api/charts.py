"""Vega-Lite specs of the ModelWatch pages, built in Python from the API's view models (plain dicts, data inlined).

Every function returns a complete Vega-Lite v6 spec (``$schema`` included) that the pages render with the vendored
vega-embed. Times are ISO 8601 UTC strings on ``temporal`` axes with a ``utc`` scale; every axis is titled with its
unit; legends come from a ``series`` field with a fixed domain/range so the layers share one legend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from include.modelwatch.api import models as m
from include.modelwatch.api import urls

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
TIME_AXIS = {"title": "Window end (UTC)", "format": "%Y-%m-%d %H:%M"}
LEVEL_COLORS = {"none": "#4c78a8", "warning": "#f58518", "critical": "#e45756"}
#: marker kinds on the model timeline, with their colours
MARKER_COLORS = {
    "trigger": "#9d755d",
    "retrain": "#54a24b",
    "rejection": "#e45756",
    "deployment": "#4c78a8",
    "rollback": "#b279a2",
}
DRIFT_SERIES = {"drift score": "#4c78a8", "drift alert episode": "#f58518"}
PERF_SERIES = {
    "live (bootstrap CI)": "#4c78a8",
    "backtest baseline": "#222222",
    "alert threshold": "#e45756",
    "label-free estimate": "#54a24b",
}


def iso(value: datetime) -> str:
    """``value`` as an ISO 8601 UTC string (``...+00:00``), what the specs carry on time axes."""
    return value.astimezone(UTC).isoformat()


def utc_x(field: str = "t", *, title: str = TIME_AXIS["title"], domain: Sequence[str] | None = None) -> dict[str, Any]:
    scale: dict[str, Any] = {"type": "utc"}
    if domain is not None:
        scale["domain"] = list(domain)
    return {"field": field, "type": "temporal", "scale": scale, "axis": {**TIME_AXIS, "title": title}}


def series_color(series: dict[str, str], title: str) -> dict[str, Any]:
    return {
        "field": "series",
        "type": "nominal",
        "title": title,
        "scale": {"domain": list(series), "range": list(series.values())},
    }


def base(title: str, **extra: Any) -> dict[str, Any]:
    return {"$schema": SCHEMA, "title": title, "config": {"view": {"stroke": None}}, **extra}


# --------------------------------------------------------------------------- fleet overview


def drift_sparkline(windows: Iterable[m.DriftWindow]) -> dict[str, Any]:
    """A small line of the drift score (0..1) over the windows of one model version, oldest first."""
    values = [
        {"t": iso(w.window_end), "drift_score": w.drift_score, "level": w.level or "none"}
        for w in sorted(windows, key=lambda w: w.window_end)
        if w.drift_score is not None
    ]
    return {
        "$schema": SCHEMA,
        "width": 160,
        "height": 32,
        "data": {"values": values},
        "config": {"view": {"stroke": None}},
        "mark": {"type": "line", "point": {"size": 12}, "interpolate": "monotone"},
        "encoding": {
            "x": {**utc_x(), "axis": None},
            "y": {"field": "drift_score", "type": "quantitative", "title": "Drift score (0-1)", "axis": None},
            "tooltip": [
                {"field": "t", "type": "temporal", "title": "Window end (UTC)", "format": "%Y-%m-%d %H:%M"},
                {"field": "drift_score", "type": "quantitative", "title": "Drift score (0-1)", "format": ".3f"},
                {"field": "level", "type": "nominal", "title": "Level"},
            ],
        },
    }


# --------------------------------------------------------------------------- model page


def time_domain(*groups: Iterable[datetime]) -> list[str] | None:
    """``[min, max]`` over every given time (ISO UTC), the shared x domain of the model timeline."""
    times = [t for g in groups for t in g]
    return [iso(min(times)), iso(max(times))] if times else None


def marker_layer(markers: Sequence[dict[str, Any]], domain: list[str] | None) -> dict[str, Any]:
    """Vertical rules for events (``{"at": datetime, "kind": one of MARKER_COLORS, "label": str}``)."""
    values = [{"t": iso(mk["at"]), "kind": mk["kind"], "label": mk["label"]} for mk in markers]
    return {
        "data": {"values": values},
        "mark": {"type": "rule", "strokeWidth": 2, "strokeDash": [2, 2]},
        "encoding": {
            "x": utc_x(domain=domain),
            "color": {
                "field": "kind",
                "type": "nominal",
                "title": "Event",
                "scale": {"domain": list(MARKER_COLORS), "range": list(MARKER_COLORS.values())},
            },
            "tooltip": [
                {"field": "t", "type": "temporal", "title": "At (UTC)", "format": "%Y-%m-%d %H:%M"},
                {"field": "kind", "type": "nominal", "title": "Event"},
                {"field": "label", "type": "nominal", "title": "What"},
            ],
        },
    }


def one_legend_per_title(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Layers that share a colour legend title show it once (the first layer's); the others hide theirs."""
    seen: set[str] = set()
    for layer in layers:
        color = layer.get("encoding", {}).get("color")
        if not isinstance(color, dict) or "title" not in color:
            continue
        if color["title"] in seen:
            layer["encoding"]["color"] = {**color, "legend": None}  # a copy: layers may share one encoding dict
        seen.add(color["title"])
    return layers


def without_legend(panel: dict[str, Any], title: str) -> dict[str, Any]:
    """``panel`` with the colour legend titled ``title`` hidden (the panel above already shows it)."""
    for layer in panel["layer"]:
        color = layer.get("encoding", {}).get("color")
        if isinstance(color, dict) and color.get("title") == title:
            layer["encoding"]["color"] = {**color, "legend": None}
    return panel


def drift_panel(
    windows: Sequence[m.DriftWindow],
    alerts: Sequence[m.Alert],
    markers: Sequence[dict[str, Any]],
    domain: list[str] | None,
    link: Callable[[m.DriftWindow], str] | None = None,
) -> dict[str, Any]:
    """Drift score per window (points coloured by level; a click on a point opens ``link(window)``, by default
    that window's page) with the drift alert episodes shaded (``first_window``..``last_window``) and the event
    markers."""
    link = link or (lambda w: urls.drift_window_path(w.model, w.version, w.window_start))
    line = [
        {
            "t": iso(w.window_end),
            "drift_score": w.drift_score,
            "level": w.level or "none",
            "version": w.version,
            "series": "drift score",
            "href": link(w),
        }
        for w in sorted(windows, key=lambda w: w.window_end)
        if w.drift_score is not None
    ]
    episodes = [
        {
            "t": iso(a.first_window),
            "t2": iso(a.last_window),
            "alert_id": a.alert_id,
            "severity": a.severity,
            "status": a.status,
            "series": "drift alert episode",
        }
        for a in alerts
        if a.kind == "drift"
    ]
    y = {"field": "drift_score", "type": "quantitative", "title": "Drift score (0-1)", "scale": {"domain": [0, 1]}}
    return {
        "width": 720,
        "height": 180,
        "layer": one_legend_per_title(
            [
                {
                    "data": {"values": episodes},
                    "mark": {"type": "rect", "opacity": 0.25},
                    "encoding": {
                        "x": utc_x(domain=domain),
                        "x2": {"field": "t2"},
                        "color": series_color(DRIFT_SERIES, "Drift"),
                        "tooltip": [
                            {"field": "alert_id", "type": "quantitative", "title": "Alert"},
                            {"field": "severity", "type": "nominal", "title": "Severity"},
                            {"field": "status", "type": "nominal", "title": "Status"},
                        ],
                    },
                },
                {
                    "data": {"values": line},
                    "mark": {"type": "line", "point": True},
                    "encoding": {
                        "x": utc_x(domain=domain),
                        "y": y,
                        "color": series_color(DRIFT_SERIES, "Drift"),
                        "detail": {"field": "version", "type": "nominal"},
                        "href": {"field": "href", "type": "nominal"},  # a click opens the window's page
                        "tooltip": [
                            {"field": "t", "type": "temporal", "title": "Window end (UTC)", "format": "%Y-%m-%d %H:%M"},
                            {"field": "version", "type": "quantitative", "title": "Version"},
                            {
                                "field": "drift_score",
                                "type": "quantitative",
                                "title": "Drift score (0-1)",
                                "format": ".3f",
                            },
                            {"field": "level", "type": "nominal", "title": "Level"},
                        ],
                    },
                },
                marker_layer(markers, domain),
            ]
        ),
        "resolve": {"scale": {"color": "independent"}, "legend": {"color": "independent"}},
    }


def performance_panel(
    comparisons: Sequence[m.PerformanceComparison],
    estimates: Sequence[m.Estimate],
    markers: Sequence[dict[str, Any]],
    domain: list[str] | None,
) -> dict[str, Any]:
    """Live primary metric with its bootstrap band (``ci_low``..``ci_high``), the backtest baseline and the alert
    threshold as rules over each comparison window, the label-free estimates as points, and the event markers."""
    primary = sorted((c for c in comparisons if c.is_primary), key=lambda c: c.window_end)
    metric = primary[-1].metric if primary else "accuracy"
    live = [
        {
            "t": iso(c.window_end),
            "live": c.live_value,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "status": c.status,
            "series": "live (bootstrap CI)",
        }
        for c in primary
        if c.live_value is not None
    ]
    rules = [
        {"t": iso(c.window_start), "t2": iso(c.window_end), "value": value, "series": series}
        for c in primary
        for series, value in (("backtest baseline", c.baseline_value), ("alert threshold", c.threshold))
        if value is not None
    ]
    points = [
        {"t": iso(e.window_end), "estimate": e.estimate, "status": e.status, "series": "label-free estimate"}
        for e in sorted(estimates, key=lambda e: e.window_end)
        if e.metric == metric and e.estimate is not None
    ]
    title = f"{metric} (fraction, 0-1)"
    color = series_color(PERF_SERIES, "Performance")
    return {
        "width": 720,
        "height": 180,
        "layer": one_legend_per_title(
            [
                {
                    "data": {"values": live},
                    "mark": {"type": "area", "opacity": 0.2},
                    "encoding": {
                        "x": utc_x(domain=domain),
                        "y": {"field": "ci_low", "type": "quantitative", "title": title},
                        "y2": {"field": "ci_high"},
                        "color": color,
                    },
                },
                {
                    "data": {"values": live},
                    "mark": {"type": "line", "point": True},
                    "encoding": {
                        "x": utc_x(domain=domain),
                        "y": {"field": "live", "type": "quantitative", "title": title},
                        "color": color,
                        "tooltip": [
                            {"field": "t", "type": "temporal", "title": "Window end (UTC)", "format": "%Y-%m-%d"},
                            {"field": "live", "type": "quantitative", "title": f"live {metric}", "format": ".3f"},
                            {"field": "ci_low", "type": "quantitative", "title": "CI low", "format": ".3f"},
                            {"field": "ci_high", "type": "quantitative", "title": "CI high", "format": ".3f"},
                            {"field": "status", "type": "nominal", "title": "Status"},
                        ],
                    },
                },
                {
                    "data": {"values": rules},
                    "mark": {"type": "rule", "strokeDash": [6, 3], "strokeWidth": 2},
                    "encoding": {
                        "x": utc_x(domain=domain),
                        "x2": {"field": "t2"},
                        "y": {"field": "value", "type": "quantitative", "title": title},
                        "color": color,
                        "tooltip": [
                            {"field": "series", "type": "nominal", "title": "Rule"},
                            {"field": "value", "type": "quantitative", "title": metric, "format": ".3f"},
                        ],
                    },
                },
                {
                    "data": {"values": points},
                    "mark": {"type": "point", "shape": "diamond", "filled": True, "size": 60},
                    "encoding": {
                        "x": utc_x(domain=domain),
                        "y": {"field": "estimate", "type": "quantitative", "title": title},
                        "color": color,
                        "tooltip": [
                            {"field": "t", "type": "temporal", "title": "Window end (UTC)", "format": "%Y-%m-%d"},
                            {"field": "estimate", "type": "quantitative", "title": "Estimate", "format": ".3f"},
                            {"field": "status", "type": "nominal", "title": "Status"},
                        ],
                    },
                },
                marker_layer(markers, domain),
            ]
        ),
        "resolve": {"scale": {"color": "independent"}, "legend": {"color": "independent"}},
    }


def model_timeline(
    model: str,
    windows: Sequence[m.DriftWindow],
    alerts: Sequence[m.Alert],
    comparisons: Sequence[m.PerformanceComparison],
    estimates: Sequence[m.Estimate],
    markers: Sequence[dict[str, Any]],
    link: Callable[[m.DriftWindow], str] | None = None,
) -> dict[str, Any]:
    """The model page's chart: drift panel above performance panel on one shared UTC time axis."""
    domain = time_domain(
        (w.window_end for w in windows if w.drift_score is not None),  # an empty window does not stretch the axis
        (t for a in alerts if a.kind == "drift" for t in (a.first_window, a.last_window)),
        # a window without a live value (no matured outcome yet) or estimate draws nothing: it does not stretch it
        (t for c in comparisons if c.is_primary and c.live_value is not None for t in (c.window_start, c.window_end)),
        (e.window_end for e in estimates if e.estimate is not None),
        (mk["at"] for mk in markers),
    )
    return base(
        f"{model}: drift and live performance",
        vconcat=[
            drift_panel(windows, alerts, markers, domain, link),
            without_legend(performance_panel(comparisons, estimates, markers, domain), "Event"),
        ],
        resolve={"scale": {"x": "shared"}},
    )


# --------------------------------------------------------------------------- drift window page


def severity_heatmap(
    model: str, version: int, cells: Sequence[dict[str, Any]], selected: datetime | None = None
) -> dict[str, Any]:
    """Feature x window heatmap of drift severity (0-100); ``cells`` are ``{"window_start", "window_end",
    "feature", "severity", "drifted"}``; the ``selected`` window is outlined by a rule at its start."""
    values = [
        {
            "t": iso(c["window_start"]),
            "t2": iso(c["window_end"]),
            "feature": c["feature"],
            "severity": c["severity"],
            "drifted": c["drifted"],
        }
        for c in cells
    ]
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": values},
            "mark": {"type": "rect"},
            "encoding": {
                "x": utc_x(title="Window (UTC)"),
                "x2": {"field": "t2"},
                "y": {"field": "feature", "type": "nominal", "title": "Feature"},
                "color": {
                    "field": "severity",
                    "type": "quantitative",
                    "title": "Severity (0-100)",
                    "scale": {"domain": [0, 100], "scheme": "orangered"},
                },
                "tooltip": [
                    {"field": "t", "type": "temporal", "title": "Window start (UTC)", "format": "%Y-%m-%d %H:%M"},
                    {"field": "feature", "type": "nominal", "title": "Feature"},
                    {"field": "severity", "type": "quantitative", "title": "Severity (0-100)", "format": ".1f"},
                    {"field": "drifted", "type": "nominal", "title": "Drifted"},
                ],
            },
        }
    ]
    if selected is not None:
        layers.append(
            {
                "data": {"values": [{"t": iso(selected)}]},
                "mark": {"type": "rule", "color": "#222222", "strokeWidth": 2},
                "encoding": {"x": utc_x(title="Window (UTC)")},
            }
        )
    return base(f"{model} v{version}: feature drift severity per window", width=720, layer=layers)


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Readable labels of the bins that inner ``edges`` make: ``< e0``, ``e0 to e1``, ..., ``>= e_last``."""
    if not edges:
        return ["all values"]
    fmt = [f"{e:.3g}" for e in edges]
    return [f"< {fmt[0]}", *(f"{a} to {b}" for a, b in zip(fmt, fmt[1:], strict=False)), f">= {fmt[-1]}"]


def distribution_rows(
    feature: str, reference: dict[str, Any], window_bins: Sequence[int], unseen_levels: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Share of rows per reference bin, for the reference and for the window, from the stored bins only.

    ``reference`` is one entry of :func:`~include.modelwatch.monitoring.drift.store.reference_bins`; ``window_bins``
    the window's counts per bin as the drift task stored them (numeric: per bin of ``edges``; categorical: per
    reference level in order, then ``unseen_levels``). A length mismatch raises ValueError naming the feature."""
    if reference["kind"] == "numeric":
        labels, ref_counts = bin_labels(reference["edges"]), [float(c) for c in reference["counts"]]
    else:
        levels = dict(reference["levels"])
        labels = [*levels, *unseen_levels]
        ref_counts = [float(levels.get(lv, 0)) for lv in labels]
    if len(window_bins) != len(labels):
        raise ValueError(f"feature {feature!r}: {len(window_bins)} window bins for {len(labels)} reference bins")
    ref_total, win_total = sum(ref_counts) or 1.0, sum(window_bins) or 1
    rows = []
    for i, label in enumerate(labels):
        rows.append(
            {"feature": feature, "bin": label, "order": i, "series": "reference", "share": ref_counts[i] / ref_total}
        )
        rows.append(
            {"feature": feature, "bin": label, "order": i, "series": "window", "share": window_bins[i] / win_total}
        )
    return rows


DISTRIBUTION_SERIES = {"reference": "#9e9e9e", "window": "#f58518"}


def distribution_overlay(model: str, version: int, rows: Sequence[dict[str, Any]], selected: str) -> dict[str, Any]:
    """Grouped bars of the reference's and the window's share of rows per reference bin, one feature at a time:
    a select box (the Vega-Lite parameter ``feature``, initially ``selected``) picks the feature."""
    features = sorted({r["feature"] for r in rows})
    return base(
        f"{model} v{version}: reference vs window, share of rows per reference bin",
        width=720,
        data={"values": list(rows)},
        params=[
            {"name": "feature", "value": selected, "bind": {"input": "select", "options": features, "name": "Feature "}}
        ],
        transform=[{"filter": "datum.feature == feature"}],
        mark={"type": "bar"},
        encoding={
            "x": {
                "field": "bin",
                "type": "ordinal",
                "sort": {"field": "order"},
                "title": "Bin of the feature's value (reference quantile bins; levels for categories)",
                "axis": {"labelAngle": -30},
            },
            "xOffset": {"field": "series"},
            "y": {"field": "share", "type": "quantitative", "title": "Share of rows (%)", "axis": {"format": ".0%"}},
            "color": series_color(DISTRIBUTION_SERIES, "Distribution"),
            "tooltip": [
                {"field": "feature", "type": "nominal", "title": "Feature"},
                {"field": "bin", "type": "ordinal", "title": "Bin"},
                {"field": "series", "type": "nominal", "title": "Distribution"},
                {"field": "share", "type": "quantitative", "title": "Share of rows", "format": ".1%"},
            ],
        },
    )


# --------------------------------------------------------------------------- A/B test page

ARM_COLORS = {"champion": "#4c78a8", "challenger": "#f58518"}
SEQ_SERIES = {
    "challenger better (log L+)": "#f58518",
    "champion better (log L-)": "#4c78a8",
    "recorded statistic (larger side)": "#9e9e9e",
    "threshold log(2/alpha)": "#e45756",
}
HIT_SERIES = {
    "champion, its assigned units": "#4c78a8",
    "challenger, its assigned units": "#f58518",
    "champion, every paired row": "#9ecae9",
    "challenger, every paired row": "#ffbf79",
}
SHARE_SERIES = {"observed challenger share (cumulative)": "#f58518", "configured split": "#222222"}
DAY_AXIS = {"title": "Evaluation day (UTC)", "format": "%Y-%m-%d"}
LEGEND = {"orient": "bottom", "direction": "vertical", "labelLimit": 320}  # below the chart: long series names


def _day_t(value: date) -> str:
    """A date as the ISO UTC midnight the specs' ``utc`` time scales read."""
    return iso(datetime(value.year, value.month, value.day, tzinfo=UTC))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def day_x(title: str = DAY_AXIS["title"]) -> dict[str, Any]:
    return {"field": "t", "type": "temporal", "scale": {"type": "utc"}, "axis": {**DAY_AXIS, "title": title}}


def _color(series: dict[str, str], title: str, used: Iterable[str] | None = None) -> dict[str, Any]:
    """A colour encoding of ``series`` (only the ``used`` ones in the legend, in ``series`` order)."""
    shown = dict(series) if used is None else {k: v for k, v in series.items() if k in set(used)}
    return {**series_color(shown, title), "legend": LEGEND}


def ab_sequential(
    test: m.ABTestRow, days: Sequence[m.ABDay], sides: Sequence[Any | None], threshold: float | None
) -> dict[str, Any]:
    """The always-valid sequential test day by day: each side's log likelihood ratio (``sides[i]``: the
    :class:`~include.modelwatch.api.queries_ab.SequentialSides` of ``days[i]``, or None: then the recorded larger
    side is drawn) against the crossing threshold ``log(2 / alpha)`` (a dashed horizontal rule)."""
    values: list[dict[str, Any]] = []
    for d, side in zip(days, sides, strict=True):
        common = {"t": _day_t(d.day), "days_elapsed": d.days_elapsed, "decision": d.seq_decision}
        drawn: list[tuple[str, float | None, int | None]] = (
            [("recorded statistic (larger side)", d.seq_log_lr, None)]
            if side is None
            else [
                ("challenger better (log L+)", side.log_lr_challenger, side.c),
                ("champion better (log L-)", side.log_lr_champion, side.b),
            ]
        )
        for series, value, wins in drawn:
            if _finite(value) is not None:
                values.append({**common, "series": series, "log_lr": value, "wins": wins})
    units = {s.unit for s in sides if s is not None}
    unit = " (on sessions won)" if units == {"session"} else " (on discordant rows)" if units == {"row"} else ""
    y_title = f"log likelihood ratio{unit}"
    won = {"session": "Sessions won", "row": "Discordant rows won"}.get(next(iter(units)), "Won") if units else "Won"
    show_threshold = threshold is not None and math.isfinite(threshold)
    used = {v["series"] for v in values} | ({"threshold log(2/alpha)"} if show_threshold else set())
    color = _color(SEQ_SERIES, "Sequential test", used)  # one scale and legend for both layers
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": values},
            "mark": {"type": "line", "point": True},
            "encoding": {
                "x": day_x(),
                "y": {"field": "log_lr", "type": "quantitative", "title": y_title},
                "color": color,
                "tooltip": [
                    {"field": "t", "type": "temporal", "title": "Day (UTC)", "format": "%Y-%m-%d"},
                    {"field": "series", "type": "nominal", "title": "Side"},
                    {"field": "log_lr", "type": "quantitative", "title": "log-LR", "format": ".3f"},
                    {"field": "wins", "type": "quantitative", "title": won},
                    {"field": "days_elapsed", "type": "quantitative", "title": "Sessions"},
                    {"field": "decision", "type": "nominal", "title": "Sequential decision"},
                ],
            },
        }
    ]
    if show_threshold:
        layers.append(
            {
                "data": {"values": [{"threshold": threshold, "series": "threshold log(2/alpha)"}]},
                "mark": {"type": "rule", "strokeDash": [6, 3], "strokeWidth": 2},
                "encoding": {
                    "y": {"field": "threshold", "type": "quantitative", "title": y_title},
                    "color": color,
                    "tooltip": [
                        {"field": "series", "type": "nominal", "title": "Rule"},
                        {"field": "threshold", "type": "quantitative", "title": "log(2/alpha)", "format": ".3f"},
                    ],
                },
            }
        )
    return base(
        f"A/B test {test.test_id}: sequential test, log-LR of each side against the threshold (alpha {test.alpha:g})",
        width=720,
        height=220,
        layer=layers,
    )


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def ab_hit_rates(test: m.ABTestRow, days: Sequence[m.ABDay]) -> dict[str, Any]:
    """Each arm's cumulative hit rate (correct label) by evaluation day: on the units assigned to it (solid) and,
    as the paired comparison sees it, on every row both models scored (dashed)."""
    values: list[dict[str, Any]] = []
    for d in days:
        p = d.paired
        for series, basis, hits, n in (
            ("champion, its assigned units", "assigned", d.hits_champion, d.n_champion),
            ("challenger, its assigned units", "assigned", d.hits_challenger, d.n_challenger),
            ("champion, every paired row", "paired", p["both_right"] + p["champion_only"], d.matured_rows),
            ("challenger, every paired row", "paired", p["both_right"] + p["challenger_only"], d.matured_rows),
        ):
            rate = _rate(hits, n)
            if rate is not None:
                values.append(
                    {"t": _day_t(d.day), "series": series, "basis": basis, "rate": rate, "hits": hits, "n": n}
                )
    return base(
        f"A/B test {test.test_id}: cumulative hit rate per arm",
        width=720,
        height=220,
        data={"values": values},
        mark={"type": "line", "point": True},
        encoding={
            "x": day_x(),
            "y": {"field": "rate", "type": "quantitative", "title": "Hit rate (correct label, fraction 0-1)"},
            "color": _color(HIT_SERIES, "Arm and rows"),
            "strokeDash": {
                "field": "basis",
                "type": "nominal",
                "scale": {"domain": ["assigned", "paired"], "range": [[1, 0], [6, 3]]},
                "legend": None,
            },
            "tooltip": [
                {"field": "t", "type": "temporal", "title": "Day (UTC)", "format": "%Y-%m-%d"},
                {"field": "series", "type": "nominal", "title": "Arm and rows"},
                {"field": "rate", "type": "quantitative", "title": "Hit rate", "format": ".3f"},
                {"field": "hits", "type": "quantitative", "title": "Hits"},
                {"field": "n", "type": "quantitative", "title": "Rows"},
            ],
        },
    )


def ab_traffic(test: m.ABTestRow, traffic: m.ABTraffic) -> dict[str, Any]:
    """Units assigned to each arm per session (stacked bars) above the challenger's share of every unit assigned
    so far (what the sample-ratio check tests) against the split each session's units were assigned with (the
    configured split; Thompson sampling moves it)."""
    units = [
        {"t": _day_t(d.day), "arm": arm, "units": n, "split": d.split}
        for d in traffic.days
        for arm, n in (("champion", d.champion), ("challenger", d.challenger))
    ]
    observed: list[dict[str, Any]] = []
    configured: list[dict[str, Any]] = []
    total = challenger = 0
    for d in traffic.days:
        total, challenger = total + d.champion + d.challenger, challenger + d.challenger
        t = _day_t(d.day)
        if total:
            observed.append(
                {
                    "t": t,
                    "series": "observed challenger share (cumulative)",
                    "share": challenger / total,
                    "challenger": challenger,
                    "units": total,
                }
            )
        configured.append({"t": t, "series": "configured split", "share": d.split})
    x = day_x("Session (UTC)")
    y_share = {
        "field": "share",
        "type": "quantitative",
        "title": "Challenger share of units (0-1)",
        "scale": {"domain": [0, 1]},
    }
    share_color = _color(SHARE_SERIES, "Split")
    bars = {
        "width": 720,
        "height": 140,
        "data": {"values": units},
        "mark": {"type": "bar"},
        "encoding": {
            "x": x,
            "y": {"field": "units", "type": "quantitative", "title": "Units assigned (symbol x session)"},
            "color": {
                "field": "arm",
                "type": "nominal",
                "title": "Arm",
                "scale": {"domain": list(ARM_COLORS), "range": list(ARM_COLORS.values())},
                "legend": LEGEND,
            },
            "order": {"field": "arm", "sort": "descending"},
            "tooltip": [
                {"field": "t", "type": "temporal", "title": "Session (UTC)", "format": "%Y-%m-%d"},
                {"field": "arm", "type": "nominal", "title": "Arm"},
                {"field": "units", "type": "quantitative", "title": "Units"},
                {"field": "split", "type": "quantitative", "title": "Configured split", "format": ".3f"},
            ],
        },
    }
    share = {
        "width": 720,
        "height": 140,
        "layer": [
            {
                "data": {"values": configured},
                "mark": {"type": "line", "interpolate": "step-after", "strokeDash": [6, 3], "strokeWidth": 2},
                "encoding": {
                    "x": x,
                    "y": y_share,
                    "color": share_color,
                    "tooltip": [
                        {"field": "t", "type": "temporal", "title": "Session (UTC)", "format": "%Y-%m-%d"},
                        {"field": "share", "type": "quantitative", "title": "Configured split", "format": ".3f"},
                    ],
                },
            },
            {
                "data": {"values": observed},
                "mark": {"type": "line", "point": True},
                "encoding": {
                    "x": x,
                    "y": y_share,
                    "color": share_color,
                    "tooltip": [
                        {"field": "t", "type": "temporal", "title": "Session (UTC)", "format": "%Y-%m-%d"},
                        {"field": "share", "type": "quantitative", "title": "Challenger share", "format": ".3f"},
                        {"field": "challenger", "type": "quantitative", "title": "Challenger units so far"},
                        {"field": "units", "type": "quantitative", "title": "Units so far"},
                    ],
                },
            },
        ],
    }
    return base(
        f"A/B test {test.test_id}: traffic per session against the split",
        vconcat=[bars, share],
        resolve={"scale": {"x": "shared", "color": "independent"}, "legend": {"color": "independent"}},
    )


__all__ = [
    "ARM_COLORS",
    "MARKER_COLORS",
    "ab_hit_rates",
    "ab_sequential",
    "ab_traffic",
    "bin_labels",
    "distribution_overlay",
    "distribution_rows",
    "SCHEMA",
    "drift_panel",
    "drift_sparkline",
    "iso",
    "marker_layer",
    "model_timeline",
    "performance_panel",
    "severity_heatmap",
    "time_domain",
]
