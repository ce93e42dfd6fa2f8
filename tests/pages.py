"""Driving the signed-in pages through the Flask test client: CSRF tokens,
signing in, reading the emails a flow sent."""

from __future__ import annotations

import email
import email.policy
import html
import re
from pathlib import Path

from sqlalchemy import select

from broker.accounts.models import Role
from broker.identity import services as identity
from broker.notifications.delivery import deliver_emails
from broker.outbox.models import OutboxMessage

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


def csrf(client, path: str = "/signin") -> str:
    """The session's CSRF token, as a form on `path` carries it."""
    page = client.get(path, follow_redirects=True)  # an emailed link is exchanged first
    found = CSRF.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path} ({page.status_code})"
    return found.group(1)


def post(client, path: str, data: dict | None = None, *, form: str | None = None, **kwargs):
    """POST a form the way a browser would: with the CSRF token from the page."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf(client, form or "/signin")}, **kwargs)


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
FORM = re.compile(r'<form method="post"(?: class="[^"]*")?(?: action="([^"]*)")?')


def submit(client, link: str, data: dict | None = None, **kwargs):
    """Open `link` as a browser would (an emailed link is exchanged for a cookie and
    redirected to its token-free address) and submit the page's main form: `data`
    and the form's hidden fields (the session's and the link's CSRF tokens)."""
    page = client.get(link, follow_redirects=True)
    text = page.get_data(as_text=True)
    forms = FORM.findall(text)
    assert forms, f"no form on {page.request.path} ({page.status_code})"
    action = html.unescape(forms[-1]) or page.request.full_path.rstrip("?")
    hidden = {name: html.unescape(value) for name, value in HIDDEN.findall(text)}
    return client.post(action, data={**hidden, **(data or {})}, **kwargs)


def sign_in(client, email_address: str, password: str = PASSWORD):
    response = post(client, "/signin", {"email": email_address, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def user_for(ctx, role: Role, company_id: int, email_address: str, name: str = "Pat",
             password: str = PASSWORD) -> identity.SignedIn:
    """A user of a company with a password set, made the operator's way (`broker user add`):
    setting it through the mailed link verifies the address."""
    _, link = identity.add_user(ctx, role=role, company_id=company_id, email=email_address, name=name)
    user, _ = identity.reset_password(ctx, link.rsplit("/", 1)[1], password)
    return user


def outbox_link(ctx, to: str, prefix: str) -> str:
    """The path of the link starting with `prefix` in the newest email written to
    `to` (read from the outbox, before any delivery)."""
    with ctx.uow() as uow:
        texts = uow.session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.topic.like("email.%")).order_by(OutboxMessage.id.desc()))
        for payload in texts:
            if payload["to"] == to and prefix in payload["text"]:
                found = re.search(r"https?://[^/\s]+(" + re.escape(prefix) + r"[^\s]*)", payload["text"])
                assert found
                return found.group(1)
    raise AssertionError(f"no email to {to} with a {prefix} link")


def sign_up_verified(ctx, cmd: identity.RetailerSignUp) -> identity.SignedIn:
    """A retailer signed up through the service and verified through the link mailed to it."""
    user, _ = identity.sign_up_retailer(ctx, cmd)
    token = outbox_link(ctx, user.email, "/verify/").rsplit("/", 1)[1]
    verified, _ = identity.verify_email(ctx, token, signed_in_as=user.user_id)
    return verified


def delivered(ctx, mail_dir: Path) -> list[email.message.EmailMessage]:
    """Deliver what the outbox holds, then read every email in the folder, oldest first."""
    deliver_emails(ctx)
    return emails_in(mail_dir)


def emails_in(mail_dir: Path) -> list[email.message.EmailMessage]:
    """Every email in the folder, parsed, oldest first."""
    if not mail_dir.exists():
        return []
    files = sorted(mail_dir.glob("*.eml"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]


def link_in(message, prefix: str) -> str:
    """The path of the first link in an email's body that starts with `prefix`."""
    body = message.get_body(preferencelist=("plain",)).get_content()  # the text beside the HTML
    found = re.search(r"https?://[^/\s]+(" + re.escape(prefix) + r"[^\s]*)", body)
    assert found, f"no {prefix} link in:\n{body}"
    return found.group(1)
