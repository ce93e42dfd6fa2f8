"""Hosts, URLs and headers: what a party controls never becomes a header's
syntax, and nothing Broker builds takes the request's Host.

- Origins, image URLs, colours and custom domains are parsed to their grammar
  (broker/grammar.py) in the API, the console and the CSV import, and refused
  with a 422 when they do not fit; headers are built from the parsed values,
  even when the database holds a value stored before the rules.
- Custom domains are real host names: no IP literal in any spelling, no local
  name, never Broker's own host, one store each; they serve only once verified,
  and then only their store.
- Requests for any other host are refused (400) before a view runs; the embed
  script, the Stripe return URL and emails use BROKER_PUBLIC_URL.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from broker.accounts.models import Manufacturer, Role
from broker.catalog.models import Product
from broker.catalog.services import NewProduct, add_product
from broker.errors import Invalid
from broker.storefront import domains
from broker.storefront.domains import verify_domain
from broker.storefront.hosts import DomainCheckFailed
from broker.storefront.services import Branding, own_store, update_branding
from tests.integration.test_console_pages import csrf, sign_in

DIRECTIVE = "https://shop.example; report-uri \\\\attacker:8299"


@pytest.fixture
def maker(world):
    return world.manufacturer(slug="acme", products=[("KETTLE", 4599)])


def api(maker) -> dict:
    return {"Authorization": f"Bearer {maker.key}"}


def app_with(ctx, **settings):
    """An app on the test's database with other settings (a fresh page cache and domain directory)."""
    from web.app import create_app

    changed = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, **settings), page_cache=None,
                                  domain_directory=None, domain_checker=None)
    return changed, create_app(context=changed, test_config={"TESTING": True})


def through(client):
    """A domain check that reaches this Broker as DNS pointing at it would: the
    challenge URL is asked of the app with the domain as its Host."""

    def check(url: str) -> bytes:
        parts = urlsplit(url)
        response = client.get(parts.path, headers={"Host": parts.hostname})
        if response.status_code != 200:
            raise DomainCheckFailed(f"it answered HTTP {response.status_code}")
        return response.data

    return check


def verified(ctx, client, maker, domain: str) -> None:
    update_branding(ctx, maker.actor, Branding(custom_domain=domain))
    ctx.domain_checker = through(client)
    verify_domain(ctx, maker.actor)


def errors(response, field: str) -> str:
    """Every message the 422 has for `field` (a list's items are `field.0`, ...), as one text."""
    assert response.status_code == 422, response.get_data(as_text=True)
    found = {k: v for k, v in response.get_json()["errors"].items() if k == field or k.startswith(field + ".")}
    assert found, response.get_json()
    return " ".join(str(m) for m in found.values())


def csp(response) -> dict[str, list[str]]:
    directives = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        assert name not in directives, f"{name} appears twice"
        directives[name] = values
    return directives


# --- finding 1: header injection through the storefront's settings ----------------


