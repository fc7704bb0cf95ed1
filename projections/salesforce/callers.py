"""Who is calling: a phone number matched to a Contact or Lead for the Task's ``WhoId``. Pure.

One SOSL phone search per batch finds the candidates (``FIND {n OR n ...} IN PHONE FIELDS``,
which ignores how the stored numbers are formatted); each candidate is then confirmed here by
parsing its phone fields (``phonenumbers``, in the caller's region) and comparing E.164 forms.
A number is linked only when the match is unambiguous: exactly one Contact, else exactly one
Lead; several people with one number (a switchboard) link nobody, as a wrong link is worse
than none. Results, misses included, are cached for a while, so a caller who calls again
costs no search.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import phonenumbers

from relay.wire.phone import search_forms

CONTACT_PHONES: Final = ("Phone", "MobilePhone", "HomePhone", "OtherPhone")
LEAD_PHONES: Final = ("Phone", "MobilePhone")
SEARCH_QUERY_MAX_CHARS: Final = 4_000
"""The longest ``FIND {...}`` search query that keeps its OR operators (SOSL drops them
beyond 4,000 characters, and returns nothing beyond 10,000)."""
SEARCH_MAX_ROWS: Final = 2_000
"""The most rows a SOSL search returns (its default and largest ``LIMIT``): an answer this
long may have been cut short."""
_OR: Final = " OR "


def _parse(text: str, region: str | None = None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def search_batches(numbers: Sequence[str]) -> list[list[str]]:
    """``numbers`` in as few searches as fit: each search query as long as SOSL keeps it
    whole (:data:`SEARCH_QUERY_MAX_CHARS`), so numbers are packed by length, not count."""
    batches: list[list[str]] = [[]]
    terms: set[str] = set()
    chars = 0  # of the terms joined by " OR ", plus one " OR " too many

    for number in numbers:
        own = set(search_forms(number))
        more = own - terms
        grown = chars + sum(len(t) + len(_OR) for t in more)
        if batches[-1] and grown - len(_OR) > SEARCH_QUERY_MAX_CHARS:
            batches.append([])
            terms, more = set(), own
            grown = sum(len(t) + len(_OR) for t in own)
        batches[-1].append(number)
        terms |= more
        chars = grown
    return [batch for batch in batches if batch]


def phone_search(numbers: Iterable[str]) -> str | None:
    """The SOSL that finds Contacts and the Leads not yet converted with any of ``numbers``
    (a converted Lead lives on as the Contact it became: linking it would hide that Contact);
    None if none searchable."""
    terms = [t for n in numbers for t in search_forms(n)]
    if not terms:
        return None
    return (
        f"FIND {{{_OR.join(dict.fromkeys(terms))}}} IN PHONE FIELDS RETURNING "
        f"Contact(Id, {', '.join(CONTACT_PHONES)}), "
        f"Lead(Id, {', '.join(LEAD_PHONES)} WHERE IsConverted = false)"
    )


def _same_number(caller: phonenumbers.PhoneNumber, stored: Any) -> bool:
    if not isinstance(stored, str):
        return False
    region = phonenumbers.region_code_for_number(caller)
    other = _parse(stored, region)
    return other is not None and (
        other.country_code,
        other.national_number,
    ) == (caller.country_code, caller.national_number)


def match_caller(number: str, found: Iterable[Mapping[str, Any]]) -> str | None:
    """The id of the one Contact (else the one Lead) whose phone is ``number``, if unambiguous."""
    caller = _parse(number)
    if caller is None:
        return None
    matches: dict[str, set[str]] = {"Contact": set(), "Lead": set()}
    for record in found:
        kind = (record.get("attributes") or {}).get("type")
        fields = CONTACT_PHONES if kind == "Contact" else LEAD_PHONES if kind == "Lead" else ()
        if any(_same_number(caller, record.get(f)) for f in fields):
            matches[str(kind)].add(str(record["Id"]))
    for kind in ("Contact", "Lead"):
        if matches[kind]:
            return next(iter(matches[kind])) if len(matches[kind]) == 1 else None
    return None


class CallerCache:
    """Numbers already looked up → their Contact/Lead id or None, for ``ttl`` seconds."""

    def __init__(self, ttl: float = 600.0, size: int = 10_000) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[str, tuple[str | None, float]] = OrderedDict()

    def get(self, number: str, now: float) -> tuple[bool, str | None]:
        """(known, who): ``known`` is False when the number must be searched."""
        entry = self._entries.get(number)
        if entry is None or entry[1] <= now:
            return False, None
        return True, entry[0]

    def put(self, number: str, who: str | None, now: float) -> None:
        """Remember a lookup; the oldest entries go first when full."""
        self._entries[number] = (who, now + self._ttl)
        self._entries.move_to_end(number)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, number: str) -> None:
        """Drop what is known of ``number`` (its record was deleted or merged since)."""
        self._entries.pop(number, None)
