"""The one operator CLI: ``python -m include.modelwatch <group> <command>``.

``make`` targets and the Airflow tasks call the same functions this CLI calls;
new features add subcommands here rather than new entry points.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

# DAGs a replayed month runs through, stage by stage (a stage's DAGs run in parallel)
REPLAY_STAGES = ("score_signals", "drift_hourly")

Handler = Callable[[argparse.Namespace], int]


def _db_migrate(args: argparse.Namespace) -> int:
    from include.modelwatch import migrations, storage

    conn = storage.connect(args.uri)
    try:
        applied = migrations.migrate(conn)
    except migrations.MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if applied:
        for m in applied:
            print(f"applied {m.path.name}")
    else:
        print("monitoring schema is up to date")
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from include.modelwatch import migrations, storage

    conn = storage.connect(args.uri)
    try:
        rows = migrations.status(conn)
    finally:
        conn.close()
    for r in rows:
        print(f"{r['version']:03d}  {r['name']:<32} {r['state']}")
    pending = sum(r["state"] != "applied" for r in rows)
    print(f"{len(rows) - pending} applied, {pending} pending or changed")
    return 0 if pending == 0 else 3


def _settings_apply(args: argparse.Namespace) -> int:
    from pathlib import Path

    from include.modelwatch import settings

    try:
        loaded = settings.load(Path(args.file) if args.file else settings.SETTINGS_FILE)
    except settings.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts = settings.apply_to_airflow(loaded)
    print("settings applied: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    import os

    from include.modelwatch import bootstrap, storage

    conn = storage.connect(args.uri)
    try:
        bootstrap.bootstrap_champion(
            conn, artifact_dir=args.artifact_dir or os.environ.get("MODELWATCH_ARTIFACT_DIR", ".modelwatch/artifacts"),
            model_name=args.model,
        )
    finally:
        conn.close()
    return 0


def _replay(args: argparse.Namespace) -> int:
    from datetime import date

    from include.modelwatch import devstack, replay

    api = replay.AirflowApi(args.url, devstack.ADMIN_USER, devstack.ADMIN_PASSWORD)
    windows = replay.month_windows(date.fromisoformat(args.start), date.fromisoformat(args.end))
    tally = replay.replay(api, windows, [tuple(s.split(",")) for s in args.stages])
    print("replay done: " + "; ".join(f"{d}: {t}" for d, t in tally.items()))
    return 0 if all(set(t) <= {"success"} for t in tally.values()) else 1


def _dev_run(args: argparse.Namespace) -> int:
    from include.modelwatch import devstack

    return devstack.run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelwatch", description=__doc__)
    groups = parser.add_subparsers(dest="group", required=True)

    db = groups.add_parser("db", help="monitoring database").add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (
        ("migrate", _db_migrate, "apply pending sql/migrations"),
        ("status", _db_status, "list migrations and their state (exit 3 if any pending)"),
    ):
        p = db.add_parser(name, help=help_)
        p.add_argument("--uri", help="PostgreSQL URI (default: $AIRFLOW_CONN_MONITORING_DB)")
        p.set_defaults(func=fn)

    st = groups.add_parser("settings", help="airflow_settings.yaml").add_subparsers(dest="cmd", required=True)
    p = st.add_parser("apply", help="upsert connections, variables and pools into Airflow")
    p.add_argument("--file", help="settings file (default: airflow_settings.yaml)")
    p.set_defaults(func=_settings_apply)

    p = groups.add_parser("bootstrap", help="train and register the initial champion (idempotent)")
    p.add_argument("--uri", help="PostgreSQL URI (default: $AIRFLOW_CONN_MONITORING_DB)")
    p.add_argument("--model", default="spx_signal")
    p.add_argument("--artifact-dir", help="default: $MODELWATCH_ARTIFACT_DIR")
    p.set_defaults(func=_bootstrap)

    p = groups.add_parser("replay", help="replay market months through the real DAGs over the REST API")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--start", default="2007-01-01")
    p.add_argument("--end", default="2009-01-01")
    p.add_argument("--stages", nargs="+", default=list(REPLAY_STAGES), help="comma-separated DAG ids per stage")
    p.set_defaults(func=_replay)

    dev = groups.add_parser("dev", help="local stack").add_subparsers(dest="cmd", required=True)
    dev.add_parser("run", help="embedded PostgreSQL + Airflow on 127.0.0.1:8080 (make run)").set_defaults(func=_dev_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
