"""Model registry: versions, artifacts with SHA-256, aliases with history.

A version is registered in one transaction after its artifact was written to
the artifact store (:mod:`.artifacts`: a local folder or any fsspec URL, through
Airflow's ``ObjectStoragePath``); the row records the artifact's URL and SHA-256.
A failed write registers nothing (:class:`ArtifactStoreError` names the model,
version and URL); if the insert fails the artifact is removed again, so there is
never a half-registered model. Aliases (``champion``, ``challenger``) change only
through :func:`set_alias`, which appends the change to the append-only
``model_alias_history`` in the same transaction. Loading by alias verifies the
artifact's hash and refuses a file that does not match.

Lifecycle of a version (``model_versions.status``, transitions enforced by the
database, migration 008): a retrained version is registered ``candidate``; the
bootstrap champion is registered ``active``. Pointing an alias at a version makes
it ``active``; a version that loses its last alias becomes ``retired``; a rollback
re-activates a retired one. A candidate that is not deployed becomes ``rejected``
(:func:`set_status`). Reads never end the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from include.modelwatch.data.storage import fetch_dicts, transaction
from include.modelwatch.registry import artifacts

CHAMPION, CHALLENGER = "champion", "challenger"
ALIASES: tuple[str, ...] = (CHAMPION, CHALLENGER)
CANDIDATE, ACTIVE, RETIRED, REJECTED = "candidate", "active", "retired", "rejected"
#: A model's origin (``monitored_models.origin``): trained by ModelWatch, or registered from a reference frame.
NATIVE, EXTERNAL = "native", "external"
#: Allowed status changes (the database refuses any other; migration 008).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    CANDIDATE: (ACTIVE, REJECTED),
    ACTIVE: (RETIRED,),
    RETIRED: (ACTIVE,),
    REJECTED: (),
}


class RegistryError(RuntimeError):
    """Unknown model, version or alias."""


class ArtifactIntegrityError(RegistryError):
    """An artifact's bytes do not match the SHA-256 recorded at registration, or the artifact is missing
    (``actual`` None). Carries the version, the URL and both hashes for the alert it raises."""

    def __init__(self, message: str, mv: ModelVersion, *, actual: str | None = None) -> None:
        super().__init__(message)
        self.model_name, self.version, self.url = mv.model_name, mv.version, mv.artifact_url
        self.expected, self.actual = mv.artifact_sha256, actual


class ArtifactStoreError(RegistryError):
    """The artifact store failed (a full disk, a refused or unreachable object store); nothing was registered."""


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    algorithm: str
    features: list[str]
    classes: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    horizon_days: int | None = None
    train_start: date | None = None
    train_end: date | None = None
    dataset_fingerprint: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    feature_importance: dict[str, float] | None = None
    reference_profile: dict[str, Any] | None = None
    #: the artifact's URL (``file:///...`` locally; a plain path in rows registered before URLs)
    artifact_path: str | None = None
    artifact_sha256: str | None = None
    status: str = CANDIDATE
    created_by_run: str | None = None
    feature_schema: list[dict[str, Any]] | None = None

    @property
    def label(self) -> str:
        return f"{self.model_name} v{self.version}"

    @property
    def artifact_url(self) -> str | None:
        """The artifact's URL (a plain path of an older row as ``file://``), None for an external version."""
        return artifacts.store_url(self.artifact_path) if self.artifact_path else None

    @property
    def categorical_features(self) -> list[str]:
        """Features whose values are categories (text): declared in an external version's schema; none natively."""
        return [f["name"] for f in (self.feature_schema or []) if f.get("kind") == "categorical"]

    @property
    def external(self) -> bool:
        """Registered from a reference frame (no artifact): ModelWatch monitors it but cannot score or retrain it."""
        return self.artifact_path is None


_COLUMNS = (
    "model_name, version, algorithm, features, classes, params, horizon_days, train_start, train_end, "
    "dataset_fingerprint, metrics, feature_importance, reference_profile, artifact_path, artifact_sha256, "
    "status, created_by_run, feature_schema"
)


