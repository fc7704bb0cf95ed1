"""What Salesforce's error answers mean for the sink. Pure.

An error arrives in one of two shapes: a record's result in a collection response
(``{"statusCode", "message", "fields"}``) or a whole request's error list (``{"errorCode",
"message", "fields"}``). Both are read into :class:`OrgError`; the sink's decisions come from
the functions here (sources: ``SALESFORCE-REVIEW.md`` sections A1, B1 to B7):

- a row lock is transient, bare (``UNABLE_TO_LOCK_ROW``) or raised inside a trigger and
  wrapped (``CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY`` with "UNABLE_TO_LOCK_ROW" in the message);
- ``REQUEST_LIMIT_EXCEEDED`` is the daily quota ("TotalRequests Limit exceeded.") or the
  concurrent long-running request limit ("ConcurrentRequests (Concurrent API Requests) Limit
  exceeded."): the first stops requests for minutes, the second for seconds;
- a reference to a record that was deleted or merged is ``ENTITY_IS_DELETED`` or
  ``INVALID_CROSS_REFERENCE_KEY`` naming the field (which of the two a real org answers for a
  stale ``WhoId`` is not documented: both are read);
- an owner who left (``INACTIVE_OWNER_OR_USER``) or never existed cannot own a record;
- a 414 or 431 means the request line and headers were too long: a sizing error, never a
  record's fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from projections.outcomes import Done, Outcome, Reject, Retry

LOCK_CODE: Final = "UNABLE_TO_LOCK_ROW"
WRAPPING_CODE: Final = "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
TRANSIENT_CODES: Final = frozenset({LOCK_CODE, "SERVER_UNAVAILABLE"})
LIMIT_CODE: Final = "REQUEST_LIMIT_EXCEEDED"
STALE_REFERENCE_CODES: Final = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})
SIZING_STATUSES: Final = frozenset({414, 431})
INACTIVE_OWNER_CODE: Final = "INACTIVE_OWNER_OR_USER"
NO_ACCESS_CODE: Final = "INSUFFICIENT_ACCESS_OR_READONLY"
"""A record the user may not see or edit (sharing)."""


class OrgError(msgspec.Struct, frozen=True):
    """One error as Salesforce reported it."""

    code: str
    message: str
    fields: tuple[str, ...] = ()


def org_errors(raw: Iterable[Any]) -> list[OrgError]:
    """The errors of an answer, in either of Salesforce's shapes (anything else is skipped)."""
    errors = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        code = item.get("statusCode") or item.get("errorCode") or "UNKNOWN"
        fields = item.get("fields") or ()
        errors.append(
            OrgError(
                str(code),
                str(item.get("message") or ""),
                tuple(str(f) for f in fields) if isinstance(fields, list) else (),
            )
        )
    return errors


def error_text(errors: Iterable[OrgError]) -> str:
    """``CODE: message; ...`` as an operator reads it in a dead letter."""
    return "; ".join(f"{e.code}: {e.message}" for e in errors)


def is_transient(errors: Iterable[OrgError]) -> bool:
    """A row lock (bare or wrapped by a trigger) or a server that is briefly unavailable."""
    return any(
        e.code in TRANSIENT_CODES or (e.code == WRAPPING_CODE and LOCK_CODE in e.message)
        for e in errors
    )


def is_concurrency_limit(errors: Iterable[OrgError]) -> bool:
    """Too many long-running requests at once: the request was not run; try again soon."""
    return any(e.code == LIMIT_CODE and "concurrent" in e.message.lower() for e in errors)


def is_daily_limit(errors: Iterable[OrgError]) -> bool:
    """The org's rolling 24-hour API quota is used up."""
    return any(e.code == LIMIT_CODE and "concurrent" not in e.message.lower() for e in errors)


def is_stale_reference(errors: Iterable[OrgError], field: str) -> bool:
    """The record may point through ``field`` at a record that no longer exists: a stale
    reference code naming ``field``, or naming no field at all (real answers may come with
    ``fields: []``; the caller then drops its references one at a time, the least needed
    first, until the record passes)."""
    return any(
        e.code in STALE_REFERENCE_CODES and (field in e.fields or not e.fields) for e in errors
    )


def is_duplicate_key(errors: Iterable[OrgError], field: str) -> bool:
    """The record was refused because another record holds its value of the unique ``field``
    (``DUPLICATE_VALUE``): the record exists already."""
    return any(e.code == "DUPLICATE_VALUE" and field in e.fields for e in errors)


def is_no_access(errors: Iterable[OrgError]) -> bool:
    """The user may not see or edit the record (sharing)."""
    return any(e.code == NO_ACCESS_CODE for e in errors)


def is_unusable_owner(errors: Iterable[OrgError]) -> bool:
    """The record's ``OwnerId`` names a user who is inactive or does not exist."""
    listed = list(errors)
    return any(e.code == INACTIVE_OWNER_CODE for e in listed) or is_stale_reference(
        listed, "OwnerId"
    )


def record_outcome(result: Mapping[str, Any]) -> Outcome:
    """The outcome of one record's result in a collection response."""
    if result.get("success"):
        return Done()
    errors = org_errors(result.get("errors") or [])
    if is_transient(errors):
        return Retry(error_text(errors))
    return Reject(error_text(errors) or "refused without an error")
