"""The prediction feed of external models: the drop-folder contract, batch validation and loading.

Contract (README, "Monitor your own model"). The platform drops Parquet or CSV files into the inbox
(``$MODELWATCH_INBOX_DIR``, default ``.modelwatch/inbox``)::

    inbox/predictions/<any name>.parquet|.csv   one model per file: model_name, [model_version], ts, symbol,
                                                [timeframe], every feature, p_<class> for every class,
                                                [predicted_label] (else the most probable class)
    inbox/outcomes/<any name>.parquet|.csv      model_name, ts, symbol, [timeframe], realized_label,
                                                [realized_return], [matured_at] (else ts + horizon_days)

Or, the second shape, it INSERTs each batch's rows into the table ``ingest_staging`` (migration 019) in one
transaction under one ``batch`` key: the same columns, with the features and the class probabilities as JSON
objects (``{"ret_5d": 0.01, ...}``, ``{"down": 0.4, "up": 0.6}``). :func:`staged_frame` turns a staged batch into
the frame a dropped file would be, and from there both shapes take the same path.

A batch is validated whole with Great Expectations against the version's stored feature schema (ranges and
levels from its registration, :mod:`schema`), plus the checks GX has no expectation for (one model per file,
timestamps, probabilities summing to 1, duplicate keys, outcomes without a prediction). A bad batch is refused
whole with an error naming the file, the column and the first offending rows (numbered from 0, the first data
row): it is moved to
``inbox/quarantine/<kind>/`` beside a ``.error.txt`` and recorded in ``ingest_batches`` with the error, and
nothing else changes. A good batch is loaded in one transaction: its predictions replace those of the same
(model version, symbol, timeframe) on the batch's days, so a file dropped twice, or corrected and dropped again,
leaves exactly its rows for those symbols and days (idempotent per interval; other symbols' rows of the same day,
e.g. from a file per symbol, stay); outcomes are joined to every version's prediction of that
(symbol, ts). The file then moves to ``inbox/processed/<kind>/``; a staged batch's rows leave ``ingest_staging``
in the transaction that loads them (or that records their quarantine: they are kept as
``inbox/quarantine/staged/<kind>/<batch>.csv``).

Write a file under a name starting with ``.`` and rename it when complete: dotfiles are never picked up, so a
half-copied file is never read.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch import registry
from include.modelwatch.data import signals
from include.modelwatch.data.storage import fetch_dicts, transaction
from include.modelwatch.external.register import PROB_SUM_TOLERANCE, file_sha256, read_frame
from include.modelwatch.vocabulary import prob_columns

INBOX_ENV = "MODELWATCH_INBOX_DIR"
INBOX_DEFAULT = ".modelwatch/inbox"
PREDICTIONS, OUTCOMES = "predictions", "outcomes"
KINDS: tuple[str, ...] = (PREDICTIONS, OUTCOMES)
SUFFIXES = (".parquet", ".pq", ".csv")
PROCESSED, QUARANTINE = "processed", "quarantine"
DEFAULT_TIMEFRAME = "1d"
SOURCE_FOLDER, SOURCE_TABLE = "folder", "table"


class BatchRejected(ValueError):
    """A batch refused whole; ``str()`` names the file, and the column and rows where it can."""

    def __init__(self, message: str, *, model: str | None = None, version: int | None = None, details=None):
        super().__init__(message)
        self.model = model
        self.version = version
        self.details = dict(details or {})


@dataclass(frozen=True)
class BatchFile:
    kind: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": str(self.path)}


@dataclass
class BatchResult:
    kind: str
    name: str
    status: str  # 'loaded' | 'quarantined'
    model: str | None = None
    version: int | None = None
    n_rows: int = 0
    n_written: int = 0
    interval: tuple[str, str] | None = None
    error: str | None = None
    moved_to: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    def describe(self) -> str:
        if self.status == "quarantined":
            return f"{self.kind} batch {self.name}: QUARANTINED: {self.error}"
        span = f" {self.interval[0]}..{self.interval[1]}" if self.interval else ""
        return (
            f"{self.kind} batch {self.name}: loaded {self.n_written} of {self.n_rows} row(s) for "
            f"{self.model} v{self.version}{span}"
        )


def inbox_dir(env: Mapping[str, str] | None = None) -> Path:
    """The drop folder: ``$MODELWATCH_INBOX_DIR`` or :data:`INBOX_DEFAULT` (every worker must reach it)."""
    env = os.environ if env is None else env
    return Path(env.get(INBOX_ENV) or INBOX_DEFAULT)


def pending_files(inbox: Path) -> list[BatchFile]:
    """Files waiting in ``inbox/<kind>/``: predictions first, then outcomes, each by name."""
    out = []
    for kind in KINDS:
        folder = inbox / kind
        if folder.is_dir():
            out += [
                BatchFile(kind, p)
                for p in sorted(folder.iterdir())
                if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
            ]
    return out


def move(batch: BatchFile, inbox: Path, to: str, error: str | None = None) -> Path:
    """Move a handled file to ``inbox/<to>/<kind>/`` (a quarantined one beside ``<name>.error.txt``)."""
    dest_dir = inbox / to / batch.kind
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / batch.name
    shutil.move(str(batch.path), dest)
    if error is not None:
        (dest_dir / f"{batch.name}.error.txt").write_text(error + "\n")
    return dest


# ----------------------------------------------------------------------------------------------- validation


def _rows(positions: Sequence[Any], k: int = 5) -> str:
    shown = ", ".join(str(p) for p in list(positions)[:k])
    return f"row {shown}" if len(positions) == 1 else f"rows {shown}{', ...' if len(positions) > k else ''}"


def _first(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)]


def batch_model(df: pd.DataFrame, name: str) -> tuple[str, int | None]:
    """The one model (and optional version) a batch is for, or a BatchRejected naming the file."""
    if "model_name" not in df.columns:
        raise BatchRejected(f"{name}: missing column model_name (every batch names its model)")
    names = df["model_name"].dropna().astype(str).unique().tolist()
    if df["model_name"].isna().any():
        raise BatchRejected(f"{name}: column model_name: empty at {_rows(_first(df['model_name'].isna().to_numpy()))}")
    if len(names) != 1:
        raise BatchRejected(f"{name}: column model_name: one model per file, found {sorted(names)[:5]}")
    version = None
    if "model_version" in df.columns:
        versions = pd.to_numeric(df["model_version"], errors="coerce")
        if versions.isna().any() or versions.nunique() != 1:
            raise BatchRejected(f"{name}: column model_version: one integer version per file", model=names[0])
        version = int(versions.iloc[0])
    return names[0], version


def resolve_version(conn, model: str, version: int | None, name: str) -> registry.ModelVersion:
    """The registered external version a batch is for (its champion when the file names none)."""
    info = registry.model_info(conn, model)
    if info is None:
        known = [m["model_name"] for m in registry.monitored_models(conn, registry.EXTERNAL)]
        raise BatchRejected(f"{name}: unknown model {model!r}; registered external models: {known}", model=model)
    if info["origin"] != registry.EXTERNAL:
        raise BatchRejected(
            f"{name}: model {model} is trained and scored by ModelWatch; batches are for external models", model=model
        )
    if version is None:
        version = registry.resolve_alias(conn, model, registry.CHAMPION)
        if version is None:
            raise BatchRejected(f"{name}: model {model} has no champion; name the model_version", model=model)
    try:
        mv = registry.get_version(conn, model, version)
    except registry.RegistryError as exc:
        raise BatchRejected(f"{name}: {exc}", model=model, version=version) from exc
    if mv.status != registry.ACTIVE:
        raise BatchRejected(
            f"{name}: {mv.label} is {mv.status}; batches are accepted for versions holding an alias",
            model=model,
            version=version,
        )
    return mv


def _timestamps(df: pd.DataFrame, column: str, name: str, mv: registry.ModelVersion) -> pd.Series:
    ts = pd.to_datetime(df[column], utc=True, errors="coerce")
    bad = ts.isna().to_numpy()
    if bad.any():
        rows = _first(bad)
        raise BatchRejected(
            f"{name}: column {column}: not a timestamp at {_rows(rows)} ({df[column].iloc[rows[0]]!r})",
            model=mv.model_name,
            version=mv.version,
        )
    return ts


#: The failure a refused batch's error leads with: a missing column, then a wrong dtype, then empty values, ...
_ORDER = (
    "expect_column_to_exist",
    "expect_table_row_count_to_be_between",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_between",
)


def _gx_check(df: pd.DataFrame, columns: list, name: str, mv: registry.ModelVersion) -> None:
    from include.modelwatch.data.quality import FrameSpec, validate_frame

    report = validate_frame(df, FrameSpec(columns=tuple(columns), min_rows=1))
    rank = {e: i for i, e in enumerate(_ORDER)}
    failures = sorted(report.failures, key=lambda f: rank.get(f.expectation, len(rank)))
    if not failures:
        return
    missing = [f.column for f in failures if f.expectation == "expect_column_to_exist"]
    if missing:
        raise BatchRejected(
            f"{name}: missing column(s) {missing} ({mv.label} expects {[c.name for c in columns]})",
            model=mv.model_name,
            version=mv.version,
            details={"failures": [f.describe() for f in failures]},
        )
    f = failures[0]
    what = {
        "expect_column_values_to_not_be_null": "empty (null/NaN) values",
        "expect_column_values_to_be_in_type_list": f"wrong dtype {f.observed.get('observed_value')!r}, "
        "expected a number",
        "expect_column_values_to_be_between": "values outside the registered range",
        "expect_column_values_to_be_in_set": "values outside the registered levels",
        "expect_table_row_count_to_be_between": "no rows",
    }.get(f.expectation, f.expectation)
    where = f" at {_rows(f.observed['rows'])}" if f.observed.get("rows") else ""
    shown = (
        f.observed.get("partial_unexpected_list") if f.expectation != "expect_column_values_to_not_be_null" else None
    )
    sample = f" (e.g. {shown[:3]})" if shown else ""
    more = f"; {len(failures) - 1} more failed check(s)" if len(failures) > 1 else ""
    raise BatchRejected(
        f"{name}: column {f.column or '(table)'}: {what}{where}{sample} [GX {f.expectation}]{more}",
        model=mv.model_name,
        version=mv.version,
        details={"failures": [x.describe() for x in failures]},
    )


def prediction_columns(mv: registry.ModelVersion) -> list:
    """The Great Expectations column checks of a prediction batch of ``mv`` (from its stored feature schema)."""
    from include.modelwatch.data.quality import ColumnSpec

    cols = [
        ColumnSpec("ts", kind="categorical", max_null_share=0.0),
        ColumnSpec("symbol", kind="categorical", max_null_share=0.0),
    ]
    for f in mv.feature_schema or []:
        if f["kind"] == "numeric":
            cols.append(
                ColumnSpec(f["name"], min_value=f["min"], max_value=f["max"], max_null_share=f["max_null_share"])
            )
        else:
            cols.append(
                ColumnSpec(
                    f["name"], kind="categorical", allowed=tuple(f["levels"]), max_null_share=f["max_null_share"]
                )
            )
    cols += [ColumnSpec(p, min_value=0.0, max_value=1.0, max_null_share=0.0) for p in prob_columns(mv.classes)]
    return cols


def _categories_as_text(df: pd.DataFrame, mv: registry.ModelVersion) -> pd.DataFrame:
    """Category features as text (levels are stored as text; a file may hold them as integers)."""
    out = df.copy()
    for f in mv.categorical_features:
        if f in out.columns:
            out[f] = out[f].map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return out


def validate_predictions(df: pd.DataFrame, mv: registry.ModelVersion, name: str) -> pd.DataFrame:
    """The batch as load-ready rows (ts UTC, timeframe, predicted_label, confidence), or BatchRejected."""
    if mv.feature_schema is None:
        raise BatchRejected(f"{name}: {mv.label} has no feature schema", model=mv.model_name, version=mv.version)
    df = _categories_as_text(df, mv)
    cols = prediction_columns(mv)
    optional = []
    if "predicted_label" in df.columns:
        from include.modelwatch.data.quality import ColumnSpec

        optional.append(
            ColumnSpec("predicted_label", kind="categorical", allowed=tuple(mv.classes), max_null_share=0.0)
        )
    _gx_check(df, cols + optional, name, mv)
    out = df.copy().reset_index(drop=True)
    out["ts"] = _timestamps(out, "ts", name, mv)
    out["symbol"] = out["symbol"].astype(str)
    out["timeframe"] = out["timeframe"].astype(str) if "timeframe" in out.columns else DEFAULT_TIMEFRAME
    pcols = prob_columns(mv.classes)
    p = out[pcols].to_numpy(dtype=float)
    off = np.abs(p.sum(axis=1) - 1.0) > PROB_SUM_TOLERANCE
    if off.any():
        rows = _first(off)
        raise BatchRejected(
            f"{name}: columns {pcols}: probabilities do not sum to 1 at {_rows(rows)} "
            f"(row {rows[0]} sums to {p[rows[0]].sum():.6f})",
            model=mv.model_name,
            version=mv.version,
        )
    dup = out.duplicated(["symbol", "timeframe", "ts"], keep="first").to_numpy()
    if dup.any():
        rows = _first(dup)
        raise BatchRejected(
            f"{name}: columns symbol, timeframe, ts: duplicate prediction at {_rows(rows)}",
            model=mv.model_name,
            version=mv.version,
        )
    if "predicted_label" not in out.columns:
        out["predicted_label"] = np.asarray(list(mv.classes), dtype=object)[p.argmax(axis=1)]
    out["confidence"] = p.max(axis=1)
    return out


def validate_outcomes(df: pd.DataFrame, mv: registry.ModelVersion, name: str) -> pd.DataFrame:
    """The outcome batch as load-ready rows (ts, matured_at UTC; realized_return or NaN), or BatchRejected."""
    from include.modelwatch.data.quality import ColumnSpec

    cols = [
        ColumnSpec("ts", kind="categorical", max_null_share=0.0),
        ColumnSpec("symbol", kind="categorical", max_null_share=0.0),
        ColumnSpec("realized_label", kind="categorical", allowed=tuple(mv.classes), max_null_share=0.0),
    ]
    from include.modelwatch.monitoring.performance.metrics import trade_classes

    trades = bool(trade_classes(mv.classes))  # BUY/SELL outcomes need their return (trading metrics)
    if trades or "realized_return" in df.columns:
        cols.append(ColumnSpec("realized_return", max_null_share=0.0 if trades else 1.0))
    _gx_check(df, cols, name, mv)
    out = df.copy().reset_index(drop=True)
    out["ts"] = _timestamps(out, "ts", name, mv)
    out["symbol"] = out["symbol"].astype(str)
    out["timeframe"] = out["timeframe"].astype(str) if "timeframe" in out.columns else DEFAULT_TIMEFRAME
    horizon = int(mv.horizon_days or 1)
    closes = out["ts"] + pd.offsets.BDay(horizon)  # the horizon counts business days, as performance_daily does
    if "matured_at" in out.columns:
        out["matured_at"] = _timestamps(out, "matured_at", name, mv)
        early = (out["matured_at"] < closes).to_numpy()
        if early.any():
            raise BatchRejected(
                f"{name}: column matured_at: before the prediction's horizon closed ({horizon} business day(s) after "
                f"ts) at {_rows(_first(early))}",
                model=mv.model_name,
                version=mv.version,
            )
    else:
        out["matured_at"] = closes
    if "realized_return" not in out.columns:
        out["realized_return"] = np.nan
    dup = out.duplicated(["symbol", "timeframe", "ts"], keep="first").to_numpy()
    if dup.any():
        raise BatchRejected(
            f"{name}: columns symbol, timeframe, ts: duplicate outcome at {_rows(_first(dup))}",
            model=mv.model_name,
            version=mv.version,
        )
    return out


# ----------------------------------------------------------------------------------------------- loading


def _day(ts: pd.Timestamp) -> datetime:
    return ts.floor("D").to_pydatetime()


def load_predictions(cur, mv: registry.ModelVersion, rows: pd.DataFrame, run_id: str | None) -> tuple[int, tuple]:
    """Replace ``mv``'s predictions of each (symbol, timeframe, day) of the batch, from the batch's first to its
    last timestamp of that day, with the batch's rows: a day, a symbol or the hours outside that span (an earlier
    hourly batch of the same day) keep their rows and outcomes."""
    pcols = prob_columns(mv.classes)
    start, end = _day(rows["ts"].min()), _day(rows["ts"].max()) + pd.Timedelta(days=1)
    written = 0
    days = rows["ts"].dt.floor("D")
    for (symbol, timeframe, _day_key), part in rows.groupby(["symbol", "timeframe", days], sort=True):
        first, last = part["ts"].min(), part["ts"].max()
        payload = [
            {
                "ts": r["ts"].to_pydatetime(),
                "features": {f: r[f] for f in mv.features},
                "predicted_label": str(r["predicted_label"]),
                "probabilities": {c: float(r[p]) for c, p in zip(mv.classes, pcols, strict=True)},
                "confidence": float(r["confidence"]),
            }
            for r in part.to_dict("records")
        ]
        written += signals.replace_predictions(
            cur,
            model_name=mv.model_name,
            model_version=mv.version,
            symbol=str(symbol),
            timeframe=str(timeframe),
            window_start=first.to_pydatetime(),
            window_end=(last + pd.Timedelta(microseconds=1)).to_pydatetime(),
            rows=payload,
            run_id=run_id,
        )
    return written, (start.isoformat(), end.isoformat())


_MATCH = """
SELECT p.prediction_id, p.symbol, p.timeframe, p.ts
FROM predictions p
WHERE p.model_name = %(model)s AND p.ts >= %(start)s AND p.ts <= %(end)s
"""


def load_outcomes(cur, mv: registry.ModelVersion, rows: pd.DataFrame, name: str, run_id: str | None) -> int:
    """Attach each outcome to every version's prediction of its (symbol, timeframe, ts); an outcome without a
    prediction refuses the batch (BatchRejected, nothing written)."""
    cur.execute(_MATCH, {"model": mv.model_name, "start": rows["ts"].min(), "end": rows["ts"].max()})
    preds = pd.DataFrame(cur.fetchall(), columns=["prediction_id", "symbol", "timeframe", "ts"])
    if preds.empty:
        preds["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
    preds["ts"] = pd.to_datetime(preds["ts"], utc=True)
    keyed = rows.reset_index().merge(preds, on=["symbol", "timeframe", "ts"], how="left")
    lost = keyed.loc[keyed["prediction_id"].isna(), "index"].drop_duplicates().tolist()
    if lost:
        r = rows.loc[lost[0]]
        raise BatchRejected(
            f"{name}: no prediction of {mv.model_name} for the outcome at {_rows(lost)} "
            f"(first: symbol {r['symbol']}, ts {r['ts'].isoformat()}); drop the predictions first",
            model=mv.model_name,
            version=mv.version,
        )
    horizon = int(mv.horizon_days or 1)
    payload = [
        {
            "prediction_id": int(r["prediction_id"]),
            "realized_return": None if pd.isna(r["realized_return"]) else float(r["realized_return"]),
            "realized_label": str(r["realized_label"]),
            "r_multiple": None,
            "horizon_days": horizon,
            "matured_at": r["matured_at"].to_pydatetime(),
            "run_id": run_id,
        }
        for r in keyed.to_dict("records")
    ]
    return signals.upsert_outcomes(cur, payload)


def record_batch(cur, batch: BatchFile | StagedBatch, sha: str, result: BatchResult, run_id: str | None) -> int:
    """The batch's row in ``ingest_batches`` (a re-drop of the same content updates it)."""
    cur.execute(
        "INSERT INTO ingest_batches (source, kind, name, sha256, model_name, model_version, status, n_rows, "
        "n_written, interval_start, interval_end, error, details, run_id) VALUES (%(source)s, %(kind)s, %(name)s, "
        "%(sha)s, %(model)s, %(version)s, %(status)s, %(n_rows)s, %(n_written)s, %(start)s, %(end)s, %(error)s, "
        "%(details)s, %(run_id)s) ON CONFLICT (source, kind, name, sha256) DO UPDATE SET status = EXCLUDED.status, "
        "model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version, n_rows = EXCLUDED.n_rows, "
        "n_written = EXCLUDED.n_written, interval_start = EXCLUDED.interval_start, "
        "interval_end = EXCLUDED.interval_end, error = EXCLUDED.error, details = EXCLUDED.details, "
        "run_id = EXCLUDED.run_id, ingested_at = now() RETURNING batch_id",
        {
            "source": SOURCE_TABLE if isinstance(batch, StagedBatch) else SOURCE_FOLDER,
            "kind": batch.kind,
            "name": batch.name,
            "sha": sha,
            "model": result.model,
            "version": result.version,
            "status": result.status,
            "n_rows": result.n_rows,
            "n_written": result.n_written,
            "start": result.interval[0] if result.interval else None,
            "end": result.interval[1] if result.interval else None,
            "error": result.error,
            "details": json.dumps(result.details, default=str),
            "run_id": run_id,
        },
    )
    return int(cur.fetchone()[0])


