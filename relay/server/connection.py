"""One TCP connection of the relay: ``websockets``' sans-I/O protocol driven by our own
asyncio protocol.

No task, future or lock per connection or per frame: received bytes go through
:class:`~websockets.server.ServerProtocol`, and each complete message is handed to the
connection's :class:`Application` at once. Frames sent are serialized into the protocol and
written once per loop tick, however many a batch of acks produced (one ``write`` per
connection, not one per frame). Heartbeats come from one relay-wide loop
(:meth:`Connection.heartbeat`): a socket that said something within the interval is not
pinged, so an idle socket costs one ping per interval and a busy one nothing.

Plain HTTP GETs on the same port (health, metrics, the wrapper library) are answered by
:class:`~relay.server.http.HttpRoutes`; a socket handshake passes its Origin check
first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import BytesLike

from relay.server.http import SOCKET_PATH, HttpRoutes, path_of
from relay.wire.frames import SUBPROTOCOL
from relay.wire.heads import HeadEnd

log = logging.getLogger(__name__)

SERVER_HEADER: Final = "softphone-relay"
SINGLE_HEADERS: Final = ("Host", "Origin", "Sec-WebSocket-Key", "Sec-WebSocket-Version")
"""Headers a request may carry once: two of them (which one counts?) get a 400."""
OPEN_TIMEOUT: Final = 10.0
"""How long a new TCP connection may take to send its HTTP request."""


class Application(Protocol):
    """What runs on an open websocket: told of each message and of the end."""

    def message(self, data: str | bytes, received: float) -> None:
        """One complete message (text as ``str``, binary as ``bytes``); ``received`` is
        ``time.perf_counter()`` when its bytes arrived."""

    def closed(self) -> None:
        """The TCP connection is gone; nothing more can be sent."""

    def going_away(self) -> None:
        """The relay stops: close (1001) once what is under way is answered."""


@dataclass(eq=False)
class Endpoint:
    """What every connection of one listening socket shares."""

    routes: HttpRoutes
    start: Callable[[Connection], Application]
    """Called once per accepted websocket handshake: the application for it."""
    max_size: int
    close_timeout: float
    connections: set[Connection] = field(default_factory=set)
    """The open websockets, each with its application (for heartbeats and shutdown)."""
    responding: set[asyncio.Task[None]] = field(default_factory=set)
    emptied: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the last open websocket is gone."""


