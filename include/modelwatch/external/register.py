"""Register a model ModelWatch did not train, from its spec and a reference frame.

The reference frame (Parquet or CSV) holds the model's predictions over its validation period: ``ts``, optional
``symbol``, every feature of the spec, ``p_<class>`` for every class and optionally ``predicted_label`` (else the
most probable class). From it come, exactly as for a native model
(:func:`include.modelwatch.training.candidate.reference_profile`), the drift reference profile, and the feature
schema with the ranges batches are validated against (:func:`schema.feature_schema`). The spec's baseline metrics
become the version's ``backtest_baseline``.

One transaction: the version (``active``, no artifact), its baseline and its alias, or nothing. The alias counts
from the end of the reference period (the version was validated up to then), so a replay of earlier windows does
not see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch import registry
from include.modelwatch.data.storage import transaction
from include.modelwatch.external.schema import ModelSpec, SpecError, feature_schema
from include.modelwatch.vocabulary import prob_columns

#: Fewest reference rows: the drift reference needs a distribution, not a handful of points.
MIN_REFERENCE_ROWS = 100
#: Largest |sum of a row's probabilities - 1| accepted.
PROB_SUM_TOLERANCE = 1e-3
ALGORITHM = "external"


@dataclass(frozen=True)
class Registered:
    model: registry.ModelVersion
    alias: str
    previous: int | None
    reference_rows: int
    period: tuple[str, str]


def read_frame(path: str | Path) -> pd.DataFrame:
    """A Parquet (``.parquet``/``.pq``) or CSV file as a frame; a ValueError names the file when it cannot be read."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix == ".csv":
            return pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001  (pyarrow / csv errors of every kind: name the file)
        raise ValueError(f"{p.name}: cannot be read as {suffix.lstrip('.')}: {type(exc).__name__}: {exc}") from exc
    raise ValueError(f"{p.name}: unsupported file type {suffix!r}; use .parquet or .csv")


def file_sha256(path: str | Path) -> str:
    return registry.sha256_bytes(Path(path).read_bytes())


def check_probabilities(df: pd.DataFrame, classes: list[str], what: str) -> np.ndarray:
    """The probability matrix of ``df`` (rows x classes), or a SpecError naming the first bad row and column."""
    cols = prob_columns(classes)
    p = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise SpecError(f"{what}: row {r}, column {cols[c]}: probability {p[r, c]} is not in [0, 1]")
    off = np.abs(p.sum(axis=1) - 1.0) > PROB_SUM_TOLERANCE
    if off.any():
        r = int(np.argmax(off))
        raise SpecError(f"{what}: row {r}: probabilities {cols} sum to {p[r].sum():.6f}, not 1")
    return p


