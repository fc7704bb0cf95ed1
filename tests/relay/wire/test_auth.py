"""Agent tokens signed outside the relay: RS256 as Salesforce's ``Auth.JWS`` builds them (the
kit's Apex), verified with the certificate Salesforce downloads or its public key."""

from __future__ import annotations

import datetime
import json
import time
from base64 import urlsafe_b64decode

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from relay.errors import AuthenticationFailed, ConfigError
from relay.wire.auth import AUDIENCE, TokenVerifier
from tests.helpers import PARTNER

USER = "005Hs00000A1b2CIAR"


def org_certificate() -> tuple[rsa.RSAPrivateKey, str]:
    """A key pair and its self-signed certificate, as Certificate and Key Management makes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "softphone_relay")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM).decode()


def apex_token(key: rsa.RSAPrivateKey, lifetime: int = 900) -> str:
    """A token as the kit's Apex builds it: header ``{"alg":"RS256"}`` only (Auth.JWS lets
    Apex set no header field), ``setValidityLength`` and ``setNbfClockSkew(30)``, the user's
    Id as ``sub`` and ``sfUserId``, ``partnerId`` from the custom setting."""
    now = int(time.time())
    claims = {
        "sub": USER,
        "aud": AUDIENCE,
        "nbf": now - 30,
        "iat": now,
        "exp": now + lifetime,
        "partnerId": PARTNER,
        "sfUserId": USER,
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"typ": None})
    header = json.loads(urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "RS256"}
    return token


def test_a_token_signed_by_the_org_certificate_verifies_with_that_certificate() -> None:
    """The downloaded certificate itself is a valid SOFTPHONE_RELAY_PUBLIC_KEY_FILE."""
    key, certificate = org_certificate()
    identity = TokenVerifier(public_key=certificate).verify(apex_token(key))
    assert (identity.agent_id, identity.partner_id, identity.salesforce_user_id) == (
        USER,
        PARTNER,
        USER,
    )


def test_the_public_key_extracted_with_openssl_works_too() -> None:
    """``openssl x509 -pubkey -noout`` gives a PEM public key: same verification."""
    key, _ = org_certificate()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert TokenVerifier(public_key=public.decode()).verify(apex_token(key)).agent_id == USER


def test_a_token_signed_by_another_org_is_refused() -> None:
    """Another certificate's signature does not verify: 4401."""
    _, certificate = org_certificate()
    other, _ = org_certificate()
    with pytest.raises(AuthenticationFailed, match="invalid token"):
        TokenVerifier(public_key=certificate).verify(apex_token(other))


def test_a_key_file_that_is_no_key_is_refused_at_start_naming_the_setting() -> None:
    """Not a PEM key or certificate: a ConfigError at start, not a 4401 for every agent."""
    with pytest.raises(ConfigError) as info:
        TokenVerifier(public_key="ssh-rsa AAAA... admin@example.com")
    assert "SOFTPHONE_RELAY_PUBLIC_KEY_FILE" in str(info.value)
