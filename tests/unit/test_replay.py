"""The replay's orchestration (include/modelwatch/ops/replay.py) against a recording stand-in for Airflow's REST
API: run ids, the order of stages and the run prefix that re-runs months."""

from __future__ import annotations

from datetime import date

import pytest

from include.modelwatch.ops import replay


class _Api:
    """Records what the replay asks of Airflow; a run that exists is not triggered again (as the real API)."""

    def __init__(self, existing: set[tuple[str, str]] = frozenset()) -> None:  # type: ignore[assignment]
        self.runs: dict[tuple[str, str], str] = {k: "success" for k in existing}
        self.calls: list[tuple[str, str, str]] = []
        self.logical: list[bool] = []

    def wait_for_dag(self, dag_id: str) -> None:
        self.calls.append(("wait_for_dag", dag_id, ""))

    def trigger(self, dag_id, run_id, start, end, conf=None, *, logical=True) -> str:
        if (dag_id, run_id) in self.runs:
            return self.runs[(dag_id, run_id)]
        self.calls.append(("trigger", dag_id, run_id))
        self.logical.append(logical)
        self.runs[(dag_id, run_id)] = "success"
        return "queued"

    def wait(self, dag_id: str, run_id: str) -> str:
        return self.runs[(dag_id, run_id)]


def test_replay_runs_each_month_through_the_stages_in_order():
    api = _Api()
    windows = replay.month_windows(date(2008, 1, 1), date(2008, 3, 1))
    tally = replay.replay(api, windows, [("score_signals",), ("drift_hourly", "ab_test_daily")], say=lambda _: None)
    triggered = [(d, r) for kind, d, r in api.calls if kind == "trigger"]
    assert triggered == [
        ("score_signals", "replay__2008-01"),
        ("drift_hourly", "replay__2008-01"),
        ("ab_test_daily", "replay__2008-01"),
        ("score_signals", "replay__2008-02"),
        ("drift_hourly", "replay__2008-02"),
        ("ab_test_daily", "replay__2008-02"),
    ]
    assert tally == {d: {"success": 2} for d in ("score_signals", "drift_hourly", "ab_test_daily")}
    assert api.logical == [True] * 6  # the months as logical dates and data intervals


def test_existing_runs_are_skipped_and_a_prefix_re_runs_the_months():
    done = {("score_signals", "replay__2008-01"), ("ab_test_daily", "replay__2008-01")}
    api = _Api(done)
    windows = replay.month_windows(date(2008, 1, 1), date(2008, 2, 1))
    replay.replay(api, windows, [("score_signals",), ("ab_test_daily",)], say=lambda _: None)
    assert [c for c in api.calls if c[0] == "trigger"] == []  # both runs exist: nothing triggered
    replay.replay(api, windows, [("score_signals",), ("ab_test_daily",)], say=lambda _: None, run_prefix="abtest1")
    assert [(d, r) for kind, d, r in api.calls if kind == "trigger"] == [
        ("score_signals", "abtest1__2008-01"),
        ("ab_test_daily", "abtest1__2008-01"),
    ]
    assert api.logical == [False, False]  # a month has one logical date: the re-runs carry their window in params


def test_a_re_run_is_posted_without_a_logical_date_and_with_its_window_in_params():
    from datetime import UTC, datetime

    api = replay.AirflowApi("http://airflow.invalid", "u", "p")
    sent: list[tuple[str, str, object]] = []

    def request(method, path, body=None):
        sent.append((method, path, body))
        return (404, None) if method == "GET" else (200, {})

    api._request = request  # type: ignore[method-assign]
    start, end = datetime(2008, 1, 1, tzinfo=UTC), datetime(2008, 2, 1, tzinfo=UTC)
    assert api.trigger("score_signals", "abtest1__2008-01", start, end, logical=False) == "queued"
    assert api.trigger("score_signals", "replay__2008-01", start, end) == "queued"
    posts = [b for m, _, b in sent if m == "POST"]
    assert posts[0]["logical_date"] is None and "data_interval_start" not in posts[0]
    assert posts[0]["conf"] == {"window_start": "2008-01-01T00:00:00+00:00", "window_end": "2008-02-01T00:00:00+00:00"}
    assert posts[1]["logical_date"] == posts[1]["data_interval_start"] == "2008-01-01T00:00:00+00:00"
    assert posts[1]["data_interval_end"] == "2008-02-01T00:00:00+00:00" and posts[1]["conf"] == {}


