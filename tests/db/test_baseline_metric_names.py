"""Migration 010: stored backtest baselines use the canonical macro metric names."""

from __future__ import annotations

from datetime import date

from include.modelwatch import registry
from include.modelwatch.data import storage

MIGRATION = storage.SQL_DIR / "migrations" / "010_canonical_metric_names.sql"


def _baseline(db, version: int) -> dict[str, float]:
    rows = storage.fetch_dicts(
        db, "SELECT metric, value FROM backtest_baseline WHERE model_version = %(v)s", {"v": version}
    )
    db.rollback()
    return {r["metric"]: r["value"] for r in rows}


def test_old_baseline_names_are_renamed_and_canonical_rows_win(db, tmp_path):
    versions = [
        registry.register_version(
            db,
            model_name="m",
            algorithm="lightgbm",
            artifact=p,
            artifact_dir=tmp_path,
            features=["f"],
            classes=["SELL", "HOLD", "BUY"],
        ).version
        for p in (b"v1", b"v2")
    ]
    rows = {
        versions[0]: {"accuracy": 0.33, "f1_macro": 0.30, "precision_macro": 0.31, "recall_macro": 0.32},
        versions[1]: {"f1_macro": 0.10, "macro_f1": 0.20},
    }  # both names: the canonical row is kept
    with storage.transaction(db) as cur:
        for v, metrics in rows.items():
            for metric, value in metrics.items():
                cur.execute(
                    "INSERT INTO backtest_baseline (model_name, model_version, metric, value, period_start, "
                    "period_end, n_predictions) "
                    "VALUES ('m', %(v)s, %(metric)s, %(value)s, %(start)s, %(end)s, 1)",
                    {"v": v, "metric": metric, "value": value, "start": date(2000, 1, 1), "end": date(2006, 12, 31)},
                )
        cur.execute(MIGRATION.read_text())
    assert _baseline(db, versions[0]) == {
        "accuracy": 0.33,
        "macro_f1": 0.30,
        "macro_precision": 0.31,
        "macro_recall": 0.32,
    }
    assert _baseline(db, versions[1]) == {"macro_f1": 0.20}
