"""How many records go into one request, by bytes where the request is a URL. Pure.

A collection write carries at most 200 records. A lookup query (``... WHERE CallObject IN
('id', ...)``) travels in the URL of a GET, and a real org refuses a request line plus
headers over 16,384 bytes with 414 or 431 (help article 000386264): 200 conversation ids of
the contract's 128 characters take 27.7 KB. So lookups are chunked by the encoded length of
their URL, kept to :data:`MAX_QUERY_URL_BYTES` whatever the ids, which leaves room for the
headers (the session id is about 112 bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, TypeVar
from urllib.parse import quote_plus

COLLECTION_MAX: Final = 200
"""Records per sObject Collections request (Salesforce's limit)."""
MAX_QUERY_URL_BYTES: Final = 12_000
"""The longest lookup URL we send (Salesforce refuses URI plus headers over 16,384 bytes)."""
_SEPARATOR: Final = ", "

T = TypeVar("T")


def in_list_query(columns: Sequence[str], sobject: str, field: str, literals: Sequence[str]) -> str:
    """``SELECT columns FROM sobject WHERE field IN (literals)``; the literals are quoted SOQL
    strings already (``simple_salesforce.format.quote_soql_value``)."""
    listed = _SEPARATOR.join(literals)
    return f"SELECT {', '.join(columns)} FROM {sobject} WHERE {field} IN ({listed})"


def url_chunks(
    items: Sequence[T],
    literal: Callable[[T], str],
    query: Callable[[Sequence[str]], str],
    *,
    prefix_bytes: int,
    budget: int = MAX_QUERY_URL_BYTES,
) -> list[list[T]]:
    """``items`` in order, cut so that each chunk's ``query`` URL (``prefix_bytes`` of
    instance, path and ``?q=``, then the form-encoded SOQL with each item's quoted
    ``literal`` in the IN list) stays within ``budget``: short ids make few lookups for a
    large batch (a lookup has no count limit of its own; its rows are paged). An item too
    long for a chunk of its own still gets one (the org then answers 414, which the caller
    treats as a sizing error)."""
    base = prefix_bytes + len(quote_plus(query([])))
    separator = len(quote_plus(_SEPARATOR))
    chunks: list[list[T]] = []
    current: list[T] = []
    size = base
    for item in items:
        cost = len(quote_plus(literal(item)))
        added = cost + (separator if current else 0)
        if current and size + added > budget:
            chunks.append(current)
            current, size, added = [], base, cost
        current.append(item)
        size += added
    if current:
        chunks.append(current)
    return chunks


def halves(items: Sequence[T]) -> tuple[list[T], list[T]]:
    """``items`` cut in two (the first half the larger), to isolate a request's failure."""
    middle = (len(items) + 1) // 2
    return list(items[:middle]), list(items[middle:])
