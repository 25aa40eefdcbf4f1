"""An external model's registration spec and the feature schema its batches are validated against (no DB).

The spec is a small YAML or JSON file (README, "Monitor your own model")::

    name: fx_momentum                # the model's name in ModelWatch
    classes: [down, up]              # class labels, in the order of its probability vector
    owner: quant-desk@example.com    # who receives its retrain requests
    horizon_days: 1                  # when an outcome is known, after the prediction (default 1)
    description: ...                 # optional
    features:                        # the inputs the platform logs with every prediction
      - {name: ret_5d, min: -0.5, max: 0.5}          # numeric; the range is optional
      - {name: venue, kind: categorical, levels: [XNYS, XNAS]}
    baseline: {accuracy: 0.58, macro_f1: 0.55}       # its backtest / validation metrics

:func:`feature_schema` completes every feature with what the reference frame shows: a numeric feature without a
declared range gets the reference's range widened by its own width on each side (three times the span of the
validation period: a value beyond it is a unit or encoding error, not drift, and refuses the batch), a categorical
feature without declared levels gets the reference's levels. The result is stored with the version
(``model_versions.feature_schema``) and is what ``ingest_predictions`` checks every batch against.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from include.modelwatch.vocabulary import MACRO_METRICS, prob_columns

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
KINDS = ("numeric", "categorical")
#: Columns of a prediction batch or reference frame that are not features.
RESERVED = frozenset(
    {
        "model_name",
        "model_version",
        "ts",
        "symbol",
        "timeframe",
        "predicted_label",
        "confidence",
        "realized_label",
        "realized_return",
        "matured_at",
    }
)
#: Baseline metrics an external model may declare (the class-agnostic ones ``performance_daily`` compares).
BASELINE_METRICS: tuple[str, ...] = ("accuracy", *MACRO_METRICS, "brier", "ece", "avg_confidence", "roc_auc_ovr")
DEFAULT_MAX_NULL_SHARE = 0.05


class SpecError(ValueError):
    """A registration spec or reference frame that cannot describe a model; the message names the field."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str = "numeric"
    min: float | None = None
    max: float | None = None
    levels: tuple[str, ...] | None = None
    max_null_share: float = DEFAULT_MAX_NULL_SHARE

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "min": self.min,
            "max": self.max,
            "levels": list(self.levels) if self.levels is not None else None,
            "max_null_share": self.max_null_share,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "feature") -> FeatureSpec:
        unknown = sorted(set(d) - {"name", "kind", "min", "max", "levels", "max_null_share"})
        if unknown:
            raise SpecError(f"{where}: unknown field(s) {unknown}")
        name = d.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise SpecError(f"{where}: 'name' must be a name of letters, digits, '_', '.', '-' ({name!r})")
        if name in RESERVED or name.startswith("p_"):
            raise SpecError(f"{where} {name}: the name is reserved for a batch column")
        kind = d.get("kind", "numeric")
        if kind not in KINDS:
            raise SpecError(f"feature {name}: 'kind' must be one of {list(KINDS)}, got {kind!r}")
        lo, hi = _number(d.get("min"), f"feature {name}: 'min'"), _number(d.get("max"), f"feature {name}: 'max'")
        if lo is not None and hi is not None and lo > hi:
            raise SpecError(f"feature {name}: 'min' {lo} is above 'max' {hi}")
        levels = d.get("levels")
        if levels is not None:
            if kind != "categorical" or not isinstance(levels, list) or not levels:
                raise SpecError(f"feature {name}: 'levels' is a non-empty list, for a categorical feature only")
            levels = tuple(str(v) for v in levels)
        if kind == "categorical" and (lo is not None or hi is not None):
            raise SpecError(f"feature {name}: a categorical feature has 'levels', not 'min'/'max'")
        share = _number(d.get("max_null_share", DEFAULT_MAX_NULL_SHARE), f"feature {name}: 'max_null_share'")
        if share is None or not 0 <= share < 1:
            raise SpecError(f"feature {name}: 'max_null_share' must be in [0, 1), got {d.get('max_null_share')!r}")
        return cls(name, kind, lo, hi, levels, share)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    classes: tuple[str, ...]
    features: tuple[FeatureSpec, ...]
    owner: str | None = None
    horizon_days: int = 1
    description: str | None = None
    baseline: dict[str, float] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]


