"""The one operator CLI: ``python -m include.modelwatch <group> <command>``.

``make`` targets and the Airflow tasks call the same functions this CLI calls;
new features add subcommands here rather than new entry points.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

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

    dev = groups.add_parser("dev", help="local stack").add_subparsers(dest="cmd", required=True)
    dev.add_parser("run", help="embedded PostgreSQL + Airflow on 127.0.0.1:8080 (make run)").set_defaults(func=_dev_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
