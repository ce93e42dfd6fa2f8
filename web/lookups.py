"""werkzeug's request and response mappings, with lookups of a name that is not
there answered straight away.

werkzeug answers `get`, `in` and `setdefault` for an absent name by raising,
and catching, a `BadRequestKeyError`: an HTTP exception, built with its
description, for every miss. Every page asks for names that are mostly absent:
the storefront's `embed`, `page`, `q`, `cart` and `lang`, the language cookie,
and the headers each response is checked for before one is added
(`X-Content-Type-Options`, `Referrer-Policy`, `Vary`). Nothing else changes:
present names, several values, `type=` and the immutability are werkzeug's.
"""

from __future__ import annotations

from werkzeug.datastructures import ImmutableMultiDict


class LookupDict(ImmutableMultiDict):
    """A request's query, form or cookies (`Request.parameter_storage_class`,
    `dict_storage_class`)."""

    def get(self, key, default=None, type=None):  # type: ignore[override]
        if key not in self:
            return default
        return super().get(key, default, type)
