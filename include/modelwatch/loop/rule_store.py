"""The response rules as stored in ``automated_response_rules``: load them validated,
and change one (or its override for one model) from the CLI, all fields validated
together by :mod:`rules` before anything is written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from include.modelwatch.data.storage import fetch_dicts, transaction
from include.modelwatch.loop import rules as R

_RULE_COLUMNS = (
    "rule_name, metric, operator, threshold, retrain_mode, priority, cooldown_hours, enabled, model_overrides"
)


def _rule(row: Mapping[str, Any]) -> R.ResponseRule:
    d = {
        k: row[k]
        for k in (
            "metric",
            "operator",
            "threshold",
            "retrain_mode",
            "priority",
            "cooldown_hours",
            "enabled",
            "model_overrides",
        )
    }
    d["name"] = row["rule_name"]
    return R.rule_from_dict(d)


def load_rules(conn) -> list[R.ResponseRule]:
    """All rules as stored (enabled or not), in name order, validated."""
    rows = fetch_dicts(conn, f"SELECT {_RULE_COLUMNS} FROM automated_response_rules ORDER BY rule_name")
    return [_rule(r) for r in rows]


def _coerce(field_name: str, value: Any) -> Any:
    """Turn CLI text into the field's type; anything else is left for validation to reject."""
    if not isinstance(value, str):
        return value
    if field_name in ("threshold", "cooldown_hours"):
        try:
            return float(value)
        except ValueError:
            return value
    if field_name == "enabled":
        low = value.strip().lower()
        return {
            "true": True,
            "yes": True,
            "on": True,
            "1": True,
            "false": False,
            "no": False,
            "off": False,
            "0": False,
        }.get(low, value)
    return value


def set_rule(
    conn, name: str, changes: Mapping[str, Any], *, model: str | None = None, clear_override: bool = False, by: str
) -> R.ResponseRule:
    """Change a stored rule (or, with ``model``, its override for that model).

    All changes are validated together before anything is written; a bad value
    raises :class:`rules.RuleError` naming the field and the rule is untouched.
    ``clear_override`` with ``model`` removes that model's override.
    """
    allowed = R.OVERRIDABLE_FIELDS
    for k in changes:
        if k not in allowed:
            raise R.RuleError(k, f"cannot be changed; changeable fields are {allowed}")
    with transaction(conn) as cur:
        cur.execute(
            f"SELECT {_RULE_COLUMNS} FROM automated_response_rules WHERE rule_name = %(name)s FOR UPDATE",
            {"name": name},
        )
        cols = [c.name for c in cur.description]
        row = cur.fetchone()
        if row is None:
            names = fetch_dicts(conn, "SELECT rule_name FROM automated_response_rules ORDER BY 1")
            known = [r["rule_name"] for r in names]
            raise R.RuleError("rule_name", f"no rule named {name!r}; rules are {known}")
        current = dict(zip(cols, row, strict=True))
        coerced = {k: _coerce(k, v) for k, v in changes.items()}
        if model is None:
            if clear_override:
                raise R.RuleError("model", "clearing an override needs --model")
            current.update(coerced)
        else:
            overrides = {m: dict(o) for m, o in (current["model_overrides"] or {}).items()}
            if clear_override:
                overrides.pop(model, None)
            else:
                overrides[model] = {**overrides.get(model, {}), **coerced}
            current["model_overrides"] = overrides
        rule = _rule(current)  # raises RuleError before any write
        cur.execute(
            "UPDATE automated_response_rules SET operator = %(operator)s, threshold = %(threshold)s, "
            "retrain_mode = %(retrain_mode)s, priority = %(priority)s, cooldown_hours = %(cooldown_hours)s, "
            "enabled = %(enabled)s, model_overrides = %(model_overrides)s, updated_at = now(), updated_by = %(by)s "
            "WHERE rule_name = %(name)s",
            {
                "operator": rule.operator,
                "threshold": rule.threshold,
                "retrain_mode": rule.retrain_mode,
                "priority": rule.priority,
                "cooldown_hours": rule.cooldown_hours,
                "enabled": rule.enabled,
                "model_overrides": json.dumps({m: dict(o) for m, o in rule.model_overrides.items()}),
                "by": by,
                "name": name,
            },
        )
    return rule


__all__ = ["load_rules", "set_rule"]
