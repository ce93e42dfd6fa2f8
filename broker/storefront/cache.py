"""The storefront's rendered pages, kept for a few seconds in each web process.

A catalog page costs several database round trips and a template render; the
same page for the next visitor costs a dictionary lookup. Only pages that every
visitor sees alike belong here (the catalog and product pages: the cart is in
their URL, so it is part of the key); never a cart, checkout or order page.

Freshness: an entry lives `BROKER_STOREFRONT_CACHE_SECONDS` at most, counted from
before its data was read, so a page is never older than that. A change made
through a service in this process (`Context.storefront_changed`) drops that
store's entries at once; other processes' copies run out within the TTL. A hit
reads nothing from the database: not even to ask whether something changed (one
round trip costs more than serving the whole page from here).

Nothing here knows about Flask; the web layer decides what a key and a value are.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclasses.dataclass(frozen=True)
class Fill:
    """Taken before reading what a page is made from (`PageCache.begin`)."""

    generation: int
    started_at: datetime


class PageCache(Generic[V]):
    """A bounded LRU of values, each belonging to one store, each for `seconds`.

    Thread-safe (`broker run` serves from threads); in a sync gunicorn worker the
    lock is never contended.
    """

    def __init__(self, seconds: float, max_entries: int, clock: Callable[[], datetime]):
        self.enabled = seconds > 0
        self.ttl = timedelta(seconds=seconds)
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[int, datetime, V]] = OrderedDict()
        # Bumped by every invalidation: a page whose data was read before a change,
        # and finished after it, must not be kept (it would outlive the change).
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            _, read_at, value = entry
            # Expired, or the clock went back (then its age is unknown).
            if not (read_at <= now < read_at + self.ttl):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def begin(self) -> Fill:
        """Call before reading the data a page is made from; hand the result to `put`."""
        return Fill(self._generation, self._clock())

    def put(self, key: Hashable, store_id: int, value: V, fill: Fill) -> None:
        """Keep `value` (made from data read after `fill` began), unless this process
        changed a store in the meantime: the data may then predate the change."""
        if not self.enabled:
            return
        with self._lock:
            if fill.generation != self._generation:
                return
            self._entries[key] = (store_id, fill.started_at, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, store_id: int) -> None:
        """The store's catalog or look changed: forget its pages."""
        with self._lock:
            self._generation += 1
            for key in [k for k, (owner, _, _) in self._entries.items() if owner == store_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
