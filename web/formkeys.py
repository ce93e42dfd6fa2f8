"""One-time form keys in the pages (the mechanism is `broker.formkeys`).

A form that creates something carries a fresh key; its view hands the key to
the service, and a repeat of the POST (a reload, a double click, the back
button and Send again) gets the first POST's answer instead of a second
order, review or message::

    <form method="post">{{ form_key_field() }} ...</form>          {# template #}

    once = formkeys.sent(f"review:order:{order_id}")               # view
    try:
        service(..., once=once)
    except AlreadyDone as done:        # done.result: what the first POST recorded
        return redirect(..., code=303)
    # A view that checks its form before calling the service first asks
    # `check_unused(ctx, once)` (read-only; raises AlreadyDone): a reload must
    # get the first answer, not an error about a cart that changed meanwhile.
    return redirect(..., code=303)     # every outcome: post/redirect/get

The scope names the form (a key sent to another form is refused with a 409).
Never put `form_key_field()` on a page that is cached for many visitors (the
storefront's catalog and product pages): they would all share one key.
"""

from __future__ import annotations

import secrets

from flask import Flask, request
from markupsafe import Markup

from broker.formkeys import AlreadyDone, Once, check_unused

FIELD = "form_key"

__all__ = ["FIELD", "AlreadyDone", "Once", "check_unused", "form_key_field", "init_app", "sent"]


def form_key_field() -> Markup:
    """A hidden field with a new key: one per form shown."""
    return Markup('<input type="hidden" name="%s" value="%s">') % (FIELD, secrets.token_urlsafe(32))


def sent(scope: str) -> Once | None:
    """The key this POST's form carried, for the form named `scope`; None if none."""
    return Once.parse(request.form.get(FIELD), scope)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["form_key_field"] = form_key_field
