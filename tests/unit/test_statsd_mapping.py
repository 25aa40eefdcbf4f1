"""The statsd catalogue (``include/modelwatch/metrics.py`` ``METRICS``), the emitting call sites and
the shipped statsd_exporter mapping (``observability/statsd_mapping.yml``) agree.

statsd_exporter itself (a Go binary) is not installable here, so its glob mapping is re-implemented
below from its source (``pkg/mapper/mapper.go``, ``pkg/mapper/fsm/fsm.go``, ``fsm/formatter.go``,
``pkg/line/line.go``): the config checks of ``InitFromYAMLString`` (match, metric and label name
regexes), glob matching field by field where ``*`` captures exactly one dot-free field, rules
restricted by ``match_metric_type`` (statsd ``ms`` timers are ``observer`` events, divided by 1000),
first matching rule wins, ``$n`` / ``${n}`` templates. Every name is asserted to match exactly one
rule, so rule order never matters.

Sample names come from the real helper (``Metrics.sent``), with label values that need sanitising.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include.modelwatch import metrics as mw
from include.modelwatch.metrics import METRICS, Metrics, MetricSpec, UndeclaredMetric

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "observability" / "statsd_mapping.yml"

# --------------------------------------------------------------------------- statsd_exporter, re-implemented
_STATSD_METRIC = r"[a-zA-Z_](-?[a-zA-Z0-9_])*"
_TEMPLATE = r"(\$\{?\d+\}?)"
METRIC_LINE_RE = re.compile(rf"^(\*\.|{_STATSD_METRIC}\.)+(\*|{_STATSD_METRIC})$")
METRIC_NAME_RE = re.compile(rf"^([a-zA-Z_]|{_TEMPLATE})([a-zA-Z0-9_]|{_TEMPLATE})*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
_CAPTURE_REF = re.compile(r"\$\{?([a-zA-Z0-9_$]+)\}?")
# keys of MetricMapping (pkg/mapper/mapping.go); Go's yaml.v2 ignores unknown ones, we reject typos
RULE_KEYS = {
    "match",
    "name",
    "labels",
    "observer_type",
    "timer_type",
    "buckets",
    "quantiles",
    "match_type",
    "help",
    "action",
    "match_metric_type",
    "ttl",
    "summary_options",
    "histogram_options",
    "scale",
}
EVENT_TYPE = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}


def load_rules(path: Path = MAPPING) -> list[dict]:
    """The mapping file, checked the way statsd_exporter's loader checks it."""
    doc = yaml.safe_load(path.read_text())
    assert set(doc) == {"mappings"}, f"unexpected top-level keys {set(doc)}"
    rules = doc["mappings"]
    for i, rule in enumerate(rules):
        assert set(rule) <= RULE_KEYS, f"rule {i}: unknown keys {set(rule) - RULE_KEYS}"
        assert rule.get("match_type", "glob") == "glob", f"rule {i}: only glob rules are shipped"
        assert METRIC_LINE_RE.match(rule["match"]), f"invalid match: {rule['match']}"
        assert rule.get("name"), f"line {i}: metric mapping didn't set a metric name"
        assert METRIC_NAME_RE.match(rule["name"]), f"metric name {rule['name']!r} invalid"
        for key in rule.get("labels") or {}:
            assert LABEL_NAME_RE.match(key), f"invalid label key: {key}"
        assert rule.get("match_metric_type", "") in {"", "counter", "gauge", "observer"}
        assert rule.get("observer_type", "") in {"", "histogram", "summary"}
        assert rule.get("action", "map") == "map"
    return rules