class TestOrigins:
    def test_frame_origin_with_a_directive_is_refused(self, client, ctx, maker):
        response = client.patch("/api/v1/storefront", headers=api(maker), json={"frame_origins": [DIRECTIVE]})
        assert "';'" in errors(response, "frame_origins")
        with pytest.raises(Invalid) as raised:
            update_branding(ctx, maker.actor, Branding(frame_origins=[DIRECTIVE]))
        assert "frame_origins" in raised.value.errors
        assert own_store(ctx, maker.actor).frame_origins == []
        assert "report-uri" not in client.get("/s/acme/").headers["Content-Security-Policy"]

    def test_frame_origin_with_a_directive_is_refused_in_the_console(self, client, ctx, maker):
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        form = {"csrf_token": csrf(client, "/console/storefront"), "name": "Acme", "logo_url": "",
                "color_primary": "#1d4ed8", "color_accent": "#f59e0b", "locale": "en_US", "custom_domain": "",
                "frame_origins": DIRECTIVE, "return_window_days": "30"}
        response = client.post("/console/storefront", data=form)
        assert response.status_code == 422 and 'id="frame_origins-error"' in response.get_data(as_text=True)
        assert own_store(ctx, maker.actor).frame_origins == []

    @pytest.mark.parametrize("origin", ["https://a.example:99x", "https://a.example:0", "https://a.example:65536",
                                        "https://a.example:+443", "https://a.example:", "https://[::1]:99x"])
    def test_origin_with_a_bad_port_is_a_422_not_a_500(self, client, maker, origin):
        response = client.patch("/api/v1/storefront", headers=api(maker), json={"frame_origins": [origin]})
        assert "port" in errors(response, "frame_origins")

    @pytest.mark.parametrize("origin", ["https://a.example/path", "https://user@a.example", "https://a.example?x",
                                        "https://a.example#x", "https://*.example", "javascript:alert(1)",
                                        "https://a.example 'unsafe-inline'", "https://a.example,https://b.example",
                                        "ftp://a.example", "https://0x7f.1", "https://a.example\ud800"])
    def test_origins_are_scheme_host_and_port_and_nothing_else(self, client, maker, origin):
        response = client.patch("/api/v1/storefront", headers=api(maker), json={"frame_origins": [origin]})
        # A lone surrogate never reaches the grammar: the input boundary refuses it (400).
        assert response.status_code == (400 if "\ud800" in origin else 422), origin

    def test_origins_are_stored_as_browsers_send_them(self, client, maker):
        response = client.patch("/api/v1/storefront", headers=api(maker), json={"frame_origins": [
            "HTTPS://Bücher.Example:443/", "http://127.0.0.1:8080"]})
        assert response.status_code == 200
        assert response.get_json()["frame_origins"] == ["http://127.0.0.1:8080", "https://xn--bcher-kva.example"]

    def test_csp_is_built_from_parsed_origins_even_for_bad_stored_values(self, client, ctx, maker, session):
        # Put there before the grammar existed, or by hand: the header drops what no longer parses.
        session.execute(update(Manufacturer).where(Manufacturer.id == maker.id).values(
            frame_origins=[DIRECTIVE, "https://ok.example/", "javascript:alert(1)", "https://ok.example",
                           {"origin": "https://x.example"}, ["https://y.example"], 7, None],
            color_primary="red;}*{"))
        session.commit()
        response = client.get("/s/acme/")
        directives = csp(response)
        assert directives["frame-ancestors"] == ["'self'", "https://ok.example"]
        assert "report-uri" not in directives and "\\\\attacker" not in response.headers["Content-Security-Policy"]
        assert "--brand: #1d4ed8" in response.get_data(as_text=True)


