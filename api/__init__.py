"""The JSON API under /api/v1 and its OpenAPI document."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from api import paging, problems, reference
from api.schemas import Problem
from broker.errors import BrokerError


class BrokerApi(Api):
    """flask-smorest's Api, answering errors as RFC 9457 problem details.

    The document lists each operation's problems (`problems.ProblemResponses`)
    instead of flask-smorest's catch-all `default` response: with `default`, every
    status would count as documented and nothing could be found undocumented.
    """

    DEFAULT_ERROR_RESPONSE_NAME = None
    ERROR_SCHEMA = Problem

    def handle_http_exception(self, error):
        if not _is_api_request():
            page = current_app.extensions.get("broker_error_page")  # web/errors.py
            return page(error) if page is not None else error
        return problems.from_http_exception(error)


def _is_api_request() -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def init_api(app: Flask) -> Api:
    app.config.setdefault("API_TITLE", "Broker")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v1")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {"info": {"description": reference.DESCRIPTION}})
    # The rate limits web.security applies to API operations, for their 429s in the
    # document (the limits are data there, applied to the views by init_security).
    from web.security import RATE_LIMITS

    rate_limits = {endpoint: ";".join(limits for limits, key in rules if key is None)
                   for endpoint, rules in RATE_LIMITS.items()}
    api = BrokerApi(app, spec_kwargs={"extra_plugins": [problems.ProblemResponses(Problem, rate_limits),
                                                          paging.PaginationHeader(), reference.Audience()]})
    api.spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer",
        "description": "A manufacturer's or retailer's API key, or the operator's `BROKER_ADMIN_TOKEN`."})
    api.spec.components.security_scheme("accessToken", {
        "type": "apiKey", "in": "header", "name": "X-Access-Token",
        "description": "The customer's key to one order or personal request, given once when it is placed."})

    from api import (accounts, addresses, board, catalog, fulfilment, orders, payments, personal, privacy,
                     reputation, returns, settlement, shipping, stock, storefront)

    for module in (accounts, catalog, orders, returns, board, fulfilment, settlement, payments, personal, reputation,
                   storefront, privacy, addresses, shipping, stock):
        api.register_blueprint(module.blp)
    app.register_blueprint(payments.hooks)

    app.register_error_handler(BrokerError, problems.from_broker_error)
    app.extensions["broker_api"] = api

    @app.errorhandler(Exception)
    def _unhandled(error):
        if isinstance(error, HTTPException):
            return api.handle_http_exception(error)
        if _is_api_request():
            return problems.internal_error(error)
        raise error

    return api
