"""`make bench` workers at a tiny size, through the same subprocess path the benchmark uses
(the peers Evidently and NannyML need their own venvs and are not run here)."""

from __future__ import annotations

import pytest

from bench.__main__ import _heavy_rates, ratio, run_peer


@pytest.mark.parametrize("tool", ["modelwatch", "modelwatch_1t"])
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
    assert r["profile_s"] > 0  # the reference profile is built, and timed apart from the window
    # the floor is timed in the same process before and after the engine's calls: the best of the two
    assert r["floor_s"] == min(r["floor_before_after_s"]) > 0
    assert r["over_floor"] == pytest.approx(r["wall_s"] / r["floor_s"])


def test_alarm_worker_flags_a_shift_and_not_an_unchanged_window():
    shifted = run_peer("modelwatch", ["alarm", "5000", "2", "one_0.25", "11"], 120)
    calm = run_peer("modelwatch", ["alarm", "5000", "2", "none", "11"], 120)
    assert shifted["status"] == calm["status"] == "ok"
    assert shifted["verdicts"] == [True, True]
    assert calm["verdicts"] == [False, False]


def test_heavy_tailed_worker_reports_the_columns_flagged():
    scaled = run_peer("modelwatch", ["columns", "10000", "2", "t3_scale_1.3", "13"], 120)
    calm = run_peer("modelwatch", ["columns", "10000", "2", "heavy_none", "13"], 120)
    assert scaled["status"] == calm["status"] == "ok"
    assert scaled["changed"] == "num_0" and calm["changed"] is None
    # the 1.3x scale change of the t(3) column is found, and nothing else
    assert [w["columns"] for w in scaled["windows"]] == [["num_0"], ["num_0"]]
    assert [w["columns"] for w in calm["windows"]] == [[], []]
    rates = _heavy_rates({**scaled, "windows": scaled["windows"] + [{"columns": ["num_3"], "window": True}]})
    assert rates == {"n": 3, "false_alarm_rate": 1 / 3, "detection_rate": 2 / 3}


def test_ratio_only_for_two_successful_runs():
    ok = {"status": "ok", "wall_s": 2.0}
    assert ratio(ok, {"status": "ok", "wall_s": 0.5}) == 4.0
    assert ratio(ok, {"status": "timeout"}) is None
