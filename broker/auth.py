"""Who is calling: the actor every service is given, and the key format."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import secrets

from broker.errors import Forbidden, Unauthenticated


class ActorKind(enum.StrEnum):
    ANONYMOUS = "anonymous"
    OPERATOR = "operator"
    MANUFACTURER = "manufacturer"
    RETAILER = "retailer"


@dataclasses.dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: int | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind is ActorKind.OPERATOR


ANONYMOUS = Actor(ActorKind.ANONYMOUS)
OPERATOR = Actor(ActorKind.OPERATOR)


def require(actor: Actor, *kinds: ActorKind) -> Actor:
    """401 for a caller with no key, 403 for a key of the wrong role."""
    if actor.kind in kinds:
        return actor
    if actor.kind is ActorKind.ANONYMOUS:
        raise Unauthenticated("this needs an API key: Authorization: Bearer <key>")
    wanted = " or ".join(k.value for k in kinds)
    raise Forbidden(f"only a {wanted} may do this")


def new_secret(prefix: str) -> str:
    """A random key like `bk_r_9f1c...`: 32 bytes of entropy after a role prefix."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def digest(secret: str) -> str:
    """Keys and tokens are stored as SHA-256: they have enough entropy not to need a slow hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
