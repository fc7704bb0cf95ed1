"""A lean websocket load generator: ``websockets``' sans-I/O client driven by an asyncio
protocol, as the relay itself is.

A benchmark must measure the server, not its client: an ordinary asyncio websocket client
costs about as much CPU per event as the relay, so on a small machine it saturates first
and hides what the relay can do. Here each socket sends its next event from the callback that
received an ack (no task, future or lock per event) and writes what a tick produced at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
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
        protocol = self._protocol
        protocol.receive_data(data)
        now = time.perf_counter()
        for event in protocol.events_received():
            if isinstance(event, Response):
                if protocol.state is State.OPEN:
                    protocol.send_text(self._hello)
                else:
                    self._fail(RuntimeError(f"handshake refused: {event.status_code}"))
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._answer(answer_decoder.decode(event.data), now)
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
        self._protocol.send_text(self._frame(event_id, self._n))
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
        """Close the socket (normal closure)."""
        if self._protocol.state is State.OPEN:
            self._protocol.send_close()
            self._flush()
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        writes = self._protocol.data_to_send()
        if self._transport is not None and writes:
            self._transport.write(b"".join(writes))


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
