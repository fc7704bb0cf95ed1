"""Disposition codes managed in Salesforce: what the relay hands out in each welcome.

For a partner whose entry names a ``dispositionField`` (a picklist such as
``Task.Disposition__c``), the ``calls`` workers store the picklist's active values in
``sp:disposition:{partner}`` (``projections/salesforce/picklists.py``); each relay keeps a copy in
memory, reread every ``interval``, and uses it instead of the partners file's
``disposition`` list. Until a first copy exists the file's list is used.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from relay.log import keys
from relay.log.clients import LOG_ERRORS
from relay.settings import RelaySettings

log = logging.getLogger(__name__)

_codes: Final = msgspec.json.Decoder(list[str])


class DispositionCodes:
    """The Salesforce-managed disposition codes of the partners that have them."""

    def __init__(self, settings: RelaySettings, redis: aioredis.Redis) -> None:
        self._settings = settings
        self._redis = redis
        self._partners = [
            partner_id
            for partner_id, partner in (settings.partners or {}).items()
            if partner.dispositionField is not None
        ]
        self._known: dict[str, list[str]] = {}

    async def refresh(self) -> None:
        """Reread every partner's codes (a partner with none stored keeps its file list)."""
        if not self._partners:
            return
        # One GET per partner in a pipeline, not one MGET: on a cluster the partners' keys
        # live in different slots, and MGET across slots is refused (CROSSSLOT).
        async with self._redis.pipeline(transaction=False) as pipe:
            for partner_id in self._partners:
                pipe.get(keys.disposition_codes(partner_id))
            stored = await pipe.execute()
        for partner_id, raw in zip(self._partners, stored, strict=True):
            if raw:
                self._known[partner_id] = _codes.decode(raw)

    async def run(self, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled; Redis trouble only delays it."""
        while self._partners:
            try:
                await self.refresh()
            except LOG_ERRORS as error:
                log.warning("event=disposition_refresh_failed error=%r", str(error))
            await asyncio.sleep(interval)

    def partner_config(self, partner_id: str) -> dict[str, Any] | None:
        """The welcome ``config``, with the Salesforce codes when there are some."""
        config = self._settings.partner_config(partner_id)
        if config is not None and partner_id in self._known:
            config["disposition"] = list(self._known[partner_id])
        return config
