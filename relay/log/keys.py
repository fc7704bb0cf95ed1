"""Every Redis key and channel name, in one place (DESIGN.md section 4).

Names carry ``{...}`` hash tags so that the keys one script touches share a Redis Cluster
slot: an event shard's stream and its dedupe records share ``{S}``; an agent's command stream,
its ack position, its session counter, its notification channel, its dispatch markers, its
presence and its online flag share ``{agentId}``.

A *mailbox* is what a session receives commands in: an agent's own (its softphone's, named by
the agent id) or its connector's (``agentId/connector``, :func:`connector_mailbox`: the
Salesforce Voice connector's feed). A mailbox's keys share its agent's slot; the softphone's
keep the names they always had, a connector's end in ``:connector``.
"""

from __future__ import annotations

import zlib
from typing import Final

import msgspec


def event_stream(shard: int) -> str:
    """The event log of one shard."""
    return f"sp:events:{{{shard}}}"


def seen_bucket(shard: int, day: int) -> str:
    """The dedupe records of one shard's events received on one day (days since 1970, UTC):
    a hash of event digest (agent and event id, so no one can pre-empt another's id) to the
    event's stream id, expiring as a whole."""
    return f"sp:seen:{{{shard}}}:day:{day}"


BUCKETS_SINCE: Final = "sp:dedupe:buckets-since"
"""When the first relay that writes day buckets started (UNIX seconds; 0: the log was new)."""


def seen(shard: int, agent_id: str, event_id: str) -> str:
    """The dedupe record of one event id in the format before day buckets (read only)."""
    return f"sp:seen:{{{shard}}}:{agent_id}:{event_id}"


CONNECTOR: Final = "connector"
"""The role of a Salesforce Voice connector's session (``hello``'s ``role``)."""


def connector_mailbox(agent_id: str) -> str:
    """The mailbox of the agent's connector (``/`` is in no agent id)."""
    return f"{agent_id}/{CONNECTOR}"


def split_mailbox(mailbox: str) -> tuple[str, str]:
    """A mailbox's agent and role (empty for the softphone's)."""
    agent_id, _, role = mailbox.partition("/")
    return agent_id, role


def _in_mailbox(prefix: str, mailbox: str) -> str:
    agent_id, role = split_mailbox(mailbox)
    return f"{prefix}{{{agent_id}}}:{role}" if role else f"{prefix}{{{agent_id}}}"


def command_stream(mailbox: str) -> str:
    """A mailbox's commands, oldest first."""
    return _in_mailbox("sp:cmd:", mailbox)


def command_ack(mailbox: str) -> str:
    """The newest command id the mailbox's session acked."""
    return _in_mailbox("sp:cmdack:", mailbox)


def session_counter(mailbox: str) -> str:
    """Incremented by each new session of the mailbox: the newest session wins."""
    return _in_mailbox("sp:session:", mailbox)


def agent_channel(mailbox: str) -> str:
    """Pub/sub channel telling relays about a mailbox's new commands and new sessions."""
    return _in_mailbox("sp:notify:", mailbox)


def agent_of_channel(channel: str) -> str:
    """The mailbox an :func:`agent_channel` is about."""
    agent_id, _, role = channel.removeprefix("sp:notify:{").partition("}")
    role = role.removeprefix(":")
    return f"{agent_id}/{role}" if role else agent_id


def dead_letters(group: str) -> str:
    """Dead-letter stream of one projection group."""
    return f"sp:dlq:{{{group}}}"


DEAD_LETTERS_PATTERN: Final = "sp:dlq:*"
"""Every :func:`dead_letters` stream, for ``SCAN``."""


def shard_of(key: str, shards: int) -> int:
    """Stable shard of a conversation (or agent) id: CRC-32 modulo the shard count."""
    return zlib.crc32(key.encode()) % shards


def call_facts(shard: int, conversation_id: str) -> str:
    """What the calls projection knows of one conversation (its folded facts)."""
    return f"sp:call:{{{shard}}}:{conversation_id}"


CALL_FACTS_PATTERN: Final = "sp:call:*"
"""Every :func:`call_facts` key, for ``SCAN``."""


def conversation_partner(shard: int, conversation_id: str) -> str:
    """The partner a conversation belongs to: the one whose event about it came first."""
    return f"sp:convpartner:{{{shard}}}:{conversation_id}"


def call_lock(shard: int, conversation_id: str, kind: str = "calls") -> str:
    """Held by the one worker writing a conversation's record (of ``kind``: ``calls`` for
    its Task, ``voice`` for its VoiceCall) at a time."""
    return f"sp:lock:{{{shard}}}:{kind}:{conversation_id}"


def voice_call(shard: int, conversation_id: str) -> str:
    """What the ``voicecalls`` projection did for one conversation: its VoiceCall's id, and
    whether it was ended (a hash)."""
    return f"sp:voice:{{{shard}}}:{conversation_id}"


