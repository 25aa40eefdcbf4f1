"""The dev stack's port (``MODELWATCH_PORT``) and the replay range of ``dev run`` (``--replay-start/--replay-end``):
what ``make browser`` relies on to start a second stack beside a user's ``make run``."""

from __future__ import annotations

import socket
from datetime import date

import pytest

from include.modelwatch.ops import cli, devstack, replay

MONITORING_URI = "postgresql://postgres@/modelwatch?host=/tmp/nowhere"


def test_port_defaults_to_8080(monkeypatch):
    monkeypatch.delenv("MODELWATCH_PORT", raising=False)
    assert devstack.port() == 8080
    assert devstack.base_url() == "http://127.0.0.1:8080"


def test_port_from_env(monkeypatch):
    monkeypatch.setenv("MODELWATCH_PORT", " 18517 ")
    assert devstack.port() == 18517
    assert devstack.base_url() == "http://127.0.0.1:18517"


@pytest.mark.parametrize(("raw", "why"), [("abc", "not a port number"), ("0", "1..65535"), ("65536", "1..65535")])
def test_bad_port_is_refused_naming_the_variable(monkeypatch, raw, why):
    monkeypatch.setenv("MODELWATCH_PORT", raw)
    with pytest.raises(SystemExit) as exc:
        devstack.port()
    assert f"MODELWATCH_PORT={raw!r}" in str(exc.value) and why in str(exc.value)


