"""Signed, expiring tokens for links sent by email (password reset, invitations,
unsubscribe). Signed with BROKER_SECRET_KEY, one salt per purpose, so a token
made for one purpose is refused for every other."""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from broker.errors import Invalid


def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=f"broker.{purpose}")


def make_token(secret_key: str, purpose: str, data: Any) -> str:
    return _serializer(secret_key, purpose).dumps(data)


def read_token(secret_key: str, purpose: str, token: str, *, max_age_s: int | None = None) -> Any:
    """:raise 422: the token is forged, for another purpose, or too old."""
    try:
        return _serializer(secret_key, purpose).loads(token, max_age=max_age_s)
    except BadSignature:
        raise Invalid("this link is not valid or has expired; ask for a new one") from None
