"""Logging in to the stand-in with simple-salesforce's own login code, for every supported
flow, and logging in again when the session expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from projections.outcomes import Done
from projections.salesforce.connect import (
    ClientCredentialsAuth,
    JwtBearerAuth,
    PasswordAuth,
    SalesforceConnection,
    SalesforceSettings,
)
from projections.salesforce.errors import SalesforceLoginFailed
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.login import ConnectedApp, User
from projections.salesforce.standin.server import StandIn, StandInState
from projections.salesforce.task_mapping import TaskMapping
from tests.helpers import ConnectionFactory, RedirectAdapter, call_record, standin_http, tasks_of

USER = "agent.sync@acme.example"
KEY = "3MVG9consumerKey"
SECRET = "consumer-secret"


def _pem_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


@pytest.fixture(scope="module")
def app_key() -> tuple[bytes, str]:
    """The connected app's private key (ours) and its certificate's public key (the org's)."""
    return _pem_pair()


@pytest.fixture
def standin_state(app_key: tuple[bytes, str]) -> StandInState:
    """An org with one integration user and one connected app that may act as them."""
    state = StandInState()
    state.users[USER] = User(password="pw", security_token="TOKEN")
    state.apps[KEY] = ConnectedApp(SECRET, public_key_pem=app_key[1], run_as=USER)
    return state


@pytest.fixture
def key_file(tmp_path: Path, app_key: tuple[bytes, str]) -> Iterator[str]:
    path = tmp_path / "server.key"
    path.write_bytes(app_key[0])
    yield str(path)


async def write_one(connection: ConnectionFactory, auth: object) -> None:
    sink = SalesforceSink(connection(auth), TaskMapping())
    assert await sink.write([call_record("c1")]) == {"c1": Done()}


async def test_soap_login_with_password_and_token(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Username, password and security token: a session that writes."""
    await write_one(connection, PasswordAuth(username=USER, password="pw", security_token="TOKEN"))
    assert ("POST", "/services/Soap/u/59.0") in standin.state.requests


async def test_wrong_password_names_the_flow_and_salesforce_code(
    connection: ConnectionFactory,
) -> None:
    """INVALID_LOGIN comes back as SalesforceLoginFailed, saying which flow failed."""
    bad = connection(PasswordAuth(username=USER, password="nope", security_token="TOKEN"))
    with pytest.raises(SalesforceLoginFailed) as info:
        await asyncio.to_thread(bad.client)
    assert info.value.code == "INVALID_LOGIN"
    assert "SOAP username-password login" in str(info.value)


async def test_oauth_password_flow(standin: StandIn, connection: ConnectionFactory) -> None:
    """With a connected app the password flow goes through the OAuth token endpoint."""
    auth = PasswordAuth(
        username=USER,
        password="pw",
        security_token="TOKEN",
        consumer_key=KEY,
        consumer_secret=SECRET,
    )
    await write_one(connection, auth)
    assert ("POST", "/services/oauth2/token") in standin.state.requests


async def test_oauth_password_flow_with_a_wrong_secret(connection: ConnectionFactory) -> None:
    """invalid_client is reported as it is."""
    auth = PasswordAuth(
        username=USER, password="pwTOKEN", consumer_key=KEY, consumer_secret="wrong"
    )
    with pytest.raises(SalesforceLoginFailed) as info:
        await asyncio.to_thread(connection(auth).client)
    assert info.value.code == "invalid_client"


async def test_jwt_bearer_flow(connection: ConnectionFactory, key_file: str) -> None:
    """An assertion signed with the app's key logs the user in."""
    await write_one(
        connection, JwtBearerAuth(username=USER, consumer_key=KEY, private_key_file=key_file)
    )


async def test_jwt_signed_with_another_key_is_refused(
    connection: ConnectionFactory, tmp_path: Path
) -> None:
    """The org checks the signature against the app's certificate."""
    other = tmp_path / "other.key"
    other.write_bytes(_pem_pair()[0])
    auth = JwtBearerAuth(username=USER, consumer_key=KEY, private_key_file=str(other))
    with pytest.raises(SalesforceLoginFailed) as info:
        await asyncio.to_thread(connection(auth).client)
    assert info.value.code == "invalid_grant" and str(info.value).endswith("invalid assertion")


async def test_jwt_for_an_unknown_user_is_refused(
    connection: ConnectionFactory, key_file: str
) -> None:
    """Only pre-authorised users may be named in the assertion."""
    auth = JwtBearerAuth(
        username="nobody@acme.example", consumer_key=KEY, private_key_file=key_file
    )
    # simple-salesforce adds a hint on how to pre-authorise the app.
    with pytest.warns(UserWarning, match="authorize"), pytest.raises(SalesforceLoginFailed) as info:
        await asyncio.to_thread(connection(auth).client)
    assert str(info.value).endswith("invalid_grant: user hasn't approved this consumer")


async def test_client_credentials_flow(connection: ConnectionFactory) -> None:
    """Consumer key and secret on a My Domain, acting as the app's run-as user."""
    await write_one(
        connection,
        ClientCredentialsAuth(consumer_key=KEY, consumer_secret=SECRET, domain="acme.my"),
    )


async def test_client_credentials_need_a_run_as_user(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """An app without a run-as user cannot use the flow."""
    standin.state.apps[KEY] = ConnectedApp(SECRET)
    auth = ClientCredentialsAuth(consumer_key=KEY, consumer_secret=SECRET, domain="acme.my")
    with pytest.raises(SalesforceLoginFailed, match="no client credentials user enabled"):
        await asyncio.to_thread(connection(auth).client)


async def test_an_expired_session_logs_in_again_and_the_write_lands(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """INVALID_SESSION_ID mid-run: one new login, the same request again, nothing lost."""
    link = connection(PasswordAuth(username=USER, password="pw", security_token="TOKEN"))
    sink = SalesforceSink(link, TaskMapping())
    assert await sink.write([call_record("c1")]) == {"c1": Done()}
    standin.state.expire_sessions()
    assert await sink.write([call_record("c2")]) == {"c2": Done()}
    assert link.logins == 2 and sink.metrics.logins._value.get() == 1
    calls = [r["CallObject"] for r in tasks_of(standin)]
    assert sorted(calls) == ["c1", "c2"]


async def test_jwt_bearer_through_the_my_domain_posts_there_for_the_login_audience(
    standin: StandIn, key_file: str, app_key: tuple[bytes, str]
) -> None:
    """ "API login requires My Domain": the assertion goes to the My Domain's token endpoint,
    and the org (which takes login or test as the audience) accepts it."""
    http = standin_http(standin)
    auth = JwtBearerAuth(
        username=USER,
        consumer_key=KEY,
        private_key_file=key_file,
        domain="login",
        token_domain="acme.my",
    )
    connection = SalesforceConnection(
        SalesforceSettings(auth=auth, ca_file=str(standin.ca_file)), http=http
    )
    try:
        sink = SalesforceSink(connection, TaskMapping())
        assert await sink.write([call_record("c1")]) == {"c1": Done()}
    finally:
        connection.close()
    my_domain = http.adapters["https://acme.my.salesforce.com"]
    login = http.adapters["https://login.salesforce.com"]
    assert isinstance(my_domain, RedirectAdapter) and isinstance(login, RedirectAdapter)
    assert my_domain.requested == ["https://acme.my.salesforce.com/services/oauth2/token"]
    assert login.requested == []


async def test_a_soap_login_without_use_any_api_auth_says_which_permission(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """SOAP login() is refused INSUFFICIENT_ACCESS without the user permission: the error
    names it (and the better flow)."""
    standin.state.users[USER] = User(password="pw", security_token="TOKEN", use_any_api_auth=False)
    auth = PasswordAuth(username=USER, password="pw", security_token="TOKEN")
    with pytest.raises(SalesforceLoginFailed) as info:
        await asyncio.to_thread(connection(auth).client)
    assert info.value.code == "INSUFFICIENT_ACCESS"
    assert "Use Any API Auth" in str(info.value) and "JWT bearer" in str(info.value)
