"""Deterministic arm assignment of A/B test units.

A *unit* is one symbol on one trading session (:func:`unit_key`). Its arm is a
pure function of the test id and the unit, with no state and no randomness:

    u = int.from_bytes(sha256(f"{test_id}:{unit}".encode("utf-8")).digest()[:8], "big") / 2**64

``u`` is uniform on [0, 1) (the first 8 bytes of the digest, read as a
big-endian unsigned integer). The unit goes to the challenger when
``u < split`` and to the champion otherwise. So:

* re-running a day (a retried task, a backfill) assigns every unit to the same
  arm; nothing has to be stored to reproduce an assignment;
* two tests (different ``test_id``) split the same units independently;
* raising the split only moves units from the champion to the challenger
  (``u`` is fixed, the threshold moves): a bandit that changes the split from
  one day to the next (:func:`include.modelwatch.ab.stats.thompson_split`)
  never re-assigns a unit it already scored, as every session brings new units.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

CHAMPION = "champion"
CHALLENGER = "challenger"
ARMS: tuple[str, str] = (CHAMPION, CHALLENGER)

_TWO_64 = 2**64
_BELOW_ONE = 1.0 - 2.0**-53  # the largest double below 1


def unit_key(symbol: str, session_date: date) -> str:
    """The unit of a symbol on a session: ``"<symbol>@<YYYY-MM-DD>"`` (symbol as given, case kept).

    ``session_date`` must be a ``datetime.date``; a ``datetime`` (or a pandas
    Timestamp) is refused with a TypeError, because its time and time zone
    would otherwise decide which session the key names; pass ``.date()`` of
    the session's timestamp in the exchange's calendar."""
    if isinstance(session_date, datetime) or not isinstance(session_date, date):
        raise TypeError(f"session_date must be a datetime.date, not {type(session_date).__name__}")
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
    return f"{symbol}@{session_date.isoformat()}"


def unit_hash_int(test_id: int, unit: str) -> int:
    """The first 8 bytes of SHA-256 of ``f"{test_id}:{unit}"`` (UTF-8), as a big-endian
    unsigned integer in [0, 2**64)."""
    digest = hashlib.sha256(f"{test_id}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def unit_hash(test_id: int, unit: str) -> float:
    """The unit's position in [0, 1) for this test: :func:`unit_hash_int` / 2**64
    (for display; :func:`arm_for` compares the integer, so the float's rounding
    never decides an arm)."""
    return min(unit_hash_int(test_id, unit) / _TWO_64, _BELOW_ONE)


def arm_for(test_id: int, unit: str, split: float) -> str:
    """``'challenger'`` if the unit's :func:`unit_hash` is below ``split`` (the
    challenger's share), else ``'champion'``. ``split`` in [0, 1]: 0 sends every
    unit to the champion, 1 every unit to the challenger."""
    if not 0.0 <= split <= 1.0:
        raise ValueError(f"split must be in [0, 1], got {split}")
    # exact: the 64-bit integer against split * 2**64 (a float times a power of two is exact; Python compares
    # an int with a float exactly), i.e. u < split without rounding u to a double
    return CHALLENGER if unit_hash_int(test_id, unit) < split * 2.0**64 else CHAMPION
