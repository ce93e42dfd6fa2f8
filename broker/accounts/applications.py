"""Becoming a dealer: a retailer applies to a manufacturer, or a manufacturer
invites a retailer; the other side approves or declines. Approval is the same
authorisation the API's `POST /dealers` makes."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import func, select
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
from broker.accounts.services import authorise
from broker.auth import Actor, ActorKind, require
from broker.context import Context
from broker.db import insert_if_absent
from broker.errors import Conflict, Invalid, NotFound
from broker.identity.models import User
from broker.identity.services import invitation_token, normalise_email
from broker.locks import lock
from broker.notifications.services import company_addresses, send_email


@dataclasses.dataclass(frozen=True)
class ManufacturerChoice:
    id: int
    name: str
    slug: str
    area: str
    status: str  # "authorised", "pending", "invited", "declined" or "" (none yet)
    application_id: int | None


@dataclasses.dataclass(frozen=True)
class ApplicationView:
    id: int
    retailer_id: int
    retailer_name: str
    areas: list[str]
    note: str
    invited: bool
    status: str
    created_at: datetime


def _authorisation(session: Session, manufacturer_id: int, retailer_id: int) -> DealerAuthorisation | None:
    return session.scalar(select(DealerAuthorisation).where(
        DealerAuthorisation.manufacturer_id == manufacturer_id, DealerAuthorisation.retailer_id == retailer_id))


def _application(session: Session, manufacturer_id: int, retailer_id: int, *, invited: bool, note: str,
                 now: datetime) -> tuple[DealerApplication, bool]:
    """The pair's application, locked; made pending now (True) if there was none.
    One row however many ask at once: the second waits for the first's and
    finds it."""
    created = insert_if_absent(session, DealerApplication, dict(
        manufacturer_id=manufacturer_id, retailer_id=retailer_id, status=ApplicationStatus.PENDING, invited=invited,
        note=note, created_at=now), unique=["manufacturer_id", "retailer_id"])
    application = session.scalar(lock(select(DealerApplication).where(
        DealerApplication.manufacturer_id == manufacturer_id, DealerApplication.retailer_id == retailer_id))
        .execution_options(populate_existing=True))
    return application, created is not None


def manufacturers_for(ctx: Context, actor: Actor) -> list[ManufacturerChoice]:
    """Every manufacturer a retailer could deal for, with where it stands with each."""
    require(actor, ActorKind.RETAILER)
    with ctx.uow() as uow:
        authorised = set(uow.session.scalars(select(DealerAuthorisation.manufacturer_id).where(
            DealerAuthorisation.retailer_id == actor.id, DealerAuthorisation.revoked_at.is_(None))))
        applications = {a.manufacturer_id: a for a in uow.session.scalars(
            select(DealerApplication).where(DealerApplication.retailer_id == actor.id))}
        choices = []
        for maker in uow.session.scalars(select(Manufacturer).order_by(Manufacturer.name, Manufacturer.id)):
            application = applications.get(maker.id)
            if maker.id in authorised:
                status = "authorised"
            elif application is None or application.status == ApplicationStatus.APPROVED:
                status = ""  # approved once, revoked since: may apply again
            elif application.status == ApplicationStatus.PENDING:
                status = "invited" if application.invited else "pending"
            else:
                status = "declined"
            choices.append(ManufacturerChoice(maker.id, maker.name, maker.slug, maker.area, status,
                                              application.id if application else None))
        return choices


def apply(ctx: Context, actor: Actor, manufacturer_id: int, note: str = "") -> DealerApplication:
    """:raise 404: no such manufacturer. :raise 409: already a dealer."""
    require(actor, ActorKind.RETAILER)
    note = (note or "").strip()[:500]
    with ctx.uow() as uow:
        maker = uow.session.get(Manufacturer, manufacturer_id)
        if maker is None:
            raise NotFound(f"no manufacturer {manufacturer_id}")
        dealer = _authorisation(uow.session, manufacturer_id, actor.id)
        if dealer is not None and dealer.revoked_at is None:
            raise Conflict(f"you are already an authorised dealer of {maker.name}")
        now = ctx.now()
        application, created = _application(uow.session, manufacturer_id, actor.id, invited=False, note=note,
                                            now=now)
        if created:
            pass
        elif application.status == ApplicationStatus.PENDING and application.invited:
            # They were invited and now ask: that is a yes to the invitation.
            application.status, application.decided_at = ApplicationStatus.APPROVED, now
            authorise(uow.session, manufacturer_id, actor.id, now)
        elif application.status == ApplicationStatus.PENDING:
            # Asked already and not decided (a form sent twice): the same
            # application, with the newer note; the manufacturer was told once.
            application.note = note or application.note
            uow.commit()
            return application
        else:
            application.status, application.invited, application.note = ApplicationStatus.PENDING, False, note
            application.created_at, application.decided_at = now, None
        uow.session.flush()
        retailer = uow.session.get(Retailer, actor.id)
        if application.status == ApplicationStatus.PENDING:
            for user_id, address in company_addresses(uow.session, Role.MANUFACTURER, manufacturer_id):
                send_email(uow.session, ctx, topic="dealer_application", to=address, template="dealer_application",
                           dedupe_key=f"application-{application.id}-{now.isoformat()}-{user_id}", now=now,
                           recipient_id=user_id, retailer=retailer.name, note=note, manufacturer=maker.name)
        uow.commit()
        return application


def list_applications(ctx: Context, actor: Actor) -> list[ApplicationView]:
    """The manufacturer's open applications and invitations, newest first."""
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        rows = uow.session.execute(
            select(DealerApplication, Retailer.name).join(Retailer, Retailer.id == DealerApplication.retailer_id)
            .where(DealerApplication.manufacturer_id == actor.id,
                   DealerApplication.status == ApplicationStatus.PENDING)
            .order_by(DealerApplication.created_at.desc(), DealerApplication.id.desc())
        ).all()
        areas: dict[int, list[str]] = {}
        if rows:
            for retailer_id, area in uow.session.execute(
                select(Store.retailer_id, Store.area).where(Store.retailer_id.in_([a.retailer_id for a, _ in rows]))
                .order_by(Store.id)
            ):
                areas.setdefault(retailer_id, []).append(area)
        return [ApplicationView(a.id, a.retailer_id, name, areas.get(a.retailer_id, []), a.note, a.invited,
                                a.status, a.created_at) for a, name in rows]


