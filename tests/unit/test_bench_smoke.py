"""`make bench` workers at a tiny size, through the same subprocess path the benchmark uses
(the peers Evidently and NannyML need their own venvs and are not run here)."""

from __future__ import annotations

import pytest

from bench.__main__ import ratio, run_peer


@pytest.mark.parametrize("tool", ["modelwatch", "modelwatch_1t", "sort"])
def test_throughput_worker_reports_time_and_memory(tool):
    r = run_peer(tool, ["throughput", "20000", "10", "7", "trace"], 120)
    assert r["status"] == "ok", r
    assert 0 < r["wall_s"] < r["process_wall_s"]
    assert r["peak_mb"] >= r["peak_mb_before_call"] > 10
    # 20000 x (9 float64 + 1 string column): the numerics alone are 1.37 MB per frame
    assert 2.7 < r["input_mb"] < 20 and r["current_mb"] < r["input_mb"]
    # the call's own allocations stay of the order of its input (at bench sizes, where fixed
    # per-thread buffers no longer count, make bench prints <= 0.25x)
    assert 0 < r["call_peak_mb"] < 2 * r["input_mb"]
    assert r["wall_s"] == min(r["walls_s"]) and len(r["walls_s"]) == 3  # best of 3 quick calls
    if tool.startswith("modelwatch"):
        assert r["profile_s"] > 0  # the reference profile is built, and timed apart from the window


def test_alarm_worker_flags_a_shift_and_not_an_unchanged_window():
    shifted = run_peer("modelwatch", ["alarm", "5000", "2", "one_0.25", "11"], 120)
    calm = run_peer("modelwatch", ["alarm", "5000", "2", "none", "11"], 120)
    assert shifted["status"] == calm["status"] == "ok"
    assert shifted["verdicts"] == [True, True]
    assert calm["verdicts"] == [False, False]


def test_ratio_only_for_two_successful_runs():
    ok = {"status": "ok", "wall_s": 2.0}
    assert ratio(ok, {"status": "ok", "wall_s": 0.5}) == 4.0
    assert ratio(ok, {"status": "timeout"}) is None
