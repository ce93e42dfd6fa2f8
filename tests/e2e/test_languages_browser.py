"""The storefront in the store's language, in a real browser (headless Chromium).

A German customer buys from a Berlin euro store with every page in German, at
390 px wide; a Japanese customer from a Tokyo yen store in Japanese; and the
language control switches a page's language, which then stays in its links.
Every page: `<html lang>` as chosen, no sideways scrolling, no serious or
critical axe-core violation, nothing in the console.

Screenshots in `artifacts/screenshots/<test>/`.
"""

from __future__ import annotations

import re

import pytest

from broker.catalog import services as catalog
from broker.config import Settings
from broker.context import Context
from broker.migrate import upgrade
from broker.storefront.services import Branding, update_branding
from tests.e2e.browser import SKIP_WITHOUT_BROWSER, Server, expect, free_port, watched_page
from tests.e2e.browser import assert_no_sideways_scrolling as _no_sideways_scrolling
from tests.e2e.browser import serious_axe_violations as _serious_axe_violations
from tests.factories import World

pytestmark = SKIP_WITHOUT_BROWSER


@pytest.fixture(scope="module")
def site(_browser_available, tmp_path_factory):
    from web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('languages') / 'store.db'}"
    upgrade(url)
    port = free_port()
    ctx = Context.from_settings(Settings(database_url=url, admin_token="x", secret_key="k",
                                         public_url=f"http://127.0.0.1:{port}"))
    world = World(ctx)
    berlin = world.manufacturer("rad", currency="EUR", products=())
    update_branding(ctx, berlin.actor, Branding(name="Berliner Räder", locale="de_DE"))
    catalog.add_product(ctx, berlin.actor, catalog.NewProduct("RAD-1", "Stadtrad", 59900, "Sieben Gänge."))
    tokyo = world.manufacturer("jitensha", currency="JPY", products=())
    update_branding(ctx, tokyo.actor, Branding(name="東京サイクル", locale="ja_JP"))
    catalog.add_product(ctx, tokyo.actor, catalog.NewProduct("JI-1", "シティサイクル", 48000, "外装6段変速。"))
    store = Server(create_app(context=ctx), port)
    try:
        yield store
    finally:
        store.close()
        ctx.engine.dispose()


def _checks(page, language: str) -> None:
    assert page.locator("html").get_attribute("lang") == language
    _no_sideways_scrolling(page)
    assert _serious_axe_violations(page) == []


def test_a_german_customer_buys_in_german_at_390px(site, browser, shot):
    # The first try at checkout is refused (422): a console error of its own, expected.
    with watched_page(browser, width=390, any_console_error=False) as page:
        page.goto(site.origin + "/s/rad/")
        expect(page.get_by_text("599,00 €")).to_be_visible()
        _checks(page, "de")
        shot(page, "catalog")
        page.get_by_role("button", name="Stadtrad in den Warenkorb legen").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Ihr Warenkorb")
        _checks(page, "de")
        page.get_by_role("link", name="Zur Kasse").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Kasse")
        expect(page.get_by_label("Land")).to_have_value("DE")
        _checks(page, "de")
        shot(page, "checkout")
        page.get_by_role("button", name=re.compile("Zahlungspflichtig bestellen")).click()  # nothing filled in
        expect(page.locator("#error-summary")).to_contain_text("Vollständiger Name")
        _checks(page, "de")
        page.get_by_label("Vollständiger Name").fill("Max Mustermann")
        page.get_by_label("E-Mail").fill("max@example.com")
        page.get_by_label("Straße und Hausnummer").fill("Invalidenstraße 117")
        page.get_by_label("Postleitzahl").fill("10115")
        page.get_by_label("Ort").fill("Berlin")
        page.get_by_label("Eine Testzahlung genehmigen").check()
        page.get_by_role("button", name=re.compile("Zahlungspflichtig bestellen")).click()
        expect(page.get_by_role("status").first).to_contain_text("Danke, Ihre Bestellung ist aufgegeben.")
        expect(page.locator("#status")).to_have_text("ausgeschrieben")
        expect(page.locator("table").first).to_contain_text("599,00 €")
        _checks(page, "de")
        shot(page, "order")


def test_a_japanese_customer_buys_in_japanese(site, browser, shot):
    with watched_page(browser, width=390) as page:
        page.goto(site.origin + "/s/jitensha/checkout?cart=JI-1:1")
        expect(page.get_by_role("heading", level=1)).to_have_text("ご注文手続き")
        expect(page.locator("#order-total")).to_have_text(re.compile("48,000"))
        _checks(page, "ja")
        page.get_by_label("氏名").fill("山田太郎")
        page.get_by_label("メールアドレス").fill("taro@example.com")
        page.get_by_label("郵便番号").fill("100-0005")
        page.get_by_label("都道府県").select_option("東京都")
        page.get_by_label("市区町村").fill("千代田区")
        page.get_by_label("番地・建物").fill("丸の内1-1")
        page.get_by_label("テスト決済を承認する").check()
        shot(page, "checkout")
        page.get_by_role("button", name=re.compile("注文を確定する")).click()
        expect(page.get_by_role("status").first).to_contain_text("ご注文を承りました")
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"ご注文 \d+"))
        _checks(page, "ja")
        shot(page, "order")


def test_the_language_control_switches_and_the_choice_stays(site, browser, shot):
    with watched_page(browser, width=390) as page:
        page.goto(site.origin + "/s/rad/")
        languages = page.get_by_role("navigation", name="Sprache")
        expect(languages.get_by_role("link", name="Deutsch")).to_have_attribute("aria-current", "true")
        languages.get_by_role("link", name="Français").click()
        expect(page.get_by_role("button", name="Ajouter Stadtrad au panier")).to_be_visible()
        _checks(page, "fr")
        page.get_by_role("link", name="Stadtrad").click()  # a link the page made keeps the choice
        expect(page.get_by_role("button", name="Ajouter au panier")).to_be_visible()
        _checks(page, "fr")
        shot(page, "product-fr")
        page.goto(site.origin + "/s/rad/cart")  # no `lang`: the cookie remembers it
        expect(page.get_by_role("heading", level=1)).to_have_text("Votre panier")
        page.get_by_role("navigation", name="Langue").get_by_role("link", name="English").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
        _checks(page, "en")