class TestImages:
    def https_app(self, ctx):
        return app_with(ctx, public_url="https://broker.example", allowed_hosts=("localhost",))

    def test_http_logo_refused_on_an_https_deployment(self, ctx, maker):
        https_ctx, app = self.https_app(ctx)
        client = app.test_client()
        response = client.patch("/api/v1/storefront", headers=api(maker),
                                json={"logo_url": "http://cdn.acme.example/logo.png"})
        assert "https" in errors(response, "logo_url")
        ok = client.patch("/api/v1/storefront", headers=api(maker),
                          json={"logo_url": "https://cdn.acme.example/logo.png"})
        assert ok.status_code == 200 and ok.get_json()["logo_url"] == "https://cdn.acme.example/logo.png"

    def test_http_product_images_refused_on_an_https_deployment_by_api_console_and_import(self, ctx, maker,
                                                                                            session):
        https_ctx, app = self.https_app(ctx)
        client = app.test_client()
        image = "http://img.acme.example/kettle.jpg"
        response = client.post("/api/v1/products", headers=api(maker),
                               json={"sku": "NEW-1", "name": "New", "price": 100, "image_url": image})
        assert "https" in errors(response, "image_url")
        patch = client.patch("/api/v1/products/KETTLE", headers=api(maker), json={"image_url": image})
        assert patch.status_code == 422
        sign_in(client, https_ctx, Role.MANUFACTURER, maker.id)
        form = client.post("/console/catalog/p/KETTLE", data={
            "csrf_token": csrf(client, "/console/catalog"), "name": "Kettle", "price": "45.99", "description": "",
            "image_url": image, "in_stock": "on", "active": "on"})
        assert form.status_code == 422 and 'id="image_url-error"' in form.get_data(as_text=True)
        csv = f"sku,name,price,image_url\nKETTLE,Kettle,45.99,{image}\n".encode()
        imported = client.post("/console/catalog/import", data={
            "csrf_token": csrf(client, "/console/catalog"), "file": (io.BytesIO(csv), "catalog.csv")},
            content_type="multipart/form-data")
        assert imported.status_code == 422 and "https" in imported.get_data(as_text=True)
        assert session.scalar(select(Product.image_url).where(Product.sku == "KETTLE")) is None

    @pytest.mark.parametrize("image", ["https://user:secret@img.example/a.png", "https://127.0.0.1/a.png",
                                       "https://2130706433/a.png", "https://localhost/a.png",
                                       "javascript:alert(1)", "https://img.example/a b.png",
                                       "https://img.example/\ud800.png"])
    def test_image_urls_are_public_https_addresses_without_credentials(self, client, maker, image):
        response = client.post("/api/v1/products", headers=api(maker),
                               json={"sku": "NEW-1", "name": "New", "price": 100, "image_url": image})
        assert response.status_code == (400 if "\ud800" in image else 422), image

    def test_an_image_url_too_long_once_encoded_is_a_422(self, client, maker):
        long = "https://img.example/" + "\u00e9" * 470  # 490 characters, 2,840 once percent-encoded
        for call in (lambda: client.patch("/api/v1/storefront", headers=api(maker), json={"logo_url": long}),
                     lambda: client.patch("/api/v1/products/KETTLE", headers=api(maker), json={"image_url": long})):
            response = call()
            assert response.status_code == 422 and "percent-encoded" in response.get_data(as_text=True)

    def test_image_urls_are_stored_encoded(self, ctx, maker):
        view = add_product(ctx, maker.actor, NewProduct("NEW-1", "New", 100,
                                                        image_url="https://IMG.example/tea pot\u00e9.png"
                                                        .replace(" ", "%20")))
        assert view.product.image_url == "https://img.example/tea%20pot%C3%A9.png"

    def test_a_stored_image_that_no_longer_fits_is_not_rendered(self, ctx, maker, session):
        session.execute(update(Product).where(Product.sku == "KETTLE").values(
            image_url='http://img.acme.example/k.png" onerror="alert(1)'))
        session.execute(update(Manufacturer).where(Manufacturer.id == maker.id).values(
            logo_url="http://cdn.acme.example/logo.png"))
        session.commit()
        _, app = self.https_app(ctx)
        page = app.test_client().get("/s/acme/").get_data(as_text=True)
        assert "img.acme.example" not in page and "cdn.acme.example" not in page and "<img" not in page


# --- finding 6: custom domains -----------------------------------------------------


IP_SPELLINGS = ["127.0.0.1", "2130706433", "0x7f000001", "0x7f.1", "0x7f.0.0.1", "0177.0.0.1", "127.1",
                "017700000001", "[::1]", "::1", "[::ffff:127.0.0.1]", "10.0.0.1", "127\u30020\u30020\u30021",
                "169.254.169.254"]


