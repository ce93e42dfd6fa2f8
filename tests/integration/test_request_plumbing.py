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


class TestEveryResponsesHeaders:
    def test_missing_ones_are_added(self, app):
        with app.test_request_context("/"):
            response = security._headers(Response("x"))
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP here

    def test_a_responses_own_are_kept(self, app):
        own = {"Referrer-Policy": "no-referrer", "Cache-Control": "public, no-cache", "x-content-type-options": "nosniff"}
        with app.test_request_context("/"):
            response = security._headers(Response("x", headers=own))
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "public, no-cache"
        assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]  # not added twice

    def test_behind_https_strict_transport_security_is_added(self, app):
        app.config["SESSION_COOKIE_SECURE"] = True
        with app.test_request_context("/"):
            response = security._headers(Response("x"))
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


class TestRedirectToACapability:
    def test_a_redirect_to_a_token_url_sends_no_referrer(self, app):
        """From a URL that holds no token, to one that does: whoever made the redirect."""
        with app.test_request_context("/s/acme/checkout", method="POST"):
            response = capability._no_referrer(redirect(f"/s/acme/o/1/{TOKEN}?new=1", code=303))
            other = capability._no_referrer(redirect("/s/acme/o/1?new=1", code=303))
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Referrer-Policy" not in other.headers  # left to the app-wide default

    def test_a_page_that_merely_names_a_location_is_not_a_redirect(self, app):
        with app.test_request_context("/s/acme/"):
            response = Response("x", headers={"Location": f"/s/acme/o/1/{TOKEN}"})
            assert "Referrer-Policy" not in capability._no_referrer(response).headers

    def test_the_checkouts_redirect_to_the_new_order_sends_no_referrer(self, client, world):
        """The storefront's own header hook used to set `same-origin` over the
        checkout's `no-referrer` on the redirect that carries the order's token."""
        world.manufacturer("acme", products=[("KETTLE", 4599)])
        form = {"name": "Ada Lovelace", "email": "ada@example.com", "line1": "12 Analytical Row", "line2": "",
                "city": "San Francisco", "postal_code": "94103", "country": "US", "payment": "test-approve"}
        done = client.post("/s/acme/checkout?cart=KETTLE:1", data=form)
        assert done.status_code == 303 and "/s/acme/o/" in done.headers["Location"]
        assert done.headers["Referrer-Policy"] == "no-referrer"
        assert done.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors" in done.headers["Content-Security-Policy"]  # still the store's own CSP


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
