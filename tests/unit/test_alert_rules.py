"""Issue 14: the Prometheus alerting rules (``observability/prometheus/rules.yml``), their promtool unit tests
(``rules_test.yml``), the Prometheus and Alertmanager configs, against the exporter and ModelWatch's own thresholds.

promtool itself runs in ``make rules`` (``.ci/run``); these tests check what promtool cannot: the labels and
annotations every rule must carry, that every alert (name and severity) has a firing and a silent test case, that
every ``modelwatch_*`` name and label in the rules and in the test series is one the exporter exports, and that the
thresholds quoted as ModelWatch's are ModelWatch's.
"""

from __future__ import annotations

import inspect
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.modelwatch import defaults
from include.modelwatch.monitoring.drift import concept
from include.modelwatch.monitoring.drift.config import DriftConfig
from include.modelwatch.monitoring.performance.health import HealthThresholds
from include.modelwatch.observability import collector
from include.modelwatch.training import gates

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "observability" / "prometheus"
GROUPS = ("trading", "drift", "latency", "system", "active_learning", "model", "portfolio")
TEAMS = {"trading", "ml", "infrastructure"}
SEVERITIES = {"warning", "critical"}
ANNOTATIONS = {"summary", "description", "runbook_url", "threshold_source"}
NODE = {"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes", "node_filesystem_size_bytes"}  # fmt: skip


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


RULES = _load(PROM / "rules.yml")
TESTS = _load(PROM / "rules_test.yml")
ALERTS: list[tuple[str, dict[str, Any]]] = [(g["name"], r) for g in RULES["groups"] for r in g["rules"]]


def _samples() -> dict[str, tuple[str, ...]]:
    """Sample name -> label names, as the exporter writes them (counters ``_total``, histograms ``_bucket`` ...)."""
    out: dict[str, tuple[str, ...]] = {}
    for doc in collector.METRICS:
        if doc.kind == "counter":
            out[doc.name + "_total"] = doc.labels
        elif doc.kind == "histogram":
            out[doc.name + "_bucket"] = (*doc.labels, "le")
            out[doc.name + "_sum"] = doc.labels
            out[doc.name + "_count"] = doc.labels
        else:
            out[doc.name] = doc.labels
    return out


EXPORTED = _samples()


def _rule(name: str, severity: str) -> dict[str, Any]:
    (rule,) = [r for _, r in ALERTS if r["alert"] == name and r["labels"]["severity"] == severity]
    return rule


def _threshold(name: str, severity: str) -> float:
    """The number of the rule's first comparison (``< 1/3`` is a fraction)."""
    m = re.search(r"(?:>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?)", _rule(name, severity)["expr"])
    assert m, name
    return float(Fraction(m.group(1).replace(" ", "")))


def test_the_seven_groups_exist_in_order_and_hold_alerts():
    assert tuple(g["name"] for g in RULES["groups"]) == GROUPS
    assert all(g["rules"] for g in RULES["groups"])
    assert all("alert" in r for _, r in ALERTS)  # no recording rules: every rule is an alert


@pytest.mark.parametrize(("group", "rule"), ALERTS, ids=[f"{r['alert']}-{r['labels']['severity']}" for _, r in ALERTS])
def test_every_alert_has_team_severity_and_the_annotations(group, rule):
    labels, ann = rule["labels"], rule["annotations"]
    assert set(labels) == {"severity", "team"}
    assert labels["severity"] in SEVERITIES and labels["team"] in TEAMS
    assert set(ann) == ANNOTATIONS
    assert ann["runbook_url"].startswith("http://localhost:8080/modelwatch/")
    if "model" in rule["expr"] and "$labels.model" in ann["summary"]:
        assert ann["runbook_url"] in (
            "http://localhost:8080/modelwatch/models/{{ $labels.model }}",
            "http://localhost:8080/modelwatch/alerts-and-triggers",
        )