def ingest(conn, batch: BatchFile | StagedBatch, inbox: Path, *, run_id: str | None) -> BatchResult:
    """Validate and load one batch (a dropped file or a staged batch), or quarantine it (module docstring). Returns
    what happened; a file has moved to ``processed`` or ``quarantine``, a staged batch's rows are gone from
    ``ingest_staging`` (in the same transaction as its load or its quarantine record). Errors other than a refused
    batch (the database is down) propagate and leave the batch where it is, for the task's retry."""
    result = BatchResult(kind=batch.kind, name=batch.name, status="loaded")
    if isinstance(batch, StagedBatch):
        df = staged_frame(conn, batch)
        conn.rollback()
        if df.empty:  # another run took it
            result.status = "gone"
            return result
        sha = frame_sha256(df)
    else:
        sha = file_sha256(batch.path)
        try:
            df = read_frame(batch.path)
        except ValueError as exc:
            return _quarantine(conn, batch, inbox, sha, result, BatchRejected(str(exc)), run_id, None)
    result.n_rows = len(df)
    try:
        model, version = batch_model(df, batch.name)
        result.model = model
        mv = resolve_version(conn, model, version, batch.name)
        conn.rollback()  # end the read transaction before the load's own
        result.version = mv.version
        if batch.kind == PREDICTIONS:
            rows = validate_predictions(df, mv, batch.name)
            with transaction(conn) as cur:
                result.n_written, result.interval = load_predictions(cur, mv, rows, run_id)
                record_batch(cur, batch, sha, result, run_id)
                _unstage(cur, batch)
        else:
            rows = validate_outcomes(df, mv, batch.name)
            result.interval = (rows["ts"].min().isoformat(), rows["ts"].max().isoformat())
            with transaction(conn) as cur:
                result.n_written = load_outcomes(cur, mv, rows, batch.name, run_id)
                record_batch(cur, batch, sha, result, run_id)
                _unstage(cur, batch)
    except BatchRejected as exc:
        conn.rollback()
        return _quarantine(conn, batch, inbox, sha, result, exc, run_id, df)
    if isinstance(batch, BatchFile):
        result.moved_to = str(move(batch, inbox, PROCESSED))
    return result


