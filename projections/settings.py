"""The projection workers' settings (batching, claiming, retention, the archive) as one typed
object.

Pure: the command line (:mod:`softphone_relay.settings`) reads them from ``SOFTPHONE_RELAY_*``
and composes them with the relay's; what every package shares (the log's URL, its shards, the
partners) stays in :class:`relay.settings.RelaySettings`.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from relay.settings import Port, Seconds


class ProjectionSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the consumer groups read and what they keep; see the README for each variable."""

    batch_wait: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """How long a projector batch may wait to fill (``SOFTPHONE_RELAY_BATCH_WAIT``); 0: no wait.
    Only the calls group waits: a second of lag on a finished call's record buys batches of
    hundreds of calls, each Salesforce request carrying 200 of them."""
    claim_idle: Seconds = 30.0
    """After this long unacked, a dead worker's entries are taken over
    (``SOFTPHONE_RELAY_CLAIM_IDLE``); a conversation lock lasts 4 times as long."""
    disposition_refresh: Seconds = 600.0
    """How often the calls workers reread Salesforce disposition picklists."""
    worker_metrics_port: Port = 9108
    """Where ``project`` serves its Prometheus metrics; 0 turns that off."""
    retention: Annotated[float, msgspec.Meta(ge=3600)] | None = None
    """How long the event log keeps entries (``SOFTPHONE_RELAY_RETENTION``, e.g. ``90d``, at
    least 1h); None (unset or ``forever``) keeps everything. Entries a consumer group has not
    processed are kept whatever their age."""
    archive_url: str | None = None
    """Where the ``archive`` group writes the log's segments (``SOFTPHONE_RELAY_ARCHIVE_URL``:
    ``file:///dir``, ``file:relative/dir`` or ``s3://bucket/prefix``); None: no archive.
    Readers (``replay``, ``tail``, ``export``, ``status``) read it as the older part of the log."""
    archive_segment: Annotated[float, msgspec.Meta(ge=1)] = 3600.0
    """The span of entries one archive segment holds (``SOFTPHONE_RELAY_ARCHIVE_SEGMENT``)."""
    telephony_url: str | None = None
    """Salesforce Voice's Telephony Integration API, where the ``voicecalls`` group writes
    (``SOFTPHONE_RELAY_TELEPHONY_URL``: ``https://{MyDomain}.my.salesforce-scrt.com/telephony/v1``);
    None: no VoiceCalls."""
    telephony_org_id: str | None = None
    """The org's id, the tokens' issuer (``SOFTPHONE_RELAY_TELEPHONY_ORG_ID``)."""
    telephony_call_center: str | None = None
    """The contact center's API name, the tokens' subject
    (``SOFTPHONE_RELAY_TELEPHONY_CALL_CENTER``)."""
    telephony_key_file: str | None = None
    """The private key (PEM) of the certificate on the contact center
    (``SOFTPHONE_RELAY_TELEPHONY_KEY_FILE``)."""
    telephony_ca_file: str | None = None
    """Certificates (PEM) to trust for the Telephony Integration API instead of the system's
    (``SOFTPHONE_RELAY_TELEPHONY_CA_FILE``: ``up`` sets the stand-in's)."""
    telephony_number: str | None = None
    """The contact center's number, each VoiceCall's ``to`` (``SOFTPHONE_RELAY_TELEPHONY_NUMBER``:
    the contract's events name none)."""


PROJECTION_DURATIONS: Final = frozenset(
    {"batch_wait", "claim_idle", "disposition_refresh", "retention", "archive_segment"}
)
"""The projections' settings given as durations."""
