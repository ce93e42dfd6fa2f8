"""A request's query, form and cookies, with `get` of a name that is not there
answered straight away.

werkzeug answers `get` of an absent name by raising, and catching, a
`BadRequestKeyError`: an HTTP exception, built with its description, for every
miss. Every storefront page asks for names that are mostly absent: `embed`,
`page`, `q`, `cart` and `lang`, and the language cookie. Nothing else changes:
present names, several values, `type=`, `[]` (still werkzeug's 400 KeyError)
and the immutability are werkzeug's. (A response's headers are checked for the
names they lack in one pass instead: `web/security.py`.)
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
