"""``softphone-relay``: parse the command line, then run one command.

The parser only parses. Each command is a function with typed parameters in the module of its
group, imported only when it runs, so ``token`` or ``tail`` never pays for the Salesforce
integration or the HTTP servers:

=========================  ===============================================================
``up``                     ``up.py``: everything on embedded defaults
``serve``                  ``serve.py``: a relay and its control API
``project``                ``workers.py``: projection workers, from the group registry
``token`` ``send``         ``agents.py``: act on agents
``call`` ``presence``
``status`` ``tail``        ``log_commands.py``: read the log
``dlq``
``replay`` ``export``      ``history.py``: the log's history
``trim``
=========================  ===============================================================
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from projections.registry import GROUPS
from relay.errors import RelayError
from softphone_relay.cli.runtime import configure_logging, run

Options = TypeVar("Options", bound=msgspec.Struct)


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    root = argparse.ArgumentParser(prog="softphone-relay", description=__doc__.split("\n")[0])
    root.add_argument("--log-level", default="info", help="debug, info, warning, error")
    root.add_argument("--data-dir", help="where `up` keeps its state (default ./data)")
    sub = root.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything on embedded defaults")
    up.add_argument("--host", help="listen address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="listen port (default 8765)")
    up.add_argument("--api-port", type=int, help="control API port (default 8766)")
    sub.add_parser("serve", help="run a relay from SOFTPHONE_RELAY_* configuration")
    project = sub.add_parser("project", help="run projection workers (consumer groups)")
    project.add_argument(
        "--group",
        help="comma-separated consumer groups (default all whose settings are there: "
        + "; ".join(f"{g.name}: {g.summary}" for g in GROUPS)
        + ")",
    )
    _agent_parsers(sub)
    _log_parsers(sub)
    _history_parsers(sub)
    return root


def _agent_parsers(sub: Any) -> None:
    token = sub.add_parser("token", help="mint an HS256 agent token")
    token.add_argument("--agent", required=True)
    token.add_argument("--partner", required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument(
        "--salesforce-user",
        metavar="005...",
        help="the agent's Salesforce User id (claim sfUserId): the owner of its call Tasks",
    )
    send = sub.add_parser("send", help="enqueue a command for an agent")
    send.add_argument("agent")
    send.add_argument(
        "name", help="start_call, update_presence, get_presence, disposition, partner_config"
    )
    send.add_argument("json", help="the payload as JSON (null for get_presence)")
    send.add_argument("--ttl", type=float, help="seconds until it expires (default 30)")
    call = sub.add_parser("call", help="click-to-dial a number on an agent's softphone")
    call.add_argument("agent")
    call.add_argument("number", help="the number to dial (E.164, or national with a region)")
    call.add_argument("--from", dest="dial_from", help="caller id to present (E.164)")
    call.add_argument("--participant-type", choices=["Traveler", "Supplier", "Agent"])
    call.add_argument("--record-id", help="the CRM record the call is about")
    call.add_argument("--wait", type=float, default=5.0, help="seconds to follow it (default 5)")
    revoke = sub.add_parser(
        "revoke", help="revoke an agent's tokens (all until now, or one) and close its session"
    )
    revoke.add_argument("agent")
    revoke.add_argument("--token-id", help="revoke this token alone (its jti)")
    presence = sub.add_parser("presence", help="show, or ask to change, an agent's presence")
    presence.add_argument("agent")
    presence.add_argument("softphone_id", nargs="?", help="the presence to switch to")
    presence.add_argument("--wait", type=float, default=5.0, help="seconds to follow it")


def _log_parsers(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, requeue or drop")
    dlq.add_argument("action", choices=["list", "show", "requeue", "drop"])
    dlq.add_argument("ids", nargs="*", help="dead-letter ids (show, requeue, drop)")
    dlq.add_argument("--group", default="calls", help="the projection group (default calls)")
    dlq.add_argument("--error", help="requeue/drop the ones whose error contains this text")
    dlq.add_argument("--all", action="store_true", help="requeue/drop every one")
    dlq.add_argument("--json", action="store_true", help="list: one JSON object per line")
    dlq.add_argument("--limit", type=int, default=1000, help="list: at most this many")
    status = sub.add_parser("status", help="shards, consumer groups, dead letters, agents")
    status.add_argument("--json", action="store_true", help="one JSON object")
    tail = sub.add_parser("tail", help="follow the event log (or print it from a point)")
    tail.add_argument("--from", dest="from_", help="a stream id or ISO time (default: now)")
    tail.add_argument("--agent")
    tail.add_argument("--conversation")
    tail.add_argument("--partner")
    tail.add_argument("--name", help="comma-separated event names")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument(
        "--no-follow", dest="follow", action="store_false", help="stop at the end of the log"
    )


def _range_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--from", dest="from_", default="-", help="stream id or ISO time (-)")
    command.add_argument("--to", default="+", help="stream id or ISO time (default +, the end)")
    command.add_argument("--partner")
    command.add_argument("--agent")
    command.add_argument("--conversation")


def _history_parsers(sub: Any) -> None:
    replay = sub.add_parser("replay", help="re-run the calls projection over a range of the log")
    _range_arguments(replay)
    replay.add_argument("--group", default="calls", help="the projection (calls)")
    replay.add_argument(
        "--target",
        default="salesforce",
        help="salesforce (the configured org), standin (up's), or jsonl:PATH",
    )
    replay.add_argument("--sf-env", help="a file of SOFTPHONE_RELAY_SF_* lines: another org")
    replay.add_argument("--dry-run", action="store_true", help="show the differences, write none")
    replay.add_argument(
        "--include-partial",
        action="store_true",
        help="also write conversations that began before --from (from their events in range)",
    )
    replay.add_argument("--json", action="store_true", help="dry run: changes as JSON lines")
    export = sub.add_parser("export", help="write a range of the log as JSONL")
    _range_arguments(export)
    export.add_argument("--out", help="file to write (default stdout)")
    erase = sub.add_parser("erase", help="erase a caller's or a conversation's personal data")
    erase.add_argument("--caller", help="the caller's number (+country, or with --region)")
    erase.add_argument("--conversation", help="one conversation id")
    erase.add_argument("--region", help="where a national --caller number is (ISO 3166: GB)")
    erase.add_argument("--by", help="who asks (logged; default: this OS user)")
    erase.add_argument("--dry-run", action="store_true", help="say what would go, erase nothing")
    erase.add_argument("--json", action="store_true", help="the report as JSON")
    rewrap = sub.add_parser(
        "rewrap", help="move every data key to the current key-encryption key (a rotation)"
    )
    rewrap.add_argument("--dry-run", action="store_true", help="count, change nothing")
    rewrap.add_argument("--json", action="store_true", help="the report as JSON")
    reseal = sub.add_parser(
        "reseal", help="seal what Redis and the archive hold in clear from before the data key"
    )
    reseal.add_argument("--dry-run", action="store_true", help="count, change nothing")
    reseal.add_argument("--json", action="store_true", help="the report as JSON")
    subject = sub.add_parser("subject", help="every event about a caller, opened, as JSONL")
    subject.add_argument("--caller", required=True, help="the caller's number")
    subject.add_argument("--region", help="where a national --caller number is (ISO 3166)")
    subject.add_argument("--out", help="file to write (default stdout; made owner-only)")
    trim = sub.add_parser("trim", help="apply the retention: trim old, processed entries")
    trim.add_argument("--older-than", help="a duration such as 90d (default: the retention)")
    trim.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    trim.add_argument("--json", action="store_true", help="one JSON object per shard")


def _options(args: argparse.Namespace, kind: type[Options]) -> Options:
    """The parsed arguments as a command's typed options."""
    return msgspec.convert(vars(args), kind)


