from datetime import datetime, timezone

from broker.clock import FrozenClock
from broker.storefront.cache import PageCache

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def cache(seconds: float = 5, entries: int = 10) -> tuple[PageCache, FrozenClock]:
    clock = FrozenClock(T0)
    return PageCache(seconds, entries, clock=clock), clock


class TestPageCache:
    def test_an_entry_lives_its_seconds_counted_from_before_its_data_was_read(self):
        pages, clock = cache(seconds=5)
        fill = pages.begin()
        clock.advance(seconds=2)  # reading and rendering took a while
        pages.put("k", 1, "page", fill)
        assert pages.get("k") == "page"
        clock.advance(seconds=2.9)
        assert pages.get("k") == "page"
        clock.advance(seconds=0.1)
        assert pages.get("k") is None and len(pages) == 0

    def test_a_clock_that_goes_back_expires_the_entry(self):
        pages, clock = cache()
        pages.put("k", 1, "page", pages.begin())
        clock.advance(seconds=-1)
        assert pages.get("k") is None

    def test_a_page_read_before_a_change_and_finished_after_it_is_not_kept(self):
        pages, _ = cache()
        fill = pages.begin()
        pages.invalidate(1)  # the store changed while the page was being made
        pages.put("k", 1, "stale page", fill)
        assert pages.get("k") is None
        pages.put("k", 1, "fresh page", pages.begin())
        assert pages.get("k") == "fresh page"

    def test_invalidating_a_store_drops_only_its_pages(self):
        pages, _ = cache()
        for key, store in [("a1", 1), ("a2", 1), ("b1", 2)]:
            pages.put(key, store, key, pages.begin())
        pages.invalidate(1)
        assert (pages.get("a1"), pages.get("a2"), pages.get("b1")) == (None, None, "b1")

    def test_the_least_recently_used_goes_when_full(self):
        pages, _ = cache(entries=2)
        pages.put("a", 1, "a", pages.begin())
        pages.put("b", 1, "b", pages.begin())
        assert pages.get("a") == "a"  # now b is the least recently used
        pages.put("c", 1, "c", pages.begin())
        assert (pages.get("a"), pages.get("b"), pages.get("c")) == ("a", None, "c")

    def test_zero_seconds_keeps_nothing(self):
        pages, _ = cache(seconds=0)
        pages.put("k", 1, "page", pages.begin())
        assert pages.get("k") is None and len(pages) == 0
