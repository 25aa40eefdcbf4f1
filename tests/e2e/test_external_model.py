"""Several models at once, through the real DAGs: an external model registered from a reference Parquet with the
CLI, two days of its predictions and a late outcome batch through the drop folder (ingest_predictions), a malformed
batch quarantined with nothing else changed; the two native models (spx_signal, direction; spx_vol_regime,
volatility regime) scored by score_signals; then drift_hourly and performance_daily evaluating all three in the
same runs."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pendulum

from include.modelwatch.data import storage
from include.modelwatch.external import example as X
from include.modelwatch.external import feed
from include.modelwatch.ops import cli
from include.tasks import ingest
from tests.e2e.conftest import get_dag, run_window
from tests.e2e.conftest import rows as _rows

START, DRIFT_END, PERF_END = "2008-04-01T00:00:00+00:00", "2008-04-03T00:00:00+00:00", "2008-04-04T00:00:00+00:00"


def _states(run) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        out.setdefault(ti.task_id, []).append(str(ti.state).split(".")[-1].lower())
    return out


def _ingest(at: str):
    return get_dag("ingest_predictions").test(logical_date=pendulum.parse(at))


def test_external_model_from_reference_to_drift_and_performance(champion, monitoring_uri, tmp_path, capsys):
    from include.modelwatch import defaults
    from include.modelwatch.ops import bootstrap

    conn = storage.connect(monitoring_uri)
    # the second native model (its own run id: the next test's fixture drops its alias again)
    vol = bootstrap.bootstrap_champion(
        conn,
        artifact_dir=os.environ["MODELWATCH_ARTIFACT_DIR"],
        model_name=defaults.VOL_MODEL_NAME,
        run_id="test-vol-regime",
        log=lambda *_: None,
    )
    assert vol.model.classes == ["LOW", "HIGH"] and vol.model.params["target"] == "vol_regime"
    assert "vol_5d_rel" in vol.model.features
    spec = tmp_path / "fx_direction.json"
    spec.write_text(json.dumps(X.spec()))
    ref = X.write(X.reference(), tmp_path / "reference.parquet")
    assert cli.main(["external", "register", "--spec", str(spec), "--reference", str(ref), "--by", "ana"]) == 0
    version = _rows(conn, "SELECT version FROM model_aliases WHERE model_name = %s", (X.NAME,))[0]["version"]
    assert f"registered fx_direction v{version}" in capsys.readouterr().out

    inbox = feed.inbox_dir()
    day0, day1 = X.live(0), X.live(1)
    X.write(X.predictions_of(day0), inbox / "predictions" / "2008-04-01.parquet")
    X.write(X.predictions_of(day1), inbox / "predictions" / "2008-04-02.parquet")
    first = _ingest("2026-12-01T10:00:00+00:00")
    assert first.state == "success"
    states = _states(first)
    assert states["wait_for_batches"] == ["success"]
    assert states["ingest_prediction_batch"] == ["success", "success"]
    assert states["ingest_outcome_batch"] == ["skipped"]  # no outcome file yet
    n = _rows(conn, "SELECT count(*) AS n FROM predictions WHERE model_name = %s", (X.NAME,))[0]["n"]
    assert n == 50

    # the late outcomes of both days, and malformed batches beside them: a missing column, a wrong dtype, NaN
    # probabilities, an unknown model
    both = pd.concat([day0, day1], ignore_index=True)
    late = X.outcomes_of(both)
    X.write(late, inbox / "outcomes" / "late.parquet")
    day2 = X.predictions_of(X.live(2))
    nan = day2.copy()
    nan.loc[[4, 17], "p_up"] = np.nan
    text = day2.copy()
    text["ret_5d"] = text["ret_5d"].map(lambda v: f"{v:.2%}")
    unknown = day2.assign(model_name="fx_directoin")
    malformed = {
        "2008-04-03-missing.parquet": day2.drop(columns=["vol_21d"]),
        "2008-04-03-nan.parquet": nan,
        "2008-04-03-text.csv": text,
        "2008-04-03-unknown.parquet": unknown,
    }
    for name, df in malformed.items():
        X.write(df, inbox / "predictions" / name)
    second = _ingest("2026-12-01T10:15:00+00:00")
    assert second.state == "success"  # a refused batch is recorded, not a failed task
    assert _states(second)["ingest_outcome_batch"] == ["success"]
    batches = _rows(conn, "SELECT kind, name, status, n_written, error FROM ingest_batches ORDER BY kind DESC, name")
    assert [(b["kind"], b["name"], b["status"], b["n_written"]) for b in batches] == [
        ("predictions", "2008-04-01.parquet", "loaded", 25),
        ("predictions", "2008-04-02.parquet", "loaded", 25),
        ("predictions", "2008-04-03-missing.parquet", "quarantined", 0),
        ("predictions", "2008-04-03-nan.parquet", "quarantined", 0),
        ("predictions", "2008-04-03-text.csv", "quarantined", 0),
        ("predictions", "2008-04-03-unknown.parquet", "quarantined", 0),
        ("outcomes", "late.parquet", "loaded", 50),
    ]
    errors = [b["error"] for b in batches[2:6]]
    assert errors[0].startswith("2008-04-03-missing.parquet: missing column(s) ['vol_21d'] (fx_direction v")
    assert errors[1].startswith(
        "2008-04-03-nan.parquet: column p_up: empty (null/NaN) values at rows 4, 17 "
        "[GX expect_column_values_to_not_be_null]"
    )
    assert errors[2].startswith("2008-04-03-text.csv: column ret_5d: wrong dtype")
    assert errors[3] == (
        "2008-04-03-unknown.parquet: unknown model 'fx_directoin'; registered external models: ['fx_direction']"
    )
    for name in malformed:
        assert (inbox / "quarantine" / "predictions" / name).exists()
    assert _rows(conn, "SELECT count(*) AS n FROM predictions WHERE model_name = %s", (X.NAME,))[0]["n"] == 50
    assert _rows(conn, "SELECT count(*) AS n FROM outcomes")[0]["n"] == 50
    # the inbox is empty again: the sensor's next poke waits (and a run without batches ends skipped)
    assert feed.pending_files(inbox) == []
    assert ingest.poke() == (False, [])

    # the native champions score March and the same days; all three models go through the same monitoring runs
    assert run_window("score_signals", "2008-03-01T00:00:00+00:00", DRIFT_END).state == "success"
    drift = run_window("drift_hourly", START, DRIFT_END)
    assert drift.state == "success"
    windows = _rows(
        conn,
        "SELECT model_name, model_version, status, n_rows FROM drift_windows WHERE window_start = %s "
        "ORDER BY model_name",
        (datetime(2008, 4, 1, tzinfo=UTC),),
    )
    assert [(w["model_name"], w["n_rows"]) for w in windows] == [
        ("fx_direction", 50),
        ("spx_signal", 4),
        ("spx_vol_regime", 4),
    ]
    assert windows[0]["status"] == "evaluated"
    results = _rows(
        conn,
        "SELECT feature FROM drift_results WHERE model_name = %s AND window_start = %s ORDER BY feature",
        (X.NAME, datetime(2008, 4, 1, tzinfo=UTC)),
    )
    assert {"ret_5d", "vol_21d", "venue", "p_up", "p_down", "predicted_label"} <= {r["feature"] for r in results}

    perf = run_window("performance_daily", START, PERF_END)
    assert perf.state == "success"
    live = _rows(
        conn,
        "SELECT model_name, n, accuracy, hit_rate, per_class FROM live_performance_daily WHERE window_end = %s "
        "AND symbol = '*' ORDER BY model_name",
        (datetime(2008, 4, 4, tzinfo=UTC),),
    )
    assert [r["model_name"] for r in live] == ["fx_direction", "spx_signal", "spx_vol_regime"]
    # March's regime outcomes matured: the volatility model's live accuracy and its own classes
    assert live[2]["n"] > 0 and 0 <= live[2]["accuracy"] <= 1
    assert set(live[2]["per_class"]) >= {"f1_LOW", "f1_HIGH"} and live[2]["hit_rate"] is None
    fx = live[0]
    expected = float((np.where(both["p_up"] > 0.5, "up", "down") == both["realized_label"]).mean())
    assert fx["n"] == 50
    assert abs(fx["accuracy"] - expected) < 1e-9
    assert fx["hit_rate"] is None  # no trading classes: no trading metrics
    assert set(fx["per_class"]) >= {"f1_down", "f1_up", "support_down", "support_up"}
    comparison = _rows(
        conn,
        "SELECT metric, baseline_value FROM live_vs_backtest_comparison WHERE model_name = %s AND window_end = %s "
        "AND metric = 'accuracy'",
        (X.NAME, datetime(2008, 4, 4, tzinfo=UTC)),
    )
    assert [c["baseline_value"] for c in comparison] == [0.62]
