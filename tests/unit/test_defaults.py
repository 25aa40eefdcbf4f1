"""Defect 3: one place for each settings default (include/modelwatch/defaults.py), and
airflow_settings.yaml lists exactly those variables with exactly those values."""

from __future__ import annotations

import json

import pytest

from include.modelwatch import defaults
from include.modelwatch.ops import settings


def _yaml_variables() -> dict[str, str]:
    s = settings.load(env={})
    return {v["variable_name"]: v["variable_value"] for v in s.variables}


def test_settings_file_variables_equal_the_code_defaults():
    got = _yaml_variables()
    assert set(got) == set(defaults.VARIABLES)
    for name, text in got.items():
        assert defaults.parse(name, text) == defaults.parse(name, defaults.text(name)), name
    # the values the issue was about, spelled out
    native = json.loads(got["modelwatch_native_models"])
    assert (
        native
        == {
            "spx_signal": {"target": "direction", "symbols": ["SPX", "IXIC"]},
            "spx_vol_regime": {"target": "vol_regime", "symbols": ["SPX", "IXIC"]},
        }
        == defaults.NATIVE_MODELS
    )
    assert got["modelwatch_market_source"] == "arch"


def test_target_names_are_the_targets():
    from include.modelwatch.training import targets

    assert set(defaults.TARGET_NAMES) == set(targets.TARGETS)


def test_artifact_dir_is_an_environment_setting_not_a_variable():
    assert "modelwatch_artifact_dir" not in _yaml_variables()
    assert defaults.artifact_dir({"MODELWATCH_ARTIFACT_DIR": "/data/artifacts"}) == "/data/artifacts"
    assert defaults.artifact_dir({}) == ".modelwatch/artifacts"
    assert defaults.artifact_dir({"MODELWATCH_ARTIFACT_DIR": ""}) == ".modelwatch/artifacts"
    # an fsspec URL (with an Airflow connection id) passes as given: the registry opens it with ObjectStoragePath
    url = "s3://aws_default@bucket/modelwatch/artifacts"
    assert defaults.artifact_dir({"MODELWATCH_ARTIFACT_DIR": url}) == url


def test_artifact_store_urls():
    """A folder becomes the file:// URL of its absolute path; a URL is kept (no trailing slash)."""
    import os

    from include.modelwatch.registry import artifacts

    assert artifacts.store_url("/data/artifacts/") == "file:///data/artifacts"
    assert artifacts.store_url(".modelwatch/artifacts") == f"file://{os.getcwd()}/.modelwatch/artifacts"
    assert artifacts.store_url("gs://bucket/prefix/") == "gs://bucket/prefix"
    assert (
        artifacts.artifact_url("s3://aws_default@bucket/mw", "spx_signal", 3)
        == "s3://aws_default@bucket/mw/spx_signal/v3/model.bin"
    )
    with pytest.raises(ValueError, match="set MODELWATCH_ARTIFACT_DIR to a folder or an fsspec URL"):
        artifacts.store_url("  ")


def test_defaults_text_and_parse():
    assert defaults.text("modelwatch_market_source") == "arch"
    assert defaults.text("modelwatch_performance_tolerance") == "0.1"
    assert defaults.parse("modelwatch_native_models", None) == defaults.NATIVE_MODELS
    assert defaults.parse("modelwatch_native_models", "") == defaults.NATIVE_MODELS
    assert defaults.parse("modelwatch_native_models", '{"m": {"symbols": [" NDX "]}}') == {
        "m": {"target": "direction", "symbols": ["NDX"]}
    }
    assert defaults.parse("modelwatch_market_source", "folder:/data/bars") == "folder:/data/bars"
    assert defaults.parse("modelwatch_max_model_age_days", "7") == 7
    assert defaults.parse("modelwatch_performance_tolerance", "0.25") == 0.25
    assert defaults.parse("modelwatch_gate_overrides", '{"m": {"x": 1}}') == {"m": {"x": 1}}


@pytest.mark.parametrize(
    "name, raw, match",
    [
        ("modelwatch_native_models", '{"m": {"symbols": []}}', "m: symbols must be a non-empty list"),
        ("modelwatch_native_models", '{"m": {"symbols": ["SPX", ""]}}', "m: symbols must be a non-empty list"),
        ("modelwatch_native_models", '{"m": {"target": "price", "symbols": ["SPX"]}}', "m: unknown target 'price'"),
        ("modelwatch_native_models", '["spx_signal"]', "expected a JSON object"),
        ("modelwatch_native_models", "spx_signal", "modelwatch_native_models = 'spx_signal'"),
        ("modelwatch_market_source", "s3://bars", "modelwatch_market_source = 's3://bars': unknown market source spec"),
        ("modelwatch_gate_overrides", "[1]", "JSON object"),
        ("modelwatch_max_model_age_days", "thirty", "modelwatch_max_model_age_days = 'thirty'"),
    ],
)
def test_bad_variable_values_name_the_variable(name, raw, match):
    with pytest.raises(ValueError, match=match):
        defaults.parse(name, raw)


def test_unknown_variable_is_an_error():
    with pytest.raises(KeyError, match="modelwatch_artifact_dir"):
        defaults.text("modelwatch_artifact_dir")


def test_scoring_tasks_fall_back_to_the_one_default(monkeypatch):
    """With no Variable set, score_signals scores what the settings file lists: each native model's symbols."""
    from airflow.sdk import Variable

    from include.tasks import scoring

    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None, **_: default))
    assert scoring.symbols() == ["IXIC", "SPX"]
    stored = {
        "modelwatch_native_models": '{"m": {"symbols": ["NDX"]}, '
        '"v": {"target": "vol_regime", "symbols": ["NDX", "DAX"]}}'
    }
    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None, **_: stored.get(key, default)))
    assert scoring.symbols() == ["DAX", "NDX"]
    stored = {"modelwatch_native_models": "oops"}
    with pytest.raises(ValueError, match="modelwatch_native_models = 'oops'"):
        scoring.symbols()