class TestCustomDomains:
    @pytest.mark.parametrize("domain", IP_SPELLINGS)
    def test_custom_domain_cannot_be_an_ip_literal(self, client, ctx, maker, domain):
        response = client.patch("/api/v1/storefront", headers=api(maker), json={"custom_domain": domain})
        assert response.status_code == 422, domain
        with pytest.raises(Invalid):
            update_branding(ctx, maker.actor, Branding(custom_domain=domain))
        assert own_store(ctx, maker.actor).custom_domain is None

    @pytest.mark.parametrize("domain", ["localhost", "LOCALHOST.", "shop.localhost", "shop", "printer.local",
                                        "db.internal", "1.0.0.127.in-addr.arpa", "a_b.example.com"])
    def test_custom_domain_must_be_a_real_host_name(self, client, maker, domain):
        response = client.patch("/api/v1/storefront", headers=api(maker), json={"custom_domain": domain})
        assert response.status_code == 422, domain

    @pytest.mark.parametrize("domain", ["broker.example", "BROKER.example.", "www.broker.example",
                                        "lb.internal.example"])
    def test_custom_domain_cannot_be_brokers_own_host(self, ctx, maker, domain):
        _, app = app_with(ctx, public_url="https://broker.example",
                          allowed_hosts=("localhost", "lb.internal.example"))
        response = app.test_client().patch("/api/v1/storefront", headers=api(maker), json={"custom_domain": domain})
        assert "own address" in errors(response, "custom_domain")

    def test_the_front_page_stays_brokers(self, client, ctx, maker):
        # Finding 6: a store set `127.0.0.1` and `/` then redirected to it.
        client.patch("/api/v1/storefront", headers=api(maker), json={"custom_domain": "localhost"})
        response = client.get("/")
        assert response.status_code == 200 and "Location" not in response.headers

    @pytest.mark.parametrize("first, second", [("shop.example.com", "SHOP.Example.com."),
                                               ("bücher.example", "xn--bcher-kva.example")])
    def test_two_stores_cannot_hold_one_domain(self, client, world, maker, first, second):
        other = world.manufacturer(slug="other")
        assert client.patch("/api/v1/storefront", headers=api(maker), json={"custom_domain": first}).status_code == 200
        response = client.patch("/api/v1/storefront", headers=api(other), json={"custom_domain": second})
        assert "another store" in errors(response, "custom_domain")

    def test_a_race_for_one_domain_gives_the_loser_a_422(self, client, ctx, world, maker, monkeypatch):
        other = world.manufacturer(slug="other")
        update_branding(ctx, maker.actor, Branding(custom_domain="shop.example.com"))
        # The loser read before the winner committed: only the unique constraint stands in the way.
        monkeypatch.setattr(domains, "held_by", lambda session, domain, maker_id: None)
        response = client.patch("/api/v1/storefront", headers=api(other),
                                json={"custom_domain": "shop.example.com", "name": "Renamed"})
        assert "another store" in errors(response, "custom_domain")
        assert own_store(ctx, other.actor).name != "Renamed"  # nothing half-written

    def test_an_unverified_domain_serves_nothing_but_its_challenge(self, client, ctx, maker):
        update_branding(ctx, maker.actor, Branding(custom_domain="shop.acme.example"))
        assert client.get("/", headers={"Host": "shop.acme.example"}).status_code == 400
        assert client.get("/s/acme/", headers={"Host": "shop.acme.example"}).status_code == 400
        token = own_store(ctx, maker.actor).domain_token
        answer = client.get(f"/.well-known/broker-domain/{token}", headers={"Host": "shop.acme.example"})
        assert answer.status_code == 200 and answer.get_data(as_text=True) == token
        wrong = client.get("/.well-known/broker-domain/guess", headers={"Host": "shop.acme.example"})
        assert wrong.status_code == 404
        # Broker's own host has no challenge to answer.
        assert client.get(f"/.well-known/broker-domain/{token}").status_code == 404
        # No URL is built on it either.
        assert "shop.acme.example" not in client.get("/s/acme/embed.js").get_data(as_text=True)

    def test_verifying_a_domain_makes_it_serve_the_store(self, client, ctx, maker):
        verified(ctx, client, maker, "shop.acme.example")
        home = client.get("/", headers={"Host": "shop.acme.example"})
        assert home.status_code == 302 and home.headers["Location"] == "/s/acme/"
        assert client.get("/s/acme/", headers={"Host": "shop.acme.example"}).status_code == 200
        js = client.get("/s/acme/embed.js").get_data(as_text=True)
        assert '"http://shop.acme.example/s/acme/?embed=1"' in js and '"http://shop.acme.example"' in js
        body = client.patch("/api/v1/storefront", headers=api(maker), json={}).get_json()
        assert body["custom_domain_verified"] is True
        assert 'src="http://shop.acme.example/s/acme/embed.js"' in body["embed_snippet"]

    def test_a_verified_domain_serves_its_own_store_only(self, client, ctx, world, maker):
        world.manufacturer(slug="other")
        verified(ctx, client, maker, "shop.acme.example")
        host = {"Host": "shop.acme.example"}
        for path in ("/s/other/", "/signin", "/console/", "/api/v1/board", "/requests/new"):
            assert client.get(path, headers=host).status_code == 404, path

    def test_a_domain_that_does_not_answer_the_token_is_not_verified(self, client, ctx, maker):
        update_branding(ctx, maker.actor, Branding(custom_domain="shop.acme.example"))
        ctx.domain_checker = lambda url: b"somebody else's answer"
        with pytest.raises(Invalid) as raised:
            verify_domain(ctx, maker.actor)
        assert "did not answer with this store's token" in raised.value.errors["custom_domain"][0]

        def down(url):
            raise DomainCheckFailed("it answered HTTP 404")

        ctx.domain_checker = down
        with pytest.raises(Invalid) as raised:
            verify_domain(ctx, maker.actor)
        assert "HTTP 404" in raised.value.errors["custom_domain"][0]
        assert own_store(ctx, maker.actor).domain_verified_at is None
        assert client.get("/", headers={"Host": "shop.acme.example"}).status_code == 400

    def test_changing_the_domain_starts_a_new_claim(self, client, ctx, maker):
        verified(ctx, client, maker, "shop.acme.example")
        update_branding(ctx, maker.actor, Branding(custom_domain="shop.acme.example"))  # the same: kept
        assert own_store(ctx, maker.actor).domain_verified_at is not None
        update_branding(ctx, maker.actor, Branding(custom_domain="store.acme.example"))
        store = own_store(ctx, maker.actor)
        assert store.domain_verified_at is None and store.custom_domain == "store.acme.example"
        assert client.get("/", headers={"Host": "shop.acme.example"}).status_code == 400
        assert client.get("/", headers={"Host": "store.acme.example"}).status_code == 400

    def test_a_stored_domain_that_no_longer_fits_is_never_checked(self, ctx, maker, session):
        session.execute(update(Manufacturer).where(Manufacturer.id == maker.id).values(
            custom_domain="127.0.0.1", domain_token="t" * 43))
        session.commit()
        called = []
        ctx.domain_checker = called.append
        with pytest.raises(Invalid) as raised:
            verify_domain(ctx, maker.actor)
        assert "set the domain again" in raised.value.errors["custom_domain"][0] and called == []

    def test_the_console_verifies_the_domain(self, client, ctx, maker):
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        update_branding(ctx, maker.actor, Branding(custom_domain="shop.acme.example"))
        page = client.get("/console/storefront").get_data(as_text=True)
        assert "is not verified yet" in page and "Verify shop.acme.example" in page
        ctx.domain_checker = lambda url: b"wrong"
        failed = client.post("/console/storefront/domain/verify",
                             data={"csrf_token": csrf(client, "/console/storefront")})
        assert failed.status_code == 422 and 'id="custom_domain-error"' in failed.get_data(as_text=True)
        ctx.domain_checker = through(client)
        done = client.post("/console/storefront/domain/verify",
                           data={"csrf_token": csrf(client, "/console/storefront")})
        assert done.status_code == 302
        assert "is verified" in client.get("/console/storefront").get_data(as_text=True)


