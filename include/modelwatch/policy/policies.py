"""The retraining policies a policy replay compares, and the one decision that differs between them.

Every policy runs the same monitoring (scoring, drift, performance) through the DAGs' task bodies; they differ in
what starts a retrain and whether its candidate must pass the quality gates:

* ``never``: the bootstrap champion forever (the response rules still raise alerts; no trigger is acted on);
* ``monthly`` / ``quarterly``: a full retrain of the champion's algorithm at the end of every month / quarter,
  deployed whatever the gates say (what a team without monitoring does);
* ``closed_loop``: the response rules' triggers, retrained and gated as ``retrain_gated`` does; a candidate that
  needs a human is answered by the approval's response timeout (the default: reject), as nobody answers in a replay;
* ``closed_loop_no_gates``: the same triggers, every best candidate deployed (shows what the gates contribute).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from include.modelwatch.decisions import TASK_DEPLOY

NEVER, CALENDAR, TRIGGERS = "never", "calendar", "triggers"


@dataclass(frozen=True)
class Policy:
    name: str
    retrain: str  # NEVER | CALENDAR | TRIGGERS
    every_months: int = 0  # CALENDAR: retrain at the end of every n-th month
    gates: bool = True  # False: the best candidate is deployed whatever the gates say
    description: str = ""
    #: the retrain_gated conf of a calendar retrain (its quick-run knobs, ``include/tasks/forms.py``)
    retrain_conf: tuple[tuple[str, Any], ...] = ()
    #: the candidates trained per retrain; None: retrain_gated's (``forms.ALGORITHMS``)
    algorithms: tuple[str, ...] | None = None

    @property
    def responds(self) -> bool:
        """True when the response rules' triggers start retrains (the closed loop)."""
        return self.retrain == TRIGGERS


#: A calendar retrain holds out one month of sessions (not retrain_gated's default 126: a calendar retrain does not
#: judge the candidate, and a monthly one would otherwise never train on the last half year), and judges on at
#: least half a month when the champion is more recent than that.
CALENDAR_CONF: tuple[tuple[str, Any], ...] = (("eval_sessions", 21), ("min_eval_sessions", 10))
#: A calendar retrain refits the champion's algorithm (both native champions are LightGBM): nothing chooses between
#: candidates when every retrain is deployed.
CALENDAR_ALGORITHMS: tuple[str, ...] = ("lightgbm",)

POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("never", NEVER, description="never retrain: the bootstrap champion forever"),
        Policy(
            "monthly",
            CALENDAR,
            1,
            gates=False,
            description="full retrain of the champion's algorithm every month, always deployed",
            retrain_conf=CALENDAR_CONF,
            algorithms=CALENDAR_ALGORITHMS,
        ),
        Policy(
            "quarterly",
            CALENDAR,
            3,
            gates=False,
            description="full retrain of the champion's algorithm every quarter, always deployed",
            retrain_conf=CALENDAR_CONF,
            algorithms=CALENDAR_ALGORITHMS,
        ),
        Policy("closed_loop", TRIGGERS, description="the response rules' triggers, quality gates, no human answer"),
        Policy(
            "closed_loop_no_gates",
            TRIGGERS,
            gates=False,
            description="the response rules' triggers, best candidate always deployed",
        ),
    )
}
DEFAULT_POLICIES: tuple[str, ...] = ("never", "monthly", "quarterly", "closed_loop", "closed_loop_no_gates")


def parse_policies(names: str | Sequence[str]) -> list[Policy]:
    """``"never,monthly"`` (or a list) as policies, in the order given, each once; an unknown name is an error
    that lists the known ones."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n and n.strip()]
    unknown = [n for n in items if n not in POLICIES]
    if unknown:
        raise ValueError(f"policies: unknown {', '.join(unknown)} (known: {', '.join(POLICIES)})")
    if not items:
        raise ValueError(f"policies: none given (known: {', '.join(POLICIES)})")
    return [POLICIES[n] for n in dict.fromkeys(items)]


def months_between(first: date, month: date) -> int:
    """Whole months from ``first``'s month to ``month``'s month (0 for the same month)."""
    return (month.year - first.year) * 12 + month.month - first.month


def calendar_due(policy: Policy, first_month: date, month: date) -> bool:
    """True when a calendar policy retrains at the end of ``month`` (the replay starting at ``first_month``):
    after every ``every_months``-th month, counting the first month as month 1."""
    if policy.retrain != CALENDAR or policy.every_months < 1:
        return False
    return (months_between(first_month, month) + 1) % policy.every_months == 0


def after_gates(policy: Policy, gate_branch: str) -> str:
    """The branch a candidate takes: the gates' branch (``decisions.choose_after_gates`` via the task body), or
    deployment when the policy has the gates off."""
    return gate_branch if policy.gates else TASK_DEPLOY
