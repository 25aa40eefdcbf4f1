"""The decisions of an A/B test and the ``ab_test_daily`` tasks that apply them: constants and the branch's pure
choice. Standard library only (the DAG file imports it at parse time)."""

from __future__ import annotations

#: Decisions.
CONTINUE = "continue"
PROMOTE = "promote"
STOP = "stop"
INCONCLUSIVE = "inconclusive"
DECISIONS: tuple[str, ...] = (CONTINUE, PROMOTE, STOP, INCONCLUSIVE)

#: Task ids of ab_test_daily's endings, chosen by :func:`endings` (its ``@task.branch``).
TASK_AB_PROMOTE = "promote_challenger"
TASK_AB_STOP = "stop_challenger"
TASK_AB_INCONCLUSIVE = "close_inconclusive"
TASK_AB_CONTINUE = "keep_running"
ENDING_TASKS: dict[str, str] = {PROMOTE: TASK_AB_PROMOTE, STOP: TASK_AB_STOP, INCONCLUSIVE: TASK_AB_INCONCLUSIVE}


def endings(actions: list[str]) -> list[str]:
    """The ending tasks a day's decisions need, in a fixed order; ``keep_running`` alone when no test ended."""
    unknown = sorted(set(actions) - set(DECISIONS))
    if unknown:
        raise ValueError(f"unknown A/B decisions {unknown}; expected {DECISIONS}")
    chosen = [task for action, task in ENDING_TASKS.items() if action in actions]
    return chosen or [TASK_AB_CONTINUE]