def _number(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise SpecError(f"{where} must be a finite number, got {v!r}")
    return float(v)


def parse_spec(d: Mapping[str, Any]) -> ModelSpec:
    """The spec of a mapping (parsed YAML/JSON), or a SpecError naming the field."""
    if not isinstance(d, Mapping):
        raise SpecError("the spec must be a mapping of fields (name, classes, features, ...)")
    unknown = sorted(set(d) - {"name", "classes", "features", "owner", "horizon_days", "description", "baseline"})
    if unknown:
        raise SpecError(f"unknown field(s) {unknown}")
    name = d.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise SpecError(f"'name' must start with a letter and hold letters, digits, '_', '.', '-' ({name!r})")
    classes = d.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise SpecError(f"{name}: 'classes' must list at least two class labels, got {classes!r}")
    if len(set(classes)) != len(classes):
        raise SpecError(f"{name}: 'classes' has duplicates: {classes}")
    feats = d.get("features")
    if not isinstance(feats, list) or not feats:
        raise SpecError(f"{name}: 'features' must list the model's input features")
    features = tuple(
        FeatureSpec.from_dict(f if isinstance(f, Mapping) else {"name": f}, f"{name} feature #{i + 1}")
        for i, f in enumerate(feats)
    )
    dup = sorted({f.name for f in features if [g.name for g in features].count(f.name) > 1})
    if dup:
        raise SpecError(f"{name}: feature(s) listed twice: {dup}")
    horizon = d.get("horizon_days", 1)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise SpecError(f"{name}: 'horizon_days' must be a positive integer, got {horizon!r}")
    owner = d.get("owner")
    if owner is not None and (not isinstance(owner, str) or not owner.strip()):
        raise SpecError(f"{name}: 'owner' must be a non-empty text (an e-mail address or team)")
    baseline = d.get("baseline") or {}
    if not isinstance(baseline, Mapping):
        raise SpecError(f"{name}: 'baseline' must map metric names to values")
    bad = sorted(set(baseline) - set(BASELINE_METRICS))
    if bad:
        raise SpecError(f"{name}: unknown baseline metric(s) {bad}; known: {list(BASELINE_METRICS)}")
    values = {str(k): _number(v, f"{name}: baseline {k}") for k, v in baseline.items()}
    if "accuracy" not in values:
        raise SpecError(f"{name}: 'baseline' needs at least 'accuracy' (the metric performance_daily compares)")
    return ModelSpec(
        name=name,
        classes=tuple(classes),
        features=features,
        owner=owner.strip() if owner else None,
        horizon_days=horizon,
        description=d.get("description"),
        baseline={k: float(v) for k, v in values.items() if v is not None},
    )


def load_spec(path: str | Path) -> ModelSpec:
    """Parse a YAML (``.yaml``/``.yml``) or JSON spec file."""
    p = Path(path)
    text = p.read_text()
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
    except Exception as exc:  # noqa: BLE001  (any parse error: name the file)
        raise SpecError(f"{p.name}: not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
    return parse_spec(raw)


def feature_schema(spec: ModelSpec, reference: pd.DataFrame) -> list[dict[str, Any]]:
    """The stored schema: each feature of ``spec`` completed from the reference frame (module docstring)."""
    out = []
    for f in spec.features:
        col = reference[f.name]
        if f.kind == "numeric":
            x = pd.to_numeric(col, errors="coerce").astype(float)
            x = x[x.map(math.isfinite)]
            lo, hi = f.min, f.max
            if len(x) and (lo is None or hi is None):
                span = float(x.max() - x.min()) or max(abs(float(x.max())), 1.0)
                lo = float(x.min()) - span if lo is None else lo
                hi = float(x.max()) + span if hi is None else hi
            out.append(FeatureSpec(f.name, "numeric", lo, hi, None, f.max_null_share).to_dict())
        else:
            levels = f.levels or tuple(sorted({str(v) for v in col.dropna()}))
            out.append(FeatureSpec(f.name, "categorical", None, None, levels, f.max_null_share).to_dict())
    return out


def required_columns(features: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> list[str]:
    """Columns a prediction batch must have: ``ts``, ``symbol``, every feature and every class probability."""
    return ["ts", "symbol", *[f["name"] for f in features], *prob_columns(classes)]