def test_a_refused_trigger_is_an_error_not_a_wait():
    from datetime import UTC, datetime

    api = replay.AirflowApi("http://airflow.invalid", "u", "p")
    api._request = lambda method, path, body=None: (404, None) if method == "GET" else (409, {"detail": "dup"})  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match=r"trigger score_signals abtest1__2008-01 refused \(409\).*--rerun"):
        api.trigger(
            "score_signals", "abtest1__2008-01", datetime(2008, 1, 1, tzinfo=UTC), datetime(2008, 2, 1, tzinfo=UTC)
        )


class _Airflow:
    """A stand-in for Airflow's REST API behind AirflowApi._request: runs by (dag, run id) with their logical date;
    a second run for a logical date is refused with 409, as Airflow does; clear re-queues a run."""

    def __init__(self, runs: dict[tuple[str, str], str]) -> None:
        self.runs = dict(runs)  # (dag_id, run_id) -> logical date (ISO)
        self.state: dict[tuple[str, str], str] = {k: "success" for k in runs}
        self.log: list[tuple[str, str, str]] = []

    def __call__(self, method, path, body=None):
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(path)
        seg = parts.path.split("/")  # ['', 'api', 'v2', 'dags', dag, 'dagRuns', run?, 'clear'?]
        dag = seg[4]
        if method == "GET" and len(seg) == 7:
            key = (dag, seg[6])
            return (200, {"state": self.state[key]}) if key in self.state else (404, {"detail": "not found"})
        if method == "GET":
            q = parse_qs(parts.query)
            day = unquote(q["logical_date_gte"][0])
            assert q["logical_date_lte"] == q["logical_date_gte"]
            found = [{"dag_run_id": r} for (d, r), ld in self.runs.items() if d == dag and ld == day]
            return 200, {"dag_runs": found, "total_entries": len(found)}
        if method == "POST" and seg[-1] == "clear":
            assert body == {"dry_run": False, "only_failed": False}
            self.log.append(("clear", dag, seg[6]))
            self.state[(dag, seg[6])] = "success"  # re-ran
            return 200, {"state": "queued"}
        if any(d == dag and ld == body["logical_date"] for (d, _), ld in self.runs.items()):
            return 409, {"detail": "Serious error"}
        self.log.append(("trigger", dag, body["dag_run_id"]))
        self.runs[(dag, body["dag_run_id"])] = body["logical_date"]
        self.state[(dag, body["dag_run_id"])] = "success"
        return 200, {}


def _api(fake: _Airflow) -> replay.AirflowApi:
    api = replay.AirflowApi("http://airflow.invalid", "u", "p", _token="t")
    api._request = fake  # type: ignore[method-assign]
    api.wait_for_dag = lambda dag_id, timeout=0: None  # type: ignore[method-assign]
    return api


def test_rerun_plan_clears_what_exists_and_triggers_the_rest():
    plan = replay.rerun_plan(["a", "b", "c"], "replay__2008-10", {"a": "replay__2008-10", "b": "manual__x", "c": None})
    assert [(s.dag_id, s.action, s.run_id) for s in plan] == [
        ("a", "clear", "replay__2008-10"),
        ("b", "clear", "manual__x"),
        ("c", "trigger", "replay__2008-10"),
    ]


