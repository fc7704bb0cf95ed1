"""The stand-in's Telephony Integration REST API: Salesforce Voice's ``/telephony/v1``.

What a real org's ``https://{MyDomain}.my.salesforce-scrt.com/telephony/v1`` does, as its
pages say (SALESFORCE-VOICE.md section 4): every request carries ``Authorization: Bearer``
an RS256 JWT whose ``iss`` is the org id and ``sub`` the contact center's API name, with
``iat`` and ``exp`` (at most 24 hours after ``iat``), an optional ``jti`` refused when seen
before, no ``aud`` or ``https://scrt.salesforce.com``; it is checked against the certificate
the admin uploaded to that contact center. ``POST /voiceCalls`` creates a VoiceCall "only in
real time" from ``callCenterApiName``, ``vendorCallKey``, ``to``, ``from``,
``initiationMethod`` (``Inbound``, or ``Transfer`` with ``parentVoiceCallId``; outbound
calls are not supported), ``startTime`` and ``participants``; ``callAttributes`` is a JSON
string of VoiceCall fields, and one the org lacks still creates the record, with a message in
``errors``. A key may name several VoiceCalls (the current page does not say a repeated
``vendorCallKey`` returns the first). ``PATCH /voiceCalls/{id or vendorCallKey}`` answers
``{"status": "pending"}``; without ``isActiveCall: true`` it ends the call.

Assumed, not found in Salesforce's pages: the status and body of a refused token (401
``{"errorCode": "INVALID_AUTH", "message": ...}``) and of a bad request (400, the same
shape), 404 for a PATCH of an unknown call, 200 for a create, and the body of a 429 or a
503 (the same shape).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
import msgspec
from aiohttp import web
from cryptography import x509

from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import RecordRefused

BASE: Final = "/telephony/v1"
SCRT_AUDIENCE: Final = "https://scrt.salesforce.com"
MAX_TOKEN_LIFE: Final = 24 * 3600
REQUIRED: Final = (
    "callCenterApiName",
    "vendorCallKey",
    "to",
    "from",
    "initiationMethod",
    "startTime",
    "participants",
)
ATTRIBUTE_FIELDS: Final = {"Disposition__c", "Notes__c", "CallOrigin"}
"""VoiceCall fields ``callAttributes`` may set here (the kit's and a standard one)."""


@dataclass
class TelephonyIntegration:
    """The org's contact centers as the Telephony Integration API knows them, and what it
    does wrong on purpose."""

    org_id: str = "00D5g0000000001EAA"
    certificates: dict[str, bytes] = field(default_factory=dict)
    """Each contact center's certificate (PEM) by its API name, as the admin uploaded it."""
    seen_tokens: set[str] = field(default_factory=set)
    """The ``jti`` of every token taken."""
    fail_next: list[int] = field(default_factory=list)
    """Statuses (429, 503) to answer the next requests with, in order, changing nothing."""
    drop_next_creates: int = 0
    """How many of the next creates take effect, then lose their connection."""
    hold_seconds: float = 0.0
    """How long a create that took effect waits before it answers (a worker may die meanwhile)."""
    creates: int = 0
    """Creates received."""


@functools.lru_cache(maxsize=64)
def _public_key(certificate: bytes) -> Any:
    """The public key of an uploaded certificate (read once)."""
    return x509.load_pem_x509_certificate(certificate).public_key()


def _refusal(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "message": message}, status=status)


