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
