"""drift_hourly's fleet in chunks (include.modelwatch.monitoring.drift.fleet), the path of a version whose check
failed, and the per-version isolation of a chunk's task bodies (include.tasks.drift)."""

from __future__ import annotations

import logging

import pytest

from include.modelwatch.decisions import TASK_COMPUTE_DRIFT, TASK_DQ_ALERT, TASK_RECORD_EMPTY, choose_drift_path
from include.modelwatch.monitoring.drift import fleet


def _fleet(n: int, model: str = "m") -> list[dict]:
    return [{"model_name": model, "version": v} for v in range(1, n + 1)]


@pytest.mark.parametrize(
    ("n", "count", "size"),
    [(0, 0, 0), (1, 1, 1), (4, 1, 4), (7, 1, 7), (8, 2, 4), (32, 8, 4), (33, 8, 5), (50, 8, 7), (300, 8, 38)],
)
def test_as_many_chunks_as_fit_the_minimum_size_at_most_max_chunks(n, count, size):
    assert (fleet.chunk_count(n), fleet.chunk_size(n)) == (count, size)


@pytest.mark.parametrize("n", [1, 3, 4, 5, 9, 31, 32, 33, 50, 63, 64, 65, 299, 300])
def test_every_version_in_exactly_one_chunk_of_almost_equal_size(n):
    chunks = fleet.chunk_fleet(_fleet(n))
    sizes = [len(c["targets"]) for c in chunks]
    assert [t["version"] for c in chunks for t in c["targets"]] == list(range(1, n + 1))
    assert len(chunks) <= fleet.MAX_CHUNKS
    assert max(sizes) - min(sizes) <= 1
    assert sorted(sizes, reverse=True) == sizes  # the larger chunks first
    assert [(c["chunk"], c["of"]) for c in chunks] == [(i, len(chunks)) for i in range(1, len(chunks) + 1)]
    assert min(sizes) >= min(n, fleet.MIN_CHUNK_SIZE)  # never a short leftover chunk
    assert max(sizes) == fleet.chunk_size(n)


def test_fifty_versions_make_eight_chunks_of_six_or_seven():
    chunks = fleet.chunk_fleet(_fleet(50))
    assert [len(c["targets"]) for c in chunks] == [7, 7, 6, 6, 6, 6, 6, 6]


def test_a_small_fleet_is_one_chunk_and_no_fleet_no_chunk():
    assert fleet.chunk_fleet([]) == []
    (only,) = fleet.chunk_fleet(_fleet(3))
    assert only == {
        "chunk": 1,
        "of": 1,
        "label": "chunk 1/1: m v1, m v2, m v3",
        "targets": [{"model_name": "m", "version": v} for v in (1, 2, 3)],
    }


def test_order_is_by_model_then_version_whatever_the_input_order():
    targets = [
        {"model_name": "spx_signal", "version": 10, "aliases": ["challenger"]},
        {"model_name": "ixic", "version": 3, "aliases": ["champion"]},
        {"model_name": "spx_signal", "version": 2, "aliases": ["champion"]},
    ]
    first = fleet.chunk_fleet(targets)
    assert [(t["model_name"], t["version"]) for t in first[0]["targets"]] == [
        ("ixic", 3),
        ("spx_signal", 2),
        ("spx_signal", 10),
    ]
    assert first[0]["targets"][0]["aliases"] == ["champion"]  # the target's fields travel with it
    assert fleet.chunk_fleet(list(reversed(targets))) == first


def test_a_version_listed_twice_is_refused():
    with pytest.raises(ValueError, match="listed more than once: m v2"):
        fleet.chunk_fleet([*_fleet(3), {"model_name": "m", "version": 2}])


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="fleet size must be >= 0"):
        fleet.chunk_count(-1)
    with pytest.raises(ValueError, match="max_chunks and min_size must be >= 1"):
        fleet.chunk_size(5, max_chunks=0)
    with pytest.raises(ValueError, match="max_chunks and min_size must be >= 1"):
        fleet.chunk_fleet(_fleet(5), min_size=0)