def _format(template: str, captures: list[str]) -> str:
    """fsm.newTemplateFormatter + format: ``$n``/``${n}`` -> capture n (1-based), out of range -> ''."""

    def repl(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref.isdigit() and 1 <= int(ref) <= len(captures):
            return captures[int(ref) - 1]
        return ""

    return _CAPTURE_REF.sub(repl, template)


def glob_match(rule: dict, name: str, event_type: str) -> list[str] | None:
    """Captures when ``rule`` matches ``name`` for an event of ``event_type``, else None."""
    if rule.get("match_metric_type") not in (None, "", event_type):
        return None
    pattern, fields = rule["match"].split("."), name.split(".")
    if len(pattern) != len(fields):
        return None
    captures = []
    for p, f in zip(pattern, fields, strict=True):
        if p == "*":
            captures.append(f)
        elif p != f:
            return None
    return captures


def parse_line(line: str) -> tuple[str, float, str]:
    """``name:value|type`` -> (name, value as statsd_exporter observes it, event type)."""
    name, rest = line.split(":", 1)
    value, kind = rest.split("|")[:2]
    v = float(value)
    return name, (v / 1000 if kind == "ms" else v), EVENT_TYPE[kind]


def export(rules: list[dict], line: str) -> tuple[list[int], str, dict[str, str], float]:
    """Indexes of every matching rule, and the first one's Prometheus name, labels and value."""
    name, value, event_type = parse_line(line)
    hits = [(i, c) for i, r in enumerate(rules) if (c := glob_match(r, name, event_type)) is not None]
    if not hits:
        return [], "", {}, value
    i, captures = hits[0]
    rule = rules[i]
    labels = {k: _format(v, captures) for k, v in (rule.get("labels") or {}).items()}
    return [j for j, _ in hits], _format(rule["name"], captures), labels, value


# --------------------------------------------------------------------------- samples through the real helper
# raw label values and the segment each becomes; awkward ones on purpose
RAW = {
    "model": ("SPX signal/v2", "SPX_signal_v2"),
    "version": (3, "3"),
    "symbol": ("^BRK.B", "BRK_B"),  # a dot in a value must not become a path separator
    "source": ("drift", "drift"),
    "action": ("suppressed_cooldown", "suppressed_cooldown"),
    "algorithm": ("lightgbm", "lightgbm"),
    "kind": ("predictions", "predictions"),
    "status": ("quarantined", "quarantined"),
}


def emit(spec: MetricSpec, value: float = 3.0) -> str:
    m = Metrics(strict=True)
    raw = [RAW[label][0] for label in spec.labels]
    if spec.kind == "gauge":
        m.gauge(spec.name, value, *raw)
    elif spec.kind == "counter":
        m.incr(spec.name, *raw, count=int(value))
    else:
        m.timing(spec.name, value * 1000.0, *raw)
    assert len(m.sent) == 1
    return m.sent[0]


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    return load_rules()


def test_catalogue_is_well_formed():
    assert len(METRICS) == 8
    for key, spec in METRICS.items():
        assert key == spec.name
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", spec.name), spec.name
        assert set(spec.labels) <= set(RAW), spec.labels
        assert spec.prometheus.startswith("modelwatch_") and METRIC_NAME_RE.match(spec.prometheus)
        assert spec.prometheus.endswith("_total") == (spec.kind == "counter"), spec.prometheus
        assert spec.prometheus.endswith("_seconds") == (spec.kind == "timer"), spec.prometheus
    assert len({s.prometheus for s in METRICS.values()}) == len(METRICS)


@pytest.mark.parametrize("spec", list(METRICS.values()), ids=list(METRICS))
def test_every_emitted_name_maps_to_exactly_one_rule(rules, spec):
    line = emit(spec)
    hits, name, labels, value = export(rules, line)
    assert len(hits) == 1, f"{line} matched rules {hits}"
    assert name == spec.prometheus
    assert labels == {label: RAW[label][1] for label in spec.labels}
    assert value == 3.0  # timers: sent 3000 ms, observed 3 s
    rule = rules[hits[0]]
    assert rule["match_metric_type"] == mw.EXPORTER_TYPE[spec.kind]
    # the type guard matters: the same name with another statsd type maps nowhere
    other = {"g": "c", "c": "g", "ms": "g"}[line.rsplit("|", 1)[1]]
    assert export(rules, f"{line.rsplit('|', 1)[0]}|{other}")[0] == []


def test_expected_names_for_a_scoring_predictions_packet(rules):
    line = emit(METRICS["scoring.predictions"], 25)
    assert line == "modelwatch.scoring.predictions.SPX_signal_v2.3.BRK_B:25|c"
    assert export(rules, line)[1:] == (
        "modelwatch_scoring_predictions_total",
        {"model": "SPX_signal_v2", "version": "3", "symbol": "BRK_B"},
        25.0,
    )


def test_expected_names_for_a_drift_evaluate_seconds_packet(rules):
    m = Metrics(strict=True)
    m.timing("drift.evaluate_seconds", 1250.0, "spx_signal", 3)
    assert m.sent == ["modelwatch.drift.evaluate_seconds.spx_signal.3:1250|ms"]
    assert export(rules, m.sent[0])[1:] == (
        "modelwatch_drift_evaluate_seconds",
        {"model": "spx_signal", "version": "3"},
        1.25,
    )


def test_counters_add_the_runs_count_and_send_zero():
    m = Metrics(strict=True)
    m.incr("data_quality.failures", "spx_signal", 3, count=4)
    m.incr("scoring.missing_feature_rows", "spx_signal", 3, "^GSPC", count=0)
    m.incr("loop.actions", "spx_signal", "drift", "fire")
    assert m.sent == [
        "modelwatch.data_quality.failures.spx_signal.3:4|c",
        "modelwatch.scoring.missing_feature_rows.spx_signal.3.GSPC:0|c",
        "modelwatch.loop.actions.spx_signal.drift.fire:1|c",
    ]


def test_every_rule_is_used_by_a_catalogued_metric(rules):
    used = {export(rules, emit(spec))[0][0] for spec in METRICS.values()}
    assert used == set(range(len(rules)))
    assert len(rules) == len(METRICS)


def test_unknown_and_airflow_names_are_left_alone(rules):
    for line in (
        "modelwatch.data_quality.failures.m:1|c",  # a label short
        "modelwatch.data_quality.failures.m.3.extra:1|c",  # a label too many
        # domain state is the Prometheus exporter's, no longer mapped from statsd
        "modelwatch.drift.score.m.3:0.1|g",
        "modelwatch.drift.psi.m.3.ret_5d:0.1|g",
        "modelwatch.performance.accuracy.m.3:0.5|g",
        "modelwatch.health.status.m.3:1|g",
        "modelwatch.loop.pending_triggers:2|g",
        "modelwatch.scoring.predictions.m.3.GSPC:25|g",  # a counter now
        "airflow.scheduler.heartbeat:1|c",
        "airflow.dag.spx.task.duration:12|ms",
    ):
        assert export(rules, line)[0] == [], line


def test_glob_rejects_partial_fields():
    assert not METRIC_LINE_RE.match("modelwatch.data_quality.failures.*.v*")
    assert not METRIC_LINE_RE.match("modelwatch.3.score")
    assert METRIC_LINE_RE.match("modelwatch.health.schema_version")


# --------------------------------------------------------------------------- declared-only emission
def test_undeclared_metric_raises_when_strict_and_is_dropped_and_logged_once_otherwise(caplog):
    with pytest.raises(UndeclaredMetric, match="undeclared metric 'alerts.fired'"):
        Metrics(strict=True).incr("alerts.fired", "drift")
    with pytest.raises(UndeclaredMetric, match="undeclared metric 'drift.score'"):  # exporter state, not statsd
        Metrics(strict=True).gauge("drift.score", 0.1, "m", 1)
    with pytest.raises(UndeclaredMetric, match="is a counter"):
        Metrics(strict=True).gauge("scoring.predictions", 25, "m", 1, "GSPC")
    with pytest.raises(UndeclaredMetric, match="emitted as counter with 1 labels"):
        Metrics(strict=True).incr("data_quality.failures", "m", count=2)

    mw._warned.discard("nope.metric")
    lax = Metrics(strict=False)
    with caplog.at_level("WARNING", logger=mw.__name__):
        lax.gauge("nope.metric", 1.0, "m")
        lax.gauge("nope.metric", 2.0, "m")
    assert lax.sent == []
    assert [r.getMessage() for r in caplog.records if "nope.metric" in r.getMessage()] == [
        "undeclared metric 'nope.metric'; not sent (declare it in METRICS)"
    ]


def test_metrics_are_strict_under_pytest():
    assert Metrics().strict is True


def _emission_sites() -> list[tuple[str, str, str, ast.expr, int]]:
    """(file:line, method, kind, metric expr, label count) of every ``get_metrics()`` call in the code."""
    sites = []
    for path in sorted([*ROOT.glob("include/**/*.py"), *ROOT.glob("dags/**/*.py"), *ROOT.glob("plugins/**/*.py")]):
        if path == ROOT / "include/modelwatch/metrics.py":
            continue
        tree = ast.parse(path.read_text())

        def is_factory(node: ast.AST) -> bool:
            if not isinstance(node, ast.Call):
                return False
            return getattr(node.func, "id", getattr(node.func, "attr", "")) == "get_metrics"

        aliases = {
            t.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and is_factory(n.value)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for n in ast.walk(tree):
            if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
                continue
            if n.func.attr not in {"gauge", "incr", "timing"}:
                continue
            recv = n.func.value
            if not (is_factory(recv) or (isinstance(recv, ast.Name) and recv.id in aliases)):
                continue
            where = f"{path.relative_to(ROOT)}:{n.lineno}"
            assert not any(isinstance(a, ast.Starred) for a in n.args), f"{where}: starred labels"
            kind = {"gauge": "gauge", "incr": "counter", "timing": "timer"}[n.func.attr]
            n_labels = len(n.args) - (1 if kind == "counter" else 2)
            sites.append((where, n.func.attr, kind, n.args[0], n_labels))
    return sites


def test_every_call_site_emits_a_declared_metric():
    """Static check: each emitting call names a catalogued metric of its type with its number of labels,
    and each catalogued metric has a call site."""
    sites = _emission_sites()
    assert len(sites) == 8, [s[0] for s in sites]
    covered: set[str] = set()
    for where, _, kind, expr, n_labels in sites:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            names = [expr.value]
        else:
            assert isinstance(expr, ast.JoinedStr), f"{where}: metric name must be a literal or an f-string"
            rx = "".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"[a-z_]+" for v in expr.values)
            names = [m for m in METRICS if re.fullmatch(rx, m)]
            assert names, f"{where}: f-string {rx} names no catalogued metric"
        for name in names:
            spec = METRICS.get(name)
            assert spec is not None, f"{where}: undeclared metric {name!r}"
            assert (spec.kind, len(spec.labels)) == (kind, n_labels), f"{where}: {name} emitted as {kind}/{n_labels}"
        covered.update(names)
    assert covered == set(METRICS)


# --------------------------------------------------------------------------- settings
def test_allow_and_block_lists_follow_airflow():
    spec = METRICS["data_quality.failures"]
    blocked = Metrics(block=("quality",))
    blocked.incr(spec.name, "m", 1, count=2)
    assert blocked.sent == []
    allowed = Metrics(allow=("^modelwatch\\.data_quality",), block=("quality",))  # allow list wins, as in Airflow
    allowed.incr(spec.name, "m", 1, count=2)
    allowed.gauge("health.schema_version", 4)
    assert allowed.sent == ["modelwatch.data_quality.failures.m.1:2|c"]
    env = Metrics.from_env(
        {"AIRFLOW__METRICS__METRICS_ALLOW_LIST": "Scheduler, ModelWatch", "AIRFLOW__METRICS__STATSD_IPV6": "True"}
    )
    assert (env.allow, env.block, env.ipv6, env.enabled) == (("scheduler", "modelwatch"), (), True, False)


_PROBE = """
import json
from include.modelwatch.metrics import get_metrics
m = get_metrics()
m.gauge("health.schema_version", 7)
m.incr("data_quality.failures", "spx", 2, count=3)
print(json.dumps({"enabled": m.enabled, "host": m.host, "port": m.port, "ipv6": m.ipv6,
                  "allow": list(m.allow), "sent": m.sent}))
"""


def _probe(home: Path, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__METRICS__") and k != "AIRFLOW_CONFIG"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env={**base, "AIRFLOW_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "log": out.stdout + out.stderr}  # Airflow logs to stdout


def test_get_metrics_reads_airflow_cfg_and_env_overrides_it(tmp_path):
    (tmp_path / "airflow.cfg").write_text(
        "[metrics]\n"
        "statsd_on = True\n"
        "statsd_host = statsd.internal\n"
        "statsd_port = 9125\n"
        "statsd_prefix = airflow_custom\n"
        "metrics_allow_list = scheduler,^modelwatch\\.health\n"
    )
    from_file = _probe(tmp_path)
    # an unresolvable statsd host is logged once and never fails the caller
    assert from_file.pop("log").count("statsd statsd.internal:9125 unusable") == 1
    assert from_file == {
        "enabled": True,
        "host": "statsd.internal",
        "port": 9125,
        "ipv6": False,
        "allow": ["scheduler", "^modelwatch\\.health"],
        # statsd_prefix is not ModelWatch's prefix; the allow list keeps only modelwatch.health.*
        "sent": ["modelwatch.health.schema_version:7|g"],
    }
    overridden = _probe(
        tmp_path,
        AIRFLOW__METRICS__STATSD_PORT="9999",
        AIRFLOW__METRICS__STATSD_ON="False",
        AIRFLOW__METRICS__METRICS_ALLOW_LIST="",
    )
    assert overridden["host"] == "statsd.internal"
    assert (overridden["port"], overridden["enabled"], overridden["allow"]) == (9999, False, [])
    assert overridden["sent"] == ["modelwatch.health.schema_version:7|g", "modelwatch.data_quality.failures.spx.2:3|c"]


def test_from_airflow_takes_a_conf_and_without_airflow_cfg_uses_defaults(tmp_path):
    assert _probe(tmp_path)["enabled"] is False  # no airflow.cfg: Airflow's defaults

    class Conf:
        values = {"statsd_on": "True", "statsd_host": "h", "statsd_port": "1234", "statsd_ipv6": "False"}

        def get(self, section, key, fallback=None):
            assert section == "metrics"
            return self.values.get(key, fallback)

        def getboolean(self, section, key, fallback=None):
            return self.get(section, key, str(fallback)) == "True"

        def getint(self, section, key, fallback=None):
            return int(self.get(section, key, fallback))

    m = Metrics.from_airflow(Conf())
    assert m is not None and (m.enabled, m.host, m.port, m.ipv6, m.allow) == (True, "h", 1234, False, ())


def test_catalogue_markdown_lists_every_metric():
    table = mw.catalogue_markdown().splitlines()
    assert len(table) == 2 + len(METRICS)
    assert (
        "| `modelwatch.scoring.predictions.<model>.<version>.<symbol>` | counter | "
        "`modelwatch_scoring_predictions_total` | `model`, `version`, `symbol` |"
        in table[2 + list(METRICS).index("scoring.predictions")]
    )
    assert (
        "| `modelwatch.drift.evaluate_seconds.<model>.<version>` | timer (ms) -> histogram (s) | "
        "`modelwatch_drift_evaluate_seconds` | `model`, `version` |"
        in table[2 + list(METRICS).index("drift.evaluate_seconds")]
    )


def test_readme_statsd_table_is_the_catalogue():
    """README.md carries the table :func:`catalogue_markdown` renders (regenerate it after changing METRICS)."""
    assert mw.catalogue_markdown() in (ROOT / "README.md").read_text()
