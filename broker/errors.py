"""Errors the services raise. The API maps each to an RFC 9457 problem."""

from __future__ import annotations


class BrokerError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, errors: dict[str, list[str]] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}


class Invalid(BrokerError):
    """The request is well-formed but breaks a rule (422), optionally per field."""

    status = 422
    title = "Unprocessable content"

    @classmethod
    def field(cls, name: str, message: str) -> "Invalid":
        return cls(f"{name}: {message}", errors={name: [message]})


class Unauthenticated(BrokerError):
    status = 401
    title = "Unauthorized"


class Forbidden(BrokerError):
    status = 403
    title = "Forbidden"


class NotFound(BrokerError):
    """Also raised where a caller may not know a thing exists at all."""

    status = 404
    title = "Not found"


class Conflict(BrokerError):
    status = 409
    title = "Conflict"


class PaymentRequired(BrokerError):
    """The payment provider declined."""

    status = 402
    title = "Payment required"


class Unavailable(BrokerError):
    """A system we depend on (the payment provider) is down; try again later."""

    status = 503
    title = "Service unavailable"
