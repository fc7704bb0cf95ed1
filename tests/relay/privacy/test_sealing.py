"""Sealing personal fields (pure): AES-GCM under a subject's data key, bound to the event and
field, opened as the value or as erased, never as a crash."""

from __future__ import annotations

import base64

import pytest

from relay.privacy import sealing
from relay.privacy.keys import LocalKeys, UnwrapError, key_id_of, new_data_key, parse_data_keys
from relay.privacy.sealing import (
    CIPHERS_KEPT,
    DataKey,
    conversation_subject,
    is_sealed,
    mask_numbers,
    open_data,
    party_hash,
    personal_fields,
    seal_data,
    seal_in_conversation,
    subjects_of,
)

EVENT = "5b0e6c1e-8f0a-4c55-9d7e-3f2a1b0c9d8e"
CONVERSATION = "0f8fad5b-d9cb-469f-a165-70867728950e"
SUBJECT = conversation_subject(CONVERSATION)
NOTES = "Caller asked to cancel the booking for 12 May; wants a refund to her Visa."
DATA = {"conversationId": CONVERSATION, "callerANI": "+442079460958", "notes": NOTES}


def sealed_data(key: DataKey) -> dict[str, object]:
    return seal_data(DATA, personal_fields(DATA), key, SUBJECT, EVENT)


def test_the_contracts_personal_fields_are_sealed_and_nothing_else() -> None:
    data = {**DATA, "dialTo": "", "queueName": "Billing", "duration": 95}
    assert personal_fields(data) == ["callerANI", "notes"]
    assert personal_fields({"orderRef": "A-17"}, wanted={"orderRef"}) == ["orderRef"]


def test_a_sealed_value_holds_no_clear_text_and_opens_with_its_key() -> None:
    key = DataKey(new_data_key())
    sealed = sealed_data(key)
    assert is_sealed(sealed["callerANI"]) and sealed["conversationId"] == CONVERSATION
    text = repr(sealed)
    assert "2079460958" not in text and "refund" not in text
    assert subjects_of(sealed) == {SUBJECT}
    assert open_data(sealed, {SUBJECT: key}, EVENT) == (DATA, [], [])


def test_a_value_whose_key_is_erased_opens_as_erased() -> None:
    sealed = sealed_data(DataKey(new_data_key()))
    opened, erased, unreadable = open_data(sealed, {SUBJECT: None}, EVENT)
    assert opened == {"conversationId": CONVERSATION}
    assert erased == ["callerANI", "notes"] and unreadable == []


def test_a_value_moved_to_another_event_or_field_does_not_open() -> None:
    key = DataKey(new_data_key())
    sealed = sealed_data(key)
    swapped = {**sealed, "callerANI": sealed["notes"], "notes": sealed["callerANI"]}
    assert open_data(swapped, {SUBJECT: key}, EVENT)[2] == ["callerANI", "notes"]
    assert open_data(sealed, {SUBJECT: key}, "another-event")[2] == ["callerANI", "notes"]


def test_a_value_sealed_under_another_key_does_not_open() -> None:
    sealed = sealed_data(DataKey(new_data_key()))
    assert open_data(sealed, {SUBJECT: DataKey(new_data_key())}, EVENT)[2] == ["callerANI", "notes"]


def test_a_number_hashes_alike_in_every_format_and_differently_under_another_key() -> None:
    key = new_data_key()
    forms = ["+44 20 7946 0958", "+442079460958", "442079460958"]
    assert len({party_hash(key, n) for n in forms}) == 1
    assert party_hash(key, forms[0]) != party_hash(new_data_key(), forms[0])
    assert "2079460958" not in party_hash(key, forms[0])


def test_a_data_key_wrapped_by_an_old_key_unwraps_after_a_rotation() -> None:
    old, new = new_data_key(), new_data_key()
    data_key = new_data_key()
    wrapped = LocalKeys([old]).wrap(data_key)
    rotated = LocalKeys([new, old])
    assert rotated.unwrap(wrapped) == data_key
    assert rotated.wrapped_by(rotated.wrap(data_key)) == key_id_of(new) == rotated.key_id


