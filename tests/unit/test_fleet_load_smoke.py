"""bench/fleet_load.py's pure parts at a tiny size: the fleet generator (2 models x 3 features x 100 rows) against
the external-model contract's own checks, the start-up / work split of a task log, and the projection."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from bench import fleet_load as fl
from include.modelwatch.external import register, schema
from include.modelwatch.vocabulary import prob_columns


def test_fleet_members_are_champion_and_challenger_with_every_fifth_shifted():
    members = fl.fleet_members(5)
    assert [(m.model, m.version, m.alias) for m in members] == [
        ("fleet_000", 1, "champion"),
        ("fleet_000", 2, "challenger"),
        ("fleet_001", 1, "champion"),
        ("fleet_001", 2, "challenger"),
        ("fleet_002", 1, "champion"),
    ]
    assert [m.shifted for m in members] == [False, False, False, False, True]
    assert len({m.seed for m in members}) == 5


def test_generated_spec_reference_and_batch_pass_the_contract(tmp_path):
    members = fl.fleet_members(4)[::2]  # 2 models, their champions
    files = fl.write_fleet(members, 3, 100, 120, tmp_path / "fleet", tmp_path / "inbox")
    assert len(files) == 2
    for m, spec_path, ref_path in files:
        spec = schema.load_spec(spec_path)
        assert spec.name == m.model and spec.feature_names == ["feat_00", "feat_01", "feat_02"]
        ref, proba = register.check_reference(spec, register.read_frame(ref_path), ref_path.name)
        assert len(ref) == 120 and proba.shape == (120, 3)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
        assert ref["ts"].max() < fl.WINDOW_START  # live from the benchmark day on
        batch = register.read_frame(tmp_path / "inbox" / "predictions" / f"{m.model}_v{m.version}.parquet")
        cols = ["model_name", "model_version", "symbol", "timeframe", "ts", *spec.feature_names]
        assert set(cols + prob_columns(list(spec.classes)) + ["predicted_label"]) == set(batch.columns)
        assert len(batch) == 100 and batch["ts"].is_unique
        assert batch["ts"].min() == fl.WINDOW_START and batch["ts"].max() < fl.WINDOW_END
        assert (batch["model_name"] == m.model).all() and (batch["model_version"] == m.version).all()
    assert not list((tmp_path / "inbox" / "predictions").glob(".*"))  # every dot name was renamed


def test_a_shifted_batch_moves_the_first_ten_features_only():
    calm, shifted = fl.fleet_members(5)[0], fl.fleet_members(5)[4]
    assert shifted.shifted and not calm.shifted
    b = fl.batch_frame(shifted, 12, 4000)
    same_seed = fl.batch_frame(fl.Member(shifted.model, shifted.version, shifted.alias, False, shifted.seed), 12, 4000)
    moved = (b["feat_00"] - same_seed["feat_00"]).mean() / same_seed["feat_00"].std()
    assert moved == pytest.approx(0.5, abs=0.05)
    assert (b["feat_11"] == same_seed["feat_11"]).all()


def _log(path, lines):
    path.write_text("\n".join(json.dumps({"timestamp": ts, "event": e}) for ts, e in lines) + "\nnot json\n")
    return path


def test_breakdown_splits_a_chunk_task_into_start_up_and_work(tmp_path):
    log = _log(
        tmp_path / "attempt=1.log",
        [
            ("2025-01-06T10:00:01.000000Z", "::group::Pre Execute"),
            ("2025-01-06T10:00:02.000000Z", "::endgroup::"),
            ("2025-01-06T10:00:07.000000Z", "summary: fleet_000 v1 window 2025-01-06 10:00..2025-01-06 11:00: ..."),
            ("2025-01-06T10:00:09.000000Z", "summary: fleet_000 v2 window 2025-01-06 10:00..2025-01-06 11:00: ..."),
            ("2025-01-06T10:00:11.000000Z", "summary: fleet_001 v1 window 2025-01-06 10:00..2025-01-06 11:00: ..."),
            ("2025-01-06T10:00:11.500000Z", "summary: chunk 1/1: fleet_000 v1, ...: 3 of 3 version(s) checked"),
            ("2025-01-06T10:00:11.600000Z", "Done. Returned value was: {...}"),
        ],
    )
    ti = {
        "task_id": "check_window",
        "map_index": 0,
        "state": "success",
        "queued_when": "2025-01-06T09:59:59.500000Z",
        "start_date": "2025-01-06T10:00:00.000000Z",
        "end_date": "2025-01-06T10:00:12.000000Z",
        "duration": 12.0,
    }
    b = fl.breakdown(ti, fl.log_events(log))
    assert b["queued_s"] == 0.5 and b["pre_execute_s"] == 2.0
    assert b["body_s"] == 9.6 and b["post_s"] == 0.4
    assert b["versions"] == 3 and b["per_version_s"] == 2.0
    assert b["work_s"] == 6.0 and b["startup_s"] == 6.0  # the first version's 5 s hold the imports


def test_breakdown_of_a_task_without_versions_counts_its_body_as_work(tmp_path):
    log = _log(
        tmp_path / "a.log",
        [
            ("2025-01-06T10:00:01Z", "::endgroup::"),
            ("2025-01-06T10:00:03Z", "Done. Returned value was: []"),
        ],
    )
    ti = {"task_id": "choose_paths", "map_index": -1, "state": "success", "duration": 4.0}
    ti |= {"start_date": "2025-01-06T10:00:00Z", "end_date": "2025-01-06T10:00:04Z", "queued_when": None}
    b = fl.breakdown(ti, fl.log_events(log))
    assert b["queued_s"] is None and b["work_s"] == 2.0 and b["startup_s"] == 2.0 and b["versions"] == 0
    assert fl.breakdown({**ti, "start_date": None}, []) == {
        "task_id": "choose_paths",
        "map_index": -1,
        "state": "success",
        "queued_s": None,
        "duration_s": 4.0,
    }


def test_summarize_and_project():
    rows = [
        {"task_id": "check_window", "state": "success", "duration_s": 20.0, "startup_s": 6.0, "work_s": 14.0},
        {"task_id": "check_window", "state": "success", "duration_s": 30.0, "startup_s": 8.0, "work_s": 22.0},
        {"task_id": "compute_drift", "state": "success", "duration_s": 18.0, "startup_s": 6.0, "work_s": 12.0},
        {"task_id": "compute_drift", "state": "success", "duration_s": 18.0, "startup_s": 8.0, "work_s": 12.0},
        {"task_id": "record_empty_window", "state": "skipped", "duration_s": 0.0},
    ]
    tasks = fl.summarize_tasks(rows)
    assert tasks["check_window"] == {
        "instances": 2,
        "ran": 2,
        "median_duration_s": 25.0,
        "sum_duration_s": 50.0,
        "median_startup_s": 7.0,
        "sum_startup_s": 14.0,
        "median_work_s": 18.0,
        "sum_work_s": 36.0,
    }
    assert tasks["record_empty_window"] == {"instances": 1, "ran": 0}
    result = {
        "versions": 10,
        "chunks": 2,
        "tasks": tasks,
        "run": {"wall_s": 70.0, "task_instances": 10, "cpu_s": {"task processes": 30.0}},
        "phase_wall_s": {"check_window": 30.0, "compute_drift": 20.0},
        "db_growth_per_day_mb": {"monitoring_drift_run": 2.0, "predictions_ingest": 100.0},
    }
    p = fl.project(result, versions=100, slots=(2, 4))
    assert p["per_version_cpu_s"] == 3.0 and p["startup_s_per_chunk_task"] == 7.0 and p["rest_s"] == 20.0
    # 2 slots: 2 chunks of 50; check_window's share of the work 36/60: 7 + 50 * 3 * 0.6 = 97, compute 7 + 60 = 67
    assert p["by_slots"][0] == {
        "slots": 2,
        "chunks": 2,
        "versions_per_chunk": 50,
        "task_instances": 10,
        "wall_s": 184,
        "cpu_s": 328,
    }
    assert p["by_slots"][1]["task_instances"] == 14 and p["by_slots"][1]["versions_per_chunk"] == 25
    assert p["db_growth_per_day_mb"] == 20.0 and p["ingest_growth_per_day_mb"] == 1000.0
    assert "monitoring_db" in p["assumptions"]


def test_growth_keeps_changed_tables_largest_first():
    assert fl.growth({"a": 10, "b": 5, "c": 1}, {"a": 10, "b": 905, "c": 41, "d": 8192}) == {
        "d": 8192,
        "b": 900,
        "c": 40,
    }


def test_when_reads_airflow_timestamps():
    assert fl._when("2025-01-06T10:00:00Z") == datetime(2025, 1, 6, 10, tzinfo=UTC)
    assert fl._when(None) is None


def test_every_feature_stays_inside_its_declared_range_at_full_size():
    """A value outside a feature's registered range refuses the whole batch (the feed's GX check)."""
    spec = schema.parse_spec(fl.spec_of(fl.fleet_members(5)[4], 8))
    batch = fl.batch_frame(fl.fleet_members(5)[4], 8, 10_000)  # shifted: its first ten features moved
    for f in spec.features:
        assert f.min is not None and f.max is not None
        assert f.min <= batch[f.name].min() and batch[f.name].max() <= f.max, f.name