def dispatch(args: argparse.Namespace) -> int:
    """Run the command ``args`` names; its exit status."""
    data_dir: str | None = args.data_dir
    match args.command:
        case "up":
            from softphone_relay.cli.up import up

            return run(
                up(host=args.host, port=args.port, api_port=args.api_port, data_dir=data_dir)
            )
        case "serve":
            from softphone_relay.cli.serve import serve

            return run(serve(data_dir=data_dir))
        case "project":
            from softphone_relay.cli.workers import project

            return run(project(group=args.group, data_dir=data_dir))
        case "token":
            from softphone_relay.cli.agents import token

            return token(
                agent=args.agent,
                partner=args.partner,
                ttl=args.ttl,
                salesforce_user=args.salesforce_user,
                data_dir=data_dir,
            )
        case "send":
            from softphone_relay.cli.agents import send

            return run(
                send(
                    agent=args.agent,
                    name=args.name,
                    json_text=args.json,
                    ttl=args.ttl,
                    data_dir=data_dir,
                )
            )
        case "call":
            from softphone_relay.cli.agents import call

            return run(
                call(
                    agent=args.agent,
                    number=args.number,
                    dial_from=args.dial_from,
                    participant_type=args.participant_type,
                    record_id=args.record_id,
                    wait=args.wait,
                    data_dir=data_dir,
                )
            )
        case "revoke":
            from softphone_relay.cli.agents import revoke

            return run(revoke(agent=args.agent, token_id=args.token_id, data_dir=data_dir))
        case "presence":
            from softphone_relay.cli.agents import presence

            return run(
                presence(
                    agent=args.agent,
                    softphone_id=args.softphone_id,
                    wait=args.wait,
                    data_dir=data_dir,
                )
            )
        case "status":
            from softphone_relay.cli.log_commands import status

            return run(status(json=args.json, data_dir=data_dir))
        case "tail":
            from softphone_relay.cli.log_commands import TailOptions, tail

            return run(tail(_options(args, TailOptions)))
        case "dlq":
            from softphone_relay.cli.log_commands import DlqOptions, dlq

            return run(dlq(_options(args, DlqOptions)))
        case "replay":
            from softphone_relay.cli.history import ReplayOptions, replay

            return run(replay(_options(args, ReplayOptions)))
        case "export":
            from softphone_relay.cli.history import ExportOptions, export

            return run(export(_options(args, ExportOptions)))
        case "erase":
            from softphone_relay.cli.privacy import EraseOptions, erase

            return run(erase(_options(args, EraseOptions)))
        case "rewrap":
            from softphone_relay.cli.privacy import RewrapOptions, rewrap_keys

            return run(rewrap_keys(_options(args, RewrapOptions)))
        case "reseal":
            from softphone_relay.cli.privacy import ResealOptions, reseal

            return run(reseal(_options(args, ResealOptions)))
        case "subject":
            from softphone_relay.cli.privacy import SubjectOptions, subject

            return run(subject(_options(args, SubjectOptions)))
        case "trim":
            from softphone_relay.cli.history import TrimOptions, trim

            return run(trim(_options(args, TrimOptions)))
    raise AssertionError(f"no command {args.command}")  # argparse allows only the above