def _unstage(cur, batch: BatchFile | StagedBatch) -> None:
    if isinstance(batch, StagedBatch):
        cur.execute(
            "DELETE FROM ingest_staging WHERE batch = %(batch)s AND kind = %(kind)s",
            {"batch": batch.batch, "kind": batch.kind},
        )


def _quarantine(
    conn, batch, inbox, sha, result: BatchResult, exc: BatchRejected, run_id, df: pd.DataFrame | None
) -> BatchResult:
    result.status = "quarantined"
    result.error = str(exc)
    result.model = exc.model or result.model
    result.version = exc.version if exc.version is not None else result.version
    result.n_written = 0
    result.interval = None
    result.details = exc.details
    if isinstance(batch, StagedBatch):  # keep the refused rows as a file before they leave the staging table
        dest = inbox / QUARANTINE / "staged" / batch.kind
        dest.mkdir(parents=True, exist_ok=True)
        name = f"{_safe(batch.batch)}.csv"  # CSV keeps any mix of types (the refused batch may hold text in a number)
        (df if df is not None else pd.DataFrame()).to_csv(dest / name, index=False)
        (dest / f"{name}.error.txt").write_text(result.error + "\n")
        result.moved_to = str(dest / name)
    with transaction(conn) as cur:
        record_batch(cur, batch, sha, result, run_id)
        _unstage(cur, batch)
    if isinstance(batch, BatchFile):
        result.moved_to = str(move(batch, inbox, QUARANTINE, error=result.error))
    return result


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:120] or "batch"


