"""Writing call records to Salesforce through simple-salesforce: batched, exactly one each.

Per batch:

- Task (no External ID possible): a lookup finds the Tasks already written for the batch's
  conversations (``SELECT Id, CallObject, IsDeleted FROM Task WHERE CallObject IN (...)``
  through ``queryAll``, which also sees Tasks archived after a year; split only by URL bytes,
  ``chunks.py``); a phone search links new Tasks to their caller (``WhoId``, see
  ``callers.py``; packed by search length and cached, so repeat callers cost nothing); the new
  ones are created with ``POST composite/sobjects``, the others updated with ``PATCH`` by Id,
  200 a request. Writing a record twice updates the same Task. (One writer per conversation
  at a time is the caller's job.)
- An object with an External ID field: ``PATCH composite/sobjects/{Obj}/{Field}`` upserts,
  200 a request.

A create is never sent twice blindly: when its answer is lost (a timeout, a dropped
connection, a 5xx), the org may have committed it, or may still commit it. With the kit's
key field the create is sent again and the org refuses what committed as a duplicate;
without it the sink looks those conversations up, and what is still missing waits
(``doubts.py``): looked up again every 30 s, created only once the first request can no
longer commit. Every other request is idempotent and is tried again in place
(``org_client.py``).

Outcomes are per conversation:

- ``Done``; ``Reject`` with Salesforce's error for what never will pass (a record refused;
  when the org refuses a whole request as malformed, the chunk is split to find the records
  at fault, so one bad record costs no other);
- ``Retry`` for a record Salesforce could not take this time (a row lock, bare or raised in a
  trigger), and for a request that timed out again and again (a slow lookup on a large Task
  table): it counts as an attempt, and too many attempts dead-letter it;
- ``Wait`` for a call whose create went unanswered and may still commit (no attempt counted);
- ``Pause`` when Salesforce is not taking work at all (down, out of API budget, too many
  concurrent requests, or our login is refused): no record is at fault, so no attempt is
  counted and the worker waits.

A ``WhoId`` the org refuses as deleted or merged is dropped from the cache and the Task is
created without it. simple-salesforce is synchronous: each chunk runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import msgspec
import requests
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceMalformedRequest,
)

from projections.calls.fold import CallRecord
from projections.outcomes import Done, Outcome, Pause, Reject, Retry, Wait
from projections.salesforce.caller_search import CallerSearch
from projections.salesforce.chunks import (
    COLLECTION_MAX,
    MAX_QUERY_URL_BYTES,
    halves,
)
from projections.salesforce.connect import SalesforceConnection
from projections.salesforce.doubts import Step, UnansweredCreates
from projections.salesforce.errors import SalesforceLoginFailed
from projections.salesforce.failures import (
    error_text,
    is_duplicate_key,
    is_no_access,
    is_stale_reference,
    is_unusable_owner,
    org_errors,
    record_outcome,
)
from projections.salesforce.lookup import RecordLookup, TaskStatusCache
from projections.salesforce.metrics import SalesforceMetrics
from projections.salesforce.org_client import (
    REQUEST_TIMEOUT,
    OrgClient,
    OrgPaused,
    error_code,
    errors_of,
    outcome_unknown,
    refused_as_concurrent,
    transient,
)
from projections.salesforce.task_mapping import VANILLA_STATUSES, TaskMapping, task_fields
from projections.salesforce.visibility import VisibilityProbe
from relay.backoff import Backoff

log = logging.getLogger(__name__)

FAILURES: Final = (SalesforceError, requests.RequestException, SalesforceLoginFailed, OrgPaused)
"""What a request can fail with for good (after ``OrgClient``'s own retries)."""

ISOLATION_REQUESTS: Final = 20
"""Extra requests one chunk may spend splitting a request the org refused as malformed
(enough to find one bad record among 200; past it, what is left is rejected together)."""

T = TypeVar("T")


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
        query_url_bytes: int = MAX_QUERY_URL_BYTES,
        doubts: UnansweredCreates | None = None,
    ) -> None:
        """``query_url_bytes`` bounds a lookup's URL (tests raise it to meet the org's 414);
        ``doubts`` holds the unanswered creates (tests shorten its window)."""
        self._org = OrgClient(
            connection, metrics or SalesforceMetrics(), attempts=attempts, retry_base=retry_base
        )
        self._mapping = mapping
        self._lookup = RecordLookup(self._org, mapping, query_url_bytes)
        self._statuses = TaskStatusCache(self._org)
        self._visibility = VisibilityProbe(self._org)
        self._attempts = attempts
        self._retry_base = retry_base
        self._outage = Backoff(base=1.0, cap=60.0)
        self._callers = CallerSearch(self._org)
        self._doubts = doubts if doubts is not None else UnansweredCreates()

    @property
    def metrics(self) -> SalesforceMetrics:
        """The sink's Salesforce metrics."""
        return self._org.metrics

    @property
    def requests(self) -> int:
        """Salesforce requests made (for the benchmark's requests per 1,000 calls)."""
        return self._org.requests

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) of the org's daily API requests, as last reported."""
        return self._org.api_usage

    async def write(
        self, records: Sequence[CallRecord], *, known: Mapping[str, str] | None = None
    ) -> dict[str, Outcome]:
        """Write every record; the outcome of each, by conversation id.

        ``known`` (conversation id → record Id, as :meth:`current` found them) spares the
        lookup for what is already there: every record not in it is created.
        """
        outcomes = await asyncio.to_thread(self._write_all, list(records), known)
        for outcome in outcomes.values():
            self.metrics.records.labels(type(outcome).__name__.lower()).inc()
        return outcomes

    async def current(
        self, records: Sequence[CallRecord], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """What the org holds for these records: ``Id`` and ``fields``, by conversation id."""
        return await asyncio.to_thread(self._lookup.rows, list(records), fields)

    def _write_all(
        self, records: list[CallRecord], known: Mapping[str, str] | None
    ) -> dict[str, Outcome]:
        """The whole batch: for Tasks, one lookup and one caller search for all of it (each
        split only by what a request can carry), then creates and updates by the 200."""
        if self._mapping.external_id:
            return self._by_collection(
                records, lambda chunk: self._isolating(chunk, self._upsert, _itself), _itself
            )
        if any(r.ownerId for r in records):
            self._visibility.check()
        now = time.monotonic()
        steps = {r.conversationId: self._doubts.step(r.conversationId, now) for r in records}
        held = [r.conversationId for r in records if steps[r.conversationId] is Step.WAIT]
        records = [r for r in records if steps[r.conversationId] is not Step.WAIT]
        try:
            if known is None:
                existing = {c: str(row["Id"]) for c, row in self._lookup.rows(records, ()).items()}
            else:
                existing = dict(known)
            new = [r for r in records if r.conversationId not in existing]
            held += [r.conversationId for r in new if steps[r.conversationId] is Step.LOOK]
            new = [r for r in new if steps[r.conversationId] is not Step.LOOK]
            who = self._callers_of(new)
        except FAILURES as error:
            return self._failed(records, error) | self._waiting(held)
        for conversation in existing:
            self._doubts.forget(conversation)
        pairs = [(existing[r.conversationId], r) for r in records if r.conversationId in existing]
        return (
            self._waiting(held)
            | self._by_collection(new, lambda chunk: self._create_missing(chunk, who), _itself)
            | self._by_collection(
                pairs, lambda chunk: self._isolating(chunk, self._update, _record_of), _record_of
            )
        )

    def _waiting(self, conversations: list[str]) -> dict[str, Outcome]:
        """Calls whose unanswered create may still commit: they wait."""
        now = time.monotonic()
        return {
            c: Wait(
                "a create went unanswered and may still commit: looked up again until it can "
                "no longer commit, created then if still missing",
                self._doubts.remaining(c, now),
            )
            for c in conversations
        }

    def _by_collection(
        self,
        items: list[T],
        write: Callable[[list[T]], dict[str, Outcome]],
        record: Callable[[T], CallRecord],
    ) -> dict[str, Outcome]:
        """``write`` for each collection's worth (200) of ``items``; a request that fails
        for good gives its records the outcome the failure means."""
        outcomes: dict[str, Outcome] = {}
        for start in range(0, len(items), COLLECTION_MAX):
            chunk = items[start : start + COLLECTION_MAX]
            try:
                outcomes |= write(chunk)
            except FAILURES as error:
                outcomes |= self._failed([record(item) for item in chunk], error)
            else:
                self._outage.success()
        return outcomes

    def _failed(self, records: list[CallRecord], error: Exception) -> dict[str, Outcome]:
        outcome = self._request_failure(error)
        log.warning(
            "event=salesforce_request_failed records=%d outcome=%s error=%r",
            len(records),
            type(outcome).__name__,
            str(error)[:300],
        )
        return {r.conversationId: outcome for r in records}

    def _create_missing(
        self, records: list[CallRecord], who: Mapping[str, str]
    ) -> dict[str, Outcome]:
        """Create the records. After a create whose answer was lost, with the key field the
        create is sent again (what committed is refused as a duplicate, then updated); without
        it, what the org committed is done and the rest waits (``doubts.py``)."""
        backoff = Backoff(base=self._retry_base, cap=8.0)
        attempt = 1
        while True:
            sent_at = time.monotonic()
            try:
                return self._isolating(records, lambda part: self._create(part, who), _itself)
            except (SalesforceError, requests.RequestException) as error:
                if not outcome_unknown(error) or attempt >= self._attempts:
                    raise
                log.info(
                    "event=salesforce_create_unanswered records=%d code=%s",
                    len(records),
                    error_code(error),
                )
            time.sleep(backoff.failure())
            attempt += 1
            if self._mapping.key_field is None:
                committed = self._lookup.rows(records, ())
                missing = [r.conversationId for r in records if r.conversationId not in committed]
                for conversation in missing:
                    self._doubts.note(conversation, sent_at, time.monotonic())
                return {c: Done() for c in committed} | self._waiting(missing)

    def _isolating(
        self,
        items: list[T],
        write: Callable[[list[T]], dict[str, Outcome]],
        record: Callable[[T], CallRecord],
    ) -> dict[str, Outcome]:
        """``write(items)``; when the org refuses the whole request as malformed (a JSON
        type error fails the whole collection), split it to find the records at fault
        (``record`` gives an item's call record)."""
        budget = ISOLATION_REQUESTS

        def attempt(part: list[T]) -> dict[str, Outcome]:
            nonlocal budget
            if not part:
                return {}
            try:
                return write(part)
            except SalesforceMalformedRequest as error:
                if len(part) == 1 or budget < 2:
                    text = error_text(errors_of(error)) or str(error)
                    return {record(item).conversationId: Reject(text) for item in part}
                budget -= 2
                first, second = halves(part)
                return attempt(first) | attempt(second)

        return attempt(items)

    def _request_failure(self, error: Exception) -> Outcome:
        """What a request that failed for good means for each record it carried."""
        if isinstance(error, OrgPaused):
            return Pause(str(error), error.seconds)
        if isinstance(error, requests.Timeout):
            # Counted: a lookup that times out every time (CallObject not indexed on a large
            # Task table) must end in a dead letter that says so, not in a pause forever.
            return Retry(
                f"no answer from Salesforce within {REQUEST_TIMEOUT:.0f} s (on a large Task "
                "table, ask Salesforce Support for a custom index on Task.CallObject)"
            )
        if (
            isinstance(error, SalesforceLoginFailed)
            or transient(error)
            or refused_as_concurrent(error)
        ):
            return Pause(f"{error_code(error)}: {error}"[:500], self._outage.failure())
        if isinstance(error, SalesforceError):
            return Reject(error_text(errors_of(error)) or str(error))
        return Reject(str(error))

    def _callers_of(self, records: list[CallRecord]) -> dict[str, str]:
        """``WhoId`` by conversation id, for the new Tasks whose caller is known."""
        if self._mapping.object != "Task" or not self._mapping.match_callers:
            return {}
        return self._callers.who({r.conversationId: n for r in records if (n := _number_of(r))})

    def _records(
        self, records: list[CallRecord], *, creating: bool, who: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        body = []
        task = self._mapping.object == "Task"
        statuses = self._statuses.get() if task else VANILLA_STATUSES
        for r in records:
            fields = task_fields(r, self._mapping, creating=creating, statuses=statuses)
            if who and r.conversationId in who:
                fields["WhoId"] = who[r.conversationId]
            body.append({"attributes": {"type": self._mapping.object}, **fields})
        return body

    def _create(self, records: list[CallRecord], who: Mapping[str, str]) -> dict[str, Outcome]:
        """One collection create; Tasks refused for a caller deleted or merged since are
        created again without one (and the caller is forgotten), Tasks refused for an owner
        who is inactive or unknown are created again owned by the integration user."""
        results = self._org.restful(
            "create",
            "composite/sobjects",
            "POST",
            {"allOrNone": False, "records": self._records(records, creating=True, who=who)},
            idempotent=False,
        )
        outcomes: dict[str, Outcome] = {}
        stale: list[CallRecord] = []
        ownerless: list[CallRecord] = []
        existing: list[CallRecord] = []
        for record, result in zip(records, results, strict=True):
            errors = org_errors(result.get("errors") or [])
            if self._mapping.key_field and is_duplicate_key(errors, self._mapping.key_field):
                existing.append(record)  # its Task is there (committed late, or unseen)
            elif record.conversationId in who and is_stale_reference(errors, "WhoId"):
                stale.append(record)
            elif record.ownerId is not None and is_unusable_owner(errors):
                log.warning(
                    "event=owner_refused conversation=%s owner=%s error=%r",
                    record.conversationId,
                    record.ownerId,
                    error_text(errors),
                )
                ownerless.append(msgspec.structs.replace(record, ownerId=None))
            else:
                outcomes[record.conversationId] = record_outcome(result)
        for record in stale:
            log.info("event=caller_gone conversation=%s", record.conversationId)
            if number := _number_of(record):
                self._callers.forget(number)
        if stale:
            outcomes |= self._create(stale, {})
        if existing:
            outcomes |= self._update_by_key(existing)
        return outcomes | (self._create(ownerless, who) if ownerless else {})

    def _update_by_key(self, records: list[CallRecord]) -> dict[str, Outcome]:
        """Update the Tasks a create found already there, by the key field (an upsert that
        finds its record; nothing that may only be set on insert)."""
        key = self._mapping.key_field
        assert key is not None
        results = self._upsert_on(key, records, creating=False)
        outcomes: dict[str, Outcome] = {}
        for record, result in zip(records, results, strict=True):
            errors = org_errors(result.get("errors") or [])
            if is_no_access(errors):
                outcomes[record.conversationId] = Reject(
                    f"{error_text(errors)}: the call's Task exists, but the integration user "
                    "may not edit it (owned by an agent, related to no record it can see): "
                    "give it a role above the agents' or Modify All Data (README, Seeing the "
                    "agents' Tasks)"
                )
            else:
                outcomes[record.conversationId] = record_outcome(result)
        return outcomes

    def _update(self, pairs: list[tuple[str, CallRecord]]) -> dict[str, Outcome]:
        body = self._records([r for _, r in pairs], creating=False)
        for (record_id, _), record in zip(pairs, body, strict=True):
            record["Id"] = record_id
        results = self._org.restful(
            "update",
            "composite/sobjects",
            "PATCH",
            {"allOrNone": False, "records": body},
            idempotent=True,
        )
        return {
            r.conversationId: record_outcome(res)
            for (_, r), res in zip(pairs, results, strict=True)
        }

    def _upsert(self, records: list[CallRecord]) -> dict[str, Outcome]:
        results = self._upsert_on(self._mapping.match_field, records, creating=True)
        return {
            r.conversationId: record_outcome(res) for r, res in zip(records, results, strict=True)
        }

    def _upsert_on(
        self, field: str, records: list[CallRecord], *, creating: bool
    ) -> list[dict[str, Any]]:
        """One collection upsert by ``field``: each record's result, in order."""
        results: list[dict[str, Any]] = self._org.restful(
            "upsert",
            f"composite/sobjects/{self._mapping.object}/{field}",
            "PATCH",
            {"allOrNone": False, "records": self._records(records, creating=creating)},
            idempotent=True,
        )
        return results


def _itself(record: CallRecord) -> CallRecord:
    return record


def _record_of(pair: tuple[str, CallRecord]) -> CallRecord:
    return pair[1]


def _number_of(record: CallRecord) -> str | None:
    """The other party's number: the caller's inbound, the dialled one outbound."""
    return record.dialledNumber if record.direction == "outbound" else record.callerNumber