def _row_to_version(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion(**row)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def register_version(
    conn,
    *,
    model_name: str,
    algorithm: str,
    artifact: bytes | None,
    artifact_dir: str | Path | None,
    features: list[str],
    classes: list[str],
    params: dict[str, Any] | None = None,
    horizon_days: int | None = None,
    train_start: date | None = None,
    train_end: date | None = None,
    dataset_fingerprint: str | None = None,
    metrics: dict[str, Any] | None = None,
    feature_importance: dict[str, float] | None = None,
    reference_profile: dict[str, Any] | None = None,
    run_id: str | None = None,
    status: str = CANDIDATE,
    feature_schema: list[dict[str, Any]] | None = None,
    owner: str | None = None,
    cur=None,
) -> ModelVersion:
    """Write the artifact and register it as the next version of ``model_name``
    (``status`` ``candidate``, or ``active`` for a version made champion at once, as bootstrap does).

    ``artifact=None`` registers an *external* version (a model ModelWatch did not train, described by its
    ``feature_schema``); the model's origin (``monitored_models``) is fixed by its first version, and a
    native model never gets an external version or the reverse. ``owner`` is recorded with a new model.

    ``artifact_dir`` is the artifact store: a local folder or an fsspec URL (:mod:`.artifacts`). A failed
    write raises :class:`ArtifactStoreError` and registers nothing.

    Pass ``cur`` to register inside a caller's transaction (a candidate, its
    baseline, gate rows and job outcome commit together or not at all); a
    rolled-back registration leaves at most an orphan artifact, which
    the next registration of that version number overwrites.
    """
    if status not in (CANDIDATE, ACTIVE):
        raise ValueError(f"{model_name}: a new version is registered as {CANDIDATE!r} or {ACTIVE!r}, not {status!r}")
    with nullcontext(cur) if cur is not None else transaction(conn) as c:
        return _register(
            c,
            model_name,
            algorithm,
            artifact,
            artifact_dir,
            features,
            classes,
            params,
            horizon_days,
            train_start,
            train_end,
            dataset_fingerprint,
            metrics,
            feature_importance,
            reference_profile,
            run_id,
            status,
            feature_schema,
            owner,
        )


def _register(
    cur,
    model_name,
    algorithm,
    artifact,
    artifact_dir,
    features,
    classes,
    params,
    horizon_days,
    train_start,
    train_end,
    dataset_fingerprint,
    metrics,
    feature_importance,
    reference_profile,
    run_id,
    status,
    feature_schema,
    owner,
) -> ModelVersion:
    origin = NATIVE if artifact is not None else EXTERNAL
    if origin == NATIVE and artifact_dir is None:
        raise ValueError(f"{model_name}: a native version needs an artifact directory")
    digest = sha256_bytes(artifact) if artifact is not None else None
    written: str | None = None
    try:
        # serialise version numbering per model without locking the table
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%(key)s))", {"key": f"registry:{model_name}"})
        cur.execute(
            "INSERT INTO monitored_models (model_name, origin, owner, registered_by) "
            "VALUES (%(model)s, %(origin)s, %(owner)s, %(run_id)s) ON CONFLICT (model_name) DO NOTHING",
            {"model": model_name, "origin": origin, "owner": owner, "run_id": run_id},
        )
        cur.execute("SELECT origin FROM monitored_models WHERE model_name = %(model)s", {"model": model_name})
        known = cur.fetchone()[0]
        if known != origin:
            raise RegistryError(f"model {model_name} is {known}; it cannot get an {origin} version")
        cur.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model_name = %(model)s",
            {"model": model_name},
        )
        version = int(cur.fetchone()[0])
        url: str | None = None
        if artifact is not None:
            url = artifacts.artifact_url(str(artifact_dir), model_name, version)
            try:
                artifacts.write(url, artifact)
            except Exception as exc:
                raise ArtifactStoreError(
                    f"{model_name} v{version}: writing its artifact ({len(artifact)} bytes) to {url} failed: "
                    f"{type(exc).__name__}: {exc}; the version is not registered"
                ) from exc
            written = url
        cur.execute(
            f"INSERT INTO model_versions ({_COLUMNS}) VALUES "
            "(%(model_name)s, %(version)s, %(algorithm)s, %(features)s, %(classes)s, %(params)s, %(horizon_days)s, "
            "%(train_start)s, %(train_end)s, %(dataset_fingerprint)s, %(metrics)s, %(feature_importance)s, "
            "%(reference_profile)s, %(artifact_path)s, %(artifact_sha256)s, %(status)s, %(run_id)s, "
            "%(feature_schema)s)",
            {
                "model_name": model_name,
                "version": version,
                "algorithm": algorithm,
                "features": json.dumps(features),
                "classes": json.dumps(classes),
                "params": json.dumps(params or {}),
                "horizon_days": horizon_days,
                "train_start": train_start,
                "train_end": train_end,
                "dataset_fingerprint": dataset_fingerprint,
                "metrics": json.dumps(metrics or {}, default=float),
                "feature_importance": json.dumps(feature_importance) if feature_importance is not None else None,
                "reference_profile": json.dumps(reference_profile) if reference_profile is not None else None,
                "artifact_path": url,
                "artifact_sha256": digest,
                "status": status,
                "run_id": run_id,
                "feature_schema": json.dumps(feature_schema) if feature_schema is not None else None,
            },
        )
    except BaseException:
        if written is not None:
            try:
                artifacts.delete(written)
            except Exception:  # keep the original error; an orphan is overwritten by this version's next writer
                pass
        raise
    cur.execute(
        f"SELECT {_COLUMNS} FROM model_versions WHERE model_name = %(model)s AND version = %(version)s",
        {"model": model_name, "version": version},
    )
    return _row_to_version(dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True)))