def test_rerun_of_a_window_clears_existing_runs_and_triggers_only_the_missing_ones():
    oct08 = "2008-10-01T00:00:00+00:00"
    fake = _Airflow(
        {
            ("score_signals", "replay__2008-10"): oct08,
            ("drift_hourly", "manual__2008-10-01T00:00:00+00:00"): oct08,  # same logical date, another run id
        }
    )
    api = _api(fake)
    windows = replay.month_windows(date(2008, 10, 1), date(2008, 11, 1))
    said: list[str] = []
    stages = [("score_signals",), ("drift_hourly", "ab_test_daily")]
    # without --rerun: the existing run is re-used, the other run id of the same logical date is refused with 409
    with pytest.raises(
        RuntimeError,
        match=r"drift_hourly already has a run for logical date 2008-10-01.*--window "
        r"2008-10 --rerun",
    ):
        replay.replay(api, windows, stages, say=said.append)
    fake.log.clear()
    tally = replay.replay(api, windows, stages, say=said.append, rerun=True)
    assert fake.log == [
        ("clear", "score_signals", "replay__2008-10"),
        ("clear", "drift_hourly", "manual__2008-10-01T00:00:00+00:00"),
        ("trigger", "ab_test_daily", "replay__2008-10"),
    ]
    assert tally == {d: {"success": 1} for d in ("score_signals", "drift_hourly", "ab_test_daily")}
    assert said[:3] == [
        "re-run 2008-10 score_signals: cleared its run replay__2008-10",
        "re-run 2008-10 drift_hourly: cleared its run manual__2008-10-01T00:00:00+00:00",
        "re-run 2008-10 ab_test_daily: no run yet, triggered replay__2008-10",
    ]


def test_a_failed_clear_is_an_error_naming_the_run():
    from datetime import UTC, datetime

    api = replay.AirflowApi("http://airflow.invalid", "u", "p", _token="t")
    api._request = lambda method, path, body=None: (  # type: ignore[method-assign]
        (200, {"state": "success"}) if method == "GET" else (404, {"detail": "gone"})
    )
    with pytest.raises(RuntimeError, match=r"clear score_signals replay__2008-10 failed \(404\)"):
        api.rerun(
            "score_signals", "replay__2008-10", datetime(2008, 10, 1, tzinfo=UTC), datetime(2008, 11, 1, tzinfo=UTC)
        )


class _SlowApi:
    """A real HTTP server on 127.0.0.1 that answers each request after the next delay of ``delays`` (seconds)."""

    def __init__(self, delays: list[float]) -> None:
        import http.server
        import threading
        import time

        self.delays, self.requests = list(delays), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.requests.append(self.command)
                time.sleep(outer.delays.pop(0) if outer.delays else 0.0)
                body = b'{"state": "success"}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting
                    pass

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_read_the_api_server_is_too_slow_to_answer_is_retried(monkeypatch):
    monkeypatch.setattr(replay, "REQUEST_TIMEOUT", 0.5)
    monkeypatch.setattr(replay, "READ_BACKOFF", 0.0)
    server = _SlowApi([2.0, 2.0, 0.0])
    try:
        api = replay.AirflowApi(server.url, "admin", "admin", _token="t")
        assert api.run_state("score_signals", "replay__2008-01") == "success"
        assert server.requests == ["GET", "GET", "GET"]
    finally:
        server.close()


def test_a_read_gives_up_after_its_attempts_and_a_write_is_never_sent_twice(monkeypatch):
    monkeypatch.setattr(replay, "REQUEST_TIMEOUT", 0.3)
    monkeypatch.setattr(replay, "READ_BACKOFF", 0.0)
    server = _SlowApi([1.0] * (replay.READ_ATTEMPTS + 1))
    try:
        api = replay.AirflowApi(server.url, "admin", "admin", _token="t")
        with pytest.raises(
            RuntimeError, match=rf"GET .*/dagRuns/replay__2008-01: no answer after {replay.READ_ATTEMPTS}"
        ):
            api.run_state("score_signals", "replay__2008-01")
        assert server.requests == ["GET"] * replay.READ_ATTEMPTS
        with pytest.raises(RuntimeError, match="POST .*: no answer after 1 attempts"):
            api._request("POST", "/api/v2/dags/score_signals/dagRuns", {"dag_run_id": "x"})
        assert server.requests == ["GET"] * replay.READ_ATTEMPTS + ["POST"]
    finally:
        server.close()
