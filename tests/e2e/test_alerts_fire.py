"""The October 2008 drift episode reaches people by both roads, with real services.

1. ModelWatch's own notification: drift_hourly opens the drift alert and mails it through the ``modelwatch_smtp``
   connection to a real SMTP server (aiosmtpd).
2. Prometheus: the real Prometheus scrapes the real exporter, evaluates ``observability/prometheus/rules.yml``,
   the drift rule fires, the real Alertmanager (``observability/alertmanager.yml``) routes it to the ``ml`` team
   and mails it to the same SMTP server.

Every rule's ``for:`` is shortened to 1 s here (the Oct 2008 window is replayed in seconds, the rules wait 1-2 h of
wall clock); the ``for:`` durations themselves are covered by ``promtool test rules`` (``make rules``). The
expressions, labels, annotations and routes are the shipped ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.modelwatch.data import storage
from tests import smtp_sink
from tests.e2e import services
from tests.e2e.conftest import rows, run_window

ROOT = Path(__file__).resolve().parents[2]
SEP = ("2008-09-01T00:00:00+00:00", "2008-10-01T00:00:00+00:00")
OCT = ("2008-10-01T00:00:00+00:00", "2008-11-01T00:00:00+00:00")
DRIFT_ALERTS = ("ModelWatchDriftScoreHigh", "ModelWatchFeaturePsiHigh")


def _rules_for_replay() -> dict[str, Any]:
    rules = yaml.safe_load((ROOT / "observability/prometheus/rules.yml").read_text())
    n = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and "for" in rule:
                rule["for"] = "1s"
                n += 1
    assert n >= 27
    return rules


def _firing(base: str, alertname: str) -> list[dict[str, Any]]:
    got = services.get_json(
        f"{base}/api/v1/query", {"query": f'ALERTS{{alertname="{alertname}", alertstate="firing"}}'}
    )
    return [s["metric"] for s in got["data"]["result"]]


@pytest.fixture()
def sink(monkeypatch):
    port = smtp_sink.free_port()
    controller, handler = smtp_sink.start(port)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MODELWATCH_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"from": "modelwatch@example.com", "to": ["ml-oncall@example.com"], "timeout": 5},
            }
        ),
    )
    yield port, handler
    controller.stop()


def test_october_2008_drift_fires_the_rule_and_both_mails_arrive(champion, monitoring_uri, tmp_path, sink):
    port, handler = sink
    conn = storage.connect(monitoring_uri)
    with (
        services.alertmanager(tmp_path, port) as am,
        services.prometheus(monitoring_uri, tmp_path, rules=_rules_for_replay(), alertmanager_url=am) as prom,
    ):
        loaded = services.get_json(f"{prom}/api/v1/rules")["data"]["groups"]
        assert sorted(g["name"] for g in loaded) == sorted(
            [
                "trading",
                "drift",
                "latency",
                "system",
                "active_learning",
                "model",
                "portfolio",
            ]
        )
        assert run_window("score_signals", SEP[0], OCT[1]).state == "success"
        assert run_window("drift_hourly", *SEP).state == "success"
        # September alone is no episode: no drift alert in the DB, and once scraped the drift rule stays silent
        assert rows(conn, "SELECT count(*) AS n FROM alerts WHERE kind = 'drift'")[0]["n"] == 0
        sep_score = rows(conn, "SELECT drift_score FROM drift_windows WHERE window_start = %s", (SEP[0],))
        assert len(sep_score) == 1 and sep_score[0]["drift_score"] < 0.10
        services.wait_for(
            "the September window scraped",
            lambda: services.get_json(f"{prom}/api/v1/query", {"query": "modelwatch_model_drift_score"})["data"][
                "result"
            ],
        )
        assert _firing(prom, "ModelWatchDriftScoreHigh") == []

        assert run_window("drift_hourly", *OCT).state == "success"
        score = rows(conn, "SELECT drift_score FROM drift_windows WHERE window_start = %s", (OCT[0],))[0]["drift_score"]
        assert score >= 0.25  # the episode: critical by ModelWatch's own thresholds
        firing = services.wait_for("the drift rule firing", lambda: _firing(prom, "ModelWatchDriftScoreHigh"))
        by_severity = {a["severity"]: a for a in firing}
        # both variants fire (>= 0.10 and >= 0.25); Alertmanager's inhibit rule keeps the warning quiet
        assert set(by_severity) == {"warning", "critical"}
        crit = by_severity["critical"]
        assert (crit["model"], crit["version"], crit["team"]) == ("spx_signal", "1", "ml")
        assert "champion" in crit["alias"]

        # the per-feature PSI rule fires for exactly the features ModelWatch judged drifted (not for every feature
        # whose PSI a 21-row window inflates)
        drifted = {
            r["feature"]
            for r in rows(
                conn,
                "SELECT feature, drifted FROM drift_results WHERE window_start = %s AND kind = 'feature' "
                "AND test = 'psi'",
                (OCT[0],),
            )
            if r["drifted"]
        }
        high_psi = rows(
            conn,
            "SELECT count(*) AS n FROM drift_results WHERE window_start = %s AND kind = 'feature' AND test = 'psi' "
            "AND statistic >= 0.10",
            (OCT[0],),
        )[0]["n"]
        assert 0 < len(drifted) < high_psi

        def psi_features() -> set[str]:
            return {a["feature"] for a in _firing(prom, "ModelWatchFeaturePsiHigh")}

        assert services.wait_for("the PSI rule firing", lambda: psi_features() == drifted)

        # Alertmanager received it and routed it to the ml team; the warning is inhibited by the critical
        def routed() -> list[dict[str, Any]]:
            got = services.get_json(f"{am}/api/v2/alerts", {"filter": 'alertname="ModelWatchDriftScoreHigh"'})
            return [a for a in got if a["labels"]["severity"] == "critical" and a["status"]["state"] == "active"]

        (am_alert,) = services.wait_for("Alertmanager has the critical drift alert", routed)
        assert [r["name"] for r in am_alert["receivers"]] == ["ml"]
        assert am_alert["annotations"]["summary"] == (f"Drift score of spx_signal v1 is {score:.3f} (>= 0.25)")
        assert am_alert["annotations"]["runbook_url"] == "http://localhost:8080/modelwatch/models/spx_signal"

        def alertmanager_mail() -> list[Any]:
            return [
                (to, m)
                for to, m in handler.received
                if "ModelWatchDriftScoreHigh" in str(m["Subject"]) and to == ["ml-team@modelwatch.invalid"]
            ]

        ((_, am_mail),) = services.wait_for("Alertmanager's mail to the ml team", alertmanager_mail)
        assert str(am_mail["Subject"]).startswith("[FIRING:1] ModelWatchDriftScoreHigh")

    # ModelWatch's own mail of the same episode: one, for the alert's opening, to the connection's list
    own = [(to, m) for to, m in handler.received if str(m["Subject"]).startswith("[ModelWatch] drift alert")]
    assert [(to, str(m["Subject"])) for to, m in own] == [
        (
            ["ml-oncall@example.com"],
            "[ModelWatch] drift alert OPENED (critical): spx_signal v1, window 2008-10-01 00:00 .. "
            "2008-11-01 00:00 UTC",
        )
    ]
    assert "Page: http://localhost:8080/modelwatch/drift/spx_signal/1/2008-10-01T00%3A00%3A00Z" in smtp_sink.body(
        own[0][1]
    )
    assert rows(conn, "SELECT status, recipients FROM notifications WHERE kind = 'alert'") == [
        {"status": "sent", "recipients": ["ml-oncall@example.com"]}
    ]
    conn.close()