def decide(ctx: Context, actor: Actor, application_id: int, approve: bool) -> DealerApplication:
    """The manufacturer decides an application; the retailer decides an invitation.

    :raise 404: not the caller's to decide. :raise 409: already decided.
    """
    require(actor, ActorKind.MANUFACTURER, ActorKind.RETAILER)
    with ctx.uow() as uow:
        application = uow.session.scalar(
            select(DealerApplication).where(DealerApplication.id == application_id).with_for_update())
        mine = application is not None and (
            (actor.kind is ActorKind.MANUFACTURER and application.manufacturer_id == actor.id
             and not application.invited)
            or (actor.kind is ActorKind.RETAILER and application.retailer_id == actor.id and application.invited))
        if not mine:
            raise NotFound(f"no application {application_id} for you to decide")
        if application.status != ApplicationStatus.PENDING:
            raise Conflict(f"this application was already {application.status}")
        now = ctx.now()
        application.status = ApplicationStatus.APPROVED if approve else ApplicationStatus.DECLINED
        application.decided_at = now
        if approve:
            authorise(uow.session, application.manufacturer_id, application.retailer_id, now)
        maker = uow.session.get(Manufacturer, application.manufacturer_id)
        retailer = uow.session.get(Retailer, application.retailer_id)
        if actor.kind is ActorKind.MANUFACTURER:
            for user_id, address in company_addresses(uow.session, Role.RETAILER, application.retailer_id):
                send_email(uow.session, ctx, topic="dealer_decision", to=address, template="dealer_decision",
                           dedupe_key=f"application-{application.id}-{now.isoformat()}-{user_id}", now=now,
                           recipient_id=user_id, manufacturer=maker.name, approved=approve, retailer=retailer.name)
        uow.commit()
        return application


def invite(ctx: Context, actor: Actor, email: str) -> str:
    """Invite a retailer by email. An existing retailer finds the invitation in its
    portal; anyone else gets a link to sign up, which makes them a dealer at once.
    Returns "invited" or "emailed". :raise 409: already a dealer. :raise 422: the
    address belongs to a manufacturer's user."""
    require(actor, ActorKind.MANUFACTURER)
    address = normalise_email(email)
    with ctx.uow() as uow:
        maker = uow.session.get(Manufacturer, actor.id)
        user = uow.session.scalar(select(User).where(User.email == address, User.removed_at.is_(None)))
        retailer_id = user.retailer_id if user is not None else uow.session.scalar(
            select(Retailer.id).where(func.lower(Retailer.email) == address).order_by(Retailer.id).limit(1))
        if user is not None and user.role != Role.RETAILER:
            raise Invalid.field("email", "this address belongs to a manufacturer's account, not a retailer's")
        now = ctx.now()
        if retailer_id is None:
            token = invitation_token(ctx, actor.id, address)
            send_email(uow.session, ctx, topic="dealer_invitation", to=address, template="dealer_invitation",
                       dedupe_key=f"invite-{actor.id}-{address}-{now.date().isoformat()}", now=now,
                       manufacturer=maker.name, signup_path=f"/signup?invitation={token}")
            uow.commit()
            return "emailed"
        dealer = _authorisation(uow.session, actor.id, retailer_id)
        if dealer is not None and dealer.revoked_at is None:
            raise Conflict("that retailer is already your dealer")
        application, created = _application(uow.session, actor.id, retailer_id, invited=True, note="", now=now)
        if not created and application.status == ApplicationStatus.PENDING and not application.invited:
            # They already asked: inviting them is approving.
            application.status, application.decided_at = ApplicationStatus.APPROVED, now
            authorise(uow.session, actor.id, retailer_id, now)
            uow.commit()
            return "approved"
        if not created:
            application.status, application.invited, application.created_at = ApplicationStatus.PENDING, True, now
            application.decided_at = None
        uow.session.flush()
        send_email(uow.session, ctx, topic="dealer_invitation", to=address, template="dealer_invitation",
                   dedupe_key=f"invite-{application.id}-{now.isoformat()}", now=now, manufacturer=maker.name,
                   signup_path="/portal/dealers")
        uow.commit()
        return "invited"
