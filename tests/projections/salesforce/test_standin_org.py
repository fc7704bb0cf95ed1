"""The stand-in's org answers like Salesforce: ids, defaults, validation errors, queries."""

from __future__ import annotations

import pytest
from simple_salesforce.format import quote_soql_value

from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import RecordRefused, is_id, make_id, to_18
from projections.salesforce.standin.soql import run_query, unescape_literal

CALL = {
    "TaskSubtype": "Call",
    "CallType": "Inbound",
    "CallObject": "conv-1",
    "CallDurationInSeconds": 184,
    "Subject": "Inbound call",
    "ActivityDate": "2026-11-24",
}


def refused(action: object) -> list[tuple[str, list[str]]]:
    with pytest.raises(RecordRefused) as info:
        action()  # type: ignore[operator]
    return [(e.statusCode, e.fields) for e in info.value.errors]


def test_ids_are_18_characters_with_the_case_safe_suffix() -> None:
    """Published CASESAFEID examples convert, and our own ids verify."""
    for id15, id18 in [
        ("a0D30000001n7Pi", "a0D30000001n7PiEAI"),
        ("a0RE000000IJmcN", "a0RE000000IJmcNMAT"),
        ("0019000000B98de", "0019000000B98deAAB"),
        ("a01M00000062mPg", "a01M00000062mPgIAI"),
    ]:
        assert to_18(id15) == id18
    task_id = make_id("00T", 1)
    assert task_id.startswith("00T") and len(task_id) == 18 and is_id(task_id)
    assert not is_id(task_id[:17] + "9") and not is_id("123")


def test_created_task_gets_vanilla_defaults() -> None:
    """Status and Priority default like a vanilla org."""
    org = Org()
    record = org.get("Task", org.create("Task", CALL))
    assert (record["Status"], record["Priority"], record["CallObject"]) == (
        "Not Started",
        "Normal",
        "conv-1",
    )


def test_unknown_field_is_invalid_field() -> None:
    """A custom field a vanilla org lacks is refused, naming it."""
    assert refused(lambda: Org().create("Task", {**CALL, "Language__c": "en"})) == [
        ("INVALID_FIELD", ["Language__c"])
    ]


def test_too_long_string_is_string_too_long() -> None:
    """Lengths are enforced."""
    assert refused(lambda: Org().create("Task", {**CALL, "CallObject": "x" * 256})) == [
        ("STRING_TOO_LONG", ["CallObject"])
    ]


def test_restricted_picklist_refuses_unknown_values() -> None:
    """CallType is a restricted picklist."""
    assert refused(lambda: Org().create("Task", {**CALL, "CallType": "inbound"})) == [
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["CallType"])
    ]


def test_wrong_json_type_is_a_parser_error() -> None:
    """An int field given a string."""
    assert refused(lambda: Org().create("Task", {**CALL, "CallDurationInSeconds": "184"})) == [
        ("JSON_PARSER_ERROR", ["CallDurationInSeconds"])
    ]


def test_bad_reference_is_malformed_id() -> None:
    """WhoId must be an id."""
    assert refused(lambda: Org().create("Task", {**CALL, "WhoId": "+18883973342"})) == [
        ("MALFORMED_ID", ["WhoId"])
    ]


def test_required_fields_are_reported() -> None:
    """A Lead needs LastName and Company."""
    assert refused(lambda: Org().create("Lead", {"Phone": "+1"})) == [
        ("REQUIRED_FIELD_MISSING", ["LastName", "Company"])
    ]


def test_task_subtype_cannot_be_updated() -> None:
    """TaskSubtype is set on create only."""
    org = Org()
    task_id = org.create("Task", CALL)
    assert refused(lambda: org.update("Task", task_id, {"TaskSubtype": "Call"})) == [
        ("INVALID_FIELD_FOR_INSERT_UPDATE", ["TaskSubtype"])
    ]
    org.update("Task", task_id, {"Status": "Completed", "Description": "notes"})
    assert org.get("Task", task_id)["Status"] == "Completed"


def test_update_of_a_missing_record_is_not_found() -> None:
    """Unknown and malformed ids are told apart."""
    org = Org()
    assert refused(lambda: org.update("Task", make_id("00T", 99), {}))[0][0] == "NOT_FOUND"
    assert refused(lambda: org.update("Task", "nope", {}))[0][0] == "MALFORMED_ID"


def test_upsert_needs_an_external_id_field() -> None:
    """Task has no External ID field in a vanilla org."""
    assert refused(lambda: Org().upsert("Task", "CallObject", "c", {}))[0][0] == "NOT_FOUND"


