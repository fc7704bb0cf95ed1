"""Salesforce Voice's Telephony Integration REST API, as a partner's server calls it.

Each request is signed for itself: an RS256 JWT with ``iss`` the org id, ``sub`` the contact
center's API name, ``iat``, ``exp`` five minutes on and a fresh ``jti`` (as Salesforce's own
connectors sign), by the private key whose certificate the admin uploaded to the contact
center. A create is tried up to three times, as Salesforce's resiliency guidance says, but
only again when the answer said nothing was made (429, 5xx): when the answer is lost (the
connection dropped or timed out after the request went out), the VoiceCall may exist, and a
key may name several VoiceCalls, so :class:`CreateInDoubt` tells the caller to look it up
(by ``VendorCallKey``, through the REST API) before creating it again.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp
import jwt
import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from relay.errors import RelayError

CREATE_TRIES: Final = 3
TOKEN_SECONDS: Final = 300
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


class Participant(msgspec.Struct, frozen=True):
    """A call's other party."""

    participantKey: str
    type: str = "END_USER"


class VoiceCallCreate(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /voiceCalls``'s body."""

    callCenterApiName: str
    vendorCallKey: str
    to: str
    from_: str = msgspec.field(name="from")
    initiationMethod: str = "Inbound"
    startTime: str
    participants: list[Participant]
    callOrigin: str | None = None
    callAttributes: str | None = None
    """A JSON string of VoiceCall fields (the kit's custom ones among them)."""


class VoiceCallCreated(msgspec.Struct, frozen=True):
    """``POST /voiceCalls``'s answer: the record is made even when ``errors`` says some of
    ``callAttributes`` was not taken."""

    voiceCallId: str
    errors: list[Any] = msgspec.field(default_factory=list)


class TelephonyError(RelayError):
    """The Telephony Integration API refused a request (``status``, what it said)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"telephony integration answered {status}: {detail}")
        self.status = status


class CreateInDoubt(RelayError):
    """A create whose answer was lost: the VoiceCall may exist (look it up first)."""


class TelephonyClient:
    """Creates and updates VoiceCalls for one contact center."""

    def __init__(
        self,
        base_url: str,
        *,
        org_id: str,
        call_center: str,
        private_key: bytes,
        provider: str = "softphone-relay",
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        retry_delay: float = 0.2,
    ) -> None:
        """``base_url``: ``https://{MyDomain}.my.salesforce-scrt.com/telephony/v1``;
        ``private_key``: PEM, the key of the contact center's certificate."""
        self._base = base_url.rstrip("/")
        self._org_id = org_id
        self.call_center = call_center
        self._key = serialization.load_pem_private_key(private_key, password=None)
        """Loaded once: loading (and checking) an RSA key costs more than signing with it."""
        self._headers = {"Telephony-Provider-Name": provider}
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry_delay = retry_delay
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """Kept open (its connections reused: a TLS handshake per request cost more than the
        request); one per event loop."""

    def token(self) -> str:
        """A fresh signed token for one request."""
        now = int(time.time())
        claims = {
            "iss": self._org_id,
            "sub": self.call_center,
            "iat": now,
            "exp": now + TOKEN_SECONDS,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="RS256")  # type: ignore[arg-type]

    async def create(self, call: VoiceCallCreate) -> VoiceCallCreated:
        """Create a VoiceCall (tried again on 429 and 5xx); :class:`CreateInDoubt` when an
        answer was lost, :class:`TelephonyError` when refused."""
        body = msgspec.json.encode(call)
        for attempt in range(1, CREATE_TRIES + 1):
            try:
                status, answer = await self._send("POST", "/voiceCalls", body)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
                raise CreateInDoubt(f"the create of {call.vendorCallKey} was not answered") from e
            if status in RETRY_STATUSES and attempt < CREATE_TRIES:
                await asyncio.sleep(self._retry_delay * attempt)
                continue
            if status != 200:
                raise TelephonyError(status, answer.decode(errors="replace")[:300])
            return msgspec.json.decode(answer, type=VoiceCallCreated)
        raise AssertionError("unreachable: the last try returns or raises")

    async def update(self, key: str, changes: dict[str, Any]) -> None:
        """``PATCH /voiceCalls/{key}`` (an id or a vendorCallKey); once per call: Salesforce
        overwrites what it does not get again. :class:`TelephonyError` when refused."""
        status, answer = await self._send(
            "PATCH", f"/voiceCalls/{key}", msgspec.json.encode(changes)
        )
        if status != 200:
            raise TelephonyError(status, answer.decode(errors="replace")[:300])

    async def _send(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        headers = {
            **self._headers,
            "Authorization": f"Bearer {self.token()}",
            "Content-Type": "application/json",
        }
        session, loop = self._session, asyncio.get_running_loop()
        if session is None or session.closed or self._loop is not loop:
            session = self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._loop = loop
        async with session.request(
            method, self._base + path, data=body, headers=headers, ssl=self._ssl or True
        ) as response:
            return response.status, await response.read()

    async def close(self) -> None:
        """Close the connections kept open."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def new_contact_center_key(days: int = 365) -> tuple[bytes, bytes]:
    """A new RSA 2048 key (PEM) and its self-signed certificate (PEM), as ``openssl req
    -x509 -sha256 -days 365`` makes the one an admin uploads to the contact center (for
    ``up`` and the benchmarks)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "softphone-relay")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private, certificate.public_bytes(serialization.Encoding.PEM)
