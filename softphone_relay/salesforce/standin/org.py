"""An in-memory Salesforce org for the local stand-in: schema, validation, records. Pure.

It answers like Salesforce does (SALESFORCE.md): errors are ``{"statusCode" | "errorCode",
"message", "fields"}`` with Salesforce's codes and wording, ids are real 18-character ids
with the case-safe suffix, restricted picklists refuse unknown values, ``TaskSubtype`` can be
set on create but never updated, ``Status`` and ``Priority`` default as in a vanilla org, and
the query subset covers what the sink needs (``SELECT ... FROM ... WHERE f IN (...)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any, Final, Literal

import msgspec

FieldType = Literal["id", "string", "textarea", "picklist", "int", "date", "reference", "phone"]


class FieldSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One field as describe would report it (the parts validation needs)."""

    name: str
    label: str
    type: FieldType
    length: int = 0
    required: bool = False
    default: str | None = None
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    createable: bool = True
    updateable: bool = True
    filterable: bool = True
    external_id: bool = False
    references: tuple[str, ...] = ()


class ObjectSpec(msgspec.Struct, frozen=True):
    """An sObject type: its key prefix and fields."""

    name: str
    key_prefix: str
    fields: dict[str, FieldSpec]


class SalesforceError(msgspec.Struct, frozen=True):
    """One error as Salesforce reports it for a record."""

    statusCode: str
    message: str
    fields: list[str] = msgspec.field(default_factory=list)


class RecordRefused(Exception):
    """A record failed validation; ``errors`` is what Salesforce would answer."""

    def __init__(self, errors: list[SalesforceError]) -> None:
        super().__init__("; ".join(f"{e.statusCode}: {e.message}" for e in errors))
        self.errors = errors


def _id_field() -> FieldSpec:
    return FieldSpec(
        name="Id", label="Record ID", type="id", length=18, createable=False, updateable=False
    )


def _s(name: str, label: str, length: int, **kw: Any) -> FieldSpec:
    return FieldSpec(name=name, label=label, type="string", length=length, **kw)


TASK: Final = ObjectSpec(
    "Task",
    "00T",
    {
        f.name: f
        for f in [
            _id_field(),
            _s("Subject", "Subject", 255),
            FieldSpec(
                name="TaskSubtype",
                label="Task Subtype",
                type="picklist",
                restricted=True,
                picklist=("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"),
                updateable=False,
            ),
            FieldSpec(
                name="CallType",
                label="Call Type",
                type="picklist",
                restricted=True,
                picklist=("Internal", "Inbound", "Outbound"),
            ),
            FieldSpec(name="CallDurationInSeconds", label="Call Duration", type="int"),
            _s("CallDisposition", "Call Result", 255),
            _s("CallObject", "Call Object Identifier", 255),
            FieldSpec(
                name="Description",
                label="Comments",
                type="textarea",
                length=32000,
                filterable=False,
            ),
            FieldSpec(
                name="Status",
                label="Status",
                type="picklist",
                required=True,
                default="Not Started",
                picklist=(
                    "Not Started",
                    "In Progress",
                    "Completed",
                    "Waiting on someone else",
                    "Deferred",
                ),
            ),
            FieldSpec(
                name="Priority",
                label="Priority",
                type="picklist",
                required=True,
                default="Normal",
                picklist=("High", "Normal", "Low"),
            ),
            FieldSpec(name="ActivityDate", label="Due Date Only", type="date"),
            FieldSpec(
                name="WhoId", label="Name ID", type="reference", references=("Contact", "Lead")
            ),
            FieldSpec(
                name="WhatId", label="Related To ID", type="reference", references=("Account",)
            ),
            FieldSpec(
                name="OwnerId", label="Assigned To ID", type="reference", references=("User",)
            ),
        ]
    },
)

CONTACT: Final = ObjectSpec(
    "Contact",
    "003",
    {
        f.name: f
        for f in [
            _id_field(),
            _s("FirstName", "First Name", 40),
            _s("LastName", "Last Name", 80, required=True),
            FieldSpec(name="Phone", label="Business Phone", type="phone", length=40),
            FieldSpec(name="MobilePhone", label="Mobile Phone", type="phone", length=40),
            FieldSpec(name="HomePhone", label="Home Phone", type="phone", length=40),
            FieldSpec(name="OtherPhone", label="Other Phone", type="phone", length=40),
        ]
    },
)

