"""Click-to-dial and presence requests: how they enter the log, and where each one stands.

Whoever asks (the control API, the operator CLI; the browser sends the same events over its
socket), a request becomes an event in the log (``startCallRequested``,
``presenceUpdateRequested``, ``presenceQueryRequested``) whose id is the request id; nothing
becomes a command except through the log and the ``dispatch`` projection. Resubmitting a
request id (an ``Idempotency-Key``) appends nothing new.

``sp:request:{id}`` records its progress, only ever forward::

    accepted → queued → delivered → acked        (or, before delivery: expired | failed)

``accepted`` is in the log; ``queued`` became a command (``commandId``, ``expiresAt``);
``delivered`` was sent down the agent's socket; ``acked`` the softphone got it; ``expired``
it was not delivered in time; ``failed`` it could not become a command (``reason``). Each
writer (the API, the dispatcher, the relay delivering) only moves it forward, in one script,
so their order does not matter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis

from relay.log import keys
from relay.log.envelope import Envelope
from relay.log.event_log import EventLog
from relay.log.request_rules import RequestState, RequestStatus
from relay.privacy.personal import PersonalData
from relay.wire.contract import validate_event_data

STATUS_TTL_SECONDS: Final = 24 * 3600

ADVANCE_SCRIPT: Final = """
local ranks = {accepted=1, queued=2, expired=3, failed=3, delivered=4, acked=5}
local current = redis.call('HGET', KEYS[1], 'state')
if (current and ranks[current] >= ranks[ARGV[2]]) or (not current and ARGV[3] == '1') then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('HSET', KEYS[1], 'state', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class RequestStore:
    """The ``sp:request:{id}`` records."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._advance = redis.register_script(ADVANCE_SCRIPT)

    async def advance(self, status: RequestStatus) -> bool:
        """Record ``status`` unless the request is already as far or further; True if it was."""
        fields = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in msgspec.structs.asdict(status).items()
            if v is not None and k != "state"
        }
        args: list[Any] = [STATUS_TTL_SECONDS, status.state, "0"]
        for key, value in fields.items():
            args += [key, value]
        return bool(await self._advance(keys=[keys.request_status(status.requestId)], args=args))

    async def advance_state(
        self, request_id: str, state: RequestState, *, command_id: str | None = None
    ) -> bool:
        """Move a known request to ``state`` (keeping what else it records); True if it moved."""
        args: list[Any] = [
            STATUS_TTL_SECONDS,
            state,
            "1",
            "updatedAt",
            datetime.now(UTC).isoformat(),
        ]
        if command_id is not None:
            args += ["commandId", command_id]
        return bool(await self._advance(keys=[keys.request_status(request_id)], args=args))

    async def get(self, request_id: str) -> RequestStatus | None:
        """The request's status, or None if unknown (or older than a day)."""
        raw = cast(dict[bytes, bytes], await self._redis.hgetall(keys.request_status(request_id)))
        if not raw:
            return None
        return msgspec.convert(
            {k.decode(): v.decode() for k, v in raw.items()}, RequestStatus, strict=False
        )


class RequestIntake:
    """Turns a request into an event in the log and records it as accepted."""

    def __init__(
        self, log: EventLog, store: RequestStore, personal: PersonalData | None = None
    ) -> None:
        """With ``personal``, a request's personal fields are stored sealed."""
        self._log = log
        self._store = store
        self._personal = personal

    async def submit(
        self,
        name: str,
        agent_id: str,
        partner_id: str,
        data: dict[str, Any],
        *,
        source: str,
        request_id: str | None = None,
    ) -> tuple[str, bool]:
        """Append the request (validated against the contract); (request id, duplicate).

        Raises ``InvalidEvent`` naming the field, or ``Unavailable`` when the log is down.
        """
        request_id = request_id or str(uuid.uuid4())
        payload = validate_event_data(name, {**data, "partnerId": partner_id})
        now = datetime.now(UTC)
        envelope = Envelope(
            id=request_id,
            name=name,
            agentId=agent_id,
            partnerId=partner_id,
            conversationId=None,
            at=now,
            receivedAt=now,
            sessionId=source,
            data=payload,
        )
        if self._personal is not None:
            envelope = await self._personal.sealed(envelope)
        [result] = await self._log.append_all([envelope])
        if not result.duplicate:
            await self._store.advance(
                RequestStatus(
                    requestId=request_id,
                    name=name,
                    agentId=agent_id,
                    partnerId=partner_id,
                    state="accepted",
                    updatedAt=now,
                )
            )
        return request_id, result.duplicate
