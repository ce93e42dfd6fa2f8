"""A store's opening hours: a weekly schedule of up to two open ranges per
weekday and an optional note ("Closed on public holidays").

One module reads them (from the API's JSON, `parse`, and from the portal's form,
a text per weekday, `parse_form`), writes them for people (`describe`: equal
days grouped, "Mon–Fri 9:00 AM – 6:00 PM · Sat 10:00 AM – 4:00 PM · Sun closed",
day names and times in the locale, by Babel), and answers "open now?" and
"opens next at" in the store's time zone (`state_at`).

Stored (`Store.hours`, JSON) as `{"mon": [["09:00", "18:00"]], ..., "sun": [],
"note": ""}`: every weekday present, ranges sorted, times "HH:MM" on a
24-hour clock, "24:00" only as a closing time (open until midnight). A range
never runs past midnight: a night shop writes 22:00–24:00 and 00:00–02:00 on
the next day, and `state_at` joins them.

Pure: no database, no Flask. Every refusal is a 422 naming its field
(`hours.tue.1.closes`, or the form's `hours.tue`), so a page can show it next
to the input.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from broker.errors import Invalid

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RANGES = 2
MAX_NOTE = 200
# 9, 09, 9:30, 09:30, 9.30 (the form); the API takes HH:MM only.
_FORM_TIME = re.compile(r"^(\d{1,2})(?:[:.h](\d{2}))?$")
_API_TIME = re.compile(r"^(\d{2}):(\d{2})$")
# "9-18", "9:00 – 18:00", "9–13, 14–18"; a dash, an en dash or "to" between.
_FORM_RANGE = re.compile(r"^\s*(\S+?)\s*(?:-|–|—|to)\s*(\S+)\s*$")
_CLOSED_WORDS = {"", "closed", "-", "–", "—"}

Ranges = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class Hours:
    """A weekly schedule: for each weekday (mon..sun) its open ranges, sorted."""

    days: Mapping[str, Ranges]
    note: str = ""

    def to_json(self) -> dict:
        return {**{day: [list(r) for r in self.days.get(day, ())] for day in DAYS}, "note": self.note}

    @classmethod
    def from_json(cls, data: object) -> Hours | None:
        """What the database holds; None when there is nothing (hours not given)
        or it does not read as hours (never raised at a reader)."""
        if not isinstance(data, dict):
            return None
        try:
            return parse({day: [{"opens": r[0], "closes": r[1]} for r in data.get(day) or []] for day in DAYS}
                         | {"note": data.get("note") or ""})
        except (Invalid, TypeError, IndexError, KeyError):
            return None


def _minutes(text: str) -> int:
    hours, minutes = int(text[:2]), int(text[3:])
    return hours * 60 + minutes


def _clock(hours: int, minutes: int, *, closing: bool) -> str | None:
    """"HH:MM", or None if it is no time of day (24:00 only as a closing time)."""
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not closing)):
        return None
    return f"{hours:02d}:{minutes:02d}"


def _api_time(value: object, field: str, *, closing: bool) -> str:
    found = _API_TIME.match(value) if isinstance(value, str) else None
    clock = found and _clock(int(found[1]), int(found[2]), closing=closing)
    if not clock:
        raise Invalid.field(field, "a time as HH:MM on a 24-hour clock, 00:00 to 23:59"
                            + (" (24:00 for midnight)" if closing else ""))
    return clock


def _check_day(ranges: list[tuple[str, str]], field: str, *, per_range: bool) -> Ranges:
    """`per_range`: name a bad range's own field (the API's `hours.mon.0.closes`),
    else the day's (the form's one input per day)."""
    if len(ranges) > MAX_RANGES:
        raise Invalid.field(field, f"at most {MAX_RANGES} open ranges a day")
    for i, (opens, closes) in enumerate(ranges):
        if _minutes(closes) <= _minutes(opens):
            raise Invalid.field(f"{field}.{i}.closes" if per_range else field,
                                f"closes at {closes}, not after it opens at {opens}; a range ends by 24:00 "
                                "(past midnight, go on from 00:00 the next day)")
    ranges = sorted(ranges, key=lambda r: _minutes(r[0]))
    for (_, first_closes), (second_opens, _) in zip(ranges, ranges[1:]):
        if _minutes(second_opens) < _minutes(first_closes):
            raise Invalid.field(field, f"the ranges overlap ({second_opens} is before {first_closes})")
    return tuple(ranges)


def _note(value: object, field: str = "hours.note") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid.field(field, "must be text")
    note = " ".join(value.split())  # one line: it is shown inline and in emails
    if len(note) > MAX_NOTE:
        raise Invalid.field(field, f"at most {MAX_NOTE} characters")
    return note


def parse(data: object) -> Hours:
    """The API's JSON: `{"mon": [{"opens": "09:00", "closes": "18:00"}], ...,
    "note": "..."}`. A weekday left out (or an empty list) is closed.

    :raise 422: the field that is wrong: an unknown key, a time not HH:MM, a range
        that closes before it opens, more than two ranges, ranges that overlap.
    """
    if not isinstance(data, Mapping):
        raise Invalid.field("hours", "an object with a list of open ranges per weekday (mon to sun)")
    unknown = sorted(str(k) for k in data if k not in DAYS and k != "note")
    if unknown:
        raise Invalid.field(f"hours.{unknown[0]}"[:80], "not a weekday: use mon, tue, wed, thu, fri, sat, sun, note")
    days: dict[str, Ranges] = {}
    for day in DAYS:
        raw = data.get(day) or []
        if not isinstance(raw, list):
            raise Invalid.field(f"hours.{day}", "a list of open ranges, each {opens, closes}")
        ranges = []
        for i, item in enumerate(raw[:MAX_RANGES + 1]):
            if not isinstance(item, Mapping):
                raise Invalid.field(f"hours.{day}.{i}", "an open range: {opens, closes}")
            ranges.append((_api_time(item.get("opens"), f"hours.{day}.{i}.opens", closing=False),
                           _api_time(item.get("closes"), f"hours.{day}.{i}.closes", closing=True)))
        days[day] = _check_day(ranges, f"hours.{day}", per_range=True)
    return Hours(days, _note(data.get("note")))


def _form_time(text: str, field: str, *, closing: bool) -> str:
    found = _FORM_TIME.match(text)
    clock = found and _clock(int(found[1]), int(found[2] or 0), closing=closing)
    if not clock:
        raise Invalid.field(field, f"{text[:20]!r} is not a time: write it like 9:00 or 17:30"
                            + (" (24:00 for midnight)" if closing else ""))
    return clock


def parse_day(text: str, field: str) -> Ranges:
    """A weekday as a person types it: "9:00-18:00", "9-13, 14-18", or blank or
    "closed". :raise 422: on `field`."""
    text = (text or "").strip()
    if text.lower() in _CLOSED_WORDS:
        return ()
    parts = [p for p in re.split(r"[,;]|\band\b", text) if p.strip()]
    if len(parts) > MAX_RANGES:
        raise Invalid.field(field, f"at most {MAX_RANGES} open ranges a day, like 9:00-13:00, 14:00-18:00")
    ranges = []
    for part in parts:
        found = _FORM_RANGE.match(part)
        if not found:
            raise Invalid.field(field, "write it like 9:00-18:00, or 9:00-13:00, 14:00-18:00; blank when closed")
        ranges.append((_form_time(found[1], field, closing=False), _form_time(found[2], field, closing=True)))
    return _check_day(ranges, field, per_range=False)


def parse_form(form: Mapping[str, str], prefix: str = "hours_") -> Hours | None:
    """The portal's form: a text per weekday (`hours_mon` ... `hours_sun`) and
    `hours_note`. None when every field is blank (no hours given).

    :raise 422: every wrong weekday at once, each under `hours.<day>`.
    """
    texts = {day: (form.get(f"{prefix}{day}") or "").strip() for day in DAYS}
    note_text = form.get(f"{prefix}note") or ""
    if not any(texts.values()) and not note_text.strip():
        return None
    errors: dict[str, list[str]] = {}
    days: dict[str, Ranges] = {}
    for day, text in texts.items():
        try:
            days[day] = parse_day(text, f"hours.{day}")
        except Invalid as exc:
            errors.update(exc.errors)
    try:
        note = _note(note_text)
    except Invalid as exc:
        errors.update(exc.errors)
        note = ""
    if errors:
        raise Invalid("the opening hours have errors", errors=errors)
    return Hours(days, note)


def form_text(hours: Hours | None, day: str) -> str:
    """A weekday as the form shows it back: "09:00-13:00, 14:00-18:00", or "closed"."""
    if hours is None:
        return ""
    ranges = hours.days.get(day, ())
    return ", ".join(f"{opens}-{closes}" for opens, closes in ranges) if ranges else "closed"


# --- for people -------------------------------------------------------------------


def _time_text(clock: str, locale: str) -> str:
    from babel.dates import format_time

    minutes = _minutes(clock) % (24 * 60)  # 24:00 reads as midnight
    return format_time(time(minutes // 60, minutes % 60), format="short", locale=locale)


def _day_names(locale: str) -> list[str]:
    from babel.dates import get_day_names

    names = get_day_names("abbreviated", context="format", locale=locale)
    return [names[i] for i in range(7)]  # Babel's 0 is Monday


def describe(hours: Hours | None, locale: str = "en_US") -> str:
    """The week for people, equal neighbouring days grouped:
    "Mon–Fri 9:00 AM – 6:00 PM · Sat 10:00 AM – 4:00 PM · Sun closed", then the
    note. Day names and times as the locale writes them. "" when not given."""
    from broker.money import _locale

    if hours is None:
        return ""
    locale = _locale(locale)
    names = _day_names(locale)
    groups: list[tuple[int, int, Ranges]] = []
    for i, day in enumerate(DAYS):
        ranges = hours.days.get(day, ())
        if groups and groups[-1][2] == ranges:
            groups[-1] = (groups[-1][0], i, ranges)
        else:
            groups.append((i, i, ranges))
    closed = _closed_word(locale)
    parts = []
    for first, last, ranges in groups:
        label = names[first] if first == last else f"{names[first]}–{names[last]}"
        when = ", ".join(f"{_time_text(o, locale)} – {_time_text(c, locale)}" for o, c in ranges) or closed
        parts.append(f"{label} {when}")
    text = " · ".join(parts)
    return f"{text}. {hours.note}" if hours.note else text


def _closed_word(locale: str) -> str:
    # Babel has no word for "closed"; the languages Broker's stores use most.
    return {"de": "geschlossen", "fr": "fermé", "es": "cerrado", "it": "chiuso", "nl": "gesloten",
            "pt": "fechado", "sv": "stängt", "da": "lukket", "nb": "stengt", "fi": "suljettu",
            "pl": "nieczynne", "ja": "定休日"}.get(locale.split("_")[0], "closed")


# --- open now? --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OpenState:
    """Whether the store is open at a moment, and when that changes (aware
    datetimes, in the store's time zone). `closes_at` while open; `opens_at`
    while closed, None if it never opens in the coming week."""

    open: bool
    opens_at: datetime | None = None
    closes_at: datetime | None = None


def _intervals(hours: Hours, zone: ZoneInfo, start_day: date, days: int) -> list[tuple[datetime, datetime]]:
    """Open intervals from local midnight of `start_day` for `days` days, as aware
    datetimes, ranges that meet at midnight joined."""
    out: list[tuple[datetime, datetime]] = []
    for offset in range(days):
        day = start_day + timedelta(days=offset)
        for opens, closes in hours.days.get(DAYS[day.weekday()], ()):
            begin = _at(day, opens, zone)
            end = _at(day, closes, zone)
            if out and out[-1][1] == begin:
                out[-1] = (out[-1][0], end)
            else:
                out.append((begin, end))
    return out


def _at(day: date, clock: str, zone: ZoneInfo) -> datetime:
    """The wall-clock time `clock` on `day` (09:00 is 09:00 on the day the clocks
    change, too); 24:00 is the next day's midnight."""
    minutes = _minutes(clock)
    if minutes >= 24 * 60:
        day, minutes = day + timedelta(days=1), minutes - 24 * 60
    return datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=zone)


def state_at(hours: Hours | None, timezone: str, now: datetime) -> OpenState | None:
    """Open at `now` (aware, any zone)? Decided on the store's own wall clock.
    None when the store gave no hours."""
    if hours is None:
        return None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    # From yesterday (a range that ran to midnight may go on today) for 9 days.
    for begin, end in _intervals(hours, zone, local.date() - timedelta(days=1), 9):
        if begin <= local < end:
            return OpenState(True, closes_at=end)
        if begin > local:
            return OpenState(False, opens_at=begin)
    return OpenState(False)
