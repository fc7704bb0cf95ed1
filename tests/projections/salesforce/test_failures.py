"""Reading Salesforce's error answers: what is transient, which limit, what is stale."""

from __future__ import annotations

from projections.outcomes import Done, Reject, Retry
from projections.salesforce.failures import (
    OrgError,
    is_concurrency_limit,
    is_daily_limit,
    is_stale_reference,
    is_transient,
    org_errors,
    record_outcome,
)
from projections.salesforce.standin.faults import (
    CONCURRENT_LIMIT_MESSAGE,
    TRIGGER_LOCK_MESSAGE,
)


def test_both_error_shapes_are_read() -> None:
    """A record result says statusCode, a request's error list errorCode."""
    assert org_errors(
        [
            {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "busy", "fields": []},
            {"errorCode": "JSON_PARSER_ERROR", "message": "bad", "fields": ["X"]},
            "not an error",
        ]
    ) == [OrgError("UNABLE_TO_LOCK_ROW", "busy"), OrgError("JSON_PARSER_ERROR", "bad", ("X",))]


def test_a_lock_is_transient_bare_or_wrapped_by_a_trigger() -> None:
    """Both forms of a row lock are worth another try; other trigger errors are not."""
    assert is_transient([OrgError("UNABLE_TO_LOCK_ROW", "x")])
    assert is_transient([OrgError("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", TRIGGER_LOCK_MESSAGE)])
    assert not is_transient(
        [OrgError("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "Trigger: validation failed")]
    )


def test_the_two_request_limits_are_told_apart() -> None:
    """ConcurrentRequests is the concurrency limit; TotalRequests the daily quota."""
    concurrent = [OrgError("REQUEST_LIMIT_EXCEEDED", CONCURRENT_LIMIT_MESSAGE)]
    daily = [OrgError("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")]
    assert is_concurrency_limit(concurrent) and not is_daily_limit(concurrent)
    assert is_daily_limit(daily) and not is_concurrency_limit(daily)


def test_a_stale_reference_names_its_field() -> None:
    """ENTITY_IS_DELETED or INVALID_CROSS_REFERENCE_KEY on WhoId; not on another field."""
    assert is_stale_reference(
        [OrgError("ENTITY_IS_DELETED", "entity is deleted", ("WhoId",))], "WhoId"
    )
    assert is_stale_reference(
        [OrgError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ("WhoId",))],
        "WhoId",
    )
    assert not is_stale_reference(
        [OrgError("INVALID_CROSS_REFERENCE_KEY", "x", ("WhatId",))], "WhoId"
    )


def test_a_stale_reference_naming_no_field_may_be_any_of_them() -> None:
    """``fields: []``, as real answers may come: the record's references are each suspect
    (the sink drops the caller first, then the owner)."""
    deleted = [OrgError("ENTITY_IS_DELETED", "entity is deleted", ())]
    assert is_stale_reference(deleted, "WhoId") and is_stale_reference(deleted, "OwnerId")
    assert not is_stale_reference([OrgError("REQUIRED_FIELD_MISSING", "x", ())], "WhoId")


def test_record_results_become_outcomes() -> None:
    """Success is Done, a lock Retry, anything else Reject with the org's words."""
    assert record_outcome({"success": True, "errors": []}) == Done()
    locked = {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "m"}]}
    assert record_outcome(locked) == Retry("UNABLE_TO_LOCK_ROW: m")
    bad = {"success": False, "errors": [{"statusCode": "STRING_TOO_LONG", "message": "long"}]}
    assert record_outcome(bad) == Reject("STRING_TOO_LONG: long")
