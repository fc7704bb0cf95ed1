"""A lean websocket load generator: ``websockets``' sans-I/O client driven by an asyncio
protocol, as the relay itself is.

A benchmark must measure the server, not its client: an ordinary asyncio websocket client
costs about as much CPU per event as the relay, so on a small machine it saturates first
and hides what the relay can do. Here each socket sends its next event from the callback that
received an ack (no task, future or lock per event) and writes what a tick produced at once.

Once the handshake is done, event frames are built by hand with an all-zero masking key (RFC
6455 requires a client to mask, and any key is valid; zero makes masking free), and the
relay's frames, small unfragmented text frames, are cut from the stream without a generic
parser. The relay still unmasks and parses every frame as it would a browser's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri


class Answer(msgspec.Struct):
    """What the relay answers: a welcome, an ack or a nack (other fields ignored)."""

    type: str
    id: str | None = None
    code: str | None = None


answer_decoder = msgspec.json.Decoder(Answer)

EventFrame = Callable[[str, int], bytes]
"""Builds the event frame with id ``prefix-n`` for event number ``n``."""


class LoadSocket(asyncio.Protocol):
    """One agent's socket: hello, then up to ``window`` events in flight (or one every
    ``interval`` seconds), each ack's latency kept."""

    def __init__(self, url: str, hello: bytes, frame: EventFrame, prefix: str) -> None:
        self._protocol = ClientProtocol(parse_uri(url), subprotocols=["softphone.v1"])  # type: ignore[list-item]
        self._hello = hello
        self._frame = frame
        self._prefix = prefix
        self._transport: asyncio.Transport | None = None
        self._sent_at: dict[str, float] = {}
        self._n = 0
        self._window = 0
        self._deadline = 0.0
        self._open = False
        self._buffer = b""
        self._out: list[bytes] = []
        self.acked = 0
        self.latencies: list[float] = []
        loop = asyncio.get_running_loop()
        self.welcomed: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._protocol.send_request(self._protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._open:
            self._frames(data)
            return
        protocol = self._protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Response):
                if protocol.state is not State.OPEN:
                    self._fail(RuntimeError(f"handshake refused: {event.status_code}"))
                    return
                self._open = True
                self._write(client_frame(self._hello))
                rest = protocol.reader.buffer  # frames that came with the response
                if rest:
                    self._frames(bytes(rest))
                return

    def _frames(self, data: bytes) -> None:
        """Cut the relay's frames from the stream: text frames of up to 64 KiB, unmasked."""
        buffer = self._buffer + data if self._buffer else data
        now = time.perf_counter()
        at, end = 0, len(buffer)
        while end - at >= 2:
            length = buffer[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                if end - at < 4:
                    break
                length = int.from_bytes(buffer[at + 2 : at + 4])
                start = at + 4
            elif length == 127:
                raise RuntimeError("a relay frame over 64 KiB")
            if end < start + length:
                break
            if buffer[at] & 0x0F == 0x1:  # text; closes and pings end the run
                self._answer(answer_decoder.decode(buffer[start : start + length]), now)
            at = start + length
        self._buffer = buffer[at:]
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}"))

    def _fail(self, error: Exception) -> None:
        for future in (self.welcomed, self.finished):
            if not future.done():
                future.set_exception(error)

    def _answer(self, answer: Answer, now: float) -> None:
        if answer.type == "welcome":
            self.welcomed.set_result(None)
        elif answer.type == "ack":
            sent = self._sent_at.pop(answer.id or "", None)
            if sent is None:
                return
            self.latencies.append(now - sent)
            self.acked += 1
            if now < self._deadline:
                if self._window:
                    self._send(now)
            elif not self._sent_at and not self.finished.done():
                self.finished.set_result(None)
        else:
            self._fail(RuntimeError(f"relay answered {answer}"))

    def _send(self, now: float) -> None:
        event_id = f"{self._prefix}-{self._n}"
        self._sent_at[event_id] = now
        self._out.append(client_frame(self._frame(event_id, self._n)))
        self._n += 1

    def saturate(self, window: int, deadline: float) -> None:
        """Keep ``window`` events in flight until ``deadline`` (perf_counter)."""
        self._window, self._deadline = window, deadline
        now = time.perf_counter()
        for _ in range(window):
            self._send(now)
        self._flush()

    def pace(self, interval: float, first: float, deadline: float) -> None:
        """Send one event every ``interval`` seconds from ``first`` until ``deadline``."""
        loop = asyncio.get_running_loop()
        clock = loop.time() - time.perf_counter()
        self._deadline = deadline

        def tick(at: float) -> None:
            now = time.perf_counter()
            if now >= deadline or self._protocol.state is not State.OPEN:
                if not self._sent_at and not self.finished.done():
                    self.finished.set_result(None)
                return
            self._send(now)
            self._flush()
            loop.call_at(clock + at + interval, tick, at + interval)

        loop.call_at(clock + first, tick, first)

    def close(self) -> None:
        """Close the socket (a close frame, 1000, then the TCP connection)."""
        if self._open:
            self._write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
        if self._transport is not None:
            self._transport.close()
        self._open = False

    def _flush(self) -> None:
        if self._out:
            self._write(b"".join(self._out))
            self._out.clear()
        writes = self._protocol.data_to_send()
        if writes:
            self._write(b"".join(writes))

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


def client_frame(payload: bytes) -> bytes:
    """A masked text frame with the all-zero key (so the payload is sent as it is)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((0x81, 0x80 | 126)) + length.to_bytes(2)
    else:
        header = bytes((0x81, 0x80 | 127)) + length.to_bytes(8)
    return header + b"\x00\x00\x00\x00" + payload


async def open_socket(
    host: str, port: int, url: str, hello: bytes, frame: EventFrame, prefix: str
) -> LoadSocket:
    """Connect, say hello and wait for the welcome."""
    loop = asyncio.get_running_loop()
    _, socket = await loop.create_connection(
        lambda: LoadSocket(url, hello, frame, prefix), host, port
    )
    await socket.welcomed
    return socket