def get_version(conn, model_name: str, version: int) -> ModelVersion:
    rows = fetch_dicts(
        conn,
        f"SELECT {_COLUMNS} FROM model_versions WHERE model_name = %(model)s AND version = %(version)s",
        {"model": model_name, "version": version},
    )
    if not rows:
        raise RegistryError(f"model {model_name} has no version {version}")
    return _row_to_version(rows[0])


def resolve_alias(conn, model_name: str, alias: str) -> int | None:
    rows = fetch_dicts(
        conn,
        "SELECT version FROM model_aliases WHERE model_name = %(model)s AND alias = %(alias)s",
        {"model": model_name, "alias": alias},
    )
    return int(rows[0]["version"]) if rows else None


def get_alias(conn, model_name: str, alias: str) -> ModelVersion:
    version = resolve_alias(conn, model_name, alias)
    if version is None:
        raise RegistryError(f"model {model_name} has no {alias!r} alias; bootstrap or deploy a version first")
    return get_version(conn, model_name, version)


def set_alias(
    conn,
    model_name: str,
    alias: str,
    version: int | None,
    *,
    reason: str,
    changed_at: datetime,
    run_id: str | None = None,
    cur=None,
) -> int | None:
    """Point ``alias`` at ``version`` (None removes it) and record why.

    Pass ``cur`` to take part in a caller's transaction (deployments change
    several things at once); otherwise this runs in its own transaction.
    Returns the previous version.
    """
    if not reason or not reason.strip():
        raise ValueError("an alias change needs a reason")

    def _apply(c) -> int | None:
        key = {
            "lock": f"alias:{model_name}:{alias}",
            "model": model_name,
            "alias": alias,
            "version": version,
            "at": changed_at,
        }
        c.execute("SELECT pg_advisory_xact_lock(hashtext(%(lock)s))", key)
        c.execute(
            "SELECT version FROM model_aliases WHERE model_name = %(model)s AND alias = %(alias)s FOR UPDATE", key
        )
        row = c.fetchone()
        previous = int(row[0]) if row else None
        if version is None:
            c.execute("DELETE FROM model_aliases WHERE model_name = %(model)s AND alias = %(alias)s", key)
        else:
            c.execute("SELECT 1 FROM model_versions WHERE model_name = %(model)s AND version = %(version)s", key)
            if c.fetchone() is None:
                raise RegistryError(f"model {model_name} has no version {version}")
            c.execute(
                "INSERT INTO model_aliases (model_name, alias, version, updated_at) "
                "VALUES (%(model)s, %(alias)s, %(version)s, %(at)s) ON CONFLICT (model_name, alias) "
                "DO UPDATE SET version = EXCLUDED.version, updated_at = EXCLUDED.updated_at",
                key,
            )
            # holding an alias means monitored: active (the database refuses it for a rejected version)
            _set_status(c, model_name, version, ACTIVE)
        if previous is not None and previous != version:
            c.execute(
                "SELECT 1 FROM model_aliases WHERE model_name = %(model)s AND version = %(version)s",
                {"model": model_name, "version": previous},
            )
            if c.fetchone() is None:  # replaced and no other alias left: retired
                c.execute(
                    "UPDATE model_versions SET status = %(retired)s WHERE model_name = %(model)s "
                    "AND version = %(version)s AND status = %(active)s",
                    {"retired": RETIRED, "active": ACTIVE, "model": model_name, "version": previous},
                )
        c.execute(
            "INSERT INTO model_alias_history (model_name, alias, from_version, to_version, changed_at, reason, run_id) "
            "VALUES (%(model)s, %(alias)s, %(previous)s, %(version)s, %(at)s, %(reason)s, %(run_id)s)",
            {**key, "previous": previous, "reason": reason.strip(), "run_id": run_id},
        )
        return previous

    if cur is not None:
        return _apply(cur)
    with transaction(conn) as c:
        return _apply(c)


def _set_status(cur, model_name: str, version: int, status: str) -> None:
    cur.execute(
        "UPDATE model_versions SET status = %(status)s WHERE model_name = %(model)s AND version = %(version)s "
        "AND status <> %(status)s",
        {"status": status, "model": model_name, "version": version},
    )


def set_status(conn, model_name: str, version: int, status: str, *, cur=None) -> None:
    """Move a version along its lifecycle (see the module docstring); an illegal change is refused by
    PostgreSQL. Pass ``cur`` to take part in a caller's transaction."""
    if status not in TRANSITIONS:
        raise ValueError(f"{model_name} v{version}: unknown status {status!r}; expected one of {tuple(TRANSITIONS)}")
    if cur is not None:
        _set_status(cur, model_name, version, status)
        return
    with transaction(conn) as own:
        _set_status(own, model_name, version, status)