def failure(error: Exception) -> str | None:
    """The one line to print for an error an operator can act on; None for a bug.

    A library's errors are recognised only if that library was loaded: a command that never
    imported Salesforce cannot have failed in it.
    """
    from softphone_relay.embedded import EmbeddedServerError

    if isinstance(error, RelayError | EmbeddedServerError | ValueError):
        return str(error)
    from projections.errors import ProjectionError

    if isinstance(error, ProjectionError):
        return str(error)
    from redis.exceptions import RedisClusterException, RedisError, ResponseError

    if isinstance(error, RedisClusterException):
        return f"the event log (Redis Cluster): {error}"
    if isinstance(error, ResponseError) and str(error).startswith("CROSSSLOT"):
        return f"the event log (Redis Cluster) refused a command across hash slots (a bug): {error}"
    if isinstance(error, ResponseError):
        return f"the event log (Redis) refused a command: {error}"
    if isinstance(error, RedisError):
        return f"the event log (Redis) did not answer: {error}"
    salesforce = sys.modules.get("simple_salesforce.exceptions")
    requests = sys.modules.get("requests.exceptions")
    if (salesforce is not None and isinstance(error, salesforce.SalesforceError)) or (
        requests is not None and isinstance(error, requests.RequestException)
    ):
        return f"Salesforce: {str(error)[:300]}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``softphone-relay`` console script."""
    args = parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return dispatch(args)
    except KeyboardInterrupt:
        return 0
    except Exception as error:
        message = failure(error)
        if message is None:
            raise
        print(f"softphone-relay: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
