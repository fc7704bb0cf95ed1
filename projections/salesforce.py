"""Writing call records to Salesforce through simple-salesforce: batched and idempotent.

Per chunk of at most 200 records (one sObject Collections request each way):

- Task (no External ID possible): one query finds the Tasks already written for the chunk's
  conversations (``SELECT Id, CallObject FROM Task WHERE CallObject IN (...)``); the new ones
  are created with ``POST composite/sobjects``, the others updated with ``PATCH`` by Id. Writing
  a record twice updates the same Task: no duplicate. (One writer per conversation at a time is
  the caller's job: two concurrent creates would make two Tasks.)
- An object with an External ID field: ``PATCH composite/sobjects/{Obj}/{Field}`` upserts.

So a chunk costs at most 3 requests (query, create, update), whatever its size. Outcomes are
per conversation: ``Done``; ``Retry`` for what may pass later (timeouts, 5xx,
``UNABLE_TO_LOCK_ROW``, ``SERVER_UNAVAILABLE``, an expired session, the daily limit);
``Reject`` with Salesforce's error for what never will. simple-salesforce is synchronous: each
chunk runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)

from projections.calls import CallRecord
from projections.task_mapping import TaskMapping, task_fields
from projections.worker import Done, Outcome, Reject, Retry

log = logging.getLogger("projections.salesforce")

CHUNK: Final = 200
TRANSIENT_CODES: Final = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "INVALID_SESSION_ID"}
)


def soql_string(value: str) -> str:
    """A SOQL string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _error_text(errors: Sequence[dict[str, Any]]) -> str:
    return "; ".join(
        f"{e.get('statusCode') or e.get('errorCode')}: {e.get('message')}" for e in errors
    )


def _outcome(result: dict[str, Any]) -> Outcome:
    if result.get("success"):
        return Done()
    errors = result.get("errors") or []
    codes = {e.get("statusCode") for e in errors}
    if codes & TRANSIENT_CODES:
        return Retry(_error_text(errors))
    return Reject(_error_text(errors))


def _request_failure(error: Exception) -> Outcome:
    """What a whole failed request means for each of its records."""
    if isinstance(error, SalesforceError):
        content: list[Any] = error.content if isinstance(error.content, list) else []
        codes = {e.get("errorCode") for e in content if isinstance(e, dict)}
        text = _error_text(content) or str(error)
        transient = (
            isinstance(error, SalesforceExpiredSession)
            or (isinstance(error, SalesforceGeneralError) and error.status >= 500)
            or (isinstance(error, SalesforceRefusedRequest) and bool(codes & TRANSIENT_CODES))
            or bool(codes & TRANSIENT_CODES)
        )
        return Retry(text) if transient else Reject(text)
    return Retry(f"{type(error).__name__}: {error}")


class SalesforceSink:
    """Writes call records as one activity each, idempotently, in batches."""

    def __init__(self, sf: Salesforce, mapping: TaskMapping) -> None:
        self._sf = sf
        self._mapping = mapping
        self.requests = 0
        """Salesforce requests made (for the benchmark's requests per 1,000 calls)."""

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) of the org's daily API requests, as last reported."""
        usage = self._sf.api_usage.get("api-usage")
        return (usage.used, usage.total) if usage is not None else None

    async def write(self, records: Sequence[CallRecord]) -> dict[str, Outcome]:
        """Write every record; the outcome of each, by conversation id."""
        outcomes: dict[str, Outcome] = {}
        for start in range(0, len(records), CHUNK):
            chunk = list(records[start : start + CHUNK])
            outcomes |= await asyncio.to_thread(self._write_chunk, chunk)
        return outcomes

    def _write_chunk(self, records: list[CallRecord]) -> dict[str, Outcome]:
        try:
            if self._mapping.external_id:
                return self._upsert(records)
            existing = self._existing(records)
            outcomes = self._create([r for r in records if r.conversationId not in existing])
            outcomes |= self._update(
                [(existing[r.conversationId], r) for r in records if r.conversationId in existing]
            )
            return outcomes
        except (SalesforceError, requests.RequestException) as error:
            outcome = _request_failure(error)
            log.warning(
                "event=salesforce_request_failed records=%d outcome=%s error=%r",
                len(records),
                type(outcome).__name__,
                str(error)[:300],
            )
            return {r.conversationId: outcome for r in records}

    def _restful(self, path: str, method: str, body: Any = None) -> Any:
        self.requests += 1
        return self._sf.restful(path, method=method, json=body, timeout=30)

    def _existing(self, records: list[CallRecord]) -> dict[str, str]:
        field = self._mapping.match_field
        keys = ", ".join(soql_string(r.conversationId) for r in records)
        self.requests += 1
        result = self._sf.query(
            f"SELECT Id, {field} FROM {self._mapping.object} WHERE {field} IN ({keys})"
        )
        return {row[field]: row["Id"] for row in result["records"]}

    def _records(self, records: list[CallRecord], *, creating: bool) -> list[dict[str, Any]]:
        return [
            {
                "attributes": {"type": self._mapping.object},
                **task_fields(r, self._mapping, creating=creating),
            }
            for r in records
        ]

    def _create(self, records: list[CallRecord]) -> dict[str, Outcome]:
        if not records:
            return {}
        results = self._restful(
            "composite/sobjects",
            "POST",
            {"allOrNone": False, "records": self._records(records, creating=True)},
        )
        return {r.conversationId: _outcome(res) for r, res in zip(records, results, strict=True)}

    def _update(self, pairs: list[tuple[str, CallRecord]]) -> dict[str, Outcome]:
        if not pairs:
            return {}
        body = self._records([r for _, r in pairs], creating=False)
        for (record_id, _), record in zip(pairs, body, strict=True):
            record["Id"] = record_id
        results = self._restful(
            "composite/sobjects", "PATCH", {"allOrNone": False, "records": body}
        )
        return {r.conversationId: _outcome(res) for (_, r), res in zip(pairs, results, strict=True)}

    def _upsert(self, records: list[CallRecord]) -> dict[str, Outcome]:
        path = f"composite/sobjects/{self._mapping.object}/{self._mapping.match_field}"
        results = self._restful(
            path, "PATCH", {"allOrNone": False, "records": self._records(records, creating=True)}
        )
        return {r.conversationId: _outcome(res) for r, res in zip(records, results, strict=True)}
