"""The softphone contract as types: hook payloads, commands and CRM-side requests.

The source is ``SOFTPHONE-CONTRACT.txt`` with its copy errors corrected as DESIGN.md section 2
says: ``callEnded`` ends a completed call, ``dialledTo`` is the dialled number, and
``participantType`` is one of ``Traveler``, ``Supplier``, ``Agent``.

Choices where the contract is silent:

- Identity fields (``partnerId``, ``conversationId``) are required on every call hook except
  ``incomingCall``, which the softphone may call with no argument at all.
- Other fields are optional (a softphone that omits one must not lose the call event), may be
  ``null``, and are typed and checked when present.
- Phone numbers are E.164. ``callerANI`` may also be the empty string: a withheld caller id is
  a real call, not an invalid one.

Event data keeps unknown fields: :func:`validate_event_data` returns the softphone's dict with
the known fields checked and defaults (``language``) filled in.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Final, Literal

import msgspec

from relay.errors import InvalidEvent, UnknownEvent


def whole(body: str) -> str:
    """A pattern that matches the whole string and nothing more, the same in Python (msgspec,
    ``re.search``) and in JavaScript (the schema): ``^...$`` would also accept a trailing
    newline in Python, so ``"bob\\n"`` would pass as another id than ``"bob"``."""
    return rf"^(?:{body})(?![\s\S])"


E164_PATTERN: Final = whole(r"\+[1-9][0-9]{1,14}")

E164 = Annotated[str, msgspec.Meta(pattern=E164_PATTERN, description="E.164 phone number")]
CallerId = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"(\+[1-9][0-9]{1,14})?"), description="E.164, or empty if withheld"
    ),
]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(max_length=32_000)]
ShortText = Annotated[str, msgspec.Meta(max_length=255)]
ParticipantType = Literal["Traveler", "Supplier", "Agent"]


class Hook(msgspec.Struct, kw_only=True):
    """Base of the payloads the softphone passes to the wrapper library's hooks."""


class CallHook(Hook, kw_only=True):
    """A hook about one conversation of one partner."""

    partnerId: Id
    conversationId: Id


class IncomingCall(Hook, kw_only=True):
    """``incomingCall``: a call is routed to the agent (every field may be missing)."""

    partnerId: Id | None = None
    conversationId: Id | None = None
    callerANI: CallerId | None = None
    language: ShortText = "en_US"


class CallAccepted(CallHook, kw_only=True):
    """``callAccepted``: the agent accepted the call."""

    callerANI: CallerId | None = None
    language: ShortText = "en_US"
    ivrExitPath: ShortText | None = None
    channelName: ShortText | None = None
    reservationStartDate: ShortText | None = None
    specialEvent: ShortText | None = None
    escalationType: ShortText | None = None
    recordingStatus: Literal["ON", "OFF"] | None = None


class CallRejected(CallHook, kw_only=True):
    """``callRejected``: the agent rejected the call, actively or by letting it ring out."""

    reason: Literal["active", "passive"] | None = None


class CallEnded(CallHook, kw_only=True):
    """``callEnded``: a connected call ended."""

    duration: Annotated[float, msgspec.Meta(ge=0)] | None = None
    disposition: ShortText | None = None
    notes: Text | None = None
    callType: Literal["inbound", "outbound"] | None = None


class CallNotesSubmitted(CallHook, kw_only=True):
    """``callNotesSubmitted``: the agent submitted disposition and notes (maybe after the end)."""

    disposition: ShortText | None = None
    notes: Text | None = None


class OutboundCallInitiated(CallHook, kw_only=True):
    """``outboundCallInitiated``: the agent dialled an independent outbound call."""

    dialledTo: E164 | None = None


class StatusChanged(Hook, kw_only=True):
    """``statusChanged``: the agent's presence on the softphone changed (or was asked for)."""

    softphoneId: Id
    partnerId: Id | None = None


class StartCallRequested(Hook, kw_only=True):
    """A CRM user asked the agent's softphone to dial ``dialTo`` (click-to-dial).

    ``dialTo`` is normalised to E.164 by the dispatcher, which refuses what is no phone number.
    """

    dialTo: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    dialFrom: E164 | None = None
    participantType: ParticipantType | None = None
    recordId: Id | None = None
    partnerId: Id | None = None


class PresenceUpdateRequested(Hook, kw_only=True):
    """The CRM asked the softphone to switch the agent to presence ``softphoneId``."""

    softphoneId: Id
    partnerId: Id | None = None


class PresenceQueryRequested(Hook, kw_only=True):
    """The CRM asked the softphone for its current presence."""

    partnerId: Id | None = None


HOOKS: Final[dict[str, type[Hook]]] = {
    "incomingCall": IncomingCall,
    "callAccepted": CallAccepted,
    "callRejected": CallRejected,
    "callEnded": CallEnded,
    "callNotesSubmitted": CallNotesSubmitted,
    "outboundCallInitiated": OutboundCallInitiated,
    "statusChanged": StatusChanged,
}
"""The seven contract hooks, by the name the softphone calls them."""

REQUESTS: Final[dict[str, type[Hook]]] = {
    "startCallRequested": StartCallRequested,
    "presenceUpdateRequested": PresenceUpdateRequested,
    "presenceQueryRequested": PresenceQueryRequested,
}
"""CRM-side requests, which enter the log as events like the hooks do."""

