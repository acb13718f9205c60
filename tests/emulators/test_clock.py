"""The clock emulators read: real by default, moved by hand in tests."""

from datetime import UTC, datetime, timedelta

import pytest

from emulators.clock import Clock, ManualClock


def test_the_real_clock_tells_aware_utc_time():
    now = Clock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_manual_clock_starts_now_and_stands_still():
    clock = ManualClock()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    assert (clock.now(), clock.monotonic()) == (clock.now(), clock.monotonic())


def test_advancing_a_manual_clock_moves_both_times_together():
    start = datetime(2025, 3, 15, 9, 0, tzinfo=UTC)
    clock = ManualClock(start)
    before = clock.monotonic()
    clock.advance(90.5)
    assert clock.now() == start + timedelta(seconds=90.5)
    assert clock.monotonic() - before == 90.5


def test_a_manual_clock_never_goes_back():
    with pytest.raises(ValueError):
        ManualClock().advance(-1)
