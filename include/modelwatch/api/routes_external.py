"""Routes of external models (models ModelWatch did not train): register one from its spec and reference frame,
and list the batches of their prediction feeds.

Registering needs a user the auth manager lets edit (``PUT``) ``ingest_predictions``, the DAG that feeds these
models; listing needs read access to it. Registration goes through the library function the CLI uses
(:func:`include.modelwatch.external.register.register_external`), in one transaction, and records the user.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, UploadFile

from include.modelwatch.api import models as m
from include.modelwatch.api import queries_external
from include.modelwatch.api.auth import IngestEditor, IngestReader
from include.modelwatch.api.queries_common import DEFAULT_LIMIT
from include.modelwatch.api.routes_common import DbDep

router = APIRouter(tags=["external-models"])
#: Largest reference frame accepted over HTTP (bytes); bigger ones go through the CLI.
MAX_REFERENCE_BYTES = 64 * 1024 * 1024
SUFFIXES = (".parquet", ".pq", ".csv")


@router.post(
    "/external-models",
    summary="Register an external model (or its next version) from its spec and a reference frame",
)
def register_external_model(
    user: IngestEditor,
    conn: DbDep,
    spec: Annotated[str, Form(description="The spec as JSON: name, classes, features, owner, baseline, ...")],
    reference: Annotated[UploadFile, File(description="Parquet or CSV of validation-period predictions")],
    alias: Annotated[Literal["champion", "challenger"], Form()] = "champion",
) -> m.ExternalRegistered:
    from include.modelwatch.external import register, schema

    name = Path(reference.filename or "reference").name
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise HTTPException(422, f"reference: {name}: unsupported file type {suffix!r}; use .parquet or .csv")
    data = reference.file.read(MAX_REFERENCE_BYTES + 1)
    if len(data) > MAX_REFERENCE_BYTES:
        raise HTTPException(413, f"reference: {name} is larger than {MAX_REFERENCE_BYTES} bytes; use the CLI")
    try:
        parsed = schema.parse_spec(json.loads(spec))
    except json.JSONDecodeError as exc:
        raise HTTPException(422, f"spec: not valid JSON: {exc}") from exc
    except schema.SpecError as exc:
        raise HTTPException(422, f"spec: {exc}") from exc
    by = f"api:{user.get_name()}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            done = register.register_external(conn, parsed, path, alias=alias, by=by)
        except ValueError as exc:  # SpecError, unreadable file, a native model's name
            raise HTTPException(422, str(exc)) from exc
    return m.ExternalRegistered.model_validate({**register.describe(done), "by": by})


@router.get("/ingest/batches", summary="Batches of external models' feeds, loaded or quarantined, newest first")
def ingest_batches(
    user: IngestReader,
    conn: DbDep,
    model: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.IngestBatch]:
    return queries_external.ingest_batches(conn, model=model, kind=kind, status=status, limit=limit, offset=offset)