class Connection(asyncio.Protocol):
    """One client connection: the handshake, then websocket frames in and out."""

    __slots__ = (
        "_app",
        "_endpoint",
        "_eof_written",
        "_flush_scheduled",
        "_fragments",
        "_head",
        "_pinged",
        "_protocol",
        "_read_paused",
        "_requested",
        "_timer",
        "_transport",
        "_write_paused",
        "heard",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._protocol = ServerProtocol(
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            max_size=endpoint.max_size,
        )
        self._transport: asyncio.Transport | None = None
        self._app: Application | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._fragments: tuple[Opcode, list[BytesLike]] | None = None
        self._flush_scheduled = False
        self._read_paused = False
        self._write_paused = False
        self._pinged = False
        self._requested = False
        """The one HTTP request of the connection has come (any later one is not read)."""
        self._eof_written = False
        self._head = HeadEnd()
        self.heard = time.monotonic()
        """When the client last sent anything (monotonic)."""

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not a subclass of asyncio.Transport, but is one).
        self._transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(OPEN_TIMEOUT, self.abort)

    def data_received(self, data: bytes) -> None:
        received = time.perf_counter()
        self.heard = time.monotonic()
        self._pinged = False
        protocol = self._protocol
        if protocol.state is State.CONNECTING:
            data = self._request_part(data)
            if not data:
                return
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._frame(event, received)
            elif isinstance(event, Request) and not self._requested:
                # One request per connection (every answer says ``Connection: close``): a
                # second one pipelined behind it is not read.
                self._requested = True
                self._handshake(event)
        self._write()

    def eof_received(self) -> None:
        self._protocol.receive_eof()
        self._write()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        connections = self._endpoint.connections
        if self in connections:
            connections.discard(self)
            if not connections:
                self._endpoint.emptied.set()
        app, self._app = self._app, None
        if app is not None:
            app.closed()

    def pause_writing(self) -> None:
        # The client does not read what it is sent: stop reading what it sends (its acks
        # would pile up) until the buffer drains.
        self._write_paused = True
        self._pause_or_resume()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._pause_or_resume()

    # -- what the application and the relay call -----------------------------------------------

    @property
    def open(self) -> bool:
        """True while frames can be sent."""
        return self._protocol.state is State.OPEN

    @property
    def application(self) -> Application | None:
        """What runs on the socket, once its handshake was accepted."""
        return self._app

    @property
    def close_code(self) -> int | None:
        """The close code sent or received, once the closing handshake began."""
        return self._protocol.close_code

    def send(self, message: bytes) -> None:
        """Send a text message (UTF-8 JSON); dropped when the connection is closing."""
        if self._protocol.state is not State.OPEN:
            return
        self._protocol.send_text(message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (what was sent before goes first); the TCP
        connection is dropped if the client has not finished it within the close timeout."""
        if self._protocol.state is not State.OPEN:
            return
        self._protocol.send_close(code, reason)
        self._write()

    def pause_reading(self, paused: bool) -> None:
        """Stop (or go on) reading the client: the application's backpressure."""
        self._read_paused = paused
        self._pause_or_resume()

    def heartbeat(self, now: float, interval: float) -> None:
        """From the relay's heartbeat loop: ping a socket silent for ``interval``; fail one
        that answered no ping within ``interval`` (1011, as ``websockets`` does)."""
        protocol = self._protocol
        if protocol.state is not State.OPEN or now - self.heard < interval:
            return
        if self._pinged:
            protocol.fail(1011, "keepalive ping timeout")
        else:
            self._pinged = True
            protocol.send_ping(b"")
        self._write()

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self._transport is not None:
            self._transport.abort()

    # -- inside ------------------------------------------------------------------------------

    def _frame(self, frame: Frame, received: float) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(opcode, frame.data, received)
            else:
                self._fragments = (opcode, [frame.data])
        elif opcode is Opcode.CONT and self._fragments is not None:
            first, parts = self._fragments
            parts.append(frame.data)
            if frame.fin:
                self._fragments = None
                self._message(first, b"".join(parts), received)

    def _message(self, opcode: Opcode, data: BytesLike, received: float) -> None:
        if self._app is None:
            return
        if opcode is Opcode.BINARY:
            self._app.message(bytes(data), received)
            return
        try:
            text = bytes(data).decode()  # received frames hold bytes: no copy
        except UnicodeDecodeError as error:
            # RFC 6455 8.1: a text message that is not UTF-8 fails the connection (1007).
            self._protocol.fail(1007, f"{error.reason} at position {error.start}")
            return
        self._app.message(text, received)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write()

    def _write(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing() or self._eof_written:
            self._protocol.data_to_send()
            return
        writes = self._protocol.data_to_send()
        if writes and writes[-1]:  # frames only, the usual case: one write (system call)
            transport.write(writes[0] if len(writes) == 1 else b"".join(writes))
        else:
            for data in writes:
                if data:
                    transport.write(data)
                elif transport.can_write_eof():
                    self._eof_written = True
                    try:
                        transport.write_eof()
                    except (OSError, RuntimeError):
                        transport.close()
                else:
                    transport.close()
        if self._timer is None and self._protocol.close_expected():
            self._timer = asyncio.get_running_loop().call_later(
                self._endpoint.close_timeout, transport.abort
            )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pause_or_resume(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._read_paused or self._write_paused:
            if transport.is_reading():
                transport.pause_reading()
        elif not transport.is_reading():
            transport.resume_reading()

    def _request_part(self, data: bytes) -> bytes:
        """Of what arrives before the answer, the bytes up to the end of the request's head:
        nothing after it is read (a second request pipelined behind a GET, or frames sent
        before the handshake's answer, which RFC 6455 forbids)."""
        if self._requested:
            return b""
        end = self._head.find(data)
        return data if end == -1 else data[:end]

    def _handshake(self, request: Request) -> None:
        self._cancel_timer()
        protocol = self._protocol
        routes = self._endpoint.routes
        duplicated = [name for name in SINGLE_HEADERS if len(request.headers.get_all(name)) > 1]
        if duplicated:
            log.warning("event=http_refused reason=duplicate_header header=%s", duplicated[0])
            self._send_response(protocol.reject(400, f"more than one {duplicated[0]} header\n"))
            return
        if path_of(request) != SOCKET_PATH:
            task = asyncio.get_running_loop().create_task(self._respond(request))
            self._endpoint.responding.add(task)
            task.add_done_callback(self._endpoint.responding.discard)
            return
        response = routes.refuse_socket(protocol, request) or protocol.accept(request)
        self._send_response(response)
        if response.status_code == 101:
            self._endpoint.connections.add(self)
            self._app = self._endpoint.start(self)

    async def _respond(self, request: Request) -> None:
        try:
            response = await self._endpoint.routes.respond(self._protocol, request)
        except Exception:  # a bulkhead: one failed GET must not go unanswered for ever
            log.exception("event=http_request_failed path=%s", path_of(request))
            response = self._protocol.reject(500, "internal error\n")
        try:
            self._send_response(response)
        except InvalidState:  # the client went away meanwhile
            return

    def _send_response(self, response: Response) -> None:
        response.headers["Server"] = SERVER_HEADER
        self._protocol.send_response(response)
        self._write()
