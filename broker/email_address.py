"""One rule for every email address that comes in: checkout and the orders API,
a personal request's contact, sign-up, invitations, colleagues, connected
accounts, `broker user add` and `broker customer find`.

The rule is the `email-validator` package's syntax check, offline (no DNS
lookup), strict on lengths (64 characters before the @, 254 in all):

* an address needs a local part, an @ and a domain with a dot in it: `ada@`,
  `a@b` and `ada@localhost` are refused, and so are special-use domains that can
  never receive mail (`.invalid`, `.test`, `.local`, `.onion`);
* no spaces, quotes, line breaks or other control characters, no IP literals;
* the part before the @ must be ASCII: an address that needs SMTPUTF8 cannot go
  through every mail server, and an email that cannot be sent would sit in the
  outbox. An internationalised domain is fine; it is kept in its ASCII form
  (`ada@xn--mnchen-3ya.de` for `ada@münchen.de`), which every server takes.

An address is kept as typed except the domain, which is lowercased (mail
systems compare domains without case, the part before the @ is the recipient's).
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from broker.errors import Invalid

EXAMPLE = "name@example.com"


def check_email(value: str | None) -> str:
    """`value` as an address Broker can send to. :raise ValueError: why not, for a person."""
    text = (value or "").strip()
    if not text:
        raise ValueError(f"enter an email address, like {EXAMPLE}")
    try:
        found = validate_email(text, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError as exc:
        reason = str(exc).rstrip(".")
        reason = reason[:1].lower() + reason[1:]
        raise ValueError(f"this is not an email address we can write to ({reason}); "
                         f"it should look like {EXAMPLE}") from None
    return found.ascii_email or found.normalized


def email_address(value: str | None, field: str = "email") -> str:
    """`check_email` for a service: :raise 422: the field and what is wrong with it."""
    try:
        return check_email(value)
    except ValueError as exc:
        raise Invalid.field(field, str(exc)) from None
