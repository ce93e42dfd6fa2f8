"""An email address proves nothing until its owner follows a link sent to it
(finding 3 of the security review: an attacker signed up as
hello@legit-bikes.example, the manufacturer invited that address, the
invitation showed in the attacker's portal, and the attacker saw the board).

What is "sent" is read from the outbox: everything Broker would email."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from broker.accounts import applications, invitations
from broker.accounts.models import DealerApplication, DealerAuthorisation, Retailer, Role, Store
from broker.errors import BrokerError, Forbidden
from broker.geo.geocoding import LocationQuery
from broker.identity import services as identity
from broker.identity.models import User
from broker.outbox.models import OutboxMessage
from broker.settlement.services import settle
from tests.factories import HERE, north_of
from tests.pages import PASSWORD, outbox_link, post, sign_in, user_for

OWNER = "hello@legit-bikes.example"
SQUATTER_PASSWORD = "squatter's password"
FORM = {"company": "Legit Bikes", "name": "Lee", "email": OWNER, "password": PASSWORD,
        "store_name": "Legit", "postal_code": "94103", "country": "US", "service_radius_km": "40"}


def emails_to(ctx, address: str) -> list[str]:
    """The kinds of email written to an address, oldest first."""
    with ctx.uow() as uow:
        return [topic.removeprefix("email.") for topic, payload in uow.session.execute(
            select(OutboxMessage.topic, OutboxMessage.payload).where(OutboxMessage.topic.like("email.%"))
            .order_by(OutboxMessage.id)) if payload["to"] == address]


def pending_sign_up(ctx, email: str = OWNER, *, company: str = "Squat Bikes", password: str = SQUATTER_PASSWORD):
    user, _ = identity.sign_up_retailer(ctx, identity.RetailerSignUp(
        company=company, name="Sly", email=email, password=password,
        location=LocationQuery(postal_code="94103", country="US"), service_radius_km=40))
    return user


def dealers_of(ctx, manufacturer_id: int) -> set[int]:
    with ctx.uow() as uow:
        return set(uow.session.scalars(select(DealerAuthorisation.retailer_id).where(
            DealerAuthorisation.manufacturer_id == manufacturer_id, DealerAuthorisation.revoked_at.is_(None))))


@pytest.fixture
def maker(world):
    return world.manufacturer()


@pytest.fixture
def console(app, ctx, maker):
    browser = app.test_client()
    user_for(ctx, Role.MANUFACTURER, maker.id, "sales@maker.example")
    sign_in(browser, "sales@maker.example")
    return browser


def test_attacker_cannot_take_dealer_status_by_claiming_an_email(app, ctx, maker, world, console):
    # The attacker signs up with the address of a real shop.
    attacker = app.test_client()
    signed_up = post(attacker, "/signup", {**FORM, "company": "Squat Bikes", "password": SQUATTER_PASSWORD},
                     form="/signup")
    assert signed_up.headers["Location"].endswith("/account/verify")
    # The manufacturer invites that address from its console.
    assert post(console, "/console/dealers/invite", {"email": OWNER}, form="/console/dealers").status_code == 302
    # Nothing of it reaches the attacker: every portal page says "check your email".
    for path in ("/portal/", "/portal/dealers", "/portal/orders", "/account"):
        assert attacker.get(path).headers["Location"].endswith("/account/verify"), path
    page = attacker.get("/account/verify").get_data(as_text=True)
    assert "Check your email" in page and "invite" not in page.lower()
    # Sending the link again sends it to the address, not to the attacker.
    assert post(attacker, "/account/verify/send", form="/account/verify").status_code == 302
    with ctx.uow() as uow:
        squat = uow.session.scalar(select(Retailer).where(Retailer.name == "Squat Bikes"))
        assert not squat.active
    # Guessing at the invitation's link gets nowhere (an unconfirmed account answers no invitation at all).
    assert post(attacker, "/invitations/not-the-token/accept", form="/account/verify").status_code == 403
    assert squat.id not in dealers_of(ctx, maker.id)
    # An order near the shop is on no board of the attacker's: it cannot even open one.
    world.order(maker, to=north_of(HERE, 1))
    assert attacker.get("/portal/").status_code == 302

    # The real owner reads the invitation in the mailbox and signs up through it.
    assert emails_to(ctx, OWNER) == ["verify_email", "dealer_invitation", "verify_email"]
    path = outbox_link(ctx, OWNER, "/invitations/")
    owner = app.test_client()
    assert "Sign up" in owner.get(path, follow_redirects=True).get_data(as_text=True)
    assert post(owner, f"{path}/signup", FORM, form=path).headers["Location"].endswith("/portal/")
    assert owner.get("/portal/").status_code == 200
    with ctx.uow() as uow:
        legit = uow.session.scalar(select(Retailer).where(Retailer.name == "Legit Bikes"))
    assert dealers_of(ctx, maker.id) == {legit.id}
    # The attacker's pending sign-up is dead, its session too: the address now belongs to its owner.
    refused = post(app.test_client(), "/signin", {"email": OWNER, "password": SQUATTER_PASSWORD})
    assert refused.status_code == 401
    assert attacker.get("/account/verify").headers["Location"].startswith("/signin")


def test_unverified_address_matches_no_invitation(ctx, maker):
    squatter = pending_sign_up(ctx)
    invitations.invite(ctx, maker.actor, OWNER)
    assert [c.status for c in applications.manufacturers_for(ctx, squatter.actor) if c.id == maker.id] == [""]
    with ctx.uow() as uow:
        assert uow.session.scalar(select(DealerApplication)) is None
    assert squatter.company_id not in dealers_of(ctx, maker.id)
    # Even holding the link, a pending account cannot accept it: it must confirm its own address first.
    token = outbox_link(ctx, OWNER, "/invitations/").rsplit("/", 1)[1]
    with pytest.raises(Forbidden):
        invitations.accept_invitation(ctx, token, squatter)


def test_invitation_is_accepted_only_through_its_link(app, client, ctx, maker, world, clock):
    shop = world.retailer(HERE, name="Corner Bikes")
    kim = user_for(ctx, Role.RETAILER, shop.id, "kim@corner.example", "Kim")
    invitations.invite(ctx, maker.actor, "kim@corner.example")
    sign_in(client, "kim@corner.example")
    # The portal does not list it, however the address matches.
    assert "Accept" not in client.get("/portal/dealers").get_data(as_text=True)
    assert [c.status for c in applications.manufacturers_for(ctx, kim.actor) if c.id == maker.id] == [""]
    # A made-up or altered token is refused.
    path = outbox_link(ctx, "kim@corner.example", "/invitations/")
    for wrong in ("/invitations/x", path[:-1] + ("A" if path[-1] != "A" else "B")):
        assert client.get(wrong).status_code == 422
        assert post(client, f"{wrong}/accept", form="/portal/").status_code == 422
    assert shop.id not in dealers_of(ctx, maker.id)
    # The link works, once.
    assert post(client, f"{path}/accept", form=path).status_code == 302
    assert shop.id in dealers_of(ctx, maker.id)
    assert client.get(path).status_code == 422
    # And not after it expires.
    invitations.invite(ctx, maker.actor, "late@corner.example")
    late = outbox_link(ctx, "late@corner.example", "/invitations/")
    clock.advance(days=invitations.INVITE_DAYS, seconds=1)
    assert client.get(late).status_code == 422


def test_an_invitation_opened_by_another_companys_user_is_accepted_for_their_company(app, client, ctx, maker,
                                                                                     world):
    """The link proves access to the invited mailbox; the page names the company
    it will make a dealer, and the signed-in user chooses."""
    shop = world.retailer(HERE, name="Corner Bikes")
    user_for(ctx, Role.RETAILER, shop.id, "owner@corner.example", "Ola")
    invitations.invite(ctx, maker.actor, "sales@corner.example")  # a shared mailbox, say
    path = outbox_link(ctx, "sales@corner.example", "/invitations/")
    sign_in(client, "owner@corner.example")
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    assert "You are signed in as owner@corner.example, not sales@corner.example" in page
    assert "Accept for Corner Bikes" in page
    assert post(client, f"{path}/accept", form=path).status_code == 302
    assert shop.id in dealers_of(ctx, maker.id)


def test_a_manufacturers_user_cannot_accept_an_invitation(client, ctx, maker, world, console):
    other = world.manufacturer(products=())
    invitations.invite(ctx, other.actor, "sales@maker.example")
    path = outbox_link(ctx, "sales@maker.example", "/invitations/")
    assert post(console, f"{path}/accept", form=path).status_code == 403
    assert not dealers_of(ctx, other.id)


def test_real_owner_can_sign_up_after_a_squatter(app, ctx):
    squatter = app.test_client()
    post(squatter, "/signup", {**FORM, "company": "Squat Bikes", "password": SQUATTER_PASSWORD}, form="/signup")
    owner = app.test_client()
    signed_up = post(owner, "/signup", FORM, form="/signup")
    assert signed_up.status_code == 302 and signed_up.headers["Location"].endswith("/account/verify")
    # Both links went to the owner's mailbox; the owner follows their own.
    path = outbox_link(ctx, OWNER, "/verify/")
    page = owner.get(path, follow_redirects=True).get_data(as_text=True)
    assert "Legit Bikes" in page and "Password" not in page  # signed in as that account: one click
    assert post(owner, path, form=path).headers["Location"].endswith("/portal/dealers")
    assert owner.get("/portal/").status_code == 200
    with ctx.uow() as uow:
        users = {u.email + " " + str(u.verified_at is not None): u for u in uow.session.scalars(select(User))}
        assert set(users) == {f"{OWNER} True", f"{OWNER} False"}
    # The squatter's pending account is dead, and so is its session.
    assert squatter.get("/account/verify").headers["Location"].startswith("/signin")
    assert post(app.test_client(), "/signin", {"email": OWNER, "password": SQUATTER_PASSWORD}).status_code == 401
    sign_in(app.test_client(), OWNER)


def test_the_owner_can_verify_after_many_squatters(app, ctx):
    owner = app.test_client()
    post(owner, "/signup", FORM, form="/signup")
    path = outbox_link(ctx, OWNER, "/verify/")
    for n in range(identity.MAX_PENDING_TRIED + 2):
        pending_sign_up(ctx, company=f"Squat {n}")
    browser = app.test_client()  # another device: no session, so the password proves the account
    response = post(browser, path, {"password": PASSWORD}, form=path)
    assert response.status_code == 302
    assert browser.get("/portal/").status_code == 200


def test_the_owner_cannot_confirm_a_squatters_sign_up_by_following_its_link(app, client, ctx):
    pending_sign_up(ctx)  # its link lands in the owner's mailbox
    path = outbox_link(ctx, OWNER, "/verify/")
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    assert "Squat Bikes" in page and "Password" in page  # says what it confirms; asks for that account's password
    response = post(client, path, {"password": PASSWORD}, form=path)
    assert response.status_code == 422 and "is not the password of this account" in response.get_data(as_text=True)
    with ctx.uow() as uow:
        assert uow.session.scalar(select(User.verified_at)) is None


def test_password_reset_does_not_match_an_unverified_address(app, client, ctx):
    pending_sign_up(ctx)
    post(client, "/password/forgot", {"email": OWNER}, form="/password/forgot")
    identity.request_password_reset(ctx, OWNER)
    assert emails_to(ctx, OWNER) == ["verify_email"]
    # Once the address is verified, its owner can reset.
    user, _ = identity.verify_email(ctx, outbox_link(ctx, OWNER, "/verify/").rsplit("/", 1)[1], signed_in_as=None,
                                    password=SQUATTER_PASSWORD)
    identity.request_password_reset(ctx, OWNER)
    assert emails_to(ctx, OWNER) == ["verify_email", "password_reset"]


def test_no_email_but_the_link_goes_to_an_unverified_address(app, client, ctx, maker, world, clock):
    # A pending sign-up: a reset, the link again and a digest setting send it only the link.
    squatter = pending_sign_up(ctx)
    identity.request_password_reset(ctx, OWNER)
    identity.resend_verification(ctx, squatter)
    with pytest.raises(Forbidden):
        identity.set_digest(ctx, squatter, True)
    # A colleague added but who never followed the welcome link: the company's email skips them.
    shop = world.retailer(HERE, name="Corner Bikes", email="corner@shop.example")
    kim = user_for(ctx, Role.RETAILER, shop.id, "kim@corner.example", "Kim")
    identity.invite_user(ctx, kim, "lee@corner.example", "Lee")
    application = applications.apply(ctx, kim, maker.id, "please")
    applications.decide(ctx, maker.actor, application.id, True)  # a decision email
    world.bid(shop, world.order(maker, to=north_of(HERE, 1)).order.id)
    clock.advance(hours=13)
    settle(ctx, as_of=clock.now)  # award emails
    assert set(emails_to(ctx, OWNER)) == {"verify_email"}
    assert emails_to(ctx, "lee@corner.example") == ["welcome"]
    assert emails_to(ctx, "kim@corner.example") == ["welcome", "dealer_decision", "run_awards"]
    assert emails_to(ctx, "corner@shop.example") == []  # a company with users is emailed at theirs


def test_an_unverified_user_cannot_apply_and_an_unverified_applicant_cannot_be_approved(app, ctx, maker, world,
                                                                                     console):
    squatter = pending_sign_up(ctx)
    with pytest.raises(Forbidden):
        applications.apply(ctx, squatter, maker.id, "let me in")
    # An application whose applicant has since lost their verified standing (removed here).
    shop = world.retailer(HERE, name="Corner Bikes")
    kim = user_for(ctx, Role.RETAILER, shop.id, "kim@corner.example", "Kim")
    lee = user_for(ctx, Role.RETAILER, shop.id, "lee@corner.example", "Lee")
    application = applications.apply(ctx, lee, maker.id, "we stock it")
    identity.remove_user(ctx, kim, lee.user_id)
    page = console.get("/console/dealers").get_data(as_text=True)
    assert "address not verified" in page and "Cannot be approved" in page
    response = post(console, f"/console/dealers/applications/{application.id}", {"decision": "approve"},
                    form="/console/dealers")
    assert response.status_code == 409 and "not verified" in response.get_data(as_text=True)
    assert shop.id not in dealers_of(ctx, maker.id)


def test_a_user_added_by_the_operator_verifies_by_setting_the_password(app, client, ctx, world):
    shop = world.retailer(HERE)
    user, link = identity.add_user(ctx, role=Role.RETAILER, company_id=shop.id, email="new@shop.example", name="N")
    assert user.verified_at is None
    path = "/" + link.split("/", 3)[3]
    assert post(client, path, {"password": "a long password", "confirm": "a long password"},
                form=path).status_code == 302
    with ctx.uow() as uow:
        assert uow.session.get(User, user.id).verified_at is not None
    assert client.get("/portal/").status_code == 200


def test_a_lapsed_sign_up_is_deleted_and_frees_nothing_it_never_held(ctx, clock):
    squatter = pending_sign_up(ctx)
    clock.advance(days=identity.PENDING_DAYS - 1)
    assert identity.expire_sign_ups(ctx).sign_ups_deleted == 0
    identity.sign_in(ctx, OWNER, SQUATTER_PASSWORD)  # still pending: it may sign in to confirm
    clock.advance(days=1, seconds=1)
    with pytest.raises(BrokerError):
        identity.sign_in(ctx, OWNER, SQUATTER_PASSWORD)
    assert identity.expire_sign_ups(ctx).sign_ups_deleted == 1
    with ctx.uow() as uow:
        assert uow.session.get(Retailer, squatter.company_id) is None
        assert uow.session.scalar(select(Store).where(Store.retailer_id == squatter.company_id)) is None
        assert uow.session.scalar(select(User)) is None
    assert identity.expire_sign_ups(ctx).sign_ups_deleted == 0


def test_an_address_verified_once_cannot_be_verified_for_a_second_account(ctx):
    first, second = pending_sign_up(ctx, company="One"), pending_sign_up(ctx, company="Two", password="another one!")
    tokens = {}
    with ctx.uow() as uow:
        for payload in uow.session.scalars(select(OutboxMessage.payload)):
            tokens[payload["text"].split("sign up ")[1].split(" on Broker")[0]] = \
                payload["text"].split("/verify/")[1].split()[0]
    identity.verify_email(ctx, tokens["One"], signed_in_as=first.user_id)
    with pytest.raises(BrokerError) as refused:
        identity.verify_email(ctx, tokens["Two"], signed_in_as=second.user_id)
    assert refused.value.status in (409, 422)


def test_sending_the_link_again_is_rate_limited(app, ctx):
    browser = app.test_client()
    post(browser, "/signup", FORM, form="/signup")
    assert post(browser, "/account/verify/send", form="/account/verify").status_code == 302
    assert post(browser, "/account/verify/send", form="/account/verify").status_code == 429
    assert emails_to(ctx, OWNER) == ["verify_email", "verify_email"]
