"""Model artifact storage: a local folder or any fsspec URL, through Airflow's ``ObjectStoragePath``.

The store is ``$MODELWATCH_ARTIFACT_DIR`` (:func:`include.modelwatch.defaults.artifact_dir`): a plain path
(a local folder, e.g. the default ``.modelwatch/artifacts``) or a URL, ``file:///srv/artifacts``,
``s3://bucket/prefix``, ``gs://bucket/prefix``, ``memory://...`` or any other fsspec protocol. An Airflow
connection supplies the credentials when the URL names it, ``s3://aws_default@bucket/prefix`` (Airflow's
object storage convention; the protocol's provider must be installed: ``apache-airflow-providers-amazon`` for
s3, ``-google`` for gs). A protocol no provider registers and no connection names is opened with fsspec's own
implementation of it (its usual credential chain).

A version's artifact lives at ``<store>/<model>/v<version>/model.bin``; the registry records that URL
(a plain path becomes ``file://`` + its absolute path) and the SHA-256 of the bytes. A row written before
artifacts moved to URLs holds a plain path: :func:`path` reads it as a local file, as before.

Writes are atomic as far as the store allows: on a local disk the bytes go to a temporary file in the target
folder, are flushed and fsynced, and renamed over the target (a failure removes the temporary file, so a full
disk leaves no partial ``model.bin``); an object store gets one put of the whole object.

Airflow is imported lazily (only when an artifact is read or written): DAG files that import the registry stay
light to parse.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

FILE_NAME = "model.bin"
LOCAL_PROTOCOLS = ("file", "local")


def store_url(location: str | os.PathLike[str]) -> str:
    """The URL of an artifact store: a URL as given (without a trailing ``/``), a plain path as ``file://`` and
    its absolute path (a relative one is resolved against the working directory)."""
    text = os.fspath(location).strip()
    if not text:
        raise ValueError("artifact store: empty location; set MODELWATCH_ARTIFACT_DIR to a folder or an fsspec URL")
    if "://" in text:
        return text.rstrip("/")
    return "file://" + os.path.abspath(os.path.expanduser(text))


def artifact_url(store: str | os.PathLike[str], model_name: str, version: int) -> str:
    """Where version ``version`` of ``model_name`` is stored in ``store`` (a path or URL)."""
    return f"{store_url(store)}/{model_name}/v{version}/{FILE_NAME}"


def path(url: str) -> ObjectStoragePath:
    """The ``ObjectStoragePath`` of an artifact URL (a plain path is a local file)."""
    from airflow.sdk import ObjectStoragePath

    p = ObjectStoragePath(store_url(url))
    _attach_fsspec(p)
    return p


def _attach_fsspec(p: ObjectStoragePath) -> None:
    """Let Airflow open a protocol no provider registers (``memory``, ``gcs`` via gcsfs, ...) with fsspec's own
    implementation, unless the URL names a connection (then the provider is required and its error stands)."""
    from airflow.sdk.io import attach, has_fs

    if p.conn_id is None and p.protocol and not has_fs(p.protocol):
        import fsspec  # type: ignore[import-untyped]

        attach(p.protocol, fs=fsspec.filesystem(p.protocol))


def write(url: str, data: bytes) -> None:
    """Store ``data`` at ``url``, replacing what is there: temporary file + fsync + rename on a local disk (no
    partial file is left on failure), one put on an object store."""
    target = path(url)
    if target.protocol not in LOCAL_PROTOCOLS:
        target.write_bytes(data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read(url: str) -> bytes:
    """The bytes at ``url``; ``FileNotFoundError`` when nothing is there."""
    return path(url).read_bytes()


def delete(url: str) -> None:
    """Remove the artifact at ``url`` if it exists."""
    try:
        path(url).unlink(missing_ok=True)
    except FileNotFoundError:
        pass
