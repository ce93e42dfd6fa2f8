"""People who sign in: retailer sign-up, sign-in, colleagues, password reset.

The web layer keeps a signed session cookie holding the user's id and an
"epoch" derived from the password hash (`session_epoch`): changing or resetting
the password changes the epoch, which signs out every other session at once.
"""

from __future__ import annotations

import dataclasses
import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.accounts.models import (
    ApplicationStatus,
    DealerApplication,
    DealerAuthorisation,
    Manufacturer,
    Retailer,
    Role,
    Store,
)
from broker.accounts.services import MAX_RADIUS_KM
from broker.auth import Actor, ActorKind
from broker.context import Context
from broker.email_address import email_address
from broker.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from broker.geo.geocoding import LocationQuery, resolve_location
from broker.identity.models import User
from broker.identity.passwords import DUMMY_HASH, hash_password, needs_rehash, password_problem, verify_password
from broker.notifications.services import send_email, subscribe
from broker.tokens import make_token, read_token

RESET_HOURS = 2
INVITE_DAYS = 14


@dataclasses.dataclass(frozen=True)
class RetailerSignUp:
    company: str
    name: str
    email: str
    password: str
    location: LocationQuery
    service_radius_km: float
    store_name: str = ""
    invitation: str | None = None  # a manufacturer's invitation token, if they came through one


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

    @property
    def actor(self) -> Actor:
        kind = ActorKind.MANUFACTURER if self.role == Role.MANUFACTURER else ActorKind.RETAILER
        return Actor(kind, self.company_id)


def normalise_email(value: str, field: str = "email") -> str:
    """A person's sign-in address: the one email rule (`broker.email_address`),
    then lowercased whole, since it is also the key an account is found by."""
    return email_address(value, field).lower()


def session_epoch(user: User) -> str:
    return hashlib.sha256((user.password_hash or f"none-{user.id}").encode()).hexdigest()[:16]


def _check_password(password: str, email: str) -> str:
    problem = password_problem(password or "", email=email)
    if problem:
        raise Invalid.field("password", problem)
    return password


def _signed_in(session: Session, user: User) -> SignedIn:
    company = session.get(Manufacturer if user.role == Role.MANUFACTURER else Retailer, user.company_id)
    return SignedIn(user.id, user.name, user.email, Role(user.role), user.company_id,
                     company.name if company else "", user.digest_opt_in)


def _email_taken(session: Session, email: str) -> bool:
    return session.scalar(select(User.id).where(User.email == email)) is not None


def sign_up_retailer(ctx: Context, cmd: RetailerSignUp) -> SignedIn:
    """A new retailer company, its first store and its first user.

    :raise 409: the email already has an account. :raise 422: bad input.
    """
    errors: dict[str, list[str]] = {}
    company = (cmd.company or "").strip()
    name = (cmd.name or "").strip()
    if not company:
        errors["company"] = ["must not be blank"]
    if not name:
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
    try:
        place = resolve_location(ctx.geocoder, cmd.location)
    except Invalid as exc:
        errors.update(exc.errors or {"location": [exc.detail]})
    if errors:
        raise Invalid("the sign-up form has errors", errors=errors)
    invited_by = _read_invitation(ctx, cmd.invitation, email) if cmd.invitation else None
    with ctx.uow() as uow:
        if _email_taken(uow.session, email):
            raise Conflict("that email already has an account: sign in, or reset the password",
                           errors={"email": ["already has an account"]})
        now = ctx.now()
        retailer = Retailer(name=company, email=email, active=True, created_at=now)
        uow.session.add(retailer)
        uow.session.flush()
        uow.session.add(Store(retailer_id=retailer.id, name=(cmd.store_name or "").strip() or company,
                              lat=place.lat, lon=place.lon, area=place.area,
                              service_radius_km=float(cmd.service_radius_km), is_open=True, created_at=now))
        user = User(email=email, name=name, password_hash=hash_password(cmd.password), role=Role.RETAILER,
                    retailer_id=retailer.id, created_at=now, last_sign_in_at=now)
        uow.session.add(user)
        if invited_by is not None:
            # The manufacturer invited this address: accepting is signing up.
            uow.session.add(DealerApplication(manufacturer_id=invited_by, retailer_id=retailer.id,
                                              status=ApplicationStatus.APPROVED, invited=True, created_at=now,
                                              decided_at=now))
            uow.session.add(DealerAuthorisation(manufacturer_id=invited_by, retailer_id=retailer.id,
                                                authorised_at=now))
        uow.session.flush()
        signed_in = _signed_in(uow.session, user)
        uow.commit()
        return signed_in


