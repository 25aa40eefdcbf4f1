"""The bad-input corpus (issue 20): every case feeds one bad input through the entry point a user reaches (the
external-model feed and registration, scoring, drift, performance, the label queue, market bars, a run's conf and
params, the CLI, the REST write routes, the HTML pages, the migrations) and asserts

* what the user sees: the error names the model, column, window or field (``sees`` appears in the message), or the
  documented safe handling happened (asserted in the case), and
* what the database keeps: row counts and checksums of every ModelWatch table before and after
  (:mod:`tests.db.dbstate`) differ only in the tables the documented handling writes (``writes``; empty for a
  refusal: nothing changed at all).

``CASES`` is the table; ``docs/bad_input.md`` is generated from it (``python -m tests.db.test_bad_input``) and
:func:`test_docs_table_matches_the_cases` checks it is current.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.db import dbstate

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "bad_input.md"
SQL = "x'; DROP TABLE model_versions; --"
HTML = "<script>alert('mw')</script>"
TAG = "<img src=x onerror=alert(1)>"
NUL = "bad\x00byte"
UNICODE = "Ünïcødé ✓ 日本語 🚀 \u202eRTL"
LONG = "L" * 5000
T0 = datetime(2008, 10, 1, tzinfo=UTC)
D = timedelta(days=1)


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    entry: str  # the entry point fed
    happens: str  # README: what happens
    sees: str  # README: what the user sees (a fragment of the message the test asserts)
    run: Callable[[Any], str]  # feeds the input; returns the message the user sees
    writes: frozenset[str] = field(default_factory=frozenset)  # tables the documented handling writes


# ---------------------------------------------------------------------------------------------------- the world


@dataclass
class World:
    conn: Any
    uri: str
    tmp: Path
    inbox: Path
    client: Any
    tokens: dict[str, str]
    items: dict[int, int]
    alert_id: int
    fx: Any  # the registered external model version
    booster: Any  # a small LightGBM model on two features
    pg: Any  # the session's PostgreSQL server


def _q(conn, sql: str, params: dict | None = None) -> list[dict]:
    from include.modelwatch.data import storage

    out = storage.fetch_dicts(conn, sql, params)
    conn.rollback()
    return out


def _refused(fn: Callable[[], Any], exc: type[BaseException] | tuple = Exception) -> str:
    """Call ``fn``; it must raise ``exc``: its message."""
    with pytest.raises(exc) as err:
        fn()
    return str(err.value)


def _context(params: dict | None = None, conf: dict | None = None, run_type: str = "manual") -> dict:
    return {
        "params": dict(params or {}),
        "dag_run": SimpleNamespace(conf=conf or {}, run_after=T0, run_type=run_type),
        "run_id": f"{run_type}__bad_input",
        "logical_date": T0,
        "data_interval_start": T0 - D,
        "data_interval_end": T0,
    }


def _sandbox(w: World, **variables):
    from include.tasks import common

    return common.sandboxed(common.Sandbox(w.uri, variables))


def _cli(w: World, *argv: str) -> tuple[int, str]:
    """``python -m include.modelwatch ...`` in-process: (exit code, stdout + stderr)."""
    from include.modelwatch.ops import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main([*argv])
        except SystemExit as exc:  # argparse
            rc = int(exc.code or 0)
    return rc, out.getvalue() + err.getvalue()


def _auth(w: World, user: str = "ada") -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tokens[user]}"}


def _post(w: World, path: str, body: Any, status: int, user: str = "ada") -> str:
    kw = {"content": body, "headers": {**_auth(w, user), "Content-Type": "application/json"}}
    res = w.client.post(f"/modelwatch{path}", **(kw if isinstance(body, str) else {"json": body, "headers": _auth(w)}))
    assert res.status_code == status, res.text
    return res.text


# ---------------------------------------------------------------------------------------------------- features


def _feed(w: World, name: str, df: pd.DataFrame, kind: str = "predictions", csv: bool = False) -> str:
    """Drop ``df`` into the inbox and ingest it: it must be quarantined (recorded with its error, moved aside)."""
    from include.modelwatch.external import example as X
    from include.modelwatch.external import feed

    path = X.write(df, w.inbox / kind / f"{name}.{'csv' if csv else 'parquet'}")
    res = feed.ingest(w.conn, feed.BatchFile(kind, path), w.inbox, run_id="bad_input")
    assert res.status == "quarantined", res
    assert (w.inbox / "quarantine" / kind / path.name).exists() and not path.exists()
    rec = _q(w.conn, "SELECT status, n_written, error FROM ingest_batches WHERE name = %(n)s", {"n": path.name})
    assert rec == [{"status": "quarantined", "n_written": 0, "error": res.error}]
    return str(res.error)


def _live(day: int = 3) -> pd.DataFrame:
    from include.modelwatch.external import example as X

    return X.predictions_of(X.live(day))


def _set(df: pd.DataFrame, col: str, value: Any, rows=slice(0, 3)) -> pd.DataFrame:
    df = df.copy()
    if isinstance(value, str):
        df[col] = df[col].astype(object)
    df.loc[df.index[rows], col] = value
    return df


def _extra_column(w: World) -> str:
    """An extra column is not a feature of the version: the batch loads and the column is not stored."""
    from include.modelwatch.external import example as X
    from include.modelwatch.external import feed

    df = _live(7).assign(broker_note="ignored")
    path = X.write(df, w.inbox / "predictions" / "extra_column.parquet")
    res = feed.ingest(w.conn, feed.BatchFile("predictions", path), w.inbox, run_id="bad_input")
    assert (res.status, res.n_written) == ("loaded", 25), res
    feats = _q(
        w.conn, "SELECT DISTINCT jsonb_object_keys(features) AS k FROM predictions WHERE model_name = 'fx_direction'"
    )
    assert sorted(r["k"] for r in feats) == ["ret_5d", "venue", "vol_21d"]
    return res.describe()


def _register(w: World, spec: dict | str, ref: pd.DataFrame, name: str) -> str:
    """``external register`` from the CLI: exit 1, nothing registered."""
    from include.modelwatch.external import example as X

    spec_path = w.tmp / f"{name}.json"
    spec_path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    ref_path = X.write(ref, w.tmp / f"{name}_reference.csv")
    rc, text = _cli(w, "external", "register", "--spec", str(spec_path), "--reference", str(ref_path), "--uri", w.uri)
    assert rc == 1 and "error: nothing registered" in text, text
    return text


def _reference() -> pd.DataFrame:
    from include.modelwatch.external import example as X

    return X.reference()


def _spec(**kw) -> dict:
    from include.modelwatch.external import example as X

    return X.spec(**kw)


# ---------------------------------------------------------------------------------------------------- scoring


def _bars(n: int = 320, symbol: str = "TST", start: str = "2007-01-02") -> pd.DataFrame:
    from include.modelwatch.data import market

    days = market.nyse_sessions(pd.Timestamp(start), pd.Timestamp(start) + pd.Timedelta(days=int(n * 1.6)))[:n]
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    return pd.DataFrame(
        {
            "symbol": symbol,
            "date": days,
            "open": close * 0.999,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.integers(1_000, 5_000, len(days)).astype(float),
        }
    )


SCORE_FEATURES = ["ret_1d", "volume_z_20"]


def _score(w: World, bars: pd.DataFrame, start: datetime, end: datetime, features=SCORE_FEATURES):
    from include.modelwatch.data import scoring

    return scoring.score_window(w.booster, features, bars, start, end, symbol="TST", label="bt v1")


def _score_zero_volume(w: World) -> str:
    bars = _bars()
    last = bars["date"].iloc[-1]
    bars.loc[bars.index[-1], "volume"] = 0.0
    start = datetime.combine(last.date(), datetime.min.time(), tzinfo=UTC)
    out = _score(w, bars, start, start + D)
    assert len(out.rows) == 1
    row = out.rows[0]
    assert row["data_quality"] == "missing_features" and row["features"]["volume_z_20"] is None
    assert math.isclose(sum(row["probabilities"].values()), 1.0)
    return f"scored, data_quality={row['data_quality']}, missing_features={row['missing_features']}"


def _score_inf_price(w: World) -> str:
    from include.modelwatch.data.market import BarsDataError

    b = _bars_until("2008-05-01", "INF")
    b.loc[b.index[-3], ["close", "high"]] = np.inf
    return _refused(lambda: _ingest_bars(w, "INF", b), BarsDataError)


# ---------------------------------------------------------------------------------------------------- windows


def _drift_frame(w: World, start: datetime, end: datetime) -> pd.DataFrame:
    from include.modelwatch.monitoring.drift import store

    return store.window_frame(w.conn, w.fx.model_name, w.fx.version, start, end)


def _drift(w: World, df: pd.DataFrame):
    from include.modelwatch.monitoring import drift

    return drift.evaluate_window(w.fx.reference_profile, df, drift.DriftConfig.from_dict(None))


def _drift_empty_task(w: World) -> str:
    """drift_hourly's task bodies on a window without predictions: checked, then recorded as empty."""
    from include.tasks import drift as drift_tasks

    ctx = _context({"window_start": "2009-01-05T00:00:00+00:00", "window_end": "2009-01-06T00:00:00+00:00"})
    target = {"model_name": w.fx.model_name, "version": w.fx.version}
    with _sandbox(w):
        checked = drift_tasks.check_window(target, ctx)
        assert (checked["rows"], checked["dq_passed"]) == (0, True)
        assert drift_tasks.path_of(checked) == "record_empty_window"
        done = drift_tasks.record_empty(checked, ctx)
    rows = _q(w.conn, "SELECT status, n_rows FROM drift_windows WHERE window_start = '2009-01-05T00:00:00Z'")
    assert rows == [{"status": "empty", "n_rows": 0}]
    return f"{done['model']}: window recorded as {done['status']}, no drift computed"


