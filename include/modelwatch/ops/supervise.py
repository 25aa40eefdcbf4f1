"""Supervision of the local stack's long-running processes (``make run``).

A component that exits (crashed on a dropped database connection, killed, out of memory) is restarted after a
delay that doubles with each quick exit: 1 s, 2 s, 4 s ... up to 60 s. A component that stayed up for
:attr:`Backoff.stable` seconds counts as healthy again, so its next exit waits the first delay. One component's exit
never stops the others. Each exit is logged::

    [modelwatch] scheduler exited with code -9; restarting in 1s (restart #1)
    [modelwatch] scheduler restarted (pid 12345)

The schedule (:class:`Backoff`) and the decision on an exit (:func:`on_exit`) are pure functions; :class:`Supervisor`
applies them to a dict of processes, one :meth:`Supervisor.tick` at a time (a background thread ticks every second
while the stack runs). Production deployments supervise the same components with systemd, Kubernetes or Docker
Compose restart policies (README "Production deployments").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Proc(Protocol):
    """What the supervisor needs of a process (``subprocess.Popen`` has it)."""

    pid: int

    def poll(self) -> int | None: ...


P = TypeVar("P", bound=Proc)


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``first`` seconds after the first quick exit, times ``factor`` after each further one, at
    most ``cap``; a process that ran ``stable`` seconds or longer starts the schedule again."""

    first: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    stable: float = 120.0

    def __post_init__(self) -> None:
        if not (0 < self.first <= self.cap and self.factor >= 1 and self.stable > 0):
            raise ValueError(f"bad backoff {self}: need 0 < first <= cap, factor >= 1, stable > 0")

    def delay(self, consecutive: int) -> float:
        """Seconds before the restart that follows the ``consecutive``-th quick exit in a row (1, 2, ...)."""
        if consecutive < 1:
            raise ValueError(f"consecutive exits start at 1, got {consecutive}")
        return float(min(self.cap, self.first * self.factor ** (consecutive - 1)))


@dataclass(frozen=True)
class Restart:
    """What to do after an exit: wait ``delay`` seconds, then start the component again. ``consecutive``: quick
    exits in a row including this one; ``number``: restarts of this component since the stack started."""

    delay: float
    consecutive: int
    number: int


def on_exit(backoff: Backoff, *, uptime: float, consecutive: int, restarts: int) -> Restart:
    """The decision on a component's exit after ``uptime`` seconds, given its quick exits in a row so far and its
    restarts so far: always a restart (one component never takes the stack down), after the backoff delay."""
    run = 1 if uptime >= backoff.stable else consecutive + 1
    return Restart(delay=backoff.delay(run), consecutive=run, number=restarts + 1)


def exit_message(name: str, code: int, restart: Restart) -> str:
    return f"{name} exited with code {code}; restarting in {restart.delay:g}s (restart #{restart.number})"


@dataclass
class _State:
    started: float
    consecutive: int = 0
    restarts: int = 0
    due: float | None = None  # when an exited component is started again


class Supervisor(Generic[P]):
    """Keeps the processes of ``procs`` (name -> process, shared with the stack) running.

    ``respawn(name)`` starts a component again and returns its new process (the supervisor puts it into
    ``procs``); ``reap(name, proc)`` cleans up after an exit (e.g. kills what is left of its process group) before
    the restart is scheduled. A name added to ``procs`` later is supervised from the next tick on.
    """

    def __init__(
        self,
        procs: MutableMapping[str, P],
        respawn: Callable[[str], P],
        *,
        backoff: Backoff | None = None,
        say: Callable[[str], None] = print,
        reap: Callable[[str, P], None] = lambda _name, _proc: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.procs, self.respawn, self.reap = procs, respawn, reap
        self.backoff = backoff or Backoff()
        self.say, self.clock = say, clock
        self.state: dict[str, _State] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restarts(self, name: str) -> int:
        return self.state[name].restarts if name in self.state else 0

    def tick(self) -> None:
        """Notice exits and start what is due; never blocks for a backoff delay."""
        with self.lock:
            if self._stop.is_set():
                return
            now = self.clock()
            for name, proc in list(self.procs.items()):
                st = self.state.setdefault(name, _State(started=now))
                if st.due is not None:
                    if now >= st.due:
                        try:
                            self.procs[name] = new = self.respawn(name)
                        except OSError as exc:  # e.g. the binary vanished: try again on the same schedule
                            st.due = None
                            self._exited(name, st, now, f"{name} could not be started ({exc})")
                            continue
                        st.started, st.due = now, None
                        self.say(f"{name} restarted (pid {new.pid})")
                    continue
                code = proc.poll()
                if code is not None:
                    self.reap(name, proc)
                    self._exited(name, st, now, None, code)

    def _exited(self, name: str, st: _State, now: float, why: str | None, code: int | None = None) -> None:
        decision = on_exit(self.backoff, uptime=now - st.started, consecutive=st.consecutive, restarts=st.restarts)
        st.consecutive, st.restarts, st.due = decision.consecutive, decision.number, now + decision.delay
        if why is None:
            self.say(exit_message(name, code if code is not None else -1, decision))
        else:
            self.say(f"{why}; retrying in {decision.delay:g}s (restart #{decision.number})")

    def start(self, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds in a daemon thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(interval):
                self.tick()

        self._thread = threading.Thread(target=loop, name="modelwatch-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No restart from now on (waits for a tick in progress): the stack is being stopped."""
        self._stop.set()
        with self.lock:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
