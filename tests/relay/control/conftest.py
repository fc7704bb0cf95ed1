"""What the control API's tests share: the API itself on the test's Redis, with a key for the
test partner and one for another partner."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relay.control.api import ControlApi
from tests.helpers import API_KEY, OTHER_API_KEY, OTHER_PARTNER, PARTNER, make_settings


@pytest.fixture
async def api(redis_client: aioredis.Redis) -> AsyncIterator[ControlApi]:
    """The control API on a free port."""
    keys = {API_KEY: PARTNER, OTHER_API_KEY: OTHER_PARTNER}
    control = ControlApi(make_settings(api_keys=keys), redis_client)
    await control.start("127.0.0.1", 0)
    yield control
    await control.close()
