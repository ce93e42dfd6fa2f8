"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
import re

from apispec import BasePlugin
from flask import Response, json, request
from werkzeug.exceptions import HTTPException

from broker.errors import BrokerError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

# When each problem happens, by status: the description every operation that can
# answer it gets, unless the view says more in its docstring (`:raise 404: No such
# store among yours.`, see `ProblemResponses`). 401, 403, 404 and 422 are worded
# for each operation from its shape (`_when`).
WHEN = {
    400: "The request holds what no field can: bytes that are not UTF-8, a NUL or another control character, "
         "or a lone surrogate, in the path, the query or a header",
    401: "No credentials, or not valid ones.",
    402: "The payment could not be set up (the card was declined): nothing was charged.",
    403: "These credentials may not call this operation.",
    404: "No such object, or not one the caller may see.",
    409: "The object's state does not allow this now; `detail` says why.",
    413: "The body is larger than the server accepts.",
    422: "The request has invalid fields (see `errors`) or breaks a rule.",
    429: "Too many requests from this address: wait and try again (see `Retry-After`).",
    503: "The payment provider did not answer: nothing was changed; try again later.",
}

# An example of each problem, as Broker answers it (title, detail, errors).
EXAMPLES = {
    400: ("Bad Request", "the address holds a NUL character (U+0000), which it cannot hold", None),
    401: ("Unauthorized", "the API key is not valid (unknown or revoked)", None),
    402: ("Payment required", "the payment could not be set up: Your card was declined.", None),
    403: ("Forbidden", "only a manufacturer may do this", None),
    404: ("Not found", "no order 1042", None),
    409: ("Conflict", "the current state does not allow this", None),
    413: ("Request Entity Too Large", "The data value transmitted exceeds the capacity limit.", None),
    422: ("Unprocessable Entity", "the request has invalid fields: items.0.quantity",
          {"items.0.quantity": ["Not a valid integer."]}),
    429: ("Too Many Requests", "30 per 1 minute", None),
    503: ("Service unavailable", "the payment provider is not answering; nothing was charged, try again", None),
}


def example(status: int, *, named: str | None = None, security: frozenset = frozenset(),
            roles: tuple = (), limits: str | None = None) -> dict:
    """A problem as Broker answers it to this operation: `named` is the path parameter
    naming its object, `roles` its `x-roles`, `limits` its rate limits."""
    title, detail, errors = EXAMPLES[status]
    if status == 401 and security == {"accessToken"}:
        detail = f"give the {'request' if named == 'request_id' else 'order'}'s X-Access-Token"
    keys = [role for role in roles if role != "customer"]
    if status == 403 and keys:
        detail = f"only a {' or '.join(keys)} may do this"  # broker.auth.require
    if status in (404, 409) and named in NOUNS:
        detail = NOUNS[named][1 if status == 404 else 2] or detail
    if status == 429 and limits:
        amount, _, unit = limits.split(";")[0].partition(" per ")
        detail = f"{amount} per 1 {unit}"  # flask-limiter's words
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return {**body, "errors": errors} if errors else body


# What a path parameter names ("No such order"), and what Broker says when it finds
# no such thing (the 404's example) or one whose state refuses (the 409's).
NOUNS = {
    "order_id": ("order", "no order 1042", "the order is shipped and can no longer be cancelled"),
    "request_id": ("personal request", "no request 61", "the request is awarded; it can no longer be cancelled"),
    "assignment_id": ("assignment", "no assignment 877 of yours",
                      "assignment 877 is shipped; only an active one can ship"),
    "listing_id": ("listing", "no listing 311 on your board", "listing 311 is closed for bids"),
    "store_id": ("store", "no store 7", None),
    "retailer_id": ("retailer", "retailer 3 is not an authorised dealer", None),
    "run_id": ("settlement run", "no settlement run 95", None),
    "sku": ("product", "no product with SKU 'NW-HELMET'", None),
    "slug": ("storefront", "no storefront 'northwind'", None),
}

# `:raise 404: text` in a view's docstring (the Flask tutorial's way of saying what a
# view raises). The text runs to the next field or the end of the docstring.
_RAISE = re.compile(r":raise\s+(\d{3})\s*:")


