"""How human labels enter a training set (pure).

A labelled item is a (symbol, session) the model could not decide. In the training frame its row carries the
realized label (the outcome over the horizon). :func:`apply_human_labels` joins the items on (symbol, date):

* agreement: the row keeps its label, weight ``label_weight`` (a confirmed hard case);
* disagreement, by the model's ``on_disagreement`` rule: ``human`` relabels the row with the human label at
  ``label_weight``; ``outcome`` keeps the realized label at weight 1 (the human label is counted, not used);
  ``drop`` removes the row (neither answer is trusted).

Only training rows take human labels. A label is recent when it is given, so its session first lies in the
retrain's out-of-sample period (the last sessions before the trigger) or has not matured: it is not used then.
Moving such rows into training would leak the out-of-sample period into the candidate (the labels of one session
are 5-session outcomes shared by neighbouring sessions and by the other index), and the champion never saw them.
A label is a permanent fact about its (symbol, session): every retrain whose training rows hold that session uses
it, and the response rule counts only labels old enough to be used (``store.USABLE_AFTER_SESSIONS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from include.modelwatch.active_learning.band import DISAGREEMENT_RULES


@dataclass
class LabelledTraining:
    """The training frame with a ``weight`` column, the items it used and what happened to them."""

    frame: pd.DataFrame
    used_items: list[int] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)


def _keys(frame: pd.DataFrame) -> list[tuple[str, pd.Timestamp]]:
    dates = pd.to_datetime(frame["date"])
    if dates.dt.tz is not None:  # a UTC session date, as the items' (a bar at 21:00 UTC is that day's)
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    return list(zip(frame["symbol"].astype(str), dates.dt.normalize(), strict=True))


def _day(value: Any) -> pd.Timestamp:
    """The UTC session date of an item's ``date`` (a date, a string or a bar time, naive or aware)."""
    ts = pd.Timestamp(value)
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tz is not None else ts).normalize()


def apply_human_labels(
    train: pd.DataFrame,
    items: Sequence[Mapping[str, Any]],
    *,
    label_weight: float,
    on_disagreement: str,
) -> LabelledTraining:
    """``train`` (``symbol``, ``date``, ``label``, ...) with the human labels of ``items`` (``item_id``, ``symbol``,
    ``date``, ``manual_label``; for one (symbol, date) the last item wins, the earlier ones are used up with it:
    ``superseded``) applied to the training rows (see the module docstring)."""
    if on_disagreement not in DISAGREEMENT_RULES:
        raise ValueError(f"on_disagreement must be one of {list(DISAGREEMENT_RULES)}, got {on_disagreement!r}")
    if not label_weight > 0:
        raise ValueError(f"label_weight must be > 0, got {label_weight}")
    summary = {
        "items": len(items),
        "human_labels": 0,
        "agreed": 0,
        "disagreed": 0,
        "relabelled": 0,
        "dropped": 0,
        "superseded": 0,
    }
    by_key: dict[tuple[str, pd.Timestamp], Mapping[str, Any]] = {}
    earlier: dict[tuple[str, pd.Timestamp], list[int]] = {}  # the items a later one of their session replaced
    for given in items:
        key = (str(given["symbol"]), _day(given["date"]))
        if key in by_key:
            earlier.setdefault(key, []).append(int(by_key[key]["item_id"]))
        by_key[key] = given
    frame = train.copy()
    frame["weight"] = 1.0
    if not by_key:
        return LabelledTraining(frame, [], summary)
    keys = _keys(frame)
    used: set[int] = set()
    drop: list[int] = []
    for pos, key in enumerate(keys):
        it = by_key.get(key)
        if it is None:
            continue
        # the replaced answers of the session are used up with it: no later retrain applies an older answer alone
        replaced = set(earlier.get(key, ())) - used
        summary["superseded"] += len(replaced)
        used |= replaced | {int(it["item_id"])}
        summary["human_labels"] += 1
        idx = frame.index[pos]
        if it["manual_label"] == frame.at[idx, "label"]:
            summary["agreed"] += 1
            frame.at[idx, "weight"] = float(label_weight)
            continue
        summary["disagreed"] += 1
        if on_disagreement == "human":
            frame.at[idx, "label"] = it["manual_label"]
            frame.at[idx, "weight"] = float(label_weight)
            summary["relabelled"] += 1
        elif on_disagreement == "drop":
            drop.append(idx)
            summary["dropped"] += 1
    if drop:
        frame = frame.drop(index=drop).reset_index(drop=True)
    return LabelledTraining(frame, sorted(used), summary)
