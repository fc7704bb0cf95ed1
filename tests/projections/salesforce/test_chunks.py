"""Sizing lookups by URL bytes: every chunk's URL within the budget, nothing lost."""

from __future__ import annotations

from urllib.parse import quote_plus

from simple_salesforce.format import quote_soql_value

from projections.salesforce.chunks import (
    COLLECTION_MAX,
    MAX_QUERY_URL_BYTES,
    halves,
    in_list_query,
    url_chunks,
)
from tests.helpers import conversation_ids

PREFIX = len("https://example.my.salesforce.com/services/data/v62.0/queryAll/?q=")


def soql(literals: list[str] | tuple[str, ...]) -> str:
    return in_list_query(["Id", "CallObject", "IsDeleted"], "Task", "CallObject", literals)


def url_bytes(ids: list[str]) -> int:
    return PREFIX + len(quote_plus(soql([quote_soql_value(i) for i in ids])))


def test_every_chunk_url_is_within_the_budget_and_exactly_as_computed() -> None:
    """The incremental count equals the encoded URL, and no chunk is over the budget."""
    ids = conversation_ids(500, longest=True)
    chunks = url_chunks(ids, quote_soql_value, soql, prefix_bytes=PREFIX)
    assert [i for chunk in chunks for i in chunk] == ids
    assert all(url_bytes(chunk) <= MAX_QUERY_URL_BYTES for chunk in chunks)
    assert url_bytes(chunks[0] + [chunks[1][0]]) > MAX_QUERY_URL_BYTES


def test_chunks_are_cut_by_bytes_not_by_count() -> None:
    """450 UUIDs take two lookups (not three of 200): only the URL's length counts."""
    ids = conversation_ids(450)
    chunks = url_chunks(ids, quote_soql_value, soql, prefix_bytes=PREFIX)
    assert len(chunks) == 2 and len(chunks[0]) > COLLECTION_MAX


def test_characters_soql_escapes_are_counted_as_sent() -> None:
    """Quotes and backslashes grow when escaped and encoded: the budget still holds."""
    ids = [f"o'brien\\{i}" * 9 for i in range(300)]
    chunks = url_chunks(ids, quote_soql_value, soql, prefix_bytes=PREFIX, budget=4000)
    assert all(url_bytes(chunk) <= 4000 for chunk in chunks)


def test_halves_keep_order_and_every_item() -> None:
    """Splitting a refused request: the first half is the larger."""
    assert halves([1, 2, 3, 4, 5]) == ([1, 2, 3], [4, 5])
    assert halves([1]) == ([1], [])