def test_label_is_cut_after_the_last_version_that_fits():
    targets = _fleet(40, model="a_rather_long_model_name")
    label = fleet.chunk_label(2, 5, targets)
    assert len(label) <= fleet.LABEL_MAX_CHARS
    assert label.startswith("chunk 2/5: a_rather_long_model_name v1, a_rather_long_model_name v2")
    shown = label.split(": ", 1)[1].split(" ... ")[0].split(", ")
    assert label.endswith(f" ... (+{40 - len(shown)})")
    # one more name would not have fitted
    assert len(label.split(" ... ")[0]) + len(", a_rather_long_model_name v40") > fleet.LABEL_MAX_CHARS - len(
        " ... (+99)"
    )
    assert fleet.chunk_label(1, 1, _fleet(2)) == "chunk 1/1: m v1, m v2"
    assert fleet.chunk_label(1, 1, _fleet(3), max_chars=12) == "chunk 1/1: ... (+3)"


def test_a_version_whose_check_failed_takes_the_compute_path():
    assert choose_drift_path(0, False, check_failed=True) == TASK_COMPUTE_DRIFT
    assert choose_drift_path(0, True) == TASK_RECORD_EMPTY
    assert choose_drift_path(5, False) == TASK_DQ_ALERT
    assert choose_drift_path(5, False, check_failed=False) == TASK_DQ_ALERT


# ------------------------------------------------------------------ per-version isolation in a chunk's task


def _checked(version: int, rows: int = 10, dq: bool = True, **extra) -> dict:
    return {"model_name": "m", "version": version, "rows": rows, "dq_passed": dq, **extra}


def test_one_failing_version_does_not_stop_the_others_and_the_task_raises_naming_it(caplog):
    from include.tasks.drift import VersionsFailed, each_version

    caplog.set_level(logging.INFO, logger="include.tasks")
    chunk = {"chunk": 1, "of": 1, "label": "chunk 1/1: m v1, m v2, m v3"}
    seen: list[int] = []

    def body(v: dict) -> dict:
        seen.append(v["version"])
        if v["version"] == 2:
            raise KeyError("numeric")
        return {"model": f"m v{v['version']}"}

    with pytest.raises(VersionsFailed) as err:
        each_version("compute_drift", chunk, [_checked(1), _checked(2), _checked(3)], body)
    assert seen == [1, 2, 3]  # v3 ran after v2 failed
    assert str(err.value) == (
        "compute_drift failed for 1 of 3 version(s) of chunk 1/1: m v1, m v2, m v3 (the others are stored): "
        "m v2: KeyError: 'numeric'"
    )
    last = [r.getMessage() for r in caplog.records if r.name == "include.tasks.drift"][-1]
    assert last == (
        "summary: chunk 1/1: m v1, m v2, m v3: compute_drift done for 2 of 3 version(s); "
        "FAILED: m v2: KeyError: 'numeric'"
    )


def test_a_timeout_is_not_swallowed_by_the_isolation():
    from airflow.sdk.exceptions import AirflowTaskTimeout

    from include.tasks.drift import each_version

    seen: list[int] = []

    def body(v: dict) -> dict:
        seen.append(v["version"])
        raise AirflowTaskTimeout("execution_timeout")

    with pytest.raises(AirflowTaskTimeout):
        each_version("compute_drift", {"label": "chunk 1/1"}, [_checked(1), _checked(2)], body)
    assert seen == [1]


def test_a_path_task_takes_only_its_versions_and_skips_a_chunk_without_any():
    from airflow.sdk.exceptions import AirflowSkipException

    from include.tasks.drift import on_path, route

    failed_check = _checked(4, rows=None, dq=False, error="ValueError: no drift reference profile stored")
    chunk = {"label": "chunk 1/1", "checked": [_checked(1, rows=0), _checked(2, dq=False), _checked(3), failed_check]}
    assert [c["version"] for c in on_path(TASK_COMPUTE_DRIFT, chunk)] == [3, 4]
    assert [c["version"] for c in on_path(TASK_DQ_ALERT, chunk)] == [2]
    assert {p: [c["version"] for c in v] for p, v in route(chunk["checked"]).items()} == {
        TASK_RECORD_EMPTY: [1],
        TASK_DQ_ALERT: [2],
        TASK_COMPUTE_DRIFT: [3, 4],
    }
    quiet = {"label": "chunk 2/2: m v5", "checked": [_checked(5)]}
    with pytest.raises(AirflowSkipException, match=r"chunk 2/2: m v5: no version takes record_empty_window"):
        on_path(TASK_RECORD_EMPTY, quiet)
