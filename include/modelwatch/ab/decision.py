"""The daily decision of a champion/challenger A/B test: a pure function of the test's state and its evidence.

:func:`decide` is driven by the always-valid paired test (:func:`include.modelwatch.ab.stats.sequential_paired`),
so it may be called every day on the cumulative matured outcomes without inflating the false-promotion rate:

1. the sequential test says the champion is better -> STOP (at any sample size: stopping a worse challenger
   early costs nothing; a sample-ratio mismatch does not block it, as the paired comparison does not depend on
   the assignment);
2. it says the challenger is better -> PROMOTE, unless fewer than ``min_samples`` paired rows have matured or
   the assignment shows a sample-ratio mismatch (either keeps the test running, or ends it INCONCLUSIVE at
   ``max_days``; the reason says which);
3. ``days_elapsed >= max_days`` -> INCONCLUSIVE;
4. otherwise CONTINUE.

Every reason names the numbers it rests on (paired rows, b and c, the sequential statistic against its
threshold, the SRM p-value when it matters).
"""

from __future__ import annotations

from dataclasses import dataclass

from include.modelwatch.ab.endings import (  # the decisions live in the light module the DAG file imports
    CONTINUE,
    INCONCLUSIVE,
    PROMOTE,
    STOP,
)
from include.modelwatch.ab.stats import (
    CHALLENGER_BETTER,
    CHAMPION_BETTER,
    DEFAULT_ALPHA,
    SRM_P_THRESHOLD,
    UNIT_ROW,
    UNIT_SESSION,
    ArmCounts,
    PairedCounts,
    SequentialResult,
    SRMResult,
    sequential_paired,
    srm_check,
)

#: Test statuses; :func:`decide` judges running tests only (the others are final).
STATUS_RUNNING = "running"
STATUS_PROMOTED = "promoted"
STATUS_STOPPED = "stopped"
STATUS_INCONCLUSIVE = "inconclusive"
STATUS_CANCELLED = "cancelled"
STATUSES: tuple[str, ...] = (STATUS_RUNNING, STATUS_PROMOTED, STATUS_STOPPED, STATUS_INCONCLUSIVE, STATUS_CANCELLED)
#: The status a test takes after each final decision.
STATUS_AFTER: dict[str, str] = {PROMOTE: STATUS_PROMOTED, STOP: STATUS_STOPPED, INCONCLUSIVE: STATUS_INCONCLUSIVE}


@dataclass(frozen=True)
class TestState:
    """What the test is and how far it got.

    ``split``: the challenger's expected share of assigned units, for the SRM check (a bandit test passes the
    unit-weighted mean of its daily splits). ``min_samples``: matured paired rows needed before a promotion.
    ``days_elapsed``: evaluation days since the start (the first daily evaluation is day 1)."""

    __test__ = False  # not a pytest test class, despite the name

    split: float
    min_samples: int
    max_days: int
    days_elapsed: int
    status: str = STATUS_RUNNING


@dataclass(frozen=True)
class Evidence:
    """Cumulative matured outcomes since the start: ``paired`` (every row, both models), ``assigned`` (the same
    rows, each under its assigned arm only; its unit counts are also what the SRM check tests: matured units
    are a prefix of the assigned ones, so their split is the assignment's) and the sequential test on
    ``paired``'s discordant counts (:meth:`build` runs it)."""

    paired: PairedCounts
    assigned: ArmCounts
    sequential: SequentialResult

    def __post_init__(self) -> None:
        if self.sequential.unit == UNIT_ROW and (self.sequential.b, self.sequential.c) != (
            self.paired.b,
            self.paired.c,
        ):
            raise ValueError(
                f"sequential result is for b={self.sequential.b}, c={self.sequential.c} but the paired counts "
                f"have b={self.paired.b}, c={self.paired.c}"
            )

    @classmethod
    def build(
        cls,
        paired: PairedCounts,
        assigned: ArmCounts,
        alpha: float = DEFAULT_ALPHA,
        prior_a: float | None = None,
        sessions: tuple[int, int] | None = None,
    ) -> Evidence:
        """Evidence with the sequential test run on ``paired``'s discordant rows or, when ``sessions`` (sessions
        won by the champion, by the challenger: :func:`~include.modelwatch.ab.stats.session_wins`) is given, on
        the sessions (for rows that are not independent within a session; see the stats module)."""
        if sessions is None:
            seq = sequential_paired(paired.b, paired.c, alpha, prior_a)
        else:
            seq = sequential_paired(sessions[0], sessions[1], alpha, prior_a, unit=UNIT_SESSION)
        return cls(paired=paired, assigned=assigned, sequential=seq)


