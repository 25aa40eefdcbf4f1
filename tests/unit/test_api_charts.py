"""The Vega-Lite spec builders of the ModelWatch pages: encodings and inlined data from given rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.modelwatch.api import charts
from include.modelwatch.api import models as m

T0 = datetime(2008, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)


def window(end: datetime, score: float | None, level: str = "none", version: int = 1) -> m.DriftWindow:
    return m.DriftWindow(
        model="m", version=version, window_start=end - H, window_end=end, status="evaluated", n_rows=10,
        drift_score=score, level=level, n_drifted=0, drifted=False, alert_state=None, run_id=None,
    )  # fmt: skip


def comparison(end: datetime, live: float, primary: bool = True) -> m.PerformanceComparison:
    return m.PerformanceComparison(
        comparison_id=1, model="m", version=1, window_start=end - 30 * 24 * H, window_end=end,
        metric="accuracy" if primary else "macro_f1", is_primary=primary, live_value=live, baseline_value=0.5,
        rel_diff=None, ci_low=live - 0.05, ci_high=live + 0.05, rel_ci_low=None, rel_ci_high=None, threshold=0.45,
        tolerance_rel=0.1, degraded=False, status="ok", n_days=30, n=300,
    )  # fmt: skip


def test_iso_is_utc_whatever_the_input_zone():
    assert charts.iso(datetime(2008, 10, 1, 2, tzinfo=timezone(timedelta(hours=2)))) == "2008-10-01T00:00:00+00:00"


def test_sparkline_sorts_windows_and_skips_missing_scores():
    spec = charts.drift_sparkline([window(T0, 0.6, "critical"), window(T0 - H, 0.05), window(T0 - 2 * H, None)])
    assert spec["data"]["values"] == [
        {"t": "2008-09-30T23:00:00+00:00", "drift_score": 0.05, "level": "none"},
        {"t": "2008-10-01T00:00:00+00:00", "drift_score": 0.6, "level": "critical"},
    ]
    assert spec["encoding"]["x"]["type"] == "temporal" and spec["encoding"]["x"]["scale"]["type"] == "utc"
    assert spec["encoding"]["y"] == {
        "field": "drift_score", "type": "quantitative", "title": "Drift score (0-1)", "axis": None
    }  # fmt: skip


def test_model_timeline_shares_one_time_domain_and_carries_band_rules_estimates_and_markers():
    est = m.Estimate(
        model="m", version=1, window_start=T0 - 24 * H, window_end=T0, metric="accuracy", n_predictions=5,
        estimate=0.55, estimate_unchecked=0.55, status="ok", reason="", realized=None, abs_error=None,
        abs_error_unchecked=None, realized_n=None, realized_as_of=None,
    )  # fmt: skip
    markers = [{"at": T0 + 2 * H, "kind": "rollback", "label": "champion v2 -> v1"}]
    spec = charts.model_timeline(
        "m", [window(T0, 0.3)], [], [comparison(T0, 0.45), comparison(T0, 0.2, primary=False)], [est], markers
    )
    drift, perf = spec["vconcat"]
    domain = ["2008-09-01T00:00:00+00:00", "2008-10-01T02:00:00+00:00"]  # comparison window start .. marker
    assert drift["layer"][1]["encoding"]["x"]["scale"]["domain"] == domain
    assert perf["layer"][0]["encoding"]["x"]["scale"]["domain"] == domain
    band = perf["layer"][0]
    assert (band["mark"]["type"], band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == (
        "area", "ci_low", "ci_high"
    )  # fmt: skip
    assert [(v["live"], round(v["ci_low"], 2), round(v["ci_high"], 2)) for v in band["data"]["values"]] == [
        (0.45, 0.4, 0.5)
    ]
    assert band["encoding"]["y"]["title"] == "accuracy (fraction, 0-1)"
    assert [(v["series"], v["value"], v["t"], v["t2"]) for v in perf["layer"][2]["data"]["values"]] == [
        ("backtest baseline", 0.5, "2008-09-01T00:00:00+00:00", "2008-10-01T00:00:00+00:00"),
        ("alert threshold", 0.45, "2008-09-01T00:00:00+00:00", "2008-10-01T00:00:00+00:00"),
    ]
    assert perf["layer"][3]["data"]["values"] == [
        {"t": "2008-10-01T00:00:00+00:00", "estimate": 0.55, "status": "ok", "series": "label-free estimate"}
    ]
    assert perf["layer"][4]["data"]["values"] == [
        {"t": "2008-10-01T02:00:00+00:00", "kind": "rollback", "label": "champion v2 -> v1"}
    ]
    assert perf["layer"][4]["encoding"]["color"]["scale"]["domain"] == list(charts.MARKER_COLORS)


def test_drift_panel_shades_only_drift_alert_episodes():
    def alert(kind: str) -> m.Alert:
        return m.Alert(
            alert_id=3, model="m", version=1, kind=kind, status="open", severity="critical", score=0.6, title="t",
            message="", first_window=T0 - 3 * H, last_window=T0, occurrences=2, opened_at=T0, acknowledged_at=None,
            acknowledged_by=None, resolved_at=None, resolution=None,
        )  # fmt: skip

    panel = charts.drift_panel([window(T0, 0.6, "critical")], [alert("drift"), alert("performance")], [], None)
    rect, line = panel["layer"][0], panel["layer"][1]
    assert [(v["t"], v["t2"], v["alert_id"]) for v in rect["data"]["values"]] == [
        ("2008-09-30T21:00:00+00:00", "2008-10-01T00:00:00+00:00", 3)
    ]
    assert rect["encoding"]["x2"] == {"field": "t2"}
    assert [(v["drift_score"], v["level"]) for v in line["data"]["values"]] == [(0.6, "critical")]
    assert line["encoding"]["y"]["title"] == "Drift score (0-1)"


def test_severity_heatmap_cells_and_selected_window():
    cells = [{"window_start": T0, "window_end": T0 + H, "feature": "f", "severity": 90.0, "drifted": True}]
    spec = charts.severity_heatmap("m", 1, cells, selected=T0)
    rect, rule = spec["layer"]
    assert rect["data"]["values"] == [
        {"t": "2008-10-01T00:00:00+00:00", "t2": "2008-10-01T01:00:00+00:00", "feature": "f", "severity": 90.0,
         "drifted": True}
    ]  # fmt: skip
    assert rect["encoding"]["color"]["title"] == "Severity (0-100)"
    assert rect["encoding"]["color"]["scale"]["domain"] == [0, 100]
    assert rule["data"]["values"] == [{"t": "2008-10-01T00:00:00+00:00"}]


def test_layers_sharing_a_legend_show_it_once_and_the_timeline_shows_each_legend_once():
    from include.modelwatch.api.charts import one_legend_per_title

    shared = {"field": "series", "type": "nominal", "title": "Performance"}
    layers = [
        {"encoding": {"color": shared}},
        {"encoding": {"color": shared}},
        {"encoding": {"color": {"title": "Event"}}},
    ]
    out = one_legend_per_title(layers)
    assert "legend" not in out[0]["encoding"]["color"]  # the first keeps its legend
    assert out[1]["encoding"]["color"]["legend"] is None
    assert "legend" not in out[2]["encoding"]["color"]
    assert "legend" not in shared  # the shared encoding itself is not changed


def test_bin_labels_and_distribution_rows() -> None:
    assert charts.bin_labels([-0.5, 0.0, 1234.5678]) == ["< -0.5", "-0.5 to 0", "0 to 1.23e+03", ">= 1.23e+03"]
    assert charts.bin_labels([]) == ["all values"]
    rows = charts.distribution_rows("vol", {"kind": "numeric", "edges": [1.0], "counts": [3, 1]}, [1, 3])
    assert [(r["bin"], r["series"], r["share"]) for r in rows] == [
        ("< 1", "reference", 0.75),
        ("< 1", "window", 0.25),
        (">= 1", "reference", 0.25),
        (">= 1", "window", 0.75),
    ]
    with pytest.raises(ValueError, match="feature 'vol': 3 window bins for 2 reference bins"):
        charts.distribution_rows("vol", {"kind": "numeric", "edges": [1.0], "counts": [3, 1]}, [1, 2, 3])
    spec = charts.distribution_overlay("m", 2, rows, "vol")
    assert spec["params"][0] == {
        "name": "feature",
        "value": "vol",
        "bind": {"input": "select", "options": ["vol"], "name": "Feature "},
    }
    assert spec["encoding"]["y"]["axis"] == {"format": ".0%"} and spec["encoding"]["xOffset"] == {"field": "series"}