def test_warning_and_critical_share_a_name_team_and_group():
    by_name: dict[str, list[tuple[str, str, str]]] = {}
    for group, r in ALERTS:
        by_name.setdefault(r["alert"], []).append((group, r["labels"]["team"], r["labels"]["severity"]))
    for name, variants in by_name.items():
        severities = sorted(s for _, _, s in variants)
        assert severities in (["critical"], ["warning"], ["critical", "warning"]), (name, severities)
        assert len({(g, t) for g, t, _ in variants}) == 1, (name, variants)
    # the critical-only and warning-only alerts are the ones where a second level makes no sense
    single = sorted(n for n, v in by_name.items() if len(v) == 1)
    assert single == [
        "ModelWatchCandidateRejected",
        "ModelWatchDatabaseDown",
        "ModelWatchExporterDown",
        "ModelWatchLabelQueueBacklog",
        "ModelWatchLabellingStalled",
        "ModelWatchScrapeQueryFailing",
        "NodeExporterDown",
    ]


def test_every_alert_has_a_firing_and_a_silent_promtool_case():
    assert TESTS["rule_files"] == ["rules.yml"]
    fired: set[tuple[str, str]] = set()
    silent: set[tuple[str, str]] = set()
    for group in TESTS["tests"]:
        for case in group["alert_rule_test"]:
            name = case["alertname"]
            got = {a["exp_labels"]["severity"] for a in case.get("exp_alerts") or []}
            for a in case.get("exp_alerts") or []:
                rule = _rule(name, a["exp_labels"]["severity"])
                assert a["exp_labels"]["team"] == rule["labels"]["team"]
                # promtool compares annotations in full, so a label the alert lacks would render "<no value>"
                assert set(a["exp_annotations"]) == ANNOTATIONS
                assert not any("<no value>" in v or "{{" in v for v in a["exp_annotations"].values())
            fired |= {(name, s) for s in got}
            silent |= {(name, s) for s in SEVERITIES - got}
    every = {(r["alert"], r["labels"]["severity"]) for _, r in ALERTS}
    assert every - fired == set()
    assert every - silent == set()
    assert fired <= every  # no case expects an alert that does not exist


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every selector of a metric in ``expr``."""
    out = []
    for m in re.finditer(r"\b((?:modelwatch|node)_[A-Za-z0-9_]+|up)\b(\{[^}]*\})?", expr):
        body = m.group(2) or ""
        out.append((m.group(1), set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", body))))
    return out


@pytest.mark.parametrize(("group", "rule"), ALERTS, ids=[f"{r['alert']}-{r['labels']['severity']}" for _, r in ALERTS])
def test_expressions_use_only_exported_names_and_labels(group, rule):
    for name, labels in _selectors(rule["expr"]):
        if name == "up":
            assert labels == {"job"}
        elif name.startswith("node_"):
            assert name in NODE
        else:
            assert name in EXPORTED, f"{name} is not exported by the collector"
            assert labels <= set(EXPORTED[name]), (name, labels)


def test_active_learning_rules_read_the_exported_queue_series():
    rules = {r["alert"]: r for g, r in ALERTS if g == "active_learning"}
    assert sorted(rules) == ["ModelWatchLabelQueueBacklog", "ModelWatchLabellingStalled"]
    for rule in rules.values():
        names = {n for n, _ in _selectors(rule["expr"])}
        assert names and all(n.startswith("modelwatch_active_learning_") for n in names), names
        # pending items only: labelled, skipped, processed and expired items are exported beside them
        assert 'modelwatch_active_learning_items{status="pending"}' in rule["expr"]
    assert "increase(modelwatch_active_learning_answers_total[3d])) == 0" in rules["ModelWatchLabellingStalled"]["expr"]
    assert _threshold("ModelWatchLabelQueueBacklog", "warning") == 200


def test_promtool_series_look_like_the_exporter_s():
    """Synthetic input series carry exactly the exporter's labels (plus instance/job where scraped)."""
    seen = set()
    for group in TESTS["tests"]:
        for s in group["input_series"]:
            m = re.fullmatch(r"([A-Za-z_:][A-Za-z0-9_:]*)\{(.*)\}", s["series"])
            assert m, s["series"]
            name, labels = m.group(1), set(re.findall(r'(\w+)="', m.group(2)))
            seen.add(name)
            if name.startswith("modelwatch_"):
                assert labels - {"instance", "job"} == set(EXPORTED[name]), (name, labels)
            elif name != "up":
                assert name in NODE, name
    used = {n for _, r in ALERTS for n, _ in _selectors(r["expr"])}
    assert used <= seen  # every metric a rule reads is exercised by some test series