def test_a_data_key_wrapped_by_an_unknown_key_says_which_key_it_needs() -> None:
    old = new_data_key()
    wrapped = LocalKeys([old]).wrap(new_data_key())
    with pytest.raises(UnwrapError, match=key_id_of(old)):
        LocalKeys([new_data_key()]).unwrap(wrapped)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no key"),
        ("not base64!", "not base64"),
        (base64.b64encode(b"short").decode(), "5 bytes; it must be 32"),
    ],
)
def test_a_bad_data_key_setting_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_data_keys(text)


def test_several_data_keys_are_read_the_current_one_first() -> None:
    first, second = new_data_key(), new_data_key()
    text = f"{base64.b64encode(first).decode()},\n {base64.b64encode(second).decode()}"
    assert parse_data_keys(text) == (first, second)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "MALFORMED_SEARCH: FIND {442079460958 OR 2079460958}",
            "MALFORMED_SEARCH: FIND {***58 OR ***58}",
        ),
        ("Phone: +44 20 7946 0958 is bad", "Phone: ***58 is bad"),
        ("(888) 397-3342", "***42"),
        (
            "entry 1732450000000-0 on 2026-11-24, 12 retries",
            "entry 1732450000000-0 on 2026-11-24, 12 retries",
        ),
    ],
)
def test_numbers_in_an_error_text_are_masked_and_dates_and_ids_kept(text: str, masked: str) -> None:
    assert mask_numbers(text) == masked


def test_an_events_values_sealed_in_its_conversation_open_bound_to_it() -> None:
    """The relay's hot path seals like :func:`seal_data` under the conversation's key: the
    values open for their event, the rest of the data is as given."""
    key = DataKey(new_data_key())
    data = {**DATA, "language": "en_US"}
    sealed = seal_in_conversation(data, ["callerANI", "notes"], key, EVENT)
    assert sealed["language"] == "en_US" and sealed["conversationId"] == CONVERSATION
    assert is_sealed(sealed["callerANI"]) and is_sealed(sealed["notes"])
    assert open_data(sealed, {SUBJECT: key}, EVENT, CONVERSATION) == (data, [], [])
    assert open_data(sealed, {SUBJECT: key}, "another-event", CONVERSATION)[2] == [
        "callerANI",
        "notes",
    ]


def test_values_given_empty_or_sealed_already_are_left_as_they_are() -> None:
    """Nothing to seal (absent, empty, or sealed already): the data itself comes back."""
    key = DataKey(new_data_key())
    already = seal_in_conversation(DATA, ["notes"], key, EVENT)["notes"]
    data = {"callerANI": None, "notes": already, "dialTo": ""}
    assert seal_in_conversation(data, ["callerANI", "notes", "dialTo"], key, EVENT) is data


def test_values_of_an_erased_conversation_are_sealed_as_erased() -> None:
    """Under no key (the conversation was erased), nothing of a value is kept."""
    sealed = seal_in_conversation(DATA, ["callerANI", "notes"], None, EVENT)
    assert sealed["callerANI"] == {"sealed": "c", "v": ""}
    assert open_data(sealed, {SUBJECT: None}, EVENT, CONVERSATION)[1] == ["callerANI", "notes"]


def test_a_process_keeps_the_ciphers_of_its_latest_keys_only_and_remakes_older_ones() -> None:
    """A cipher costs 2.5 KB, so a process holding the keys of 100,000 conversations keeps
    the ciphers of the last CIPHERS_KEPT used only; an older key seals and opens as
    before, its cipher made again."""
    first = DataKey(new_data_key())
    sealed = seal_data(DATA, ["notes"], first, SUBJECT, EVENT)
    for _ in range(CIPHERS_KEPT):
        seal_data(DATA, ["notes"], DataKey(new_data_key()), SUBJECT, EVENT)
    assert len(sealing._with_cipher) == CIPHERS_KEPT
    assert first._cipher is None  # dropped: the bound holds
    assert open_data(sealed, {SUBJECT: first}, EVENT)[0]["notes"] == NOTES
