"""Schema migrations for the monitoring database.

Files are ``sql/migrations/NNN_name.sql``, applied in numeric order by
:func:`migrate`. Each file runs in one transaction together with its row in
``schema_migrations``; a failing statement rolls the whole file back and the
error names the file, the statement number and its first line. Applying twice
is a no-op. A transaction-level advisory lock serialises concurrent migrators.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from include.modelwatch.data.storage import SQL_DIR

MIGRATIONS_DIR = SQL_DIR / "migrations"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_340_211  # arbitrary, constant advisory-lock key for migrations

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """A migration failed; nothing of it was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files in order; rejects misnamed files and duplicate numbers."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files must be named NNN_lower_snake.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version:03d} also used by {found[version].path.name}")
        found[version] = Migration(version, m.group(2), path)
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements (``sqlparse.split``), without the closing semicolons.

    Semicolons inside quotes, double-quoted identifiers, dollar-quoted bodies
    (``$$ ... $$``, ``$fn$ ... $fn$``) and comments do not split; a piece that
    holds only comments or whitespace is dropped.
    """
    import sqlparse

    return [stmt for stmt in (s.strip() for s in sqlparse.split(sql, strip_semicolon=True)) if has_code(stmt)]


def has_code(stmt: str) -> bool:
    """True when ``stmt`` holds more than comments and whitespace."""
    no_line_comments = re.sub(r"--[^\n]*", "", stmt)
    return bool(re.sub(r"/\*.*?\*/", "", no_line_comments, flags=re.S).strip())


def applied(conn) -> dict[int, tuple[str, str]]:
    """Applied versions -> (name, checksum); empty when the table does not exist yet.

    A read: it neither commits nor rolls back (the caller owns the transaction).
    """
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {}
        cur.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        return {v: (name, chk) for v, name, chk in cur.fetchall()}


def status(conn, directory: Path = MIGRATIONS_DIR) -> list[dict[str, object]]:
    """One row per migration: applied or pending, and whether the file changed since."""
    done = applied(conn)
    rows = []
    for mig in discover(directory):
        rec = done.get(mig.version)
        state = "pending" if rec is None else ("applied" if rec[1] == mig.checksum else "changed-after-apply")
        rows.append({"version": mig.version, "name": mig.name, "state": state})
    known = {r["version"] for r in rows}
    rows += [
        {"version": v, "name": name, "state": "unknown-to-this-code"} for v, (name, _) in done.items() if v not in known
    ]
    return rows


def check_applied(conn, files: list[Migration]) -> None:
    """Refuse a database this code cannot safely migrate: a migration applied from a file that was edited since
    (its SHA-256 differs from the one recorded at apply), or a version the code does not know (the database was
    migrated by newer code). Raises :class:`MigrationError` naming the file or version; a read."""
    known = {m.version: m for m in files}
    newest = max(known, default=0)
    for v, (name, checksum) in sorted(applied(conn).items()):
        mig = known.get(v)
        if mig is None:
            raise MigrationError(
                f"schema version {v} ({name}) is newer than this code (its newest migration is {newest:03d}): "
                "the database was migrated by a newer ModelWatch; run that version"
                if v > newest
                else f"migration {v:03d} ({name}) is applied in the database but this code has no file for it"
            )
        if checksum != mig.checksum:
            raise MigrationError(
                f"migration {mig.path.name} was edited after it was applied (recorded sha256 {checksum[:12]}, "
                f"file now {mig.checksum[:12]}): restore the file and put the change in a new migration"
            )


def migrate(conn, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply all pending migrations in order; returns the ones applied now. Refuses (:func:`check_applied`) an
    edited applied migration or a database migrated by newer code, before applying anything."""
    done_now: list[Migration] = []
    files = discover(directory)
    try:
        check_applied(conn, files)
    finally:
        conn.rollback()
    for mig in files:
        statements = split_statements(mig.sql)
        cur = conn.cursor()
        try:
            cur.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": _LOCK_KEY})
            cur.execute(_BOOKKEEPING)
            cur.execute("SELECT 1 FROM schema_migrations WHERE version = %(version)s", {"version": mig.version})
            if cur.fetchone():
                conn.rollback()
                continue
            for idx, stmt in enumerate(statements, start=1):
                try:
                    cur.execute(stmt)
                except Exception as exc:
                    first = next(
                        (ln.strip() for ln in stmt.splitlines() if ln.strip() and not ln.strip().startswith("--")), ""
                    )
                    raise MigrationError(
                        f"migration {mig.path.name} failed at statement {idx} of {len(statements)} "
                        f"({first[:120]!r}): {str(exc).strip()}"
                    ) from exc
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%(version)s, %(name)s, %(checksum)s)",
                {"version": mig.version, "name": mig.name, "checksum": mig.checksum},
            )
            conn.commit()
            done_now.append(mig)
        except BaseException:
            conn.rollback()
            raise
        finally:
            cur.close()
    return done_now
