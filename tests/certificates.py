"""Certificates and tokens as a Salesforce org makes them: a self-signed certificate from
Certificate and Key Management, and an agent token the kit's Apex signs with ``Auth.JWS``."""

from __future__ import annotations

import datetime
import json
import time
from base64 import urlsafe_b64decode

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from relay.wire.auth import AUDIENCE
from tests.helpers import PARTNER

USER = "005Hs00000A1b2CIAR"
"""A Salesforce User id, 18 characters."""


def org_certificate(days: int = 365) -> tuple[rsa.RSAPrivateKey, str]:
    """A key pair and its self-signed certificate (PEM), valid for ``days`` from now, as
    Certificate and Key Management makes (a year by default)."""
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
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM).decode()


def apex_token(key: rsa.RSAPrivateKey, lifetime: int = 900, partner: str = PARTNER) -> str:
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
        "partnerId": partner,
        "sfUserId": USER,
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"typ": None})
    header = json.loads(urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "RS256"}
    return token
