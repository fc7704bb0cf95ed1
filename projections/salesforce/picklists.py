"""Disposition codes from Salesforce: a partner's picklist, read through describe.

For every partner whose entry names a ``dispositionField`` (``Task.Disposition__c``), the ``calls``
workers describe the object every ``interval`` and store the field's *active* picklist values in
``sp:disposition:{partner}``, where every relay picks them up for its welcomes
(``relay/server/dispositions.py``). Admins then manage the codes in Salesforce. A field that is
missing or not a picklist is logged and the partner keeps the codes it had.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import requests
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from projections.salesforce.connect import SalesforceConnection
from projections.salesforce.errors import SalesforceLoginFailed
from relay.log import keys
from relay.log.clients import LOG_ERRORS
from relay.settings import Partner

log = logging.getLogger(__name__)

PICKLISTS: Final = frozenset({"picklist", "multipicklist"})
_encoder: Final = msgspec.json.Encoder()


class FieldNotAPicklist(ValueError):
    """The configured field is missing, or not a picklist."""


def picklist_values(describe: dict[str, Any], field: str) -> list[str]:
    """The active values of ``field`` in an sObject describe, in Salesforce's order."""
    for spec in describe.get("fields", []):
        if spec.get("name") == field:
            if spec.get("type") not in PICKLISTS:
                raise FieldNotAPicklist(f"{describe.get('name')}.{field} is a {spec.get('type')}")
            return [v["value"] for v in spec.get("picklistValues", []) if v.get("active")]
    raise FieldNotAPicklist(f"{describe.get('name')} has no field {field}")


class DispositionRefresher:
    """Copies partners' Salesforce disposition picklists into Redis."""

    def __init__(
        self,
        connection: SalesforceConnection,
        redis: aioredis.Redis,
        partners: dict[str, Partner] | None,
        *,
        interval: float = 600.0,
    ) -> None:
        self._connection = connection
        self.interval = interval
        self._redis = redis
        self._fields = {
            partner_id: partner.dispositionField
            for partner_id, partner in (partners or {}).items()
            if partner.dispositionField is not None
        }

    async def refresh(self) -> dict[str, list[str]]:
        """Read every configured picklist once; the codes stored, by partner."""
        stored: dict[str, list[str]] = {}
        for partner_id, qualified in self._fields.items():
            obj, field = qualified.split(".", 1)
            try:
                describe = await asyncio.to_thread(self._describe, obj)
                codes = picklist_values(describe, field)
            except (SalesforceError, SalesforceLoginFailed, requests.RequestException) as error:
                log.warning(
                    "event=disposition_read_failed partner=%s field=%s error=%r",
                    partner_id,
                    qualified,
                    str(error)[:300],
                )
                continue
            except FieldNotAPicklist as error:
                log.error(
                    "event=disposition_field_invalid partner=%s error=%r", partner_id, str(error)
                )
                continue
            await self._redis.set(keys.disposition_codes(partner_id), _encoder.encode(codes))
            stored[partner_id] = codes
            log.info(
                "event=disposition_codes partner=%s field=%s codes=%d",
                partner_id,
                qualified,
                len(codes),
            )
        return stored

    def _describe(self, obj: str) -> dict[str, Any]:
        client = self._connection.client()
        path = f"sobjects/{obj}/describe"
        try:
            answer = client.restful(path, method="GET", timeout=30)
        except SalesforceExpiredSession:
            answer = self._connection.relogin(client).restful(path, method="GET", timeout=30)
        return dict(answer or {})

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Refresh every ``interval`` seconds until ``stop``."""
        while self._fields and not stop.is_set():
            try:
                await self.refresh()
            except LOG_ERRORS as error:
                log.warning("event=disposition_store_failed error=%r", str(error))
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue
