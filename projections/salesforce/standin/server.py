"""The stand-in's HTTPS REST surface: the subset of Salesforce's REST API the sink uses.

Served with aiohttp over TLS (simple-salesforce always speaks https) with a throwaway CA from
``trustme``; clients trust ``StandIn.ca_file``. Every response carries ``Sforce-Limit-Info``.
Requests need ``Authorization: Bearer <session>`` of a live session, else 401
``INVALID_SESSION_ID``; sessions come from :meth:`StandInState.new_session` or from the login
endpoints (``login.py``: SOAP and OAuth, for the users and connected apps the state holds).
:class:`Faults` injects what tests must survive: expired sessions, the daily limit, the
concurrent-request limit, 503s, row locks (bare or wrapped by a trigger), and writes that
commit but whose answer never arrives. Like a real org, a request line plus headers over
16,384 bytes gets 414 (431 when the headers alone are over), and a JSON value of the wrong
type fails a whole collection request (400 ``JSON_PARSER_ERROR``). Assumed, not checked
against an org: see ``faults.py``.

Paths, under ``/services/data/vXX.X/``: ``sobjects``, ``sobjects/{Obj}/describe``,
``sobjects/{Obj}`` (POST), ``sobjects/{Obj}/{Id}`` (GET, PATCH),
``sobjects/{Obj}/{Field}/{value}`` (PATCH upsert), ``composite/sobjects`` (POST, PATCH),
``composite/sobjects/{Obj}/{Field}`` (PATCH upsert), ``query?q=``, ``queryAll?q=``,
``search?q=`` (phone search), ``limits``; and ``/services/Soap/u/vXX.X``,
``/services/oauth2/token`` for logins.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import msgspec
import trustme
from aiohttp import web

from projections.salesforce.standin.faults import (
    CONCURRENT_LIMIT_MESSAGE,
    TRIGGER_LOCK_MESSAGE,
    Faults,
    oversized,
)
from projections.salesforce.standin.login import (
    ConnectedApp,
    LoginEndpoints,
    User,
    session_token,
)
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import RecordRefused, SalesforceError, describe_object
from projections.salesforce.standin.search import run_phone_search
from projections.salesforce.standin.soql import run_query
from projections.salesforce.standin.telephony import BASE as TELEPHONY_BASE
from projections.salesforce.standin.telephony import TelephonyIntegration
from projections.salesforce.standin.telephony import add_routes as add_telephony_routes

MAX_COLLECTION: Final = 200
PARSER_LIMIT: Final = 65_536
"""aiohttp's own line and header limits, raised so the org's limit is the one that answers."""
LOGIN_PATHS: Final = ("/services/Soap/", "/services/oauth2/", TELEPHONY_BASE)
"""Paths without a session: logins, and Salesforce Voice's API (its own JWT)."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class StandInState:
    """The org, its users, connected apps and sessions, its API usage and its faults."""

    org: Org = field(default_factory=Org)
    sessions: set[str] = field(default_factory=set)
    session_users: dict[str, str] = field(default_factory=dict)
    """Session → the User id it runs as (what the org's sharing judges)."""
    users: dict[str, User] = field(default_factory=dict)
    """Who may log in, by username."""
    apps: dict[str, ConnectedApp] = field(default_factory=dict)
    """OAuth clients, by consumer key."""
    api_usage: int = 0
    api_max: int = 100_000
    faults: Faults = field(default_factory=Faults)
    telephony: TelephonyIntegration = field(default_factory=TelephonyIntegration)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of every request, for tests and ``up`` to show."""
    in_flight: int = 0
    creates: int = 0
    """Collection creates received (what ``Faults.drop_creates_every`` counts)."""
    queries: list[str] = field(default_factory=list)
    """The SOQL of every query, in order (what tests count lookups by)."""
    late_pending: int = 0
    """Late creates not committed yet."""

    def new_session(self, user: str | None = None) -> str:
        """A fresh session id (what a login would return), running as ``user`` (a User id)
        when the org's activity sharing should apply to it."""
        session = "00D5g0000000001!" + secrets.token_urlsafe(24)
        self.sessions.add(session)
        if user is not None:
            self.session_users[session] = user
        return session

    def expire_sessions(self) -> None:
        """Every session expires: the next request gets 401 INVALID_SESSION_ID."""
        self.sessions.clear()


