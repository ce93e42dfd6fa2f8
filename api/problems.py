"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

from broker.errors import BrokerError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


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
