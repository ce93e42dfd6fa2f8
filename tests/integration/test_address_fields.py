"""The `address_fields` macro (web/templates/address.html): an accessible
fieldset shaped by the country, which the checkout and the request page adopt."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

MACRO = '{% from "address.html" import address_fields %}{{ address_fields(form, errors, country, street=street) }}'


class Form(HTMLParser):
    """The controls and labels of a rendered fieldset, in document order."""

    def __init__(self):
        super().__init__()
        self.controls: list[dict] = []
        self.labels: dict[str, str] = {}
        self.ids: set[str] = set()
        self.selected: dict[str, str] = {}
        self._label: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag in ("input", "select"):
            self.controls.append({"tag": tag, **attrs})
            if tag == "select":
                self._select = attrs["name"]
        elif tag == "label":
            self._label = attrs["for"]
            self.labels[self._label] = ""
        elif tag == "option" and "selected" in attrs and self._select:
            self.selected[self._select] = attrs["value"]

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None
        if tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._label:
            self.labels[self._label] += data


def render(app, country, form=None, errors=None, street=True) -> Form:
    with app.test_request_context():
        html = app.jinja_env.from_string(MACRO).render(form=form or {}, errors=errors or {}, country=country,
                                                       street=street)
    parsed = Form()
    parsed.feed(html)
    parsed.html = html
    return parsed


def test_the_fields_follow_the_country_with_labels_tokens_and_requirements(app):
    jp = render(app, "JP", form={"region": "東京都", "postal_code": "100-0005"})
    assert [c["name"] for c in jp.controls] == ["country", "postal_code", "region", "city", "line1", "line2"]
    for control in jp.controls:
        assert control["id"] in jp.labels, control  # every control has its label
        assert control["autocomplete"]
    assert jp.labels["region"].strip() == "Prefecture"
    assert jp.selected == {"country": "JP", "region": "東京都"}
    required = {c["name"] for c in jp.controls if "required" in c}
    assert required == {"country", "postal_code", "region", "city", "line1"}
    assert "(optional)" in jp.labels["line2"]
    postal = next(c for c in jp.controls if c["name"] == "postal_code")
    assert postal["autocomplete"] == "postal-code" and postal["value"] == "100-0005"
    assert postal["aria-describedby"] == "postal_code-hint" and "For example 154-0023" in jp.html

    de = render(app, "DE")
    assert [c["name"] for c in de.controls] == ["country", "line1", "line2", "postal_code", "city"]
    us = render(app, "US")
    assert [us.labels[c["id"]].strip() for c in us.controls][-2:] == ["State", "ZIP code"]


def test_an_error_is_tied_to_its_field(app):
    page = render(app, "CA", form={"postal_code": "12345"},
                  errors={"postal_code": ["Enter a postal code like H3Z 2Y7"]})
    postal = next(c for c in page.controls if c["name"] == "postal_code")
    assert postal["aria-invalid"] == "true"
    described = postal["aria-describedby"].split()
    assert described == ["postal_code-hint", "postal_code-error"] and set(described) <= page.ids
    assert 'id="postal_code-error" role="alert">Enter a postal code like H3Z 2Y7<' in page.html
    others = [c for c in page.controls if c["name"] != "postal_code"]
    assert not any("aria-invalid" in c for c in others)


def test_a_place_not_a_delivery_requires_only_the_country(app):
    # As the service (check_address(street=False)): a postal code or a city will place it.
    page = render(app, "US", street=False)
    assert {c["name"] for c in page.controls if "required" in c} == {"country"}
    assert not any("(optional)" in label for label in page.labels.values())


@pytest.mark.parametrize("value", ['"><script>alert(1)</script>', "' onfocus='alert(1)"])
def test_values_are_escaped(app, value):
    page = render(app, "DE", form={"line1": value, "city": value})
    assert "<script>" not in page.html and "onfocus='" not in page.html
    assert next(c for c in page.controls if c["name"] == "line1")["value"] == value
