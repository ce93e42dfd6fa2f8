"""What every request and response passes through, below the views: the lookups
of absent names (web/lookups.py), the headers every response gets unless it set
its own (web/security.py), and the app's `ensure_sync` (web/app.py)."""

from __future__ import annotations

import pytest
from flask import Response, redirect, request
from werkzeug import exceptions

from web import capability, security
from web.lookups import LookupDict

TOKEN = "Zx81-aB3dEf9GhJ2kLmN5pQrS7tUvW0xYz4"


class TestLookupDict:
    def test_answers_as_werkzeugs_multidict(self):
        values = LookupDict([("page", "2"), ("tag", "a"), ("tag", "b"), ("bad", "x")])
        assert values.get("page") == "2" and values.get("page", type=int) == 2
        assert values.get("tag") == "a" and values.getlist("tag") == ["a", "b"]
        assert values.get("bad", 1, type=int) == 1  # a value the type refuses gives the default
        assert values.get("missing") is None and values.get("missing", "d") == "d"
        assert values.get("missing", 3, type=int) == 3
        assert "tag" in values and "missing" not in values
        with pytest.raises(KeyError):
            values["missing"]  # indexing still raises werkzeug's 400 KeyError
        with pytest.raises(TypeError):
            values["page"] = "3"  # still immutable

    def test_a_miss_builds_no_http_exception(self, monkeypatch):
        def refuse(*args, **kwargs):
            raise AssertionError("a miss built a BadRequestKeyError")

        monkeypatch.setattr(exceptions.BadRequestKeyError, "__init__", refuse)
        assert LookupDict([("a", "1")]).get("b", "d") == "d"

    def test_the_apps_query_form_and_cookies_are_lookup_dicts(self, app):
        with app.test_request_context("/?page=2", method="POST", data={"cart": "KETTLE:1"},
                                      headers={"Cookie": "broker_lang=de"}):
            assert isinstance(request.args, LookupDict) and request.args.get("q") is None
            assert isinstance(request.form, LookupDict) and request.form.get("cart") == "KETTLE:1"
            assert isinstance(request.cookies, LookupDict) and request.cookies.get("broker_lang") == "de"
            assert request.values.get("page", type=int) == 2 and request.values.get("cart") == "KETTLE:1"


class TestEnsureSync:
    def test_a_sync_function_is_itself_and_remembered(self, app):
        def view():
            return "x"

        assert app.ensure_sync(view) is view and app.ensure_sync(view) is view
        assert app._ensured.cache_info().maxsize == 512  # bounded

    def test_a_coroutine_function_still_goes_to_flask(self, app):
        async def view():
            return "x"

        try:
            made = app.ensure_sync(view)
        except RuntimeError as exc:  # Flask's own answer without asgiref installed
            assert "async" in str(exc).lower()
        else:
            assert made is not view
