"""The stand-in org's schema: field and object types, a vanilla org's Task, Contact and Lead,
Salesforce's record ids and its error shape. Pure.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import msgspec

FieldType = Literal[
    "id", "string", "textarea", "picklist", "int", "date", "reference", "phone", "boolean"
]


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
    unique: bool = False
    """Values are unique among the object's records (a unique index: a second record with
    the value is refused ``DUPLICATE_VALUE``, whoever can see the first)."""
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
            FieldSpec(
                name="IsArchived",
                label="Archived",
                type="boolean",
                createable=False,
                updateable=False,
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
            FieldSpec(name="IsConverted", label="Converted", type="boolean"),
        ]
    },
)

USER: Final = ObjectSpec(
    "User",
    "005",
    {
        f.name: f
        for f in [
            _id_field(),
            _s("Username", "Username", 80, required=True),
            _s("LastName", "Last Name", 80, required=True),
            FieldSpec(name="IsActive", label="Active", type="boolean"),
            FieldSpec(
                name="UserRoleId", label="Role ID", type="reference", references=("UserRole",)
            ),
        ]
    },
)


def _setup(name: str, key_prefix: str, *fields: FieldSpec) -> ObjectSpec:
    """A setup object the stand-in derives from its sharing (``access.py``): read-only."""
    return ObjectSpec(
        name,
        key_prefix,
        {
            f.name: msgspec.structs.replace(f, createable=False, updateable=False)
            for f in (_id_field(), *fields)
        },
    )


def _flag(name: str, label: str) -> FieldSpec:
    return FieldSpec(name=name, label=label, type="boolean")


def _ref(name: str, label: str, target: str) -> FieldSpec:
    return FieldSpec(name=name, label=label, type="reference", references=(target,))


USER_ROLE: Final = _setup(
    "UserRole", "00E", _s("Name", "Name", 80), _ref("ParentRoleId", "Parent Role ID", "UserRole")
)
PERMISSION_SET: Final = _setup(
    "PermissionSet",
    "0PS",
    _s("Name", "Name", 80),
    _flag("PermissionsModifyAllData", "Modify All Data"),
    _flag("PermissionsViewAllData", "View All Data"),
)
PERMISSION_SET_ASSIGNMENT: Final = _setup(
    "PermissionSetAssignment",
    "0Pa",
    _ref("AssigneeId", "Assignee ID", "User"),
    _ref("PermissionSetId", "Permission Set ID", "PermissionSet"),
)
ACCESS: Final = (USER_ROLE, PERMISSION_SET, PERMISSION_SET_ASSIGNMENT)
"""What decides who sees what: roles, permission sets and their assignments."""

TASK_STATUS: Final = ObjectSpec(
    "TaskStatus",
    "01J",
    {
        f.name: f
        for f in [
            _id_field(),
            _s("ApiName", "API Name", 255),
            _s("MasterLabel", "Master Label", 255),
            FieldSpec(name="IsClosed", label="Is Closed", type="boolean"),
            FieldSpec(name="IsDefault", label="Is Default", type="boolean"),
            FieldSpec(name="SortOrder", label="Sort Order", type="int"),
        ]
    },
)
"""The values of Task's Status picklist, each saying whether it closes a Task."""

VANILLA: Final = (TASK, CONTACT, LEAD, USER, TASK_STATUS, *ACCESS)
"""The objects of an org with no customisation."""

CALL_ID_FIELD: Final = "Softphone_Call_Id__c"
"""The kit's Activity field holding a call's conversation id (External ID, Unique)."""

KIT_TASK: Final = ObjectSpec(
    "Task",
    TASK.key_prefix,
    TASK.fields
    | {CALL_ID_FIELD: _s(CALL_ID_FIELD, "Softphone Call Id", 255, external_id=True, unique=True)},
)
WITH_KIT: Final = (KIT_TASK, CONTACT, LEAD, USER, TASK_STATUS, *ACCESS)
"""A vanilla org with the kit deployed (its Activity field on Task)."""

VOICE_CALL: Final = ObjectSpec(
    "VoiceCall",
    "0LQ",
    {
        f.name: f
        for f in [
            _id_field(),
            _s("VendorCallKey", "Vendor Call Key", 255),
            FieldSpec(
                name="CallType",
                label="Call Type",
                type="picklist",
                picklist=("Inbound", "Outbound", "Transfer", "Callback", "Internal"),
            ),
            FieldSpec(name="FromPhoneNumber", label="From", type="phone", length=40),
            FieldSpec(name="ToPhoneNumber", label="To", type="phone", length=40),
            _s("CallStartDateTime", "Call Started", 40),
            _s("CallEndDateTime", "Call Ended", 40),
            _s("CallDisposition", "Call Status", 255),
            _s("CallOrigin", "Call Origin", 255),
            _s("Disposition__c", "Disposition", 255),
            FieldSpec(name="Notes__c", label="Notes", type="textarea", length=32_000),
        ]
    },
)
"""A Voice org's VoiceCall (the fields the Telephony Integration API sets, and the kit's
disposition and notes); its times are plain strings here, and its key prefix is assumed."""
WITH_VOICE: Final = (*WITH_KIT, VOICE_CALL)
"""An org with the kit and Salesforce Voice (VoiceCall)."""

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


SYSTEM_COLUMNS: Final = ("IsDeleted",)
"""Fields every object has and ``describe`` need not list for the stand-in."""


def describe_object(spec: ObjectSpec) -> dict[str, Any]:
    """``GET sobjects/{Obj}/describe``'s answer: the object and its fields."""
    fields = [
        {
            "name": f.name,
            "label": f.label,
            "type": f.type,
            "length": f.length,
            "nillable": not f.required,
            "createable": f.createable,
            "updateable": f.updateable,
            "filterable": f.filterable,
            "externalId": f.external_id,
            "unique": f.unique,
            "restrictedPicklist": f.restricted,
            "defaultValueFormula": None,
            "defaultValue": f.default,
            "referenceTo": list(f.references),
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": v == f.default}
                for v in f.picklist
            ],
        }
        for f in spec.fields.values()
    ]
    return {"name": spec.name, "keyPrefix": spec.key_prefix, "fields": fields}