def _errors(status: int, errors: list[SalesforceError]) -> web.Response:
    body = [{"message": e.message, "errorCode": e.statusCode, "fields": e.fields} for e in errors]
    return web.json_response(body, status=status)


def _result(
    record_id: str | None, errors: list[SalesforceError], created: bool | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": record_id,
        "success": not errors,
        "errors": [msgspec.to_builtins(e) for e in errors],
    }
    if created is not None:
        result["created"] = created
    return result


class Api:
    """Request handlers over one :class:`StandInState`."""

    def __init__(self, state: StandInState) -> None:
        self.state = state

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Auth, limits, faults and the limit header, for every request."""
        state = self.state
        state.requests.append((request.method, request.path))
        too_long = oversized(request)
        if too_long is not None:
            return too_long
        if request.path.startswith(LOGIN_PATHS):
            return await handler(request)  # logins need no session and cost no API request
        response = await self._guarded(request, handler)
        response.headers["Sforce-Limit-Info"] = f"api-usage={state.api_usage}/{state.api_max}"
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        state = self.state
        if session_token(request) not in state.sessions:
            return _errors(
                401, [SalesforceError("INVALID_SESSION_ID", "Session expired or invalid")]
            )
        if state.api_usage >= state.api_max:
            return _errors(
                403, [SalesforceError("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")]
            )
        state.api_usage += 1
        if state.faults.concurrent_max and state.in_flight >= state.faults.concurrent_max:
            return _errors(
                403, [SalesforceError("REQUEST_LIMIT_EXCEEDED", CONCURRENT_LIMIT_MESSAGE)]
            )
        state.in_flight += 1
        try:
            return await self._faulty(request, handler)
        finally:
            state.in_flight -= 1

    async def _faulty(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        state = self.state
        if state.faults.delay_seconds:
            await asyncio.sleep(state.faults.delay_seconds)
        if state.faults.fail_next:
            status, code, message = state.faults.fail_next.pop(0)
            return _errors(status, [SalesforceError(code, message)])
        try:
            response = await handler(request)
            if state.faults.hold_seconds:
                await asyncio.sleep(state.faults.hold_seconds)
            if self._drops(request) and request.transport is not None:  # (None: client gone)
                request.transport.abort()  # committed; the client never hears of it
            return response
        except RecordRefused as refused:
            status = 404 if refused.errors[0].statusCode == "NOT_FOUND" else 400
            status = 300 if refused.errors[0].statusCode == "MULTIPLE_CHOICES" else status
            return _errors(status, refused.errors)

    def _drops(self, request: web.Request) -> bool:
        """Whether this collection create loses its connection after taking effect."""
        if request.method != "POST" or not request.path.rstrip("/").endswith("/composite/sobjects"):
            return False
        faults = self.state.faults
        self.state.creates += 1
        if faults.drop_next_creates > 0:
            faults.drop_next_creates -= 1
            return True
        every = faults.drop_creates_every
        return bool(every) and self.state.creates % every == 0

    def _org(self, request: web.Request) -> Org:
        """The org, acting as the user of ``request``'s session for what follows (call it
        after the request's last await: another request may act in between)."""
        self.state.org.viewer = self.state.session_users.get(session_token(request))
        return self.state.org

    async def _json(self, request: web.Request) -> Any:
        try:
            return msgspec.json.decode(await request.read())
        except msgspec.DecodeError as error:
            raise RecordRefused([SalesforceError("JSON_PARSER_ERROR", str(error))]) from None

    def _locked(self) -> list[SalesforceError]:
        faults = self.state.faults
        if faults.lock_next_records > 0:
            faults.lock_next_records -= 1
            return [
                SalesforceError(
                    "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
                )
            ]
        if faults.trigger_lock_next_records > 0:
            faults.trigger_lock_next_records -= 1
            return [SalesforceError("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", TRIGGER_LOCK_MESSAGE)]
        return []

    async def sobjects(self, request: web.Request) -> web.Response:
        """GET sobjects: the object list."""
        names = sorted(self.state.org.objects)
        return web.json_response({"sobjects": [{"name": n} for n in names]})

    async def describe(self, request: web.Request) -> web.Response:
        """GET sobjects/{Obj}/describe."""
        return web.json_response(describe_object(self.state.org.spec(request.match_info["obj"])))

    async def create(self, request: web.Request) -> web.Response:
        """POST sobjects/{Obj}."""
        locked = self._locked()
        if locked:
            return _errors(400, locked)
        values = await self._json(request)
        record_id = self._org(request).create(request.match_info["obj"], values)
        return web.json_response(_result(record_id, []), status=201)

    async def record(self, request: web.Request) -> web.Response:
        """GET or PATCH sobjects/{Obj}/{Id}."""
        name, record_id = request.match_info["obj"], request.match_info["id"]
        if request.method == "GET":
            return web.json_response(self._org(request).get(name, record_id))
        locked = self._locked()
        if locked:
            return _errors(400, locked)
        values = await self._json(request)
        self._org(request).update(name, record_id, values)
        return web.Response(status=204)

    async def upsert(self, request: web.Request) -> web.Response:
        """PATCH sobjects/{Obj}/{Field}/{value}."""
        values = await self._json(request)
        record_id, created = self._org(request).upsert(
            request.match_info["obj"],
            request.match_info["field"],
            unquote(request.match_info["value"]),
            values,
        )
        return web.json_response(_result(record_id, [], created), status=201 if created else 200)

    async def collection(self, request: web.Request) -> web.Response:
        """POST (create) or PATCH (update, or upsert by a field) composite/sobjects."""
        body = await self._json(request)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise RecordRefused(
                [SalesforceError("JSON_PARSER_ERROR", "The request needs a list of records")]
            )
        if len(records) > MAX_COLLECTION:
            raise RecordRefused(
                [
                    SalesforceError(
                        "EXCEEDED_ID_LIMIT",
                        "record limit reached. cannot submit more than 200 records into this call",
                    )
                ]
            )
        unreadable = self._unreadable(request, records)
        if unreadable is not None:
            return _errors(400, [unreadable])
        self._org(request)  # what follows runs as this request's user, with no await between
        if request.method == "POST" and self.state.faults.late_create():
            # A slow trigger: the insert commits long after the request arrived, whether or
            # not anyone still waits, and nothing answers.
            delay = self.state.faults.late_seconds
            self.state.late_pending += 1
            viewer = self.state.org.viewer

            def commit() -> None:
                self.state.org.viewer = viewer
                for record in records:
                    self._write_one(request, record)
                self.state.late_pending -= 1

            asyncio.get_running_loop().call_later(delay, commit)
            await asyncio.sleep(delay)
            if request.transport is not None:  # the client may have hung up already
                request.transport.abort()
            return web.Response(status=500)
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = copy.deepcopy(self.state.org.records) if all_or_none else None
        results = [self._write_one(request, record) for record in records]
        if snapshot is not None and not all(r["success"] for r in results):
            self.state.org.records = snapshot
            rolled = SalesforceError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid "
                "and the request was using AllOrNone header",
            )
            results = [r if not r["success"] else _result(None, [rolled]) for r in results]
        return web.json_response(results)

    def _unreadable(self, request: web.Request, records: list[Any]) -> SalesforceError | None:
        """A value of the wrong JSON type anywhere fails the whole request, as on a real org
        (``JSON_PARSER_ERROR ... at [line:1, column:N]``; the column is approximate)."""
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                continue
            name = (record.get("attributes") or {}).get("type") or request.match_info.get("obj")
            values = {k: v for k, v in record.items() if k != "attributes"}
            error = self.state.org.deserialization_error(str(name), values)
            if error is not None:
                column = 30 + index * 200
                return SalesforceError(
                    "JSON_PARSER_ERROR", f"{error.message} at [line:1, column:{column}]"
                )
        return None

    def _write_one(self, request: web.Request, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            return _result(None, [SalesforceError("JSON_PARSER_ERROR", "a record is an object")])
        values = {k: v for k, v in record.items() if k != "attributes"}
        name = (record.get("attributes") or {}).get("type") or request.match_info.get("obj")
        if not isinstance(name, str):
            return _result(
                None, [SalesforceError("INVALID_TYPE", "Must send a concrete entity type.")]
            )
        locked = self._locked()
        if locked:
            return _result(None, locked)
        try:
            if "field" in request.match_info:
                key = request.match_info["field"]
                record_id, created = self.state.org.upsert(name, key, values.pop(key, None), values)
                return _result(record_id, [], created)
            if request.method == "POST":
                return _result(self.state.org.create(name, values), [])
            record_id = values.pop("Id", None)
            self.state.org.update(name, record_id, values)
            return _result(record_id, [])
        except RecordRefused as refused:
            return _result(values.get("Id"), refused.errors)

    async def query(self, request: web.Request) -> web.Response:
        """GET query?q=SOQL (what is not deleted or archived) or queryAll?q=SOQL (all)."""
        all_rows = request.path.rstrip("/").endswith("/queryAll")
        self.state.queries.append(request.query.get("q", ""))
        rows = run_query(self._org(request), request.query.get("q", ""), all_rows=all_rows)
        return web.json_response({"totalSize": len(rows), "done": True, "records": rows})

    async def search(self, request: web.Request) -> web.Response:
        """GET search?q=SOSL (phone searches)."""
        rows = run_phone_search(self.state.org, request.query.get("q", ""))
        return web.json_response({"searchRecords": rows})

    async def limits(self, request: web.Request) -> web.Response:
        """GET limits: the daily API request budget."""
        state = self.state
        return web.json_response(
            {
                "DailyApiRequests": {
                    "Max": state.api_max,
                    "Remaining": state.api_max - state.api_usage,
                }
            }
        )


def build_app(state: StandInState) -> web.Application:
    """The aiohttp application of the stand-in (routes accept a trailing slash)."""
    api = Api(state)
    login = LoginEndpoints(state)
    app = web.Application(
        middlewares=[api.guard],
        handler_args={"max_line_size": PARSER_LIMIT, "max_field_size": PARSER_LIMIT},
    )
    app.router.add_post("/services/Soap/u/{version:[0-9.]+}", login.soap_login)
    app.router.add_post("/services/oauth2/token", login.oauth_token)
    app.router.add_get("/services/oauth2/userinfo", login.userinfo)
    base = "/services/data/{version:v[0-9.]+}"
    routes = [
        ("GET", "/sobjects", api.sobjects),
        ("GET", "/sobjects/{obj}/describe", api.describe),
        ("POST", "/sobjects/{obj}", api.create),
        ("*", "/sobjects/{obj}/{id}", api.record),
        ("PATCH", "/sobjects/{obj}/{field}/{value}", api.upsert),
        ("*", "/composite/sobjects", api.collection),
        ("PATCH", "/composite/sobjects/{obj}/{field}", api.collection),
        ("GET", "/query", api.query),
        ("GET", "/queryAll", api.query),
        ("GET", "/search", api.search),
        ("GET", "/limits", api.limits),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, base + path, handler)
        app.router.add_route(method, base + path + "/", handler)
    add_telephony_routes(app, lambda: state.org, state.telephony)
    return app


class StandIn:
    """The stand-in served over HTTPS on loopback."""

    def __init__(self, state: StandInState | None = None, *, ca_dir: Path | None = None) -> None:
        self.state = state or StandInState()
        self._ca = trustme.CA()
        self._directory = tempfile.TemporaryDirectory(prefix="sfstandin-")
        directory = ca_dir or Path(self._directory.name)
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "standin-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def instance_url(self) -> str:
        """``https://127.0.0.1:PORT``, what simple-salesforce takes as ``instance_url``."""
        return f"https://127.0.0.1:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen with a certificate for 127.0.0.1 and localhost."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop serving; the CA file stays (as when the org is unreachable)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        """Stop serving and remove the CA file."""
        await self.stop()
        self._directory.cleanup()
