"""The window a task works on (include.tasks.common.window) and its trigger-form params."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.tasks.common import window, window_params

INTERVAL = {
    "data_interval_start": datetime(2008, 10, 1, tzinfo=UTC),
    "data_interval_end": datetime(2008, 11, 1, tzinfo=UTC),
}


def test_no_params_means_the_data_interval():
    ctx = {**INTERVAL, "params": {"window_start": None, "window_end": None}}
    assert window(ctx) == (INTERVAL["data_interval_start"], INTERVAL["data_interval_end"])


def test_both_params_override_and_naive_is_utc():
    ctx = {**INTERVAL, "params": {"window_start": "2008-09-01T00:00:00", "window_end": "2008-09-02T00:00:00+00:00"}}
    assert window(ctx) == (datetime(2008, 9, 1, tzinfo=UTC), datetime(2008, 9, 2, tzinfo=UTC))


def test_one_param_alone_is_an_error_not_silently_ignored():
    ctx = {**INTERVAL, "params": {"window_start": "2008-09-01T00:00:00+00:00", "window_end": None}}
    with pytest.raises(ValueError, match="window_start is set but window_end is not"):
        window(ctx)
    ctx = {**INTERVAL, "params": {"window_start": "", "window_end": "2008-09-01T00:00:00+00:00"}}
    with pytest.raises(ValueError, match="window_end is set but window_start is not"):
        window(ctx)


def test_bad_timestamp_names_the_field():
    ctx = {**INTERVAL, "params": {"window_start": "2008-09-01T00:00:00+00:00", "window_end": "next tuesday"}}
    with pytest.raises(ValueError, match="window_end 'next tuesday' is not an ISO 8601 timestamp"):
        window(ctx)


def test_end_must_follow_start():
    ctx = {
        **INTERVAL,
        "params": {"window_start": "2008-09-02T00:00:00+00:00", "window_end": "2008-09-01T00:00:00+00:00"},
    }
    with pytest.raises(ValueError, match="must be after window_start"):
        window(ctx)


def test_window_params_are_optional_date_time_pickers():
    params = window_params()
    for name in ("window_start", "window_end"):
        schema = params[name].schema
        assert schema["type"] == ["null", "string"]
        assert schema["format"] == "date-time"  # the trigger form renders a date-time picker
        assert schema["title"] and params[name].description
        assert params[name].resolve() is None  # empty is valid: the scheduler's runs use the data interval
        assert params[name].resolve("2008-10-01T00:00:00+00:00") == "2008-10-01T00:00:00+00:00"