def test_thresholds_quoted_from_modelwatch_are_modelwatch_s():
    h, d = HealthThresholds(), DriftConfig()
    tol = defaults.PERFORMANCE_TOLERANCE
    assert _threshold("ModelWatchDriftScoreHigh", "warning") == h.drift_warning
    assert _threshold("ModelWatchDriftScoreHigh", "critical") == h.drift_critical
    assert _threshold("ModelWatchFeaturePsiHigh", "warning") == d.psi_warning
    assert _threshold("ModelWatchFeaturePsiHigh", "critical") == d.psi_critical
    assert _threshold("ModelWatchAucDrop", "warning") == -concept.CONCEPT_AUC_DELTA
    assert _threshold("ModelWatchAucDrop", "critical") == -2 * concept.CONCEPT_AUC_DELTA
    assert _threshold("ModelWatchModelStale", "warning") == defaults.MAX_MODEL_AGE_DAYS == h.age_warning_days
    assert _threshold("ModelWatchModelStale", "critical") == h.age_critical_days
    assert _threshold("ModelWatchAccuracyBelowBaseline", "warning") == pytest.approx(1 - h.perf_drop_warning)
    dd = inspect.signature(gates.business_gate).parameters["max_dd_limit"].default
    assert _threshold("ModelWatchDrawdownHigh", "critical") == dd
    assert _threshold("ModelWatchDrawdownHigh", "warning") == pytest.approx(dd * (1 - gates.BORDERLINE_BAND))
    assert _threshold("ModelWatchExporterScrapeSlow", "warning") == collector.STATEMENT_TIMEOUT_MS / 1000
    # trading: critical = the warning's reference level less modelwatch_performance_tolerance
    for name in ("ModelWatchWinRateLow", "ModelWatchPrecisionLow", "ModelWatchProfitFactorLow",
                 "ModelWatchAvgRiskRewardLow"):  # fmt: skip
        assert _threshold(name, "critical") == pytest.approx(_threshold(name, "warning") * (1 - tol), abs=1e-9)
    assert _threshold("ModelWatchPrecisionLow", "warning") == pytest.approx(1 / 3)
    # trading and portfolio rules need as many matured predictions as the concept tests do
    for group, r in ALERTS:
        if group in ("trading", "portfolio"):
            assert f"modelwatch_live_matured_predictions >= {concept.CONCEPT_MIN_ROWS}" in r["expr"]
            assert 'alias=~".*champion.*", symbol="*"' in r["expr"]


def test_prometheus_config_scrapes_both_exporters_and_sends_to_alertmanager():
    cfg = _load(PROM / "prometheus.yml")
    assert cfg["rule_files"] == ["rules.yml"]
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    assert jobs == {"modelwatch": ["127.0.0.1:9464"], "node": ["127.0.0.1:9100"]}
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    up_jobs = set(re.findall(r'up\{job="(\w+)"\}', (PROM / "rules.yml").read_text()))
    assert up_jobs == set(jobs)


def test_alertmanager_routes_by_team_and_inhibits_warning_under_critical():
    am = _load(ROOT / "observability" / "alertmanager.yml")
    receivers = {r["name"]: r for r in am["receivers"]}
    assert am["route"]["receiver"] == "default" and "default" in receivers
    routes = {tuple(r["matchers"]): r["receiver"] for r in am["route"]["routes"]}
    assert routes == {(f'team="{t}"',): t for t in TEAMS}
    assert all(receivers[t]["email_configs"][0]["send_resolved"] for t in TEAMS)
    assert am["global"]["smtp_smarthost"] == "localhost:1025"
    (inhibit,) = am["inhibit_rules"]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert set(inhibit["equal"]) == {"alertname", "model"}
    assert {"alertname", "model"} <= set(am["route"]["group_by"])
