"""The storefront and the customer's emails in the store's language: a de_DE
store's pages are German, `?lang=` switches (and is kept in links and a cookie),
a bogus `lang` falls back, and an order's emails follow the language it was
placed in (web/i18n.py, broker/languages.py)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from broker.models import Order
from broker.storefront.services import Branding, update_branding
from tests.factories import World
from tests.integration.test_emails import inbox, text
from broker.notifications.delivery import deliver_emails

GERMAN = {"name": "Max Mustermann", "email": "max@example.com", "line1": "Invalidenstraße 117", "line2": "",
          "city": "Berlin", "postal_code": "10115", "country": "DE", "payment": "test-approve", "delivery": "ship"}


@pytest.fixture
def berlin(ctx):
    maker = World(ctx).manufacturer(slug="berliner-raeder", currency="EUR", products=[("RAD-1", 89900)])
    update_branding(ctx, maker.actor, Branding(name="Berliner Räder", locale="de_DE"))
    return maker


def html_lang(page: bytes) -> str:
    return re.search(rb'<html lang="([^"]*)"', page).group(1).decode()


class TestPages:
    def test_a_german_store_speaks_german(self, client, berlin):
        catalog = client.get("/s/berliner-raeder/")
        assert catalog.status_code == 200 and html_lang(catalog.data) == "de"
        page = catalog.data.decode()
        assert "In den Warenkorb" in page and "Add to cart" not in page
        assert "899,00\xa0€" in page  # money as Germans write it
        assert 'hreflang="fr"' in page and "Français" in page  # the language control
        checkout = client.get("/s/berliner-raeder/checkout?cart=RAD-1:1").data.decode()
        assert "Zahlungspflichtig bestellen" in checkout and "Postleitzahl" in checkout
        assert "Deutschland" in checkout  # the countries, named in German

    def test_the_order_page_and_its_errors_are_german(self, client, berlin, session):
        refused = client.post("/s/berliner-raeder/checkout?cart=RAD-1:1", data={**GERMAN, "name": ""})
        assert refused.status_code == 422 and "Vollständiger Name: Geben Sie Ihren Namen ein" in refused.data.decode()
        wrong = client.post("/s/berliner-raeder/checkout?cart=RAD-1:1", data={**GERMAN, "postal_code": "99"})
        assert "Geben Sie eine Postleitzahl wie 26133 ein" in wrong.data.decode()
        placed = client.post("/s/berliner-raeder/checkout?cart=RAD-1:1", data=GERMAN)
        assert placed.status_code == 303
        order_page = client.get(placed.headers["Location"], follow_redirects=True)
        page = order_page.data.decode()
        assert html_lang(order_page.data) == "de" and "Danke, Ihre Bestellung ist aufgegeben." in page
        assert "Wer Ihre Angaben gesehen hat" in page and "Gesamt" in page
        assert session.scalar(select(Order.language)) == "de"

    def test_lang_switches_and_is_kept_in_links_and_a_cookie(self, client, berlin):
        page = client.get("/s/berliner-raeder/?lang=fr")
        assert html_lang(page.data) == "fr" and "Ajouter au panier" in page.data.decode()
        assert 'href="/s/berliner-raeder/cart?lang=fr"' in page.data.decode()  # links keep it (an iframe has no cookie)
        cookie = page.headers["Set-Cookie"]
        assert "broker_lang=fr" in cookie and "Path=/s/berliner-raeder/" in cookie
        assert "private" in page.headers["Cache-Control"]
        again = client.get("/s/berliner-raeder/cart")  # no `lang`: the cookie remembers
        assert html_lang(again.data) == "fr" and "Votre panier" in again.data.decode()
        english = client.get("/s/berliner-raeder/?lang=en")
        assert html_lang(english.data) == "en" and "Add to cart" in english.data.decode()
        assert "899,00\xa0€" in english.data.decode()  # English, with the store's territory's money

    @pytest.mark.parametrize("bogus", ["xx", "de\"><script>", "../../etc", "en_US" * 10, ""])
    def test_a_bogus_lang_falls_back_to_the_store_and_is_never_reflected(self, client, berlin, bogus):
        page = client.get("/s/berliner-raeder/", query_string={"lang": bogus})
        assert page.status_code == 200 and html_lang(page.data) == "de"
        body = page.data.decode()
        assert "<script>" not in body and "etc" not in body and "broker_lang" not in page.headers.get("Set-Cookie", "")
        assert "lang=" + bogus not in body or bogus == ""

    def test_a_bogus_cookie_falls_back_too(self, client, berlin):
        client.set_cookie("broker_lang", "klingon", path="/s/berliner-raeder/")
        assert html_lang(client.get("/s/berliner-raeder/").data) == "de"

    def test_a_region_code_names_its_language_and_forms_keep_it(self, client, berlin):
        page = client.get("/s/berliner-raeder/?lang=es-MX")
        assert html_lang(page.data) == "es"
        assert '<input type="hidden" name="lang" value="es">' in page.data.decode()  # the search and add forms

    def test_cached_pages_are_kept_per_language(self, app, berlin):
        german, japanese = app.test_client(), app.test_client()
        first = german.get("/s/berliner-raeder/")
        assert "In den Warenkorb" in first.data.decode() and "Cookie" in first.headers["Vary"]  # for shared caches
        assert "カートに入れる" in japanese.get("/s/berliner-raeder/?lang=ja").data.decode()
        assert "カートに入れる" in japanese.get("/s/berliner-raeder/").data.decode()  # its cookie
        assert "In den Warenkorb" in german.get("/s/berliner-raeder/").data.decode()

    def test_an_english_store_stays_english(self, client, ctx):
        World(ctx).manufacturer(slug="acme", products=[("KETTLE", 4599)])
        page = client.get("/s/acme/")
        assert html_lang(page.data) == "en" and "Add to cart" in page.data.decode() and "$45.99" in page.data.decode()
        assert "Set-Cookie" not in page.headers

    def test_a_store_404_is_in_its_language(self, client, berlin):
        missing = client.get("/s/berliner-raeder/no-such-page")
        assert missing.status_code == 404 and html_lang(missing.data) == "de"
        assert "Diese Seite finden wir nicht" in missing.data.decode()

    def test_the_request_pages_switch_too(self, client):
        page = client.get("/requests/new?lang=es")
        assert html_lang(page.data) == "es" and "Preguntar a las tiendas" in page.data.decode()
        assert ">Alemania</option>" in page.data.decode() and "EUR · euro" in page.data.decode()
        assert html_lang(client.get("/requests/new").data) == "es"  # the cookie, scoped to /requests/
        assert html_lang(client.get("/requests/new?lang=en").data) == "en"

    def test_the_portal_stays_english(self, client, berlin):
        client.set_cookie("broker_lang", "de")
        assert html_lang(client.get("/portal/login").data) == "en"


def _emails(ctx, mail_dir, subject_part: str):
    deliver_emails(ctx)
    return [m for m in inbox(mail_dir) if subject_part in m["Subject"]]


class TestEmails:
    def test_an_order_placed_in_german_is_confirmed_in_german(self, client, berlin, ctx, mail_dir):
        assert client.post("/s/berliner-raeder/checkout?cart=RAD-1:1", data=GERMAN).status_code == 303
        [message] = _emails(ctx, mail_dir, "Bestellung")
        assert re.fullmatch(r"Ihre Bestellung \d+ bei Berliner Räder ist bestätigt", message["Subject"])
        body = text(message)
        assert body.startswith("Hallo Max Mustermann,") and "Vielen Dank für Ihre Bestellung" in body
        assert "899,00\xa0€" in body and "Gesamt:" in body and "Thank you" not in body

    def test_an_order_placed_in_english_in_the_same_store_is_confirmed_in_english(self, client, berlin, ctx,
                                                                                    mail_dir):
        placed = client.post("/s/berliner-raeder/checkout?cart=RAD-1:1&lang=en", data=GERMAN)
        assert placed.status_code == 303 and "lang=en" in placed.headers["Location"]
        [message] = _emails(ctx, mail_dir, "confirmed")
        assert re.fullmatch(r"Your order \d+ at Berliner Räder is confirmed", message["Subject"])
        assert text(message).startswith("Hello Max Mustermann,") and "Vielen Dank" not in text(message)

    def test_an_api_order_follows_the_stores_language(self, client, berlin, ctx, mail_dir, session):
        order = {"items": [{"sku": "RAD-1", "quantity": 1}],
                 "customer": {"name": "Erika Musterfrau", "email": "erika@example.com"},
                 "ship_to": {"line1": "Invalidenstraße 117", "city": "Berlin", "postal_code": "10115",
                             "country": "DE"}}
        assert client.post("/api/v1/storefronts/berliner-raeder/orders", json=order).status_code == 201
        assert session.scalar(select(Order.language)) is None  # an API client names none
        [message] = _emails(ctx, mail_dir, "Bestellung")
        assert "bestätigt" in message["Subject"]

    def test_an_api_client_names_the_customers_language(self, client, berlin, ctx, mail_dir, session):
        order = {"items": [{"sku": "RAD-1", "quantity": 1}],
                 "customer": {"name": "Marie Curie", "email": "marie@example.com"},
                 "ship_to": {"line1": "Invalidenstraße 117", "city": "Berlin", "postal_code": "10115",
                             "country": "DE"}}
        refused = client.post("/api/v1/storefronts/berliner-raeder/orders", json={**order, "language": "xx"})
        assert refused.status_code == 422 and "language" in refused.get_json()["errors"]
        assert client.post("/api/v1/storefronts/berliner-raeder/orders",
                           json={**order, "language": "fr"}).status_code == 201
        assert session.scalar(select(Order.language)) == "fr"
        [message] = _emails(ctx, mail_dir, "commande")
        assert "Bestellung" not in message["Subject"]

    def test_a_japanese_order_is_confirmed_in_japanese(self, client, berlin, ctx, mail_dir):
        assert client.post("/s/berliner-raeder/checkout?cart=RAD-1:1&lang=ja", data=GERMAN).status_code == 303
        [message] = _emails(ctx, mail_dir, "ご注文")
        assert "を承りました" in message["Subject"] and text(message).startswith("Max Mustermann 様")