def test_query_by_call_object() -> None:
    """The sink's one query per batch: SELECT Id, CallObject FROM Task WHERE CallObject IN."""
    org = Org()
    first = org.create("Task", CALL)
    org.create("Task", {**CALL, "CallObject": "conv-2"})
    org.create("Task", {**CALL, "CallObject": "conv-3"})
    rows = run_query(org, "SELECT Id, CallObject FROM Task WHERE CallObject IN ('conv-1', 'x')")
    assert rows == [{"attributes": {"type": "Task"}, "Id": first, "CallObject": "conv-1"}]
    assert len(run_query(org, "SELECT Id FROM Task LIMIT 2")) == 2
    assert len(run_query(org, "select Id from Task where CallObject = 'conv-3'")) == 1


def test_query_errors_are_salesforce_errors() -> None:
    """Unknown columns, unfilterable fields and unsupported syntax are refused."""
    org = Org()
    assert refused(lambda: run_query(org, "SELECT Nope FROM Task"))[0][0] == "INVALID_FIELD"
    assert (
        refused(lambda: run_query(org, "SELECT Id FROM Task WHERE Description = 'x'"))[0][0]
        == "INVALID_FIELD"
    )
    assert refused(lambda: run_query(org, "DELETE FROM Task"))[0][0] == "MALFORMED_QUERY"


def test_string_literals_follow_salesforces_escapes() -> None:
    """Each documented escape, in either case, and \\uXXXX; the sink's quoting round-trips."""
    assert unescape_literal(r"'a\'b\\c\"d'") == "a'b\\c\"d"
    assert unescape_literal(r"'\n\N\r\t\T\b\f\u00e9'") == "\n\n\r\t\t\b\f\u00e9"
    for value in ("it's", "a\\b", 'q"q', "n\nl", "t\tb", "\u00e9"):
        assert unescape_literal(quote_soql_value(value)) == value


@pytest.mark.parametrize("literal", [r"'\x'", r"'\_'", r"'\u12'"])
def test_an_undocumented_escape_is_a_malformed_query(literal: str) -> None:
    """ "If you use a backslash character in any other context, an error occurs.\""""
    assert refused(lambda: unescape_literal(literal))[0][0] == "MALFORMED_QUERY"


def test_query_hides_deleted_and_archived_tasks_and_query_all_sees_them() -> None:
    """``query`` skips the recycle bin and Tasks archived after a year; ``queryAll`` does not."""
    org = Org()
    archived = org.create("Task", CALL)
    deleted = org.create("Task", {**CALL, "CallObject": "conv-2"})
    org.archive(archived)
    org.delete(deleted)
    soql = "SELECT Id, IsDeleted FROM Task WHERE CallObject IN ('conv-1', 'conv-2')"
    assert run_query(org, soql) == []
    assert {(r["Id"], r["IsDeleted"]) for r in run_query(org, soql, all_rows=True)} == {
        (archived, False),
        (deleted, True),
    }


def test_a_reference_to_a_deleted_record_is_entity_is_deleted() -> None:
    """A WhoId naming a Contact merged away (deleted) since fails, without naming the field
    (as real answers may come)."""
    org = Org()
    contact = org.create("Contact", {"LastName": "Diaz"})
    org.delete(contact)
    assert refused(lambda: org.create("Task", {**CALL, "WhoId": contact})) == [
        ("ENTITY_IS_DELETED", [])
    ]


def test_a_reference_to_a_record_that_never_existed_is_invalid_cross_reference() -> None:
    """A well-formed id of a Contact this org never had fails with INVALID_CROSS_REFERENCE_KEY."""
    org = Org()
    assert refused(lambda: org.create("Task", {**CALL, "WhoId": make_id("003", 999)})) == [
        ("INVALID_CROSS_REFERENCE_KEY", ["WhoId"])
    ]


def test_a_new_record_is_searchable_only_after_the_index_lag() -> None:
    """Phone search sees a record ``search_lag`` seconds after it was created."""
    now = [1000.0]
    org = Org(search_lag=900.0, clock=lambda: now[0])
    contact = org.create("Contact", {"LastName": "Diaz", "Phone": "+18883973342"})
    assert not org.searchable(org.records[contact])
    now[0] += 900.0
    assert org.searchable(org.records[contact])


def test_a_value_of_the_wrong_json_type_is_found_before_any_write() -> None:
    """What fails a whole request on a real org is found per record by deserialization_error."""
    org = Org()
    assert org.deserialization_error("Task", CALL) is None
    error = org.deserialization_error("Task", {**CALL, "CallDurationInSeconds": "184"})
    assert error is not None and error.statusCode == "JSON_PARSER_ERROR"
