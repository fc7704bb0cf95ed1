"""The SOSL subset the sink uses to find callers by phone: ``FIND ... IN PHONE FIELDS``. Pure.

``FIND {term OR term ...} IN PHONE FIELDS RETURNING Obj(Field, ... [WHERE Flag = false]), ...``
(a filter on one boolean field, as the sink leaves converted Leads out): a record is
returned when one of its phone fields matches a term. Like Salesforce, matching ignores the
formatting of the stored number (``(888) 397-3342`` matches ``8883973342``); the stand-in's
approximation of Salesforce's phone normalisation is "the digits of one end with the digits of
the other, at least 7 of them", so a national number also matches its E.164 form. A record
is found only once the org's search index has it (``Org.search_lag``). Like Salesforce, a
search returns at most 2,000 rows (SOSL's default and largest ``LIMIT``); which rows a real
org keeps when more match is not documented; the stand-in keeps the oldest records.
"""

from __future__ import annotations

import re
from typing import Any, Final

from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import RecordRefused, SalesforceError

_SOSL: Final = re.compile(
    r"^\s*FIND\s*\{(?P<terms>[^}]*)\}\s+IN\s+PHONE\s+FIELDS\s+RETURNING\s+(?P<returning>.+?)\s*$",
    re.IGNORECASE,
)
_OBJECT: Final = re.compile(r"(\w+)\s*(?:\(([^)]*)\))?")
_WHERE: Final = re.compile(r"^(?P<fields>.*?)\s+WHERE\s+(?P<field>\w+)\s*=\s*(?P<value>\w+)$", re.I)
"""A RETURNING clause's ``WHERE Field = true|false`` (the one filter the sink uses)."""
MIN_DIGITS: Final = 7
MAX_ROWS: Final = 2_000


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def phone_matches(stored: str, term_digits: str) -> bool:
    """True when a stored phone value and a searched number are the same number."""
    digits = _digits(stored)
    if len(digits) < MIN_DIGITS or len(term_digits) < MIN_DIGITS:
        return False
    return digits.endswith(term_digits) or term_digits.endswith(digits)


def _malformed(message: str) -> RecordRefused:
    return RecordRefused([SalesforceError("MALFORMED_SEARCH", message)])


def run_phone_search(org: Org, sosl: str) -> list[dict[str, Any]]:
    """The ``searchRecords`` of a phone search; anything else is MALFORMED_SEARCH."""
    match = _SOSL.match(sosl)
    if not match:
        raise _malformed(
            "the stand-in supports FIND {n OR n ...} IN PHONE FIELDS RETURNING Obj(f, ...): " + sosl
        )
    terms = [_digits(t) for t in re.split(r"\s+OR\s+", match["terms"], flags=re.IGNORECASE)]
    terms = [t for t in terms if t]
    if not terms:
        raise _malformed("No search term found. The search term must be at least 2 characters")
    found: list[dict[str, Any]] = []
    for name, field_list in _OBJECT.findall(match["returning"]):
        spec = org.spec(name)
        condition: tuple[str, bool] | None = None
        if where := _WHERE.match(field_list.strip()):
            field_list = where["fields"]
            value = where["value"].lower()
            if value not in ("true", "false"):
                raise _malformed(f"the stand-in filters on true or false only: {sosl}")
            condition = (where["field"], value == "true")
        fields = [f.strip() for f in field_list.split(",") if f.strip()] or ["Id"]
        for field in fields + ([condition[0]] if condition else []):
            if field not in spec.fields:
                raise RecordRefused(
                    [
                        SalesforceError(
                            "INVALID_FIELD", f"No such column '{field}' on entity '{name}'."
                        )
                    ]
                )
        phones = [f.name for f in spec.fields.values() if f.type == "phone"]
        for record in org.records.values():
            if record["attributes"]["type"] != name or not org.searchable(record):
                continue
            if condition and bool(record.get(condition[0])) != condition[1]:
                continue
            if any(
                isinstance(record.get(p), str) and phone_matches(record[p], t)
                for p in phones
                for t in terms
            ):
                found.append(
                    {
                        "attributes": {"type": name, "url": f"/sobjects/{name}/{record['Id']}"},
                        **{f: record.get(f) for f in fields},
                    }
                )
    return found[:MAX_ROWS]