def sign_in(ctx: Context, email: str, password: str) -> tuple[SignedIn, str]:
    """(who, session epoch). :raise 401: wrong email or password (never which)."""
    address = (email or "").strip().lower()
    with ctx.uow() as uow:
        user = uow.session.scalar(select(User).where(User.email == address)) if address else None
        if user is None or not user.active or user.password_hash is None:
            verify_password(password or "", DUMMY_HASH)  # the same time as a wrong password
            raise Unauthenticated("wrong email or password")
        if not verify_password(password or "", user.password_hash):
            raise Unauthenticated("wrong email or password")
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        if user.role == Role.RETAILER:
            retailer = uow.session.get(Retailer, user.retailer_id)
            if retailer is None or not retailer.active:
                raise Unauthenticated("this retailer account is not active")
        user.last_sign_in_at = ctx.now()
        signed_in, epoch = _signed_in(uow.session, user), session_epoch(user)
        uow.commit()
        return signed_in, epoch


def load_session(ctx: Context, user_id: int, epoch: str) -> SignedIn | None:
    """The user behind a session cookie, or None if the session no longer holds
    (user removed, password changed since, retailer deactivated)."""
    with ctx.uow() as uow:
        user = uow.session.get(User, user_id)
        if user is None or not user.active or session_epoch(user) != epoch:
            return None
        if user.role == Role.RETAILER:
            retailer = uow.session.get(Retailer, user.retailer_id)
            if retailer is None or not retailer.active:
                return None
        return _signed_in(uow.session, user)


def change_password(ctx: Context, me: SignedIn, current: str, new: str) -> str:
    """:raise 422: the current password is wrong or the new one too weak. Returns the new epoch."""
    with ctx.uow() as uow:
        user = uow.session.get(User, me.user_id)
        if user is None or not verify_password(current or "", user.password_hash):
            raise Invalid.field("current_password", "is not your current password")
        user.password_hash = hash_password(_check_password(new, user.email))
        epoch = session_epoch(user)
        uow.commit()
        return epoch


def request_password_reset(ctx: Context, email: str) -> None:
    """Email a reset link if the address has an account. Says nothing either way,
    so the form does not reveal who has an account."""
    address = (email or "").strip().lower()
    if not address:
        return
    with ctx.uow() as uow:
        user = uow.session.scalar(select(User).where(User.email == address, User.removed_at.is_(None)))
        if user is None:
            return
        now = ctx.now()
        token = make_token(ctx.settings.secret_key, "password-reset", {"u": user.id, "e": session_epoch(user)})
        send_email(uow.session, ctx, topic="password_reset", to=user.email, template="password_reset",
                   dedupe_key=f"user-{user.id}-{token[-24:]}", now=now, recipient_id=user.id, name=user.name,
                   reset_path=f"/password/reset/{token}", hours=RESET_HOURS)
        uow.commit()


def reset_password(ctx: Context, token: str, new: str) -> SignedIn:
    """Set a new password from an emailed link (also how an invited colleague sets
    their first one). The link works once: the new password changes the epoch it
    was made for. :raise 422: the link is used, expired or forged, or the password weak."""
    data = _read_password_link(ctx, token)
    with ctx.uow() as uow:
        user = uow.session.get(User, data.get("u"))
        if user is None or not user.active or session_epoch(user) != data.get("e"):
            raise Invalid("this link has been used or is no longer valid; ask for a new one")
        user.password_hash = hash_password(_check_password(new, user.email))
        user.last_sign_in_at = ctx.now()
        signed_in = _signed_in(uow.session, user)
        uow.commit()
        return signed_in


def check_password_link(ctx: Context, token: str) -> str:
    """The email a reset or welcome link is for (to show the form). :raise 422: not valid."""
    data = _read_password_link(ctx, token)
    with ctx.uow() as uow:
        user = uow.session.get(User, data.get("u"))
        if user is None or not user.active or session_epoch(user) != data.get("e"):
            raise Invalid("this link has been used or is no longer valid; ask for a new one")
        return user.email


def _read_password_link(ctx: Context, token: str) -> dict:
    # A reset link lasts RESET_HOURS; a welcome link (a new colleague) INVITE_DAYS.
    try:
        return read_token(ctx.settings.secret_key, "password-reset", token, max_age_s=RESET_HOURS * 3600)
    except Invalid:
        return read_token(ctx.settings.secret_key, "welcome", token, max_age_s=INVITE_DAYS * 86400)


# --- Colleagues -------------------------------------------------------------


def list_users(ctx: Context, me: SignedIn) -> list[User]:
    with ctx.uow() as uow:
        column = User.manufacturer_id if me.role == Role.MANUFACTURER else User.retailer_id
        return list(uow.session.scalars(
            select(User).where(column == me.company_id, User.removed_at.is_(None)).order_by(User.id)
        ))


