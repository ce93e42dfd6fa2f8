"""Sending email: one small interface, two implementations chosen by configuration.

* `FolderMailer` (the default, no configuration): each email is written as an
  RFC 5322 `.eml` file into BROKER_MAIL_DIR (default `./var/mail`), where a
  developer opens it with any mail client or reads it as text.
* `SmtpMailer`: BROKER_SMTP_URL, `smtp://user:pass@host:587` (STARTTLS when the
  server offers it), `smtps://user:pass@host:465` (TLS from the start), or
  `smtp://host:25` without credentials. `BROKER_MAIL_FROM` is the sender.
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from broker.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    message_id: str  # stable per outbox message: a resend is recognisably the same email
    unsubscribe_url: str | None = None
    html: str | None = None  # the HTML alternative to `text`
    sender_name: str | None = None  # "Northwind Cycles via Broker": the From's name; its address stays the sender's


class Mailer(Protocol):
    def send(self, message: Email) -> None:
        """Hand one email on; raise OSError (or smtplib.SMTPException) if it could not be."""


def from_header(sender: str, name: str | None) -> str:
    """BROKER_MAIL_FROM, with `name` in place of its display name when given.
    The name is made one line and quoted (RFC 5322; RFC 2047 beyond ASCII) here,
    whatever a caller sends: it cannot end the header or add an address."""
    if not name:
        return sender
    _, address = email.utils.parseaddr(sender)
    name = " ".join("".join(" " if (ord(c) < 32 or ord(c) == 127) else c for c in name).split())[:120]
    return email.utils.formataddr((name, address or sender))


def build(message: Email, sender: str) -> EmailMessage:
    mime = EmailMessage()
    mime["From"] = from_header(sender, message.sender_name)
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(localtime=False)
    domain = sender.rpartition("@")[2].strip(">") or "broker.invalid"
    mime["Message-ID"] = f"<{message.message_id}@{domain}>"
    if message.unsubscribe_url:
        # RFC 2369 and RFC 8058: mail clients show an "Unsubscribe" button.
        mime["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mime.set_content(message.text)
    if message.html:
        mime.add_alternative(message.html, subtype="html")
    return mime


class FolderMailer:
    def __init__(self, folder: str | os.PathLike, sender: str):
        self.folder = Path(folder)
        self.sender = sender

    def send(self, message: Email) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{message.message_id}.eml"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(bytes(build(message, self.sender)))
        os.replace(temporary, path)  # a reader never sees half an email


class SmtpMailer:
    def __init__(self, url: str, sender: str, timeout: float = 20.0):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("BROKER_SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.timeout = timeout

    def send(self, message: Email) -> None:
        context = ssl.create_default_context()
        if self.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if not self.tls:
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif self.username:
                    raise smtplib.SMTPException("the server offers no STARTTLS; refusing to send the password in clear")
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(build(message, self.sender))


def make_mailer(settings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from)
    return FolderMailer(settings.mail_dir, settings.mail_from)
