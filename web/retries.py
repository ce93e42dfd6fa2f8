"""Every request's work is run again when it loses a race (`broker.retry`).

Each view (API, pages, webhooks) is wrapped once, when the app is built and
before the rate limits wrap the limited ones, so a retry is not counted as a
second request. When the work keeps losing, the answer is the `Contended`
error's 503 (or 409), through the usual error pages and problem details, with
`Retry-After`.
"""

from __future__ import annotations

import functools

from flask import Flask, g, request

from broker import retry

_RETRY_AFTER = "broker_retry_after"
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


def install(app: Flask) -> None:
    """Call after every blueprint is registered, before `init_security`."""
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static":
            app.view_functions[endpoint] = _retrying(view)
    app.after_request(_retry_after)


def _retrying(view):
    @functools.wraps(view)
    def retrying(*args, **kwargs):
        # A second run must read the same request: the body is kept (a webhook
        # reads it uncached, to check its signature), and uploaded files are
        # rewound to their start. No view reads the body of a GET.
        if request.method not in _BODILESS:
            request.get_data()
        runs = 0

        def run():
            nonlocal runs
            if runs:
                for upload in request.files.values():
                    upload.stream.seek(0)
            runs += 1
            return view(*args, **kwargs)

        try:
            return retry.run(run)
        except retry.Contended as exc:
            setattr(g, _RETRY_AFTER, exc.retry_after)
            raise

    return retrying


def _retry_after(response):
    seconds = g.get(_RETRY_AFTER)
    if seconds is not None:
        response.headers.setdefault("Retry-After", str(seconds))
    return response