# --- finding 10: the Host header ----------------------------------------------------


class TestHosts:
    @pytest.mark.parametrize("path", ["/", "/s/acme/", "/s/acme/embed.js", "/api/v1/storefronts/acme/products",
                                      "/signin", "/static/store.css"])
    def test_unknown_host_is_refused(self, client, maker, path):
        with client.get(path, headers={"Host": "evil.example"}) as refused, client.get(path) as answered:
            assert refused.status_code == 400 and answered.status_code in (200, 302)

    def test_a_forwarded_host_is_checked_too(self, ctx, maker):
        _, app = app_with(ctx, trusted_proxies=1)
        client = app.test_client()
        assert client.get("/s/acme/", headers={"X-Forwarded-Host": "evil.example"}).status_code == 400
        assert client.get("/s/acme/", headers={"X-Forwarded-Host": "localhost"}).status_code == 200

    def test_allowed_hosts_are_answered(self, ctx, maker):
        _, app = app_with(ctx, allowed_hosts=("lb.internal.example",))
        client = app.test_client()
        assert client.get("/s/acme/", headers={"Host": "lb.internal.example:8080"}).status_code == 200
        assert client.get("/s/acme/", headers={"Host": "other.internal.example"}).status_code == 400

    def test_health_checks_answer_any_host(self, client):
        assert client.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200

    def test_embed_js_ignores_the_host_header(self, ctx, maker):
        _, app = app_with(ctx, public_url="https://broker.example", allowed_hosts=("internal.example",))
        client = app.test_client()
        assert client.get("/s/acme/embed.js", headers={"Host": "evil.example"}).status_code == 400
        js = client.get("/s/acme/embed.js", headers={"Host": "internal.example"})
        assert js.status_code == 200 and js.headers["Cache-Control"].startswith("public")
        body = js.get_data(as_text=True)
        assert '"https://broker.example/s/acme/?embed=1"' in body and '"https://broker.example"' in body
        assert "internal.example" not in body

    def test_the_embed_snippet_ignores_the_host_header(self, ctx, maker):
        _, app = app_with(ctx, public_url="https://broker.example", allowed_hosts=("internal.example",))
        response = app.test_client().patch("/api/v1/storefront", headers={**api(maker), "Host": "internal.example"},
                                           json={})
        snippet = response.get_json()["embed_snippet"]
        assert snippet == '<script src="https://broker.example/s/acme/embed.js" data-store="acme"></script>'

    def test_public_url_must_be_an_origin(self):
        from broker.config import ConfigError, Settings

        for bad in ("https://broker.example/shop", "broker.example", "https://broker.example:99x",
                    "https://broker.example; x"):
            with pytest.raises(ConfigError):
                Settings.from_env({"BROKER_PUBLIC_URL": bad})
        with pytest.raises(ConfigError):
            Settings.from_env({"BROKER_ALLOWED_HOSTS": "ok.example, https://not-a-host.example/"})
        settings = Settings.from_env({"BROKER_PUBLIC_URL": "https://Broker.Example/",
                                      "BROKER_ALLOWED_HOSTS": "lb.example, 10.0.0.5"})
        assert str(settings.public_origin) == "https://broker.example"
        assert settings.trusted_hosts == ("broker.example", "lb.example", "10.0.0.5")