EVENTS: Final[dict[str, type[Hook]]] = {**HOOKS, **REQUESTS}
"""Every event name the relay accepts."""


# -- commands: relay -> softphone -------------------------------------------------------------


class PartnerConfig(msgspec.Struct, kw_only=True):
    """``partner_config``: what the softphone needs to let the agent dial out."""

    partnerId: Id
    businessSegmentId: Id
    channelOriginId: Id


class StartCall(PartnerConfig, kw_only=True):
    """``start_call``: dial ``dialTo`` now."""

    dialTo: E164
    dialFrom: E164 | None = None
    participantType: ParticipantType = "Traveler"


class UpdatePresence(msgspec.Struct, kw_only=True):
    """``update_presence``: switch the agent to presence ``softphoneId``."""

    softphoneId: Id


DispositionCodes = list[Annotated[str, msgspec.Meta(min_length=1, max_length=255)]]

COMMANDS: Final[dict[str, Any]] = {
    "start_call": StartCall,
    "update_presence": UpdatePresence,
    "get_presence": None,
    "disposition": DispositionCodes,
    "partner_config": PartnerConfig,
}
"""The five commands and the type of their payload (``get_presence`` carries ``null``)."""


def _describe(error: msgspec.ValidationError, root: str) -> str:
    """Re-root msgspec's ``- at `$.x``` path so that it names the field in the whole frame."""
    return str(error).replace("`$", f"`{root}", 1)


MAX_NESTING: Final = 32
"""How deep an event's data may nest: the contract's payloads are flat, and the log must be
able to store (encode) whatever it accepts."""


_CONTAINERS: Final = frozenset((dict, list))


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` (as JSON decodes: ``dict``, ``list`` and scalars) nests objects or
    arrays more than ``limit`` levels (no recursion; only containers are visited, and one with
    no container in it is passed over at C speed, so flat data costs one call)."""
    if type(value) not in _CONTAINERS:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if type(item) is dict else item
        if _CONTAINERS.isdisjoint(map(type, children)):
            continue
        for child in children:
            if type(child) in _CONTAINERS:
                stack.append((child, depth + 1))
    return False


def _filled(model: type[msgspec.Struct]) -> dict[str, Any]:
    """The fields of ``model`` whose default is a value (not None): filled in when absent."""
    return {
        field.name: field.default
        for field in msgspec.structs.fields(model)
        if field.default is not None and field.default is not msgspec.NODEFAULT
    }


FILLED: Final = {name: _filled(model) for name, model in EVENTS.items()}
"""Per event, the defaults its data gets when the softphone left them out."""


def validate_event_data(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check ``data`` against event ``name``; return it with defaults filled, extras kept.

    Raises :class:`UnknownEvent` or :class:`InvalidEvent` (naming the field and the problem).
    """
    model = EVENTS.get(name)
    if model is None:
        raise UnknownEvent(f"unknown event {name!r}; expected one of {', '.join(EVENTS)}")
    if too_deep(data, MAX_NESTING):
        raise InvalidEvent(f"{name}: $.data is nested more than {MAX_NESTING} levels deep")
    try:
        msgspec.convert(data, model)
    except msgspec.ValidationError as error:
        raise InvalidEvent(f"{name}: {_describe(error, '$.data')}") from None
    # Checked; the log keeps what the softphone said, plus the defaults it left out.
    missing = {k: v for k, v in FILLED[name].items() if k not in data}
    return data | missing if missing else data


def validate_command(name: str, data: Any) -> Any:
    """Check a command payload; return it as plain JSON-ready data with defaults filled.

    Raises :class:`InvalidEvent` naming the command and the field.
    """
    if name not in COMMANDS:
        raise UnknownEvent(f"unknown command {name!r}; expected one of {', '.join(COMMANDS)}")
    model = COMMANDS[name]
    if model is None:
        if data is not None:
            raise InvalidEvent(f"{name}: takes no payload (null), got {type(data).__name__}")
        return None
    try:
        return msgspec.to_builtins(msgspec.convert(data, model))
    except msgspec.ValidationError as error:
        raise InvalidEvent(f"{name}: {_describe(error, '$')}") from None


def event_schema() -> dict[str, Any]:
    """JSON Schema of every event's data and every command's payload, for the JS client."""
    names = [*EVENTS, *COMMANDS]
    types: list[Any] = [*EVENTS.values(), *COMMANDS.values()]
    schemas, components = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    schema: dict[str, Any] = _clean_descriptions(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "softphone.v1 contract",
            # Annotations (not validation keywords): which names are the softphone's hooks, the
            # CRM's requests and the relay's commands, for the wrapper's tests to check against.
            "x-hooks": list(HOOKS),
            "x-requests": list(REQUESTS),
            "x-commands": list(COMMANDS),
            "properties": dict(zip(names, schemas, strict=True)),
            "$defs": components,
        }
    )
    return schema


def _clean_descriptions(node: Any) -> Any:
    """``node`` with every ``description`` as :func:`inspect.cleandoc` leaves a docstring, so
    the schema is the same whichever msgspec wrote it (0.23 cleans docstrings, 0.19 did not)."""
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _clean_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(item) for item in node]
    return node


# python -m relay.wire.contract > clientjs/contract.schema.json
if __name__ == "__main__":
    import json

    print(json.dumps(event_schema(), indent=2, sort_keys=True))