def version_statuses(conn, model_name: str) -> dict[int, str]:
    """``{version: status}`` of every registered version of ``model_name``."""
    rows = fetch_dicts(
        conn,
        "SELECT version, status FROM model_versions WHERE model_name = %(model)s ORDER BY version",
        {"model": model_name},
    )
    return {int(r["version"]): str(r["status"]) for r in rows}


def alias_history(conn, model_name: str, alias: str | None = None) -> list[dict[str, Any]]:
    sql = (
        "SELECT alias, from_version, to_version, changed_at, reason, run_id FROM model_alias_history "
        "WHERE model_name = %(model)s AND (%(alias)s::text IS NULL OR alias = %(alias)s) ORDER BY id"
    )
    return fetch_dicts(conn, sql, {"model": model_name, "alias": alias})


def active_versions(conn) -> list[dict[str, Any]]:
    """Every (model, version) that currently holds an alias: what monitoring fans out over."""
    rows = fetch_dicts(
        conn,
        "SELECT model_name, version, array_agg(alias ORDER BY alias) AS aliases FROM model_aliases "
        "GROUP BY model_name, version ORDER BY model_name, version",
    )
    return [{"model_name": r["model_name"], "version": int(r["version"]), "aliases": list(r["aliases"])} for r in rows]


def model_info(conn, model_name: str) -> dict[str, Any] | None:
    """The model's row of ``monitored_models`` (origin, owner, description), or None for an unknown model."""
    rows = fetch_dicts(
        conn,
        "SELECT model_name, origin, owner, description, registered_at, registered_by FROM monitored_models "
        "WHERE model_name = %(model)s",
        {"model": model_name},
    )
    return rows[0] if rows else None


def monitored_models(conn, origin: str | None = None) -> list[dict[str, Any]]:
    """Every monitored model (optionally of one ``origin``) with its champion version, by name."""
    return fetch_dicts(
        conn,
        "SELECT m.model_name, m.origin, m.owner, m.description, m.registered_at, a.version AS champion "
        "FROM monitored_models m LEFT JOIN model_aliases a ON a.model_name = m.model_name AND a.alias = 'champion' "
        "WHERE %(origin)s::text IS NULL OR m.origin = %(origin)s ORDER BY m.model_name",
        {"origin": origin},
    )


def read_artifact(mv: ModelVersion) -> bytes:
    """The artifact's bytes, verified against the registered SHA-256 before anyone unpickles them: a missing or
    modified artifact raises :class:`ArtifactIntegrityError` naming the version, the URL and both hashes."""
    url = mv.artifact_url
    expected = mv.artifact_sha256 or ""
    if url is None:
        raise ArtifactIntegrityError(f"{mv.label} has no artifact", mv)
    try:
        data = artifacts.read(url)
    except FileNotFoundError:
        raise ArtifactIntegrityError(
            f"{mv.label}: artifact {url} is missing (registered SHA-256 {expected})", mv
        ) from None
    except Exception as exc:
        raise ArtifactStoreError(f"{mv.label}: reading artifact {url} failed: {type(exc).__name__}: {exc}") from exc
    actual = sha256_bytes(data)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"{mv.label}: artifact {url} has SHA-256 {actual}, the registry expects {expected}; "
            "refusing to load a modified or corrupted model",
            mv,
            actual=actual,
        )
    return data


def load_by_alias(conn, model_name: str, alias: str = CHAMPION) -> tuple[ModelVersion, bytes]:
    mv = get_alias(conn, model_name, alias)
    return mv, read_artifact(mv)


def write_baseline(
    cur,
    mv: ModelVersion,
    baseline: dict[str, float | None],
    start: date,
    end: date,
    n: int,
    source: str = "purged walk-forward out-of-fold",
) -> None:
    """Replace the ``backtest_baseline`` rows of ``mv`` (one per metric) inside the caller's transaction."""
    key = {"model": mv.model_name, "version": mv.version}
    cur.execute("DELETE FROM backtest_baseline WHERE model_name = %(model)s AND model_version = %(version)s", key)
    for metric, value in sorted(baseline.items()):
        cur.execute(
            "INSERT INTO backtest_baseline (model_name, model_version, metric, value, period_start, period_end, "
            "n_predictions, details) VALUES (%(model)s, %(version)s, %(metric)s, %(value)s, %(start)s, %(end)s, "
            "%(n)s, %(details)s)",
            {
                **key,
                "metric": metric,
                "value": value,
                "start": start,
                "end": end,
                "n": n,
                "details": json.dumps({"source": source}),
            },
        )
