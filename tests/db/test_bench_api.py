"""`make bench`'s API latency stage (bench/api_latency.py) at a tiny size on the test session's PostgreSQL:
the generated history has the rows it should, every page and GET endpoint of the app is called, and each
call answers 200 with a measured latency."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bench import api_latency as bench
from include.modelwatch.api import queries_common as qc
from include.modelwatch.api import queries_monitoring as qm
from include.modelwatch.data import storage

SIZE = bench.Size(versions=2, windows=48, features=3)
H = timedelta(hours=1)


def count(db, table: str, where: str = "") -> int:
    n = storage.fetch_dicts(db, f"SELECT count(*) AS n FROM {table} {where}")[0]["n"]
    db.rollback()
    return int(n)


def test_generated_history_has_every_table_the_pages_read(db, tmp_path):
    gen = bench.generate(db, SIZE, tmp_path, log=lambda _: None)
    assert gen["generation_s"] >= gen["load_s"] > 0
    main = f"WHERE model_name = '{bench.MODEL}'"
    assert count(db, "model_versions", main) == 2
    assert count(db, "drift_windows", main) == 2 * 48
    assert count(db, "drift_results", main) == 2 * 48 * 3
    # one row per window and feature, keyed like the store writes them
    joined = "drift_results r JOIN drift_windows w USING (model_name, model_version, window_start)"
    assert count(db, joined, main) == 288
    assert count(db, "drift_results", main + " AND kind = 'prediction'") == 2 * 48 * 2  # confidence, predicted_label
    # the all-tests model: every test row per feature (numeric confidence: 6; categoricals: 4 each), the
    # 'psi' row with the window's counts per reference bin, the version with a real reference profile
    detail = f"WHERE model_name = '{bench.DETAIL_MODEL}'"
    assert count(db, "drift_windows", detail) == 48
    assert count(db, "drift_results", detail) == 48 * (6 + 4 + 4)
    bins = storage.fetch_dicts(
        db,
        "SELECT r.feature, jsonb_array_length(r.details -> 'window_bins') AS n, r.n_current, "
        "(SELECT sum(x::int) FROM jsonb_array_elements_text(r.details -> 'window_bins') x) AS total, "
        "jsonb_array_length(v.reference_profile -> 'numeric' -> 'confidence' -> 'counts') AS ref_bins "
        f"FROM drift_results r JOIN model_versions v ON v.model_name = r.model_name AND v.version = r.model_version "
        f"WHERE r.model_name = '{bench.DETAIL_MODEL}' AND r.test = 'psi' AND r.feature = 'confidence'",
    )
    db.rollback()
    assert len(bins) == 48 and all(b["n"] == b["ref_bins"] == 10 and b["total"] == b["n_current"] for b in bins)
    assert count(db, "live_vs_backtest_comparison") == 2 * SIZE.days * len(bench.METRICS)
    assert count(db, "performance_estimates") == 2 * SIZE.days * 2
    assert count(db, "predictions", main) == 2 * 48  # one an hour per version: the confidence trend's input
    assert count(db, "model_health_daily") == 2 * SIZE.days
    assert count(db, "interpretability_log") == 2 * SIZE.days * 1  # the 3 rows minus 2 prediction columns
    # v1 champion (bootstrap), v2 challenger: both active; one trigger with two jobs of five gates
    statuses = storage.fetch_dicts(db, f"SELECT version, status FROM model_versions {main} ORDER BY version")
    assert [(r["version"], r["status"]) for r in statuses] == [(1, "active"), (2, "active")]
    aliases = storage.fetch_dicts(db, f"SELECT alias, to_version FROM model_alias_history {main} ORDER BY id")
    assert [(r["alias"], r["to_version"]) for r in aliases] == [("champion", 1), ("challenger", 2)]
    assert count(db, "training_jobs") == 4 and count(db, "quality_gate_results") == 20
    assert count(db, "alerts", "WHERE status <> 'resolved'") <= 2
    # hourly windows over the two days, each an hour long
    span = storage.fetch_dicts(
        db,
        "SELECT min(window_start) AS a, max(window_end) AS b, bool_and(window_end - window_start = '1 hour') AS h "
        f"FROM drift_windows {main}",
    )[0]
    db.rollback()
    assert span["a"] == bench.T0 and span["b"] == bench.T0 + timedelta(hours=48) and span["h"]
    sizes = bench.table_sizes(db)
    assert sizes["tables"]["drift_results"]["rows"] == 288 + 672 and sizes["database_mb"] > 0
    # the active-learning queue: every tenth prediction of each version (hours 0, 10, .. 40), statuses cycling,
    # each item linked to the prediction it came from, in the band with its priority
    assert sizes["tables"]["active_learning_queue"]["rows"] == 2 * 5
    queue = storage.fetch_dicts(
        db,
        "SELECT q.status, count(*) AS n, bool_and(p.prediction_id IS NOT NULL AND p.ts = q.ts) AS linked, "
        "bool_and(q.confidence BETWEEN 0.5 AND 0.55) AS in_band, "
        "bool_and(q.priority = CASE WHEN q.confidence <= 0.52 THEN 3 WHEN q.confidence <= 0.54 THEN 2 ELSE 1 END) "
        "AS prio FROM active_learning_queue q LEFT JOIN predictions p USING (prediction_id) GROUP BY q.status "
        "ORDER BY q.status",
    )
    db.rollback()
    # statuses cycle per version: pending, labelled, pending, processed, skipped (expired from the seventh item on)
    assert [(r["status"], r["n"]) for r in queue] == [("labelled", 2), ("pending", 4), ("processed", 2), ("skipped", 2)]
    assert all(r["linked"] and r["in_band"] and r["prio"] for r in queue), queue


def test_every_page_and_get_endpoint_is_measured(db, tmp_path, monitoring_uri):
    bench.generate(db, SIZE, tmp_path, log=lambda _: None)
    todo = bench.calls(SIZE)
    with bench.bench_client(lambda: storage.session(monitoring_uri)) as client:
        gets = [
            r
            for r in client.app.routes
            if "GET" in (getattr(r, "methods", None) or ())
            and r.path not in ("/openapi.json", "/docs", "/redoc")
            and not r.path.startswith(("/static", "/docs"))
        ]
        uncovered = [r.path for r in gets if not any(r.path_regex.match(c.path) for c in todo)]
        assert uncovered == []
        rows = bench.measure(client, todo, n=3, warmup=1, log=lambda _: None)
    assert len(rows) == len(todo) > 30
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"], r
        assert r["n"] == 3 and (r["bytes"] > 0 if r["status"] == 200 else r["status"] == 303), r
    page = {r["name"]: r for r in rows}["GET /models/{model}"]
    assert page["over_target"] == (page["p95_ms"] > bench.TARGET_P95_MS)


@pytest.mark.parametrize(
    ("source", "columns", "order_by", "key"),
    [
        (
            "drift_windows",
            qm.DRIFT_WINDOW_COLUMNS,
            "window_end DESC, window_start DESC, model_name, model_version DESC",
            "model_name, model_version, window_start",
        ),
        (
            "live_vs_backtest_comparison",
            qm.COMPARISON_COLUMNS,
            "window_end DESC, model_name, model_version DESC, is_primary DESC, metric",
            "model_name, model_version, window_end, metric",
        ),
        (
            "interpretability_log",
            qm.INTERPRETABILITY_COLUMNS,
            "window_end DESC, model_name, model_version DESC, shap_rank NULLS LAST, feature",
            "model_name, model_version, window_end, feature",
        ),
    ],
)
def test_deep_pages_read_by_key_are_the_same_rows(db, tmp_path, source, columns, order_by, key):
    """A page past the first is read keys first (fetch_page's ``key``): the same rows in the same order as the
    plain ``ORDER BY ... OFFSET`` query, filtered or not, on every offset."""
    bench.generate(db, SIZE, tmp_path, log=lambda _: None)
    filters = [
        qc.common_filters(model=None, time_column="window_end"),
        qc.common_filters(model=bench.MODEL, version=2, time_column="window_end"),
        qc.common_filters(
            model=bench.MODEL, start=bench.T0, end=bench.T0 + timedelta(hours=30), time_column="window_end"
        ),
    ]
    for predicates in filters:
        for offset, limit in ((1, 7), (5, 50), (40, 3), (95, 10)):
            args = dict(columns=columns, source=source, predicates=predicates, order_by=order_by, limit=limit)
            plain = qc.fetch_page(db, **args, offset=offset)
            keyed = qc.fetch_page(db, **args, offset=offset, key=key)
            db.rollback()
            assert keyed == plain
            assert plain[0] or plain[1] <= offset  # a page is empty only past the end
