"""The languages a customer reads Broker in: the storefront's pages (web/i18n.py)
and the customer's emails (broker/notifications). One set of gettext catalogs,
web/translations/<lang>/LC_MESSAGES/messages.mo, serves both; here they are read
without Flask, lazily, once per process and language.

English is the source language: its text is the msgids themselves.
"""

from __future__ import annotations

import functools
from pathlib import Path

from babel.support import NullTranslations, Translations

# The languages the catalogs are in, in the language control's order, each named in itself.
LANGUAGES = {"de": "Deutsch", "en": "English", "fr": "Français", "es": "Español", "ja": "日本語"}
DEFAULT = "en"

# Where the catalogs are: beside this package, in `web` (an installed wheel puts both in site-packages).
CATALOGS = Path(__file__).resolve().parent.parent / "web" / "translations"


def supported(value: str | None) -> str | None:
    """The supported language `value` names ("de", "de_DE", "de-AT", "DE"), or None:
    anything else (an unknown code, an attacker's text) is as if not given."""
    if not value or not isinstance(value, str) or len(value) > 20:
        return None
    language = value.strip().replace("-", "_").split("_")[0].lower()
    return language if language in LANGUAGES else None


def language_of(chosen: str | None, store_locale: str | None) -> str:
    """The language to write in: the one chosen (an order's), else the store's, else English."""
    return supported(chosen) or supported(store_locale) or DEFAULT


@functools.lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> NullTranslations:
    """The catalog for `language` (English: none, the msgids are the text)."""
    if language == DEFAULT or language not in LANGUAGES:
        return NullTranslations()
    return Translations.load(str(CATALOGS), [language], "messages")


def money_locale(language: str, store_locale: str | None) -> str:
    """The Babel locale that writes money and dates: the language with the store's
    territory where Babel has that pair (de with de_DE: de_DE; en with de_DE:
    en_DE, "899,00 €"), else the language alone (en: en_US)."""
    territory = (store_locale or "").replace("-", "_").split("_")[1:2]
    if territory and territory[0].isalpha():
        candidate = f"{language}_{territory[0].upper()}"
        if _known(candidate):
            return candidate
    return {"en": "en_US"}.get(language, language)


@functools.lru_cache(maxsize=512)
def _known(locale: str) -> bool:
    from babel.localedata import exists

    return exists(locale)
