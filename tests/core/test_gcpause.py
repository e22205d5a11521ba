"""portal.core.gcpause: the collector is paused or told to skip existing objects for a block, then left as it was."""

from __future__ import annotations

import gc

import pytest

from portal.core.gcpause import collector_paused, existing_objects_frozen


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_and_then_as_it_was(enabled):
    (gc.enable if enabled else gc.disable)()
    try:
        with collector_paused():
            assert not gc.isenabled()
            with collector_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the inner block does not restart it for the outer one
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_the_collector_is_restarted_after_an_error():
    with pytest.raises(ValueError), collector_paused():
        raise ValueError
    assert gc.isenabled()


def test_existing_objects_are_frozen_for_the_block_only():
    gc.unfreeze()  # an in-process render worker of an earlier test may have frozen objects
    assert gc.get_freeze_count() == 0
    with existing_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_freeze_made_before_is_left_in_place():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with existing_objects_frozen():
            pass
        assert gc.get_freeze_count() >= before
    finally:
        gc.unfreeze()
