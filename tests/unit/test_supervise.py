"""Supervision of the local stack (include/modelwatch/ops/supervise.py): the backoff schedule, the decision on an
exit, and the supervisor's ticks against fake processes and a fake clock (the real stack: tests/e2e/test_devstack_
supervision.py)."""

from __future__ import annotations

import pytest

from include.modelwatch.ops import supervise


def test_backoff_doubles_from_one_second_to_the_cap():
    b = supervise.Backoff()
    assert [b.delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


@pytest.mark.parametrize("kwargs", [{"first": 0}, {"first": 10, "cap": 5}, {"factor": 0.5}, {"stable": 0}], ids=str)
def test_a_bad_backoff_is_refused(kwargs):
    with pytest.raises(ValueError, match="bad backoff"):
        supervise.Backoff(**kwargs)


def test_delay_counts_exits_from_one():
    with pytest.raises(ValueError, match="start at 1"):
        supervise.Backoff().delay(0)


def test_quick_exits_back_off_and_a_stable_run_resets_the_schedule():
    b = supervise.Backoff(first=1, cap=60, stable=120)
    r1 = supervise.on_exit(b, uptime=5, consecutive=0, restarts=0)
    assert r1 == supervise.Restart(delay=1, consecutive=1, number=1)
    r2 = supervise.on_exit(b, uptime=3, consecutive=r1.consecutive, restarts=r1.number)
    r3 = supervise.on_exit(b, uptime=3, consecutive=r2.consecutive, restarts=r2.number)
    assert (r2.delay, r3.delay, r3.number) == (2, 4, 3)
    # it then ran for 2 minutes: healthy again, the next exit waits the first delay; the restart count goes on
    r4 = supervise.on_exit(b, uptime=120, consecutive=r3.consecutive, restarts=r3.number)
    assert r4 == supervise.Restart(delay=1, consecutive=1, number=4)


def test_exit_message():
    r = supervise.Restart(delay=4, consecutive=3, number=7)
    assert supervise.exit_message("scheduler", -9, r) == "scheduler exited with code -9; restarting in 4s (restart #7)"


class _Proc:
    _next = 100

    def __init__(self) -> None:
        _Proc._next += 1
        self.pid, self.code = _Proc._next, None

    def poll(self):
        return self.code


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _supervisor(names=("api-server", "scheduler", "triggerer"), **kw):
    procs = {n: _Proc() for n in names}
    said: list[str] = []
    reaped: list[tuple[str, int]] = []
    started: list[str] = []
    clock = _Clock()

    def respawn(name):
        started.append(name)
        return _Proc()

    sup = supervise.Supervisor(
        procs,
        respawn,
        say=said.append,
        reap=lambda name, proc: reaped.append((name, proc.pid)),
        clock=clock,
        backoff=supervise.Backoff(first=1, cap=8, stable=60),
        **kw,
    )
    return sup, procs, said, reaped, started, clock


def test_an_exited_component_is_restarted_after_its_delay_and_the_others_keep_running():
    sup, procs, said, reaped, started, clock = _supervisor()
    others = {n: procs[n] for n in ("api-server", "triggerer")}
    sup.tick()
    old = procs["scheduler"]
    old.code = -9
    clock.now += 10
    sup.tick()
    assert said == ["scheduler exited with code -9; restarting in 1s (restart #1)"]
    assert reaped == [("scheduler", old.pid)] and started == []
    clock.now += 0.5
    sup.tick()
    assert started == []  # not before its delay
    clock.now += 0.5
    sup.tick()
    assert started == ["scheduler"] and procs["scheduler"] is not old
    assert said[-1] == f"scheduler restarted (pid {procs['scheduler'].pid})"
    assert {n: procs[n] for n in others} == others  # untouched
    assert sup.restarts("scheduler") == 1 and sup.restarts("api-server") == 0


def test_a_crash_loop_backs_off_to_the_cap_then_resets_after_a_stable_run():
    sup, procs, said, _, started, clock = _supervisor(names=("triggerer",))
    sup.tick()
    delays = []
    for _ in range(6):
        procs["triggerer"].code = 1
        clock.now += 2  # exits 2 s after each start: a crash loop
        sup.tick()
        delays.append(said[-1].split("restarting in ")[1].split("s ")[0])
        clock.now += 8  # the longest delay (the cap)
        sup.tick()
        assert said[-1].startswith("triggerer restarted")
    assert delays == ["1", "2", "4", "8", "8", "8"]
    clock.now += 100  # now it stays up longer than `stable`
    procs["triggerer"].code = 1
    sup.tick()
    assert said[-1] == "triggerer exited with code 1; restarting in 1s (restart #7)"
    assert len(started) == 6


def test_a_component_added_later_is_supervised_and_nothing_restarts_after_stop():
    sup, procs, said, _, started, clock = _supervisor(names=("scheduler",))
    sup.tick()
    procs["prometheus"] = late = _Proc()
    sup.tick()
    late.code = 2
    clock.now += 1
    sup.tick()
    assert said == ["prometheus exited with code 2; restarting in 1s (restart #1)"]
    sup.stop()
    clock.now += 10
    procs["scheduler"].code = 0
    sup.tick()
    assert started == [] and len(said) == 1


def test_a_component_that_cannot_be_started_is_retried_on_the_schedule():
    procs = {"prometheus": _Proc()}
    said: list[str] = []
    clock = _Clock()
    attempts = []

    def respawn(name):
        attempts.append(clock.now)
        if len(attempts) < 2:
            raise FileNotFoundError("/usr/bin/prometheus")
        return _Proc()

    sup = supervise.Supervisor(procs, respawn, say=said.append, clock=clock, backoff=supervise.Backoff(stable=60))
    sup.tick()
    procs["prometheus"].code = 1
    clock.now += 1
    sup.tick()
    clock.now += 1
    sup.tick()
    assert said[-1] == "prometheus could not be started (/usr/bin/prometheus); retrying in 2s (restart #2)"
    clock.now += 2
    sup.tick()
    assert said[-1].startswith("prometheus restarted") and len(attempts) == 2
