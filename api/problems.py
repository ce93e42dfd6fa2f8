"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus

from apispec import BasePlugin
from flask import Response, json, request
from werkzeug.exceptions import HTTPException

from broker.errors import BrokerError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

# The problems an operation may answer, by status, and when. `ProblemResponses` writes
# them into each operation of the OpenAPI document; a view adds what only it can
# answer with `@blp.alt_response(status, response=problems.response_name(status))`.
WHEN = {
    400: "The request holds what no field can: a body that is not JSON, bytes that are not UTF-8, a NUL or "
         "other control character, a lone surrogate, or JSON nested too deeply (web/boundary.py).",
    401: "No credentials, or not valid ones.",
    403: "These credentials may not call this operation.",
    404: "No such object, or not one the caller may see.",
    409: "The object's state does not allow it (already done, closed, taken...).",
    413: "The body is larger than the server accepts.",
    422: "The request has invalid fields (see `errors`) or breaks a rule.",
    429: "Too many requests from this address: wait and try again (see `Retry-After`).",
}


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


def response_name(status: int) -> str:
    """The OpenAPI response component for a problem with this status, e.g. `NotFound`."""
    return HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")


class ProblemResponses(BasePlugin):
    """Documents the problems each operation can answer, in one place, from its shape:

    * 400 for every operation: the input boundary refuses bad bytes in any path,
      query or header before routing is done with (web/boundary.py);
    * 413 when it takes a body (too large), 422 when it takes a body or a query
      (flask-smorest's own 422, in application/json, is replaced);
    * 401 when it asks for credentials, 403 when an API key may be the wrong one;
    * 404 when its path names an object, 409 when it writes.

    Without a `default` response (see `BrokerApi`) a status not written here is
    an undocumented response, which the API fuzz test (tests/fuzz) reports.
    """

    def __init__(self, schema):
        self.schema = schema

    def init_spec(self, spec):
        super().init_spec(spec)
        for status in WHEN:
            spec.components.response(response_name(status), {
                "description": WHEN[status],
                "content": {PROBLEM_JSON: {"schema": self.schema}},
            }, lazy=True)

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            security = {name for requirement in operation.get("security", []) for name in requirement}
            statuses = {400}
            if "requestBody" in operation:
                statuses |= {413, 422}
            if any(p.get("in") == "query" for p in operation.get("parameters", []) if isinstance(p, dict)):
                statuses.add(422)
            if security:
                statuses.add(401)
            if "bearer" in security:
                statuses.add(403)
            if "{" in (path or ""):
                statuses.add(404)
            if method.lower() in ("post", "put", "patch", "delete"):
                statuses.add(409)
            for status in statuses:
                responses.pop(status, None)  # flask-smorest keys its 422 by int
                responses[str(status)] = response_name(status)
