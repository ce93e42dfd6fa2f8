"""People who sign in: retailer sign-up, email verification, sign-in and
sessions, colleagues, password reset.

An email address proves nothing until its owner follows a link mailed to it
(`User.verified_at`). A retailer's sign-up is pending until then: its company
is inactive, the address is mailed nothing but the link, and it reserves
nothing (only verified addresses are unique), so somebody signing up with an
address they do not own can neither block nor capture its owner. A pending
sign-up lapses after PENDING_DAYS and is deleted (`expire_sign_ups`). A user
added by a colleague or by the operator verifies by setting their password
through the link they are mailed.

Sessions are rows (`broker.identity.sessions`): signing in opens one, signing out
ends it, a password change or reset ends all of the user's (the browser that did
it gets a new one), removal all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from broker.accounts.models import DealerApplication, Manufacturer, Retailer, Role, Store
from broker.accounts.services import MAX_RADIUS_KM, address_from_location, new_store_row
from broker.auth import Actor, ActorKind, digest
from broker.context import Context
from broker.email_address import email_address
from broker.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from broker.geo.geocoding import GeocodeResult, LocationQuery, resolve_location
from broker.identity import sessions
from broker.identity.models import User, UserSession
from broker.identity.passwords import DUMMY_HASH, hash_password, needs_rehash, password_problem, verify_password
from broker.notifications.services import send_email, subscribe
from broker.tokens import make_token, read_token
from broker.urls import absolute_url

log = logging.getLogger(__name__)

RESET_HOURS = 2
INVITE_DAYS = 14
# A verification link works this long; a sign-up not verified within PENDING_DAYS lapses.
VERIFY_HOURS = 48
PENDING_DAYS = 7
# Pending sign-ups with one address whose passwords a sign-in tries, newest first:
# a bound on the work one sign-in can cost.
MAX_PENDING_TRIED = 5


@dataclasses.dataclass(frozen=True)
class RetailerSignUp:
    company: str
    name: str
    email: str
    password: str
    location: LocationQuery
    service_radius_km: float
    store_name: str = ""


@dataclasses.dataclass(frozen=True)
class SignedIn:
    """What a page needs to know about who is signed in."""

    user_id: int
    name: str
    email: str
    role: Role
    company_id: int
    company_name: str
    digest_opt_in: bool
    # False: the address is not confirmed yet; the user sees only "check your email".
    verified: bool

    @property
    def actor(self) -> Actor:
        kind = ActorKind.MANUFACTURER if self.role == Role.MANUFACTURER else ActorKind.RETAILER
        return Actor(kind, self.company_id)


@dataclasses.dataclass(frozen=True)
class VerificationLink:
    """What a verification link is for, to show before it is used."""

    user_id: int
    email: str
    name: str
    company: str


def normalise_email(value: str, field: str = "email") -> str:
    """A person's sign-in address: the one email rule (`broker.email_address`),
    then lowercased whole, since it is also the key an account is found by."""
    return email_address(value, field).lower()


def password_fingerprint(user: User) -> str:
    """Changes whenever the password does: a password link made for one
    fingerprint works once."""
    return hashlib.sha256((user.password_hash or f"none-{user.id}").encode()).hexdigest()[:16]


def _check_password(password: str, email: str) -> str:
    problem = password_problem(password or "", email=email)
    if problem:
        raise Invalid.field("password", problem)
    return password


def signed_in_user(session: Session, user: User) -> SignedIn:
    company = session.get(Manufacturer if user.role == Role.MANUFACTURER else Retailer, user.company_id)
    return SignedIn(user.id, user.name, user.email, Role(user.role), user.company_id,
                    company.name if company else "", user.digest_opt_in, user.verified)


def _email_taken(session: Session, email: str, *, other_than: int | None = None) -> bool:
    """Whether a verified account has the address (an unverified one reserves nothing)."""
    query = select(User.id).where(User.email == email, User.verified_at.is_not(None))
    if other_than is not None:
        query = query.where(User.id != other_than)
    return session.scalar(query.limit(1)) is not None


def _pending_lapsed(user: User, retailer: Retailer | None, now: datetime) -> bool:
    """A sign-up never verified: its company is inactive until it is."""
    return (not user.verified and retailer is not None and not retailer.active
            and user.created_at < now - timedelta(days=PENDING_DAYS))


def _mark_verified(session: Session, user: User, now: datetime) -> None:
    """The owner of the address followed a link mailed to it. :raise 409: the
    address was verified for another account first."""
    if _email_taken(session, user.email, other_than=user.id):
        raise Conflict("this address already has an account: sign in to it, or reset its password",
                       errors={"email": ["already has an account"]})
    user.verified_at = now
    if user.role == Role.RETAILER:
        retailer = session.get(Retailer, user.retailer_id)
        if retailer is not None and not retailer.active:
            # A pending sign-up's company starts work once its address is proved.
            retailer.active = True
    try:
        session.flush()
    except IntegrityError:
        # Two accounts with one address verified at the same moment: the unique
        # index on verified addresses lets one through.
        raise Conflict("this address already has an account: sign in to it, or reset its password",
                       errors={"email": ["already has an account"]}) from None
    end_pending_sessions(session, user, now)


def end_pending_sessions(session: Session, owner: User, now: datetime) -> None:
    """The owner verified the address: whoever else signed up with it did not
    own it, and their sessions end (they can neither sign in nor verify any more)."""
    for other in session.scalars(select(User.id).where(User.email == owner.email, User.id != owner.id,
                                                       User.verified_at.is_(None))):
        sessions.end_sessions_of(session, other, now)


# --- Signing up ----------------------------------------------------------------


def validate_sign_up(ctx: Context, cmd: RetailerSignUp) -> tuple[str, GeocodeResult]:
    """(the normalised email, the store's place). :raise 422: every field's problems at once."""
    errors: dict[str, list[str]] = {}
    if not (cmd.company or "").strip():
        errors["company"] = ["must not be blank"]
    if not (cmd.name or "").strip():
        errors["name"] = ["must not be blank"]
    try:
        email = normalise_email(cmd.email)
    except Invalid as exc:
        errors.update(exc.errors)
        email = ""
    problem = password_problem(cmd.password or "", email=email)
    if problem:
        errors["password"] = [problem]
    if not (0 < cmd.service_radius_km <= MAX_RADIUS_KM):
        errors["service_radius_km"] = [f"must be more than 0 and at most {MAX_RADIUS_KM:g}"]
    place = None
    try:
        place = resolve_location(ctx.geocoder, cmd.location)
    except Invalid as exc:
        errors.update(exc.errors or {"location": [exc.detail]})
    if errors or place is None:
        raise Invalid("the sign-up form has errors", errors=errors)
    return email, place


def create_retailer_account(session: Session, cmd: RetailerSignUp, email: str, place: GeocodeResult,
                            now: datetime, *, verified: bool, default_timezone: str) -> User:
    """The company, its first store and its first user. Unverified, the company
    is inactive (a pending sign-up) until the address is."""
    company = cmd.company.strip()
    retailer = Retailer(name=company, email=email, active=verified, created_at=now)
    session.add(retailer)
    session.flush()
    # Its address is what the sign-up gave: the postal code and country.
    session.add(new_store_row(retailer.id, (cmd.store_name or "").strip() or company, place,
                              float(cmd.service_radius_km), now, default_timezone=default_timezone,
                              address=address_from_location(cmd.location)))
    user = User(email=email, name=cmd.name.strip(), password_hash=hash_password(cmd.password), role=Role.RETAILER,
                retailer_id=retailer.id, created_at=now, last_sign_in_at=now, verified_at=now if verified else None)
    session.add(user)
    session.flush()
    return user


def sign_up_retailer(ctx: Context, cmd: RetailerSignUp) -> tuple[SignedIn, str]:
    """A new retailer company, its first store and its first user, pending until
    the address is verified through the link mailed to it. Returns who and a new
    session's id: the person is signed in, to the "check your email" page.

    :raise 409: the address has a verified account. :raise 422: bad input.
    """
    email, place = validate_sign_up(ctx, cmd)
    with ctx.uow() as uow:
        if _email_taken(uow.session, email):
            raise Conflict("that email already has an account: sign in, or reset the password",
                           errors={"email": ["already has an account"]})
        now = ctx.now()
        user = create_retailer_account(uow.session, cmd, email, place, now, verified=False,
                                       default_timezone=ctx.settings.timezone)
        _send_verification(uow.session, ctx, user, company=cmd.company.strip())
        session_id = sessions.open_session(uow.session, user.id, now)
        signed_in = signed_in_user(uow.session, user)
        uow.commit()
        return signed_in, session_id


# --- Verifying an address --------------------------------------------------------


def _verification_token(ctx: Context, user: User) -> str:
    # A nonce: each link sent is an email of its own, even twice in one second.
    return make_token(ctx.settings.secret_key, "verify-email", {"u": user.id, "e": user.email,
                                                                "n": secrets.token_hex(4)})


def _send_verification(session: Session, ctx: Context, user: User, *, company: str) -> None:
    token = _verification_token(ctx, user)
    send_email(session, ctx, topic="verify_email", to=user.email, template="verify_email",
               dedupe_key=f"user-{user.id}-{token[-24:]}", now=ctx.now(), recipient_id=user.id, name=user.name,
               company=company, verify_path=f"/verify/{token}", hours=VERIFY_HOURS)


def resend_verification(ctx: Context, me: SignedIn) -> None:
    """Mail the verification link again (the page limits how often).
    :raise 409: already verified, or the sign-up has lapsed."""
    with ctx.uow() as uow:
        user = uow.session.get(User, me.user_id)
        if user is None or not user.active:
            raise NotFound("no such user")
        if user.verified:
            raise Conflict("your address is already confirmed")
        retailer = uow.session.get(Retailer, user.retailer_id) if user.retailer_id else None
        if _pending_lapsed(user, retailer, ctx.now()):
            raise Conflict(f"this sign-up was not confirmed within {PENDING_DAYS} days; sign up again")
        company = uow.session.get(Manufacturer if user.role == Role.MANUFACTURER else Retailer, user.company_id)
        _send_verification(uow.session, ctx, user, company=company.name if company else "")
        uow.commit()


def _verifiable(session: Session, ctx: Context, token: str) -> User:
    data = read_token(ctx.settings.secret_key, "verify-email", token, max_age_s=VERIFY_HOURS * 3600)
    user = session.get(User, data.get("u")) if isinstance(data, dict) else None
    if user is None or not user.active or user.email != data.get("e"):
        raise Invalid("this link is not valid any more; sign in and ask for a new one")
    if user.verified:
        raise Invalid("this address is already confirmed: sign in")
    retailer = session.get(Retailer, user.retailer_id) if user.retailer_id else None
    if _pending_lapsed(user, retailer, ctx.now()):
        raise Invalid(f"this sign-up was not confirmed within {PENDING_DAYS} days; sign up again")
    return user


def check_verification_link(ctx: Context, token: str) -> VerificationLink:
    """What the link confirms, for the page that asks to confirm it (a mail
    scanner opening the link confirms nothing). :raise 422: used, expired or forged."""
    with ctx.uow() as uow:
        user = _verifiable(uow.session, ctx, token)
        company = uow.session.get(Manufacturer if user.role == Role.MANUFACTURER else Retailer, user.company_id)
        return VerificationLink(user.id, user.email, user.name, company.name if company else "")


def verify_email(ctx: Context, token: str, *, signed_in_as: int | None,
                 password: str = "") -> tuple[SignedIn, str | None]:
    """Confirm the address the link was mailed to. The person must be signed in
    as the account it is for, or give its password: the link proves the mailbox,
    the password that the account is theirs, so the owner of an address never
    confirms somebody else's sign-up by clicking a link they did not ask for.

    Returns who, and a new session's id when they were not signed in as them.
    :raise 422: the link is used, expired or forged, or the password wrong.
    :raise 409: the address was verified for another account first.
    """
    with ctx.uow() as uow:
        user = _verifiable(uow.session, ctx, token)
        now = ctx.now()
        session_id = None
        if signed_in_as != user.id:
            if not verify_password(password or "", user.password_hash):
                raise Invalid.field("password", "is not the password of this account")
            session_id = sessions.open_session(uow.session, user.id, now)
            user.last_sign_in_at = now
        _mark_verified(uow.session, user, now)
        signed_in = signed_in_user(uow.session, user)
        uow.commit()
        return signed_in, session_id


# --- Signing in and sessions -------------------------------------------------------


def sign_in(ctx: Context, email: str, password: str) -> tuple[SignedIn, str]:
    """(who, the new session's id). :raise 401: wrong email or password (never which).

    A verified account owns its address: pending sign-ups with the same address
    can no longer sign in. Without one, each pending sign-up of the address is
    tried (its owner may not be the only one who signed up with it).
    """
    address = (email or "").strip().lower()
    with ctx.uow() as uow:
        now = ctx.now()
        rows = uow.session.execute(
            select(User, Retailer).outerjoin(Retailer, Retailer.id == User.retailer_id)
            .where(User.email == address, User.removed_at.is_(None), User.password_hash.is_not(None))
            .order_by(User.verified_at.is_(None), User.id.desc()).limit(MAX_PENDING_TRIED + 1)
        ).all() if address else []
        if rows and rows[0][0].verified:
            candidates = rows[:1]
        else:
            candidates = [r for r in rows if not _pending_lapsed(r[0], r[1], now)][:MAX_PENDING_TRIED]
        found = next(((u, r) for u, r in candidates if verify_password(password or "", u.password_hash)), None)
        if not candidates:
            verify_password(password or "", DUMMY_HASH)  # the same time as a wrong password
        if found is None:
            raise Unauthenticated("wrong email or password")
        user, retailer = found
        if user.verified and user.role == Role.RETAILER and (retailer is None or not retailer.active):
            raise Unauthenticated("this retailer account is not active")
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.last_sign_in_at = now
        session_id = sessions.open_session(uow.session, user.id, now)
        signed_in = signed_in_user(uow.session, user)
        uow.commit()
        return signed_in, session_id


def load_session(ctx: Context, session_id: str) -> SignedIn | None:
    """The user behind a session cookie's id, or None if the session no longer
    holds: ended (signed out, password changed, user removed), idle or too old,
    or the company deactivated. One indexed read; `last_seen_at` is written at
    most once a `sessions.TOUCH_EVERY`."""
    if not session_id:
        return None
    now = ctx.now()
    with ctx.read() as uow:
        row = uow.session.execute(
            select(UserSession.id, UserSession.created_at, UserSession.last_seen_at, UserSession.ended_at,
                   User.id.label("user_id"), User.name, User.email, User.role, User.manufacturer_id,
                   User.retailer_id, User.digest_opt_in, User.verified_at, User.removed_at,
                   Retailer.name.label("retailer_name"), Retailer.active.label("retailer_active"),
                   Manufacturer.name.label("manufacturer_name"))
            .join(User, User.id == UserSession.user_id)
            .outerjoin(Retailer, Retailer.id == User.retailer_id)
            .outerjoin(Manufacturer, Manufacturer.id == User.manufacturer_id)
            .where(UserSession.token_hash == digest(session_id))
        ).first()
    if (row is None or row.ended_at is not None or row.removed_at is not None
            or sessions.lapsed(ctx.settings, row.created_at, row.last_seen_at, now)):
        return None
    verified = row.verified_at is not None
    if row.role == Role.RETAILER:
        # A pending sign-up's company is inactive until it is verified; a verified
        # user's inactive company is closed.
        if row.retailer_name is None or (verified and not row.retailer_active):
            return None
        company_id, company_name = row.retailer_id, row.retailer_name
    else:
        company_id, company_name = row.manufacturer_id, row.manufacturer_name or ""
    if now - row.last_seen_at >= sessions.TOUCH_EVERY:
        with ctx.uow() as uow:
            sessions.touch(uow.session, row.id, now)
            uow.commit()
    return SignedIn(row.user_id, row.name, row.email, Role(row.role), company_id, company_name, row.digest_opt_in,
                    verified)


def sign_out(ctx: Context, session_id: str) -> None:
    """End this session on the server: its cookie, copied or not, signs nobody in again."""
    if not session_id:
        return
    with ctx.uow() as uow:
        sessions.end_session(uow.session, session_id, ctx.now())
        uow.commit()


def change_password(ctx: Context, me: SignedIn, current: str, new: str) -> str:
    """Every session of the user ends, this browser's included, which gets a new
    one (returned): a copy of any cookie from before the change signs nobody in.
    :raise 422: the current password is wrong or the new one too weak."""
    with ctx.uow() as uow:
        user = uow.session.get(User, me.user_id)
        if user is None or not verify_password(current or "", user.password_hash):
            raise Invalid.field("current_password", "is not your current password")
        user.password_hash = hash_password(_check_password(new, user.email))
        now = ctx.now()
        sessions.end_sessions_of(uow.session, user.id, now)
        session_id = sessions.open_session(uow.session, user.id, now)
        uow.commit()
        return session_id


# --- Password links ------------------------------------------------------------------


def request_password_reset(ctx: Context, email: str) -> None:
    """Email a reset link if the address belongs to a verified account. Says
    nothing either way, so the form does not reveal who has an account. An
    unverified address gets nothing: it is not known to be its owner's."""
    address = (email or "").strip().lower()
    if not address:
        return
    with ctx.uow() as uow:
        user = uow.session.scalar(select(User).where(User.email == address, User.removed_at.is_(None),
                                                     User.verified_at.is_not(None)))
        if user is None:
            return
        now = ctx.now()
        token = make_token(ctx.settings.secret_key, "password-reset", {"u": user.id, "e": password_fingerprint(user)})
        send_email(uow.session, ctx, topic="password_reset", to=user.email, template="password_reset",
                   dedupe_key=f"user-{user.id}-{token[-24:]}", now=now, recipient_id=user.id, name=user.name,
                   reset_path=f"/password/reset/{token}", hours=RESET_HOURS)
        uow.commit()


def _password_link_user(session: Session, ctx: Context, token: str) -> User:
    purpose, data = _read_password_link(ctx, token)
    user = session.get(User, data.get("u")) if isinstance(data, dict) else None
    if user is None or not user.active or password_fingerprint(user) != data.get("e"):
        raise Invalid("this link has been used or is no longer valid; ask for a new one")
    if purpose == "password-reset" and not user.verified:
        raise Invalid("this link has been used or is no longer valid; ask for a new one")
    return user


def reset_password(ctx: Context, token: str, new: str) -> tuple[SignedIn, str]:
    """Set a new password from an emailed link (also how a user added by a
    colleague or the operator sets their first one, which verifies their
    address: the link was mailed to it). The link works once: the new password
    changes the fingerprint it was made for. Every session of the user ends;
    returns who and a new session's id.

    :raise 422: the link is used, expired or forged, or the password weak.
    :raise 409: the address was verified for another account meanwhile.
    """
    with ctx.uow() as uow:
        user = _password_link_user(uow.session, ctx, token)
        now = ctx.now()
        user.password_hash = hash_password(_check_password(new, user.email))
        user.last_sign_in_at = now
        if not user.verified:
            _mark_verified(uow.session, user, now)
        sessions.end_sessions_of(uow.session, user.id, now)
        session_id = sessions.open_session(uow.session, user.id, now)
        signed_in = signed_in_user(uow.session, user)
        uow.commit()
        return signed_in, session_id


def check_password_link(ctx: Context, token: str) -> str:
    """The email a reset or welcome link is for (to show the form). :raise 422: not valid."""
    with ctx.uow() as uow:
        return _password_link_user(uow.session, ctx, token).email


def _read_password_link(ctx: Context, token: str) -> tuple[str, dict]:
    # A reset link lasts RESET_HOURS; a welcome link (a new colleague) INVITE_DAYS.
    try:
        return "password-reset", read_token(ctx.settings.secret_key, "password-reset", token,
                                            max_age_s=RESET_HOURS * 3600)
    except Invalid:
        return "welcome", read_token(ctx.settings.secret_key, "welcome", token, max_age_s=INVITE_DAYS * 86400)


# --- Colleagues -------------------------------------------------------------


def list_users(ctx: Context, me: SignedIn) -> list[User]:
    with ctx.uow() as uow:
        column = User.manufacturer_id if me.role == Role.MANUFACTURER else User.retailer_id
        return list(uow.session.scalars(
            select(User).where(column == me.company_id, User.removed_at.is_(None)).order_by(User.id)
        ))


def _new_user(session: Session, ctx: Context, *, role: Role, company_id: int, address: str, name: str,
              inviter: str, company: str) -> User:
    """A user who sets their password (and so verifies their address) through
    the link mailed to it. Asked again for an address the company already added
    and that never followed its link: the link is mailed again.
    :raise 409: the address has a verified account."""
    if _email_taken(session, address):
        raise Conflict("that email already has an account", errors={"email": ["already has an account"]})
    column = User.manufacturer_id if role == Role.MANUFACTURER else User.retailer_id
    user = session.scalar(select(User).where(User.email == address, column == company_id, User.role == role,
                                             User.removed_at.is_(None), User.verified_at.is_(None)).limit(1))
    if user is None:
        user = User(email=address, name=name or address.split("@")[0], role=role, created_at=ctx.now(),
                    manufacturer_id=company_id if role == Role.MANUFACTURER else None,
                    retailer_id=company_id if role == Role.RETAILER else None)
        session.add(user)
        session.flush()
    _send_welcome(session, ctx, user, inviter=inviter, company=company)
    return user


def invite_user(ctx: Context, me: SignedIn, email: str, name: str) -> User:
    """A colleague joins the company: they get an email with a link to set their
    password. :raise 409: the address already has a verified account."""
    address = normalise_email(email)
    with ctx.uow() as uow:
        user = _new_user(uow.session, ctx, role=me.role, company_id=me.company_id, address=address,
                         name=(name or "").strip(), inviter=me.name, company=me.company_name)
        uow.commit()
        return user


def _welcome_token(ctx: Context, user: User) -> str:
    return make_token(ctx.settings.secret_key, "welcome", {"u": user.id, "e": password_fingerprint(user)})


def _send_welcome(session: Session, ctx: Context, user: User, *, inviter: str, company: str) -> str:
    token = _welcome_token(ctx, user)
    send_email(session, ctx, topic="welcome", to=user.email, template="welcome",
               dedupe_key=f"user-{user.id}-{token[-24:]}", now=ctx.now(), recipient_id=user.id, name=user.name,
               inviter=inviter, company=company, set_path=f"/password/reset/{token}", days=INVITE_DAYS)
    return token


def remove_user(ctx: Context, me: SignedIn, user_id: int) -> None:
    """Every session of theirs ends. :raise 404: not a colleague. :raise 409: yourself."""
    with ctx.uow() as uow:
        user = uow.session.get(User, user_id)
        if user is None or user.role != me.role or user.company_id != me.company_id or not user.active:
            raise NotFound(f"no colleague {user_id}")
        if user.id == me.user_id:
            raise Conflict("you cannot remove yourself; ask a colleague")
        now = ctx.now()
        user.removed_at = now
        user.email = f"removed-{user.id}@users.invalid"  # frees the address for a new account
        user.password_hash = None
        sessions.end_sessions_of(uow.session, user.id, now)
        uow.commit()


def set_digest(ctx: Context, me: SignedIn, on: bool) -> None:
    if me.role != Role.RETAILER:
        raise Forbidden("the digest of new listings is for retailers")
    with ctx.uow() as uow:
        user = uow.session.get(User, me.user_id)
        if not user.verified:
            raise Forbidden("confirm your email address first")
        user.digest_opt_in = on
        if on:
            subscribe(uow.session, user.email, "digest")
        uow.commit()


def add_user(ctx: Context, *, role: Role, company_id: int, email: str, name: str) -> tuple[User, str]:
    """The operator's way in (`broker user add`): a user for any company, with a
    link to set the password (returned, and also emailed), which verifies the address."""
    address = normalise_email(email)
    with ctx.uow() as uow:
        company = uow.session.get(Manufacturer if role == Role.MANUFACTURER else Retailer, company_id)
        if company is None:
            raise NotFound(f"no {role.value} {company_id}")
        user = _new_user(uow.session, ctx, role=role, company_id=company_id, address=address,
                         name=(name or "").strip(), inviter="Broker", company=company.name)
        token = _welcome_token(ctx, user)
        uow.commit()
        return user, absolute_url(ctx.settings, f"/password/reset/{token}")


# --- Housekeeping ------------------------------------------------------------------


@dataclasses.dataclass
class AccountsReport:
    sign_ups_deleted: int = 0
    sessions_deleted: int = 0


def expire_sign_ups(ctx: Context) -> AccountsReport:
    """The daily `accounts` job: delete sign-ups never verified within
    PENDING_DAYS (their company, store, user and sessions: a pending company can
    do nothing, so nothing else refers to it), and session rows long over.
    Each company in its own transaction; running twice deletes nothing more."""
    report = AccountsReport()
    now = ctx.now()
    verified = aliased(User)
    with ctx.uow() as uow:
        lapsed = list(uow.session.scalars(
            select(Retailer.id).where(
                Retailer.active.is_(False),
                exists().where(User.retailer_id == Retailer.id, User.verified_at.is_(None),
                               User.password_hash.is_not(None), User.created_at < now - timedelta(days=PENDING_DAYS)),
                ~exists().where(verified.retailer_id == Retailer.id, verified.verified_at.is_not(None)),
            ).order_by(Retailer.id)))
    for retailer_id in lapsed:
        with ctx.uow() as uow:
            users = list(uow.session.scalars(select(User.id).where(User.retailer_id == retailer_id)))
            uow.session.execute(delete(UserSession).where(UserSession.user_id.in_(users)))
            uow.session.execute(delete(DealerApplication).where(DealerApplication.retailer_id == retailer_id))
            uow.session.execute(delete(User).where(User.id.in_(users)))
            uow.session.execute(delete(Store).where(Store.retailer_id == retailer_id))
            uow.session.execute(delete(Retailer).where(Retailer.id == retailer_id, Retailer.active.is_(False)))
            try:
                uow.commit()
            except IntegrityError:
                # Something refers to it after all: keep it, and say so.
                log.warning("accounts: lapsed sign-up of retailer %s is referred to; kept", retailer_id)
                continue
            report.sign_ups_deleted += 1
    with ctx.uow() as uow:
        report.sessions_deleted = sessions.delete_old_sessions(uow.session, now)
        uow.commit()
    return report
