"""Running a unit of work again when it lost a race to another transaction.

Two well-formed requests that touch the same rows can make the database give
up on one of them: PostgreSQL aborts one side of a deadlock (40P01) or of a
serialisation conflict (40001); SQLite answers `database is locked` once its
busy timeout has passed; and two transactions that both insert the same unique
row (a double-submitted form) end with a unique violation (23505) for the
second. In every case the loser's transaction was rolled back whole, so it is
safe to run it again from the start, and the second run sees what the winner
committed: the existing row, the new state.

`run` does that, a bounded number of times with a little random pause, and
then gives up with `Contended`: a 503 (or a 409 for a duplicate) that says
when to try again (`retry_after`), never a 500.

Where it is applied, once for each unit of work and nowhere else:
* every web request, around its view (`web.retries`): a view parses, calls one
  service and serialises, so retrying the view re-runs the service from the
  start of its unit of work;
* every row of a scheduled job (`broker.parking`): each row has its own unit
  of work.

Why a payment provider call is never repeated unsafely: a service that calls
the provider does so inside its unit of work, and every provider write carries
an idempotency key derived from rows committed before the unit of work began
(`payment-7-capture`, `payment-7-refund-2500`, `earning-9-payout`,
`payment-7-release`). The rolled-back first run cannot have changed those rows,
so a second run sends the same key, and Stripe answers it with its first
answer instead of moving money twice (the offline provider keeps its records in
the same rolled-back transaction). And services take their row locks, in the
order `broker.locks` documents, before they call the provider, so a deadlock
or a lock timeout is met before any money moves, not after.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from broker.errors import BrokerError

log = logging.getLogger(__name__)

T = TypeVar("T")

# The first run and three more.
ATTEMPTS = 4
RETRY_AFTER_SECONDS = 1

DEADLOCK = "deadlock"
SERIALISATION = "serialisation failure"
LOCKED = "database busy"
DUPLICATE = "duplicate"

_SQLSTATES = {
    "40P01": DEADLOCK,        # deadlock_detected
    "40001": SERIALISATION,   # serialization_failure
    "55P03": LOCKED,          # lock_not_available (a lock or statement timeout)
    "23505": DUPLICATE,       # unique_violation
}
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_UNIQUE = {2067, 1555}  # SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY


class Contended(BrokerError):
    """The unit of work kept losing races to other transactions; it was rolled
    back each time. Try again after `retry_after` seconds."""

    def __init__(self, race: str):
        if race == DUPLICATE:
            self.status, self.title = 409, "Conflict"
            detail = "another request was writing the same thing at the same moment; try again"
        else:
            self.status, self.title = 503, "Service unavailable"
            detail = "the records this changes were busy with other changes; nothing was changed, try again"
        super().__init__(detail)
        self.race = race
        self.retry_after = RETRY_AFTER_SECONDS


def lost_race(exc: BaseException) -> str | None:
    """Which race `exc` says its transaction lost, or None if it is not one."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _SQLSTATES:
        return _SQLSTATES[state]
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        text = str(orig)
        if code in _SQLITE_UNIQUE or "UNIQUE constraint failed" in text:
            return DUPLICATE
        if (code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)) or "database is locked" in text:
            return LOCKED
    return None


def pause(attempt: int) -> None:
    """A short, random wait that grows with each attempt, so that two losers do
    not meet again at once."""
    time.sleep(random.uniform(0.02, 0.1) * attempt)  # noqa: S311  (spreading retries, not a secret)


def run(work: Callable[..., T], *args, attempts: int = ATTEMPTS, wait: Callable[[int], None] = pause,
        **kwargs) -> T:
    """`work(*args, **kwargs)`, run again from the start while it loses a race
    to another transaction, at most `attempts` times in all.

    :raise Contended: it lost every time. Any other exception passes through at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work(*args, **kwargs)
        except DBAPIError as exc:
            race = lost_race(exc)
            if race is None:
                raise
            if attempt == attempts:
                log.warning("gave up after losing %s races in a row (%s)", attempts, race,
                            extra={"event": "transaction.contended", "race": race, "attempts": attempts})
                raise Contended(race) from exc
            log.info("lost a race (%s); running the unit of work again (attempt %s)", race, attempt + 1,
                     extra={"event": "transaction.retried", "race": race, "attempt": attempt + 1})
            wait(attempt)
    raise AssertionError("unreachable")  # the loop returns or raises
