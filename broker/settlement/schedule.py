"""When the board closes: the settlement cron, in the operator's time zone."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger


@functools.lru_cache(maxsize=8)
def settle_trigger(cron: str, timezone: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))


def closes_at(listed_at: datetime, *, cron: str, timezone: str, min_board_hours: float) -> datetime:
    """The first scheduled settlement at which a listing is due."""
    earliest = listed_at + timedelta(hours=min_board_hours)
    trigger = settle_trigger(cron, timezone)
    fire = trigger.get_next_fire_time(None, earliest)
    return fire if fire is not None else earliest


def previous_fire(now: datetime, *, cron: str, timezone: str, horizon_days: int = 8) -> datetime | None:
    """The last time the cron fired at or before `now` (looking back a week or so)."""
    trigger = settle_trigger(cron, timezone)
    fire = trigger.get_next_fire_time(None, now - timedelta(days=horizon_days))
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last
