"""Callers' personal data in the log: which fields carry it, and how they are sealed. Pure.

A personal field's value is replaced, before the append, by a sealed value::

    {"sealed": "c", "v": "<base64 of nonce | AES-256-GCM ciphertext and tag>"}

``sealed`` names the *subject* whose data key sealed it: ``c``, the event's own conversation
(whose subject is ``c:<conversationId>``), or, for an event about no conversation (a
click-to-dial request), the other party's number by its keyed hash (``n:<hash>``). The
additional data binds the value to its event and field, so a value copied elsewhere does not
open. Everything that reads the log opens values through
:func:`open_data`; a value whose key was erased opens as *erased* (left out of the data and
named), never as an error.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
from binascii import b2a_base64
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PERSONAL_FIELDS: Final = frozenset({"callerANI", "dialTo", "dialFrom", "dialledTo", "notes"})
"""The contract's fields that carry personal data (numbers, and the agent's free text)."""
NUMBER_FIELDS: Final = frozenset({"callerANI", "dialTo", "dialFrom", "dialledTo"})
"""The personal fields that hold the other party's phone number."""
SEALED: Final = "sealed"
ERASED: Final = "[erased]"
"""How a reader shows a value whose key was erased."""
_NONCE: Final = 12


class SealingError(ValueError):
    """A sealed value that is not one (tampered, or sealed for another event or field)."""


def conversation_subject(conversation: str) -> str:
    """The subject of a conversation's personal data."""
    return "c:" + conversation


def party_subject(party: str) -> str:
    """The subject of personal data about a number outside any conversation (by its hash)."""
    return "n:" + party


def party_hash(index_key: bytes, number: str) -> str:
    """The keyed hash of a phone number (its digits, so ``+1 888 397-3342`` and
    ``+18883973342`` are one party): what lookups and the erasure index use, never the
    number."""
    rest = number[1:] if number[:1] == "+" else number
    # E.164 as the contract gives it: no regex (a relay hashes one number per call).
    digits = rest if rest.isascii() and rest.isdigit() else re.sub(r"\D", "", number)
    return hmac.digest(index_key, digits.encode(), "sha256").hex()[:32]


class DataKey:
    """A subject's data key. Its AES-GCM cipher is made when first used and kept while the
    key is among the :data:`CIPHERS_KEPT` keys whose cipher was made last: making one per
    value costs as much as the encryption, and keeping one for every key a process holds
    (a relay keeps the keys of 100,000 conversations) costs 2.5 KB each (two OpenSSL
    contexts)."""

    __slots__ = ("_cipher", "secret")

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._cipher: AESGCM | None = None

    @property
    def cipher(self) -> AESGCM:
        """The key's AES-GCM cipher."""
        cipher = self._cipher
        if cipher is None:
            cipher = self._cipher = AESGCM(self.secret)
            _with_cipher.append(self)
            if len(_with_cipher) > CIPHERS_KEPT:
                _with_cipher.popleft()._cipher = None
        return cipher


CIPHERS_KEPT: Final = 4096
"""Data keys whose cipher a process keeps made at once (about 10 MB): more than the
conversations whose events a relay seals within a second at full load."""
_with_cipher: Final[deque[DataKey]] = deque()


def is_sealed(value: Any) -> bool:
    """Whether ``value`` is a sealed value."""
    return isinstance(value, dict) and isinstance(value.get(SEALED), str) and "v" in value


class RandomPool:
    """Random byte strings of one size (nonces, keys), from the OS's generator a few thousand
    at a time: one ``getrandom`` call per value cost the relay more than the encryption."""

    __slots__ = ("_at", "_pool", "_size", "_width")

    def __init__(self, width: int, at_once: int = 4096) -> None:
        self._width = width
        self._size = width * at_once
        self._pool = b""
        self._at = 0

    def take(self) -> bytes:
        """The next unused value."""
        at, width = self._at, self._width
        if at + width > len(self._pool):
            self._pool, at = os.urandom(self._size), 0
        self._at = at + width
        return self._pool[at : at + width]


random_nonce: Final = RandomPool(_NONCE).take
"""A random 96-bit AES-GCM nonce (random nonces are safe for far more values than one data
key ever seals)."""


def _aad(event_id: str, field: str) -> bytes:
    return f"{event_id}\n{field}".encode()


def seal_value(
    key: DataKey | None, subject: str, event_id: str, field: str, value: Any
) -> dict[str, str]:
    """``value`` (any JSON value) sealed under ``key`` for ``event_id``'s ``field``; under no
    key (the subject is erased), as erased: nothing of it is kept."""
    if key is None:
        return {SEALED: subject, "v": ""}
    nonce = random_nonce()
    sealed = key.cipher.encrypt(nonce, msgspec.json.encode(value), _aad(event_id, field))
    return {SEALED: subject, "v": b2a_base64(nonce + sealed, newline=False).decode()}


