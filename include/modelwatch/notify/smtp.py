"""Sending a notification by SMTP (standard library ``smtplib`` / ``email.message``).

The settings come from the Airflow connection ``modelwatch_smtp`` (read by
``include/tasks/notify.py``): host, port, login, password; extra JSON ``from``,
``to`` (list), ``starttls`` (bool), ``ssl`` (bool), ``timeout`` (seconds) and
``owners`` (model name -> list of addresses; retraining outcomes go to a model's
owners, or to ``to`` when it has none).
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any


def _addresses(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",")]
    if not isinstance(value, Sequence):
        raise ValueError(f"modelwatch_smtp: {what} must be a list of addresses, got {value!r}")
    return tuple(str(v).strip() for v in value if str(v).strip())


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    ssl: bool = False
    timeout: float = 10.0
    owners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        port: int | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
    ) -> SmtpSettings:
        """Settings from a connection's fields and its extra JSON; raises ValueError naming what is wrong."""
        if not host:
            raise ValueError("modelwatch_smtp: host is empty")
        owners_raw = extra.get("owners") or {}
        if not isinstance(owners_raw, Mapping):
            raise ValueError(f"modelwatch_smtp: extra 'owners' must map model -> addresses, got {owners_raw!r}")
        to = _addresses(extra.get("to"), "extra 'to'")
        sender = str(extra.get("from") or (login if login and "@" in login else "") or "modelwatch@localhost")
        return cls(
            host=host,
            port=int(port or (465 if _flag(extra.get("ssl")) else 25)),
            sender=sender,
            to=to,
            login=login or None,
            password=password or None,
            starttls=_flag(extra.get("starttls")),
            ssl=_flag(extra.get("ssl")),
            timeout=float(extra.get("timeout", 10.0)),
            owners={str(m): _addresses(a, f"owners of {m}") for m, a in owners_raw.items()},
        )

    def recipients(self, kind: str, model_name: str) -> tuple[str, ...]:
        """Alerts go to ``to``; a retraining outcome to the model's owners (``to`` when none are set)."""
        if kind == "retrain":
            return self.owners.get(model_name) or self.to
        return self.to


def send(settings: SmtpSettings, recipients: Sequence[str], subject: str, body: str, *, key: str) -> None:
    """Send one plain-text mail; raises on any SMTP or network error (the caller records it)."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.sender
    msg["To"] = ", ".join(recipients)
    msg["Message-ID"] = make_msgid(domain="modelwatch")
    msg["X-ModelWatch-Key"] = key
    msg.set_content(body)
    factory = smtplib.SMTP_SSL if settings.ssl else smtplib.SMTP
    with factory(settings.host, settings.port, timeout=settings.timeout) as client:
        if settings.starttls and not settings.ssl:
            client.starttls()
        if settings.login:
            client.login(settings.login, settings.password or "")
        client.send_message(msg, from_addr=settings.sender, to_addrs=list(recipients))
