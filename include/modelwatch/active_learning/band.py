"""The capture band of the active-learning queue (pure).

The predecessor captured a binary model's predictions with a BUY probability ``p`` in 0.45-0.55 (priority 1),
0.46-0.54 (2) and 0.48-0.52 (3). ModelWatch's models have three classes (SELL, HOLD, BUY): the top probability
ranges from 1/3 to 1, and a band on it would mean nothing. "The model could not decide" between its two best
answers is the **share of the top class among the top two**::

    confidence = p1 / (p1 + p2)          (p1 >= p2 the two largest class probabilities; 0.5 .. 1)

On a binary model it is ``max(p, 1 - p)``, so the seed's bands map onto it exactly: ``p`` in 0.45-0.55 is
``confidence <= 0.55`` (priority 1), 0.46-0.54 is ``<= 0.54`` (2) and 0.48-0.52 is ``<= 0.52`` (3). The bounds are
per-model settings (``active_learning_settings``); the defaults are the seed's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

LABELS: tuple[str, ...] = ("BUY", "SELL", "HOLD")
#: queue statuses, as the database's CHECK
STATUSES: tuple[str, ...] = ("pending", "labelled", "skipped", "processed", "expired")
#: what a disagreement between a human label and the realized outcome does in training
DISAGREEMENT_RULES: tuple[str, ...] = ("human", "outcome", "drop")
PRIORITIES: tuple[int, ...] = (3, 2, 1)


#: how a CLI spells a boolean setting; anything else is refused (a typo must not disable a model)
_BOOL_WORDS: dict[str, bool] = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off"), False),
}
_FIELD_TYPES: dict[Any, type] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    bool: bool,
    int: int,
    float: float,
    str: str,
}


class SettingsError(ValueError):
    """An invalid active-learning setting; the message names the model and the field."""


@dataclass(frozen=True)
class BandSettings:
    """Per-model settings (defaults: the seed's bands). ``band_max`` bounds priority 1, ``priority2_max`` and
    ``priority3_max`` the narrower bands; ``label_weight`` is a human label's sample weight in training;
    ``on_disagreement``: ``human`` (the human label replaces the outcome), ``outcome`` (the row keeps the
    realized label at weight 1) or ``drop`` (the row leaves the training set); ``expire_after_days``: a pending
    item older than this behind the model's newest prediction expires; ``batch_size``: items per labelling run."""

    enabled: bool = True
    band_max: float = 0.55
    priority2_max: float = 0.54
    priority3_max: float = 0.52
    label_weight: float = 2.0
    on_disagreement: str = "human"
    expire_after_days: int = 90
    batch_size: int = 10

    def validated(self, model_name: str = "model") -> BandSettings:
        """``self`` if every field is valid, else a :class:`SettingsError` naming the model and field."""
        b = (self.priority3_max, self.priority2_max, self.band_max)
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in b) or not (0.5 < b[0] <= b[1] <= b[2] <= 1):
            raise SettingsError(
                f"{model_name}: band bounds must satisfy 0.5 < priority3_max <= priority2_max <= band_max <= 1, got "
                f"priority3_max={b[0]}, priority2_max={b[1]}, band_max={b[2]}"
            )
        if not (0 < float(self.label_weight) <= 100):
            raise SettingsError(f"{model_name}: label_weight must be in (0, 100], got {self.label_weight}")
        if self.on_disagreement not in DISAGREEMENT_RULES:
            raise SettingsError(
                f"{model_name}: on_disagreement must be one of {list(DISAGREEMENT_RULES)}, got {self.on_disagreement!r}"
            )
        if int(self.expire_after_days) < 1:
            raise SettingsError(f"{model_name}: expire_after_days must be >= 1, got {self.expire_after_days}")
        if not 1 <= int(self.batch_size) <= 200:
            raise SettingsError(f"{model_name}: batch_size must be in 1..200, got {self.batch_size}")
        return self

    def changed(self, model_name: str, changes: Mapping[str, Any]) -> BandSettings:
        """A copy with ``changes`` (strings as a CLI gives them), validated; unknown fields are refused."""
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise SettingsError(f"{model_name}: unknown setting(s) {unknown}; expected some of {sorted(known)}")
        typed: dict[str, Any] = {}
        for k, v in changes.items():
            kind = _FIELD_TYPES[known[k]]  # the declared type (a stored int weight still takes "2.5")
            try:
                typed[k] = _BOOL_WORDS[str(v).strip().lower()] if kind is bool and not isinstance(v, bool) else kind(v)
            except (KeyError, TypeError, ValueError) as exc:
                raise SettingsError(f"{model_name}: {k}={v!r} is not a valid {kind.__name__}") from exc
        return replace(self, **typed).validated(model_name)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decision_confidence(probabilities: Mapping[str, float] | Iterable[float]) -> float:
    """``p1 / (p1 + p2)`` of the two largest class probabilities (0.5 .. 1); a ValueError on fewer than two
    classes, a negative or non-finite probability, or two zeros."""
    values = list(probabilities.values()) if isinstance(probabilities, Mapping) else list(probabilities)
    ps = sorted((float(p) for p in values), reverse=True)
    if len(ps) < 2 or not all(math.isfinite(p) and p >= 0 for p in ps):
        raise ValueError(f"class probabilities must be >= 2 finite non-negative numbers, got {values}")
    top = ps[0] + ps[1]
    if top <= 0:
        raise ValueError(f"the two largest class probabilities are both 0: {values}")
    return ps[0] / top


def priority(confidence: float, settings: BandSettings) -> int:
    """3, 2 or 1 inside the band (narrowest band first), 0 outside it."""
    if confidence <= settings.priority3_max:
        return 3
    if confidence <= settings.priority2_max:
        return 2
    if confidence <= settings.band_max:
        return 1
    return 0


def capture_share(confidences: Iterable[float], settings: BandSettings) -> dict[str, Any]:
    """Share of predictions each priority captures, and the whole band's (for the README's replay figures)."""
    cs = list(confidences)
    n = len(cs)
    counts = {p: 0 for p in PRIORITIES}
    for c in cs:
        p = priority(c, settings)
        if p:
            counts[p] += 1
    band = sum(counts.values())
    return {
        "predictions": n,
        "captured": band,
        "share": band / n if n else 0.0,
        "by_priority": {str(p): {"items": counts[p], "share": counts[p] / n if n else 0.0} for p in PRIORITIES},
    }