def test_airflow_env_uses_the_port_everywhere(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELWATCH_PORT", "18517")
    env = devstack.airflow_env(tmp_path, "postgresql+psycopg://x", MONITORING_URI, base={})
    assert env["AIRFLOW__API__PORT"] == "18517"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18517/execution/"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:18517/"  # page links in logs and mails
    assert env["MODELWATCH_HOME"] == str(tmp_path)
    own = devstack.airflow_env(
        tmp_path, "postgresql+psycopg://x", MONITORING_URI, base={"AIRFLOW__API__BASE_URL": "https://mw.example/"}
    )
    assert own["AIRFLOW__API__BASE_URL"] == "https://mw.example/"


def test_airflow_env_default_port_is_unchanged(monkeypatch, tmp_path):
    monkeypatch.delenv("MODELWATCH_PORT", raising=False)
    env = devstack.airflow_env(tmp_path, "postgresql+psycopg://x", MONITORING_URI, base={})
    assert env["AIRFLOW__API__PORT"] == "8080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"


def test_replay_command_targets_the_stack_port_and_range(monkeypatch):
    monkeypatch.setenv("MODELWATCH_PORT", "18517")
    cmd = devstack.replay_command(date(2008, 6, 1), date(2009, 1, 1))
    assert cmd[1:] == [
        "-m",
        "include.modelwatch",
        "replay",
        "--url",
        "http://127.0.0.1:18517",
        "--start",
        "2008-06-01",
        "--end",
        "2009-01-01",
    ]
    monkeypatch.delenv("MODELWATCH_PORT")
    default = devstack.replay_command()
    assert default[default.index("--url") + 1] == "http://127.0.0.1:8080"
    assert default[default.index("--start") + 1 :] == ["2007-01-01", "--end", "2009-01-01"]


def test_replay_command_parses_with_the_replay_subcommand(monkeypatch):
    monkeypatch.setenv("MODELWATCH_PORT", "18517")
    args = cli.build_parser().parse_args(devstack.replay_command(date(2008, 6, 1), date(2009, 1, 1))[3:])
    assert (args.url, args.start, args.end) == ("http://127.0.0.1:18517", "2008-06-01", "2009-01-01")


def _record_run(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(devstack, "run", lambda **kw: calls.append(kw) or 0)
    return calls


def test_dev_run_defaults_replay_2007_2008(monkeypatch):
    calls = _record_run(monkeypatch)
    assert cli.main(["dev", "run"]) == 0
    assert calls == [
        {"replay_start": date(2007, 1, 1), "replay_end": date(2009, 1, 1), "observe": False, "executor": "local"}
    ]
    assert (devstack.REPLAY_START, devstack.REPLAY_END) == (date(2007, 1, 1), date(2009, 1, 1))


def test_dev_run_passes_the_replay_range(monkeypatch):
    calls = _record_run(monkeypatch)
    argv = ["dev", "run", "--replay-start", "2008-06-01", "--replay-end", "2008-12-01", "--observe"]
    assert cli.main([*argv, "--executor", "celery"]) == 0
    assert calls == [
        {"replay_start": date(2008, 6, 1), "replay_end": date(2008, 12, 1), "observe": True, "executor": "celery"}
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replay-start", "June 2008"], "'June 2008' is not an ISO date"),
        (["--replay-end", "2008-13-01"], "'2008-13-01' is not an ISO date"),
        (["--replay-start", "2009-01-01"], "--replay-start 2009-01-01 must be before --replay-end 2009-01-01"),
        (["--replay-start", "2008-06-01", "--replay-end", "2008-05-01"], "must be before --replay-end 2008-05-01"),
    ],
)
def test_dev_run_refuses_a_bad_range_without_starting(monkeypatch, capsys, argv, message):
    calls = _record_run(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        cli.main(["dev", "run", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert calls == []


def test_replay_subcommand_defaults_to_the_stack_url(monkeypatch):
    monkeypatch.setenv("MODELWATCH_PORT", "18517")
    seen: dict[str, object] = {}

    def fake_replay(api, windows, stages, run_prefix, rerun):
        seen.update(url=api.base_url, windows=windows, stages=stages, run_prefix=run_prefix, rerun=rerun)
        return {"score_signals": {"success": len(windows)}}

    monkeypatch.setattr(replay, "replay", fake_replay)
    assert cli.main(["replay", "--start", "2008-06-01", "--end", "2008-08-01"]) == 0
    assert seen["url"] == "http://127.0.0.1:18517"
    assert [w[0].date() for w in seen["windows"]] == [date(2008, 6, 1), date(2008, 7, 1)]
    assert seen["run_prefix"] == "replay"  # make run's runs: a month's logical date and data interval
    assert seen["rerun"] is False
    assert cli.main(["replay", "--window", "2008-12", "--rerun", "--stages", "modelwatch_healthcheck"]) == 0
    assert [w[0].date() for w in seen["windows"]] == [date(2008, 12, 1)]
    assert [w[1].date() for w in seen["windows"]] == [date(2009, 1, 1)]
    assert seen["rerun"] is True and seen["stages"] == [("modelwatch_healthcheck",)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--window", "2008-13"], "'2008-13' is not a month (YYYY-MM"),
        (["--window", "2008-10", "--start", "2008-01-01"], "--window names one month"),
    ],
)
def test_replay_refuses_a_bad_window(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(replay, "replay", lambda *a, **k: pytest.fail("must not replay"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_port_in_use_and_start_refuses_a_taken_port(monkeypatch, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        taken = srv.getsockname()[1]
        assert devstack.port_in_use("127.0.0.1", taken)
        monkeypatch.setenv("MODELWATCH_PORT", str(taken))
        stack = devstack.Stack(home=tmp_path)
        with pytest.raises(SystemExit) as exc:
            stack.start_airflow()
        assert f"127.0.0.1:{taken} is already in use" in str(exc.value) and "MODELWATCH_PORT" in str(exc.value)
        assert stack.procs == {}
    assert not devstack.port_in_use("127.0.0.1", taken)


def test_processes_of_finds_what_a_stack_left_running(tmp_path):
    """Stack.stop() kills the task processes a stopped scheduler leaves behind (they detach into their own
    process group): found by the state dir in their environment and a word of their command line."""
    import os
    import subprocess
    import sys

    from include.modelwatch.ops import devstack

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", "airflow-probe"]
    ours = subprocess.Popen(sleeper, env={**os.environ, "MODELWATCH_HOME": str(tmp_path)})
    other = subprocess.Popen(sleeper, env={k: v for k, v in os.environ.items() if k != "MODELWATCH_HOME"})
    try:
        assert devstack.processes_of(tmp_path, command=b"airflow-probe") == [ours.pid]
        assert devstack.processes_of(tmp_path, command=b"postgres") == []
    finally:
        for p in (ours, other):
            p.kill()
            p.wait()


def test_every_listener_of_the_stack_binds_127_0_0_1_only(monkeypatch, tmp_path):
    """Dev mode binds 127.0.0.1 only: the API server by --host; the scheduler's and triggerer's log servers (Airflow
    binds them to every interface, with no host option) are not started; no scheduler health server; PostgreSQL
    has no TCP listener (a Unix socket: ``-h ""`` of pgserver)."""
    monkeypatch.setenv("MODELWATCH_PORT", "18517")
    commands = {comp: devstack.airflow_command("airflow", comp, 18517) for comp in devstack.COMPONENTS}
    assert commands == {
        "api-server": ["airflow", "api-server", "--host", "127.0.0.1", "--port", "18517"],
        "scheduler": ["airflow", "scheduler", "--skip-serve-logs"],
        "dag-processor": ["airflow", "dag-processor"],
        "triggerer": ["airflow", "triggerer", "--skip-serve-logs"],
    }
    env = devstack.airflow_env(tmp_path, "postgresql+psycopg://x", MONITORING_URI, base={})
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "False"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    assert "127.0.0.1 only" in devstack.DEV_MODE_NOTICE and "admin/admin" in devstack.DEV_MODE_NOTICE


def test_the_airflow_cli_accepts_skip_serve_logs():
    """The flag exists for both components in this Airflow version (else they would not start)."""
    from airflow.cli import cli_config

    for name in ("scheduler", "triggerer"):
        command = next(c for c in cli_config.core_commands if c.name == name)
        flags = {f for arg in command.args for f in arg.flags}
        assert "--skip-serve-logs" in flags, name
