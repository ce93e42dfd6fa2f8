"""The confirmation step before an irreversible action in the portal and the
console (accepting or refusing a return, revoking a dealer, giving an order
back): the first POST, without `confirm=yes`, answers with a page that says
what will happen and posts the same fields again with `confirm=yes`. It works
without JavaScript, and nothing is changed until the second POST.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flask import render_template, request


def confirmed() -> bool:
    return request.form.get("confirm") == "yes"


def ask(*, title: str, lines: Sequence[str], button: str, cancel: str, fields: Mapping[str, str] | None = None,
        quote: str | None = None, danger: bool = True):
    """The confirmation page for the form just posted (to the same address)."""
    return render_template("app/confirm.html", title=title, lines=lines, button=button, cancel=cancel,
                           fields={k: v for k, v in (fields or {}).items() if v is not None}, quote=quote,
                           danger=danger, action=request.path)
