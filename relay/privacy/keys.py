"""Key-encryption keys: what wraps the per-subject data keys. Pure.

The configured keys (``SOFTPHONE_RELAY_DATA_KEY``: base64 of 32 random bytes, several
separated by commas, the first the current one; or ``SOFTPHONE_RELAY_DATA_KEY_FILE``, one a
line) are :class:`LocalKeys`. A wrapped data key names the key that wrapped it, so after a
rotation (the new key first, the old one still listed) old data keys still unwrap, and
``softphone-relay rewrap`` moves them to the new one. :class:`KeyEncryptionKey` is the shape
an operator's KMS would take (``key_id``, ``wrap``, ``unwrap``): nothing else is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relay.privacy.sealing import RandomPool, random_nonce

KEY_BYTES: Final = 32
_FORMAT: Final = b"\x01"
_ID_BYTES: Final = 8
_NONCE: Final = 12
_PURPOSE: Final = b"softphone-relay data key"


class UnwrapError(ValueError):
    """A wrapped data key that no configured key opens."""


class KeyEncryptionKey(Protocol):
    """What wraps and unwraps data keys (the configured keys, or a KMS)."""

    @property
    def key_id(self) -> str:
        """The id of the key that wraps new data keys."""

    def wrap(self, data_key: bytes) -> bytes:
        """``data_key`` wrapped by the current key."""

    def unwrap(self, wrapped: bytes) -> bytes:
        """The data key in ``wrapped``; :class:`UnwrapError` if no known key opens it."""


def key_id_of(secret: bytes) -> str:
    """A key's public id: the start of its SHA-256 (names it in logs and wrapped keys)."""
    return hashlib.sha256(secret).hexdigest()[: 2 * _ID_BYTES]


new_data_key: Final = RandomPool(KEY_BYTES, 512).take
"""A fresh random AES-256 data key."""


def new_data_keys(count: int) -> list[bytes]:
    """``count`` fresh random AES-256 data keys (one call to the OS's generator)."""
    pool = os.urandom(KEY_BYTES * count)
    return [pool[i : i + KEY_BYTES] for i in range(0, len(pool), KEY_BYTES)]


class LocalKeys:
    """Key-encryption keys from the configuration: the first wraps, each unwraps its own."""

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("no key-encryption key")
        for secret in secrets:
            if len(secret) != KEY_BYTES:
                raise ValueError(f"a key-encryption key is {KEY_BYTES} bytes, not {len(secret)}")
        self._current = secrets[0]
        self._by_id = {bytes.fromhex(key_id_of(s)): AESGCM(s) for s in secrets}
        self._current_id = bytes.fromhex(key_id_of(secrets[0]))
        self._wrapping = self._by_id[self._current_id]
        self._wrapped_head = _FORMAT + self._current_id

    @property
    def key_id(self) -> str:
        """The id of the key that wraps new data keys."""
        return key_id_of(self._current)

    @property
    def key_ids(self) -> list[str]:
        """The ids of every configured key, the current one first."""
        ids = [self.key_id]
        return ids + [i.hex() for i in self._by_id if i.hex() not in ids]

    def wrap(self, data_key: bytes) -> bytes:
        """``data_key`` wrapped by the current key (format, key id, nonce, AES-GCM)."""
        nonce = random_nonce()
        return b"".join(
            (self._wrapped_head, nonce, self._wrapping.encrypt(nonce, data_key, _PURPOSE))
        )

    def unwrap(self, wrapped: bytes) -> bytes:
        """The data key in ``wrapped``; :class:`UnwrapError` naming the key it needs."""
        if wrapped[:1] != _FORMAT or len(wrapped) < 1 + _ID_BYTES + _NONCE:
            raise UnwrapError("not a wrapped data key")
        key_id = wrapped[1 : 1 + _ID_BYTES]
        cipher = self._by_id.get(key_id)
        if cipher is None:
            raise UnwrapError(f"wrapped by key {key_id.hex()}, which is not configured")
        nonce = wrapped[1 + _ID_BYTES : 1 + _ID_BYTES + _NONCE]
        try:
            return cipher.decrypt(nonce, wrapped[1 + _ID_BYTES + _NONCE :], _PURPOSE)
        except InvalidTag:
            raise UnwrapError(f"key {key_id.hex()} does not open it (corrupt)") from None

    def wrapped_by(self, wrapped: bytes) -> str:
        """The id of the key that wrapped ``wrapped``."""
        return wrapped[1 : 1 + _ID_BYTES].hex()


def parse_data_keys(text: str) -> tuple[bytes, ...]:
    """Keys given as base64 text (separated by commas or new lines), each 32 bytes;
    ``ValueError`` saying what is wrong otherwise."""
    keys: list[bytes] = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            key = base64.b64decode(part, validate=True)
        except binascii.Error:
            raise ValueError("a key is not base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"a key is {len(key)} bytes; it must be {KEY_BYTES} (make one with: "
                "python -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')"
            )
        keys.append(key)
    if not keys:
        raise ValueError("no key")
    return tuple(keys)
