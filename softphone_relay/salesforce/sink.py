"""Writing call records to Salesforce through simple-salesforce: batched and idempotent.

Per chunk of at most 200 records (one sObject Collections request each way):

- Task (no External ID possible): one query finds the Tasks already written for the chunk's
  conversations (``SELECT Id, CallObject FROM Task WHERE CallObject IN (...)``); one phone
  search links new Tasks to their caller (``WhoId``, see ``callers.py``; cached, so repeat
  callers cost nothing); the new ones are created with ``POST composite/sobjects``, the others
  updated with ``PATCH`` by Id. Writing a record twice updates the same Task: no duplicate.
  (One writer per conversation at a time is the caller's job: two concurrent creates would
  make two Tasks.)
- An object with an External ID field: ``PATCH composite/sobjects/{Obj}/{Field}`` upserts.

Every request goes through :meth:`SalesforceSink._call`: it waits as the org nears its daily
limit (``limits.py``), logs in again once when the session expired, and retries timeouts,
5xx, ``UNABLE_TO_LOCK_ROW`` and ``SERVER_UNAVAILABLE`` a few times with exponential backoff and
jitter. Outcomes are per conversation:

- ``Done``; ``Reject`` with Salesforce's error for what never will pass (a record refused);
- ``Retry`` for a record Salesforce could not take this time (a row lock): it counts as an
  attempt, and too many attempts dead-letter it;
- ``Pause`` when Salesforce is not taking work at all (down, out of API budget, or our login is
  refused): no record is at fault, so no attempt is counted and the worker waits.

simple-salesforce is synchronous: each chunk runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
)
from simple_salesforce.format import quote_soql_value

from softphone_relay.projections.calls.fold import CallRecord
from softphone_relay.projections.outcomes import Done, Outcome, Pause, Reject, Retry
from softphone_relay.relay.backoff import Backoff
from softphone_relay.salesforce.callers import (
    MAX_NUMBERS_PER_SEARCH,
    CallerCache,
    match_caller,
    phone_search,
)
from softphone_relay.salesforce.connect import SalesforceConnection
from softphone_relay.salesforce.errors import SalesforceLoginFailed
from softphone_relay.salesforce.limits import request_delay
from softphone_relay.salesforce.metrics import SalesforceMetrics
from softphone_relay.salesforce.task_mapping import TaskMapping, task_fields

log = logging.getLogger(__name__)

CHUNK: Final = 200
REQUEST_TIMEOUT: Final = 30.0
TRANSIENT_CODES: Final = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
LIMIT_CODE: Final = "REQUEST_LIMIT_EXCEEDED"

T = TypeVar("T")


def _error_text(errors: Sequence[dict[str, Any]]) -> str:
    return "; ".join(
        f"{e.get('statusCode') or e.get('errorCode')}: {e.get('message')}" for e in errors
    )


def _codes(error: SalesforceError) -> set[str]:
    content: list[Any] = error.content if isinstance(error.content, list) else []
    return {str(e.get("errorCode")) for e in content if isinstance(e, dict) and e.get("errorCode")}


def _error_code(error: Exception) -> str:
    """A short label of a failed request, for metrics and logs."""
    if isinstance(error, SalesforceError):
        codes = sorted(_codes(error))
        return codes[0] if codes else f"HTTP_{error.status}"
    return type(error).__name__


def _transient(error: Exception) -> bool:
    """A failure that may pass if the same request is made again shortly."""
    if isinstance(error, requests.RequestException):
        return True
    if isinstance(error, SalesforceGeneralError) and error.status >= 500:
        return True
    return isinstance(error, SalesforceError) and bool(_codes(error) & TRANSIENT_CODES)


def _outcome(result: dict[str, Any]) -> Outcome:
    """The outcome of one record's result in a collection response."""
    if result.get("success"):
        return Done()
    errors = result.get("errors") or []
    if {e.get("statusCode") for e in errors} & TRANSIENT_CODES:
        return Retry(_error_text(errors))
    return Reject(_error_text(errors))


