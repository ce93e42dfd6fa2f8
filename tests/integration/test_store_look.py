"""The design system's colours: text on a brand colour is chosen for WCAG AA,
links and focus rings are darkened as far as white needs, the footer passes,
and the console warns about a brand colour no text can be read on."""

from __future__ import annotations

import re

import pytest

from broker.accounts.models import Role
from broker.storefront import contrast
from broker.storefront.services import Branding, update_branding
from tests.factories import World
from tests.integration.test_console_pages import sign_in


class TestRules:
    @pytest.mark.parametrize("a, b, ratio", [("#ffffff", "#000000", 21.0), ("#ffffff", "#ffffff", 1.0),
                                             ("#767676", "#ffffff", 4.54), ("#8a949e", "#ffffff", 3.08)])
    def test_contrast_ratios_as_wcag_computes_them(self, a, b, ratio):
        assert round(contrast.contrast(a, b), 2) == ratio

    @pytest.mark.parametrize("brand, text", [("#fde047", contrast.INK), ("#1d4ed8", contrast.WHITE),
                                             ("#f59e0b", contrast.INK), ("#000000", contrast.WHITE),
                                             ("#ffffff", contrast.INK)])
    def test_the_text_on_a_brand_colour_passes_aa(self, brand, text):
        on = contrast.text_on(brand)
        assert on.text == text and on.passes and contrast.contrast(brand, on.text) >= 4.5

    @pytest.mark.parametrize("brand", ["#fde047", "#f59e0b", "#3b82f6", "#ffffff", "#1d4ed8"])
    def test_links_in_the_brand_colour_are_darkened_only_as_far_as_needed(self, brand):
        ink = contrast.darkened_to(brand, 4.5)
        assert contrast.contrast(ink, "#ffffff") >= 4.5
        if contrast.contrast(brand, "#ffffff") >= 4.5:
            assert ink == brand

    def test_a_colour_neither_text_can_be_read_on_is_warned_about(self):
        assert set(contrast.warnings("#808080", "#3b82f6")) == {"color_primary", "color_accent"}
        assert contrast.warnings("#fde047", "#1d4ed8") == {}


@pytest.fixture
def maker(ctx):
    return World(ctx).manufacturer(slug="northwind", products=[("BIKE-1", 4599)])


class TestPages:
    def test_a_yellow_store_gets_dark_text_on_its_buttons_and_dark_links(self, client, ctx, maker):
        update_branding(ctx, maker.actor, Branding(color_primary="#fde047"))
        page = client.get("/s/northwind/").get_data(as_text=True)
        style = re.search(r"<style>([^<]*)</style>", page).group(1)
        assert "--brand: #fde047" in style and f"--on-brand: {contrast.INK}" in style
        ink = re.search(r"--brand-ink: (#[0-9a-f]{6})", style).group(1)
        assert contrast.contrast(ink, "#ffffff") >= 4.5

    def test_the_footer_passes_aa(self):
        from pathlib import Path

        import web

        css = (Path(web.__file__).parent / "static" / "store.css").read_text()
        footer = re.search(r"footer \{[^}]*color: (#[0-9a-f]{6})", css).group(1)
        assert contrast.contrast(footer, "#ffffff") >= 4.5

    def test_the_console_warns_about_a_colour_no_text_reads_on(self, client, ctx, maker):
        sign_in(client, ctx, Role.MANUFACTURER, maker.id)
        assert "console-warning" not in client.get("/console/storefront").get_data(as_text=True)
        update_branding(ctx, maker.actor, Branding(color_primary="#808080"))
        page = client.get("/console/storefront").get_data(as_text=True)
        assert 'id="color_primary-warning"' in page and "4.5:1" in page