def test_sign_in_never_sends_you_to_another_site(client, ctx, maker):
    from web.security import safe_next

    for target in ("https://evil.example", "//evil.example", "/\\evil.example", "/\t/evil.example",
                   "\\\\evil.example", "javascript:alert(1)", "/\r\nLocation: https://evil.example"):
        assert safe_next(target, "/portal/") == "/portal/", target
    assert safe_next("/console/orders?page=2", "/") == "/console/orders?page=2"


# --- the verification's HTTP call, and the command ------------------------------------


class ChallengeServer:
    """Somebody's web server on 127.0.0.1: answers the challenge path with `answer`,
    `/moved/...` with a redirect, and records the Host of every request."""

    def __init__(self, answer: bytes):
        import threading

        from werkzeug.serving import make_server

        self.hosts: list[str] = []

        def app(environ, start_response):
            self.hosts.append(environ.get("HTTP_HOST", ""))
            if environ["PATH_INFO"].startswith("/moved/"):
                start_response("302 Found", [("Location", "http://elsewhere.example/")])
                return [b""]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [answer]

        self.server = make_server("127.0.0.1", 0, app)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def resolver(self, host, port, *args):
        """DNS for the test: every name is this server (a loopback address)."""
        import socket

        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", self.port))]

    def close(self):
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


