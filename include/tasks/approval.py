"""``human_decision``: Airflow's HITL branch operator with ModelWatch's approvers and a record of the answer.

* Before the request opens it assigns the model's approvers (``modelwatch_approvers``, resolved at run time by
  the upstream ``request_human_approval`` task and pulled from its XCom): only they may answer it in the UI.
* When the request is answered (or its response timeout applies the default) it pushes the response (chosen
  option, the responding user's id and name, when; ``timed_out``) as XCom ``response``, which the deploy / reject
  task downstream records as the approver instead of a placeholder.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

RESPONSE_KEY = "response"
#: the task id of the decision in retrain_gated (the DAG names its task with it)
DECISION_TASK = "human_decision"


class ApprovalOperator(HITLBranchOperator):
    def __init__(self, *, approvers_from: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: the upstream task whose return value carries ``{"assigned_users": [...] | None}``
        self.approvers_from = approvers_from

    def execute(self, context: Any) -> Any:
        asked = context["ti"].xcom_pull(task_ids=self.approvers_from) or {}
        self.assigned_users = asked.get("assigned_users") or None
        self.body = asked.get("body") or self.body  # the gates' verdicts, written by the upstream task
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from include.modelwatch.training.approval import Response

        if "error" not in event:
            context["ti"].xcom_push(key=RESPONSE_KEY, value=Response.from_event(event).as_record())
        return super().execute_complete(context=context, event=event)


def response_of(context: Any, decision_task: str) -> Any:
    """The :class:`~include.modelwatch.training.approval.Response` the decision task recorded, or None."""
    from include.modelwatch.training.approval import Response

    record = context["ti"].xcom_pull(task_ids=decision_task, key=RESPONSE_KEY)
    return Response.from_record(record) if record else None
