"""Becoming a dealer by asking: a retailer applies to a manufacturer, which
approves or declines. Approval is the same authorisation the API's
`POST /dealers` makes. (A manufacturer inviting a retailer is
`broker.accounts.invitations`.)

Only a retailer user whose address is verified may apply, and the manufacturer
sees who applied and whether that address is still verified: it approves only
then, so no application rests on an address nobody proved."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

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
from broker.errors import Conflict, Forbidden, NotFound
from broker.identity.models import User
from broker.identity.services import SignedIn
from broker.locks import lock
from broker.notifications.services import company_addresses, send_email


@dataclasses.dataclass(frozen=True)
class ManufacturerChoice:
    id: int
    name: str
    slug: str
    area: str
    status: str  # "authorised", "pending", "declined" or "" (none yet)
    application_id: int | None


@dataclasses.dataclass(frozen=True)
class ApplicationView:
    id: int
    retailer_id: int
    retailer_name: str
    areas: list[str]
    note: str
    status: str
    created_at: datetime
    # Who asked, and whether their address is (still) verified: only then can it be approved.
    applicant_name: str
    applicant_email: str
    applicant_verified: bool


def _authorisation(session: Session, manufacturer_id: int, retailer_id: int) -> DealerAuthorisation | None:
    return session.scalar(select(DealerAuthorisation).where(
        DealerAuthorisation.manufacturer_id == manufacturer_id, DealerAuthorisation.retailer_id == retailer_id))


def _application(session: Session, manufacturer_id: int, retailer_id: int, *, invited: bool, note: str,
                 now: datetime, applicant_user_id: int | None = None) -> tuple[DealerApplication, bool]:
    """The pair's application, locked; made pending now (True) if there was none.
    One row however many ask at once: the second waits for the first's and
    finds it."""
    created = insert_if_absent(session, DealerApplication, dict(
        manufacturer_id=manufacturer_id, retailer_id=retailer_id, status=ApplicationStatus.PENDING, invited=invited,
        note=note, created_at=now, applicant_user_id=applicant_user_id), unique=["manufacturer_id", "retailer_id"])
    application = session.scalar(lock(select(DealerApplication).where(
        DealerApplication.manufacturer_id == manufacturer_id, DealerApplication.retailer_id == retailer_id))
        .execution_options(populate_existing=True))
    return application, created is not None


def is_dealer(session: Session, manufacturer_id: int, retailer_id: int) -> bool:
    dealer = _authorisation(session, manufacturer_id, retailer_id)
    return dealer is not None and dealer.revoked_at is None


def record_invited(session: Session, manufacturer_id: int, retailer_id: int, now: datetime) -> None:
    """An accepted invitation, in the application record: approved, `invited`."""
    application = session.scalar(select(DealerApplication).where(
        DealerApplication.manufacturer_id == manufacturer_id, DealerApplication.retailer_id == retailer_id
    ).with_for_update())
    if application is None:
        session.add(DealerApplication(manufacturer_id=manufacturer_id, retailer_id=retailer_id,
                                      status=ApplicationStatus.APPROVED, invited=True, created_at=now,
                                      decided_at=now))
    else:
        application.status, application.invited, application.decided_at = ApplicationStatus.APPROVED, True, now


def _verified_user(session: Session, user_id: int | None, retailer_id: int) -> bool:
    """Whether the applicant's address is verified; for an application made before
    the applicant was recorded, whether any of the retailer's users' is."""
    query = select(User.id).where(User.retailer_id == retailer_id, User.removed_at.is_(None),
                                  User.verified_at.is_not(None))
    if user_id is not None:
        query = query.where(User.id == user_id)
    return session.scalar(query.limit(1)) is not None


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
                status = "pending"
            else:
                status = "declined"
            choices.append(ManufacturerChoice(maker.id, maker.name, maker.slug, maker.area, status,
                                              application.id if application else None))
        return choices


def apply(ctx: Context, applicant: SignedIn, manufacturer_id: int, note: str = "") -> DealerApplication:
    """A retailer's user asks to be authorised.

    :raise 403: not a retailer's user, or their address is not verified.
    :raise 404: no such manufacturer. :raise 409: already a dealer.
    """
    actor = require(applicant.actor, ActorKind.RETAILER)
    note = (note or "").strip()[:500]
    with ctx.uow() as uow:
        if not _verified_user(uow.session, applicant.user_id, actor.id):
            raise Forbidden("confirm your email address before applying: follow the link we mailed you")
        maker = uow.session.get(Manufacturer, manufacturer_id)
        if maker is None:
            raise NotFound(f"no manufacturer {manufacturer_id}")
        if is_dealer(uow.session, manufacturer_id, actor.id):
            raise Conflict(f"you are already an authorised dealer of {maker.name}")
        now = ctx.now()
        application, created = _application(uow.session, manufacturer_id, actor.id, invited=False, note=note,
                                            now=now, applicant_user_id=applicant.user_id)
        if not created and application.status == ApplicationStatus.PENDING:
            # Asked already and not decided (a form sent twice): the same
            # application, with the newer note; the manufacturer was told once.
            application.note = note or application.note
            application.applicant_user_id = applicant.user_id
            uow.commit()
            return application
        if not created:  # asked again after a decision: pending once more
            application.status, application.invited, application.note = ApplicationStatus.PENDING, False, note
            application.created_at, application.decided_at = now, None
            application.applicant_user_id = applicant.user_id
        uow.session.flush()
        retailer = uow.session.get(Retailer, actor.id)
        for user_id, address in company_addresses(uow.session, Role.MANUFACTURER, manufacturer_id):
            send_email(uow.session, ctx, topic="dealer_application", to=address, template="dealer_application",
                       dedupe_key=f"application-{application.id}-{now.isoformat()}-{user_id}", now=now,
                       recipient_id=user_id, retailer=retailer.name, note=note, manufacturer=maker.name)
        uow.commit()
        return application


def list_applications(ctx: Context, actor: Actor) -> list[ApplicationView]:
    """The manufacturer's open applications, newest first, each with its
    applicant and whether their address is verified."""
    require(actor, ActorKind.MANUFACTURER)
    applicant = aliased(User)
    colleague = aliased(User)
    anyone_verified = exists().where(colleague.retailer_id == DealerApplication.retailer_id,
                                     colleague.removed_at.is_(None), colleague.verified_at.is_not(None))
    with ctx.uow() as uow:
        rows = uow.session.execute(
            select(DealerApplication, Retailer.name, applicant.name, applicant.email, applicant.verified_at,
                   applicant.removed_at, anyone_verified.label("anyone_verified"))
            .join(Retailer, Retailer.id == DealerApplication.retailer_id)
            .outerjoin(applicant, applicant.id == DealerApplication.applicant_user_id)
            .where(DealerApplication.manufacturer_id == actor.id,
                   DealerApplication.status == ApplicationStatus.PENDING)
            .order_by(DealerApplication.created_at.desc(), DealerApplication.id.desc())
        ).all()
        areas: dict[int, list[str]] = {}
        if rows:
            for retailer_id, area in uow.session.execute(
                select(Store.retailer_id, Store.area).where(Store.retailer_id.in_([r[0].retailer_id for r in rows]))
                .order_by(Store.id)
            ):
                areas.setdefault(retailer_id, []).append(area)
        views = []
        for a, retailer_name, name, email, verified_at, removed_at, anyone in rows:
            if a.applicant_user_id is None:
                verified = bool(anyone)
            else:
                verified = verified_at is not None and removed_at is None
            views.append(ApplicationView(a.id, a.retailer_id, retailer_name, areas.get(a.retailer_id, []), a.note,
                                         a.status, a.created_at, name or "", email or "", verified))
        return views


def decide(ctx: Context, actor: Actor, application_id: int, approve: bool) -> DealerApplication:
    """The manufacturer approves or declines an application.

    :raise 404: not the caller's to decide. :raise 409: already decided, or (to
    approve) the applicant's address is not verified.
    """
    require(actor, ActorKind.MANUFACTURER)
    with ctx.uow() as uow:
        application = uow.session.scalar(
            select(DealerApplication).where(DealerApplication.id == application_id).with_for_update())
        if application is None or application.manufacturer_id != actor.id or application.invited:
            raise NotFound(f"no application {application_id} for you to decide")
        if application.status != ApplicationStatus.PENDING:
            raise Conflict(f"this application was already {application.status}")
        if approve and not _verified_user(uow.session, application.applicant_user_id, application.retailer_id):
            raise Conflict("the applicant's email address is not verified, so this application cannot be "
                           "approved; decline it, or wait for them to apply again")
        now = ctx.now()
        application.status = ApplicationStatus.APPROVED if approve else ApplicationStatus.DECLINED
        application.decided_at = now
        if approve:
            authorise(uow.session, application.manufacturer_id, application.retailer_id, now)
        maker = uow.session.get(Manufacturer, application.manufacturer_id)
        retailer = uow.session.get(Retailer, application.retailer_id)
        for user_id, address in company_addresses(uow.session, Role.RETAILER, application.retailer_id):
            send_email(uow.session, ctx, topic="dealer_decision", to=address, template="dealer_decision",
                       dedupe_key=f"application-{application.id}-{now.isoformat()}-{user_id}", now=now,
                       recipient_id=user_id, manufacturer=maker.name, approved=approve, retailer=retailer.name)
        uow.commit()
        return application
