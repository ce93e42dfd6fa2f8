"""When the board closes: the settlement cron, in the operator's time zone.

Every time leaves this module in UTC. The cron's own times are wall-clock times
in its zone, and around a daylight-saving change one of them can fall in the gap
(02:00 on the spring-forward day in Los Angeles); such a datetime never compares
equal to one in another zone (PEP 495), so it must not escape.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone as _tz
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

UTC = _tz.utc


@functools.lru_cache(maxsize=8)
def settle_trigger(cron: str, timezone: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))


def closes_at(listed_at: datetime, *, cron: str, timezone: str, min_board_hours: float) -> datetime:
    """The first scheduled settlement at which a listing is due."""
    earliest = listed_at + timedelta(hours=min_board_hours)
    trigger = settle_trigger(cron, timezone)
    fire = trigger.get_next_fire_time(None, earliest)
    return (fire if fire is not None else earliest).astimezone(UTC)


def request_closes_at(settles_at: datetime, expires_at: datetime | None) -> datetime:
    """When a personal request's offers are decided: at the first settlement it is
    due for (if it has an offer by then), or at its expiry if that comes first.
    The board and the customer's page both show this one time."""
    return min(settles_at, expires_at) if expires_at is not None else settles_at


def closing_times(listed: Iterable[datetime], *, cron: str, timezone: str,
                  min_board_hours: float) -> dict[datetime, datetime]:
    """`closes_at` for many listings: listing time -> closing time.

    A board page lists fifty times, mostly closing at one or two settlements; the
    cron is asked once per settlement, not once per time. In time order, a fire
    at or after one listing's earliest moment is the first for every later one
    up to it: there is no fire between them.
    """
    closing: dict[datetime, datetime] = {}
    fire: datetime | None = None
    for listed_at in sorted(set(listed)):
        earliest = listed_at + timedelta(hours=min_board_hours)
        if fire is None or earliest > fire:
            fire = closes_at(listed_at, cron=cron, timezone=timezone, min_board_hours=min_board_hours)
        closing[listed_at] = fire
    return closing


def previous_fire(now: datetime, *, cron: str, timezone: str, horizon_days: int = 8) -> datetime | None:
    """The last time the cron fired at or before `now` (looking back a week or so)."""
    trigger = settle_trigger(cron, timezone)
    fire = trigger.get_next_fire_time(None, now - timedelta(days=horizon_days))
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last.astimezone(UTC) if last is not None else None
