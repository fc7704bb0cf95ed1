"""TLS on the relay's port and the control API: https and wss with the configured certificate,
and a renewed certificate served to new connections without dropping open ones."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import trustme
from websockets.asyncio.client import ClientConnection, connect

from relay.control.api import ControlApi
from relay.errors import ConfigError
from relay.log import clients
from relay.server.server import Relay
from relay.tls import ServerCertificate, server_certificate
from softphone_relay.settings import settings_from_env
from tests.helpers import API_KEY, make_settings, token

ORIGIN = "https://softphone.example.test"


def issue(ca: trustme.CA, directory: Path, name: str = "server") -> tuple[str, str, bytes]:
    """A certificate for 127.0.0.1 from ``ca``, written as PEM files: the chain, the key, and
    the certificate's DER (to recognise it on the wire)."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key_file))
    der = ssl.PEM_cert_to_DER_cert(issued.cert_chain_pems[0].bytes().decode())
    return str(cert_file), str(key_file), der


def replace(target: Path, source: str) -> None:
    """Overwrite ``target`` with the bytes of ``source`` (a renewal writing the files)."""
    target.write_bytes(Path(source).read_bytes())


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def presented(port: int, context: ssl.SSLContext) -> bytes:
    """The DER certificate a new TLS connection to ``port`` is shown."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return bytes(der)


@contextlib.asynccontextmanager
async def welcomed(relay: Relay, ca: trustme.CA) -> AsyncIterator[ClientConnection]:
    """A wss:// session to ``relay`` by a client that trusts ``ca``, past its welcome."""
    async with connect(
        f"wss://127.0.0.1:{relay.port}/v1/socket",
        ssl=client_context(ca),
        subprotocols=["softphone.v1"],  # type: ignore[list-item]
        origin=ORIGIN,  # type: ignore[arg-type]
    ) as socket:
        await socket.send(json.dumps({"type": "hello", "token": token()}))
        assert json.loads(await socket.recv())["type"] == "welcome"
        yield socket


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_relay(
    redis_url: str, ca: trustme.CA, tmp_path: Path
) -> AsyncIterator[tuple[Relay, ServerCertificate, bytes]]:
    """A relay on TLS with a certificate from ``ca`` (files in ``tmp_path``)."""
    cert_file, key_file, der = issue(ca, tmp_path)
    certificate = ServerCertificate(cert_file, key_file)
    client = clients.connect(redis_url)
    relay = Relay(make_settings(), client, tls=certificate.context)
    await relay.start()
    yield relay, certificate, der
    await relay.close()
    await client.aclose()


async def test_the_relay_speaks_wss_with_the_configured_certificate(
    tls_relay: tuple[Relay, ServerCertificate, bytes], ca: trustme.CA
) -> None:
    """A client that trusts the CA opens wss://, says hello and is welcomed."""
    relay, _, der = tls_relay
    assert await presented(relay.port, client_context(ca)) == der
    async with welcomed(relay, ca) as socket:
        assert socket.subprotocol == "softphone.v1"


async def test_plain_http_on_a_tls_port_gets_no_answer_and_the_relay_goes_on(
    tls_relay: tuple[Relay, ServerCertificate, bytes], ca: trustme.CA
) -> None:
    """Someone speaking ws:// to the TLS port: the handshake fails, nothing else does."""
    relay, _, der = tls_relay
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: relay.test\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert not answer.startswith(b"HTTP/1.1 200")
    assert await presented(relay.port, client_context(ca)) == der


async def test_a_renewed_certificate_reaches_new_connections_and_open_ones_stay(
    tls_relay: tuple[Relay, ServerCertificate, bytes], ca: trustme.CA, tmp_path: Path
) -> None:
    """The files are replaced (a renewal): after the reload a new connection is shown the new
    certificate, and a websocket opened before goes on answering."""
    relay, certificate, old = tls_relay
    async with welcomed(relay, ca) as socket:
        cert_file, key_file, new = issue(ca, tmp_path, "renewed")
        replace(tmp_path / "server.crt", cert_file)
        replace(tmp_path / "server.key", key_file)
        assert certificate.reload_if_changed()
        assert await presented(relay.port, client_context(ca)) == new != old
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await socket.recv())["type"] == "pong"
    assert not certificate.reload_if_changed()  # nothing changed since


async def test_a_half_written_pair_keeps_the_previous_certificate(
    tls_relay: tuple[Relay, ServerCertificate, bytes],
    ca: trustme.CA,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The new certificate is there, its key not yet: the reload fails (logged) and the old
    pair goes on serving; once the key follows, the new pair is served."""
    relay, certificate, old = tls_relay
    cert_file, key_file, new = issue(ca, tmp_path, "renewed")
    replace(tmp_path / "server.crt", cert_file)
    assert not certificate.reload_if_changed()
    assert "event=tls_reload_failed" in caplog.text
    assert await presented(relay.port, client_context(ca)) == old
    replace(tmp_path / "server.key", key_file)
    assert certificate.reload_if_changed()
    assert await presented(relay.port, client_context(ca)) == new


async def test_the_control_api_speaks_https_with_the_same_certificate(
    redis_client: aioredis.Redis, ca: trustme.CA, tmp_path: Path
) -> None:
    """The API is reached over https; its answers are the same as over plain HTTP."""
    cert_file, key_file, der = issue(ca, tmp_path)
    certificate = ServerCertificate(cert_file, key_file)
    api = ControlApi(make_settings(api_keys={API_KEY: "p"}), redis_client)
    await api.start("127.0.0.1", 0, certificate.context)
    try:
        assert await presented(api.port, client_context(ca)) == der
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", api.port, ssl=client_context(ca)
        )
        writer.write(
            b"GET /v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        await api.close()


def test_a_certificate_without_its_key_is_refused_at_start() -> None:
    """One of the two settings alone: a ConfigError naming both."""
    with pytest.raises(ConfigError, match="TLS_CERT_FILE and TLS_KEY_FILE"):
        settings_from_env({"SOFTPHONE_RELAY_TLS_CERT_FILE": "/etc/relay/tls.crt"})
    with pytest.raises(ConfigError, match="SOFTPHONE_RELAY_TLS_KEY_FILE"):
        server_certificate("/etc/relay/tls.crt", None)


def test_a_key_that_does_not_match_the_certificate_is_refused_at_start(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """The pair must belong together: the error names the setting and both files."""
    cert_file, _, _ = issue(ca, tmp_path, "one")
    _, key_file, _ = issue(ca, tmp_path, "two")
    with pytest.raises(ConfigError, match=r"SOFTPHONE_RELAY_TLS_CERT_FILE.*one\.crt.*two\.key"):
        ServerCertificate(cert_file, key_file)


def test_a_missing_certificate_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*absent\.crt"):
        ServerCertificate(str(tmp_path / "absent.crt"), str(tmp_path / "absent.key"))
