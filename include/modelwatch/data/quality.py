"""Data-quality checks with Great Expectations 1.x, run inside tasks.

:func:`validate_frame` turns a small declarative :class:`FrameSpec` (columns,
types, value ranges, null share, row count) into a GX expectation suite,
validates a pandas frame in an ephemeral GX context and returns a
:class:`QualityReport` whose failures name the expectation, the column and the
observed value (and, for a failed column check, the first offending rows' positions as ``rows``). GX is
imported lazily (it costs ~1.5 s) with its logger and
progress bars silenced.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str = "numeric"  # 'numeric' | 'categorical'
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    max_null_share: float = 0.05


@dataclass(frozen=True)
class FrameSpec:
    columns: tuple[ColumnSpec, ...]
    min_rows: int = 1
    max_rows: int | None = None


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str
    observed: dict[str, Any]

    def describe(self) -> str:
        obs = ", ".join(f"{k}={v}" for k, v in self.observed.items())
        return f"{self.expectation}({self.column or 'table'}): {obs}"


@dataclass
class QualityReport:
    success: bool
    n_rows: int
    results: list[tuple[str, str, bool, dict[str, Any]]] = field(default_factory=list)

    @property
    def failures(self) -> list[Failure]:
        return [Failure(e, c, o) for e, c, ok, o in self.results if not ok]


def _gx():
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def _suite(gx, spec: FrameSpec, frame_columns: set[str]):
    gxe = gx.expectations
    suite = gx.ExpectationSuite(name="modelwatch_frame")
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=spec.min_rows, max_value=spec.max_rows))
    for col in spec.columns:
        suite.add_expectation(gxe.ExpectColumnToExist(column=col.name))
        if col.name not in frame_columns:
            continue  # the existence check above reports it; other checks would error
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=col.name, mostly=1.0 - col.max_null_share))
        if col.kind == "numeric":
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeInTypeList(
                    column=col.name, type_list=["float64", "float32", "int64", "int32", "Float64", "Int64"]
                )
            )
            lo = -1e12 if col.min_value is None else col.min_value
            hi = 1e12 if col.max_value is None else col.max_value
            suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=lo, max_value=hi))
        elif col.allowed is not None:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed)))
    return suite


def validate_frame(df: pd.DataFrame, spec: FrameSpec) -> QualityReport:
    """Validate ``df`` against ``spec`` with Great Expectations."""
    gx = _gx()
    context = gx.get_context(mode="ephemeral")
    try:
        context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    except Exception:  # older/newer config shapes: progress bars are cosmetic
        pass
    asset = context.data_sources.add_pandas("modelwatch").add_dataframe_asset("frame")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(_suite(gx, spec, set(df.columns)), result_format={"result_format": "SUMMARY"})
    rows: list[tuple[str, str, bool, dict[str, Any]]] = []
    for r in result.results:
        cfg = r.expectation_config
        observed = {
            k: v
            for k, v in (r.result or {}).items()
            if k in ("observed_value", "unexpected_count", "unexpected_percent", "partial_unexpected_list")
        }
        if "partial_unexpected_list" in observed:
            observed["partial_unexpected_list"] = [str(v) for v in observed["partial_unexpected_list"][:5]]
        index = (r.result or {}).get("partial_unexpected_index_list")
        if index and not r.success:
            observed["rows"] = [int(i) if isinstance(i, (int, float)) else str(i) for i in index[:5]]
        if r.exception_info and r.exception_info.get("raised_exception"):
            observed["exception"] = str(r.exception_info.get("exception_message"))[:200]
        rows.append((cfg.type, str(cfg.kwargs.get("column") or ""), bool(r.success), observed))
    return QualityReport(success=bool(result.success), n_rows=len(df), results=rows)