class TelephonyApi:
    """The handlers, over the stand-in's org."""

    def __init__(self, org: Callable[[], Org], telephony: TelephonyIntegration) -> None:
        self._org = org
        self.telephony = telephony

    @property
    def org(self) -> Org:
        """The stand-in's org now."""
        return self._org()

    def token_refused(self, request: web.Request, call_center: str | None) -> str | None:
        """Why the request's token is refused, or None; ``call_center``: the one the body
        names, which ``sub`` must be."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return "no bearer token"
        token = header.removeprefix("Bearer ")
        try:
            header_claims = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            return f"not a JWT: {error}"
        if header_claims.get("alg") != "RS256":
            return f"algorithm {header_claims.get('alg')!r} is not RS256"
        subject = unverified.get("sub")
        certificate = self.telephony.certificates.get(str(subject))
        if certificate is None:
            return f"no certificate for contact center {subject!r}"
        key = _public_key(certificate)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.telephony.org_id,
                options={"require": ["iss", "sub", "iat", "exp"], "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            return f"{type(error).__name__}: {error}"
        if claims.get("aud") not in (None, SCRT_AUDIENCE):
            return f"audience {claims['aud']!r}"
        if int(claims["exp"]) - int(claims["iat"]) > MAX_TOKEN_LIFE:
            return "exp is more than 24 hours after iat"
        if call_center is not None and claims["sub"] != call_center:
            return f"sub {claims['sub']!r} is not callCenterApiName {call_center!r}"
        jti = claims.get("jti")
        if jti is not None:
            if jti in self.telephony.seen_tokens:
                return f"jti {jti!r} was used before"
            self.telephony.seen_tokens.add(jti)
        return None

    def _fault(self) -> web.Response | None:
        if self.telephony.fail_next:
            status = self.telephony.fail_next.pop(0)
            code = "SCV_LIMITS_ERROR" if status == 429 else "SERVICE_UNAVAILABLE"
            return _refusal(status, code, f"the stand-in answers {status} as told")
        return None

    async def create(self, request: web.Request) -> web.StreamResponse:
        """POST /voiceCalls."""
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError as error:
            return _refusal(400, "INVALID_INPUT", f"not JSON: {error}")
        if not isinstance(body, dict):
            return _refusal(400, "INVALID_INPUT", "the body is not a JSON object")
        refused = self.token_refused(request, body.get("callCenterApiName"))
        if refused is not None:
            return _refusal(401, "INVALID_AUTH", refused)
        fault = self._fault()
        if fault is not None:
            return fault
        problem = _create_problem(body)
        if problem is not None:
            return _refusal(400, "INVALID_INPUT", problem)
        values, errors = _voice_call(body)
        try:
            voice_call_id = self.org.create("VoiceCall", values)
        except RecordRefused as refused_record:
            return _refusal(400, "INVALID_INPUT", refused_record.errors[0].message)
        self.telephony.creates += 1
        if self.telephony.hold_seconds:
            await asyncio.sleep(self.telephony.hold_seconds)
        response = web.json_response({"voiceCallId": voice_call_id, "errors": errors})
        if self.telephony.drop_next_creates > 0 and request.transport is not None:
            self.telephony.drop_next_creates -= 1
            await response.prepare(request)
            request.transport.abort()  # created; the client never hears of it
        return response

    async def update(self, request: web.Request) -> web.Response:
        """PATCH /voiceCalls/{id or vendorCallKey}."""
        refused = self.token_refused(request, None)
        if refused is not None:
            return _refusal(401, "INVALID_AUTH", refused)
        fault = self._fault()
        if fault is not None:
            return fault
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError as error:
            return _refusal(400, "INVALID_INPUT", f"not JSON: {error}")
        key = request.match_info["key"]
        found = [
            r
            for r in self.org.records.values()
            if r["attributes"]["type"] == "VoiceCall" and key in (r["Id"], r.get("VendorCallKey"))
        ]
        if not found:
            return _refusal(404, "NOT_FOUND", f"no VoiceCall {key!r}")
        values, _ = _attributes(body.get("callAttributes"))
        if "endTime" in body:
            values["CallEndDateTime"] = body["endTime"]
        if not body.get("isActiveCall", False):
            values["CallDisposition"] = "completed"
        for record in found:
            self.org.update("VoiceCall", record["Id"], values)
        return web.json_response({"status": "pending"})


def _create_problem(body: dict[str, Any]) -> str | None:
    missing = [name for name in REQUIRED if body.get(name) in (None, "", [])]
    if missing:
        return f"required: {', '.join(missing)}"
    method = body["initiationMethod"]
    if method == "Outbound":
        return "Outbound calls aren't supported"
    if method not in ("Inbound", "Transfer"):
        return f"initiationMethod {method!r} is not Inbound or Transfer"
    if method == "Transfer" and not body.get("parentVoiceCallId"):
        return "a Transfer needs parentVoiceCallId"
    participants = body["participants"]
    if not isinstance(participants, list) or not all(
        isinstance(p, dict) and p.get("participantKey") and p.get("type") for p in participants
    ):
        return "participants: each needs participantKey and type"
    attributes = body.get("callAttributes")
    if attributes is not None and not isinstance(attributes, str):
        return "callAttributes must be a JSON string"
    return None


def _attributes(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """The VoiceCall fields a ``callAttributes`` string sets, and messages for the others."""
    if not raw:
        return {}, []
    try:
        attributes = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return {}, ["callAttributes is not JSON"]
    values = {k: v for k, v in attributes.items() if k in ATTRIBUTE_FIELDS}
    unknown = sorted(set(attributes) - ATTRIBUTE_FIELDS - {"SourceType", "CallerContactInfo"})
    return values, [f"No such column '{name}' on entity 'VoiceCall'" for name in unknown]


def _voice_call(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    values, errors = _attributes(body.get("callAttributes"))
    return {
        "VendorCallKey": body["vendorCallKey"],
        "CallType": body["initiationMethod"],
        "FromPhoneNumber": body["from"],
        "ToPhoneNumber": body["to"],
        "CallStartDateTime": body["startTime"],
        "CallDisposition": "new",
        **values,
    }, errors


def add_routes(
    app: web.Application, org: Callable[[], Org], telephony: TelephonyIntegration
) -> None:
    """Serve the API at :data:`BASE` (its own auth: the server's session check skips it)."""
    api = TelephonyApi(org, telephony)
    app.router.add_post(BASE + "/voiceCalls", api.create)
    app.router.add_patch(BASE + "/voiceCalls/{key}", api.update)