class _Paused(Exception):
    """The org's API budget ran out: no request is made until the pause ends."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"{LIMIT_CODE}: the org's daily API limit is used up")
        self.seconds = seconds


class SalesforceSink:
    """Writes call records as one activity each, idempotently, in batches."""

    def __init__(
        self,
        connection: SalesforceConnection,
        mapping: TaskMapping,
        *,
        metrics: SalesforceMetrics | None = None,
        attempts: int = 3,
        retry_base: float = 0.5,
    ) -> None:
        self._connection = connection
        self._mapping = mapping
        self._policy = connection.settings.limits
        self.metrics = metrics or SalesforceMetrics()
        self._attempts = attempts
        self._retry_base = retry_base
        self._outage = Backoff(base=1.0, cap=60.0)
        self._callers = CallerCache()
        self._state = threading.Lock()
        self._paused_until = 0.0
        self._usage: tuple[int, int] | None = None
        self.requests = 0
        """Salesforce requests made (for the benchmark's requests per 1,000 calls)."""

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) of the org's daily API requests, as last reported."""
        return self._usage

    async def write(
        self, records: Sequence[CallRecord], *, known: Mapping[str, str] | None = None
    ) -> dict[str, Outcome]:
        """Write every record; the outcome of each, by conversation id.

        ``known`` (conversation id → record Id, as :meth:`current` found them) spares the
        query for what is already there: every record not in it is created.
        """
        outcomes: dict[str, Outcome] = {}
        for start in range(0, len(records), CHUNK):
            chunk = list(records[start : start + CHUNK])
            outcomes |= await asyncio.to_thread(self._write_chunk, chunk, known)
        for outcome in outcomes.values():
            self.metrics.records.labels(type(outcome).__name__.lower()).inc()
        return outcomes

    async def current(
        self, records: Sequence[CallRecord], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """What the org holds for these records: ``Id`` and ``fields``, by conversation id."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(records), CHUNK):
            chunk = list(records[start : start + CHUNK])
            found |= await asyncio.to_thread(self._select, chunk, fields)
        return found

    def _select(
        self, records: list[CallRecord], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        match = self._mapping.match_field
        columns = ", ".join(dict.fromkeys(["Id", match, *fields]))
        keys = ", ".join(quote_soql_value(r.conversationId) for r in records)
        soql = f"SELECT {columns} FROM {self._mapping.object} WHERE {match} IN ({keys})"
        result = self._call("query", lambda sf: sf.query_all(soql, timeout=REQUEST_TIMEOUT))
        return {
            row[match]: {k: v for k, v in row.items() if k != "attributes"}
            for row in result["records"]
        }

    def _write_chunk(
        self, records: list[CallRecord], known: Mapping[str, str] | None = None
    ) -> dict[str, Outcome]:
        try:
            if self._mapping.external_id:
                outcomes = self._upsert(records)
            else:
                existing = dict(known) if known is not None else self._existing(records)
                new = [r for r in records if r.conversationId not in existing]
                outcomes = self._create(new, self._callers_of(new))
                outcomes |= self._update(
                    [
                        (existing[r.conversationId], r)
                        for r in records
                        if r.conversationId in existing
                    ]
                )
        except (
            SalesforceError,
            requests.RequestException,
            SalesforceLoginFailed,
            _Paused,
        ) as error:
            outcome = self._request_failure(error)
            log.warning(
                "event=salesforce_request_failed records=%d outcome=%s error=%r",
                len(records),
                type(outcome).__name__,
                str(error)[:300],
            )
            return {r.conversationId: outcome for r in records}
        self._outage.success()
        return outcomes

    def _request_failure(self, error: Exception) -> Outcome:
        """What a request that failed for good means for each record it carried."""
        if isinstance(error, _Paused):
            return Pause(str(error), error.seconds)
        if isinstance(error, SalesforceLoginFailed) or _transient(error):
            return Pause(f"{_error_code(error)}: {error}"[:500], self._outage.failure())
        if isinstance(error, SalesforceError):
            content: list[Any] = error.content if isinstance(error.content, list) else []
            return Reject(_error_text(content) or str(error))
        return Reject(str(error))

    def _call(self, operation: str, action: Callable[[Salesforce], T]) -> T:
        """One request: paced by the API budget, logged in again once, transient errors retried."""
        backoff = Backoff(base=self._retry_base, cap=8.0)
        attempt, relogged = 1, False
        while True:
            self._wait_for_budget()
            client = self._connection.client()
            self.requests += 1
            self.metrics.requests.labels(operation).inc()
            try:
                result = action(client)
            except (SalesforceError, requests.RequestException) as error:
                code = _error_code(error)
                self.metrics.errors.labels(code).inc()
                if isinstance(error, SalesforceExpiredSession) and not relogged:
                    log.info("event=salesforce_relogin flow=%r", self._connection.flow)
                    self._connection.relogin(client)
                    self.metrics.logins.inc()
                    relogged = True
                    continue
                if code == LIMIT_CODE:
                    with self._state:
                        self._paused_until = time.monotonic() + self._policy.pause_seconds
                    raise _Paused(self._policy.pause_seconds) from error
                if not _transient(error) or attempt >= self._attempts:
                    raise
                delay = backoff.failure()
                log.info(
                    "event=salesforce_retry operation=%s attempt=%d code=%s retry_in=%.2fs",
                    operation,
                    attempt,
                    code,
                    delay,
                )
                attempt += 1
                time.sleep(delay)
                continue
            self._observe_usage(client)
            return result

    def _wait_for_budget(self) -> None:
        with self._state:
            paused = self._paused_until - time.monotonic()
            usage = self._usage
        if paused > 0:
            raise _Paused(paused)
        delay = request_delay(self._policy, *usage) if usage else 0.0
        self.metrics.request_delay.set(delay)
        if delay > 0:
            time.sleep(delay)

    def _observe_usage(self, client: Salesforce) -> None:
        usage = client.api_usage.get("api-usage")
        if usage is None:
            return
        with self._state:
            self._usage = (int(usage.used), int(usage.total))
        self.metrics.api_used.set(usage.used)
        self.metrics.api_max.set(usage.total)

    def _restful(self, operation: str, path: str, method: str, body: Any = None) -> Any:
        return self._call(
            operation,
            lambda sf: sf.restful(path, method=method, json=body, timeout=REQUEST_TIMEOUT),
        )

    def _existing(self, records: list[CallRecord]) -> dict[str, str]:
        field = self._mapping.match_field
        keys = ", ".join(quote_soql_value(r.conversationId) for r in records)
        soql = f"SELECT Id, {field} FROM {self._mapping.object} WHERE {field} IN ({keys})"
        result = self._call("query", lambda sf: sf.query(soql, timeout=REQUEST_TIMEOUT))
        return {row[field]: row["Id"] for row in result["records"]}

    def _callers_of(self, records: list[CallRecord]) -> dict[str, str]:
        """``WhoId`` by conversation id, for the new Tasks whose caller is known."""
        if self._mapping.object != "Task" or not self._mapping.match_callers:
            return {}
        numbers = {r.conversationId: n for r in records if (n := _number_of(r))}
        now = time.monotonic()
        unknown = sorted({n for n in numbers.values() if not self._callers.get(n, now)[0]})
        for start in range(0, len(unknown), MAX_NUMBERS_PER_SEARCH):
            self._search(unknown[start : start + MAX_NUMBERS_PER_SEARCH], now)
        who = {c: self._callers.get(n, now)[1] for c, n in numbers.items()}
        return {c: w for c, w in who.items() if w is not None}

    def _search(self, numbers: list[str], now: float) -> None:
        sosl = phone_search(numbers)
        found: list[dict[str, Any]] = []
        if sosl is not None:
            try:
                answer = self._call(
                    "search",
                    lambda sf: sf.restful("search/", params={"q": sosl}, timeout=REQUEST_TIMEOUT),
                )
            except SalesforceError as error:
                if _transient(error) or isinstance(error, SalesforceExpiredSession):
                    raise
                # A search the org refuses must not stop call logging: log it, link nobody.
                log.warning("event=caller_search_refused error=%r", str(error)[:300])
                return
            found = (answer or {}).get("searchRecords", [])
        for number in numbers:
            self._callers.put(number, match_caller(number, found), now)

    def _records(
        self, records: list[CallRecord], *, creating: bool, who: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        body = []
        for r in records:
            fields = task_fields(r, self._mapping, creating=creating)
            if who and r.conversationId in who:
                fields["WhoId"] = who[r.conversationId]
            body.append({"attributes": {"type": self._mapping.object}, **fields})
        return body

    def _create(self, records: list[CallRecord], who: dict[str, str]) -> dict[str, Outcome]:
        if not records:
            return {}
        results = self._restful(
            "create",
            "composite/sobjects",
            "POST",
            {"allOrNone": False, "records": self._records(records, creating=True, who=who)},
        )
        return {r.conversationId: _outcome(res) for r, res in zip(records, results, strict=True)}

    def _update(self, pairs: list[tuple[str, CallRecord]]) -> dict[str, Outcome]:
        if not pairs:
            return {}
        body = self._records([r for _, r in pairs], creating=False)
        for (record_id, _), record in zip(pairs, body, strict=True):
            record["Id"] = record_id
        results = self._restful(
            "update", "composite/sobjects", "PATCH", {"allOrNone": False, "records": body}
        )
        return {r.conversationId: _outcome(res) for (_, r), res in zip(pairs, results, strict=True)}

    def _upsert(self, records: list[CallRecord]) -> dict[str, Outcome]:
        path = f"composite/sobjects/{self._mapping.object}/{self._mapping.match_field}"
        results = self._restful(
            "upsert",
            path,
            "PATCH",
            {"allOrNone": False, "records": self._records(records, creating=True)},
        )
        return {r.conversationId: _outcome(res) for r, res in zip(records, results, strict=True)}


def _number_of(record: CallRecord) -> str | None:
    """The other party's number: the caller's inbound, the dialled one outbound."""
    return record.dialledNumber if record.direction == "outbound" else record.callerNumber