def _drift_one_row(w: World) -> str:
    df = _drift_frame(w, FX_DAY0, FX_DAY0 + D).head(1)
    assert len(df) == 1
    res = _drift(w, df)
    assert res.n_rows == 1 and not res.drifted, res.summary()
    return f"evaluated on {res.n_rows} row: drifted={res.drifted} (judged by the reference-null p-values)"


def _drift_single_class(w: World) -> str:
    df = _drift_frame(w, FX_DAY0, FX_DAY0 + D)
    df = df.assign(predicted_label="up", p_up=0.9, p_down=0.1, confidence=0.9)
    res = _drift(w, df)
    pred = [f for f in res.features if f.feature == "predicted_label"]
    assert pred and pred[0].drifted, res.summary()
    return (
        f"predicted_label drifted: {pred[0].test} statistic {pred[0].statistic:.1f}, drift score {res.drift_score:.2f}"
    )


def _perf(w: World, df: pd.DataFrame):
    from include.modelwatch.monitoring import performance as perf
    from include.modelwatch.monitoring.performance import store

    return perf.evaluate_window(
        df,
        start=FX_DAY0,
        end=FX_DAY0 + 3 * D,
        baseline=store.baseline(w.conn, w.fx.model_name, w.fx.version),
        pending_estimates=[],
        model=None,
        features=list(w.fx.features),
        tolerance=0.1,
        horizon_days=1,
        label=w.fx.label,
        classes=list(w.fx.classes),
    )


