"""The stall watch names the code that held the loop, and only a real stall."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from shared.stalls import GC_YOUNG_THRESHOLD, spare_the_loop_collections, watching
from tests.metrics import sample


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # synchronous work on the loop: nothing else runs meanwhile


async def test_a_held_loop_is_logged_with_the_code_that_held_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = sample("maas_event_loop_stalls_total")
    with caplog.at_level(logging.WARNING, logger="shared.stalls"):
        async with watching(0.05):
            await asyncio.sleep(0.05)
            hold_the_loop(0.3)
            await asyncio.sleep(0.05)
    (record,) = [r for r in caplog.records if r.getMessage() == "event loop held"]
    assert record.held_ms >= 50  # type: ignore[attr-defined]
    assert any("hold_the_loop" in line for line in record.stack)  # type: ignore[attr-defined]
    assert record.by == "code"  # type: ignore[attr-defined]
    assert sample("maas_event_loop_stalls_total") == before + 1  # one stall, reported once


async def test_a_busy_loop_that_keeps_turning_is_no_stall(caplog: pytest.LogCaptureFixture) -> None:
    before = sample("maas_event_loop_stalls_total")
    with caplog.at_level(logging.WARNING, logger="shared.stalls"):
        async with watching(0.2):  # far above what a busy machine's scheduler takes
            for _ in range(300):  # 0.3 s of short steps
                hold_the_loop(0.001)
                await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.getMessage() == "event loop held"]
    assert sample("maas_event_loop_stalls_total") == before


async def test_collections_are_timed_by_generation() -> None:
    before = sample("maas_gc_pause_seconds_count", generation="2")
    async with watching(0):
        gc.collect()
    assert sample("maas_gc_pause_seconds_count", generation="2") == before + 1


def test_what_was_built_at_start_is_frozen_and_young_collections_are_rarer() -> None:
    threshold = gc.get_threshold()
    try:
        spare_the_loop_collections()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_a_stall_in_a_collection_is_told_apart(caplog: pytest.LogCaptureFixture) -> None:
    heap = [[n] for n in range(1_000_000)]  # enough tracked objects for a long collection
    with caplog.at_level(logging.WARNING, logger="shared.stalls"):
        async with watching(0.02):
            await asyncio.sleep(0.02)
            gc.collect()
            await asyncio.sleep(0.02)
    del heap
    stalls = [r for r in caplog.records if r.getMessage() == "event loop held"]
    assert [r.by for r in stalls] == ["garbage collection"]  # type: ignore[attr-defined]
