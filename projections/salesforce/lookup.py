"""What the sink reads from the org before it writes: the records it already holds for a batch
of calls (one ``queryAll`` per URL's worth of conversation ids, ``chunks.py``, which also sees
Tasks archived after a year; a lookup the org refuses as too long is halved, a sizing error
being never a record's fault), and the org's Task status values (TaskStatus)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.format import quote_soql_value

from projections.calls.fold import CallRecord
from projections.salesforce.chunks import halves, in_list_query, url_chunks
from projections.salesforce.org_client import OrgClient, too_long, transient
from projections.salesforce.task_mapping import TaskMapping, TaskStatuses, choose_statuses

log = logging.getLogger(__name__)

STATUS_REFRESH: Final = 600.0
"""How long the org's Task status values are used before they are read again (seconds)."""
STATUS_QUERY: Final = "SELECT ApiName, IsClosed, IsDefault, SortOrder FROM TaskStatus"


class RecordLookup:
    """The org's rows for call records, by conversation id, by the mapping's lookup field."""

    def __init__(self, org: OrgClient, mapping: TaskMapping, query_url_bytes: int) -> None:
        self._org = org
        self._mapping = mapping
        self._query_url_bytes = query_url_bytes

    def rows(self, records: list[CallRecord], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``Id`` and ``fields`` of the rows for ``records`` (deleted ones aside)."""
        if not records:
            return {}
        match = self._mapping.lookup_field
        columns = list(dict.fromkeys(["Id", match, "IsDeleted", *fields]))

        def soql(literals: Sequence[str]) -> str:
            return in_list_query(columns, self._mapping.object, match, literals)

        def literal(record: CallRecord) -> str:
            return str(quote_soql_value(record.conversationId))

        found: dict[str, dict[str, Any]] = {}
        prefix = self._org.query_url_prefix_bytes()
        for chunk in url_chunks(
            records, literal, soql, prefix_bytes=prefix, budget=self._query_url_bytes
        ):
            found |= self._chunk([literal(r) for r in chunk], soql)
        return found

    def _chunk(
        self, literals: list[str], soql: Callable[[Sequence[str]], str]
    ) -> dict[str, dict[str, Any]]:
        try:
            rows = self._org.query_all_rows(soql(literals))
        except SalesforceError as error:
            if not too_long(error) or len(literals) == 1:
                raise
            first, second = halves(literals)
            return self._chunk(first, soql) | self._chunk(second, soql)
        match = self._mapping.lookup_field
        return {
            row[match]: {k: v for k, v in row.items() if k not in ("attributes", "IsDeleted")}
            for row in rows
            if not row.get("IsDeleted")
        }


class TaskStatusCache:
    """The Task ``Status`` values the org has for open and closed calls, read every
    :data:`STATUS_REFRESH` (one query)."""

    def __init__(self, org: OrgClient) -> None:
        self._org = org
        self._value: TaskStatuses | None = None
        self._read_at = 0.0

    def get(self) -> TaskStatuses:
        """The statuses to write; the vanilla ones when the org will not say (logged once a
        refresh). Raises what a request fails with while the org takes no work."""
        now = time.monotonic()
        if self._value is not None and now - self._read_at < STATUS_REFRESH:
            return self._value
        try:
            rows = self._org.query_all_rows(STATUS_QUERY)
        except SalesforceError as error:
            if transient(error):
                raise
            log.warning("event=task_statuses_unreadable error=%r", str(error)[:300])
            rows = []
        chosen = choose_statuses(rows)
        if chosen != self._value:
            log.info("event=task_statuses open=%r closed=%r", chosen.open, chosen.closed)
        self._value, self._read_at = chosen, now
        return chosen
