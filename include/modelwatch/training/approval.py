"""Human approval of a retrained candidate: who may approve it, and who did.

The Airflow Variable ``modelwatch_approvers`` maps a model name (or ``"*"`` for every model without its own entry)
to its approvers. An approver is an Airflow user id, or an object ``{"id": ..., "name": ..., "email": ...}``::

    {"spx_signal": [{"id": "risk-officer", "name": "Risk Officer", "email": "risk@example.com"}], "*": ["admin"]}

The ids become the HITL request's assigned users (only they may answer it in the Airflow UI); the e-mail addresses
receive the approval request. Without an entry nobody is assigned: any user allowed to answer HITL requests may.

Pure functions, standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

VARIABLE = "modelwatch_approvers"
ANY_MODEL = "*"


@dataclass(frozen=True)
class Approver:
    id: str
    name: str
    email: str | None = None

    def describe(self) -> str:
        return self.name if self.name == self.id else f"{self.name} ({self.id})"


def _approver(entry: Any, model: str) -> Approver:
    where = f"{VARIABLE}[{model!r}]"
    if isinstance(entry, str):
        if not entry.strip():
            raise ValueError(f"{where}: an approver id is empty")
        return Approver(entry.strip(), entry.strip())
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: an approver is a user id or an object with 'id', got {entry!r}")
    unknown = set(entry) - {"id", "name", "email"}
    if unknown:
        raise ValueError(f"{where}: unknown approver field(s) {sorted(unknown)} in {dict(entry)!r}")
    uid = str(entry.get("id") or "").strip()
    if not uid:
        raise ValueError(f"{where}: approver {dict(entry)!r} has no 'id' (the Airflow user id)")
    email = entry.get("email")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        raise ValueError(f"{where}: approver {uid!r} has an invalid 'email' {email!r}")
    return Approver(uid, str(entry.get("name") or uid).strip(), email.strip() if email else None)


def parse(setting: Any) -> dict[str, tuple[Approver, ...]]:
    """The whole Variable value as model -> approvers; raises ValueError naming the model and the entry."""
    if not isinstance(setting, Mapping):
        raise ValueError(f"{VARIABLE}: expected a JSON object of model -> approvers, got {setting!r}")
    out: dict[str, tuple[Approver, ...]] = {}
    for model, entries in setting.items():
        if isinstance(entries, str) or not isinstance(entries, Sequence):
            raise ValueError(f"{VARIABLE}[{model!r}]: expected a list of approvers, got {entries!r}")
        approvers = tuple(_approver(e, str(model)) for e in entries)
        ids = [a.id for a in approvers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{VARIABLE}[{model!r}]: an approver is listed twice in {ids}")
        out[str(model)] = approvers
    return out


def approvers_for(setting: Any, model_name: str) -> tuple[Approver, ...]:
    """The approvers of ``model_name``: its own entry, else the ``"*"`` entry, else none."""
    table = parse(setting)
    if model_name in table:
        return table[model_name]
    return table.get(ANY_MODEL, ())


def hitl_users(approvers: Sequence[Approver]) -> list[dict[str, str]] | None:
    """The HITL request's ``assigned_users`` (``[{"id", "name"}]``), or None (anyone may answer)."""
    return [{"id": a.id, "name": a.name} for a in approvers] or None


def emails(approvers: Sequence[Approver]) -> tuple[str, ...]:
    return tuple(a.email for a in approvers if a.email)


def as_records(approvers: Sequence[Approver]) -> list[dict[str, str | None]]:
    """JSON-able form (stored on the trigger's result, passed between tasks)."""
    return [{"id": a.id, "name": a.name, "email": a.email} for a in approvers]


def from_records(records: Sequence[Mapping[str, Any]] | None) -> tuple[Approver, ...]:
    return tuple(Approver(str(r["id"]), str(r.get("name") or r["id"]), r.get("email")) for r in records or ())


@dataclass(frozen=True)
class Response:
    """What the HITL request was answered with: the chosen option, by whom (None when the response timeout chose
    the default) and when."""

    chosen: tuple[str, ...]
    responded_by_id: str | None
    responded_by_name: str | None
    responded_at: str | None
    timed_out: bool

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Response:
        """From the event ``HITLOperator.execute_complete`` receives (``chosen_options``, ``responded_by_user``
        ``{"id", "name"}`` or None, ``responded_at``, ``timedout``)."""
        user = event.get("responded_by_user") or None
        at = event.get("responded_at")
        return cls(
            chosen=tuple(str(c) for c in event.get("chosen_options") or ()),
            responded_by_id=str(user["id"]) if user else None,
            responded_by_name=str(user.get("name") or user["id"]) if user else None,
            responded_at=at.isoformat() if isinstance(at, datetime) else (str(at) if at else None),
            timed_out=bool(event.get("timedout")) or user is None,
        )

    def as_record(self) -> dict[str, Any]:
        return {
            "chosen": list(self.chosen),
            "responded_by_id": self.responded_by_id,
            "responded_by_name": self.responded_by_name,
            "responded_at": self.responded_at,
            "timed_out": self.timed_out,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Response:
        return cls(
            chosen=tuple(record.get("chosen") or ()),
            responded_by_id=record.get("responded_by_id"),
            responded_by_name=record.get("responded_by_name"),
            responded_at=record.get("responded_at"),
            timed_out=bool(record.get("timed_out")),
        )

    def who(self) -> str:
        """The approver as recorded on the trigger and the alias history."""
        if self.responded_by_id is None:
            return "nobody (no answer before the response timeout; the default applied)"
        return Approver(self.responded_by_id, self.responded_by_name or self.responded_by_id).describe()


def request_body(
    trigger: Mapping[str, Any],
    best: Mapping[str, Any],
    gates: Sequence[Mapping[str, Any]],
    *,
    deploy_as: str,
    page: str,
) -> str:
    """The Markdown a human approver reads: what was retrained and why, each gate's verdict, where the evidence is."""
    borderline = ", ".join(best.get("borderline") or ()) or "none (the model's policy asks for a human)"
    lines = [
        f"**{trigger['model_name']} v{best['version']}** ({best['algorithm']}), retrained for trigger "
        f"{trigger['trigger_id']} ({trigger.get('trigger_type', '?')}: {trigger.get('reason', '')}), failed no gate "
        f"but needs a decision. Borderline: **{borderline}**.",
        "",
        f"Out-of-sample accuracy {float(best['oos_accuracy']):.4f} against champion v{best['champion_version']} on "
        f"the same rows. Approve deploys it as **{deploy_as}**; Reject keeps the champion.",
        "",
        "| gate | verdict | evidence |",
        "|---|---|---|",
    ]
    lines += [f"| {g['gate']} | {g['status']} | {str(g['message']).replace('|', '/')} |" for g in gates]
    lines += ["", f"Jobs and gates: {page}"]
    return "\n".join(lines)
