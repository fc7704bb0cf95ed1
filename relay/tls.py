"""TLS for the relay's port and the control API: a certificate chain and key from files, one
context both servers share, reloaded without dropping a socket.

A renewed certificate (cert-manager, certbot, an operator copying files) is picked up within
:data:`RELOAD_INTERVAL`: each new handshake switches to the newest context that loaded whole
(the context's SNI callback, called for every ClientHello, with or without a server name),
while open connections keep the session they have. A half-written pair (a new certificate
beside the old key) fails to load, is logged, and the previous pair goes on serving until the
files agree.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from typing import Final

from relay.errors import ConfigError

log = logging.getLogger(__name__)

RELOAD_INTERVAL: Final = 30.0
"""How often the certificate and key files are checked for a change (seconds)."""
HANDSHAKE_TIMEOUT: Final = 10.0
"""How long a client may take over its TLS handshake (as long as over its request head)."""
CERT_SETTING: Final = "SOFTPHONE_RELAY_TLS_CERT_FILE"


class ServerCertificate:
    """The certificate chain and key the servers present, from ``cert_file`` and
    ``key_file`` (PEM); :attr:`context` goes to ``create_server(ssl=...)``."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self._files = (cert_file, key_file)
        self._stamp = self._stamps()
        self._current = self._load()
        self.context = self._current
        """The context the servers were started with; after a reload it hands each handshake
        over to the newest pair."""
        self.context.sni_callback = self._select

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        try:
            return tuple((s.st_mtime_ns, s.st_size) for s in map(os.stat, self._files))
        except OSError as error:
            raise ConfigError(
                CERT_SETTING, f"cannot read {error.filename}: {error.strerror}"
            ) from None

    def _load(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        cert_file, key_file = self._files
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                CERT_SETTING,
                f"cannot load the certificate {cert_file} with the key {key_file}: {error}",
            ) from None
        return context

    def _select(self, connection: ssl.SSLObject, server_name: str | None, _: object) -> None:
        if connection.context is not self._current:
            connection.context = self._current

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed since the last load; True when a new pair is
        now served. A pair that does not load keeps the previous one (and is logged)."""
        try:
            stamp = self._stamps()
        except ConfigError as error:
            log.warning("event=tls_reload_failed error=%r", str(error))
            return False
        if stamp == self._stamp:
            return False
        try:
            self._current = self._load()
        except ConfigError as error:
            log.warning("event=tls_reload_failed error=%r keeps=previous", str(error))
            return False
        self._stamp = stamp
        log.info("event=tls_reloaded cert=%s", self._files[0])
        return True

    async def watch(self, interval: float = RELOAD_INTERVAL) -> None:
        """Reload whenever the files change, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()


def server_certificate(cert_file: str | None, key_file: str | None) -> ServerCertificate | None:
    """The servers' certificate from the settings, or None for plain HTTP (neither set)."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise ConfigError(
            CERT_SETTING, "set both SOFTPHONE_RELAY_TLS_CERT_FILE and SOFTPHONE_RELAY_TLS_KEY_FILE"
        )
    return ServerCertificate(cert_file, key_file)