def archive_lease(shard: int) -> str:
    """Held by the one archiver writing a shard's segments."""
    return f"sp:lock:{{{shard}}}:archive"


def shard_of_stream(stream: str) -> int:
    """The shard number of an ``sp:events:{S}`` stream name."""
    return int(stream.rsplit("{", 1)[1].rstrip("}"))


def agent_record(agent_id: str) -> str:
    """The agent's last session: partner, session, relay instance, since when (a hash)."""
    return f"sp:agent:{{{agent_id}}}"


def agent_partner(agent_id: str) -> str:
    """The partner an agent id belongs to: pinned by its first session, kept while it is
    used (in the agent's slot, beside :func:`agent_record`)."""
    return f"sp:agentpartner:{{{agent_id}}}"


def session_starts(mailbox: str) -> str:
    """How many sessions of the mailbox started in the current minute (expires with it)."""
    return _in_mailbox("sp:starts:", mailbox)


def revoked_before(agent_id: str) -> str:
    """When the agent's tokens were last revoked: a token issued at or before it is refused."""
    return f"sp:revoked:{{{agent_id}}}"


def revoked_token(agent_id: str, token_id: str) -> str:
    """Present while the agent's token ``token_id`` (its ``jti``) is revoked."""
    return f"sp:revoked:{{{agent_id}}}:{token_id}"


def salesforce_user(user_id: str) -> str:
    """The agent whose last session's token named this Salesforce User (``sfUserId``)."""
    return f"sp:sfuser:{{{user_id}}}"


def agent_online(agent_id: str) -> str:
    """Present (the session id) while a relay holds a live socket of the agent; expires."""
    return f"sp:online:{{{agent_id}}}"


ONLINE_PATTERN: Final = "sp:online:*"
"""Every :func:`agent_online` key, for ``SCAN``."""


def agent_of_online(key: str) -> str:
    """The agent an :func:`agent_online` key is about."""
    return key.removeprefix("sp:online:{").removesuffix("}")


def dispatched(mailbox: str, request_id: str) -> str:
    """The command a request (or a logged event) became (set with the enqueue, so a request
    dials once)."""
    return f"{_in_mailbox('sp:dispatched:', mailbox)}:{request_id}"


def request_status(request_id: str) -> str:
    """Where a click-to-dial or presence request stands (a hash)."""
    return f"sp:request:{{{request_id}}}"


def presence(agent_id: str) -> str:
    """The agent's latest presence from ``statusChanged``."""
    return f"sp:presence:{{{agent_id}}}"


def presence_expected(agent_id: str) -> str:
    """The presence we asked the softphone for (``update_presence``), until it answers."""
    return f"sp:expect:{{{agent_id}}}"


PRESENCE_CHANGES: Final = "sp:presence-changes"
"""Real presence changes (echoes of our own ``update_presence`` left out), for the CRM side."""


def disposition_codes(partner_id: str) -> str:
    """A partner's disposition codes as read from its Salesforce picklist (a JSON list)."""
    return f"sp:disposition:{{{partner_id}}}"


SALESFORCE_USAGE: Final = "sp:salesforce:usage"
"""Hash: ``used``, ``max`` and ``at`` of the org's daily API requests, as the workers last saw."""


REQUEST_ID_SECRET: Final = "sp:secret:requestids"
"""The deployment's secret for request ids derived from ``Idempotency-Key`` (made once)."""


def data_key(subject: str) -> str:
    """A subject's wrapped data key (``relay/privacy``), for a subject outside any
    conversation (a number's, an event's own): deleting it erases the subject."""
    return f"sp:pii:key:{subject}"


def conversation_data_key(shard: int, conversation_id: str) -> str:
    """A conversation's wrapped data key, in its shard's slot: the append script sets it
    with the conversation's first sealed event."""
    return f"sp:pii:key:{{{shard}}}:c:{conversation_id}"


DATA_KEY_PATTERN: Final = "sp:pii:key:*"
"""Every data key, for ``SCAN``."""

PARTY_INDEX_KEY: Final = "sp:pii:index-key"
"""The wrapped key of the keyed hash that stands for phone numbers in lookups."""


def party_conversations(party: str, shard: int | None = None) -> str:
    """The subjects about one party (a phone number, by its keyed hash): one set per shard
    for the conversations whose events named it (written by the append script, in the
    shard's slot), one outside any shard for the rest."""
    return f"sp:pii:party:{party}" if shard is None else f"sp:pii:party:{{{shard}}}:{party}"


class KeyWrites(msgspec.Struct, frozen=True):
    """What the append script stores beside an event sealed under its conversation's key:
    the key, if the relay made it (``SET NX``), and the party index sets that list the
    conversation's subject."""

    data_key: str | None
    wrapped: bytes
    party_sets: tuple[str, ...]
    subject: str


NO_KEY_WRITES: Final = KeyWrites(None, b"", (), "")
