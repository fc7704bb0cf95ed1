"""From a call record to the fields of a Salesforce Task. Pure.

The default uses standard fields only, so it works on an org with no customisation
(SALESFORCE.md): ``TaskSubtype`` Call (on create only: it can never be updated), ``CallType``,
``CallDurationInSeconds``, ``CallDisposition``, ``CallObject`` = the conversation id,
``Subject``, ``Description`` = notes, ``Status``, ``ActivityDate``. Extra record attributes go
to custom fields named by the mapping file; texts are cut to the field's length rather than
refused, because a call log with clipped notes beats no call log.

Choices where the issue is silent: ``Status`` is Completed once the call is over (completed,
rejected or missed) and In Progress before, or what the org's TaskStatus values say instead
(:func:`choose_statuses`); ``ActivityDate`` is the UTC date the call started;
the duration is rounded to whole seconds. ``OwnerId`` is the handling agent's Salesforce User
(when the agent's token names one), set on create only: an admin who reassigns the Task later
is not overruled by a late note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from projections.calls.fold import CallRecord

SUBJECT_LENGTH: Final = 255
DESCRIPTION_LENGTH: Final = 32_000
DISPOSITION_LENGTH: Final = 255

_ATTRIBUTES: Final = frozenset(CallRecord.__struct_fields__)


class TaskMapping(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The mapping file (TOML): target object, how records match, custom fields."""

    object: str = "Task"
    match_field: str = "CallObject"
    """The field holding the conversation id; matched by query on Task."""
    external_id: bool = False
    """True when ``match_field`` is an External ID field: write with upsert on it."""
    fields: dict[str, str] = msgspec.field(default_factory=dict)
    """Record attribute → custom field, e.g. ``language = "Language__c"``."""
    match_callers: bool = True
    """Link a new Task to the Contact or Lead with the caller's number (``WhoId``)."""
    key_field: str | None = None
    """A unique External ID field on Task (the kit's ``Softphone_Call_Id__c``) that holds the
    conversation id: every Task is created with it, so the org itself refuses a second Task
    for a call (``DUPLICATE_VALUE``), whatever the integration user can see and however late
    a slow first insert commits; Tasks are looked up by it."""

    def __post_init__(self) -> None:
        if self.object == "Task" and self.external_id:
            raise msgspec.ValidationError(
                "an upsert that finds its Task would send TaskSubtype, which no update may "
                'carry: for Tasks keyed by a unique field set key_field = "Softphone_Call_Id__c" '
                "instead of external_id"
            )
        if self.key_field is not None and (self.object != "Task" or self.external_id):
            raise msgspec.ValidationError(
                "key_field is for Task records written by create and update "
                '(object = "Task", external_id = false)'
            )
        unknown = sorted(set(self.fields) - _ATTRIBUTES)
        if unknown:
            raise msgspec.ValidationError(
                f"unknown record attributes {unknown}; expected some of {sorted(_ATTRIBUTES)}"
            )

    @property
    def lookup_field(self) -> str:
        """The field Tasks are found by: the key field when there is one."""
        return self.key_field or self.match_field


class TaskStatuses(msgspec.Struct, frozen=True):
    """The ``Status`` values a call's Task gets: ``open`` while the call goes on, ``closed``
    once it is over (orgs configure the picklist: rename or replace these)."""

    open: str = "In Progress"
    closed: str = "Completed"


VANILLA_STATUSES: Final = TaskStatuses()
"""In Progress and Completed, as an org with no customisation has them."""


def choose_statuses(rows: Sequence[Mapping[str, Any]]) -> TaskStatuses:
    """The org's TaskStatus rows (``ApiName``, ``IsClosed``, ``IsDefault``, ``SortOrder``) as
    the statuses to write: Completed and In Progress where the org has them as such, else its
    first closed value and its default open one (its first open one if the default closes);
    the vanilla values when the rows say nothing usable."""
    ordered = sorted(rows, key=lambda r: r.get("SortOrder") or 0)
    closed = [str(r["ApiName"]) for r in ordered if r.get("IsClosed") and r.get("ApiName")]
    still_open = [str(r["ApiName"]) for r in ordered if not r.get("IsClosed") and r.get("ApiName")]
    default = TaskStatuses()
    defaults = [str(r["ApiName"]) for r in ordered if r.get("IsDefault") and not r.get("IsClosed")]
    return TaskStatuses(
        open=default.open
        if default.open in still_open
        else (defaults or still_open or [default.open])[0],
        closed=default.closed if default.closed in closed else (closed or [default.closed])[0],
    )


def decode_mapping(data: bytes) -> TaskMapping:
    """A mapping file's bytes as a mapping; raises ``msgspec.ValidationError`` naming what is
    wrong."""
    return msgspec.toml.decode(data, type=TaskMapping)


def _clip(text: str | None, length: int) -> str | None:
    return text[:length] if text is not None else None


def subject(record: CallRecord) -> str:
    """A human subject line, e.g. "Inbound call from +18883973342"."""
    if record.direction == "outbound":
        return (
            _clip(f"Outbound call to {record.dialledNumber or 'unknown number'}", SUBJECT_LENGTH)
            or ""
        )
    caller = record.callerNumber or "withheld number"
    kind = {"missed": "Missed call", "rejected": "Rejected call"}.get(record.status, "Inbound call")
    return _clip(f"{kind} from {caller}", SUBJECT_LENGTH) or ""


def task_fields(
    record: CallRecord,
    mapping: TaskMapping,
    *,
    creating: bool,
    statuses: TaskStatuses = VANILLA_STATUSES,
) -> dict[str, Any]:
    """The fields to write; ``creating`` adds what may only be set on insert.

    The standard call fields are Task's; another object gets the match field and the mapped
    fields only.
    """
    fields: dict[str, Any] = {mapping.match_field: record.conversationId}
    if mapping.key_field is not None:
        fields[mapping.key_field] = record.conversationId
    builtins = msgspec.to_builtins(record)
    for attribute, field in mapping.fields.items():
        if attribute in builtins:
            fields[field] = builtins[attribute]
    if mapping.object != "Task":
        return fields
    over = record.status in ("completed", "rejected", "missed")
    fields |= {
        "Subject": subject(record),
        "Status": statuses.closed if over else statuses.open,
        "ActivityDate": record.startedAt.date().isoformat(),
    }
    if record.direction is not None:
        fields["CallType"] = record.direction.capitalize()
    if record.durationSeconds is not None:
        fields["CallDurationInSeconds"] = round(record.durationSeconds)
    if record.disposition is not None:
        fields["CallDisposition"] = _clip(record.disposition, DISPOSITION_LENGTH)
    if record.notes is not None:
        fields["Description"] = _clip(record.notes, DESCRIPTION_LENGTH)
    if creating:
        fields["TaskSubtype"] = "Call"
        if record.ownerId is not None:
            fields["OwnerId"] = record.ownerId
    return fields