def _perf_frame(w: World) -> pd.DataFrame:
    from include.modelwatch.monitoring.performance import store

    df = store.load_predictions(
        w.conn, w.fx.model_name, w.fx.version, FX_DAY0 - D, FX_DAY0 + 3 * D, FX_DAY0, classes=list(w.fx.classes)
    )
    w.conn.rollback()
    assert df["realized_label"].notna().sum() == 25
    return df


def _perf_empty(w: World) -> str:
    ev = _perf(w, _perf_frame(w).iloc[:0])
    assert [(s, tf, m["n"], m["accuracy"]) for s, tf, m in ev.snapshots] == [("*", "*", 0, None)]
    assert ev.realized == [] and ev.eval_start is None
    return "one empty snapshot (n=0, every metric empty): nothing to judge"


def _perf_one_row(w: World) -> str:
    ev = _perf(w, _perf_frame(w).head(1))
    assert [(s, tf, m["n"]) for s, tf, m in ev.snapshots] == [("*", "*", 1), ("FX00", "1d", 1)]
    m = ev.snapshots[0][2]
    return f"snapshots of n=1; accuracy {m['accuracy']}; metrics: {sorted(m)}"


def _perf_single_class(w: World) -> str:
    df = _perf_frame(w).assign(realized_label="up")
    ev = _perf(w, df)
    m = ev.snapshots[0][2]
    assert (m["n"], m["support_up"], m["support_down"]) == (25, 25, 0) and m["accuracy"] is not None
    return f"accuracy {m['accuracy']:.2f}, support_down {m['support_down']}, recall_down {m['recall_down']}"


def _queue_window(w: World, start: datetime, end: datetime) -> str:
    from include.modelwatch.active_learning import store
    from include.modelwatch.data import storage

    with storage.transaction(w.conn) as cur:
        got = store.capture(
            cur,
            model_name="m",
            model_version=1,
            symbol=SYMBOL,
            window_start=start,
            window_end=end,
            settings=store.settings_for(w.conn, "m"),
            run_id="bad_input",
        )
    return f"captured {got}"


# ---------------------------------------------------------------------------------------------------- bars


def _ingest_bars(w: World, name: str, bars: pd.DataFrame, run_type: str = "manual") -> str:
    """score_signals' ingest_bars task body on a folder source holding ``bars`` (window 2008-04-01..05-01)."""
    from include.tasks import scoring as scoring_tasks

    folder = w.tmp / f"bars_{name}"
    folder.mkdir()
    sym = str(bars["symbol"].iloc[0])
    bars.drop(columns=["symbol"]).assign(date=lambda d: pd.DatetimeIndex(d["date"]).strftime("%Y-%m-%d")).to_csv(
        folder / f"{sym}.csv", index=False
    )
    variables = {
        "modelwatch_native_models": {"bt": {"target": "direction", "symbols": [sym]}},
        "modelwatch_market_source": f"folder:{folder}",
    }
    ctx = _context(run_type=run_type)
    ctx["data_interval_start"], ctx["data_interval_end"] = (
        datetime(2008, 4, 1, tzinfo=UTC),
        datetime(2008, 5, 1, tzinfo=UTC),
    )
    with _sandbox(w, **variables):
        return str(scoring_tasks.ingest_bars(ctx))


def _bars_until(end: str, symbol: str) -> pd.DataFrame:
    b = _bars(n=480, symbol=symbol, start="2006-09-01")
    return b[b["date"] < pd.Timestamp(end)].reset_index(drop=True)


def _bars_dup(w: World, identical: bool) -> str:
    sym = "DUPI" if identical else "DUPC"
    b = _bars_until("2008-05-01", sym)
    dup = b.iloc[[-5]].copy()
    if not identical:
        dup["close"] = dup["close"] * 1.0  # same close, other volume
        dup["volume"] = dup["volume"] + 1
    b = pd.concat([b, dup]).sort_values("date", kind="stable").reset_index(drop=True)
    if identical:
        n = _ingest_bars(w, sym, b)
        stored = _q(
            w.conn,
            "SELECT count(*) AS n, count(DISTINCT bar_date) AS d FROM market_bars WHERE symbol = %(s)s",
            {"s": sym},
        )
        assert stored[0]["n"] == stored[0]["d"]
        return f"{n} bars inside the window stored once each"
    from include.modelwatch.data.market import BarsDataError

    return _refused(lambda: _ingest_bars(w, sym, b), BarsDataError)


def _bars_unordered(w: World) -> str:
    b = _bars_until("2008-05-01", "UNORD")
    b = pd.concat([b.iloc[-10:], b.iloc[:-10]]).reset_index(drop=True)
    n = _ingest_bars(w, "UNORD", b)
    got = _q(w.conn, "SELECT count(*) AS n FROM market_bars WHERE symbol = 'UNORD'")
    assert got[0]["n"] > int(n) > 0
    return f"sorted; {n} bars inside the window stored"


def _bars_future(w: World) -> str:
    from include.modelwatch.data.market import BarsDataError

    b = _bars_until("2008-05-10", "FUT")
    return _refused(lambda: _ingest_bars(w, "FUT", b, run_type="scheduled"), BarsDataError)


def _bars_high_low(w: World) -> str:
    from include.modelwatch.data.market import BarsDataError

    b = _bars_until("2008-05-01", "HILO")
    i = b.index[-3]
    b.loc[i, ["high", "low"]] = b.loc[i, "low"], b.loc[i, "high"]
    return _refused(lambda: _ingest_bars(w, "HILO", b), BarsDataError)


def _bars_zero_volume(w: World) -> str:
    b = _bars_until("2008-05-01", "ZVOL")
    b.loc[b.index[-3], "volume"] = 0.0
    n = _ingest_bars(w, "ZVOL", b)
    zero = _q(w.conn, "SELECT bar_date FROM market_bars WHERE symbol = 'ZVOL' AND volume = 0")
    assert [r["bar_date"] for r in zero] == [b["date"].iloc[-3].date()]
    return f"kept; {n} bars stored, the zero-volume bar's volume_z_20 is NaN when scored"


