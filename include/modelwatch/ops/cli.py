"""The one operator CLI: ``python -m include.modelwatch <group> <command>``.

``make`` targets and the Airflow tasks call the same functions this CLI calls;
new features add subcommands here rather than new entry points.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, TypeVar

T = TypeVar("T")

# DAGs a replayed month runs through, stage by stage (a stage's DAGs run in parallel)
REPLAY_STAGES = ("score_signals", "drift_hourly,performance_daily,ab_test_daily")

Handler = Callable[[argparse.Namespace], int]


def _db_migrate(args: argparse.Namespace) -> int:
    from include.modelwatch.data import storage
    from include.modelwatch.ops import migrations

    with storage.session(args.uri) as conn:
        try:
            applied = migrations.migrate(conn)
        except migrations.MigrationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if applied:
        for m in applied:
            print(f"applied {m.path.name}")
    else:
        print("monitoring schema is up to date")
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from include.modelwatch.data import storage
    from include.modelwatch.ops import migrations

    with storage.session(args.uri) as conn:
        rows = migrations.status(conn)
    for r in rows:
        print(f"{r['version']:03d}  {r['name']:<32} {r['state']}")
    pending = sum(r["state"] != "applied" for r in rows)
    print(f"{len(rows) - pending} applied, {pending} pending or changed")
    return 0 if pending == 0 else 3


def _settings_apply(args: argparse.Namespace) -> int:
    from pathlib import Path

    from include.modelwatch.ops import settings

    try:
        loaded = settings.load(Path(args.file) if args.file else settings.SETTINGS_FILE)
    except settings.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts = settings.apply_to_airflow(loaded)
    print("settings applied: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from include.modelwatch import defaults
    from include.modelwatch.data import sources, storage
    from include.modelwatch.ops import bootstrap

    models = defaults.NATIVE_MODELS
    if args.model is not None:
        conf = dict(models.get(args.model) or {})
        conf.update({k: v for k, v in (("target", args.target), ("symbols", args.symbols)) if v})
        if not conf.get("symbols"):
            print(
                f"error: {args.model} is not in the default native models ({sorted(models)}): name its --target and "
                "--symbols (as in the variable modelwatch_native_models)",
                file=sys.stderr,
            )
            return 1
        models = {args.model: conf}
    try:
        source = sources.source_from_spec(args.source)
        with storage.session(args.uri) as conn:
            bootstrap.bootstrap_all(
                conn, artifact_dir=args.artifact_dir or defaults.artifact_dir(), models=models, source=source, log=print
            )
    except ValueError as exc:
        print(f"error: nothing bootstrapped: {exc}", file=sys.stderr)
        return 1
    return 0


def _replay(args: argparse.Namespace) -> int:
    from datetime import date

    from include.modelwatch.ops import devstack, replay

    api = replay.AirflowApi(args.url or devstack.base_url(), devstack.ADMIN_USER, devstack.ADMIN_PASSWORD)
    if args.window:
        start = args.window
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    else:
        start, end = date.fromisoformat(args.start or "2007-01-01"), date.fromisoformat(args.end or "2009-01-01")
    windows = replay.month_windows(start, end)
    stages = [tuple(s.split(",")) for s in args.stages]
    try:
        tally = replay.replay(api, windows, stages, run_prefix=args.run_prefix, rerun=args.rerun)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("replay done: " + "; ".join(f"{d}: {t}" for d, t in tally.items()))
    return 0 if all(set(t) <= {"success"} for t in tally.values()) else 1


def _policy_replay(args: argparse.Namespace) -> int:
    import logging
    import os
    from datetime import date
    from pathlib import Path

    from include.modelwatch import defaults
    from include.modelwatch.data import storage
    from include.modelwatch.policy.policies import parse_policies

    if not args.verbose:  # the task bodies' logs (a DAG run's task logs) would bury the month lines
        logging.getLogger("include").setLevel(logging.WARNING)
    try:
        policies = parse_policies(args.policies)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.model not in defaults.NATIVE_MODELS and not (args.target and args.symbols):
        print(
            f"error: --model {args.model} is not a native model ({', '.join(defaults.NATIVE_MODELS)}): "
            "give --target and --symbols",
            file=sys.stderr,
        )
        return 2
    conf = dict(defaults.NATIVE_MODELS.get(args.model, {}))
    conf.update({k: v for k, v in (("target", args.target), ("symbols", args.symbols)) if v})
    home = Path(os.environ.get("MODELWATCH_HOME") or ".modelwatch").resolve()
    server = None
    try:
        uri = args.uri or storage.monitoring_uri()
    except RuntimeError:  # no stack and no connection: a throwaway embedded server of its own
        from include.modelwatch.ops import pgembed

        server = pgembed.start(home / "policy_replay_pg", delete_on_stop=True)
        server.ensure_database("modelwatch")
        uri = server.airflow_conn_uri("modelwatch")
        print(f"policy replay on a throwaway embedded PostgreSQL in {server.pgdata}")
    try:
        from include.tasks.policy import run_all

        results = run_all(
            uri=uri,
            model=args.model,
            conf=conf,
            policies=policies,
            start=date.fromisoformat(args.start),
            end=date.fromisoformat(args.end),
            eval_start=date.fromisoformat(args.eval_start),
            eval_end=date.fromisoformat(args.eval_end),
            out_dir=args.out,
            artifact_dir=args.artifact_dir or str(home / "policy_replay_artifacts"),
            source_spec=args.source,
            schedule_rules=not args.no_schedule_rules,
            jobs=args.jobs,
            log_level=None if args.verbose else logging.WARNING,
        )
    finally:
        if server is not None:
            server.stop()
    print(f"replayed {', '.join(results)}; the comparison with earlier runs of the other policies:")
    print((Path(args.out) / f"{args.model}.md").read_text())
    return 0


def defaults_model() -> str:
    from include.modelwatch import defaults

    return defaults.MODEL_NAME


def _when(text: str | None):
    """--at for operator commands: an ISO time, or now (a person acting is a wall-clock event)."""
    from datetime import datetime

    if not text:
        return datetime.now(UTC)
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _who(args: argparse.Namespace) -> str:
    import getpass

    return f"cli:{args.by or getpass.getuser()}"


def _db_call(args: argparse.Namespace, fn: Callable[[Any], T], refused: str) -> tuple[bool, T | None]:
    """Run ``fn(conn)`` on the monitoring DB; a ValueError (bad rule, missing reason, ...)
    is printed as ``error: <refused><why>`` and reported as (False, None)."""
    from include.modelwatch.data import storage

    with storage.session(args.uri) as conn:
        try:
            return True, fn(conn)
        except ValueError as exc:
            print(f"error: {refused}{exc}", file=sys.stderr)
            return False, None


def _rules_list(args: argparse.Namespace) -> int:
    from include.modelwatch.data import storage
    from include.modelwatch.loop import rule_store

    with storage.session(args.uri) as conn:
        stored = rule_store.load_rules(conn)
    print(f"{'rule':<26}{'condition':<30}{'retrain':<20}{'cooldown':>9}  enabled  overrides")
    for base in stored:
        r = base.for_model(args.model) if args.model else base
        overrides = "" if args.model else ", ".join(f"{m}: {dict(o)}" for m, o in base.model_overrides.items())
        print(
            f"{r.name:<26}{f'{r.metric} {r.operator} {r.threshold:g}':<30}{f'{r.retrain_mode}/{r.priority}':<20}"
            f"{f'{r.cooldown_hours:g}h':>9}  {str(r.enabled).lower():<7}  {overrides}"
        )
    return 0


def _rules_set(args: argparse.Namespace) -> int:
    from include.modelwatch.loop import rule_store

    changes = {}
    for item in args.changes:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: {item!r}: expected field=value", file=sys.stderr)
            return 2
        changes[key.strip()] = value.strip()
    ok, rule = _db_call(
        args,
        lambda c: rule_store.set_rule(
            c, args.rule, changes, model=args.model, clear_override=args.clear, by=_who(args)
        ),
        f"rule {args.rule} not changed: ",
    )
    if not ok or rule is None:
        return 1
    eff = rule.for_model(args.model) if args.model else rule
    where = f" for {args.model}" if args.model else ""
    print(
        f"{rule.name}{where}: {eff.metric} {eff.operator} {eff.threshold:g} -> {eff.retrain_mode}/{eff.priority}, "
        f"cooldown {eff.cooldown_hours:g}h, enabled {str(eff.enabled).lower()}"
    )
    return 0


def _trigger_create(args: argparse.Namespace) -> int:
    from include.modelwatch.loop import triggers

    ok, tid = _db_call(
        args,
        lambda c: triggers.create_manual_trigger(
            c,
            args.model,
            args.reason,
            retrain_mode=args.mode,
            priority=args.priority,
            requested_by=_who(args),
            as_of=_when(args.at),
        ),
        "no trigger created: ",
    )
    if not ok:
        return 1
    print(f"{args.model}: pending trigger {tid} (retrain_gated picks it up on its next run)")
    return 0


def _ab_start(args: argparse.Namespace) -> int:
    from include.modelwatch.ab import store

    ok, tid = _db_call(
        args,
        lambda c: store.start_test(
            c,
            model_name=args.model,
            challenger_version=args.challenger,
            split=args.split,
            allocation=args.allocation,
            min_samples=args.min_samples,
            max_days=args.max_days,
            alpha=args.alpha,
            reason=args.reason,
            started_at=_when(args.at),
            started_by=_who(args),
        ),
        "no A/B test started: ",
    )
    if not ok:
        return 1
    print(
        f"{args.model}: A/B test {tid} running (challenger v{args.challenger}, split {args.split}); score_signals "
        "now scores both arms and ab_test_daily judges it"
    )
    return 0


def _ab_list(args: argparse.Namespace) -> int:
    from include.modelwatch.ab import store
    from include.modelwatch.data import storage

    with storage.session(args.uri) as conn:
        tests = store.list_tests(conn, args.model)
    for t in tests:
        print(
            f"{t.test_id:>4}  {t.model_name:<16} v{t.champion_version} vs v{t.challenger_version}  split {t.split:.2f}"
            f"  {t.status:<12} started {t.started_at:%Y-%m-%d}  {t.reason}"
        )
    if not tests:
        print("no A/B tests")
    return 0


def _ab_show(args: argparse.Namespace) -> int:
    from include.modelwatch.ab import store
    from include.modelwatch.data import storage

    with storage.session(args.uri) as conn:
        try:
            t = store.get_test(conn, args.test_id)
        except store.ABError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        days = store.daily_results(conn, t.test_id)
    print(f"A/B test {t.test_id}: {t.model_name} champion v{t.champion_version} vs challenger v{t.challenger_version}")
    print(f"  split {t.split}, min_samples {t.min_samples}, max_days {t.max_days} sessions, alpha {t.alpha}")
    print(f"  status {t.status}: {t.reason}")
    for d in days:
        print(
            f"  {d['day']}  sessions {d['days_elapsed']:>3}  rows {d['matured_rows']:>4}  b={d['champion_only']} "
            f"c={d['challenger_only']}  logLR {d['seq_log_lr']:.2f}/{d['seq_log_threshold']:.2f}  "
            f"z p={d['z_p_value']:.3f}  SRM p={d['srm_p_value']:.3f}  -> {d['decision']}"
        )
    return 0


def _ab_stop(args: argparse.Namespace) -> int:
    from include.modelwatch.ab import store

    ok, test = _db_call(
        args,
        lambda c: store.end_test(
            c, args.test_id, "cancelled", reason=f"{args.reason} ({_who(args)})", ended_at=_when(args.at), run_id=None
        ),
        "nothing stopped: ",
    )
    if not ok or test is None:
        return 1
    print(f"A/B test {test.test_id} of {test.model_name} cancelled; champion stays v{test.champion_version}")
    return 0


def _trigger_list(args: argparse.Namespace) -> int:
    from include.modelwatch.data import storage

    with storage.session(args.uri) as conn:
        rows = storage.fetch_dicts(
            conn,
            "SELECT trigger_id, model_name, status, trigger_type, retrain_mode, priority, triggered_at, reason, "
            "outcome FROM retraining_triggers WHERE (%(all)s OR status IN ('pending', 'claimed')) "
            "ORDER BY trigger_id DESC LIMIT %(limit)s",
            {"all": args.all, "limit": args.limit},
        )
    for r in rows:
        print(
            f"{r['trigger_id']:>5}  {r['model_name']:<14}{r['status']:<10}{r['trigger_type']:<12}"
            f"{r['retrain_mode']}/{r['priority']:<10}{r['triggered_at']:%Y-%m-%d %H:%M}  {r['reason']}"
            + (f"  [{r['outcome']}]" if r["outcome"] else "")
        )
    if not rows:
        print("no pending or claimed triggers" if not args.all else "no triggers")
    return 0


def _trigger_cancel(args: argparse.Namespace) -> int:
    from include.modelwatch.loop import triggers

    ok, _ = _db_call(
        args,
        lambda c: triggers.cancel_trigger(c, args.trigger_id, reason=args.reason, by=_who(args), at=_when(args.at)),
        "",
    )
    if not ok:
        return 1
    print(f"trigger {args.trigger_id} cancelled")
    return 0


def _alerts_ack(args: argparse.Namespace) -> int:
    from include.modelwatch.data import storage
    from include.modelwatch.loop import alerts

    with storage.session(args.uri) as conn:
        with storage.transaction(conn) as cur:
            ok = alerts.acknowledge_alert(cur, args.alert_id, by=_who(args), at=_when(args.at))
    if not ok:
        print(f"error: alert {args.alert_id} is not open", file=sys.stderr)
        return 1
    print(f"alert {args.alert_id} acknowledged")
    return 0


def _metrics_registry(args: argparse.Namespace):
    from include.modelwatch.data import storage
    from include.modelwatch.observability import server

    uri = args.uri or storage.monitoring_uri()  # fail now, not at the first scrape, when neither is given
    return server.make_registry(uri, statement_timeout_ms=args.statement_timeout_ms)


def _metrics_serve(args: argparse.Namespace) -> int:
    from include.modelwatch.observability import server

    try:
        registry = _metrics_registry(args)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return server.serve_forever(registry, args.host, args.port)


def _metrics_show(args: argparse.Namespace) -> int:
    from include.modelwatch.observability import server

    try:
        registry = _metrics_registry(args)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(server.render(registry))
    return 0


def _dev_run(args: argparse.Namespace) -> int:
    from include.modelwatch.ops import devstack

    return devstack.run(
        replay_start=args.replay_start, replay_end=args.replay_end, observe=args.observe, executor=args.executor
    )


def _month(text: str):
    """argparse type of --window: a month YYYY-MM (its first day)."""
    from datetime import date

    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (YYYY-MM, e.g. 2008-10)") from None


def _iso_date(text: str):
    """argparse type of --replay-start / --replay-end: an ISO date (YYYY-MM-DD)."""
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date (YYYY-MM-DD)") from None


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

    p = groups.add_parser("bootstrap", help="train and register each native model's first champion (idempotent)")
    p.add_argument("--uri", help="PostgreSQL URI (default: $AIRFLOW_CONN_MONITORING_DB)")
    p.add_argument("--model", help="one native model (default: every model of defaults.NATIVE_MODELS)")
    p.add_argument("--target", help="with --model: what it predicts (direction, vol_regime)")
    p.add_argument("--symbols", type=lambda t: [x.strip() for x in t.split(",") if x.strip()], help="with --model: A,B")
    p.add_argument("--source", default="arch", help="market data: arch (default) or folder:/path")
    p.add_argument("--artifact-dir", help="default: $MODELWATCH_ARTIFACT_DIR")
    p.set_defaults(func=_bootstrap)

    p = groups.add_parser("replay", help="replay market months through the real DAGs over the REST API")
    p.add_argument("--url", help="Airflow's base URL (default: http://127.0.0.1:$MODELWATCH_PORT, port 8080)")
    p.add_argument("--start", help="first month (default 2007-01-01)")
    p.add_argument("--end", help="end, exclusive (default 2009-01-01)")
    p.add_argument("--window", type=_month, help="one month YYYY-MM instead of --start/--end")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="re-run the months: clear each DAG's existing run of the month (its tasks run again; re-triggering the "
        "same logical date is refused with HTTP 409), trigger only the DAGs without one",
    )
    p.add_argument("--stages", nargs="+", default=list(REPLAY_STAGES), help="comma-separated DAG ids per stage")
    p.add_argument(
        "--run-prefix",
        default="replay",
        help="run ids <prefix>__YYYY-MM; existing runs are skipped, so another prefix re-runs months (default replay)",
    )
    p.set_defaults(func=_replay)

    p = groups.add_parser(
        "policy-replay",
        help="replay retraining policies (never, monthly, quarterly, closed_loop...) over market history and compare",
    )
    p.add_argument("--model", default=defaults_model(), help="a native model (default spx_signal)")
    p.add_argument("--target", help="what the model predicts, for a model that is not native (direction, vol_regime)")
    p.add_argument("--symbols", type=lambda t: [x.strip() for x in t.split(",") if x.strip()], help="A,B")
    p.add_argument("--start", default="2007-01-01", help="first month replayed (default 2007-01-01)")
    p.add_argument("--end", default="2019-01-01", help="end of the replay, exclusive (default 2019-01-01)")
    p.add_argument("--eval-start", default="2009-01-01", help="start of the period the metrics compare")
    p.add_argument("--eval-end", default="2019-01-01", help="its end, exclusive")
    p.add_argument(
        "--policies",
        default="never,monthly,quarterly,closed_loop,closed_loop_no_gates",
        help="comma-separated: never, monthly, quarterly, closed_loop, closed_loop_no_gates",
    )
    p.add_argument("--out", default="bench/results/policy_replay", help="folder of the JSON, Markdown and plots")
    p.add_argument("--jobs", type=int, default=1, help="policies replayed at once, one process each")
    p.add_argument("--source", default="arch", help="market data: arch (default) or folder:/path")
    p.add_argument(
        "--no-schedule-rules",
        action="store_true",
        help="do not evaluate the time-based rules (model age) at month ends, as the DAG replay of make run",
    )
    p.add_argument("--uri", help="PostgreSQL URI (default: the stack's, else a throwaway embedded server)")
    p.add_argument("--artifact-dir", help="default: $MODELWATCH_HOME/policy_replay_artifacts")
    p.add_argument("--verbose", action="store_true", help="the task bodies' logs too")
    p.set_defaults(func=_policy_replay)

    def _uri(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--uri", help="PostgreSQL URI (default: $AIRFLOW_CONN_MONITORING_DB)")
        return p

    def _person(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--by", help="who acts (default: the OS user)")
        p.add_argument("--at", help="ISO time of the action (default: now)")
        return _uri(p)

    ru = groups.add_parser("rules", help="automated response rules").add_subparsers(dest="cmd", required=True)
    p = _uri(ru.add_parser("list", help="show the rules (with --model: as they apply to that model)"))
    p.add_argument("--model")
    p.set_defaults(func=_rules_list)
    p = _person(ru.add_parser("set", help="change a rule: field=value ... (validated; all or nothing)"))
    p.add_argument("rule")
    p.add_argument(
        "changes", nargs="*", help="threshold=, operator=, retrain_mode=, priority=, cooldown_hours=, enabled="
    )
    p.add_argument("--model", help="change only this model's override")
    p.add_argument("--clear", action="store_true", help="with --model: remove the model's override")
    p.set_defaults(func=_rules_set)

    tr = groups.add_parser("trigger", help="retraining triggers").add_subparsers(dest="cmd", required=True)
    p = _person(tr.add_parser("create", help="manual retraining trigger (a reason is required)"))
    p.add_argument("model")
    p.add_argument("--reason", required=True)
    p.add_argument("--mode", default="full", choices=("full", "incremental"))
    p.add_argument("--priority", default="high", choices=("low", "medium", "high", "critical"))
    p.set_defaults(func=_trigger_create)
    p = _uri(tr.add_parser("list", help="pending and claimed triggers (--all: every trigger)"))
    p.add_argument("--all", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_trigger_list)
    p = _person(tr.add_parser("cancel", help="cancel a pending trigger (a reason is required)"))
    p.add_argument("trigger_id", type=int)
    p.add_argument("--reason", required=True)
    p.set_defaults(func=_trigger_cancel)

    ab = groups.add_parser("ab", help="champion/challenger A/B tests").add_subparsers(dest="cmd", required=True)
    p = _person(ab.add_parser("start", help="start an A/B test of the champion against a registered version"))
    p.add_argument("model")
    p.add_argument("--challenger", type=int, required=True, help="the challenger's version")
    p.add_argument("--split", type=float, default=0.5, help="the challenger's share of units (0..1, exclusive)")
    p.add_argument(
        "--allocation",
        default="fixed",
        choices=("fixed", "thompson"),
        help="thompson: each day moves the split toward the better arm (multi-armed bandit)",
    )
    p.add_argument("--min-samples", type=int, default=100, help="matured paired rows before a promotion")
    p.add_argument("--max-days", type=int, default=60, help="sessions before the test ends inconclusive")
    p.add_argument("--alpha", type=float, default=0.05, help="error rate of the always-valid sequential test")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=_ab_start)
    p = _uri(ab.add_parser("list", help="A/B tests, newest first"))
    p.add_argument("--model")
    p.set_defaults(func=_ab_list)
    p = _uri(ab.add_parser("show", help="a test and its daily results"))
    p.add_argument("test_id", type=int)
    p.set_defaults(func=_ab_show)
    p = _person(ab.add_parser("stop", help="cancel a running test (the champion stays; a reason is required)"))
    p.add_argument("test_id", type=int)
    p.add_argument("--reason", required=True)
    p.set_defaults(func=_ab_stop)

    al = groups.add_parser("alerts", help="monitoring alerts").add_subparsers(dest="cmd", required=True)
    p = _person(al.add_parser("ack", help="acknowledge an open alert"))
    p.add_argument("alert_id", type=int)
    p.set_defaults(func=_alerts_ack)

    from include.modelwatch.ops import cli_label

    cli_label.add_parsers(groups, _person, _uri, _who, _when)
    from include.modelwatch.ops import cli_external

    cli_external.add_parsers(groups, _person, _uri, _who)

    me = groups.add_parser("metrics", help="Prometheus exporter of the monitoring DB").add_subparsers(
        dest="cmd", required=True
    )
    for name, fn, help_ in (
        ("serve", _metrics_serve, "serve /metrics (Prometheus text format) until SIGTERM / Ctrl+C"),
        ("show", _metrics_show, "print one scrape to stdout"),
    ):
        p = _uri(me.add_parser(name, help=help_))
        p.add_argument(
            "--statement-timeout-ms", type=int, default=2000, help="per-query timeout of a scrape (default 2000)"
        )
        if name == "serve":
            p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: no auth)")
            p.add_argument("--port", type=int, default=9464, help="port (default 9464)")
        p.set_defaults(func=fn)

    dev = groups.add_parser("dev", help="local stack").add_subparsers(dest="cmd", required=True)
    p = dev.add_parser(
        "run",
        help="embedded PostgreSQL + Airflow on 127.0.0.1:8080 (make run); "
        "$MODELWATCH_HOME: state dir, $MODELWATCH_PORT: port",
    )
    # defaults as in devstack (REPLAY_START, REPLAY_END), written out so that building the parser imports nothing
    p.add_argument(
        "--replay-start", type=_iso_date, default="2007-01-01", help="first replayed month (default 2007-01-01)"
    )
    p.add_argument(
        "--replay-end", type=_iso_date, default="2009-01-01", help="replay months before this date (default 2009-01-01)"
    )
    p.add_argument(
        "--observe",
        action="store_true",
        help="also start the ModelWatch exporter (9464), node-exporter (9100), Prometheus (9090) and "
        "Alertmanager (9093) on 127.0.0.1 (make observe)",
    )
    p.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help="local: LocalExecutor (default); celery: CeleryExecutor with a local Redis ($MODELWATCH_REDIS_PORT, "
        "default 6380) and two Celery workers (make run EXECUTOR=celery)",
    )
    p.set_defaults(func=_dev_run)
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Cross-argument checks argparse cannot express."""
    if getattr(args, "func", None) is _replay and args.window and (args.start or args.end):
        parser.error("--window names one month: give it or --start/--end, not both")
    if getattr(args, "func", None) is _dev_run and args.replay_start >= args.replay_end:
        parser.error(f"--replay-start {args.replay_start} must be before --replay-end {args.replay_end}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    return int(args.func(args) or 0)
