"""The server keeps what it builds at start-up out of the garbage collector's full passes."""

from __future__ import annotations

import gc

from tests.conftest import AppFactory


async def test_start_up_objects_are_frozen_while_serving_and_released_after(
    start_app: AppFactory,
) -> None:
    before = gc.get_freeze_count()
    client = await start_app()
    # The switchboard, the prompts and the config were built before the freeze.
    assert gc.get_freeze_count() > before
    resp = await client.get("/metrics")
    assert resp.status == 200
    await client.close()
    assert gc.get_freeze_count() == 0