LEAD: Final = ObjectSpec(
    "Lead",
    "00Q",
    {
        f.name: f
        for f in [
            _id_field(),
            _s("LastName", "Last Name", 80, required=True),
            _s("Company", "Company", 255, required=True),
            FieldSpec(name="Phone", label="Phone", type="phone", length=40),
            FieldSpec(name="MobilePhone", label="Mobile Phone", type="phone", length=40),
        ]
    },
)

VANILLA: Final = (TASK, CONTACT, LEAD)
"""The objects of an org with no customisation."""

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID: Final = re.compile(r"^[a-zA-Z0-9]{15}([A-Z0-5]{3})?$")


def to_18(id15: str) -> str:
    """The case-safe 18-character form of a 15-character id."""
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, c in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if c.isupper())
        suffix += _SUFFIX[bits]
    return id15 + suffix


def make_id(key_prefix: str, number: int) -> str:
    """The ``number``-th 18-character id of an object with ``key_prefix``."""
    digits = ""
    for _ in range(9):
        number, digit = divmod(number, 62)
        digits = _ALPHABET[digit] + digits
    return to_18(key_prefix + "5g0" + digits)


def is_id(value: object) -> bool:
    """True for a well-formed 15- or 18-character id."""
    return (
        isinstance(value, str)
        and bool(_ID.match(value))
        and (len(value) == 15 or to_18(value[:15]) == value)
    )


