import random
from datetime import datetime, timedelta, timezone

import pytest

from broker.settlement.schedule import closes_at, closing_times, previous_fire, settle_trigger

UTC = timezone.utc
LA = "America/Los_Angeles"


def fires(cron, tz, start, days):
    trigger = settle_trigger(cron, tz)
    out, fire = [], trigger.get_next_fire_time(None, start)
    while fire is not None and fire < start + timedelta(days=days):
        out.append(fire.astimezone(UTC))
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return out


class TestDaylightSaving:
    def test_two_am_in_los_angeles_fires_once_a_day_across_spring_forward(self):
        # 2026-03-08: clocks jump from 02:00 to 03:00 PST->PDT.
        got = fires("0 2 * * *", LA, datetime(2026, 3, 6, 12, tzinfo=UTC), 4)
        assert got == [
            datetime(2026, 3, 7, 10, tzinfo=UTC),   # 02:00 PST
            datetime(2026, 3, 8, 10, tzinfo=UTC),   # 02:00 does not exist: the first instant after it
            datetime(2026, 3, 9, 9, tzinfo=UTC),    # 02:00 PDT
            datetime(2026, 3, 10, 9, tzinfo=UTC),
        ]

    def test_two_am_in_los_angeles_fires_once_a_day_across_fall_back(self):
        # 2026-11-01: clocks fall back from 02:00 PDT to 01:00 PST; 02:00 happens once.
        got = fires("0 2 * * *", LA, datetime(2026, 10, 30, 12, tzinfo=UTC), 4)
        assert got == [
            datetime(2026, 10, 31, 9, tzinfo=UTC),  # 02:00 PDT
            datetime(2026, 11, 1, 10, tzinfo=UTC),  # 02:00 PST, once
            datetime(2026, 11, 2, 10, tzinfo=UTC),
            datetime(2026, 11, 3, 10, tzinfo=UTC),
        ]

    def test_previous_fire_across_the_change(self):
        assert previous_fire(datetime(2026, 3, 9, 8, tzinfo=UTC), cron="0 2 * * *", timezone=LA) == \
            datetime(2026, 3, 8, 10, tzinfo=UTC)
        assert previous_fire(datetime(2026, 3, 9, 9, tzinfo=UTC), cron="0 2 * * *", timezone=LA) == \
            datetime(2026, 3, 9, 9, tzinfo=UTC)


class TestClosesAt:
    def test_a_listing_closes_at_the_first_settlement_after_its_minimum_time(self):
        listed = datetime(2026, 5, 1, 13, tzinfo=UTC)  # +12h = 01:00 next day, settles at 02:00
        assert closes_at(listed, cron="0 2 * * *", timezone="UTC", min_board_hours=12) == \
            datetime(2026, 5, 2, 2, tzinfo=UTC)

    def test_a_listing_too_young_for_tonight_waits_a_day(self):
        listed = datetime(2026, 5, 1, 15, tzinfo=UTC)  # +12h = 03:00, after tonight's 02:00
        assert closes_at(listed, cron="0 2 * * *", timezone="UTC", min_board_hours=12) == \
            datetime(2026, 5, 3, 2, tzinfo=UTC)

    @pytest.mark.parametrize("hours", [0, 12, 36])
    def test_closing_time_is_never_before_the_minimum(self, hours):
        listed = datetime(2026, 5, 1, 1, 59, tzinfo=UTC)
        assert closes_at(listed, cron="0 2 * * *", timezone=LA, min_board_hours=hours) >= \
            listed + timedelta(hours=hours)


@pytest.mark.parametrize("cron, tz, hours", [("0 2 * * *", LA, 12), ("30 */6 * * 1-5", "UTC", 0),
                                             ("0 2 * * *", "Europe/London", 36.5)])
def test_closing_times_for_many_listings_are_closes_at_for_each(cron, tz, hours):
    rng = random.Random(cron)
    # Around the spring-forward and fall-back days, and a few listed at the same moment.
    start = datetime(2026, 3, 6, tzinfo=UTC)
    listed = [start + timedelta(minutes=rng.randrange(0, 60 * 24 * 70, 7)) for _ in range(300)]
    listed += listed[:20]
    expected = {t: closes_at(t, cron=cron, timezone=tz, min_board_hours=hours) for t in listed}
    assert closing_times(listed, cron=cron, timezone=tz, min_board_hours=hours) == expected
