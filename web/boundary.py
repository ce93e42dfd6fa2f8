"""The input boundary: every request, to the API, the pages and the webhooks, is
checked here before any view, service or database sees it.

It refuses, with a 400, what no field can hold (the rules are in
`broker/inputs.py`): bytes that are not UTF-8, lone surrogates, NUL and other
control characters, line breaks outside multi-line fields, and pathological JSON
(nested deeper than 32 levels, `NaN`, `1e999`, 31-digit integers). It looks at:

* the path, percent-decoded, and every query parameter's name and value;
* every header's value (control characters only: headers are not UTF-8 text);
* the body: a JSON body's every key and string; a form's every field name and
  value, and each uploaded file's name (not a file's contents: the CSV import
  reads those itself and says what is wrong with them). A body that is not JSON
  at all is left to the view's parser, which answers 400 after the caller's key
  is checked, as before: no value in it can reach anything.

The check is the app's first URL-value preprocessor, so it runs before every
other hook (the storefront's, which reads the store by its slug; CSRF) and every
view. A refusal is an ordinary `BadRequest`, rendered as every other error is:
problem+json for the API and the webhooks, the error page for pages. The app's
JSON loader (`request.get_json`) uses the same strict parser, and webargs, which
parses API bodies itself, only ever sees a body that passed it here.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from flask import Flask, Request, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from broker.inputs import BadInput, NotJSON, check_text, decode_utf8, is_multiline, load_json

# Headers may hold a tab (RFC 9110 allows HTAB in field values); nothing else below 0x20, nor DEL.
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
WEBHOOKS = "/webhooks/"


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, but loading refuses what is never text (NUL, lone surrogates,
    control characters) and pathological JSON. Line breaks pass: which fields may
    hold them is the boundary's rule, applied to each request body by name."""

    def loads(self, s, **kwargs):
        return load_json(s, multiline_everywhere=True)


def init_boundary(app: Flask) -> None:
    app.json = StrictJSONProvider(app)
    # Before every other preprocessor and before_request hook, of the app and of
    # every blueprint (Flask runs the app's own first).
    app.url_value_preprocessors.setdefault(None, []).insert(0, _refuse_bad_input)


def _refuse_bad_input(endpoint, values) -> None:
    try:
        check_request(request)
    except BadInput as exc:
        raise BadRequest(description=str(exc)) from None


def check_request(req: Request) -> None:
    """:raise BadInput: the first thing in the request that no field can hold."""
    environ = req.environ
    path = _wsgi_text(environ.get("PATH_INFO", ""), "the address")
    check_text(path, "the address")
    _check_pairs(_wsgi_text(environ.get("QUERY_STRING", ""), "the query string"), "query parameter",
                 multiline=False)
    for key, value in environ.items():
        if (key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")) and isinstance(value, str):
            found = _HEADER_CONTROL.search(value)
            if found:
                name = key.removeprefix("HTTP_").replace("_", "-").title()
                raise BadInput(f"the header {name} holds a control character (U+{ord(found.group()):04X})")
    if not req.content_length and "wsgi.input_terminated" not in environ:
        return
    if req.is_json:
        raw = req.get_data(cache=True)
        if raw.strip():
            try:
                load_json(raw, multiline_everywhere=path.startswith(WEBHOOKS))
            except NotJSON:
                # Not JSON at all: no value in it reaches anything. The view's own
                # parser answers it with its 400, after the caller's key is checked
                # (a caller who may not call learns nothing about the body).
                pass
    elif req.mimetype == "application/x-www-form-urlencoded":
        _check_pairs(decode_utf8(req.get_data(cache=True), "the form"), "form field", multiline=True)
    elif req.mimetype == "multipart/form-data":
        _check_multipart(req)


def _wsgi_text(value: str, where: str) -> str:
    """A WSGI string (its bytes as latin-1, as PEP 3333 passes them) as UTF-8 text."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value  # not from a WSGI server: already text
    return decode_utf8(raw, where)


def _check_pairs(text: str, what: str, *, multiline: bool) -> None:
    """`a=1&b=2` percent-decoded, each name and value checked (as werkzeug splits them: on `&`)."""
    for pair in text.split("&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name = decode_utf8(unquote_to_bytes(raw_name.replace("+", " ")), f"the name of a {what}")
        check_text(name, f"the name of a {what}")
        where = f"the {what} {_short(name)!r}"
        value = decode_utf8(unquote_to_bytes(raw_value.replace("+", " ")), where)
        check_text(value, where, multiline=multiline and is_multiline(name))


def _check_multipart(req: Request) -> None:
    boundary = req.mimetype_params.get("boundary", "")
    if not boundary:
        raise BadInput("the form says it is multipart but names no boundary")
    decoder = MultipartDecoder(boundary.encode("latin-1", "replace"))
    decoder.receive_data(req.get_data(cache=True))
    decoder.receive_data(None)
    part: Field | File | None = None
    chunks: list[bytes] = []
    while True:
        try:
            event = decoder.next_event()
        except (ValueError, UnicodeDecodeError):
            raise BadInput("the form is not valid multipart data (or a field's name is not UTF-8)") from None
        if isinstance(event, (Epilogue, NeedData)):
            return
        if isinstance(event, (Field, File)):
            part, chunks = event, []
            check_text(event.name, "the name of a form field")
            if isinstance(event, File):
                check_text(event.filename or "", f"the name of the file sent as {_short(event.name)!r}")
        elif isinstance(event, Data) and isinstance(part, Field):
            chunks.append(event.data)
            if not event.more_data:
                where = f"the form field {_short(part.name)!r}"
                check_text(decode_utf8(b"".join(chunks), where), where, multiline=is_multiline(part.name))


def _short(name: str) -> str:
    return name if len(name) <= 80 else name[:77] + "..."
