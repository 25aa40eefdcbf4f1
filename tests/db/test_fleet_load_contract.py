"""bench/fleet_load.py's path through the external-model contract on the embedded PostgreSQL, at 2 models x 2
versions x 3 features x 100 rows: registration with the aliases, every batch loaded by the feed's own ingest, the
window's rows where drift_hourly reads them, and the table sizes the benchmark compares."""

from __future__ import annotations

from bench import fleet_load as fl
from include.modelwatch import registry
from include.modelwatch.data import storage


def test_fleet_registers_and_ingests_through_the_contract(db, monitoring_uri, tmp_path):
    members = fl.fleet_members(4)
    inbox = tmp_path / "inbox"
    files = fl.write_fleet(members, 3, 100, 120, tmp_path / "fleet", inbox)
    before = fl.table_sizes(monitoring_uri)

    secs = fl.register_fleet(db, files)
    batches = fl.ingest_inbox(db, inbox)

    assert len(secs) == 4 and all(s > 0 for s in secs)
    assert sorted(b["batch"] for b in batches) == sorted(f"{m.model}_v{m.version}.parquet" for m in members)
    assert [b["rows"] for b in batches] == [100] * 4
    assert sorted((r["model_name"], r["version"]) for r in registry.active_versions(db)) == [
        ("fleet_000", 1),
        ("fleet_000", 2),
        ("fleet_001", 1),
        ("fleet_001", 2),
    ]
    rows = storage.fetch_dicts(
        db,
        "SELECT model_name, model_version, count(*) AS n, min(ts) AS lo, max(ts) AS hi, "
        "count(DISTINCT symbol || timeframe) AS keys FROM predictions GROUP BY 1, 2 ORDER BY 1, 2",
    )
    db.rollback()
    assert [(r["model_name"], r["model_version"], r["n"], r["keys"]) for r in rows] == [
        ("fleet_000", 1, 100, 1),
        ("fleet_000", 2, 100, 1),
        ("fleet_001", 1, 100, 1),
        ("fleet_001", 2, 100, 1),
    ]
    assert all(fl.WINDOW_START <= r["lo"] and r["hi"] < fl.WINDOW_END for r in rows)
    assert not list((inbox / "predictions").iterdir())  # every batch moved to processed/
    grown = fl.growth(before, fl.table_sizes(monitoring_uri))
    assert grown["predictions"] > 0 and grown["model_versions"] > 0 and grown["ingest_batches"] > 0
    assert fl.database_bytes(monitoring_uri) > sum(fl.table_sizes(monitoring_uri).values()) > 0