def invite_user(ctx: Context, me: SignedIn, email: str, name: str) -> User:
    """A colleague joins the company: they get an email with a link to set their
    password. :raise 409: the address already has an account."""
    address = normalise_email(email)
    name = (name or "").strip() or address.split("@")[0]
    with ctx.uow() as uow:
        if _email_taken(uow.session, address):
            raise Conflict("that email already has an account", errors={"email": ["already has an account"]})
        now = ctx.now()
        user = User(email=address, name=name, role=me.role, created_at=now,
                    manufacturer_id=me.company_id if me.role == Role.MANUFACTURER else None,
                    retailer_id=me.company_id if me.role == Role.RETAILER else None)
        uow.session.add(user)
        uow.session.flush()
        _send_welcome(uow.session, ctx, user, inviter=me.name, company=me.company_name)
        uow.commit()
        return user


def _welcome_token(ctx: Context, user: User) -> str:
    return make_token(ctx.settings.secret_key, "welcome", {"u": user.id, "e": session_epoch(user)})


def _send_welcome(session: Session, ctx: Context, user: User, *, inviter: str, company: str) -> None:
    token = _welcome_token(ctx, user)
    send_email(session, ctx, topic="welcome", to=user.email, template="welcome", dedupe_key=f"user-{user.id}",
               now=ctx.now(), recipient_id=user.id, name=user.name, inviter=inviter, company=company,
               set_path=f"/password/reset/{token}", days=INVITE_DAYS)


def remove_user(ctx: Context, me: SignedIn, user_id: int) -> None:
    """:raise 404: not a colleague. :raise 409: yourself, or the company's last user."""
    with ctx.uow() as uow:
        user = uow.session.get(User, user_id)
        if user is None or user.role != me.role or user.company_id != me.company_id or not user.active:
            raise NotFound(f"no colleague {user_id}")
        if user.id == me.user_id:
            raise Conflict("you cannot remove yourself; ask a colleague")
        user.removed_at = ctx.now()
        user.email = f"removed-{user.id}@users.invalid"  # frees the address for a new account
        user.password_hash = None
        uow.commit()


def set_digest(ctx: Context, me: SignedIn, on: bool) -> None:
    if me.role != Role.RETAILER:
        raise Forbidden("the digest of new listings is for retailers")
    with ctx.uow() as uow:
        user = uow.session.get(User, me.user_id)
        user.digest_opt_in = on
        if on:
            subscribe(uow.session, user.email, "digest")
        uow.commit()


def add_user(ctx: Context, *, role: Role, company_id: int, email: str, name: str) -> tuple[User, str]:
    """The operator's way in (`broker user add`): a user for any company, with a
    link to set the password (returned, and also emailed)."""
    address = normalise_email(email)
    with ctx.uow() as uow:
        company = uow.session.get(Manufacturer if role == Role.MANUFACTURER else Retailer, company_id)
        if company is None:
            raise NotFound(f"no {role.value} {company_id}")
        if _email_taken(uow.session, address):
            raise Conflict("that email already has an account")
        user = User(email=address, name=(name or "").strip() or address.split("@")[0], role=role,
                    created_at=ctx.now(),
                    manufacturer_id=company_id if role == Role.MANUFACTURER else None,
                    retailer_id=company_id if role == Role.RETAILER else None)
        uow.session.add(user)
        uow.session.flush()
        token = _welcome_token(ctx, user)
        _send_welcome(uow.session, ctx, user, inviter="Broker", company=company.name)
        uow.commit()
        return user, f"{ctx.settings.public_url.rstrip('/')}/password/reset/{token}"


# --- Invitations from manufacturers ----------------------------------------


def invitation_token(ctx: Context, manufacturer_id: int, email: str) -> str:
    return make_token(ctx.settings.secret_key, "dealer-invite", {"m": manufacturer_id, "e": email})


def _read_invitation(ctx: Context, token: str, email: str) -> int:
    data = read_token(ctx.settings.secret_key, "dealer-invite", token, max_age_s=INVITE_DAYS * 86400)
    if data.get("e") != email:
        raise Invalid.field("email", "the invitation was sent to another address; sign up with that one")
    return int(data["m"])


def read_invitation(ctx: Context, token: str) -> tuple[str, str]:
    """(manufacturer name, invited email) for the sign-up page."""
    data = read_token(ctx.settings.secret_key, "dealer-invite", token, max_age_s=INVITE_DAYS * 86400)
    with ctx.uow() as uow:
        maker = uow.session.get(Manufacturer, data.get("m"))
        if maker is None:
            raise Invalid("this invitation is no longer valid")
        return maker.name, str(data.get("e"))