class Org:
    """Records by id, with Salesforce's validation on every write."""

    def __init__(self, objects: Iterable[ObjectSpec] = VANILLA) -> None:
        self.objects = {o.name: o for o in objects}
        self.records: dict[str, dict[str, Any]] = {}
        self._counter = 0

    def spec(self, name: str) -> ObjectSpec:
        """The object type, or NOT_FOUND as Salesforce says it."""
        spec = self.objects.get(name)
        if spec is None:
            raise RecordRefused(
                [
                    SalesforceError(
                        "NOT_FOUND", f"The requested resource does not exist: sObject type '{name}'"
                    )
                ]
            )
        return spec

    def create(self, name: str, values: dict[str, Any]) -> str:
        """Insert a record; return its id."""
        spec = self.spec(name)
        self._check(spec, values, creating=True)
        record = {f.name: f.default for f in spec.fields.values() if f.default is not None}
        record |= values
        self._counter += 1
        record["Id"] = make_id(spec.key_prefix, self._counter)
        self.records[record["Id"]] = {"attributes": {"type": name}, **record}
        return str(record["Id"])

    def update(self, name: str, record_id: str, values: dict[str, Any]) -> None:
        """Change fields of an existing record."""
        spec = self.spec(name)
        record = self._find(spec, record_id)
        self._check(spec, values, creating=False)
        record.update(values)

    def upsert(self, name: str, field: str, key: str, values: dict[str, Any]) -> tuple[str, bool]:
        """Insert or update by an External ID field; (id, created)."""
        spec = self.spec(name)
        spec_field = spec.fields.get(field)
        if spec_field is None or not spec_field.external_id:
            raise RecordRefused(
                [
                    SalesforceError(
                        "NOT_FOUND",
                        f"Provided external ID field does not exist or is not accessible: {field}",
                    )
                ]
            )
        matches = [r for r in self._of(name) if r.get(field) == key]
        if len(matches) > 1:
            raise RecordRefused(
                [
                    SalesforceError(
                        "MULTIPLE_CHOICES", f"More than one record found for {field} = {key}"
                    )
                ]
            )
        if matches:
            self.update(name, matches[0]["Id"], values)
            return str(matches[0]["Id"]), False
        return self.create(name, {**values, field: key}), True

    def get(self, name: str, record_id: str) -> dict[str, Any]:
        """One record with its attributes."""
        return dict(self._find(self.spec(name), record_id))

    def select(
        self, name: str, fields: list[str], where: tuple[str, list[str]] | None, limit: int | None
    ) -> list[dict[str, Any]]:
        """Records of ``name`` whose ``where[0]`` is one of ``where[1]``, ``fields`` only."""
        spec = self.spec(name)
        for field in fields + ([where[0]] if where else []):
            if field not in spec.fields:
                raise RecordRefused(
                    [
                        SalesforceError(
                            "INVALID_FIELD", f"No such column '{field}' on entity '{name}'."
                        )
                    ]
                )
        if where and not spec.fields[where[0]].filterable:
            raise RecordRefused(
                [
                    SalesforceError(
                        "INVALID_FIELD", f"field '{where[0]}' can not be filtered in a query call"
                    )
                ]
            )
        rows = [r for r in self._of(name) if where is None or r.get(where[0]) in where[1]]
        return [
            {"attributes": r["attributes"], **{f: r.get(f) for f in fields}} for r in rows[:limit]
        ]

    def _of(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if r["attributes"]["type"] == name]

    def _find(self, spec: ObjectSpec, record_id: str) -> dict[str, Any]:
        if not is_id(record_id):
            raise RecordRefused(
                [
                    SalesforceError(
                        "MALFORMED_ID", f"{spec.name} ID: id value of incorrect type: {record_id}"
                    )
                ]
            )
        record = self.records.get(record_id if len(record_id) == 18 else to_18(record_id))
        if record is None or record["attributes"]["type"] != spec.name:
            raise RecordRefused(
                [SalesforceError("NOT_FOUND", "The requested resource does not exist")]
            )
        return record

    def _check(self, spec: ObjectSpec, values: dict[str, Any], *, creating: bool) -> None:
        errors: list[SalesforceError] = []
        for key, value in values.items():
            field = spec.fields.get(key)
            if field is None:
                errors.append(
                    SalesforceError(
                        "INVALID_FIELD",
                        f"No such column '{key}' on sobject of type {spec.name}",
                        [key],
                    )
                )
            elif not (field.createable if creating else field.updateable):
                errors.append(
                    SalesforceError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {key}. Please check the security "
                        "settings of this field and verify that it is read/write for your profile "
                        "or permission set.",
                        [key],
                    )
                )
            elif value is not None:
                errors.extend(self._check_value(field, value))
        if creating:
            missing = [
                f.name
                for f in spec.fields.values()
                if f.required and f.default is None and values.get(f.name) in (None, "")
            ]
            if missing:
                errors.append(
                    SalesforceError(
                        "REQUIRED_FIELD_MISSING",
                        f"Required fields are missing: [{', '.join(missing)}]",
                        missing,
                    )
                )
        if errors:
            raise RecordRefused(errors)

    def _check_value(self, field: FieldSpec, value: Any) -> list[SalesforceError]:
        def wrong(kind: str) -> list[SalesforceError]:
            return [
                SalesforceError(
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of {kind} from {type(value).__name__} value "
                    f"{value!r} or request may be missing a required field",
                    [field.name],
                )
            ]

        match field.type:
            case "int":
                if not isinstance(value, int) or isinstance(value, bool):
                    return wrong("int")
            case "date":
                try:
                    date.fromisoformat(value)
                except (TypeError, ValueError):
                    return wrong("date")
            case "reference":
                if not is_id(value):
                    return [
                        SalesforceError(
                            "MALFORMED_ID",
                            f"{field.label}: id value of incorrect type: {value}",
                            [field.name],
                        )
                    ]
            case _:
                if not isinstance(value, str):
                    return wrong("string")
                if field.length and len(value) > field.length:
                    return [
                        SalesforceError(
                            "STRING_TOO_LONG",
                            f"{field.label}: data value too large: "
                            f"{value[:40]} (max length={field.length})",
                            [field.name],
                        )
                    ]
                if field.restricted and value not in field.picklist:
                    return [
                        SalesforceError(
                            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            f"{field.label}: bad value for restricted picklist field: {value}",
                            [field.name],
                        )
                    ]
        return []
