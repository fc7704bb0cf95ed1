"""Phone numbers as the softphone wants them: E.164. Pure.

Click-to-dial numbers come from CRM records, typed by people: ``(888) 397-3342``,
``+44 20 7946 0958``, ``0044 20 ...``. ``phonenumbers`` (libphonenumber's rules) parses them,
with the partner's default region for numbers written without a country code. A number is
accepted when its length is possible for its country; the message of a refusal says why.
"""

from __future__ import annotations

import functools
from typing import Final

import phonenumbers

_REASONS: Final = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
        "no known country code (write it as +<country> <number>, or configure the partner's "
        "default region)"
    ),
    phonenumbers.NumberParseException.NOT_A_NUMBER: "it has no digits to dial",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


class NotAPhoneNumber(ValueError):
    """The text is no dialable phone number; the message says why."""


def to_e164(text: str, region: str | None = None) -> str:
    """``text`` as an E.164 number (``+18883973342``), or :class:`NotAPhoneNumber`."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        reason = _REASONS.get(error.error_type, "it cannot be parsed")
        raise NotAPhoneNumber(f"{text!r} is not a phone number: {reason}") from None
    if not phonenumbers.is_possible_number(number):
        raise NotAPhoneNumber(
            f"{text!r} is not a phone number: the wrong length for country code "
            f"+{number.country_code}"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=4096)
def search_forms(number: str) -> tuple[str, ...]:
    """The digit strings a CRM may have stored ``number`` as, most specific first: the E.164
    digits, the national significant number, and the national form with its trunk prefix
    (``442079460958``, ``2079460958``, ``02079460958``); () for no number. The caller match
    and the screen pop search for the same forms. Cached: parsing costs the relay tens of
    microseconds, and callers call again."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return ()
    if not phonenumbers.is_possible_number(parsed):
        return ()
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    forms = (
        e164.lstrip("+"),
        phonenumbers.national_significant_number(parsed),
        "".join(c for c in national if c.isdigit()),
    )
    return tuple(dict.fromkeys(form for form in forms if form))
