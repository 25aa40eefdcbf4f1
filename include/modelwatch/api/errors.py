"""The one error the monitoring API's query layer raises for bad input."""

from __future__ import annotations


class ApiInputError(ValueError):
    """A request parameter the query layer refuses: unknown model, version or window, a bad time range,
    a limit outside 1..500, a negative offset, an unknown alert kind or status.

    ``field`` names the parameter (the API answers 4xx with it); ``str(err)`` is ``"<field>: <reason>"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
