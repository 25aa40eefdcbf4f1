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
#: A promotion the model's policy (variable ``modelwatch_require_approval``) puts before a human: the request, the
#: human-in-the-loop decision and its two outcomes.
TASK_AB_ASK = "request_promotion_approval"
TASK_AB_DECISION = "promotion_decision"
TASK_AB_PROMOTE_APPROVED = "promote_approved"
TASK_AB_NOT_APPROVED = "promotion_not_approved"
ENDING_TASKS: dict[str, str] = {PROMOTE: TASK_AB_PROMOTE, STOP: TASK_AB_STOP, INCONCLUSIVE: TASK_AB_INCONCLUSIVE}


def endings(actions: list[str], needs_approval: list[bool] | None = None) -> list[str]:
    """The ending tasks a day's decisions need, in a fixed order; ``keep_running`` alone when no test ended.
    ``needs_approval[i]``: test ``i``'s promotion waits for a human (``request_promotion_approval`` instead of
    ``promote_challenger``)."""
    unknown = sorted(set(actions) - set(DECISIONS))
    if unknown:
        raise ValueError(f"unknown A/B decisions {unknown}; expected {DECISIONS}")
    asks = list(needs_approval) if needs_approval is not None else [False] * len(actions)
    if len(asks) != len(actions):
        raise ValueError(f"needs_approval has {len(asks)} entries for {len(actions)} decisions")
    chosen = []
    for action, task in ENDING_TASKS.items():
        if action == PROMOTE:
            promotions = [ask for a, ask in zip(actions, asks, strict=True) if a == PROMOTE]
            if any(not ask for ask in promotions):
                chosen.append(TASK_AB_PROMOTE)
            if any(promotions):
                chosen.append(TASK_AB_ASK)
        elif action in actions:
            chosen.append(task)
    return chosen or [TASK_AB_CONTINUE]
