"""score_signals end to end on real S&P 500 / NASDAQ bars with the bootstrapped champion."""

from __future__ import annotations

import pandas as pd

from include.modelwatch.data import storage
from tests.e2e.conftest import rows as _rows
from tests.e2e.conftest import run_window

CHANGED_AT = pd.Timestamp("2008-09-30", tz="UTC").to_pydatetime()


def test_scores_window_records_outcomes_and_is_idempotent(champion, monitoring_uri):
    conn = storage.connect(monitoring_uri)
    run = run_window("score_signals", "2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00")
    assert run.state == "success"
    preds = _rows(
        conn,
        "SELECT prediction_id, symbol, ts, predicted_label, probabilities, confidence, model_version, "
        "data_quality, missing_features FROM predictions ORDER BY symbol, ts",
    )
    # October 2008 had 23 NYSE sessions; two symbols
    assert len(preds) == 46
    assert {p["symbol"] for p in preds} == {"SPX", "IXIC"}
    assert all(p["model_version"] == champion.model.version for p in preds)
    # October 2008 has no NaN feature: every prediction is complete
    assert {(p["data_quality"], p["missing_features"]) for p in preds} == {("ok", None)}
    for p in preds:
        probs = p["probabilities"]
        assert abs(sum(probs.values()) - 1) < 1e-9
        assert p["confidence"] == max(probs.values())
        assert p["predicted_label"] == max(probs, key=probs.get)
    first_ids = [p["prediction_id"] for p in preds]

    # outcomes: a prediction matures 5 sessions later, so the last 5 sessions of October have none yet
    outs = _rows(
        conn,
        "SELECT p.symbol, p.ts, o.realized_return, o.matured_at "
        "FROM outcomes o JOIN predictions p USING (prediction_id)",
    )
    assert len(outs) == 2 * (23 - 5)
    assert all(o["matured_at"] < pd.Timestamp("2008-11-01", tz="UTC") for o in outs)

    # hand check one outcome: SPX entry 2008-10-10, horizon 5 -> exit 2008-10-17, log(close_exit/close_entry)
    spx_bars = _rows(conn, "SELECT bar_date, close FROM market_bars WHERE symbol='SPX'")
    bars = {r["bar_date"].isoformat(): r["close"] for r in spx_bars}
    import math

    spx = next(o for o in outs if o["symbol"] == "SPX" and o["ts"].date().isoformat() == "2008-10-10")
    assert abs(spx["realized_return"] - math.log(bars["2008-10-17"] / bars["2008-10-10"])) < 1e-12

    # re-run of the same window: same rows, same ids, nothing duplicated
    assert run_window("score_signals", "2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00").state == "success"
    again = _rows(conn, "SELECT prediction_id FROM predictions ORDER BY symbol, ts")
    assert [r["prediction_id"] for r in again] == first_ids
    # one scoring batch per symbol and window (modelwatch_scoring_duration_seconds), replaced by the re-run
    assert [
        (b["symbol"], b["model_version"], b["n_rows"], b["n_missing_features"], 0 < b["duration_s"] < 600)
        for b in _rows(
            conn,
            "SELECT symbol, model_version, n_rows, n_missing_features, duration_s FROM scoring_batches "
            "WHERE window_start = '2008-10-01' AND window_end = '2008-11-01' ORDER BY symbol",
        )
    ] == [("IXIC", champion.model.version, 23, 0, True), ("SPX", champion.model.version, 23, 0, True)]
    assert _rows(conn, "SELECT count(*) AS n FROM outcomes")[0]["n"] == len(outs)

    # next window matures the rest of October
    assert run_window("score_signals", "2008-11-01T00:00:00+00:00", "2008-12-01T00:00:00+00:00").state == "success"
    oct_outs = _rows(
        conn, "SELECT count(*) AS n FROM outcomes o JOIN predictions p USING (prediction_id) WHERE p.ts < '2008-11-01'"
    )
    assert oct_outs[0]["n"] == 46
    conn.close()


