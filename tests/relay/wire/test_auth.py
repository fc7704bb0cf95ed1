"""Agent tokens signed outside the relay: RS256 as Salesforce's ``Auth.JWS`` builds them (the
kit's Apex), verified with the certificate Salesforce downloads or its public key."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from relay.errors import AuthenticationFailed, ConfigError
from relay.wire.auth import AUDIENCE, TokenVerifier, mint_token
from tests.certificates import USER, apex_token, org_certificate
from tests.helpers import OTHER_PARTNER, PARTNER, SECRET


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


def test_during_a_rotation_tokens_signed_by_the_old_or_the_new_certificate_both_verify() -> None:
    """The key file holds both certificates, one after the other: no agent is cut off while
    the org moves its signing to the new one."""
    old_key, old = org_certificate()
    new_key, new = org_certificate()
    verifier = TokenVerifier(public_key=old + new)
    assert verifier.verify(apex_token(old_key)).agent_id == USER
    assert verifier.verify(apex_token(new_key)).agent_id == USER
    assert len(verifier.shared_keys) == 2


def test_an_ec_key_beside_an_rsa_key_verifies_es256_tokens() -> None:
    """Each key verifies the algorithm of its own kind: RS256 for RSA, ES256 for EC."""
    _, certificate = org_certificate()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = TokenVerifier(public_key=certificate + ec_public.decode())
    claims = {"sub": USER, "aud": AUDIENCE, "exp": int(time.time()) + 60, "partnerId": PARTNER}
    assert verifier.verify(jwt.encode(claims, ec_key, algorithm="ES256")).agent_id == USER


def test_a_partners_own_key_verifies_its_tokens_and_the_shared_secret_no_longer_does() -> None:
    """A partner given a key of its own: the relay's shared secret cannot sign for it."""
    key, certificate = org_certificate()
    verifier = TokenVerifier(secret=SECRET, partner_keys={OTHER_PARTNER: certificate})
    assert verifier.verify(apex_token(key, partner=OTHER_PARTNER)).partner_id == OTHER_PARTNER
    with pytest.raises(AuthenticationFailed, match="invalid token"):
        verifier.verify(mint_token(SECRET, "agent-1", OTHER_PARTNER, 60))
    assert verifier.verify(mint_token(SECRET, "agent-1", PARTNER, 60)).partner_id == PARTNER


def test_a_partners_key_cannot_sign_for_another_partner() -> None:
    """A token signed with partner B's key but naming partner A is refused, whether A has a
    key of its own or uses the shared ones."""
    a_key, a_certificate = org_certificate()
    b_key, b_certificate = org_certificate()
    _, shared = org_certificate()
    verifier = TokenVerifier(
        public_key=shared, partner_keys={PARTNER: a_certificate, OTHER_PARTNER: b_certificate}
    )
    with pytest.raises(AuthenticationFailed, match="Signature verification failed"):
        verifier.verify(apex_token(b_key, partner=PARTNER))
    alone = TokenVerifier(public_key=shared, partner_keys={OTHER_PARTNER: b_certificate})
    with pytest.raises(AuthenticationFailed, match="Signature verification failed"):
        alone.verify(apex_token(b_key, partner=PARTNER))
    assert verifier.verify(apex_token(a_key, partner=PARTNER)).partner_id == PARTNER


def test_with_partner_keys_only_a_partner_without_one_is_refused() -> None:
    """No shared key: a token naming a partner without keys of its own has nothing to verify
    it, and says so."""
    key, certificate = org_certificate()
    verifier = TokenVerifier(partner_keys={OTHER_PARTNER: certificate})
    with pytest.raises(AuthenticationFailed, match="no key verifies this partner's tokens"):
        verifier.verify(apex_token(key, partner=PARTNER))


def test_a_bad_partner_key_is_refused_at_start_naming_the_partner() -> None:
    """A partner's key that is no PEM key: the ConfigError names that partner."""
    with pytest.raises(ConfigError) as info:
        TokenVerifier(secret=SECRET, partner_keys={OTHER_PARTNER: "not a key"})
    assert OTHER_PARTNER in str(info.value)


def test_a_certificates_expiry_is_known_to_the_verifier() -> None:
    """What the relay logs at start (and warns about 30 days before) comes from here."""
    _, certificate = org_certificate(days=10)
    (key,) = TokenVerifier(public_key=certificate).shared_keys
    assert key.not_after is not None and key.algorithm == "RS256" and len(key.fingerprint) == 16
