"""Call records become Task fields that a vanilla org accepts (checked by the stand-in's org)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from projections.calls.fold import CallRecord
from projections.salesforce.standin.org import Org
from projections.salesforce.task_mapping import (
    TaskMapping,
    TaskStatuses,
    choose_statuses,
    decode_mapping,
    task_fields,
)
from tests.helpers import call_record


def record(**fields: Any) -> CallRecord:
    return call_record(**fields)


def test_completed_inbound_call_fields() -> None:
    """Every standard call field is filled from the record."""
    fields = task_fields(
        record(durationSeconds=184.4, disposition="code1", notes="n"), TaskMapping(), creating=True
    )
    assert fields == {
        "CallObject": "conv-1",
        "Subject": "Inbound call from +18883973342",
        "Status": "Completed",
        "ActivityDate": "2026-11-24",
        "CallType": "Inbound",
        "CallDurationInSeconds": 184,
        "CallDisposition": "code1",
        "Description": "n",
        "TaskSubtype": "Call",
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "missed"}, "Missed call from +18883973342"),
        ({"status": "rejected", "callerNumber": ""}, "Rejected call from withheld number"),
        (
            {"direction": "outbound", "dialledNumber": "+18449401117"},
            "Outbound call to +18449401117",
        ),
    ],
)
def test_subject_says_what_happened(fields: dict[str, Any], expected: str) -> None:
    """Subjects read like a call log."""
    assert task_fields(record(**fields), TaskMapping(), creating=True)["Subject"] == expected


def test_call_in_progress_is_in_progress() -> None:
    """A connected call is not Completed yet."""
    assert (
        task_fields(record(status="connected"), TaskMapping(), creating=False)["Status"]
        == "In Progress"
    )


def test_long_notes_are_clipped_to_the_field() -> None:
    """Description holds 32,000 characters: longer notes are cut, not refused."""
    fields = task_fields(record(notes="x" * 40_000), TaskMapping(), creating=True)
    assert len(fields["Description"]) == 32_000


def test_default_mapping_is_accepted_by_a_vanilla_org() -> None:
    """Create, then update without TaskSubtype: both pass the org's validation."""
    org = Org()
    full = record(durationSeconds=12, disposition="d", notes="n", language="en_US")
    task_id = org.create("Task", task_fields(full, TaskMapping(), creating=True))
    org.update("Task", task_id, task_fields(full, TaskMapping(), creating=False))
    assert org.get("Task", task_id)["TaskSubtype"] == "Call"


def test_custom_fields_come_from_the_mapping_file(tmp_path: Path) -> None:
    """The mapping file adds custom fields for the other attributes."""
    path = tmp_path / "mapping.toml"
    path.write_text('[fields]\nlanguage = "Language__c"\npartnerId = "Partner__c"\n')
    fields = task_fields(
        record(language="fr_CA"), decode_mapping(path.read_bytes()), creating=False
    )
    assert (fields["Language__c"], fields["Partner__c"]) == ("fr_CA", "p")


def test_mapping_refuses_unknown_attributes(tmp_path: Path) -> None:
    """A typo in the mapping file is caught at load."""
    path = tmp_path / "mapping.toml"
    path.write_text('[fields]\nlanguag = "Language__c"\n')
    with pytest.raises(msgspec.ValidationError, match="languag"):
        decode_mapping(path.read_bytes())


def test_custom_object_gets_only_its_mapped_fields() -> None:
    """Another object (upserted by External ID) carries the key and the mapped fields."""
    mapping = TaskMapping(
        object="Call_Log__c",
        match_field="Conversation_Id__c",
        external_id=True,
        fields={"notes": "Notes__c"},
    )
    assert task_fields(record(notes="hi"), mapping, creating=True) == {
        "Conversation_Id__c": "conv-1",
        "Notes__c": "hi",
    }


def test_an_upsert_mapping_on_task_is_refused_pointing_to_the_key_field() -> None:
    """Upserting Tasks would send the create-only TaskSubtype to every Task it finds: refused
    when the mapping loads, naming what to use instead."""
    with pytest.raises(msgspec.ValidationError, match='key_field = "Softphone_Call_Id__c"'):
        TaskMapping(object="Task", match_field="Softphone_Call_Id__c", external_id=True)


def test_statuses_are_the_vanilla_ones_where_the_org_has_them() -> None:
    rows = [
        {"ApiName": "Not Started", "IsClosed": False, "IsDefault": True, "SortOrder": 1},
        {"ApiName": "In Progress", "IsClosed": False, "IsDefault": False, "SortOrder": 2},
        {"ApiName": "Completed", "IsClosed": True, "IsDefault": False, "SortOrder": 3},
    ]
    assert choose_statuses(rows) == TaskStatuses("In Progress", "Completed")


def test_an_org_with_its_own_statuses_gets_its_closed_one_and_its_default_open_one() -> None:
    """Completed renamed Done, In Progress gone: the first closed value, the default open."""
    rows = [
        {"ApiName": "Closed - Lost", "IsClosed": True, "IsDefault": False, "SortOrder": 9},
        {"ApiName": "Done", "IsClosed": True, "IsDefault": False, "SortOrder": 3},
        {"ApiName": "Open", "IsClosed": False, "IsDefault": True, "SortOrder": 1},
        {"ApiName": "Working", "IsClosed": False, "IsDefault": False, "SortOrder": 2},
    ]
    assert choose_statuses(rows) == TaskStatuses(open="Open", closed="Done")
    assert choose_statuses([]) == TaskStatuses("In Progress", "Completed")


def test_the_chosen_statuses_go_into_the_task() -> None:
    statuses = TaskStatuses(open="Open", closed="Done")
    over = task_fields(record(), TaskMapping(), creating=True, statuses=statuses)
    going = task_fields(
        call_record("c1", status="connected"), TaskMapping(), creating=True, statuses=statuses
    )
    assert (over["Status"], going["Status"]) == ("Done", "Open")
