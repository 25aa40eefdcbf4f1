"""Alert hysteresis: N-of-M firing, K-clean resolving."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from include.modelwatch.monitoring.drift.config import ALERT_STATES, DriftConfig


@dataclass(frozen=True)
class HysteresisResult:
    """New alert state ('clear' | 'firing') and the transition ('fire',
    'resolve' or None)."""

    state: str
    transition: str | None


@dataclass(frozen=True)
class Hysteresis:
    """N-of-M firing, K-clean resolving (defaults 2 of 3, 3 clean).

    * clear -> firing ('fire') when the newest window drifted and at least
      ``fire_n`` of the last ``fire_m`` windows drifted;
    * firing -> clear ('resolve') when the last ``resolve_k`` windows are all
      clean;
    * otherwise the state is kept (transition None). Fewer windows than
      needed never fire/resolve. Windows that could not be evaluated should be
      left out of the history.
    """

    fire_n: int = 2
    fire_m: int = 3
    resolve_k: int = 3

    def __post_init__(self) -> None:
        for name in ("fire_n", "fire_m", "resolve_k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {v!r}")
        if self.fire_n > self.fire_m:
            raise ValueError(f"fire_n: must be <= fire_m ({self.fire_n} > {self.fire_m})")

    @classmethod
    def from_config(cls, config: DriftConfig) -> Hysteresis:
        """Hysteresis with the config's fire_n / fire_m / resolve_k."""
        return cls(config.fire_n, config.fire_m, config.resolve_k)

    def step(self, history: Sequence[bool], state: str) -> HysteresisResult:
        """Apply to the ordered window booleans (oldest first, newest last,
        including the current window) and the alert state before it."""
        if state not in ALERT_STATES:
            raise ValueError(f"state: must be one of {ALERT_STATES}, got {state!r}")
        h = [bool(v) for v in history]
        if state == "clear":
            if h and h[-1] and sum(h[-self.fire_m :]) >= self.fire_n:
                return HysteresisResult("firing", "fire")
            return HysteresisResult("clear", None)
        if len(h) >= self.resolve_k and not any(h[-self.resolve_k :]):
            return HysteresisResult("clear", "resolve")
        return HysteresisResult("firing", None)


def update_alert_state(history: Sequence[bool], state: str, config: DriftConfig | None = None) -> HysteresisResult:
    """Functional form of :meth:`Hysteresis.step` using ``config``'s settings."""
    return Hysteresis.from_config(config or DriftConfig()).step(history, state)