def check_reference(spec: ModelSpec, df: pd.DataFrame, what: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The reference frame in time order (``ts`` as UTC) with its probability matrix; a SpecError names the
    file and the missing column or bad value."""
    need = ["ts", *spec.feature_names, *prob_columns(spec.classes)]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise SpecError(f"{what}: missing column(s) {missing} (a reference frame has ts, the features and p_<class>)")
    if len(df) < MIN_REFERENCE_ROWS:
        raise SpecError(f"{what}: {len(df)} row(s); a reference needs at least {MIN_REFERENCE_ROWS}")
    out = df.copy()
    ts = pd.to_datetime(out["ts"], utc=True, errors="coerce")
    if ts.isna().any():
        r = int(np.argmax(ts.isna().to_numpy()))
        raise SpecError(f"{what}: row {r}, column ts: {df['ts'].iloc[r]!r} is not a timestamp")
    out["ts"] = ts
    for f in spec.features:
        if f.kind == "categorical":  # levels are text (a file may hold them as integers)
            out[f.name] = out[f.name].map(lambda v: v if pd.isna(v) else str(v))
        if f.kind == "numeric":
            col = pd.to_numeric(out[f.name], errors="coerce")
            text = out[f.name].notna() & col.isna()
            if text.any():
                r = int(np.argmax(text.to_numpy()))
                raise SpecError(f"{what}: row {r}, column {f.name}: {out[f.name].iloc[r]!r} is not a number")
            infinite = np.isinf(col.to_numpy(dtype=float))
            if infinite.any():  # missing values are allowed (NaN), an infinite one is an encoding error
                r = int(np.argmax(infinite))
                raise SpecError(f"{what}: row {r}, column {f.name}: {col.iloc[r]} is not a finite number")
            out[f.name] = col.astype(float)
    check_probabilities(out, list(spec.classes), what)  # rows named as in the file, before sorting
    out = out.sort_values("ts", kind="stable").reset_index(drop=True)
    proba = out[prob_columns(spec.classes)].to_numpy(dtype=float)
    if "predicted_label" in out.columns:
        unknown = sorted({str(v) for v in out["predicted_label"].dropna()} - set(spec.classes))
        if unknown:
            raise SpecError(f"{what}: column predicted_label: unknown class(es) {unknown[:5]} (classes {spec.classes})")
    return out, proba


def register_external(
    conn,
    spec: ModelSpec,
    reference_path: str | Path,
    *,
    alias: str = registry.CHAMPION,
    by: str,
    run_id: str | None = None,
) -> Registered:
    """Register ``spec`` as the next version of an external model and point ``alias`` at it (module docstring)."""
    from include.modelwatch.training.candidate import reference_profile

    path = Path(reference_path)
    if alias not in registry.ALIASES:
        raise ValueError(f"{spec.name}: alias must be one of {list(registry.ALIASES)}, got {alias!r}")
    info = registry.model_info(conn, spec.name)
    if info is not None and info["origin"] != registry.EXTERNAL:
        raise SpecError(f"{spec.name} is a model ModelWatch trains ({info['origin']}); choose another name")
    ref, proba = check_reference(spec, read_frame(path), path.name)
    schema = feature_schema(spec, ref)
    profile = reference_profile(
        ref[spec.feature_names], proba, {}, classes=list(spec.classes), categorical=spec.categorical
    )
    start, end = ref["ts"].min(), ref["ts"].max()
    live_from = datetime.combine(end.date(), time(0), tzinfo=UTC) + pd.Timedelta(days=1)
    with transaction(conn) as cur:
        mv = registry.register_version(
            conn,
            model_name=spec.name,
            algorithm=ALGORITHM,
            artifact=None,
            artifact_dir=None,
            features=spec.feature_names,
            classes=list(spec.classes),
            params={"registered_by": by, "reference_file": path.name, "description": spec.description},
            horizon_days=spec.horizon_days,
            train_start=start.date(),
            train_end=end.date(),
            dataset_fingerprint=file_sha256(path),
            metrics={"baseline": dict(spec.baseline), "reference_rows": len(ref)},
            reference_profile=profile,
            run_id=run_id,
            status=registry.ACTIVE,
            feature_schema=schema,
            owner=spec.owner,
            cur=cur,
        )
        baseline: dict[str, float | None] = dict(spec.baseline)
        registry.write_baseline(
            cur, mv, baseline, start.date(), end.date(), len(ref), source=f"declared at registration ({path.name})"
        )
        previous = registry.set_alias(
            conn,
            spec.name,
            alias,
            mv.version,
            reason=f"external model registered by {by} from {path.name}",
            changed_at=live_from,
            run_id=run_id,
            cur=cur,
        )
        if spec.owner or spec.description:
            cur.execute(
                "UPDATE monitored_models SET owner = coalesce(%(owner)s, owner), "
                "description = coalesce(%(description)s, description) WHERE model_name = %(model)s",
                {"owner": spec.owner, "description": spec.description, "model": spec.name},
            )
    return Registered(mv, alias, previous, len(ref), (str(start.date()), str(end.date())))


def describe(r: Registered) -> dict[str, Any]:
    """What the CLI and the API print of a registration."""
    return {
        "model": r.model.model_name,
        "version": r.model.version,
        "alias": r.alias,
        "previous_version": r.previous,
        "classes": r.model.classes,
        "features": r.model.features,
        "reference_rows": r.reference_rows,
        "reference_period": list(r.period),
        "feature_schema": r.model.feature_schema,
    }