@dataclass(frozen=True)
class Decision:
    action: str  # CONTINUE | PROMOTE | STOP | INCONCLUSIVE
    reason: str
    srm: SRMResult
    promotion_blocked_by_srm: bool  # the sequential test favoured the challenger but the SRM check blocked it

    @property
    def final(self) -> bool:
        return self.action != CONTINUE


def validate_test_config(
    *,
    champion_version: int | str,
    challenger_version: int | str,
    split: float,
    min_samples: int,
    max_days: int,
    alpha: float = DEFAULT_ALPHA,
) -> None:
    """Check the settings of a new test; a ValueError names every problem found (None when all are fine)."""
    problems = []
    if not 0.0 < split < 1.0:
        problems.append(f"split must be strictly between 0 and 1 (the challenger's share), got {split}")
    if str(champion_version) == str(challenger_version):
        problems.append(f"challenger and champion are the same version ({champion_version})")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        problems.append(f"min_samples must be an integer >= 1, got {min_samples!r}")
    if isinstance(max_days, bool) or not isinstance(max_days, int) or max_days < 1:
        problems.append(f"max_days must be an integer >= 1, got {max_days!r}")
    if not 0.0 < alpha < 1.0:
        problems.append(f"alpha must be strictly between 0 and 1, got {alpha}")
    if problems:
        raise ValueError("invalid A/B test: " + "; ".join(problems))


def _fmt_rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.4f}"


def decide(test: TestState, evidence: Evidence) -> Decision:
    """The day's decision for a running test (module docstring). A test whose status is not running is
    refused with a ValueError (its decision was already taken)."""
    if test.status != STATUS_RUNNING:
        raise ValueError(f"test is not running (status {test.status!r}); only running tests are decided")
    paired, arms, seq = evidence.paired, evidence.assigned, evidence.sequential
    srm = srm_check(arms.n_champion, arms.n_challenger, test.split)
    out_of_time = test.days_elapsed >= test.max_days
    rate_b = paired.hits_challenger / paired.n if paired.n else 0.0
    rate_a = paired.hits_champion / paired.n if paired.n else 0.0
    on = f" on sessions won (champion {seq.b}, challenger {seq.c})" if seq.unit == UNIT_SESSION else ""
    facts = (
        f"{paired.n} paired rows, hit rate challenger {rate_b:.4f} vs champion {rate_a:.4f}, champion-only right "
        f"b={paired.b}, challenger-only right c={paired.c}; sequential test{on}: log-LR challenger "
        f"{seq.log_lr_challenger:.2f} / champion {seq.log_lr_champion:.2f} vs threshold {seq.log_threshold:.2f} "
        f"(alpha {seq.alpha:g}); day {test.days_elapsed} of {test.max_days}"
    )
    srm_text = (
        f"sample-ratio mismatch: {arms.n_challenger} of {arms.n_champion + arms.n_challenger} units on the "
        f"challenger against an expected share of {test.split:.3f} (p={srm.p_value:.2g} < {SRM_P_THRESHOLD:g})"
    )

    def out(action: str, reason: str, blocked: bool = False) -> Decision:
        return Decision(action=action, reason=reason, srm=srm, promotion_blocked_by_srm=blocked)

    if seq.decision == CHAMPION_BETTER:
        extra = f"; note: {srm_text}" if srm.mismatch else ""
        return out(STOP, f"stop: the champion is significantly better: {facts}{extra}")
    if seq.decision == CHALLENGER_BETTER:
        end = INCONCLUSIVE if out_of_time else CONTINUE
        if srm.mismatch:
            verb = "inconclusive" if out_of_time else "continue"
            return out(
                end,
                f"{verb}: the challenger is significantly better but promotion is blocked by a {srm_text}; "
                f"check the assignment and the scoring of both arms: {facts}",
                blocked=True,
            )
        if paired.n < test.min_samples:
            verb = "inconclusive" if out_of_time else "continue"
            return out(
                end,
                f"{verb}: the challenger is significantly better but only {paired.n} of the {test.min_samples} "
                f"paired rows required for a promotion have matured: {facts}",
            )
        arm_text = (
            f"; assigned arms: challenger {_fmt_rate(arms.rate_challenger)} on {arms.n_challenger} rows, "
            f"champion {_fmt_rate(arms.rate_champion)} on {arms.n_champion} rows"
        )
        return out(PROMOTE, f"promote: the challenger is significantly better: {facts}{arm_text}")
    if out_of_time:
        extra = f"; {srm_text}" if srm.mismatch else ""
        return out(
            INCONCLUSIVE, f"inconclusive: maximum duration reached without a significant difference: {facts}{extra}"
        )
    extra = f"; {srm_text}" if srm.mismatch else ""
    return out(CONTINUE, f"continue: no significant difference yet: {facts}{extra}")
