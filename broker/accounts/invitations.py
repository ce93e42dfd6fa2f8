"""A manufacturer invites a retailer by email to become its dealer.

The invitation is a link mailed to the address, and the token in it is the
only proof that counts: nothing matches the address against accounts, so
signing up with somebody's address catches none of their invitations. Only the
token's SHA-256 is stored; it works once and for INVITE_DAYS.

Whoever follows the link:
* signed in as a retailer's verified user accepts (or declines) it for that
  company, whatever their own address: the link proves access to the invited
  mailbox, and its holder may choose the company. The page names both.
* signed out signs up with the invited address, which the link proves: the new
  account is verified at once, and the company is a dealer.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.accounts.applications import authorise, is_dealer, record_invited
from broker.accounts.models import DealerInvitation, InvitationStatus, Manufacturer, Role
from broker.auth import Actor, ActorKind, digest, require
from broker.context import Context
from broker.errors import Conflict, Forbidden, Invalid
from broker.identity import sessions
from broker.identity.services import (
    RetailerSignUp,
    SignedIn,
    create_retailer_account,
    end_pending_sessions,
    normalise_email,
    signed_in_user,
    validate_sign_up,
)
from broker.identity.models import User
from broker.locks import lock
from broker.notifications.services import send_email

INVITE_DAYS = 14
# Inviting an address again within this time is the same form sent twice: nothing more is mailed.
RESEND_AFTER = timedelta(minutes=1)
NOT_VALID = "this invitation has been used, has expired or was withdrawn; ask the manufacturer to invite you again"


@dataclasses.dataclass(frozen=True)
class InvitationView:
    id: int
    manufacturer_id: int
    manufacturer: str
    email: str
    sent_at: datetime
    expires_at: datetime


def invite(ctx: Context, actor: Actor, email: str) -> InvitationView:
    """Mail the address a link that makes its holder's company a dealer. Inviting
    an address again replaces the link it had, unless the last one went out less
    than RESEND_AFTER ago: that is the same form sent twice, and it sends nothing
    more. :raise 422: not an email address."""
    require(actor, ActorKind.MANUFACTURER)
    address = normalise_email(email)
    with ctx.uow() as uow:
        # A manufacturer's invitations are written one at a time: two copies of
        # one form both finding no invitation would otherwise mail two links.
        maker = uow.session.scalar(lock(select(Manufacturer).where(Manufacturer.id == actor.id)))
        now = ctx.now()
        invitation = uow.session.scalar(select(DealerInvitation).where(
            DealerInvitation.manufacturer_id == actor.id, DealerInvitation.email == address,
            DealerInvitation.status == InvitationStatus.PENDING).order_by(DealerInvitation.id.desc()).limit(1))
        if invitation is not None and now - invitation.created_at < RESEND_AFTER:
            view = _view(invitation, maker)
            uow.commit()
            return view
        if invitation is None:
            invitation = DealerInvitation(manufacturer_id=actor.id, email=address, status=InvitationStatus.PENDING)
            uow.session.add(invitation)
        token = secrets.token_urlsafe(32)
        invitation.token_hash = digest(token)
        invitation.created_at, invitation.expires_at = now, now + timedelta(days=INVITE_DAYS)
        uow.session.flush()
        send_email(uow.session, ctx, topic="dealer_invitation", to=address, template="dealer_invitation",
                   dedupe_key=f"invitation-{invitation.id}-{invitation.token_hash[:24]}", now=now,
                   manufacturer=maker.name, accept_path=f"/invitations/{token}", days=INVITE_DAYS)
        view = _view(invitation, maker)
        uow.commit()
        return view


def pending_invitations(ctx: Context, actor: Actor) -> list[InvitationView]:
    """The manufacturer's invitations not yet answered and not expired, newest first."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        maker = uow.session.get(Manufacturer, actor.id)
        return [_view(i, maker) for i in uow.session.scalars(
            select(DealerInvitation).where(DealerInvitation.manufacturer_id == actor.id,
                                           DealerInvitation.status == InvitationStatus.PENDING,
                                           DealerInvitation.expires_at > ctx.now())
            .order_by(DealerInvitation.created_at.desc(), DealerInvitation.id.desc()))]


def _view(invitation: DealerInvitation, maker: Manufacturer) -> InvitationView:
    return InvitationView(invitation.id, invitation.manufacturer_id, maker.name, invitation.email,
                          invitation.created_at, invitation.expires_at)