# ----------------------------------------------------------------------------------------------- staging table


@dataclass(frozen=True)
class StagedBatch:
    """A batch the platform wrote into ``ingest_staging`` (all rows of one ``batch`` key and kind)."""

    kind: str
    batch: str

    @property
    def name(self) -> str:
        return f"staged:{self.batch}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "staged": self.batch}


def staged_batches(conn) -> list[StagedBatch]:
    """The batches waiting in ``ingest_staging``: predictions first, then outcomes, each in the order staged."""
    rows = fetch_dicts(
        conn,
        "SELECT batch, kind FROM ingest_staging GROUP BY batch, kind ORDER BY kind = 'outcomes', min(staged_id)",
    )
    return [StagedBatch(r["kind"], r["batch"]) for r in rows]


_STAGED_BASE = ("model_name", "model_version", "ts", "symbol", "timeframe")
_STAGED_KIND = {
    PREDICTIONS: ("predicted_label",),
    OUTCOMES: ("realized_label", "realized_return", "matured_at"),
}


def staged_frame(conn, batch: StagedBatch) -> pd.DataFrame:
    """A staged batch as the frame a dropped file of that kind would be: features and ``p_<class>`` columns from
    the JSON objects; an optional column that is empty in every row is left out (its default applies)."""
    rows = fetch_dicts(
        conn,
        "SELECT * FROM ingest_staging WHERE batch = %(batch)s AND kind = %(kind)s ORDER BY staged_id",
        {"batch": batch.batch, "kind": batch.kind},
    )
    if not rows:
        return pd.DataFrame()
    base = pd.DataFrame([{c: r[c] for c in (*_STAGED_BASE, *_STAGED_KIND[batch.kind])} for r in rows])
    parts = [base]
    if batch.kind == PREDICTIONS:
        parts.append(pd.DataFrame([r["features"] or {} for r in rows]))
        probs = pd.DataFrame([r["probabilities"] or {} for r in rows])
        probs.columns = prob_columns([str(c) for c in probs.columns])
        parts.append(probs)
    out = pd.concat(parts, axis=1)
    optional = {"model_version", "timeframe", "predicted_label", "realized_return", "matured_at"}
    return out.drop(columns=[c for c in optional if c in out.columns and out[c].isna().all()])


def frame_sha256(df: pd.DataFrame) -> str:
    """SHA-256 of a staged batch's content (its rows as CSV): the same rows staged again are the same batch."""
    return registry.sha256_bytes(df.to_csv(index=False).encode())


def recent_batches(conn, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest rows of ``ingest_batches`` (of one model when given), newest first."""
    return fetch_dicts(
        conn,
        "SELECT batch_id, source, kind, name, model_name, model_version, status, n_rows, n_written, interval_start, "
        "interval_end, error, ingested_at, run_id FROM ingest_batches "
        "WHERE %(model)s::text IS NULL OR model_name = %(model)s ORDER BY batch_id DESC LIMIT %(limit)s",
        {"model": model, "limit": limit},
    )


def run_batches(conn, run_id: str) -> list[dict[str, Any]]:
    """The batches one ``ingest_predictions`` run handled, in the order it handled them."""
    return fetch_dicts(
        conn,
        "SELECT kind, name, model_name, model_version, status, n_rows, n_written, error FROM ingest_batches "
        "WHERE run_id = %(run_id)s ORDER BY batch_id",
        {"run_id": run_id},
    )
