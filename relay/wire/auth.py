"""Agent tokens: JWTs with ``sub`` = agent id, a ``partnerId`` claim, ``exp``, audience
``softphone-relay`` (DESIGN.md section 6), and optionally ``sfUserId``. Verified with PyJWT;
no I/O here.

The key is an HS256 secret, or public keys for RS256/ES256 tokens: PEM public keys, or the
X.509 certificates themselves (what Salesforce's Certificate and Key Management downloads, for
tokens its Apex signs with ``Auth.JWS``), several at once while a certificate is rotated. A
partner may have keys of its own, which alone verify its tokens.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

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


KEY_SETTING: Final = "SOFTPHONE_RELAY_PUBLIC_KEY_FILE"
_PEM_BLOCK: Final = re.compile(
    r"-----BEGIN (CERTIFICATE|PUBLIC KEY)-----\r?\n.*?-----END \1-----", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One public key that may sign agent tokens, with what the relay logs about it."""

    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    algorithm: str
    """``RS256`` for an RSA key, ``ES256`` for an EC key: a key verifies its own kind only."""
    fingerprint: str
    """The first 16 hex digits of the SHA-256 of the key's DER form (names it in logs)."""
    not_after: datetime.datetime | None
    """When its certificate expires (None for a bare public key)."""


def verification_keys(pem: str, setting: str = KEY_SETTING) -> tuple[VerificationKey, ...]:
    """Every public key in ``pem``: one or more PEM certificates or public keys, one after the
    other (during a rotation, the old certificate and the new). ``setting`` names the source in
    the error when one is no usable key."""
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(pem)]
    if not blocks:
        raise ConfigError(
            setting,
            "no PEM public key or certificate (-----BEGIN PUBLIC KEY----- or "
            "-----BEGIN CERTIFICATE-----)",
        )
    return tuple(_verification_key(block, setting) for block in blocks)


def _verification_key(block: str, setting: str) -> VerificationKey:
    key: PublicKeyTypes
    not_after = None
    try:
        if block.startswith("-----BEGIN CERTIFICATE"):
            certificate = x509.load_pem_x509_certificate(block.encode())
            key, not_after = certificate.public_key(), certificate.not_valid_after_utc
        else:
            key = serialization.load_pem_public_key(block.encode())
    except ValueError as error:
        raise ConfigError(setting, f"a PEM block is no valid key or certificate: {error}") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(
            setting,
            f"a {type(key).__name__} cannot verify RS256 or ES256 tokens: use an RSA or EC key",
        )
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    algorithm = "RS256" if isinstance(key, rsa.RSAPublicKey) else "ES256"
    return VerificationKey(key, algorithm, hashlib.sha256(der).hexdigest()[:16], not_after)


class TokenVerifier:
    """Verifies agent tokens: with an HS256 secret or RS256/ES256 public keys (several at once
    during a rotation), and, for a partner given keys of its own, with those keys only, so one
    partner's signing key can never speak for another."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        partner_keys: Mapping[str, str] | None = None,
    ) -> None:
        """``public_key`` and each of ``partner_keys`` (partner id → PEM text) may hold several
        PEM blocks. A token naming a partner of ``partner_keys`` must verify with one of that
        partner's keys; any other token with the secret or ``public_key``."""
        if secret is not None and public_key is not None:
            raise ConfigError(
                "SOFTPHONE_RELAY_SECRET", "set a secret or a public key file, not both"
            )
        self.shared_keys: tuple[VerificationKey, ...] = (
            verification_keys(public_key) if public_key is not None else ()
        )
        """The public keys that verify the tokens of partners without keys of their own."""
        self.partner_keys: dict[str, tuple[VerificationKey, ...]] = {
            partner: verification_keys(pem, f"partner {partner!r} publicKey")
            for partner, pem in (partner_keys or {}).items()
        }
        """Partner id → the keys that alone verify that partner's tokens."""
        if secret is None and not self.shared_keys and not self.partner_keys:
            raise ConfigError(
                "SOFTPHONE_RELAY_SECRET",
                "set a secret, a public key file, or publicKey for the partners",
            )
        self._shared: tuple[tuple[object, str], ...] = (
            ((secret, "HS256"),)
            if secret is not None
            else tuple((k.key, k.algorithm) for k in self.shared_keys)
        )
        self._by_partner = {
            partner: tuple((k.key, k.algorithm) for k in keys)
            for partner, keys in self.partner_keys.items()
        }

    def all_keys(self) -> list[tuple[str | None, VerificationKey]]:
        """Every public key with the partner it is reserved for (None: shared)."""
        shared: list[tuple[str | None, VerificationKey]] = [(None, k) for k in self.shared_keys]
        return shared + [(p, k) for p, keys in self.partner_keys.items() for k in keys]

    def verify(self, token: str) -> Identity:
        """Return the token's identity or raise :class:`AuthenticationFailed` saying why."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as error:
            raise AuthenticationFailed(f"invalid token: {error}") from None
        claimed = unverified.get("partnerId")
        if not isinstance(claimed, str) or not claimed:
            raise AuthenticationFailed("invalid token: missing 'partnerId' claim")
        keys = self._by_partner.get(claimed, self._shared)
        if not keys:
            raise AuthenticationFailed("invalid token: no key verifies this partner's tokens")
        claims = self._verified_claims(token, keys)
        agent_id = claims.get("sub")
        if not isinstance(agent_id, str) or not AGENT_ID_PATTERN.match(agent_id):
            raise AuthenticationFailed("invalid token: 'sub' must be an agent id [A-Za-z0-9._@:-]")
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
            claimed,
            float(claims["exp"]),
            user,
            issued_at=float(issued) if isinstance(issued, int | float) else 0.0,
            token_id=token_id if isinstance(token_id, str) and token_id else None,
        )

    @staticmethod
    def _verified_claims(token: str, keys: tuple[tuple[object, str], ...]) -> dict[str, Any]:
        """The claims of ``token`` as the first key whose signature matches verifies them."""
        refusal = "invalid token: Signature verification failed"
        for key, algorithm in keys:
            try:
                return jwt.decode(
                    token,
                    key,  # type: ignore[arg-type]
                    algorithms=[algorithm],
                    audience=AUDIENCE,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["sub", "exp", "aud"]},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as error:
                refusal = f"invalid token: {error}"
            except jwt.ExpiredSignatureError:
                raise AuthenticationFailed("token expired") from None
            except jwt.InvalidTokenError as error:
                raise AuthenticationFailed(f"invalid token: {error}") from None
        raise AuthenticationFailed(refusal)


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
