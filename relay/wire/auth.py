"""Agent tokens: JWTs with ``sub`` = agent id, a ``partnerId`` claim, ``exp``, audience
``softphone-relay`` (DESIGN.md section 6), and optionally ``sfUserId``. Verified with PyJWT;
no I/O here.

The key is an HS256 secret, or a public key for RS256/ES256 tokens: a PEM public key, or the
X.509 certificate itself (what Salesforce's Certificate and Key Management downloads, for
tokens its Apex signs with ``Auth.JWS``).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from relay.errors import AuthenticationFailed, ConfigError

AUDIENCE: Final = "softphone-relay"
LEEWAY_SECONDS: Final = 30
AGENT_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9._@:-]{1,128}\Z")
"""Agent ids become part of Redis key names: no braces (hash tags), no spaces."""
SALESFORCE_USER_CLAIM: Final = "sfUserId"
SALESFORCE_USER_PATTERN: Final = re.compile(r"^005[A-Za-z0-9]{12}([A-Za-z0-9]{3})?\Z")
"""A Salesforce User id: key prefix 005, 15 or 18 characters."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for."""

    agent_id: str
    partner_id: str
    expires_at: float
    salesforce_user_id: str | None = None
    """The agent's Salesforce User id (claim ``sfUserId``), when the token names one."""
    issued_at: float = 0.0
    """When the token was issued (``iat``; 0 when it does not say)."""
    token_id: str | None = None
    """The token's id (``jti``), by which it can be revoked alone."""


def verification_key(pem: str) -> str:
    """The PEM public key of ``pem`` (a public key, or an X.509 certificate holding one)."""
    key: PublicKeyTypes
    try:
        if "BEGIN CERTIFICATE" in pem:
            key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        else:
            key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        raise ConfigError(
            "SOFTPHONE_RELAY_PUBLIC_KEY_FILE",
            "not a PEM public key or certificate (-----BEGIN PUBLIC KEY----- or "
            "-----BEGIN CERTIFICATE-----)",
        ) from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(
            "SOFTPHONE_RELAY_PUBLIC_KEY_FILE",
            f"a {type(key).__name__} cannot verify RS256 or ES256 tokens: use an RSA or EC key",
        )
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class TokenVerifier:
    """Verifies agent tokens with one key: an HS256 secret or an RS256/ES256 public key."""

    def __init__(self, *, secret: str | None = None, public_key: str | None = None) -> None:
        if (secret is None) == (public_key is None):
            raise ConfigError("SOFTPHONE_RELAY_SECRET", "set a secret or a public key file")
        self._key: str = secret if secret is not None else verification_key(public_key or "")
        self._algorithms = ["HS256"] if secret is not None else ["RS256", "ES256"]

    def verify(self, token: str) -> Identity:
        """Return the token's identity or raise :class:`AuthenticationFailed` saying why."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=AUDIENCE,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("token expired") from None
        except jwt.InvalidTokenError as error:
            raise AuthenticationFailed(f"invalid token: {error}") from None
        agent_id, partner_id = claims.get("sub"), claims.get("partnerId")
        if not isinstance(agent_id, str) or not AGENT_ID_PATTERN.match(agent_id):
            raise AuthenticationFailed("invalid token: 'sub' must be an agent id [A-Za-z0-9._@:-]")
        if not isinstance(partner_id, str) or not partner_id:
            raise AuthenticationFailed("invalid token: missing 'partnerId' claim")
        user = claims.get(SALESFORCE_USER_CLAIM)
        if user is not None and (
            not isinstance(user, str) or not SALESFORCE_USER_PATTERN.match(user)
        ):
            raise AuthenticationFailed(
                f"invalid token: {SALESFORCE_USER_CLAIM!r} must be a Salesforce User id "
                "(005 and 12 or 15 more letters and digits)"
            )
        issued = claims.get("iat")
        token_id = claims.get("jti")
        return Identity(
            agent_id,
            partner_id,
            float(claims["exp"]),
            user,
            issued_at=float(issued) if isinstance(issued, int | float) else 0.0,
            token_id=token_id if isinstance(token_id, str) and token_id else None,
        )


def mint_token(
    secret: str,
    agent_id: str,
    partner_id: str,
    ttl_seconds: int,
    *,
    salesforce_user_id: str | None = None,
) -> str:
    """Mint an HS256 agent token (for development, tests and the ``token`` command)."""
    if not AGENT_ID_PATTERN.match(agent_id):
        raise ValueError(f"agent id {agent_id!r} must match {AGENT_ID_PATTERN.pattern}")
    if salesforce_user_id is not None and not SALESFORCE_USER_PATTERN.match(salesforce_user_id):
        raise ValueError(f"{salesforce_user_id!r} is not a Salesforce User id (005...)")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": agent_id,
        "partnerId": partner_id,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    if salesforce_user_id is not None:
        claims[SALESFORCE_USER_CLAIM] = salesforce_user_id
    return jwt.encode(claims, secret, algorithm="HS256")