# ---------------------------------------------------------------------------------------------------- conf


def _claim(w: World, **conf) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    from include.tasks import retrain

    def go():
        with _sandbox(w):
            retrain.claim(_context(conf=conf))

    return _refused(go, AirflowFailException)


def _rollback(w: World, **conf) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    from include.tasks import rollback

    def go():
        with _sandbox(w):
            plans = rollback.rollback_plans(_context(conf=conf))
            rollback.do_rollbacks(plans, _context(conf=conf))

    return _refused(go, (AirflowFailException, ValueError))


def _drift_window(w: World, **params) -> str:
    from include.tasks import drift as drift_tasks

    def go():
        with _sandbox(w):
            drift_tasks.check_window({"model_name": w.fx.model_name, "version": w.fx.version}, _context(params))

    return _refused(go, ValueError)


# ---------------------------------------------------------------------------------------------------- injection


def _api_trigger(w: World, reason: str) -> str:
    text = _post(w, "/triggers", {"model": "m", "reason": reason, "priority": "low"}, 200)
    stored = _q(w.conn, "SELECT evidence->>'reason' AS r FROM closed_loop_actions ORDER BY action_id DESC LIMIT 1")
    assert stored == [{"r": reason}]
    assert _q(w.conn, "SELECT to_regclass('model_versions') IS NOT NULL AS ok") == [{"ok": True}]
    return text


def _page(w: World, path: str, raw: str) -> str:
    from markupsafe import escape

    res = w.client.get(f"/modelwatch{path}", headers=_auth(w))
    assert res.status_code == 200, res.text[:500]
    at = res.text.find(raw)
    assert at < 0, res.text[max(0, at - 300) : at + 100]
    assert str(escape(raw)) in res.text
    return f"{path} shows {escape(raw)}"


def _cli_trigger(w: World, model: str, reason: str) -> tuple[int, str]:
    return _cli(w, "trigger", "create", model, "--reason", reason, "--uri", w.uri, "--by", "bad_input")


def _label(w: World, item: int, body: dict, status: int) -> str:
    return _post(w, f"/active-learning/items/{w.items[item]}/label", body, status)


def _label_read_back(w: World) -> str:
    res = w.client.get("/modelwatch/active-learning/items", params={"status": "labelled"}, headers=_auth(w))
    assert res.status_code == 200, res.text
    notes = [i["notes"] for i in res.json()["items"]]
    assert notes == [f"{SQL} {HTML}"], notes
    return notes[0]


def _resolve(w: World, note: str) -> str:
    text = _post(w, f"/alerts/{w.alert_id}/resolve", {"note": note}, 200)
    assert _q(w.conn, "SELECT resolution AS n FROM alerts WHERE alert_id = %(a)s", {"a": w.alert_id}) == [
        {"n": f"by ada: {note}"}
    ]
    return text


# ---------------------------------------------------------------------------------------------------- migrations


