"""Where a replay writes: a Salesforce org (the live one, another, or the local stand-in)
through the same sink the calls workers use, or a JSONL file of call records."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

import msgspec

from projections.calls.fold import CallRecord
from projections.errors import ProjectionError
from projections.outcomes import Done, Outcome
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.task_mapping import TaskMapping, task_fields

_encoder: Final = msgspec.json.Encoder()


class TargetUnreadable(ProjectionError):
    """A replay target's existing content cannot be read."""


class SalesforceTarget:
    """An org, written through :class:`SalesforceSink` (batched, idempotent)."""

    def __init__(
        self, sink: SalesforceSink, mapping: TaskMapping, *, description: str, live: bool
    ) -> None:
        self._sink = sink
        self._mapping = mapping
        self.description = description
        self.locks = live
        """The live org is also written by the calls workers: lock conversations."""

    @property
    def requests(self) -> int:
        """Salesforce requests made so far."""
        return self._sink.requests

    def desired(self, record: CallRecord) -> dict[str, Any]:
        """The fields an update would set (insert-only fields and WhoId are not compared)."""
        return task_fields(record, self._mapping, creating=False)

    async def current(self, records: Sequence[CallRecord]) -> dict[str, dict[str, Any]]:
        """The org's values of the fields the records set, by conversation id."""
        if not records:
            return {}
        fields = sorted({f for r in records for f in self.desired(r)})
        return await self._sink.current(records, fields)

    async def write(
        self, records: Sequence[CallRecord], current: dict[str, dict[str, Any]]
    ) -> dict[str, Outcome]:
        """Create what is missing, update what differs, by the Ids ``current`` found."""
        known = {c: str(row["Id"]) for c, row in current.items() if "Id" in row}
        return await self._sink.write(records, known=known)

    async def close(self) -> None:
        """Nothing to release: the connection belongs to the caller."""


class JsonlTarget:
    """A file of call records, one JSON object per line, the last line of a conversation
    winning; rewritten without superseded lines when the replay ends."""

    locks = False
    requests = 0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"JSONL file {path}"
        self._held: dict[str, dict[str, Any]] = {}
        self._lines = 0
        self._file: IO[bytes] | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open("rb") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    self._held[str(record["conversationId"])] = record
                except (ValueError, KeyError, TypeError) as error:
                    raise TargetUnreadable(
                        f"{self.path}:{number}: not a call record ({error}); "
                        "replay into a new file or fix this one"
                    ) from None
                self._lines += 1

    def desired(self, record: CallRecord) -> dict[str, Any]:
        """The record as JSON values."""
        return msgspec.to_builtins(record)  # type: ignore[no-any-return]

    async def current(self, records: Sequence[CallRecord]) -> dict[str, dict[str, Any]]:
        """The file's last line of each of these conversations."""
        return {
            r.conversationId: self._held[r.conversationId]
            for r in records
            if r.conversationId in self._held
        }

    async def write(
        self, records: Sequence[CallRecord], current: dict[str, dict[str, Any]]
    ) -> dict[str, Outcome]:
        """Append the records (a line per record) and flush."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(descriptor, "ab")
        buffer = bytearray()
        for record in records:
            _encoder.encode_into(record, buffer, len(buffer))
            buffer += b"\n"
            self._held[record.conversationId] = self.desired(record)
        self._file.write(buffer)
        self._file.flush()
        self._lines += len(records)
        return {r.conversationId: Done() for r in records}

    async def close(self) -> None:
        """Close the file, rewriting it with one line per conversation if lines were
        superseded (atomically: a new file renamed over the old)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lines > len(self._held):
            temporary = self.path.with_name(self.path.name + ".tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                for record in self._held.values():
                    file.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
            self._lines = len(self._held)
