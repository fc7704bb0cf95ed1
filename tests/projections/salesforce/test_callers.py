"""Matching a caller's number to one Contact or Lead (pure)."""

from __future__ import annotations

import re
from typing import Any

from projections.salesforce.callers import (
    SEARCH_QUERY_MAX_CHARS,
    CallerCache,
    match_caller,
    phone_search,
    search_batches,
)


def contact(record_id: str, **phones: str) -> dict[str, Any]:
    return {"attributes": {"type": "Contact"}, "Id": record_id, **phones}


def lead(record_id: str, **phones: str) -> dict[str, Any]:
    return {"attributes": {"type": "Lead"}, "Id": record_id, **phones}


def test_what_is_no_phone_number_is_not_searched() -> None:
    """A withheld or garbled number gives no search at all."""
    assert phone_search(["", "anonymous"]) is None


def test_one_search_covers_every_number() -> None:
    """The SOSL names every term once and asks for the phone fields to confirm matches."""
    sosl = phone_search(["+18883973342", "+18883973342", "+442079460958"])
    assert sosl == (
        "FIND {18883973342 OR 8883973342 OR 442079460958 OR 2079460958 OR 02079460958} "
        "IN PHONE FIELDS "
        "RETURNING Contact(Id, Phone, MobilePhone, HomePhone, OtherPhone), "
        "Lead(Id, Phone, MobilePhone WHERE IsConverted = false)"
    )


def search_query(numbers: list[str]) -> str:
    sosl = phone_search(numbers)
    assert sosl is not None
    found = re.search(r"\{(.*)\}", sosl)
    assert found is not None
    return found[1]


def test_searches_are_packed_by_length_up_to_what_sosl_keeps_whole() -> None:
    """10,000 US numbers take 73 searches of at most 4,000 characters, each number once."""
    numbers = [f"+1800{i:07d}" for i in range(10_000)]
    batches = search_batches(numbers)
    assert [n for batch in batches for n in batch] == numbers
    assert len(batches) == 73
    lengths = [len(search_query(batch)) for batch in batches]
    assert max(lengths) <= SEARCH_QUERY_MAX_CHARS
    assert min(lengths[:-1]) > SEARCH_QUERY_MAX_CHARS - 2 * len(" OR 18000000000")


def test_longer_numbers_make_smaller_searches() -> None:
    """International numbers have more digits: fewer of them fit in one search."""
    us = search_batches([f"+1800{i:07d}" for i in range(300)])
    german = search_batches([f"+4930{i:09d}" for i in range(300)])
    assert len(german[0]) < len(us[0])
    assert all(len(search_query(b)) <= SEARCH_QUERY_MAX_CHARS for b in german)


def test_a_repeated_number_costs_no_room() -> None:
    """The same number twice adds no term: all of them fit one search."""
    assert search_batches(["+18883973342"] * 500) == [["+18883973342"] * 500]


def test_numbers_without_terms_still_get_a_batch() -> None:
    """A withheld number is answered (linked to nobody) without a search term."""
    assert search_batches(["", "anonymous"]) == [["", "anonymous"]]
    assert search_batches([]) == []


def test_a_contact_matches_whatever_its_formatting() -> None:
    """(888) 397-3342 stored on a US contact is +18883973342."""
    found = [contact("003A", Phone="(888) 397-3342")]
    assert match_caller("+18883973342", found) == "003A"


def test_any_phone_field_matches() -> None:
    """Mobile, home and other phones count as well as the business phone."""
    assert match_caller("+18883973342", [contact("003A", MobilePhone="+1 888-397-3342")]) == "003A"
    assert match_caller("+18883973342", [contact("003A", OtherPhone="888.397.3342")]) == "003A"


def test_a_search_hit_on_another_number_is_not_a_match() -> None:
    """The search finds candidates; only the same number links."""
    assert match_caller("+18883973342", [contact("003A", Phone="+1 888 397 3343")]) is None


def test_a_contact_wins_over_a_lead() -> None:
    """A known customer is linked before a prospect with the same number."""
    found = [lead("00QA", Phone="8883973342"), contact("003A", Phone="8883973342")]
    assert match_caller("+18883973342", found) == "003A"


def test_a_lead_matches_when_no_contact_does() -> None:
    """No Contact: the one Lead."""
    assert match_caller("+18883973342", [lead("00QA", Phone="888-397-3342")]) == "00QA"


def test_several_matches_link_nobody() -> None:
    """Two Contacts share the number (a switchboard): no WhoId rather than a wrong one."""
    found = [contact("003A", Phone="8883973342"), contact("003B", Phone="8883973342")]
    assert match_caller("+18883973342", found) is None


def test_the_cache_remembers_hits_and_misses_until_they_expire() -> None:
    """A repeat caller costs no search; after the TTL the number is searched again."""
    cache = CallerCache(ttl=10)
    cache.put("+1", "003A", now=0)
    cache.put("+2", None, now=0)
    assert cache.get("+1", now=5) == (True, "003A")
    assert cache.get("+2", now=5) == (True, None)
    assert cache.get("+1", now=10) == (False, None)
    assert cache.get("+3", now=0) == (False, None)


def test_the_cache_forgets_the_oldest_when_full() -> None:
    """Bounded memory: the least recently stored number goes first."""
    cache = CallerCache(size=2)
    for number in ("+1", "+2", "+3"):
        cache.put(number, None, now=0)
    assert [cache.get(n, now=1)[0] for n in ("+1", "+2", "+3")] == [False, True, True]