def _fresh_db(w: World, name: str):
    """A new empty database on the session's server (dropped first if a previous run left it)."""
    from include.modelwatch.data import storage

    admin = storage.connect(w.pg.airflow_conn_uri("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()
    w.pg.ensure_database(name)
    return storage.connect(w.pg.airflow_conn_uri(name))


def _migration_edited(w: World) -> str:
    from include.modelwatch.ops import migrations

    conn = _fresh_db(w, "bad_input_mig_edit")
    d = w.tmp / "mig_edit"
    d.mkdir()
    (d / "001_a.sql").write_text("CREATE TABLE a (id int);")
    migrations.migrate(conn, d)
    (d / "001_a.sql").write_text("CREATE TABLE a (id bigint);")
    (d / "002_b.sql").write_text("CREATE TABLE b (id int);")
    before = dbstate.snapshot(conn)
    msg = _refused(lambda: migrations.migrate(conn, d), migrations.MigrationError)
    assert dbstate.snapshot(conn) == before  # 002 not applied either
    conn.close()
    return msg


def _migration_future(w: World) -> str:
    from include.modelwatch.ops import heartbeat, migrations

    conn = _fresh_db(w, "bad_input_mig_future")
    newer = w.tmp / "mig_newer"
    newer.mkdir()
    code = migrations.discover()
    for mig in code:
        (newer / mig.path.name).write_text(mig.sql)
    (newer / "999_from_the_future.sql").write_text("CREATE TABLE from_the_future (id int);")
    migrations.migrate(conn, newer)
    before = dbstate.snapshot(conn)
    msg = _refused(lambda: migrations.migrate(conn), migrations.MigrationError)
    beat = _refused(lambda: heartbeat.schema_version(conn), RuntimeError)
    assert "999_from_the_future" in beat
    assert dbstate.snapshot(conn) == before
    conn.close()
    return msg


# ---------------------------------------------------------------------------------------------------- the table

FX_DAY0 = datetime(2008, 4, 1, tzinfo=UTC)
SYMBOL = "^GSPC"
F = "features"
W = "windows"
B = "bars"
C = "conf"
I = "injection"  # noqa: E741
M = "migrations"
QUARANTINE = frozenset({"ingest_batches"})
FEED = "external feed (inbox file, `ingest_predictions`)"
REG = "`external register` (CLI)"


def _c(id, group, entry, happens, sees, run, writes=()):  # noqa: A002
    return Case(id, group, entry, happens, sees, run, frozenset(writes))


CASES: list[Case] = [
    # ---- features
    _c(
        "feature_nan",
        F,
        FEED,
        "batch quarantined whole",
        "column ret_5d: empty (null/NaN) values at rows 0, 1, 2",
        lambda w: _feed(w, "nan", _set(_live(), "ret_5d", np.nan)),
        QUARANTINE,
    ),
    _c(
        "feature_inf",
        F,
        FEED,
        "batch quarantined whole",
        "column ret_5d: values outside the registered range",
        lambda w: _feed(w, "inf", _set(_live(), "ret_5d", np.inf)),
        QUARANTINE,
    ),
    _c(
        "feature_huge",
        F,
        FEED,
        "batch quarantined whole",
        "column vol_21d: values outside the registered range",
        lambda w: _feed(w, "huge", _set(_live(), "vol_21d", 1e300)),
        QUARANTINE,
    ),
    _c(
        "feature_missing_column",
        F,
        FEED,
        "batch quarantined whole",
        "missing column(s) ['vol_21d']",
        lambda w: _feed(w, "missing", _live().drop(columns=["vol_21d"])),
        QUARANTINE,
    ),
    _c(
        "feature_renamed_column",
        F,
        FEED,
        "batch quarantined whole",
        "missing column(s) ['ret_5d']",
        lambda w: _feed(w, "renamed", _live().rename(columns={"ret_5d": "return_5d"})),
        QUARANTINE,
    ),
    _c(
        "feature_extra_column",
        F,
        FEED,
        "batch loaded; the extra column is not stored",
        "loaded 25 of 25 row(s) for fx_direction v1",
        _extra_column,
        {"ingest_batches", "predictions"},
    ),
    _c(
        "feature_wrong_dtype",
        F,
        FEED,
        "batch quarantined whole",
        "column ret_5d: wrong dtype",
        lambda w: _feed(w, "dtype", _set(_live(), "ret_5d", "abc"), csv=True),
        QUARANTINE,
    ),
    _c(
        "feature_text_in_csv",
        F,
        FEED,
        "batch quarantined whole",
        "column vol_21d: wrong dtype",
        lambda w: _feed(w, "csvtext", _set(_live(), "vol_21d", "12%", slice(4, 5)), csv=True),
        QUARANTINE,
    ),
    _c(
        "probability_nan",
        F,
        FEED,
        "batch quarantined whole",
        "column p_up: empty (null/NaN) values",
        lambda w: _feed(w, "pnan", _set(_live(), "p_up", np.nan)),
        QUARANTINE,
    ),
    _c(
        "probability_sum",
        F,
        FEED,
        "batch quarantined whole",
        "probabilities do not sum to 1 at rows 0, 1, 2",
        lambda w: _feed(w, "psum", _set(_live(), "p_down", 0.9)),
        QUARANTINE,
    ),
    _c(
        "category_unknown_level",
        F,
        FEED,
        "batch quarantined whole",
        "column venue: values outside the registered levels",
        lambda w: _feed(w, "level", _set(_live(), "venue", "XLON")),
        QUARANTINE,
    ),
    _c(
        "batch_unknown_model",
        C,
        FEED,
        "batch quarantined whole",
        "unknown model 'no_such_model'",
        lambda w: _feed(w, "model", _live().assign(model_name="no_such_model")),
        QUARANTINE,
    ),
    _c(
        "batch_unknown_version",
        C,
        FEED,
        "batch quarantined whole",
        "fx_direction has no version 7",
        lambda w: _feed(w, "version", _live().assign(model_version=7)),
        QUARANTINE,
    ),
    _c(
        "reference_nan_probability",
        F,
        REG,
        "nothing registered",
        "row 0, column p_up: probability nan is not in [0, 1]",
        lambda w: _register(w, _spec(), _set(_reference(), "p_up", np.nan), "ref_nan"),
    ),
    _c(
        "reference_missing_feature",
        F,
        REG,
        "nothing registered",
        "missing column(s) ['vol_21d']",
        lambda w: _register(w, _spec(), _reference().drop(columns=["vol_21d"]), "ref_missing"),
    ),
    _c(
        "reference_wrong_dtype",
        F,
        REG,
        "nothing registered",
        "column ret_5d: 'abc' is not a number",
        lambda w: _register(w, _spec(), _set(_reference(), "ret_5d", "abc"), "ref_dtype"),
    ),
    _c(
        "reference_inf_feature",
        F,
        REG,
        "nothing registered",
        "row 0, column ret_5d: inf is not a finite number",
        lambda w: _register(w, _spec(), _set(_reference(), "ret_5d", np.inf), "ref_inf"),
    ),
    _c(
        "spec_malformed_json",
        C,
        REG,
        "nothing registered",
        "spec_json.json: not valid json",
        lambda w: _register(w, '{"name": "fx_direction", "classes": [', _reference(), "spec_json"),
    ),
    _c(
        "spec_unknown_field",
        C,
        REG,
        "nothing registered",
        "unknown field(s) ['clases']",
        lambda w: _register(w, {**_spec(), "clases": ["a", "b"]}, _reference(), "spec_field"),
    ),
    _c(
        "scoring_zero_volume",
        F,
        "`data.scoring.score_window`",
        "scored; marked `missing_features` with the feature",
        "missing_features=['volume_z_20']",
        _score_zero_volume,
    ),
    _c(
        "scoring_short_history",
        W,
        "`data.scoring.score_window`",
        "refused",
        "bt v1 TST window 2007-03-01..2007-03-02: only",
        lambda w: _refused(
            lambda: _score(w, _bars(60), datetime(2007, 3, 1, tzinfo=UTC), datetime(2007, 3, 2, tzinfo=UTC)), ValueError
        ),
    ),
    _c(
        "scoring_unknown_feature",
        F,
        "`data.scoring.score_window`",
        "refused",
        "unknown feature(s) ['not_a_feature']",
        lambda w: _refused(lambda: _score(w, _bars(), T0, T0 + D, ["ret_1d", "not_a_feature"]), (KeyError, ValueError)),
    ),
    # ---- windows
    _c(
        "drift_empty_window",
        W,
        "drift_hourly `check_window` + `record_empty`",
        "window recorded as empty, no drift rows",
        "window recorded as empty",
        _drift_empty_task,
        {"drift_windows"},
    ),
    _c(
        "drift_one_row_window",
        W,
        "`monitoring.drift.evaluate_window`",
        "evaluated; nothing drifts on one row",
        "drifted=False",
        _drift_one_row,
    ),
    _c(
        "drift_single_class_window",
        W,
        "`monitoring.drift.evaluate_window`",
        "the prediction drifts (one class only)",
        "predicted_label drifted",
        _drift_single_class,
    ),
    _c(
        "performance_empty_window",
        W,
        "`monitoring.performance.evaluate_window`",
        "no snapshot, nothing compared",
        "nothing to judge",
        _perf_empty,
    ),
    _c(
        "performance_one_row_window",
        W,
        "`monitoring.performance.evaluate_window`",
        "one snapshot of one prediction",
        "n=1",
        _perf_one_row,
    ),
    _c(
        "performance_single_class_window",
        W,
        "`monitoring.performance.evaluate_window`",
        "metrics of the one class; the absent class has support 0",
        "support_down 0",
        _perf_single_class,
    ),
    _c(
        "label_queue_empty_window",
        W,
        "`active_learning.store.capture`",
        "nothing queued",
        "captured {}",
        lambda w: _queue_window(w, datetime(2009, 1, 5, tzinfo=UTC), datetime(2009, 1, 6, tzinfo=UTC)),
    ),
    # ---- bars
    _c(
        "bars_duplicate_identical",
        B,
        "score_signals `ingest_bars` (folder source)",
        "duplicate dropped, bars stored once",
        "stored once each",
        lambda w: _bars_dup(w, True),
        {"market_bars"},
    ),
    _c(
        "bars_duplicate_conflicting",
        B,
        "score_signals `ingest_bars` (folder source)",
        "refused, nothing stored",
        "DUPC … 2 conflicting bars for the same date",
        lambda w: _bars_dup(w, False),
    ),
    _c(
        "bars_out_of_order",
        B,
        "score_signals `ingest_bars` (folder source)",
        "sorted, stored",
        "sorted;",
        _bars_unordered,
        {"market_bars"},
    ),
    _c(
        "bars_future_dated",
        B,
        "score_signals `ingest_bars` (folder source, scheduled run)",
        "refused, nothing stored",
        "FUT 2008-05-01: bar dated after as_of 2008-04-30",
        _bars_future,
    ),
    _c(
        "bars_high_below_low",
        B,
        "score_signals `ingest_bars` (folder source)",
        "refused, nothing stored",
        "high < low",
        _bars_high_low,
    ),
    _c(
        "bars_zero_volume",
        B,
        "score_signals `ingest_bars` (folder source)",
        "kept and stored; noted in the log",
        "kept;",
        _bars_zero_volume,
        {"market_bars"},
    ),
    _c(
        "bars_inf_price",
        B,
        "score_signals `ingest_bars` (folder source)",
        "refused, nothing stored",
        "INF … non-finite price",
        _score_inf_price,
    ),
    # ---- conf
    _c(
        "retrain_unknown_model",
        C,
        "retrain_gated `claim` (run conf)",
        "run fails at once, nothing written",
        "no_such_model: no champion registered",
        lambda w: _claim(w, model_name="no_such_model", reason="test"),
    ),
    _c(
        "retrain_blank_reason",
        C,
        "retrain_gated `claim` (run conf)",
        "run fails at once, nothing written",
        "needs both model_name and a non-blank reason",
        lambda w: _claim(w, model_name="m", reason="  "),
    ),
    _c(
        "retrain_unknown_mode",
        C,
        "retrain_gated `claim` (run conf)",
        "run fails at once, nothing written",
        "retrain_mode must be one of",
        lambda w: _claim(w, model_name="m", reason="x", retrain_mode="partial"),
    ),
    _c(
        "rollback_unknown_version",
        C,
        "rollback_model (run conf)",
        "run fails at once, nothing written",
        "m has no version 99",
        lambda w: _rollback(w, model_name="m", target_version=99, reason="test"),
    ),
    _c(
        "rollback_unknown_model",
        C,
        "rollback_model (run conf)",
        "run fails at once, nothing written",
        "no_such_model: no such model",
        lambda w: _rollback(w, model_name="no_such_model", target_version=1, reason="test"),
    ),
    _c(
        "rollback_negative_period",
        C,
        "rollback_model (run conf)",
        "run fails at once, nothing written",
        "period_days must be a positive integer",
        lambda w: _rollback(w, model_name="m", period_days=-5),
    ),
    _c(
        "window_inverted",
        C,
        "drift_hourly params `window_start`/`window_end`",
        "task fails, nothing written",
        "must be after window_start",
        lambda w: _drift_window(w, window_start="2008-05-01", window_end="2008-04-01"),
    ),
    _c(
        "window_malformed",
        C,
        "drift_hourly params `window_start`/`window_end`",
        "task fails, nothing written",
        "window_start 'last tuesday' is not an ISO 8601 timestamp",
        lambda w: _drift_window(w, window_start="last tuesday", window_end="2008-04-01"),
    ),
    _c(
        "window_half_set",
        C,
        "drift_hourly params `window_start`/`window_end`",
        "task fails, nothing written",
        "window_start is set but window_end is not",
        lambda w: _drift_window(w, window_start="2008-04-01"),
    ),
    _c(
        "cli_trigger_unknown_model",
        C,
        "`trigger create` (CLI)",
        "exit 1, nothing written",
        "no trigger created: no_such_model: no champion registered",
        lambda w: _cli_trigger(w, "no_such_model", "x")[1],
    ),
    _c(
        "api_rollback_unknown_version",
        C,
        "`POST /rollbacks`",
        "404, nothing written",
        "model m has no version 99",
        lambda w: _post(w, "/rollbacks", {"model": "m", "target_version": 99, "reason": "x"}, 404),
    ),
    _c(
        "api_rollback_negative_version",
        C,
        "`POST /rollbacks`",
        "422, nothing written",
        '"loc":["body","target_version"] … greater than or equal to 1',
        lambda w: _post(w, "/rollbacks", {"model": "m", "target_version": -1, "reason": "x"}, 422),
    ),
    _c(
        "api_trigger_malformed_json",
        C,
        "`POST /triggers`",
        "422, nothing written",
        "JSON decode error",
        lambda w: _post(w, "/triggers", '{"model": "m", "reason": ', 422),
    ),
    _c(
        "api_trigger_unknown_model",
        C,
        "`POST /triggers`",
        "409, nothing written",
        "no_such_model: no champion registered",
        lambda w: _post(w, "/triggers", {"model": "no_such_model", "reason": "x"}, 409),
    ),
    # ---- injection
    _c(
        "reason_sql_html_api",
        I,
        "`POST /triggers` reason",
        "stored verbatim (parameterized)",
        '"status":"pending"',
        lambda w: _api_trigger(w, f"{SQL} {HTML}"),
        {"retraining_triggers", "closed_loop_actions"},
    ),
    _c(
        "reason_shown_escaped",
        I,
        "alerts-and-triggers page",
        "rendered escaped",
        "&lt;script&gt;",
        lambda w: _page(w, "/alerts-and-triggers", HTML),
    ),
    _c(
        "reason_unicode_cli",
        I,
        "`trigger create --reason` (CLI) by a second person while a manual retrain is pending",
        "refused, nothing written (one open manual request per model)",
        "a manual retrain is already pending: trigger … this request by cli:bad_input was not recorded",
        lambda w: _cli_trigger(w, "m", UNICODE)[1],
    ),
    _c(
        "reason_nul_api",
        I,
        "`POST /triggers` reason",
        "422, nothing written",
        '"loc":["body","reason"] … must not contain NUL (0x00) characters',
        lambda w: _post(w, "/triggers", {"model": "m", "reason": NUL}, 422),
    ),
    _c(
        "reason_nul_cli",
        I,
        "`trigger create --reason` (CLI)",
        "exit 1, nothing written",
        "reason must not contain NUL",
        lambda w: _cli_trigger(w, "m", NUL)[1],
    ),
    _c(
        "reason_too_long_api",
        I,
        "`POST /triggers` reason",
        "422, nothing written",
        '"loc":["body","reason"] … at most 2000 characters',
        lambda w: _post(w, "/triggers", {"model": "m", "reason": LONG}, 422),
    ),
    _c(
        "reason_nul_rollback",
        I,
        "rollback_model reason (run conf)",
        "run fails at once, nothing written",
        "reason must not contain NUL",
        lambda w: _rollback(w, model_name="m", target_version=1, reason=NUL),
    ),
    _c(
        "model_name_sql_api",
        I,
        "`POST /triggers` model",
        "409, nothing written",
        f"{SQL}: no champion registered",
        lambda w: json.loads(_post(w, "/triggers", {"model": SQL, "reason": "x"}, 409))["detail"],
    ),
    _c(
        "model_name_html_page",
        I,
        "model page `/models/{model}`",
        "404 page, the name escaped",
        "404 … Unknown model &#39;&lt;img src=x onerror=alert(1)&gt;&#39;",
        lambda w: _model_page(w),
    ),
    _c(
        "model_name_sql_spec",
        I,
        REG,
        "nothing registered",
        "'name' must start with a letter",
        lambda w: _register(w, _spec(name=SQL), _reference(), "spec_sql"),
    ),
    _c(
        "note_sql_html_resolve",
        I,
        "`POST /alerts/{id}/resolve` note",
        "stored verbatim",
        '"status":"resolved"',
        lambda w: _resolve(w, f"{SQL} {HTML} {UNICODE}"),
        {"alerts", "notifications"},
    ),
    _c(
        "note_shown_escaped",
        I,
        "alerts-and-triggers page",
        "rendered escaped",
        "&lt;script&gt;",
        lambda w: _page(w, "/alerts-and-triggers?status=resolved", HTML),
    ),
    _c(
        "label_html",
        I,
        "`POST /active-learning/items/{id}/label` label",
        "422, nothing written",
        "\"loc\":[\"body\",\"label\"] … Input should be 'BUY', 'SELL' or 'HOLD'",
        lambda w: _label(w, 0, {"label": HTML}, 422),
    ),
    _c(
        "label_note_sql_html",
        I,
        "`POST /active-learning/items/{id}/label` note",
        "stored verbatim",
        '"status":"labelled"',
        lambda w: _label(w, 1, {"label": "SELL", "note": f"{SQL} {HTML}"}, 200),
        {"active_learning_queue"},
    ),
    _c(
        "label_note_nul_cli",
        I,
        "`label set --note` (CLI)",
        "exit 1, nothing written",
        "error: item … note must not contain NUL (0x00) characters",
        lambda w: _cli(w, "label", "set", str(w.items[4]), "SELL", "--note", NUL, "--uri", w.uri, "--by", "x")[1],
    ),
    _c(
        "ab_reason_nul_cli",
        I,
        "`ab start --reason` (CLI)",
        "exit 1, nothing written",
        "error: no A/B test started: m: reason must not contain NUL (0x00) characters",
        lambda w: _cli(w, "ab", "start", "m", "--challenger", "1", "--reason", NUL, "--uri", w.uri, "--by", "x")[1],
    ),
    _c(
        "label_note_read_verbatim",
        I,
        "`GET /active-learning/items` note",
        "read back verbatim (JSON)",
        f"{SQL} {HTML}",
        _label_read_back,
    ),
    _c(
        "label_note_nul",
        I,
        "`POST /active-learning/items/{id}/label` note",
        "422, nothing written",
        '"loc":["body","note"] … must not contain NUL (0x00) characters',
        lambda w: _label(w, 2, {"label": "SELL", "note": NUL}, 422),
    ),
    # ---- migrations
    _c(
        "migration_edited",
        M,
        "`db migrate`",
        "refused, nothing applied",
        "001_a.sql was edited after it was applied",
        _migration_edited,
    ),
    _c(
        "schema_from_the_future",
        M,
        "`db migrate`, healthcheck",
        "refused, nothing applied",
        "schema version 999 (from_the_future) is newer than this code",
        _migration_future,
    ),
]


def _model_page(w: World) -> str:

    from urllib.parse import quote

    res = w.client.get(f"/modelwatch/models/{quote(TAG, safe='')}", headers=_auth(w))
    assert TAG not in res.text, res.text[:500]
    return f"{res.status_code} {res.text[:2000]}"


# ---------------------------------------------------------------------------------------------------- fixtures

from tests.db import test_api_app as app_fixtures  # noqa: E402

airflow_app, client, tokens = app_fixtures.airflow_app, app_fixtures.client, app_fixtures.tokens


def _booster():
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(300, 2)), columns=SCORE_FEATURES)
    y = rng.integers(0, 3, 300)
    return lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(x, y), num_boost_round=3)


