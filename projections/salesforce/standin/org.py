"""An in-memory Salesforce org for the local stand-in: validation and records. Pure.

It answers like Salesforce does (SALESFORCE.md): errors are ``{"statusCode" | "errorCode",
"message", "fields"}`` with Salesforce's codes and wording, ids are real 18-character ids
with the case-safe suffix (``schema.py``), restricted picklists refuse unknown values,
``TaskSubtype`` can be set on create but never updated, ``Status`` and ``Priority`` default
as in a vanilla org, and the query subset covers what the sink needs (``SELECT ... FROM ...
WHERE f IN (...)``).

What the org hides or changes, as a real one does: ``query`` skips deleted records and Tasks
archived after a year (``IsArchived``), ``queryAll`` returns them (with ``IsDeleted``); a
reference to a record of this org that does not exist or was deleted (a caller merged away)
is refused; phone search sees a record only ``search_lag`` seconds after it was created (a real
org's search index lags "about 15 minutes or more"). Assumed, not checked against an org: the
codes for a stale reference (``INVALID_CROSS_REFERENCE_KEY`` for an id that never existed,
naming the field; ``ENTITY_IS_DELETED`` for a deleted one, with ``fields: []``, as real
answers may come, so the client must manage without the field's name), and the wording of
``INACTIVE_OWNER_OR_USER`` for a record owned by a deactivated user, and the wording of
``DUPLICATE_VALUE`` for a unique field ("duplicate value found: F duplicates value on record
with id: ID", as orgs are reported to answer; the sink reads only the code and the field).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from projections.salesforce.standin.access import SETUP_OBJECTS, ActivitySharing, setup_rows
from projections.salesforce.standin.schema import (
    SYSTEM_COLUMNS,
    VANILLA,
    FieldSpec,
    ObjectSpec,
    RecordRefused,
    SalesforceError,
    is_id,
    make_id,
    to_18,
)


class Org:
    """Records by id, with Salesforce's validation on every write."""

    def __init__(
        self,
        objects: Iterable[ObjectSpec] = VANILLA,
        *,
        search_lag: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        closed_task_statuses: tuple[str, ...] = ("Completed",),
    ) -> None:
        """With a TaskStatus object, its rows are made from Task's Status picklist: the
        picklist's default is the default status, ``closed_task_statuses`` close a Task."""
        self.objects = {o.name: o for o in objects}
        self.records: dict[str, dict[str, Any]] = {}
        self.search_lag = search_lag
        """Seconds before a new record can be found by a phone search."""
        self._clock = clock
        self._created: dict[str, float] = {}
        self._counter = 0
        self.sharing: ActivitySharing | None = None
        """Activity sharing, when the org applies it (None: every user sees everything)."""
        self.viewer: str | None = None
        """The user the current request runs as (set per request by the server)."""
        self.task_statuses: list[dict[str, Any]] = []
        """TaskStatus rows (setup data: kept apart from the records the org's users write)."""
        task, statuses = self.objects.get("Task"), self.objects.get("TaskStatus")
        if task is not None and statuses is not None and "Status" in task.fields:
            status = task.fields["Status"]
            self.task_statuses = [
                {
                    "attributes": {"type": "TaskStatus"},
                    "Id": make_id(statuses.key_prefix, order),
                    "ApiName": value,
                    "MasterLabel": value,
                    "IsClosed": value in closed_task_statuses,
                    "IsDefault": value == status.default,
                    "SortOrder": order,
                }
                for order, value in enumerate(status.picklist, start=1)
            ]

    def _visible(self, record: dict[str, Any]) -> bool:
        return self.sharing is None or self.viewer is None or self.sharing.sees(self.viewer, record)

    def _no_access(self) -> RecordRefused:
        return RecordRefused(
            [
                SalesforceError(
                    "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id"
                )
            ]
        )

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
        self._check_unique(spec, values, None)
        record = {f.name: f.default for f in spec.fields.values() if f.default is not None}
        if self.viewer is not None and "OwnerId" in spec.fields:
            record["OwnerId"] = self.viewer  # a record is its creator's unless it says
        record |= values
        self._counter += 1
        record["Id"] = make_id(spec.key_prefix, self._counter)
        self.records[record["Id"]] = {"attributes": {"type": name}, **record}
        self._created[record["Id"]] = self._clock()
        return str(record["Id"])

    def delete(self, record_id: str) -> None:
        """Move a record to the recycle bin (also what a merge does to the records it merges
        away): ``query`` no longer sees it, ``queryAll`` does, references to it fail."""
        self.records[record_id]["IsDeleted"] = True

    def archive(self, record_id: str) -> None:
        """Archive an activity, as Salesforce does a year after its due date."""
        self.records[record_id]["IsArchived"] = True

    def searchable(self, record: dict[str, Any]) -> bool:
        """True once the search index has caught up with the record."""
        if record.get("IsDeleted"):
            return False
        return self._clock() - self._created.get(record["Id"], 0.0) >= self.search_lag

    def deserialization_error(self, name: str, values: dict[str, Any]) -> SalesforceError | None:
        """The first value whose JSON type does not fit its field: a real org cannot read
        the request at all then, and refuses all of it (``JSON_PARSER_ERROR``)."""
        spec = self.objects.get(name)
        if spec is None:
            return None
        for key, value in values.items():
            field = spec.fields.get(key)
            if field is None or value is None:
                continue
            for error in self._check_value(field, value):
                if error.statusCode == "JSON_PARSER_ERROR":
                    return error
        return None

    def update(self, name: str, record_id: str, values: dict[str, Any]) -> None:
        """Change fields of an existing record."""
        spec = self.spec(name)
        record = self._find(spec, record_id)
        if not self._visible(record):
            raise self._no_access()
        self._check(spec, values, creating=False)
        self._check_unique(spec, values, record_id)
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
        self,
        name: str,
        fields: list[str],
        where: tuple[str, list[str]] | None,
        limit: int | None,
        *,
        all_rows: bool = False,
    ) -> list[dict[str, Any]]:
        """Records of ``name`` whose ``where[0]`` is one of ``where[1]``, ``fields`` only;
        deleted and archived ones only with ``all_rows`` (``queryAll``)."""
        spec = self.spec(name)
        for field in fields + ([where[0]] if where else []):
            if field not in spec.fields and field not in SYSTEM_COLUMNS:
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
        rows = [
            r
            for r in self._of(name)
            if (where is None or r.get(where[0]) in where[1])
            and (all_rows or not (r.get("IsDeleted") or r.get("IsArchived")))
            and self._visible(r)
        ]
        return [
            {"attributes": r["attributes"], **{f: _column(r, f) for f in fields}}
            for r in rows[:limit]
        ]

    def _of(self, name: str) -> list[dict[str, Any]]:
        if name == "TaskStatus":
            return self.task_statuses
        if name in SETUP_OBJECTS:
            users = [r for r in self.records.values() if r["attributes"]["type"] == "User"]
            return setup_rows(name, self.sharing, users)
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
        if record.get("IsDeleted"):
            raise RecordRefused([SalesforceError("ENTITY_IS_DELETED", "entity is deleted")])
        return record

    def _reference_error(self, field: FieldSpec, value: str) -> list[SalesforceError]:
        """A reference to a record of an object this org holds must name a live record."""
        kinds = {self.objects[n].key_prefix: n for n in field.references if n in self.objects}
        if value[:3] not in kinds:
            return []  # an object the stand-in does not model (User): not checked
        target = self.records.get(value if len(value) == 18 else to_18(value))
        if target is None:
            return [
                SalesforceError(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field.name]
                )
            ]
        if target.get("IsDeleted"):
            return [SalesforceError("ENTITY_IS_DELETED", "entity is deleted", [])]
        if target["attributes"]["type"] == "User" and target.get("IsActive") is False:
            return [
                SalesforceError(
                    "INACTIVE_OWNER_OR_USER",
                    f"operation performed with inactive user [{value}] as owner of task",
                    [],
                )
            ]
        return []

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

    def _check_unique(self, spec: ObjectSpec, values: dict[str, Any], own_id: str | None) -> None:
        """A unique field's value held by another live record of the object: refused, naming
        the record that holds it (assumed wording, as orgs are reported to answer)."""
        for field in spec.fields.values():
            value = values.get(field.name)
            if not field.unique or value in (None, ""):
                continue
            for record in self._of(spec.name):
                taken = record.get(field.name) == value and not record.get("IsDeleted")
                if taken and record["Id"] != own_id:
                    raise RecordRefused(
                        [
                            SalesforceError(
                                "DUPLICATE_VALUE",
                                f"duplicate value found: {field.name} duplicates value on "
                                f"record with id: {record['Id']}",
                                [field.name],
                            )
                        ]
                    )

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
                return self._reference_error(field, value)
            case "boolean":
                if not isinstance(value, bool):
                    return wrong("boolean")
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


def _column(record: dict[str, Any], field: str) -> Any:
    if field == "IsDeleted":
        return bool(record.get("IsDeleted"))
    if field == "IsArchived":
        return bool(record.get("IsArchived"))
    return record.get(field)
