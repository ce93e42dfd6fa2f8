"""The customer's catalogs (web/translations) are complete and correct: every
message `pybabel extract -F babel.cfg` finds in the customer's templates, views
and emails is translated in each language (no empty, no fuzzy), each
translation keeps its message's placeholders and markup, and each committed
.mo file is what compiling its .po gives (nobody forgot `pybabel compile`)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from broker.languages import CATALOGS, LANGUAGES, supported

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = sorted(set(LANGUAGES) - {"en"})
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
TAG = re.compile(r"</?([a-z]+)")


def _extracted() -> dict[str, tuple[str, ...]]:
    """msgid (the singular of a plural) → its placeholders' message(s)."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, tuple[str, ...]] = {}
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}):
        forms = message if isinstance(message, tuple) else (message,)
        found[forms[0]] = forms
    return found


EXTRACTED = _extracted()


def _catalog(language: str):
    with open(CATALOGS / language / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=language)


def test_extraction_finds_the_customer_pages_and_emails():
    # A sample from each kind of source: a store template, a request page, a view's
    # message, an email's subject, a total's label, an address form's label.
    for msgid in ("Add to cart", "Ask the shops", "Tick the box to confirm that you want your data erased.",
                  "Your order %(order_id)s at %(store)s is confirmed", "Subtotal", "Postal code"):
        assert msgid in EXTRACTED
    assert len(EXTRACTED) > 300


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language):
    catalog = _catalog(language)
    translated = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert not message.fuzzy, f"{language}: fuzzy {key!r}"
        assert all(s.strip() for s in strings), f"{language}: not translated {key!r}"
        translated[key] = strings
    missing = sorted(set(EXTRACTED) - set(translated))
    assert not missing, f"{language}: run pybabel extract/update and translate {missing[:5]}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_their_placeholders_and_markup(language):
    for message in _catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set().union(*(PLACEHOLDER.findall(i) for i in ids))
        tags = sorted(TAG.findall(ids[0]))
        for string in strings:
            names = set(PLACEHOLDER.findall(string))
            if len(ids) > 1:  # a plural's forms may leave out the count ("one day" → "einen Tag")
                assert names <= wanted and wanted - {"num"} <= names, (language, ids[0], string)
            else:
                assert names == wanted, (language, ids[0], string)
            assert sorted(TAG.findall(string)) == tags, (language, ids[0], string)
            # A stray % would break the template's formatting.
            assert "%" not in PLACEHOLDER.sub("", string).replace("%%", ""), (language, string)


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_committed_mo_is_the_compiled_po(language):
    compiled = io.BytesIO()
    write_mo(compiled, _catalog(language))
    committed = (CATALOGS / language / "LC_MESSAGES" / "messages.mo").read_bytes()
    assert committed == compiled.getvalue(), f"run: pybabel compile -d web/translations ({language})"


@pytest.mark.parametrize("value, language", [
    ("de", "de"), ("de_DE", "de"), ("de-AT", "de"), ("JA", "ja"), ("fr_CA", "fr"), ("en_US", "en"),
    ("xx", None), ("", None), (None, None), ("de\"><script>", None), ("d" * 40, None), ("../de", None),
])
def test_only_supported_languages_are_ever_used(value, language):
    assert supported(value) == language


CUSTOMER_EMAILS = ("order_confirmation", "order_shipped", "pickup_ready", "message_to_customer",
                   "order_cancelled_by_store", "order_refunded_by_store", "request_offer", "return_accepted",
                   "return_refused", "review_invitation")
VALUES = dict(name="Max", order_id=7, store="Rad", shipper="Rad", lines=[{"quantity": 1, "name": "Rad", "total": "1"}],
              totals=[], total="1", pickup=False, pickup_code="123", ship_to=["Max"], link=lambda path: path,
              status_path="/s/rad/o/7", carrier="DHL", tracking_number="1", address=["Hof 1"], hours="", timezone="",
              collect_by="2026-12-24", path="/s/rad/o/7", refunded="", refund="1 €", in_full=True, retailer="Rad",
              price="1 €", request_id=3, description="Rad", distance_km=1.5, ceiling="2 €", expires="2026-12-24",
              note="", window_open=False, window_closes="", unsubscribe_url=None, part=["1 x Rad"])


@pytest.mark.parametrize("template", CUSTOMER_EMAILS)
@pytest.mark.parametrize("language", TRANSLATED)
def test_every_customer_email_is_written_in_each_language(template, language):
    from broker.notifications.services import render

    english_subject, english_text = render(template, None, **VALUES)
    subject, text = render(template, language, **VALUES)
    assert subject != english_subject and text != english_text
    english_lines = {line.strip() for line in english_text.splitlines() if len(line.strip()) > 25}
    assert not english_lines & {line.strip() for line in text.splitlines()}, "a line left in English"


def test_business_emails_stay_english():
    from broker.notifications.services import render

    values = dict(order_id=7, due="2026-12-24", link=lambda path: path, path="/portal", unsubscribe_url=None)
    assert render("deadline_warning", "de", **values) == render("deadline_warning", None, **values)
