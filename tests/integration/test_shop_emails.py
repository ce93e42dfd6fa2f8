"""Emails from the shop: the sender's name is the store's ("Northwind Cycles via
Broker") at Broker's address, links come from the served address, and each email
has an HTML part in the store's brand beside its text."""

from __future__ import annotations

import dataclasses
import re

import pytest
from sqlalchemy import update

from broker.accounts.models import Manufacturer
from broker.notifications import html
from broker.notifications.delivery import deliver_emails
from broker.notifications.mailer import Email, build
from broker.storefront.services import Branding, update_branding
from tests.factories import HERE, World
from tests.integration.test_emails import inbox, text

ORDER = {"items": [{"sku": "BIKE-1", "quantity": 1}], "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
         "ship_to": {"line1": "77 Cobol Court", "city": "San Francisco", "postal_code": "94103", "country": "US",
                     "lat": HERE[0], "lon": HERE[1]}}


@pytest.fixture
def maker(ctx):
    m = World(ctx).manufacturer(slug="northwind", products=[("BIKE-1", 45900)])
    update_branding(ctx, m.actor, Branding(name="Northwind Cycles", color_primary="#fde047"))
    return m


def confirmation(client, ctx, mail_dir):
    assert client.post("/api/v1/storefronts/northwind/orders", json=ORDER).status_code == 201
    deliver_emails(ctx)
    [message] = [m for m in inbox(mail_dir) if "is confirmed" in m["Subject"]]
    return message


class TestSender:
    def test_the_store_sends_at_brokers_address(self, client, ctx, maker, mail_dir):
        message = confirmation(client, ctx, mail_dir)
        assert message["From"] == "Northwind Cycles via Broker <no-reply@broker.invalid>"
        assert message["From"].addresses[0].addr_spec == "no-reply@broker.invalid"

    @pytest.mark.parametrize("name, shown", [
        ("Evil\r\nBcc: victim@example.com", "Evil Bcc victim example.com via Broker"),
        ('Shop <ceo@bank.example>', "Shop ceo bank.example via Broker"),
        ("Caf\u00e9 \u202eNorth", "Caf\u00e9 North via Broker"),
        ("", None),
    ])
    def test_the_name_cannot_inject_a_header_or_pose_as_an_address(self, name, shown):
        assert html.sender_name(name) == shown
        if shown:
            mime = build(Email("ada@example.com", "Hi", "text", "m-1", sender_name=shown),
                           "Broker <no-reply@broker.invalid>")
            raw = bytes(mime).decode()
            assert "\nBcc:" not in raw and mime["From"].addresses[0].addr_spec == "no-reply@broker.invalid"

    def test_brokers_own_emails_keep_brokers_name(self):
        mime = build(Email("ada@example.com", "Hi", "text", "m-1"), "Broker <no-reply@broker.invalid>")
        assert mime["From"] == "Broker <no-reply@broker.invalid>"


class TestHtmlPart:
    def test_beside_the_text_in_the_stores_colour_with_readable_text(self, client, ctx, maker, mail_dir):
        message = confirmation(client, ctx, mail_dir)
        assert message.get_content_type() == "multipart/alternative"
        plain = text(message)
        page = message.get_body(preferencelist=("html",)).get_content()
        assert "background:#fde047" in page and "color:#1d232a" in page  # dark text on yellow (WCAG AA)
        link = re.search(r"https?://\S+/s/northwind/o/\d+/\S+", plain).group(0)
        assert f'href="{link}"' in page and "Northwind Cycles" in page

    def test_the_html_is_autoescaped(self, ctx, maker, client, mail_dir):
        with ctx.uow() as uow:
            uow.session.execute(update(Manufacturer).where(Manufacturer.slug == "northwind")
                                .values(name="<script>alert(1)</script> & Co"))
            uow.commit()
        message = confirmation(client, ctx, mail_dir)
        page = message.get_body(preferencelist=("html",)).get_content()
        assert "<script>" not in page and "&lt;script&gt;" in page

    def test_a_link_ends_before_a_full_stop(self):
        [[line]] = html.paragraphs("See https://example.com/a.")
        assert line == [("text", "See "), ("link", "https://example.com/a"), ("text", ".")]

    def test_every_email_has_one_even_brokers_own(self):
        page = html.html_part("Hello,\n\nhttps://broker.example/x", subject="Hi")
        assert '<a href="https://broker.example/x"' in page and "Broker" in page


class TestLinks:
    def test_broker_run_on_another_port_links_to_that_port(self, monkeypatch):
        from web.cli import _served_address

        monkeypatch.delenv("BROKER_PUBLIC_URL", raising=False)
        assert _served_address("127.0.0.1", 8123)["public_url"] == "http://127.0.0.1:8123"
        assert _served_address("0.0.0.0", 8123)["public_url"] == "http://127.0.0.1:8123"  # noqa: S104

    def test_the_emails_links_follow_the_served_address(self, ctx, maker, mail_dir):
        from web.app import create_app

        served = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings,
                                                                       public_url="http://127.0.0.1:8123"))
        client = create_app(context=served, test_config={"TESTING": True}).test_client()
        assert client.post("/api/v1/storefronts/northwind/orders", json=ORDER,
                           headers={"Host": "127.0.0.1:8123"}).status_code == 201
        deliver_emails(served)
        [message] = [m for m in inbox(mail_dir) if "is confirmed" in m["Subject"]]
        assert "http://127.0.0.1:8123/s/northwind/o/" in text(message)
        assert ":8000" not in message.as_string()