@pytest.fixture(scope="module")
def world(pg, monitoring_uri, client, tokens, tmp_path_factory) -> World:
    from include.modelwatch import registry
    from include.modelwatch.data import storage
    from include.modelwatch.external import example as X
    from include.modelwatch.external import feed, register, schema
    from include.modelwatch.loop import alerts
    from tests.db import test_api_labels as labels

    tmp = tmp_path_factory.mktemp("bad_input")
    inbox = tmp / "inbox"
    with storage.session(monitoring_uri) as conn:
        dbstate.empty_tables(conn)
        mv = registry.register_version(
            conn,
            model_name="m",
            algorithm="lightgbm",
            artifact=b"v1",
            artifact_dir=tmp,
            features=["ret_1d", "vol_5d"],
            classes=["SELL", "HOLD", "BUY"],
            train_end=date(2008, 9, 1),
        )
        registry.set_alias(conn, "m", "champion", mv.version, reason="bad input corpus", changed_at=T0 - 30 * D)
        with storage.transaction(conn) as cur:
            for i, p in enumerate(labels.PROBABILITIES):
                labels.predict(cur, mv.version, labels.DAY1 + i * D, p)
            from include.modelwatch.active_learning import store as al

            al.capture(
                cur,
                model_name="m",
                model_version=mv.version,
                symbol=SYMBOL,
                window_start=labels.DAY1,
                window_end=labels.DAY1 + 5 * D,
                settings=al.settings_for(conn, "m"),
                run_id="bad_input",
            )
            alert = alerts.raise_alert(
                cur,
                model_name="m",
                model_version=1,
                kind="drift",
                severity="critical",
                title="drift alert",
                message="bad input corpus",
                window_start=T0 - D,
                window_end=T0,
                score=0.4,
            )
        ids = {r["ts"]: r["item_id"] for r in _q(conn, "SELECT item_id, ts FROM active_learning_queue")}
        items = {i: ids[labels.DAY1 + i * D] for i in (0, 1, 2, 4)}
        ref = X.write(X.reference(), tmp / "reference.parquet")
        fx = register.register_external(conn, schema.parse_spec(X.spec()), ref, by="cli:bad_input").model
        day0 = X.live(0)
        for kind, df in (("predictions", X.predictions_of(day0)), ("outcomes", X.outcomes_of(day0))):
            path = X.write(df, inbox / kind / f"day0_{kind}.parquet")
            assert feed.ingest(conn, feed.BatchFile(kind, path), inbox, run_id="seed").status == "loaded"
        w = World(conn, monitoring_uri, tmp, inbox, client, tokens, items, alert.alert_id, fx, _booster(), pg)
        yield w


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(world: World, case: Case) -> None:
    before = dbstate.snapshot(world.conn)
    message = case.run(world)
    world.conn.rollback()
    after = dbstate.snapshot(world.conn)
    for part in case.sees.split(" … "):
        assert part in message, message
    assert dbstate.changed(before, after) == set(case.writes), message


def test_the_corpus_has_forty_cases_in_every_group() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) >= 40
    assert {c.group for c in CASES} == {F, W, B, C, I, M}


def table() -> str:
    """The README table of the corpus."""
    lines = [
        "| case | input fed to | what happens | what the user sees (the message holds) |",
        "|---|---|---|---|",
    ]
    for c in CASES:
        sees = c.sees.replace("|", "\\|")
        lines.append(f"| `{c.id}` ({c.group}) | {c.entry} | {c.happens} | `{sees}` |")
    return "\n".join(lines) + "\n"


def test_docs_table_matches_the_cases() -> None:
    assert DOC.read_text().split("<!-- table -->\n", 1)[1] == table(), "run: python -m tests.db.test_bad_input"


if __name__ == "__main__":
    head = DOC.read_text().split("<!-- table -->\n", 1)[0] if DOC.exists() else "# Bad input\n\n"
    DOC.write_text(head + "<!-- table -->\n" + table())
    sys.stdout.write(table())