def _open(session: Session, token: str, now: datetime, *, lock: bool = False) -> DealerInvitation:
    """The pending invitation the token is for. :raise 422: used, expired, or no such token."""
    query = select(DealerInvitation).where(DealerInvitation.token_hash == digest(token or ""))
    invitation = session.scalar(query.with_for_update() if lock else query)
    if invitation is None or invitation.status != InvitationStatus.PENDING or invitation.expires_at <= now:
        raise Invalid(NOT_VALID)
    return invitation


def read_invitation(ctx: Context, token: str) -> InvitationView:
    """What the link offers, to show before anything is done. :raise 422: not valid."""
    with ctx.uow() as uow:
        invitation = _open(uow.session, token, ctx.now())
        return _view(invitation, uow.session.get(Manufacturer, invitation.manufacturer_id))


def _answerer(me: SignedIn) -> int:
    if me.role != Role.RETAILER:
        raise Forbidden("an invitation to become a dealer is for a retailer's account; sign out, then sign in "
                        "as the retailer or sign up")
    if not me.verified:
        raise Forbidden("confirm your own email address first (follow the link we mailed you), then open the "
                        "invitation again")
    return me.company_id


def _close(invitation: DealerInvitation, status: InvitationStatus, retailer_id: int, now: datetime) -> None:
    invitation.status, invitation.decided_at, invitation.retailer_id = status, now, retailer_id


def accept_invitation(ctx: Context, token: str, me: SignedIn) -> InvitationView:
    """The signed-in retailer's company becomes the manufacturer's dealer.
    :raise 403: not a retailer's verified user. :raise 422: the link is not valid."""
    retailer_id = _answerer(me)
    with ctx.uow() as uow:
        now = ctx.now()
        invitation = _open(uow.session, token, now, lock=True)
        with_user = uow.session.get(User, me.user_id)
        if with_user is None or not with_user.verified or not with_user.active:
            raise Forbidden("confirm your own email address first")
        if not is_dealer(uow.session, invitation.manufacturer_id, retailer_id):
            authorise(uow.session, invitation.manufacturer_id, retailer_id, now)
            record_invited(uow.session, invitation.manufacturer_id, retailer_id, now)
        _close(invitation, InvitationStatus.ACCEPTED, retailer_id, now)
        view = _view(invitation, uow.session.get(Manufacturer, invitation.manufacturer_id))
        uow.commit()
        return view


def decline_invitation(ctx: Context, token: str, me: SignedIn) -> InvitationView:
    """:raise 403: not a retailer's verified user. :raise 422: the link is not valid."""
    retailer_id = _answerer(me)
    with ctx.uow() as uow:
        now = ctx.now()
        invitation = _open(uow.session, token, now, lock=True)
        _close(invitation, InvitationStatus.DECLINED, retailer_id, now)
        view = _view(invitation, uow.session.get(Manufacturer, invitation.manufacturer_id))
        uow.commit()
        return view


def sign_up_invited(ctx: Context, token: str, cmd: RetailerSignUp) -> tuple[SignedIn, str]:
    """Sign up through the invitation's link: the address must be the invited
    one, which the link proves, so the account is verified at once and the new
    company is the manufacturer's dealer. Returns who and a new session's id.

    :raise 422: bad input, another address, or the link is not valid.
    :raise 409: the address has a verified account already (sign in and accept).
    """
    email, place = validate_sign_up(ctx, cmd)
    with ctx.uow() as uow:
        now = ctx.now()
        invitation = _open(uow.session, token, now, lock=True)
        if email != invitation.email:
            raise Invalid.field("email", f"the invitation was sent to {invitation.email}; sign up with that "
                                         "address (the link proves it is yours)")
        if uow.session.scalar(select(User.id).where(User.email == email, User.verified_at.is_not(None))):
            raise Conflict("that address already has an account: sign in, then open the invitation's link again",
                           errors={"email": ["already has an account"]})
        try:
            user = create_retailer_account(uow.session, cmd, email, place, now, verified=True,
                                           default_timezone=ctx.settings.timezone)
        except IntegrityError:
            raise Conflict("that address already has an account: sign in, then open the invitation's link again",
                           errors={"email": ["already has an account"]}) from None
        end_pending_sessions(uow.session, user, now)
        authorise(uow.session, invitation.manufacturer_id, user.retailer_id, now)
        record_invited(uow.session, invitation.manufacturer_id, user.retailer_id, now)
        _close(invitation, InvitationStatus.ACCEPTED, user.retailer_id, now)
        session_id = sessions.open_session(uow.session, user.id, now)
        signed_in = signed_in_user(uow.session, user)
        uow.commit()
        return signed_in, session_id
