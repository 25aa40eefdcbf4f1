"""Retention benchmark: what one ``maintenance_daily`` run removes from a generated history, and how long it takes.

Run from the repo root: ``.venv/bin/python -m bench.retention [--versions 2 --features 50 --days 180]``.

A throwaway embedded PostgreSQL, migrated, gets ``--days`` days of hourly drift windows per model version with two
tests per feature (``drift_results``) and one drift-window data-quality row per feature, plus ``--days`` days of
daily predictions for 20 symbols with their outcomes, and one notification a day. Then the retention policies run
with their default days (include/modelwatch/defaults.py) for the interval ending the day after the history, twice:
the second run must change nothing. Rows before/after, the run time per table and the table sizes before (a DELETE
frees space for reuse; VACUUM FULL would shrink the files) go to a table and to ``bench/results/retention.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg import sql

from include.modelwatch import defaults
from include.modelwatch.data import storage
from include.modelwatch.ops import migrations, pgembed, retention

RESULTS = Path(__file__).resolve().parent / "results" / "retention.json"
START = datetime(2008, 1, 1, tzinfo=UTC)
SIZE = "SELECT pg_total_relation_size(c.oid) + coalesce((SELECT sum(pg_total_relation_size(i.inhrelid)) "
SIZE += "FROM pg_inherits i WHERE i.inhparent = c.oid), 0) FROM pg_class c WHERE c.relname = %(t)s"


def fill(conn, versions: int, features: int, days: int) -> None:
    end = START + timedelta(days=days)
    p = {"start": START, "end": end - timedelta(hours=1), "nf": features}
    with storage.transaction(conn) as cur:
        for v in range(1, versions + 1):
            cur.execute(
                "INSERT INTO model_versions (model_name, version, algorithm) VALUES ('m', %(v)s, 'lgbm')", {"v": v}
            )
            cur.execute(
                "INSERT INTO drift_windows (model_name, model_version, window_start, window_end, status, n_rows, "
                "drift_score, level) SELECT 'm', %(v)s, t, t + interval '1 hour', 'evaluated', 40, random(), 'none' "
                "FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz, interval '1 hour') t",
                {**p, "v": v},
            )
        cur.execute(
            "INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, "
            "statistic, p_value, severity, drifted, n_current, details) "
            "SELECT w.model_name, w.model_version, w.window_start, w.window_end, 'feature', 'f' || f, t, random(), "
            "random(), 100 * random(), random() < 0.05, 40, '{\"bins\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}' "
            "FROM drift_windows w, generate_series(1, %(nf)s) f, unnest(ARRAY['psi', 'ks']) t",
            p,
        )
        cur.execute(
            "INSERT INTO data_quality_results (source, subject, window_start, window_end, expectation, column_name, "
            "success) SELECT 'drift_window', 'm v' || w.model_version, w.window_start, w.window_end, 'not_null', "
            "'f' || f, true FROM drift_windows w, generate_series(1, %(nf)s) f",
            p,
        )
        cur.execute(
            "INSERT INTO predictions (model_name, model_version, ts, symbol, features, predicted_label, "
            "probabilities, confidence) SELECT 'm', 1, t, 'S' || s, (SELECT jsonb_object_agg('f' || f, random()) "
            "FROM generate_series(1, %(nf)s) f WHERE s > 0), 'BUY', '{\"BUY\": 0.5}', 0.5 "
            "FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz, interval '1 day') t, "
            "generate_series(1, 20) s",
            p,
        )
        cur.execute(
            "INSERT INTO outcomes (prediction_id, realized_return, realized_label, horizon_days, matured_at) "
            "SELECT prediction_id, 0.01, 'BUY', 5, ts + interval '5 days' FROM predictions"
        )
        cur.execute(
            "INSERT INTO notifications (kind, dedupe_key, model_name, subject, body, created_at, status) "
            "SELECT 'alert', 'k' || t, 'm', 's', 'b', t, 'sent' "
            "FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz, interval '1 day') t",
            p,
        )
    with storage.transaction(conn) as cur:
        cur.execute("ANALYZE")


def counts(conn) -> dict[str, dict[str, int]]:
    out = {}
    for t in retention.TABLES:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t)))
            (n,) = cur.fetchone()
            cur.execute(SIZE, {"t": t})
            size = cur.fetchone()[0]
        out[t] = {"rows": int(n), "bytes": int(size or 0)}
    conn.rollback()
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--versions", type=int, default=2)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--days", type=int, default=400)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mw-ret-") as tmp:
        server = pgembed.start(Path(tmp) / "pgdata", delete_on_stop=True)
        try:
            server.ensure_database("bench")
            with storage.session(server.airflow_conn_uri("bench")) as conn:
                migrations.migrate(conn)
                t0 = time.perf_counter()
                fill(conn, args.versions, args.features, args.days)
                fill_s = time.perf_counter() - t0
                before = counts(conn)
                end = START + timedelta(days=args.days + 1)
                runs = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    parts = retention.ensure_partitions(conn, interval_start=end - timedelta(days=1), interval_end=end)
                    done = [
                        retention.apply(
                            conn, t, days=defaults.VARIABLES[retention.policy(t).variable], interval_end=end
                        )
                        for t in retention.TABLES
                    ]
                    runs.append(
                        {
                            "wall_s": round(time.perf_counter() - t0, 2),
                            "partitions_created": sum(len(p.partitions) for p in parts),
                            "tables": {
                                d.table: {
                                    "cutoff": d.cutoff.isoformat() if d.cutoff else None,
                                    "rows_affected": d.rows_affected,
                                    "rows_written": d.rows_written,
                                    "seconds": round(d.duration_s, 2),
                                }
                                for d in done
                            },
                        }
                    )
                after = counts(conn)
        finally:
            server.stop()
    result = {
        "args": vars(args),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "interval_end": end.isoformat(),
        "fill_s": round(fill_s, 1),
        "before": before,
        "after": after,
        "runs": runs,
    }
    print(f"{'table':22} {'rows before':>12} {'rows after':>11} {'changed':>9} {'written':>8} {'s':>6} {'MB':>8}")
    for t in retention.TABLES:
        r = runs[0]["tables"][t]
        print(
            f"{t:22} {before[t]['rows']:>12,} {after[t]['rows']:>11,} {r['rows_affected']:>9,} {r['rows_written']:>8,} "
            f"{r['seconds']:>6} {before[t]['bytes'] / 1e6:>8.1f}"
        )
    print(f"first run {runs[0]['wall_s']} s, second run {runs[1]['wall_s']} s: {runs[1]['tables']}")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
