"""Emails: decided inside the transaction that caused them, sent after it commits.

`send_email` renders the email and writes it to the outbox in the caller's
session, so an email exists if and only if the change it reports was committed,
once per (topic, dedupe key). `deliver_emails` (the scheduled `emails` job)
hands them to the mailer. Optional emails (the digest, offers on a request,
orders that fell back to a manufacturer) carry an unsubscribe link and are never
written for an address that unsubscribed from that kind; the others (a
confirmation, a shipment, an award, a deadline) are what the recipient's own
action asked for.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broker import languages
from broker.accounts.models import Manufacturer, Retailer, Role
from broker.context import Context
from broker.db import insert_if_absent
from broker.errors import Invalid
from broker.grammar import header_text
from broker.identity.models import User
from broker.notifications import html
from broker.notifications.models import EmailOptOut
from broker.outbox.services import enqueue
from broker.tokens import make_token, read_token
from broker.urls import absolute_url

log = logging.getLogger(__name__)

TOPIC_PREFIX = "email."
RECIPIENT_KIND = "email"

# The kinds of email a recipient may unsubscribe from, as shown to them.
OPTIONAL = {
    "digest": "the daily digest of new listings near your stores",
    "request_offer": "emails about new offers on your requests",
    "fallback": "emails about orders that fell back to you",
    "review_invitation": "invitations to rate the store once your order has arrived",
}

_templates: dict[str, Environment] = {}


def _environment(language: str = "en") -> Environment:
    """The templates, with gettext in `language` (the customer's emails are
    `{% trans %}` blocks; others have none and read the same in every one)."""
    if language not in _templates:
        # Plain-text emails: HTML escaping would put "&amp;" into a name. No email
        # is ever sent as HTML, so nothing rendered here reaches a browser.
        environment = Environment(loader=PackageLoader("broker.notifications", "templates"),
                                  undefined=StrictUndefined, keep_trailing_newline=True,
                                  autoescape=False, extensions=["jinja2.ext.i18n"])  # noqa: S701
        environment.install_gettext_translations(languages.translations(language), newstyle=True)  # type: ignore[attr-defined]
        _templates[language] = environment
    return _templates[language]


def address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


_parts: dict[tuple[str, str], tuple[Template, Template]] = {}


def _template_parts(template: str, language: str = "en") -> tuple[Template, Template]:
    """The template's `Subject: ...` line and its body, compiled apart: the
    subject is rendered on its own, so a value with a line break in it (a store's
    name) can neither end the subject early nor start a header of its own."""
    key = (language, template)
    if key not in _parts:
        environment = _environment(language)
        source, _, _ = environment.loader.get_source(environment, f"{template}.txt")
        first, _, body = source.partition("\n")
        if not first.startswith("Subject: "):
            raise ValueError(f"{template}.txt must start with a Subject: line")
        _parts[key] = (environment.from_string(first[len("Subject: "):]), environment.from_string(body))
    return _parts[key]


def render(template: str, language: str | None = None, **values) -> tuple[str, str]:
    """(subject, text) from `templates/<template>.txt`, whose first line is
    `Subject: ...`, in `language` (a customer's email; English without one). The
    subject is one line (`broker.grammar.header_text`)."""
    subject, body = _template_parts(template, languages.supported(language) or languages.DEFAULT)
    return header_text(subject.render(**values)), body.render(**values).lstrip("\n")


def opted_out(session: Session, address: str, topic: str) -> bool:
    return session.scalar(
        select(EmailOptOut.id).where(EmailOptOut.address_hash == address_hash(address), EmailOptOut.topic == topic)
    ) is not None


def unsubscribe_url(ctx: Context, address: str, topic: str) -> str:
    # The token names the address by its hash: a link in a log or a referrer
    # header does not give the address away.
    token = make_token(ctx.settings.secret_key, "unsubscribe", {"h": address_hash(address), "t": topic})
    return absolute_url(ctx.settings, f"/unsubscribe/{token}")


def link(ctx: Context, path: str, store: Manufacturer | None = None) -> str:
    """A link in an email: on BROKER_PUBLIC_URL (or the store's verified domain),
    whatever process writes it."""
    return absolute_url(ctx.settings, "/" + path.lstrip("/"), store=store)


def send_email(session: Session, ctx: Context, *, topic: str, to: str, template: str, dedupe_key: str,
               now: datetime, recipient_id: int | None = None, written: set[str] | None = None,
               from_store: Manufacturer | None = None, language: str | None = None, **values) -> bool:
    """Write one email to the outbox; False if it was already written or the
    address unsubscribed from this (optional) kind. `written`: as for `enqueue`.

    `from_store`: the shop the email is from (a customer's order): its sender's name
    reads "<store> via Broker" (the address stays BROKER_MAIL_FROM's), its HTML
    part wears the store's colour, and its links are on the store's verified
    domain when it has one. Every email has an HTML part beside its text
    (broker/notifications/html.py). `language`: the customer's (broker.languages),
    for the emails written in it; the others are English."""
    if not to or "@" not in to:
        return False
    optional = topic in OPTIONAL
    if optional and opted_out(session, to, topic):
        return False
    unsubscribe = unsubscribe_url(ctx, to, topic) if optional else None
    subject, text = render(template, language, unsubscribe_url=unsubscribe,
                           link=lambda path: link(ctx, path, from_store), **values)
    if unsubscribe:
        _ = languages.translations(languages.supported(language) or languages.DEFAULT).gettext
        footer = _("You get these because you asked for them. Unsubscribe: %(url)s") % {"url": unsubscribe}
        text = f"{text.rstrip()}\n\n--\n{footer}\n"
    brand = html.Brand(from_store.name, from_store.color_primary) if from_store is not None else html.BROKER
    return enqueue(session, topic=f"{TOPIC_PREFIX}{topic}", dedupe_key=dedupe_key[:120], recipient_kind=RECIPIENT_KIND,
                   recipient_id=recipient_id,
                   payload={"to": to, "subject": subject, "text": text, "unsubscribe_url": unsubscribe,
                            "html": html.html_part(text, subject=subject, brand=brand),
                            "sender_name": html.sender_name(from_store.name) if from_store is not None else None},
                   now=now, written=written)


def company_addresses(session: Session, role: Role, company_id: int) -> list[tuple[int | None, str]]:
    """Who at a company gets its email: its active users whose address is
    verified (nothing but the verification link goes to an address nobody
    proved). A retailer with no users at all (made by the operator through the
    API) gets it at the address the operator registered."""
    return companies_addresses(session, role, [company_id])[company_id]


def companies_addresses(session: Session, role: Role,
                        company_ids: Iterable[int]) -> dict[int, list[tuple[int | None, str]]]:
    """`company_addresses` for many companies in a few queries (a settlement
    run writes to thousands of winners)."""
    ids = sorted(set(company_ids))
    found: dict[int, list[tuple[int | None, str]]] = {company_id: [] for company_id in ids}
    with_users: set[int] = set()
    column = User.manufacturer_id if role == Role.MANUFACTURER else User.retailer_id
    for start in range(0, len(ids), 1000):
        for company_id, user_id, email, verified_at, removed_at in session.execute(
            select(column, User.id, User.email, User.verified_at, User.removed_at)
            .where(column.in_(ids[start:start + 1000])).order_by(User.id)
        ):
            with_users.add(company_id)
            if verified_at is not None and removed_at is None:
                found[company_id].append((user_id, email))
    if role == Role.RETAILER:
        # Only a retailer nobody ever signed up or was added to: a sign-up's
        # registered address is its first user's, unverified until it is.
        without = [company_id for company_id in ids if company_id not in with_users]
        for start in range(0, len(without), 1000):
            for company_id, email in session.execute(
                select(Retailer.id, Retailer.email).where(Retailer.id.in_(without[start:start + 1000]))
            ):
                if email:
                    found[company_id].append((None, email))
    return found


def unsubscribe_link(ctx: Context, token: str) -> tuple[str, str]:
    """(topic, address hash) an unsubscribe link stands for, without acting on it
    (the page that asks first). :raise 422: a forged link."""
    data = read_token(ctx.settings.secret_key, "unsubscribe", token)
    topic, hashed = data.get("t"), data.get("h")
    if topic not in OPTIONAL or not isinstance(hashed, str):
        raise Invalid("this unsubscribe link is not valid")
    return topic, hashed


def unsubscribe(ctx: Context, token: str) -> str:
    """Record the opt-out the link stands for; returns what was unsubscribed from.
    Links do not expire: an old email's link must still work. :raise 422: a forged link."""
    topic, hashed = unsubscribe_link(ctx, token)
    with ctx.uow() as uow:
        # Once, however often the link is followed at the same moment (a double
        # click, a mail scanner and the person).
        insert_if_absent(uow.session, EmailOptOut, dict(address_hash=hashed, topic=topic, created_at=ctx.now()),
                         unique=["address_hash", "topic"])
        uow.commit()
    return OPTIONAL[topic]


def subscribe(session: Session, address: str, topic: str) -> None:
    """Undo an unsubscribe, when the recipient asks again (the portal's settings)."""
    session.execute(delete(EmailOptOut).where(EmailOptOut.address_hash == address_hash(address),
                                              EmailOptOut.topic == topic))
