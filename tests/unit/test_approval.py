"""Approvers of a retrained candidate (Variable modelwatch_approvers) and the recorded HITL response."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.modelwatch import defaults
from include.modelwatch.training import approval
from include.modelwatch.training.approval import Approver, Response

SETTING = {
    "spx_signal": [{"id": "risk", "name": "Risk Officer", "email": "risk@example.com"}, "bob"],
    "*": [{"id": "admin"}],
}


def test_approvers_of_a_model_else_the_wildcard_else_nobody():
    spx = approval.approvers_for(SETTING, "spx_signal")
    assert spx == (Approver("risk", "Risk Officer", "risk@example.com"), Approver("bob", "bob"))
    assert approval.approvers_for(SETTING, "ixic_signal") == (Approver("admin", "admin"),)
    assert approval.approvers_for({"spx_signal": ["bob"]}, "ixic_signal") == ()
    assert approval.hitl_users(spx) == [{"id": "risk", "name": "Risk Officer"}, {"id": "bob", "name": "bob"}]
    assert approval.hitl_users(()) is None  # nobody assigned: anyone allowed may answer
    assert approval.emails(spx) == ("risk@example.com",)
    assert approval.from_records(approval.as_records(spx)) == spx
    assert [a.describe() for a in spx] == ["Risk Officer (risk)", "bob"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (["bob"], "expected a JSON object"),
        ({"spx_signal": "bob"}, "modelwatch_approvers['spx_signal']: expected a list of approvers"),
        ({"spx_signal": [""]}, "an approver id is empty"),
        ({"spx_signal": [{"name": "Bob"}]}, "has no 'id'"),
        ({"spx_signal": [{"id": "bob", "mail": "b@x"}]}, "unknown approver field(s) ['mail']"),
        ({"spx_signal": [{"id": "bob", "email": "not-an-address"}]}, "approver 'bob' has an invalid 'email'"),
        ({"spx_signal": ["bob", {"id": "bob"}]}, "an approver is listed twice in ['bob', 'bob']"),
        ({"spx_signal": [3]}, "an approver is a user id or an object with 'id', got 3"),
    ],
)
def test_bad_settings_name_the_model_and_the_entry(setting, message):
    with pytest.raises(ValueError) as err:
        approval.parse(setting)
    assert message in str(err.value)


def test_the_variable_is_validated_when_read():
    assert defaults.parse("modelwatch_approvers", None) == {}
    assert defaults.parse("modelwatch_approvers", '{"*": ["admin"]}') == {"*": ["admin"]}
    with pytest.raises(ValueError, match=r"variable modelwatch_approvers = .*has no 'id'"):
        defaults.parse("modelwatch_approvers", '{"spx_signal": [{"name": "x"}]}')


def test_a_response_names_who_answered_and_a_timeout_names_nobody():
    at = datetime(2008, 10, 21, 9, 30, tzinfo=UTC)
    answered = Response.from_event(
        {"chosen_options": ["Approve"], "responded_by_user": {"id": "risk", "name": "Risk Officer"}, "responded_at": at}
    )
    assert answered == Response(("Approve",), "risk", "Risk Officer", "2008-10-21T09:30:00+00:00", False)
    assert answered.who() == "Risk Officer (risk)"
    assert Response.from_record(answered.as_record()) == answered
    timed_out = Response.from_event(
        {"chosen_options": ["Reject"], "responded_by_user": None, "responded_at": at, "timedout": True}
    )
    assert timed_out.timed_out and timed_out.responded_by_id is None
    assert timed_out.who() == "nobody (no answer before the response timeout; the default applied)"
    same_name = Response.from_event({"chosen_options": ["Reject"], "responded_by_user": {"id": "bob", "name": "bob"}})
    assert same_name.who() == "bob" and not same_name.timed_out and same_name.responded_at is None