def problem(status: int, title: str, detail: str | None = None, errors: dict | None = None,
            headers: dict | None = None) -> Response:
    body: dict = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    """webargs' nested `{"json": {"items": {"0": {"sku": [...]}}}}` → `{"items.0.sku": [...]}`."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            key = str(key)
            if not prefix and key in ("json", "query", "headers", "form", "view_args", "path"):
                name = ""
            elif key == "_schema":
                name = prefix
            else:
                name = f"{prefix}.{key}" if prefix else key
            for field, errs in flatten(value, name).items():
                out.setdefault(field, []).extend(errs)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "body"] = list(messages)
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            for field, errs in flatten(value, f"{prefix}.{i}" if prefix else str(i)).items():
                out.setdefault(field, []).extend(errs)
    else:
        out[prefix or "body"] = [str(messages)]
    return out


def from_http_exception(error: HTTPException) -> Response:
    data = getattr(error, "data", None) or {}
    errors = flatten(data["messages"]) if "messages" in data else None
    detail = data.get("message") or error.description
    if error.code == 422 and errors:
        detail = "the request has invalid fields: " + ", ".join(sorted(errors))
    if error.code == 400 and errors:
        detail = "; ".join(m for msgs in errors.values() for m in msgs)
        errors = None
    headers = dict(data.get("headers") or {})
    if error.code == 405:
        headers["Allow"] = ", ".join(error.valid_methods or [])  # type: ignore[attr-defined]
    return problem(error.code or 500, error.name, detail, errors, headers)


def from_broker_error(error: BrokerError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="broker"'} if error.status == 401 else None
    return problem(error.status, error.title, error.detail, error.errors or None, headers)


def internal_error(error: Exception) -> Response:
    # The log gets the traceback; the caller gets no internals.
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return problem(500, "Internal server error", "something went wrong on our side; it has been logged")


def split_raises(text: str) -> tuple[str, dict[int, str]]:
    """A docstring's prose, and its `:raise NNN: when` fields by status.

    `"Cancel.\n\n:raise 409: Already shipped."` → `("Cancel.", {409: "Already shipped."})`.
    The fields come last; each one's text runs to the next field, lines joined.
    """
    found = _RAISE.search(text)
    if found is None:
        return text, {}
    prose, fields = text[:found.start()].rstrip(), text[found.start():]
    parts = _RAISE.split(fields)[1:]  # [status, text, status, text, ...]
    return prose, {int(status): " ".join(when.split()) for status, when in zip(parts[::2], parts[1::2])}


def rate_limit_text(limits: str) -> str:
    """flask-limiter's `"30 per minute;300 per hour"` → `"30 a minute or 300 an hour"`."""
    said = []
    for limit in limits.split(";"):
        amount, _, unit = limit.strip().partition(" per ")
        said.append(f"{amount} {'an' if unit == 'hour' else 'a'} {unit}" if unit else limit.strip())
    return " or ".join(said)


