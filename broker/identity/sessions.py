"""Server-side sessions of the portal and the console.

Signing in writes a row; the browser's cookie (Flask's signed session) carries
a random id, and the row keeps only its SHA-256, like an API key. A request is
signed in only while its row holds: not ended, used within
BROKER_SESSION_IDLE_MINUTES, made within BROKER_SESSION_HOURS. So a cookie copied
before sign-out is dead after it, and a password change or a removal ends
sessions in other browsers at once.

Checking a session is one indexed read (`broker.identity.services.load_session`);
its `last_seen_at` is written at most once a TOUCH_EVERY, not on every request.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from broker.auth import digest
from broker.config import Settings
from broker.identity.models import UserSession

TOUCH_EVERY = timedelta(minutes=1)
# Ended and lapsed rows are deleted this long after they began (the accounts job).
KEEP_ENDED = timedelta(days=30)


def open_session(session: Session, user_id: int, now: datetime) -> str:
    """A new session for the user; returns the id for the cookie (never stored)."""
    secret = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=digest(secret), user_id=user_id, created_at=now, last_seen_at=now))
    return secret


def lapsed(settings: Settings, created_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
    return (now - last_seen_at > timedelta(minutes=settings.session_idle_minutes)
            or now - created_at > timedelta(hours=settings.session_hours))


def end_session(session: Session, session_id: str, now: datetime) -> None:
    session.execute(update(UserSession).where(UserSession.token_hash == digest(session_id),
                                              UserSession.ended_at.is_(None)).values(ended_at=now))


def end_sessions_of(session: Session, user_id: int, now: datetime) -> None:
    session.execute(update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
                    .values(ended_at=now))


def touch(session: Session, row_id: int, now: datetime) -> None:
    session.execute(update(UserSession).where(UserSession.id == row_id, UserSession.ended_at.is_(None))
                    .values(last_seen_at=now))


def delete_old_sessions(session: Session, now: datetime) -> int:
    """Rows long past any lifetime: they sign nobody in, so they need not stay."""
    return session.execute(delete(UserSession).where(UserSession.created_at < now - KEEP_ENDED)).rowcount or 0