def test_nan_feature_row_is_scored_and_marked_not_fatal(champion, monitoring_uri):
    """Defect 7: IXIC 2015-05-12 has volume 0, so its volume_z_20 is NaN. The window is still
    scored for both symbols; that row is scored with its NaN (native missing-value handling)
    and marked data_quality='missing_features', missing_features=['volume_z_20']."""
    import math

    from include.modelwatch import registry
    from include.modelwatch.training import training

    conn = storage.connect(monitoring_uri)
    run = run_window("score_signals", "2015-05-01T00:00:00+00:00", "2015-06-01T00:00:00+00:00")
    assert run.state == "success"
    preds = _rows(
        conn,
        "SELECT symbol, ts, features, probabilities, predicted_label, confidence, data_quality, "
        "missing_features FROM predictions ORDER BY symbol, ts",
    )
    # May 2015 had 20 NYSE sessions (Memorial Day 25th closed); both symbols scored
    by_symbol = {s: [p for p in preds if p["symbol"] == s] for s in ("SPX", "IXIC")}
    assert {s: len(v) for s, v in by_symbol.items()} == {"SPX": 20, "IXIC": 20}

    flagged = [p for p in preds if p["data_quality"] != "ok"]
    assert [(p["symbol"], p["ts"].date().isoformat()) for p in flagged] == [("IXIC", "2015-05-12")]
    bad = flagged[0]
    assert bad["data_quality"] == "missing_features"
    assert bad["missing_features"] == ["volume_z_20"]
    assert bad["features"]["volume_z_20"] is None  # NaN stored as JSON null
    others = {k: v for k, v in bad["features"].items() if k != "volume_z_20"}
    assert len(others) == len(champion.model.features) - 1
    assert all(isinstance(v, float) and math.isfinite(v) for v in others.values())
    assert all(p["missing_features"] is None for p in preds if p is not bad)

    # the row was scored with its NaN, not imputed: the champion on the stored features gives the same probabilities
    mv, blob = registry.load_by_alias(conn, champion.model.model_name, registry.CHAMPION)
    conn.rollback()
    row = pd.DataFrame([{f: (float("nan") if bad["features"][f] is None else bad["features"][f]) for f in mv.features}])
    proba = training.predict_proba(training.deserialize_model(blob), row)[0]
    for j, c in enumerate(mv.classes):
        assert abs(bad["probabilities"][c] - proba[j]) < 1e-12
    assert bad["confidence"] == max(bad["probabilities"].values())

    # a re-run keeps the mark (idempotent)
    assert run_window("score_signals", "2015-05-01T00:00:00+00:00", "2015-06-01T00:00:00+00:00").state == "success"
    again = _rows(
        conn, "SELECT count(*) FILTER (WHERE data_quality = 'missing_features') AS bad, count(*) AS n FROM predictions"
    )
    assert again == [{"bad": 1, "n": 40}]
    conn.close()


def test_a_corrupted_champion_artifact_is_refused_alerted_and_nothing_is_scored(champion, monitoring_uri, caplog):
    """Issue 20 fault: the champion's artifact is corrupted in the store. The real score task refuses it (the
    error names the version and both hashes), commits a critical artifact_integrity alert although the task fails,
    and writes no prediction: predictions and scoring batches keep their rows and checksums."""
    import logging
    import os

    from include.modelwatch import registry
    from include.modelwatch.registry import artifacts
    from tests.db.dbstate import snapshot

    caplog.set_level(logging.INFO, logger="include.tasks")
    conn = storage.connect(monitoring_uri)
    window = ("2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00")
    assert run_window("score_signals", *window).state == "success"  # the window as scored by the good champion
    boot = champion.model
    good = registry.read_artifact(boot)
    copy = registry.register_version(  # the same model under a new version, made champion, then corrupted
        conn,
        model_name=boot.model_name,
        algorithm=boot.algorithm,
        artifact=good,
        artifact_dir=os.environ["MODELWATCH_ARTIFACT_DIR"],
        features=list(boot.features),
        classes=list(boot.classes),
        params=boot.params,
        horizon_days=boot.horizon_days,
        train_start=boot.train_start,
        train_end=boot.train_end,
        run_id="test_corrupted_artifact",
    )
    registry.set_alias(
        conn, boot.model_name, registry.CHAMPION, copy.version, reason="test: corrupted copy", changed_at=CHANGED_AT
    )
    stored = artifacts.path(copy.artifact_path)
    corrupted = good[:-16] + bytes(16)
    stored.write_bytes(corrupted)
    tables = ("predictions", "scoring_batches", "outcomes")
    before = snapshot(conn, *tables)
    assert before["predictions"][0] == 46 and before["scoring_batches"][0] == 2
    try:
        run = run_window("score_signals", *window)
    finally:
        stored.write_bytes(good)
    assert run.state == "failed"
    states = {(ti.task_id, ti.map_index): (str(ti.state), ti.try_number) for ti in run.get_task_instances()}
    assert states[("score", 0)] == states[("score", 1)] == ("failed", 3)  # SPX and IXIC, each tried 3 times
    assert snapshot(conn, *tables) == before  # no prediction written, nothing replaced

    registered, found = copy.artifact_sha256, registry.sha256_bytes(corrupted)
    alerts = _rows(
        conn,
        "SELECT model_name, model_version, kind, severity, status, title, message, evidence, occurrences, "
        "first_window FROM alerts",
    )
    assert alerts == [
        {
            "model_name": "spx_signal",
            "model_version": copy.version,
            "kind": "artifact_integrity",
            "severity": "critical",
            "status": "open",
            "title": f"spx_signal v{copy.version}: artifact refused by scoring",
            "message": f"artifact {copy.artifact_path}: registered SHA-256 {registered}, found SHA-256 {found}; "
            "not scored",
            "evidence": {"url": copy.artifact_path, "registered_sha256": registered, "actual_sha256": found},
            "occurrences": 1,  # 2 symbols x 3 tries of one window: one alert
            "first_window": pd.Timestamp(window[0]),
        }
    ]
    refusal = (
        f"spx_signal v{copy.version}: artifact {copy.artifact_path} has SHA-256 {found}, the registry expects "
        f"{registered}; refusing to load a modified or corrupted model"
    )
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("include.tasks")]
    assert sum(refusal in line and "REFUSED" in line for line in logged) == 6, logged
    conn.close()
