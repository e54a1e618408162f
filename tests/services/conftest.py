from __future__ import annotations

import pytest
from service_world import World, provider, smtp_setting


@pytest.fixture
async def world() -> World:
    w = World()
    await w.store.put_provider(provider())
    await w.store.put_smtp(smtp_setting())
    return w
