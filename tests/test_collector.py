"""The garbage collector's settings for long-running processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from herald.collector import THRESHOLDS, tune_for_batches


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_collections_come_less_often() -> None:
    gc.unfreeze()
    tune_for_batches()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 10_000  # the modules and everything imported so far
