"""External models on the embedded PostgreSQL: registration from a reference frame, the drop-folder feed
(loaded, idempotent, late outcomes, every kind of malformed batch quarantined with nothing else changed), and a
fired rule recorded as external_retrain_requested and mailed to the owner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.modelwatch import registry
from include.modelwatch.data import storage
from include.modelwatch.external import example as X
from include.modelwatch.external import feed, register, schema
from include.modelwatch.loop import alerts, responses, triggers
from include.modelwatch.ops import cli


def _q(db, sql, params=None):
    out = storage.fetch_dicts(db, sql, params)
    db.rollback()
    return out


@pytest.fixture()
def registered(db, tmp_path):
    ref = X.write(X.reference(), tmp_path / "reference.parquet")
    done = register.register_external(db, schema.parse_spec(X.spec()), ref, by="cli:test")
    return done


def _snapshot(db) -> dict:
    """Everything a refused batch must leave as it was."""
    return {
        t: _q(db, f"SELECT count(*) AS n FROM {t}")[0]["n"]
        for t in ("predictions", "outcomes", "model_versions", "model_aliases", "monitored_models")
    } | {"ingested": _q(db, "SELECT count(*) AS n FROM ingest_batches WHERE status = 'loaded'")[0]["n"]}


def test_register_builds_profile_schema_baseline_and_alias(db, registered):
    mv = registered.model
    assert (mv.model_name, mv.version, mv.algorithm, mv.status) == (X.NAME, 1, "external", "active")
    assert mv.external and mv.artifact_path is None and mv.classes == ["down", "up"]
    assert registry.resolve_alias(db, X.NAME, "champion") == 1
    info = registry.model_info(db, X.NAME)
    assert (info["origin"], info["owner"]) == ("external", "fx-desk@example.com")
    ref = X.reference()
    by_name = {f["name"]: f for f in mv.feature_schema}
    span = ref["ret_5d"].max() - ref["ret_5d"].min()
    assert by_name["ret_5d"]["min"] == pytest.approx(ref["ret_5d"].min() - span)
    assert by_name["ret_5d"]["max"] == pytest.approx(ref["ret_5d"].max() + span)
    assert (by_name["vol_21d"]["min"], by_name["vol_21d"]["max"]) == (0.0, 1.0)  # declared range kept
    assert by_name["venue"]["levels"] == ["XNAS", "XNYS"]
    prof = mv.reference_profile
    assert set(prof["numeric"]) == {"ret_5d", "vol_21d", "p_down", "p_up", "confidence"}
    assert set(prof["categorical"]) == {"venue", "predicted_label"}
    assert prof["numeric"]["ret_5d"]["n"] == len(ref) == 1500
    assert sum(prof["importance"].values()) == pytest.approx(1.0)
    base = _q(db, "SELECT metric, value, n_predictions FROM backtest_baseline ORDER BY metric")
    assert [(b["metric"], b["value"], b["n_predictions"]) for b in base] == [
        ("accuracy", 0.62, 1500),
        ("brier", 0.45, 1500),
        ("macro_f1", 0.61, 1500),
    ]
    hist = registry.alias_history(db, X.NAME, "champion")
    assert hist[0]["changed_at"] == datetime(2008, 3, 2, tzinfo=UTC)  # the day after the reference ends


def test_spec_and_reference_errors_name_the_field(db, tmp_path):
    with pytest.raises(schema.SpecError, match="'classes' must list at least two"):
        schema.parse_spec(X.spec(classes=["up"]))
    with pytest.raises(schema.SpecError, match=r"unknown baseline metric\(s\) \['sharpe_ratio'\]"):
        schema.parse_spec(X.spec(baseline={"accuracy": 0.6, "sharpe_ratio": 1.0}))
    with pytest.raises(schema.SpecError, match="feature vol_21d: 'min' 2.0 is above 'max' 1.0"):
        schema.parse_spec(X.spec(features=[{"name": "vol_21d", "min": 2.0, "max": 1.0}]))
    bad = X.reference()
    bad.loc[7, "p_up"] = np.nan
    path = X.write(bad, tmp_path / "ref.parquet")
    with pytest.raises(schema.SpecError, match=r"ref.parquet: row 7, column p_up: probability nan is not in \[0, 1\]"):
        register.register_external(db, schema.parse_spec(X.spec()), path, by="t")
    path = X.write(X.reference().drop(columns=["venue"]), tmp_path / "ref2.csv")
    with pytest.raises(schema.SpecError, match=r"ref2.csv: missing column\(s\) \['venue'\]"):
        register.register_external(db, schema.parse_spec(X.spec()), path, by="t")
    assert _q(db, "SELECT count(*) AS n FROM model_versions")[0]["n"] == 0


def test_cli_register_list_and_batches(db, monitoring_uri, tmp_path, capsys):
    spec_path = tmp_path / "fx.json"
    spec_path.write_text(json.dumps(X.spec()))
    ref = X.write(X.reference(), tmp_path / "reference.parquet")
    argv = ["external", "register", "--spec", str(spec_path), "--reference", str(ref), "--uri", monitoring_uri]
    assert cli.main([*argv, "--by", "ana"]) == 0
    out = capsys.readouterr().out
    assert "registered fx_direction v1 (3 features, classes ['down', 'up']) from 1500 reference rows" in out
    assert cli.main(argv) == 0  # the next version
    assert "champion -> v2 (was v1)" in capsys.readouterr().out
    assert cli.main(["external", "list", "--uri", monitoring_uri]) == 0
    assert "fx_direction             external  champion v2    owner fx-desk@example.com" in capsys.readouterr().out
    spec_path.write_text(json.dumps(X.spec(horizon_days=0)))
    assert cli.main(argv) == 1
    assert "error: nothing registered: fx_direction: 'horizon_days' must be a positive integer" in (
        capsys.readouterr().err
    )


def test_predictions_load_idempotently_and_late_outcomes_join(db, registered, tmp_path):
    inbox = tmp_path / "inbox"
    day0, day1 = X.live(0), X.live(1)
    X.write(X.predictions_of(day0), inbox / "predictions" / "day0.parquet")
    X.write(X.predictions_of(day1), inbox / "predictions" / "day1.csv")
    results = [feed.ingest(db, f, inbox, run_id="r1") for f in feed.pending_files(inbox)]
    assert [(r.status, r.n_written, r.version) for r in results] == [("loaded", 25, 1), ("loaded", 25, 1)]
    assert feed.pending_files(inbox) == []
    assert (inbox / "processed" / "predictions" / "day0.parquet").exists()
    rows = _q(
        db,
        "SELECT symbol, ts, features, probabilities, predicted_label, confidence FROM predictions ORDER BY ts, symbol",
    )
    assert len(rows) == 50
    first = rows[0]
    src = day0.iloc[0]
    assert first["symbol"] == "FX00" and first["features"]["venue"] == src["venue"]
    assert first["features"]["ret_5d"] == pytest.approx(src["ret_5d"])
    assert first["probabilities"] == {"down": pytest.approx(src["p_down"]), "up": pytest.approx(src["p_up"])}
    assert first["predicted_label"] == ("up" if src["p_up"] > 0.5 else "down")

    # the same day dropped again, corrected: its symbols' rows of that day are exactly the new ones
    fixed = X.predictions_of(day0)
    fixed[["p_down", "p_up"]] = 0.5
    X.write(fixed, inbox / "predictions" / "day0.parquet")
    (r,) = [feed.ingest(db, f, inbox, run_id="r2") for f in feed.pending_files(inbox)]
    assert (r.status, r.n_written) == ("loaded", 25)
    again = _q(db, "SELECT count(*) AS n, count(*) FILTER (WHERE confidence = 0.5) AS half FROM predictions")
    assert again == [{"n": 50, "half": 25}]

    # outcomes arrive later
    X.write(X.outcomes_of(day0).iloc[:20], inbox / "outcomes" / "late.parquet")
    (r,) = [feed.ingest(db, f, inbox, run_id="r3") for f in feed.pending_files(inbox)]
    assert (r.status, r.n_written) == ("loaded", 20)
    got = _q(
        db,
        "SELECT o.realized_label, o.realized_return, o.matured_at, p.ts FROM outcomes o "
        "JOIN predictions p USING (prediction_id) ORDER BY p.symbol",
    )
    assert [g["realized_label"] for g in got] == list(X.outcomes_of(day0)["realized_label"].iloc[:20])
    assert all(g["realized_return"] is None and g["matured_at"] == g["ts"] + timedelta(days=1) for g in got)
    logged = _q(db, "SELECT kind, name, status, n_rows, n_written FROM ingest_batches ORDER BY batch_id")
    assert [(b["kind"], b["name"], b["status"], b["n_written"]) for b in logged] == [
        ("predictions", "day0.parquet", "loaded", 25),
        ("predictions", "day1.csv", "loaded", 25),
        ("predictions", "day0.parquet", "loaded", 25),
        ("outcomes", "late.parquet", "loaded", 20),
    ]


def _bad(kind: str):
    day = X.live(0)
    preds = X.predictions_of(day)
    if kind == "missing column":
        return "predictions", preds.drop(columns=["vol_21d"]), r"missing column\(s\) \['vol_21d'\]"
    if kind == "wrong dtype":
        preds["ret_5d"] = preds["ret_5d"].map(lambda v: f"{v:.4f}%")
        return "predictions", preds, r"column ret_5d: wrong dtype 'str', expected a number"
    if kind == "NaN probabilities":
        preds.loc[[3, 11], "p_up"] = np.nan
        return "predictions", preds, r"column p_up: empty \(null/NaN\) values at rows 3, 11"
    if kind == "unknown model":
        preds["model_name"] = "fx_directoin"
        return "predictions", preds, r"unknown model 'fx_directoin'; registered external models: \['fx_direction'\]"
    if kind == "out of range":
        preds.loc[5, "vol_21d"] = 4.2
        return "predictions", preds, r"column vol_21d: values outside the registered range at row 5 \(e.g. \['4.2'\]\)"
    if kind == "unknown level":
        preds.loc[2, "venue"] = "XLON"
        return "predictions", preds, r"column venue: values outside the registered levels at row 2"
    if kind == "sum":
        preds.loc[9, "p_up"] = 0.99
        preds.loc[9, "p_down"] = 0.99
        return "predictions", preds, r"probabilities do not sum to 1 at row 9 \(row 9 sums to 1.980000\)"
    if kind == "duplicate":
        preds.loc[4, "symbol"] = preds.loc[3, "symbol"]
        return "predictions", preds, r"columns symbol, timeframe, ts: duplicate prediction at row 4"
    if kind == "two models":
        preds.loc[1, "model_name"] = "other"
        return "predictions", preds, r"column model_name: one model per file, found \['fx_direction', 'other'\]"
    if kind == "outcome without prediction":
        out = X.outcomes_of(X.live(5))
        return "outcomes", out, r"no prediction of fx_direction for the outcome at rows 0, 1, 2, 3, 4, \.\.\."
    if kind == "unknown class":
        out = X.outcomes_of(day)
        out.loc[6, "realized_label"] = "flat"
        return "outcomes", out, r"column realized_label: values outside the registered levels at row 6"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing column",
        "wrong dtype",
        "NaN probabilities",
        "unknown model",
        "out of range",
        "unknown level",
        "sum",
        "duplicate",
        "two models",
        "outcome without prediction",
        "unknown class",
    ],
)
def test_a_malformed_batch_is_quarantined_whole_and_changes_nothing(db, registered, tmp_path, kind):
    inbox = tmp_path / "inbox"
    X.write(X.predictions_of(X.live(0)), inbox / "predictions" / "good.parquet")
    (ok,) = [feed.ingest(db, f, inbox, run_id="r0") for f in feed.pending_files(inbox)]
    assert ok.status == "loaded"
    before = _snapshot(db)
    where, df, message = _bad(kind)
    X.write(df, inbox / where / "bad.parquet")
    (r,) = [feed.ingest(db, f, inbox, run_id="r1") for f in feed.pending_files(inbox)]
    assert r.status == "quarantined"
    assert r.error.startswith("bad.parquet: ")
    import re

    assert re.search(message, r.error), r.error
    assert _snapshot(db) == before
    q = inbox / "quarantine" / where
    assert (q / "bad.parquet").exists() and not (inbox / where / "bad.parquet").exists()
    assert (q / "bad.parquet.error.txt").read_text().strip() == r.error
    row = _q(db, "SELECT status, error, n_written FROM ingest_batches WHERE name = 'bad.parquet'")
    assert row == [{"status": "quarantined", "error": r.error, "n_written": 0}]


def test_an_unreadable_file_is_quarantined(db, registered, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "predictions").mkdir(parents=True)
    (inbox / "predictions" / "torn.parquet").write_bytes(b"PAR1 not really")
    (r,) = [feed.ingest(db, f, inbox, run_id="r1") for f in feed.pending_files(inbox)]
    assert r.status == "quarantined" and r.error.startswith("torn.parquet: cannot be read as parquet")


def test_a_fired_rule_of_an_external_model_is_a_request_to_its_owner(db, registered):
    at = datetime(2008, 4, 10, tzinfo=UTC)
    with storage.transaction(db) as cur:
        alerts.raise_alert(
            cur,
            model_name=X.NAME,
            model_version=1,
            kind="drift",
            severity="critical",
            title="drift",
            message="test",
            window_start=at - timedelta(hours=1),
            window_end=at,
            score=0.5,
        )
    ev = responses.evaluate(db, X.NAME, source="drift", as_of=at, base_url="http://mw.example")
    assert ev.external and not ev.changed  # nothing for retrain_gated
    fired = [a for a in ev.actions if a["action"] == "fire"]
    assert len(fired) == 1
    trig = _q(db, "SELECT trigger_id, status, outcome, completed_at FROM retraining_triggers")
    assert trig == [
        {
            "trigger_id": fired[0]["trigger_id"],
            "status": "external_retrain_requested",
            "outcome": "external_retrain_requested",
            "completed_at": at,
        }
    ]
    assert triggers.pending_count(db) == 0
    (note,) = _q(db, "SELECT kind, subject, body, addressed_to FROM notifications")
    assert note["addressed_to"] == ["fx-desk@example.com"]
    assert note["subject"].endswith(
        f"retraining REQUESTED from the model's owner: fx_direction (trigger {trig[0]['trigger_id']})"
    )
    assert "ModelWatch cannot retrain fx_direction" in note["body"]
    with pytest.raises(triggers.LoopError, match="fx_direction is an external model: ModelWatch cannot retrain it"):
        triggers.create_manual_trigger(db, X.NAME, "please", requested_by="ana", as_of=at)


def test_native_and_external_names_do_not_mix(db, registered, tmp_path):
    with pytest.raises(registry.RegistryError, match="model fx_direction is external; it cannot get an native"):
        registry.register_version(
            db,
            model_name=X.NAME,
            algorithm="lightgbm",
            artifact=b"x",
            artifact_dir=tmp_path,
            features=["f"],
            classes=["down", "up"],
        )
    inbox = tmp_path / "inbox"
    registry.register_version(
        db,
        model_name="spx_signal",
        algorithm="lightgbm",
        artifact=b"x",
        artifact_dir=tmp_path,
        features=["f"],
        classes=["SELL", "HOLD", "BUY"],
    )
    df = X.predictions_of(X.live(0))
    df["model_name"] = "spx_signal"
    X.write(df, inbox / "predictions" / "native.parquet")
    (r,) = [feed.ingest(db, f, inbox, run_id="r1") for f in feed.pending_files(inbox)]
    assert (
        r.error
        == "native.parquet: model spx_signal is trained and scored by ModelWatch; batches are for external models"
    )


def test_the_inbox_is_an_environment_setting():
    assert feed.inbox_dir({"MODELWATCH_INBOX_DIR": "/data/inbox"}) == Path("/data/inbox")
    assert feed.inbox_dir({}) == Path(".modelwatch/inbox")


def _stage(db, batch: str, kind: str, df) -> None:
    feats = ["ret_5d", "vol_21d", "venue"]
    with storage.transaction(db) as cur:
        for r in df.to_dict("records"):
            cur.execute(
                "INSERT INTO ingest_staging (batch, kind, model_name, ts, symbol, features, probabilities, "
                "realized_label) VALUES (%(batch)s, %(kind)s, %(model)s, %(ts)s, %(symbol)s, %(f)s, %(p)s, %(y)s)",
                {
                    "batch": batch,
                    "kind": kind,
                    "model": r["model_name"],
                    "ts": r["ts"].to_pydatetime(),
                    "symbol": r["symbol"],
                    "f": json.dumps({f: r[f] for f in feats}) if kind == "predictions" else None,
                    "p": json.dumps({c: r[f"p_{c}"] for c in X.CLASSES if f"p_{c}" in r})
                    if kind == "predictions"
                    else None,
                    "y": r.get("realized_label") if kind == "outcomes" else None,
                },
            )


def test_the_staging_table_is_the_same_contract(db, registered, tmp_path):
    inbox = tmp_path / "inbox"
    day0 = X.live(0)
    _stage(db, "2008-04-01", "predictions", X.predictions_of(day0))
    bad = X.predictions_of(X.live(1)).drop(columns=["p_up"])  # a row set without the 'up' probability
    _stage(db, "2008-04-02", "predictions", bad)
    _stage(db, "late-1", "outcomes", X.outcomes_of(day0))
    waiting = feed.staged_batches(db)
    db.rollback()
    assert waiting == [
        feed.StagedBatch("predictions", "2008-04-01"),
        feed.StagedBatch("predictions", "2008-04-02"),
        feed.StagedBatch("outcomes", "late-1"),
    ]
    results = [feed.ingest(db, b, inbox, run_id="r1") for b in waiting]
    assert [(r.name, r.status, r.n_written) for r in results] == [
        ("staged:2008-04-01", "loaded", 25),
        ("staged:2008-04-02", "quarantined", 0),
        ("staged:late-1", "loaded", 25),
    ]
    assert results[1].error.startswith("staged:2008-04-02: missing column(s) ['p_up']")
    assert _q(db, "SELECT count(*) AS n FROM ingest_staging") == [{"n": 0}]
    assert _q(db, "SELECT count(*) AS n FROM predictions") == [{"n": 25}]
    assert _q(db, "SELECT count(*) AS n FROM outcomes") == [{"n": 25}]
    kept = inbox / "quarantine" / "staged" / "predictions" / "2008-04-02.csv"
    assert len(pd.read_csv(kept)) == 25
    assert (kept.parent / "2008-04-02.csv.error.txt").read_text().strip() == results[1].error
    logged = _q(db, "SELECT source, name, status FROM ingest_batches ORDER BY batch_id")
    assert [(b["source"], b["status"]) for b in logged] == [
        ("table", "loaded"),
        ("table", "quarantined"),
        ("table", "loaded"),
    ]
    assert feed.ingest(db, feed.StagedBatch("predictions", "2008-04-01"), inbox, run_id="r2").status == "gone"


def test_a_batch_replaces_only_its_own_symbols_and_days(db, registered, tmp_path):
    inbox = tmp_path / "inbox"
    days = [X.live(d) for d in range(3)]  # 04-01 .. 04-03
    for d, frame in enumerate(days):
        X.write(X.predictions_of(frame), inbox / "predictions" / f"d{d}.parquet")
    X.write(X.outcomes_of(days[1]), inbox / "outcomes" / "d1.parquet")
    assert [feed.ingest(db, f, inbox, run_id="r1").status for f in feed.pending_files(inbox)] == ["loaded"] * 4
    # a correction of FX00 on 04-01 and 04-03 only: 04-02 (with its outcomes) and the other symbols stay
    fix = X.predictions_of(pd.concat([days[0], days[2]], ignore_index=True))
    fix = fix[fix["symbol"] == "FX00"].assign(p_down=0.5, p_up=0.5)
    X.write(fix, inbox / "predictions" / "fix.parquet")
    (r,) = [feed.ingest(db, f, inbox, run_id="r2") for f in feed.pending_files(inbox)]
    assert (r.status, r.n_written) == ("loaded", 2)
    got = _q(
        db,
        "SELECT count(*) AS n, count(*) FILTER (WHERE confidence = 0.5) AS half, "
        "(SELECT count(*) FROM outcomes) AS outcomes FROM predictions",
    )
    assert got == [{"n": 75, "half": 2, "outcomes": 25}]


def test_hourly_batches_of_one_day_keep_each_others_rows(db, registered, tmp_path):
    # a producer that drops a batch per hour: each replaces only the span it covers, never the day's earlier hours
    inbox = tmp_path / "inbox"
    day = X.LIVE_START.replace(hour=0)
    hours = [X.frame([day + timedelta(hours=h)], seed=200 + h) for h in (14, 15, 16)]
    X.write(X.predictions_of(hours[0]), inbox / "predictions" / "h14.parquet")
    X.write(X.predictions_of(pd.concat(hours[1:], ignore_index=True)), inbox / "predictions" / "h15-16.parquet")
    X.write(X.outcomes_of(hours[0]), inbox / "outcomes" / "h14.parquet")
    assert [feed.ingest(db, f, inbox, run_id="r1").status for f in feed.pending_files(inbox)] == ["loaded"] * 3
    by_hour = (
        "SELECT extract(hour FROM ts)::int AS hour, count(*) AS n, count(*) FILTER (WHERE confidence = 0.5) AS half, "
        "count(o.prediction_id) AS outcomes FROM predictions p LEFT JOIN outcomes o USING (prediction_id) "
        "GROUP BY 1 ORDER BY 1"
    )
    assert _q(db, by_hour) == [
        {"hour": 14, "n": 25, "half": 0, "outcomes": 25},
        {"hour": 15, "n": 25, "half": 0, "outcomes": 0},
        {"hour": 16, "n": 25, "half": 0, "outcomes": 0},
    ]
    # a corrected 14:00-16:00 batch without FX00 at 15:00: that row goes (inside FX00's span), the others are
    # replaced in place (the 14:00 outcomes stay attached)
    fix = X.predictions_of(pd.concat(hours, ignore_index=True)).assign(p_down=0.5, p_up=0.5)
    fix = fix[~((fix["symbol"] == "FX00") & (fix["ts"].dt.hour == 15))]
    X.write(fix, inbox / "predictions" / "fix.parquet")
    (r,) = [feed.ingest(db, f, inbox, run_id="r2") for f in feed.pending_files(inbox)]
    assert (r.status, r.n_written) == ("loaded", 74)
    assert _q(db, by_hour) == [
        {"hour": 14, "n": 25, "half": 25, "outcomes": 25},
        {"hour": 15, "n": 24, "half": 24, "outcomes": 0},
        {"hour": 16, "n": 25, "half": 25, "outcomes": 0},
    ]


def test_outcome_horizons_count_business_days(db, registered, tmp_path):
    inbox = tmp_path / "inbox"
    friday = X.frame([datetime(2008, 4, 4, 21, tzinfo=UTC)], seed=7)  # a Friday
    X.write(X.predictions_of(friday), inbox / "predictions" / "fri.parquet")
    X.write(X.outcomes_of(friday), inbox / "outcomes" / "fri.parquet")
    assert [feed.ingest(db, f, inbox, run_id="r1").status for f in feed.pending_files(inbox)] == ["loaded"] * 2
    matured = {r["m"] for r in _q(db, "SELECT matured_at AS m FROM outcomes")}
    assert matured == {datetime(2008, 4, 7, 21, tzinfo=UTC)}  # the next business day, a Monday
    early = X.outcomes_of(friday).assign(matured_at=pd.Timestamp("2008-04-05T21:00:00Z"))
    X.write(early, inbox / "outcomes" / "early.parquet")
    (r,) = [feed.ingest(db, f, inbox, run_id="r2") for f in feed.pending_files(inbox)]
    assert r.status == "quarantined"
    assert r.error.startswith(
        "early.parquet: column matured_at: before the prediction's horizon closed (1 business day(s) after ts) "
        "at rows 0"
    )


def test_trade_classes_need_a_return_and_integer_levels_are_text(db, tmp_path):
    ref = X.reference().rename(columns={"p_down": "p_SELL", "p_up": "p_BUY"})
    ref["venue"] = (ref["venue"] == "XNAS").astype(int)  # levels coded as integers
    spec = schema.parse_spec(X.spec(name="fx_trades", classes=["SELL", "BUY"]))
    done = register.register_external(db, spec, X.write(ref, tmp_path / "ref.parquet"), by="t")
    assert {f["name"]: f["levels"] for f in done.model.feature_schema}["venue"] == ["0", "1"]
    inbox = tmp_path / "inbox"
    day = X.live(0).rename(columns={"p_down": "p_SELL", "p_up": "p_BUY"}).assign(model_name="fx_trades")
    day["venue"] = (day["venue"] == "XNAS").astype(int)
    day["realized_label"] = day["realized_label"].map({"up": "BUY", "down": "SELL"})
    X.write(day.drop(columns=["realized_label"]), inbox / "predictions" / "p.parquet")
    X.write(day[["model_name", "ts", "symbol", "realized_label"]], inbox / "outcomes" / "o.parquet")
    results = [feed.ingest(db, f, inbox, run_id="r1") for f in feed.pending_files(inbox)]
    assert [r.status for r in results] == ["loaded", "quarantined"]
    assert results[1].error.startswith("o.parquet: missing column(s) ['realized_return']")
    stored = _q(db, "SELECT DISTINCT features->>'venue' AS v, jsonb_typeof(features->'venue') AS t FROM predictions")
    assert sorted((r["v"], r["t"]) for r in stored) == [("0", "string"), ("1", "string")]


def test_external_versions_roll_back_and_are_not_ab_tested(db, registered, tmp_path):
    from include.modelwatch.ab import store as ab_store
    from include.modelwatch.training import retrain

    ref = X.write(X.reference(), tmp_path / "ref2.parquet")
    v2 = register.register_external(db, schema.parse_spec(X.spec()), ref, by="t").model
    assert registry.resolve_alias(db, X.NAME, "champion") == v2.version == 2
    prev = retrain.rollback(
        db,
        model_name=X.NAME,
        target_version=1,
        reason="v2 worse",
        changed_at=datetime(2008, 5, 1, tzinfo=UTC),
        run_id="t",
    )
    assert prev == 2 and registry.resolve_alias(db, X.NAME, "champion") == 1
    with pytest.raises(
        ab_store.ABError, match=r"fx_direction: A/B tests compare .*v2 predicts \['down', 'up'\] and is ext"
    ):
        ab_store.start_test(
            db,
            model_name=X.NAME,
            challenger_version=2,
            started_at=datetime(2008, 5, 2, tzinfo=UTC),
            started_by="t",
            reason="try",
        )


def test_a_staged_batch_with_text_in_a_number_is_kept_as_csv(db, registered, tmp_path):
    bad = X.predictions_of(X.live(0))
    bad["ret_5d"] = bad["ret_5d"].astype(object)
    bad.loc[3, "ret_5d"] = "n/a"
    _stage(db, "mixed", "predictions", bad)
    (r,) = [feed.ingest(db, b, tmp_path / "inbox", run_id="r1") for b in feed.staged_batches(db)]
    assert r.status == "quarantined" and r.error.startswith("staged:mixed: column ret_5d: wrong dtype")
    kept = pd.read_csv(
        tmp_path / "inbox" / "quarantine" / "staged" / "predictions" / "mixed.csv", dtype=str, keep_default_na=False
    )
    assert len(kept) == 25 and kept.loc[3, "ret_5d"] == "n/a" and float(kept.loc[4, "ret_5d"]) == bad.loc[4, "ret_5d"]
    assert _q(db, "SELECT count(*) AS n FROM ingest_staging") == [{"n": 0}]
