"""The SOQL subset the sink uses, as the stand-in runs it: ``SELECT f, ... FROM Obj [WHERE f =
'v' | f IN ('v', ...)] [LIMIT n]``, string literals read by Salesforce's escape rules. Pure.
"""

from __future__ import annotations

import re
from typing import Any, Final

from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import RecordRefused, SalesforceError

_LITERAL: Final = r"'(?:[^'\\]|\\.)*'"
_SOQL: Final = re.compile(
    r"^\s*SELECT\s+(?P<fields>[\w\s,]+?)\s+FROM\s+(?P<object>\w+)"
    rf"(?:\s+WHERE\s+(?P<field>\w+)\s*(?:=\s*(?P<one>{_LITERAL})"
    rf"|IN\s*\((?P<many>\s*{_LITERAL}(?:\s*,\s*{_LITERAL})*\s*)\)))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE,
)
_ESCAPES: Final = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
"""SOQL's quoted-string escapes (Salesforce, SOQL and SOSL Reference, "Quoted String Escape
Sequences"): ``\\n \\r \\t \\b \\f`` in either case, ``\\" \\' \\\\``, and ``\\uXXXX``; "if you use
a backslash character in any other context, an error occurs" (``\\_`` and ``\\%`` are for LIKE,
which the stand-in does not run). The documentation calls ``\\b`` "Bell"; we read it as
backspace, as simple-salesforce writes it: assumed, not checked against an org."""


def unescape_literal(literal: str) -> str:
    """The value of a quoted SOQL string literal; MALFORMED_QUERY for an unknown escape."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith(("u", "U")) and re.fullmatch(r"[uU][0-9a-fA-F]{4}", code):
            return chr(int(code[1:], 16))
        escaped = _ESCAPES.get(code if code in ('"', "'", "\\") else code.lower())
        if escaped is None:
            raise RecordRefused(
                [SalesforceError("MALFORMED_QUERY", f"Invalid string literal {literal}")]
            )
        return escaped

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", one, literal[1:-1], flags=re.IGNORECASE | re.DOTALL)


def run_query(org: Org, soql: str, *, all_rows: bool = False) -> list[dict[str, Any]]:
    """The SOQL subset the sink uses; anything else is MALFORMED_QUERY. ``all_rows``
    (``queryAll``) also returns deleted and archived rows."""
    match = _SOQL.match(soql)
    if not match:
        raise RecordRefused(
            [
                SalesforceError(
                    "MALFORMED_QUERY",
                    f"unexpected token in query (the stand-in supports SELECT f, ... "
                    f"FROM Obj [WHERE f = 'v' | f IN ('v', ...)] [LIMIT n]): {soql}",
                )
            ]
        )
    fields = [f.strip() for f in match["fields"].split(",") if f.strip()]
    where = None
    if match["field"]:
        literals = [match["one"]] if match["one"] else re.findall(_LITERAL, match["many"])
        where = (match["field"], [unescape_literal(v) for v in literals])
    limit = int(match["limit"]) if match["limit"] else None
    return org.select(match["object"], fields, where, limit, all_rows=all_rows)
