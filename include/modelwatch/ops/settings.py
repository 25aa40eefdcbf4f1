"""``airflow_settings.yaml`` (Astro CLI format) applied to an Airflow instance.

The file holds connections, variables and pools::

    airflow:
      connections: [{conn_id, conn_type, conn_host, conn_schema, conn_login,
                     conn_password, conn_port, conn_extra}]
      pools:       [{pool_name, pool_slot, pool_description}]
      variables:   [{variable_name, variable_value}]

Values may reference the environment as ``${NAME}`` or ``${NAME:-default}``
(an extension of the Astro format, used so that one file serves the embedded
and an external PostgreSQL). Applying is an upsert of every entry, so running
it twice changes nothing. Parsing and validation are Airflow-free; only
:func:`apply_to_airflow` imports Airflow.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SETTINGS_FILE = Path(__file__).resolve().parents[3] / "airflow_settings.yaml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(ValueError):
    """airflow_settings.yaml is malformed; the message names the entry."""


@dataclass(frozen=True)
class Settings:
    connections: list[dict[str, Any]]
    pools: list[dict[str, Any]]
    variables: list[dict[str, Any]]


def expand(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}``; an unset name without default is an error."""
    if not isinstance(value, str):
        return value

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise SettingsError(f"environment variable {name} is not set (used in airflow_settings.yaml)")

    return _VAR.sub(repl, value)


def load(path: Path = SETTINGS_FILE, env: Mapping[str, str] | None = None) -> Settings:
    """Parse, expand and validate the settings file."""
    import yaml

    env = os.environ if env is None else env
    raw = yaml.safe_load(path.read_text()) or {}
    section = raw.get("airflow") or {}
    conns, pools, variables = [], [], []
    for i, c in enumerate(section.get("connections") or []):
        entry = {k: expand(v, env) for k, v in c.items()}
        if not entry.get("conn_id") or not entry.get("conn_type"):
            raise SettingsError(f"connections[{i}]: conn_id and conn_type are required")
        if entry.get("conn_port") not in (None, ""):
            try:
                entry["conn_port"] = int(entry["conn_port"])
            except (TypeError, ValueError):
                raise SettingsError(
                    f"connection {entry['conn_id']}: conn_port {entry['conn_port']!r} is not a number"
                ) from None
        else:
            entry["conn_port"] = None
        extra = entry.get("conn_extra")
        if isinstance(extra, dict):
            entry["conn_extra"] = json.dumps(extra)
        conns.append(entry)
    for i, p in enumerate(section.get("pools") or []):
        name, slots = p.get("pool_name"), p.get("pool_slot")
        if not name or not isinstance(slots, int) or slots < 0:
            raise SettingsError(f"pools[{i}]: pool_name and a non-negative integer pool_slot are required")
        pools.append({"pool_name": name, "pool_slot": slots, "pool_description": p.get("pool_description") or ""})
    for i, v in enumerate(section.get("variables") or []):
        if not v.get("variable_name"):
            raise SettingsError(f"variables[{i}]: variable_name is required")
        value = v.get("variable_value")
        value = (
            json.dumps(value) if isinstance(value, (dict, list)) else expand("" if value is None else str(value), env)
        )
        variables.append({"variable_name": v["variable_name"], "variable_value": value})
    return Settings(conns, pools, variables)


def apply_to_airflow(settings: Settings) -> dict[str, int]:
    """Upsert every connection, pool and variable into Airflow's metadata database."""
    # the ORM models of the metadata DB (this is the CLI's setup step, not task code: the
    # task SDK's Connection/Variable read through the API server and cannot upsert rows)
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        for c in settings.connections:
            existing = session.query(Connection).filter(Connection.conn_id == c["conn_id"]).one_or_none()
            conn = existing or Connection(conn_id=c["conn_id"])
            conn.conn_type = c["conn_type"]
            conn.host = c.get("conn_host") or None
            conn.schema = c.get("conn_schema") or None
            conn.login = c.get("conn_login") or None
            conn.set_password(c.get("conn_password") or None)
            conn.port = c.get("conn_port")
            conn.set_extra(c.get("conn_extra") or None)
            if existing is None:
                session.add(conn)
        for p in settings.pools:
            Pool.create_or_update_pool(
                name=p["pool_name"],
                slots=p["pool_slot"],
                description=p["pool_description"],
                include_deferred=False,
                session=session,
            )
        for v in settings.variables:
            Variable.set(v["variable_name"], v["variable_value"], session=session)
    return {
        "connections": len(settings.connections),
        "pools": len(settings.pools),
        "variables": len(settings.variables),
    }
