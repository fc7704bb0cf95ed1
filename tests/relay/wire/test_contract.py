"""The contract as types: every hook, request and command, and precise validation errors."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from relay.errors import InvalidEvent, UnknownEvent
from relay.wire.contract import (
    COMMANDS,
    EVENTS,
    HOOKS,
    event_schema,
    too_deep,
    validate_command,
    validate_event_data,
)
from tests.helpers import PARTNER, contract_examples

EXAMPLES = contract_examples()


@pytest.mark.parametrize("name", list(HOOKS))
def test_every_contract_sample_payload_is_valid(name: str) -> None:
    """The contract's own sample payload of each hook validates unchanged."""
    data = EXAMPLES["hooks"][name]
    assert validate_event_data(name, data).items() >= data.items()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_contract_sample_command_is_valid(name: str) -> None:
    """The contract's own sample payload of each command validates."""
    assert validate_command(name, EXAMPLES["commands"][name]) == EXAMPLES["commands"][name]


def test_unknown_fields_are_kept() -> None:
    """What the softphone said beyond the contract is kept for the log."""
    data = {"partnerId": PARTNER, "conversationId": "c", "queueName": "vip"}
    assert validate_event_data("callEnded", data)["queueName"] == "vip"


def test_language_defaults_to_en_us() -> None:
    """``language`` is filled with the contract's default when missing."""
    assert validate_event_data("incomingCall", {})["language"] == "en_US"


def test_incoming_call_may_be_empty() -> None:
    """``incomingCall()`` with no argument is a valid event."""
    assert validate_event_data("incomingCall", {}) == {"language": "en_US"}


def test_missing_required_field_is_named() -> None:
    """A missing identity field is reported with its path."""
    with pytest.raises(InvalidEvent, match=r"missing required field `conversationId`"):
        validate_event_data("callAccepted", {"partnerId": PARTNER})


def test_wrong_type_names_the_field_and_expectation() -> None:
    """A wrongly typed field names the field and the expected type."""
    with pytest.raises(InvalidEvent) as info:
        validate_event_data(
            "callEnded", {"partnerId": PARTNER, "conversationId": "c", "duration": "long"}
        )
    assert "$.data.duration" in str(info.value)
    assert "Expected `float | null`, got `str`" in str(info.value)


def test_negative_duration_is_refused() -> None:
    """A call cannot last less than nothing."""
    with pytest.raises(InvalidEvent, match=r">= 0"):
        validate_event_data(
            "callEnded", {"partnerId": PARTNER, "conversationId": "c", "duration": -1}
        )


@pytest.mark.parametrize("number", ["8883973342", "+0123", "+1 888 397", "phone"])
def test_dialled_number_must_be_e164(number: str) -> None:
    """Phone numbers are E.164."""
    with pytest.raises(InvalidEvent, match=r"\$\.data\.dialledTo"):
        validate_event_data(
            "outboundCallInitiated",
            {"partnerId": PARTNER, "conversationId": "c", "dialledTo": number},
        )


def test_withheld_caller_id_is_accepted() -> None:
    """An empty ``callerANI`` (withheld) is still a call."""
    assert validate_event_data("incomingCall", {"callerANI": ""})["callerANI"] == ""


@pytest.mark.parametrize(("field", "value"), [("recordingStatus", "MAYBE"), ("language", 5)])
def test_enumerations_and_types_are_checked(field: str, value: Any) -> None:
    """Enumerated fields accept only their values."""
    with pytest.raises(InvalidEvent, match=field):
        validate_event_data(
            "callAccepted", {"partnerId": PARTNER, "conversationId": "c", field: value}
        )


def test_rejection_reason_is_active_or_passive() -> None:
    """``callRejected.reason`` is one of active/passive."""
    with pytest.raises(InvalidEvent, match="reason"):
        validate_event_data(
            "callRejected", {"partnerId": PARTNER, "conversationId": "c", "reason": "bored"}
        )


def test_unknown_event_is_refused_with_the_known_names() -> None:
    """An unknown event name lists what is accepted."""
    with pytest.raises(UnknownEvent, match="callAccepted"):
        validate_event_data("callExploded", {})


def test_crm_requests_are_events() -> None:
    """The CRM-side requests validate like hooks."""
    assert validate_event_data("startCallRequested", {"dialTo": "+18883973342"})
    assert validate_event_data("presenceUpdateRequested", {"softphoneId": "s"})
    assert validate_event_data("presenceQueryRequested", {}) == {}
    assert set(EVENTS) == set(HOOKS) | {
        "startCallRequested",
        "presenceUpdateRequested",
        "presenceQueryRequested",
    }


def test_start_call_defaults_participant_type() -> None:
    """``participantType`` defaults to Traveler and must be one of the three values."""
    command = dict(EXAMPLES["commands"]["start_call"])
    del command["participantType"]
    assert validate_command("start_call", command)["participantType"] == "Traveler"
    command["participantType"] = "Traveler/Supplier/Agent"
    with pytest.raises(InvalidEvent, match="participantType"):
        validate_command("start_call", command)


def test_get_presence_takes_no_payload() -> None:
    """``get_presence`` carries null."""
    with pytest.raises(InvalidEvent, match="no payload"):
        validate_command("get_presence", {"x": 1})


def test_unknown_command_is_refused() -> None:
    """Only the five contract commands exist."""
    with pytest.raises(UnknownEvent, match="start_call"):
        validate_command("hang_up", None)


def test_schema_covers_every_event_and_command() -> None:
    """The JSON Schema shared with the JS client names every event and command."""
    schema = event_schema()
    assert set(schema["properties"]) == set(EVENTS) | set(COMMANDS)


def test_clientjs_schema_is_in_sync_with_the_python_types() -> None:
    """The shipped contract.schema.json is what the Python contract generates.

    Regenerate: ``python -m relay.wire.contract > clientjs/contract.schema.json``. The
    generator cleans every description itself, so which msgspec release wrote the file does
    not matter.
    """
    path = resources.files("clientjs").joinpath("contract.schema.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(event_schema()))


def test_data_nested_past_the_limit_is_refused_naming_the_limit() -> None:
    """The log must be able to store what it accepts: no payload deeper than 32 levels."""
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(40):
        inner["a"] = {}
        inner = inner["a"]
    data = {"partnerId": PARTNER, "conversationId": "c1", "extra": deep}
    with pytest.raises(InvalidEvent, match="nested more than 32 levels"):
        validate_event_data("callEnded", data)


def test_too_deep_counts_levels_without_recursion() -> None:
    """Objects and arrays count alike; scalars do not; 100,000 levels take no stack."""
    assert not too_deep({"a": [1, {"b": "x"}]}, 3)
    assert too_deep({"a": [1, {"b": []}]}, 3)
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    assert too_deep(nested, 32)
