"""Finding callers in the org: one SOSL phone search per batch of new numbers, cached.

The matching itself is pure (``callers.py``); this is the I/O around it. A search the org
refuses for good links nobody and is logged: it must not stop call logging. An answer of
SOSL's 2,000 rows may have been cut short, so the batch is split and searched again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from projections.salesforce.callers import (
    SEARCH_MAX_ROWS,
    CallerCache,
    match_caller,
    phone_search,
    search_batches,
)
from projections.salesforce.chunks import halves
from projections.salesforce.org_client import REQUEST_TIMEOUT, OrgClient, transient
from relay.privacy.sealing import mask_numbers

log = logging.getLogger(__name__)


class CallerSearch:
    """The Contact or Lead of each caller's number, searched once and cached."""

    def __init__(self, org: OrgClient) -> None:
        self._org = org
        self._cache = CallerCache()

    def who(self, numbers: Mapping[str, str]) -> dict[str, str]:
        """The matched record id by key of ``numbers`` (key → phone number), where one matched."""
        now = time.monotonic()
        unknown = sorted({n for n in numbers.values() if not self._cache.get(n, now)[0]})
        for batch in search_batches(unknown):
            self._search(batch, now)
        found = {key: self._cache.get(n, now)[1] for key, n in numbers.items()}
        return {key: record for key, record in found.items() if record is not None}

    def forget(self, number: str) -> None:
        """The record found for ``number`` is gone (merged, deleted): search again next time."""
        self._cache.forget(number)

    def _search(self, numbers: list[str], now: float) -> None:
        sosl = phone_search(numbers)
        found: list[dict[str, Any]] = []
        if sosl is not None:
            try:
                answer = self._org.call(
                    "search",
                    lambda sf: sf.restful("search/", params={"q": sosl}, timeout=REQUEST_TIMEOUT),
                )
            except SalesforceError as error:
                if transient(error) or isinstance(error, SalesforceExpiredSession):
                    raise
                log.warning("event=caller_search_refused error=%r", mask_numbers(str(error))[:300])
                return
            found = (answer or {}).get("searchRecords", [])
            if len(found) >= SEARCH_MAX_ROWS and len(numbers) > 1:
                first, second = halves(numbers)
                self._search(first, now)
                self._search(second, now)
                return
        for number in numbers:
            self._cache.put(number, match_caller(number, found), now)
