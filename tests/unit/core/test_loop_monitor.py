"""The start-up heap freeze and the spacing of full collections."""

from __future__ import annotations

import gc

from voicebot.loop_monitor import FULL_COLLECTION_SPACING, freeze_startup_heap


def test_freeze_spaces_out_full_collections_only() -> None:
    """Young collections keep CPython's thresholds; full ones wait for at least
    FULL_COLLECTION_SPACING young collections, and start-up objects are frozen."""
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        freeze_startup_heap()
        assert gc.get_threshold() == (700, 10, FULL_COLLECTION_SPACING)
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()