@pytest.fixture
def challenge_server():
    server = ChallengeServer(b"the-token")
    yield server
    server.close()


class TestHttpDomainCheck:
    def test_a_domain_on_a_private_address_is_never_called(self, challenge_server):
        from broker.storefront.hosts import HttpDomainCheck

        check = HttpDomainCheck(resolver=challenge_server.resolver)
        with pytest.raises(DomainCheckFailed) as raised:
            check("http://shop.example.com/.well-known/broker-domain/the-token")
        assert "loopback" in str(raised.value) and challenge_server.hosts == []

    def test_the_answer_is_fetched_from_the_domain(self, challenge_server):
        from broker.storefront.hosts import HttpDomainCheck

        check = HttpDomainCheck(allow_private=True, resolver=challenge_server.resolver)
        assert check("http://shop.example.com/.well-known/broker-domain/the-token") == b"the-token"
        assert challenge_server.hosts == ["shop.example.com"]

    def test_redirects_are_not_followed(self, challenge_server):
        from broker.storefront.hosts import HttpDomainCheck

        check = HttpDomainCheck(allow_private=True, resolver=challenge_server.resolver)
        with pytest.raises(DomainCheckFailed) as raised:
            check("http://shop.example.com/moved/the-token")
        assert "302" in str(raised.value) and len(challenge_server.hosts) == 1


def test_the_operator_verifies_a_domain_from_the_command_line(client, ctx, maker, monkeypatch):
    from click.testing import CliRunner

    import web.cli

    monkeypatch.setattr(web.cli, "_context", lambda *args, **kwargs: ctx)
    runner = CliRunner()
    unknown = runner.invoke(web.cli.main, ["storefront", "verify-domain", "nobody"])
    assert unknown.exit_code == 1 and "no storefront 'nobody'" in unknown.output
    nothing = runner.invoke(web.cli.main, ["storefront", "verify-domain", "acme"])
    assert nothing.exit_code == 1 and "set a custom domain first" in nothing.output
    update_branding(ctx, maker.actor, Branding(custom_domain="shop.acme.example"))
    ctx.domain_checker = through(client)
    done = runner.invoke(web.cli.main, ["storefront", "verify-domain", "acme"])
    assert done.exit_code == 0 and "shop.acme.example is verified" in done.output
    assert client.get("/s/acme/", headers={"Host": "shop.acme.example"}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/s/acme/", "/signin", "/no/such/page", "/api/v1/storefronts/acme/products"])
def test_a_foreign_host_is_a_plain_400_with_nothing_logged(client, maker, caplog, path):
    """No page of Broker's can be built for a Host it does not answer for (every
    link in one needs a URL): a short text answer (the API's: its problem
    details), and no traceback in the log for each such request (a flood of
    them would bury the real errors)."""
    with caplog.at_level(logging.DEBUG):
        response = client.get(path, headers={"Host": "attacker.example"})
    assert response.status_code == 400
    if path.startswith("/api/"):
        assert response.mimetype == "application/problem+json" and response.get_json()["status"] == 400
    else:
        assert response.get_data(as_text=True) == "This address is not served here.\n"
        assert response.mimetype == "text/plain" and response.headers["Cache-Control"] == "no-store"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], caplog.text
