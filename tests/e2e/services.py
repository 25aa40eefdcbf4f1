"""Real observability services for the e2e tests, on free loopback ports: the ModelWatch exporter (in-process,
against the test's monitoring DB), the Debian ``prometheus-node-exporter``, ``prometheus`` and
``prometheus-alertmanager`` (``make test`` installs them when missing)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from include.modelwatch.observability import server
from tests.smtp_sink import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = Path("/usr/bin/prometheus")
NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")


def get_json(url: str, params: dict[str, str] | None = None) -> Any:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def alertmanager(tmp_path: Path, smtp_port: int) -> Iterator[str]:
    """``observability/alertmanager.yml`` as shipped, except its SMTP smarthost (the test's sink) and its grouping
    waits (1 s instead of 30 s / 5 m). Yields Alertmanager's base URL."""
    assert ALERTMANAGER.exists(), "install the Debian package: make rules"
    config = yaml.safe_load((ROOT / "observability/alertmanager.yml").read_text())
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    config["route"].update(group_wait="1s", group_interval="1s")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port, cluster = free_port(), free_port()
    args = [
        str(ALERTMANAGER),
        f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--cluster.listen-address=127.0.0.1:{cluster}",
    ]
    base = f"http://127.0.0.1:{port}"
    with process(args, tmp_path / "alertmanager.log") as proc:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()[-2000:]
            return get_json(f"{base}/api/v2/status")["cluster"]["status"] in ("ready", "disabled", "settling")

        wait_for("alertmanager ready", ready)
        yield base


@contextlib.contextmanager
def prometheus(
    monitoring_uri: str, tmp_path: Path, *, rules: dict[str, Any] | None = None, alertmanager_url: str | None = None
) -> Iterator[str]:
    """The exporter, node-exporter and Prometheus scraping both every second with the job names of
    observability/prometheus/prometheus.yml; with ``rules`` (a rules file as data) evaluated every second and
    sent to ``alertmanager_url``. Yields Prometheus' base URL."""
    assert PROMETHEUS.exists() and NODE_EXPORTER.exists(), "install the Debian packages: make rules observe"
    exporter, _ = server.start(server.make_registry(monitoring_uri), "127.0.0.1", 0)
    node_port, prom_port = free_port(), free_port()
    config = yaml.safe_load((ROOT / "observability/prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config.pop("rule_files"), config.pop("alerting")
    if rules is not None:
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
        config["rule_files"] = [str(tmp_path / "rules.yml")]
    if alertmanager_url is not None:
        target = urllib.parse.urlsplit(alertmanager_url).netloc
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    targets = {"modelwatch": f"127.0.0.1:{exporter.server_address[1]}", "node": f"127.0.0.1:{node_port}"}
    assert [job["job_name"] for job in config["scrape_configs"]] == list(targets)
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    node_args = [str(NODE_EXPORTER), f"--web.listen-address=127.0.0.1:{node_port}", "--collector.disable-defaults"]
    node_args += ["--collector.cpu", "--collector.meminfo", "--collector.filesystem"]
    prom_args = [
        str(PROMETHEUS),
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    base = f"http://127.0.0.1:{prom_port}"
    try:
        with (
            process(node_args, tmp_path / "node-exporter.log"),
            process(prom_args, tmp_path / "prometheus.log") as prom,
        ):

            def targets_up() -> bool:
                assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                active = get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
                return len(active) == 2 and all(t["health"] == "up" for t in active)

            wait_for("both scrape targets up", targets_up)
            yield base
    finally:
        exporter.shutdown()
