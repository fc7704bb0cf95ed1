"""The stand-in's login endpoints: SOAP login and the OAuth 2.0 token endpoint.

What simple-salesforce's ``SalesforceLogin`` speaks (SALESFORCE.md):

- ``POST /services/Soap/u/{version}``: username + password + security token in a SOAP
  envelope; answers ``sessionId`` and ``serverUrl``, or HTTP 500 with a SOAP fault whose
  ``sf:exceptionCode`` is ``INVALID_LOGIN``;
- ``POST /services/oauth2/token`` (form-encoded): ``grant_type=password`` (consumer key and
  secret, username and password), ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (an RS256
  assertion signed with the connected app's private key: ``iss`` consumer key, ``sub``
  username, ``aud`` login or test, ``exp``) and ``client_credentials`` (HTTP Basic consumer key
  and secret; the app needs a run-as user). Answers ``access_token`` and ``instance_url``, or
  400 ``{"error","error_description"}``.

``GET /services/oauth2/userinfo`` names the session's user (``user_id``).

Logins cost no API request (they do not count against the daily limit) and need no session.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import jwt
from aiohttp import web

from projections.salesforce.standin.access import ADMIN_USER_ID

if TYPE_CHECKING:
    from projections.salesforce.standin.server import StandInState

PARTNER_NS: Final = "urn:partner.soap.sforce.com"
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCES: Final = frozenset({"https://login.salesforce.com", "https://test.salesforce.com"})
ORG_ID: Final = "00D5g0000000001EAA"


@dataclass(frozen=True, slots=True)
class User:
    """A user who may log in: password and security token."""

    password: str
    security_token: str = ""
    use_any_api_auth: bool = True
    """The user permission SOAP ``login()`` requires (INSUFFICIENT_ACCESS without it, as the
    SOAP API's login() page says; the message's wording is assumed)."""


@dataclass(frozen=True, slots=True)
class ConnectedApp:
    """An OAuth client: its secret, its certificate's public key (JWT), its run-as user."""

    consumer_secret: str
    public_key_pem: str | None = None
    run_as: str | None = None
    """The user a client-credentials token acts as; without one that flow is refused."""


def session_token(request: web.Request) -> str:
    """The session id a request carries (``Authorization: Bearer ...``)."""
    return request.headers.get("Authorization", "").removeprefix("Bearer ").strip()


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _soap_fault(code: str, message: str) -> web.Response:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>\
<faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}</faultstring><detail>\
<sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>\
<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail>\
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""
    return web.Response(status=500, text=body, content_type="text/xml")


class LoginEndpoints:
    """Handlers that turn credentials into sessions of one :class:`StandInState`."""

    def __init__(self, state: StandInState) -> None:
        self.state = state

    def _instance_url(self, request: web.Request) -> str:
        return f"https://{request.host}"

    def _token(self, request: web.Request) -> web.Response:
        session = self.state.new_session()
        return web.json_response(
            {
                "access_token": session,
                "instance_url": self._instance_url(request),
                "id": f"{self._instance_url(request)}/id/{ORG_ID}/{ADMIN_USER_ID}",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": base64.b64encode(session.encode()[:32]).decode(),
            }
        )

    async def userinfo(self, request: web.Request) -> web.Response:
        """``GET /services/oauth2/userinfo``: the session's user (OpenID Connect UserInfo; a
        login's session runs as the admin). A token that is no session gets 403
        ``Bad_OAuth_Token`` (the status and text are assumed, not checked against an org)."""
        token = session_token(request)
        if token not in self.state.sessions:
            return web.Response(status=403, text="Bad_OAuth_Token")
        user = self.state.session_users.get(token, ADMIN_USER_ID)
        return web.json_response(
            {
                "sub": f"{self._instance_url(request)}/id/{ORG_ID}/{user}",
                "user_id": user,
                "organization_id": ORG_ID,
            }
        )

    def _password_ok(self, username: str | None, password: str | None) -> bool:
        user = self.state.users.get(username or "")
        return user is not None and password in (
            user.password + user.security_token,
            # OAuth's password flow takes the token appended too, unless IP-trusted.
            user.password if not user.security_token else None,
        )

    async def soap_login(self, request: web.Request) -> web.Response:
        """POST services/Soap/u/{version}: the partner API's ``login`` call."""
        try:
            envelope = ElementTree.fromstring(await request.read())
        except ElementTree.ParseError as error:
            return _soap_fault("INVALID_REQUEST", f"malformed SOAP envelope: {error}")
        username = envelope.findtext(f".//{{{PARTNER_NS}}}username")
        password = envelope.findtext(f".//{{{PARTNER_NS}}}password")
        if not self._password_ok(username, password):
            return _soap_fault(
                "INVALID_LOGIN", "Invalid username, password, security token; or user locked out."
            )
        if not self.state.users[str(username)].use_any_api_auth:
            return _soap_fault(
                "INSUFFICIENT_ACCESS", "The user does not have the Use Any API Auth permission."
            )
        session = self.state.new_session()
        version = request.match_info["version"]
        base = self._instance_url(request)
        body = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns="{PARTNER_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>\
<loginResponse><result><metadataServerUrl>{base}/services/Soap/m/{version}/{ORG_ID}\
</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox>\
<serverUrl>{base}/services/Soap/u/{version}/{ORG_ID}</serverUrl>\
<sessionId>{escape(session)}</sessionId><userId>0055g0000000001AAA</userId></result>\
</loginResponse></soapenv:Body></soapenv:Envelope>"""
        return web.Response(text=body, content_type="text/xml")

    async def oauth_token(self, request: web.Request) -> web.Response:
        """POST services/oauth2/token: the password, JWT bearer and client-credentials flows."""
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "password":
            return self._password_grant(request, {k: str(v) for k, v in form.items()})
        if grant == JWT_BEARER:
            return self._jwt_grant(request, str(form.get("assertion", "")))
        if grant == "client_credentials":
            return self._client_credentials_grant(request)
        return _oauth_error("unsupported_grant_type", "grant type not supported")

    def _app(self, consumer_key: str) -> ConnectedApp | None:
        return self.state.apps.get(consumer_key)

    def _password_grant(self, request: web.Request, form: dict[str, str]) -> web.Response:
        app = self._app(form.get("client_id", ""))
        if app is None:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if form.get("client_secret") != app.consumer_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        if not self._password_ok(form.get("username"), form.get("password")):
            return _oauth_error("invalid_grant", "authentication failure")
        return self._token(request)

    def _jwt_grant(self, request: web.Request, assertion: str) -> web.Response:
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return _oauth_error("invalid_grant", "invalid assertion")
        app = self._app(str(claims.get("iss", "")))
        if app is None:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if app.public_key_pem is None:
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                app.public_key_pem,
                algorithms=["RS256"],
                audience=list(AUDIENCES),
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.InvalidAudienceError:
            return _oauth_error("invalid_grant", "audience is invalid")
        except jwt.ExpiredSignatureError:
            return _oauth_error("invalid_grant", "expired authorization code")
        except jwt.InvalidTokenError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims["sub"] not in self.state.users:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._token(request)

    def _client_credentials_grant(self, request: web.Request) -> web.Response:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            key = secret = ""
        app = self._app(key) if scheme == "Basic" else None
        if app is None:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if secret != app.consumer_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        if app.run_as is None:
            return _oauth_error("invalid_grant", "no client credentials user enabled")
        return self._token(request)
