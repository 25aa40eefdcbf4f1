"""Migration runner on the embedded PostgreSQL: fresh apply, re-apply, rollback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from include.modelwatch.data import storage
from include.modelwatch.ops import migrations


@pytest.fixture()
def fresh_db(pg):
    """A brand-new empty database, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    pg.ensure_database(name)
    conn = storage.connect(pg.airflow_conn_uri(name))
    yield conn
    conn.close()
    admin = storage.connect(pg.airflow_conn_uri("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}"')
    admin.close()


def _schema(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        rows = cur.fetchall()
        cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
        rows += cur.fetchall()
    conn.rollback()
    return rows


def test_fresh_apply_creates_core_tables_and_records_versions(fresh_db):
    applied = migrations.migrate(fresh_db)
    files = migrations.discover()
    assert [m.version for m in applied] == [m.version for m in files]
    tables = {r[0] for r in _schema(fresh_db) if len(r) == 3}
    assert {
        "predictions",
        "outcomes",
        "model_versions",
        "model_aliases",
        "model_alias_history",
        "schema_migrations",
    } <= tables
    assert all(r["state"] == "applied" for r in migrations.status(fresh_db))


def test_reapply_is_noop(fresh_db):
    migrations.migrate(fresh_db)
    before = _schema(fresh_db)
    with fresh_db.cursor() as cur:
        cur.execute("SELECT version, applied_at FROM schema_migrations ORDER BY 1")
        rows_before = cur.fetchall()
    assert migrations.migrate(fresh_db) == []
    with fresh_db.cursor() as cur:
        cur.execute("SELECT version, applied_at FROM schema_migrations ORDER BY 1")
        assert cur.fetchall() == rows_before
    assert _schema(fresh_db) == before


def test_failing_migration_rolls_back_and_names_file_and_statement(fresh_db, tmp_path: Path):
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "002_bad.sql").write_text(
        "CREATE TABLE b (id int);\n-- a comment; with a semicolon\nINSERT INTO b VALUES (1);\n"
        "ALTER TABLE b ADD COLUMN x int REFERENCES missing_table (id);\nCREATE TABLE c (id int);"
    )
    migrations.migrate(fresh_db, _only(tmp_path, "001_ok.sql"))
    before = _schema(fresh_db)
    with pytest.raises(migrations.MigrationError) as err:
        migrations.migrate(fresh_db, tmp_path)
    msg = str(err.value)
    assert "002_bad.sql" in msg
    assert "statement 3 of 4" in msg
    assert "ALTER TABLE b ADD COLUMN x" in msg
    assert "missing_table" in msg
    assert _schema(fresh_db) == before  # table b was not left behind
    with fresh_db.cursor() as cur:
        cur.execute("SELECT version FROM schema_migrations")
        assert cur.fetchall() == [(1,)]


def test_failing_first_migration_leaves_no_bookkeeping_table(fresh_db, tmp_path: Path):
    (tmp_path / "001_bad.sql").write_text("CREATE TABLE a (id int); SELECT 1/0;")
    with pytest.raises(migrations.MigrationError, match="001_bad.sql failed at statement 2 of 2"):
        migrations.migrate(fresh_db, tmp_path)
    assert _schema(fresh_db) == []


def test_misnamed_and_duplicate_files_are_rejected(tmp_path: Path):
    (tmp_path / "1_bad.sql").write_text("SELECT 1")
    with pytest.raises(migrations.MigrationError, match="NNN_lower_snake"):
        migrations.discover(tmp_path)
    (tmp_path / "1_bad.sql").unlink()
    (tmp_path / "001_a.sql").write_text("SELECT 1")
    (tmp_path / "001_b.sql").write_text("SELECT 1")
    with pytest.raises(migrations.MigrationError, match="also used by"):
        migrations.discover(tmp_path)


def test_changed_file_after_apply_is_reported(fresh_db, tmp_path: Path):
    path = tmp_path / "001_a.sql"
    path.write_text("CREATE TABLE a (id int);")
    migrations.migrate(fresh_db, tmp_path)
    path.write_text("CREATE TABLE a (id bigint);")
    assert [r["state"] for r in migrations.status(fresh_db, tmp_path)] == ["changed-after-apply"]


def test_split_statements_respects_quotes_dollar_bodies_and_comments():
    sql = (
        "CREATE TABLE t (v text DEFAULT 'a;b');\n"
        "-- comment; not a split\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
        "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 2; END; $body$;\n"
        "/* block; comment */ SELECT 'it''s;';\n"
        '  ;  SELECT "odd;name" FROM t'
    )
    parts = migrations.split_statements(sql)
    assert len(parts) == 5
    assert parts[0] == "CREATE TABLE t (v text DEFAULT 'a;b')"
    assert parts[1].endswith("AS $$ SELECT 1; $$")
    assert parts[2].endswith("$body$ BEGIN RETURN 2; END; $body$")
    assert parts[3].endswith("SELECT 'it''s;'")
    assert parts[4] == 'SELECT "odd;name" FROM t'


def test_alias_history_is_append_only(db):
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO model_alias_history (model_name, alias, from_version, to_version, changed_at, reason) "
            "VALUES ('m', 'champion', NULL, 1, now(), 'bootstrap')"
        )
        db.commit()
        with pytest.raises(Exception, match="append-only"):
            cur.execute("UPDATE model_alias_history SET reason = 'x'")
    db.rollback()


def _only(directory: Path, name: str) -> Path:
    sub = directory / "only"
    sub.mkdir(exist_ok=True)
    (sub / name).write_text((directory / name).read_text())
    return sub


def test_status_is_a_read_that_keeps_the_callers_transaction(fresh_db):
    """migrations.status() used to roll back the connection: a caller's uncommitted write was lost."""
    migrations.migrate(fresh_db)
    with fresh_db.cursor() as cur:
        cur.execute("CREATE TABLE caller_work (id int)")
        cur.execute("INSERT INTO caller_work VALUES (%(id)s)", {"id": 7})
    assert {r["state"] for r in migrations.status(fresh_db)} == {"applied"}
    fresh_db.commit()
    with fresh_db.cursor() as cur:
        cur.execute("SELECT id FROM caller_work")
        assert cur.fetchall() == [(7,)]
    fresh_db.rollback()


def test_heartbeat_schema_version_names_every_pending_migration(fresh_db, tmp_path: Path):
    from include.modelwatch.ops import heartbeat

    files = migrations.discover()
    first = tmp_path / "first"
    first.mkdir()
    (first / files[0].path.name).write_text(files[0].sql)
    migrations.migrate(fresh_db, first)
    with pytest.raises(RuntimeError, match="unapplied migrations") as err:
        heartbeat.schema_version(fresh_db)
    for mig in files[1:]:
        assert f"{mig.version:03d}_{mig.name} (pending)" in str(err.value)
    assert files[0].path.name.removesuffix(".sql") not in str(err.value)
    migrations.migrate(fresh_db)
    assert heartbeat.schema_version(fresh_db) == files[-1].version


def test_sqlparse_splits_every_migration_file_into_statements_with_code():
    """The splitter is sqlparse.split: every shipped migration splits into non-empty statements, and no
    split falls inside a dollar-quoted function body (each statement holds balanced $$ quotes)."""
    n_bodies = 0
    for mig in migrations.discover():
        parts = migrations.split_statements(mig.sql)
        assert parts and all(migrations.has_code(p) and not p.endswith(";") for p in parts), mig.path.name
        for p in parts:
            assert p.count("$$") % 2 == 0, (mig.path.name, p[:80])
            n_bodies += p.count("$$") // 2
    assert n_bodies >= 3  # the trigger functions of 001 and 007 at least


def _upto(directory: Path, last: int) -> Path:
    """A copy of the shipped migrations up to ``last`` (same bytes, so the same checksums)."""
    directory.mkdir()
    for mig in migrations.discover():
        if mig.version <= last:
            (directory / mig.path.name).write_bytes(mig.path.read_bytes())
    return directory


_PARTITIONED_ROWS = {
    "drift_results": "SELECT * FROM drift_results ORDER BY model_name, model_version, window_start, feature, test",
    "data_quality_results": "SELECT * FROM data_quality_results "
    "ORDER BY source, subject, window_start, expectation, column_name",
    "drift_windows": "SELECT * FROM drift_windows ORDER BY model_name, model_version, window_start",
    "drift_windows_daily": "SELECT * FROM drift_windows_daily ORDER BY model_name, model_version, day",
}


def _rows(conn) -> dict[str, list[tuple]]:
    out = {}
    with conn.cursor() as cur:
        for table, sql in _PARTITIONED_ROWS.items():
            cur.execute(sql)
            out[table] = cur.fetchall()
    conn.rollback()
    return out


def test_partitioning_migration_keeps_every_existing_row(fresh_db, tmp_path: Path):
    """Rows written with the pre-022 schema (three months of hourly drift windows) survive migration 022 unchanged,
    each in its month's partition; the foreign key to drift_windows still cascades; a new month lands in the default
    partition until modelwatch_ensure_month_partition moves it into its own."""
    migrations.migrate(fresh_db, _upto(tmp_path / "pre", 21))
    with fresh_db.cursor() as cur:
        cur.execute("INSERT INTO model_versions (model_name, version, algorithm) VALUES ('m', 1, 'lightgbm')")
        # 2007-12-31 22:00 .. 2008-03-01 01:00 every 7 hours: windows in Dec, Jan, Feb and Mar
        cur.execute(
            "INSERT INTO drift_windows (model_name, model_version, window_start, window_end, status, n_rows, "
            "drift_score, level, n_drifted, drifted) "
            "SELECT 'm', 1, t, t + interval '1 hour', 'evaluated', 40, (extract(hour FROM t) / 24.0), 'none', 0, false "
            "FROM generate_series(timestamptz '2007-12-31 22:00+00', timestamptz '2008-03-01 01:00+00', "
            "interval '7 hours') AS t"
        )
        cur.execute(
            "INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, "
            "statistic, p_value, severity, drifted, n_current, details) "
            "SELECT 'm', 1, w.window_start, w.window_end, 'feature', f, t, random(), random(), 10 * random(), "
            "random() < 0.2, 40, jsonb_build_object('bins', f || t) "
            "FROM drift_windows w, unnest(ARRAY['rsi_14', 'ret_5d']) f, unnest(ARRAY['psi', 'ks']) t"
        )
        cur.execute(
            "INSERT INTO data_quality_results (source, subject, window_start, window_end, expectation, column_name, "
            "success, observed) SELECT 'drift_window', 'm v1', window_start, window_end, 'not_null', 'rsi_14', "
            "n_rows > 0, '{\"n\": 40}' FROM drift_windows"
        )
    fresh_db.commit()
    before = _rows(fresh_db)
    assert len(before["drift_results"]) == 4 * len(before["drift_windows"]) > 800

    applied = [m.version for m in migrations.migrate(fresh_db)]
    assert applied[:2] == [22, 23]
    assert _rows(fresh_db) == before

    from include.modelwatch.ops import retention

    for table in ("drift_results", "data_quality_results"):
        assert retention.partitions(fresh_db, table) == [
            f"{table}_default",
            f"{table}_p200712",
            f"{table}_p200801",
            f"{table}_p200802",
            f"{table}_p200803",
        ]
    with fresh_db.cursor() as cur:
        cur.execute("SELECT count(*) FROM drift_results_p200801")
        n_jan = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM drift_results WHERE window_start >= '2008-01-01 00:00+00' "
            "AND window_start < '2008-02-01 00:00+00'"
        )
        assert n_jan == cur.fetchone()[0] > 0
        cur.execute("SELECT count(*) FROM drift_results_default")
        assert cur.fetchone()[0] == 0
        # the foreign key still cascades from drift_windows
        cur.execute("DELETE FROM drift_windows WHERE window_start = '2007-12-31 22:00+00'")
        cur.execute("SELECT count(*) FROM drift_results WHERE window_start = '2007-12-31 22:00+00'")
        assert cur.fetchone()[0] == 0
        # a month without a partition goes to the default one, then into its own partition when it is created
        cur.execute(
            "INSERT INTO drift_windows (model_name, model_version, window_start, window_end, status, n_rows) "
            "VALUES ('m', 1, '2008-05-02 00:00+00', '2008-05-02 01:00+00', 'empty', 0)"
        )
        cur.execute(
            "INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test) "
            "VALUES ('m', 1, '2008-05-02 00:00+00', '2008-05-02 01:00+00', 'feature', 'rsi_14', 'psi')"
        )
        cur.execute("SELECT count(*) FROM drift_results_default")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT modelwatch_ensure_month_partition('drift_results', '2008-05-17')")
        assert cur.fetchone()[0] is True
        cur.execute("SELECT modelwatch_ensure_month_partition('drift_results', '2008-05-01')")
        assert cur.fetchone()[0] is False
        cur.execute("SELECT (SELECT count(*) FROM drift_results_default), (SELECT count(*) FROM drift_results_p200805)")
        assert cur.fetchone() == (0, 1)
        with pytest.raises(Exception, match="not a partitioned table"):
            cur.execute("SELECT modelwatch_ensure_month_partition('drift_windows', '2008-05-01')")
    fresh_db.rollback()
