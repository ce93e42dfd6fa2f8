"""Which due listings a settlement run takes. Pure: no database, no clock.

Settlement can be split across workers by manufacturer in two ways:

* a hash shard `K/N`: the listings whose manufacturer id is K - 1 modulo N (a
  personal request that names no catalog product has no manufacturer and counts
  as 0, so it is in shard 1). N workers with shards 1/N ... N/N take every
  listing exactly once, and no host needs a list of manufacturers kept in step
  with the others;
* named manufacturers, for settling one or a few by hand.

No scope at all is everything, as before.
"""

from __future__ import annotations

import dataclasses
import re

_SHARD = re.compile(r"(\d{1,4})/(\d{1,4})", re.ASCII)
# More shards than settlement could ever want; the bound keeps K and N small integers.
MAX_SHARDS = 1000


def parse_shard(text: str) -> tuple[int, int]:
    """"2/3" (shard 2 of 3) as (2, 3).

    :raise ValueError: with what is wrong, for the caller to name its setting.
    """
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"must be K/N (shard K of N, e.g. 2/3), got {text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    if not 1 <= n <= MAX_SHARDS:
        raise ValueError(f"must have between 1 and {MAX_SHARDS} shards (the N of K/N), got {text!r}")
    if not 1 <= k <= n:
        raise ValueError(f"must name a shard from 1 to {n} (the K of K/N), got {text!r}")
    return k, n


@dataclasses.dataclass(frozen=True)
class SettlementScope:
    """A shard of the manufacturers, or a set of them by id (with their slugs,
    which `describe` names). Exactly one of the two."""

    shard: tuple[int, int] | None = None
    manufacturer_ids: frozenset[int] | None = None
    manufacturer_slugs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.shard is None) == (self.manufacturer_ids is None):
            raise ValueError("a settlement scope is a shard or a set of manufacturers")
        if self.shard is not None:
            k, n = self.shard
            if not (1 <= n <= MAX_SHARDS and 1 <= k <= n):
                raise ValueError(f"no shard {k}/{n}")
        elif not self.manufacturer_ids:
            raise ValueError("a settlement scope names at least one manufacturer")

    def describe(self) -> str:
        """What a run records and shows: "shard 2/3", "manufacturers acme, bolt".

        The same scope always reads the same, so a run's recorded scope can be
        compared with a scheduler's (see `missed_settlement`)."""
        if self.shard is not None:
            return f"shard {self.shard[0]}/{self.shard[1]}"
        slugs = sorted(self.manufacturer_slugs) or sorted(str(i) for i in self.manufacturer_ids or ())
        return f"manufacturer{'s' if len(slugs) > 1 else ''} {', '.join(slugs)}"


def is_shard(description: str | None) -> bool:
    """Whether a recorded scope is a shard (it names no manufacturer)."""
    return description is not None and description.startswith("shard ")
