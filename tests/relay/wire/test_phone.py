"""Phone numbers to E.164 (pure)."""

from __future__ import annotations

import re

import pytest

from relay.wire.phone import NotAPhoneNumber, search_forms, to_e164


@pytest.mark.parametrize(
    ("text", "region", "e164"),
    [
        ("+18883973342", None, "+18883973342"),
        ("+1 (888) 397-3342", None, "+18883973342"),
        ("(888) 397-3342", "US", "+18883973342"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
    ],
)
def test_numbers_as_people_type_them_become_e164(text: str, region: str | None, e164: str) -> None:
    """Spaces, dashes, brackets and national formats (with a region) are normalised."""
    assert to_e164(text, region) == e164


@pytest.mark.parametrize(
    ("text", "region", "reason"),
    [
        ("call me", None, "it has no digits to dial"),
        ("8883973342", None, "no known country code"),
        ("888", "US", "the wrong length for country code +1"),
        ("+1 888 397 3342 1234 5678 9", None, "too long"),
    ],
)
def test_what_is_no_phone_number_is_refused_with_the_reason(
    text: str, region: str | None, reason: str
) -> None:
    """The message quotes the input and says what is wrong."""
    with pytest.raises(NotAPhoneNumber, match=re.escape(reason)) as info:
        to_e164(text, region)
    assert str(info.value).startswith(f"{text!r} is not a phone number: ")


@pytest.mark.parametrize(
    ("number", "forms"),
    [
        ("+18883973342", ("18883973342", "8883973342")),
        ("+442079460958", ("442079460958", "2079460958", "02079460958")),
        ("+390612345678", ("390612345678", "0612345678")),
    ],
)
def test_a_number_is_searched_as_e164_national_and_trunk_prefixed_digits(
    number: str, forms: tuple[str, ...]
) -> None:
    """A CRM may hold +44 20 7946 0958 as 442079460958, 2079460958 or 020 7946 0958; Italy's
    leading 0 belongs to the number itself, so it has no trunk-prefixed form."""
    assert search_forms(number) == forms


@pytest.mark.parametrize("text", ["", "anonymous", "+1 555"])
def test_what_is_no_phone_number_has_no_search_forms(text: str) -> None:
    """A withheld, garbled or impossible number is searched for in no form."""
    assert search_forms(text) == ()