class ProblemResponses(BasePlugin):
    """Documents the problems each operation can answer, in one place, from its shape:

    * 400 for every operation: the input boundary refuses bad bytes in any path,
      query or header before routing is done with (web/boundary.py);
    * 413 when it takes a body (too large), 422 when it takes a body or a query
      (flask-smorest's own 422, in application/json, is replaced);
    * 401 when it asks for credentials, 403 when an API key may be the wrong one;
    * 404 when its path names an object, 409 when it writes;
    * 429 when web.security rate-limits its endpoint (`rate_limits`: endpoint →
      flask-limiter's limits), saying how much;
    * 503 for every operation, with `Retry-After`: its work kept losing races to
      other requests and was rolled back (broker.retry, at the request boundary);
      for some also the payment provider not answering (a `:raise 503:` field).

    Each gets a description that says when it happens, worded for the operation
    (which credentials, which object), and an example body. A view says more in
    its docstring with `:raise NNN: when` fields: their text becomes that
    response's description, a status its shape would not give (402, 503) is
    added, and the fields are taken out of the operation's summary and
    description, so no docstring markup reaches the document.

    Without a `default` response (see `BrokerApi`) a status not written here is
    an undocumented response, which the API fuzz test (tests/fuzz) reports.
    """

    SCHEMA_NAME = "Problem"

    def __init__(self, schema, rate_limits: dict[str, str] | None = None):
        self.schema = schema
        self.rate_limits = rate_limits or {}

    def init_spec(self, spec):
        super().init_spec(spec)
        spec.components.schema(self.SCHEMA_NAME, schema=self.schema)

    def operation_helper(self, path=None, operations=None, rule=None, **kwargs):
        for method, operation in (operations or {}).items():
            raised: dict[int, str] = {}
            for key in ("summary", "description"):
                if key in operation:
                    operation[key], found = split_raises(operation[key])
                    raised.update(found)
                    if not operation[key]:
                        del operation[key]
            responses = operation.setdefault("responses", {})
            security = {name for requirement in operation.get("security", []) for name in requirement}
            has_query = any(p.get("in") == "query" for p in operation.get("parameters", []) if isinstance(p, dict))
            statuses = {400, 503} | set(raised)
            if "requestBody" in operation:
                statuses |= {413, 422}
            if has_query:
                statuses.add(422)
            if security:
                statuses.add(401)
            if "bearer" in security:
                statuses.add(403)
            if "{" in (path or ""):
                statuses.add(404)
            if method.lower() in ("post", "put", "patch", "delete"):
                statuses.add(409)
            limits = self.rate_limits.get(getattr(rule, "endpoint", None)) if method.lower() == "post" else None
            if limits:
                statuses.add(429)
            named = ([None] + re.findall(r"\{(\w+)\}", path or ""))[-1]
            for status in sorted(statuses):
                when = _when(status, path or "", operation, security, limits)
                if status in raised and status == 422:
                    # The view's rules, and the schema's (a wrong type, a missing field) as always.
                    when = f"{raised[status]} {_INVALID_FIELDS}"
                elif status == 503:
                    when = f"{raised[503]} Or: {CONTENTION}" if raised.get(503) else CONTENTION[0].upper() + CONTENTION[1:]
                elif status in raised:
                    when = raised[status] or when
                responses.pop(status, None)  # flask-smorest keys its 422 by int
                responses[str(status)] = {
                    "description": when,
                    "content": {PROBLEM_JSON: {"schema": self.SCHEMA_NAME, "example": example(
                        status, named=named, security=frozenset(security), roles=tuple(operation.get("x-roles", ())),
                        limits=limits)}},
                }
                if status == 503:
                    responses["503"]["headers"] = {"Retry-After": {
                        "description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}


# The 503 any operation may answer from the request boundary (broker.retry).
CONTENTION = ("the records this touches were busy with other changes and the work was rolled back (it is "
              "retried a few times first): nothing was changed; try again after `Retry-After`.")
_INVALID_FIELDS = "Each invalid field is named in `errors`, by its dotted path, with what is wrong with it."


def _when(status: int, path: str, operation: dict, security: set[str], limits: str | None) -> str:
    """The default description of a problem, worded for this operation."""
    nouns = [NOUNS[name][0] if name in NOUNS else name.replace("_", " ") for name in re.findall(r"\{(\w+)\}", path)]
    if status == 400 and "requestBody" in operation:
        return WHEN[400] + "; or a body that is not JSON, or JSON nested too deeply or holding `NaN` or huge numbers."
    if status == 400:
        return WHEN[400] + "."
    if status == 401:
        if security == {"accessToken"}:
            return "No `X-Access-Token` was sent, or it is not valid."
        if security == {"bearer"}:
            return "No API key (`Authorization: Bearer <key>`) was sent, or it is unknown or revoked."
        return ("Neither an `X-Access-Token` nor an API key (`Authorization: Bearer <key>`) was sent, or the one "
                "sent is not valid.")
    if status == 403:
        return f"The credentials are valid, but only {_roles(operation.get('x-roles', []))} may call this."
    if status == 404 and nouns:
        return f"No such {nouns[-1]}, or not one the caller may see (Broker does not say which)."
    if status == 422 and "requestBody" not in operation:
        return "A query parameter is invalid: `errors` names it and says what is wrong."
    if status == 422:
        return ("A field is invalid or breaks a rule: `errors` maps each invalid field, by its dotted path "
                "(`items.0.quantity`), to what is wrong with it.")
    if status == 429 and limits:
        return f"More than {rate_limit_text(limits)} from this address: wait the `Retry-After` seconds, then try again."
    return WHEN[status]


def _roles(roles: list[str]) -> str:
    said = {"operator": "the operator (`BROKER_ADMIN_TOKEN`)", "manufacturer": "a manufacturer's key",
            "retailer": "a retailer's key", "customer": "the customer (`X-Access-Token`)"}
    names = [said.get(role, role) for role in roles]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