def open_value(key: DataKey, event_id: str, field: str, sealed: Mapping[str, Any]) -> Any:
    """The value sealed in ``sealed``; :class:`SealingError` if it does not open."""
    try:
        raw = base64.b64decode(sealed["v"], validate=True)
        clear = key.cipher.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(event_id, field))
    except (InvalidTag, ValueError, TypeError) as error:
        raise SealingError(f"{field} of event {event_id} does not open") from error
    return msgspec.json.decode(clear)


def personal_fields(
    data: Mapping[str, Any], wanted: Collection[str] = PERSONAL_FIELDS
) -> list[str]:
    """The fields of ``data`` among ``wanted`` (by default the contract's) that hold a value
    not sealed yet."""
    return [f for f, v in data.items() if f in wanted and _to_seal(v)]


def _to_seal(value: Any) -> bool:
    """Whether a personal field's value is one to seal: given, and not sealed yet."""
    return value not in (None, "") and (type(value) is not dict or not is_sealed(value))


THIS_CONVERSATION: Final = "c"
"""How a sealed value names its own event's conversation as its subject (shorter than the
subject written out, on every personal field of every call event)."""


def _ref(subject: str, conversation: str | None) -> str:
    return THIS_CONVERSATION if conversation and subject == "c:" + conversation else subject


def _subject(ref: str, conversation: str | None) -> str:
    return "c:" + conversation if ref == THIS_CONVERSATION and conversation else ref


def seal_data(
    data: Mapping[str, Any],
    fields: Iterable[str],
    key: DataKey | None,
    subject: str,
    event_id: str,
    conversation: str | None = None,
) -> dict[str, Any]:
    """``data`` (of an event about ``conversation``) with ``fields`` sealed under ``key``
    (None: the subject is erased, and so are the values)."""
    sealed = dict(data)
    ref = _ref(subject, conversation)
    for field in fields:
        sealed[field] = seal_value(key, ref, event_id, field, data[field])
    return sealed


def seal_in_conversation(
    data: Mapping[str, Any], fields: Iterable[str], key: DataKey | None, event_id: str
) -> Mapping[str, Any]:
    """:func:`seal_data` for an event under its own conversation's key, of ``fields`` those
    that hold a value not sealed yet (``data`` itself if none does)."""
    sealed: dict[str, Any] | None = None
    for field in fields:
        value = data[field]
        if not _to_seal(value):
            continue
        if sealed is None:
            sealed = dict(data)
        sealed[field] = seal_value(key, THIS_CONVERSATION, event_id, field, value)
    return data if sealed is None else sealed


def subjects_of(data: Mapping[str, Any], conversation: str | None = None) -> set[str]:
    """The subjects whose keys the sealed values of ``data`` (of an event about
    ``conversation``) need."""
    return {_subject(v[SEALED], conversation) for v in data.values() if is_sealed(v)}


def open_data(
    data: Mapping[str, Any],
    keys: Mapping[str, DataKey | None],
    event_id: str,
    conversation: str | None = None,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """``data`` with its sealed values opened; the fields whose key is gone (erased), and
    those that do not open (:class:`SealingError`), both left out. ``keys`` maps each
    subject to its data key, None when erased."""
    opened: dict[str, Any] = {}
    erased: list[str] = []
    unreadable: list[str] = []
    for field, value in data.items():
        if not is_sealed(value):
            opened[field] = value
            continue
        key = keys.get(_subject(value[SEALED], conversation))
        if key is None:
            erased.append(field)
            continue
        try:
            opened[field] = open_value(key, event_id, field, value)
        except SealingError:
            unreadable.append(field)
    return opened, erased, unreadable


_NUMBER_RUN: Final = re.compile(r"\+?\(?\d[\d ().-]{5,}\d")
_NOT_A_NUMBER: Final = re.compile(r"\d{4}-\d{2}-\d{2}.*|\d{13}-\d+")
"""Dates and stream ids, which look like runs of digits too."""


def mask_numbers(text: str) -> str:
    """``text`` with every phone-number-like run (7 digits or more, maybe with separators)
    masked but for its last two digits, for log lines and error texts (which must hold no
    caller's number); dates and stream ids are left alone."""

    def mask(match: re.Match[str]) -> str:
        found = match.group()
        digits = re.sub(r"\D", "", found)
        if len(digits) < 7 or _NOT_A_NUMBER.fullmatch(found):
            return found
        return "***" + digits[-2:]

    return _NUMBER_RUN.sub(mask, text)
